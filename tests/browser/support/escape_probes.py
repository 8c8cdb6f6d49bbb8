"""The escape-probe harness: run ``probe_program.py`` as executed code and tell, probe
by probe, whether it was blocked (and by what) or allowed.

Three configurations ("columns"), each in its own worker:

* ``runtime``: the runtime as deployed (``MontyRuntime.create()`` on a server that
  sends the worker CSP): import guard + APIs removed after boot + CSP;
* ``csp only``: boot-check's bare Pyodide worker on the same server: the CSP and
  nothing else (no import guard, no API removal), to show what the CSP holds alone;
* ``no csp``: the runtime on a server without the CSP, created with
  ``requireCSP: false``: import guard + API removal, no CSP.

Network probes are judged by evidence as well: a request that reached the sink server
(another origin) or our own server under the probe's path counts as "allowed",
whatever the code saw. Page-side probes (forged messages, other runtimes, sandbox
workers) run in the ``runtime`` configuration only and are judged by their outcome on
the page.

Used by ``tests/browser/test_escape_probes.py`` and ``benchmarks/escape_probes.py``.
"""

from __future__ import annotations

import http.server
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROGRAM = Path(__file__).with_name("probe_program.py").read_text(encoding="utf-8")

#: The import guard bypassed by walking objects (a residual risk, by design).
BYPASS = "object graph walk (sys.modules, a module's __builtins__)"

#: Executed code's way to a module without the import statement (see probe_program.py).
REACH_PY = """
import json, sys
def reach(name):
    if name not in sys.modules:
        vars(json)["__builtins__"]["__import__"](name)
    return sys.modules[name]
def page_post():
    # What executed code can post to the page with: the worker's postMessage where it
    # is still there, else the function the runtime's own Python posts with (in a
    # browser, to the worker's gate).
    js = reach("js")
    if hasattr(js, "postMessage"):
        return js.postMessage
    return reach("monty_runtime.worker")._session.hooks.post
"""

#: The probes ``probe_start`` runs, in table order.
JS_PROBES: tuple[str, ...] = (
    "fetch (other origin)",
    "fetch (same origin)",
    "pyfetch (other origin)",
    "pyfetch (same origin)",
    "XMLHttpRequest (other origin)",
    "XMLHttpRequest (same origin)",
    "WebSocket",
    "EventSource",
    "nested Worker (same origin)",
    "nested Worker (blob:)",
    "importScripts",
    "dynamic import() (other origin)",
    "dynamic import() (same origin)",
    "eval",
    "Function",
    "pyodide.code.run_js",
    "constructor.constructor",
    "IndexedDB",
    "Cache Storage",
    "BroadcastChannel",
    "origin private file system",
    "Web Locks",
)

GUARD_PROBES: tuple[str, ...] = (
    "import js",
    "import pyodide_js",
    "import pyodide",
    "from pyodide.ffi import to_js",
    "import pyodide.code",
    "import pyodide.http",
    "import _pyodide",
    "import micropip",
    "import monty_runtime.worker",
    "importlib.import_module('js')",
    "__import__('js')",
    "exec('import js', {})",
    "builtins.__import__('js')",
    BYPASS,
)

PAGE_PROBES: tuple[str, ...] = (
    "forged result/event/rejection for an id the page never issued",
    "forged ready / boot_error after boot",
    "forged host_call to unregistered names (incl. constructor, __proto__)",
    "forged host_call for an execution the page does not know",
    "__proto__ payloads in worker messages",
    "forged result for another runtime's execution",
    "forged result of its own execution",
    "reading another runtime's globals",
    "sandbox executions share one interpreter",
    'sandbox: "isolated" executions share one interpreter',
)

#: (server, path suffix) -> probe: requests that prove a probe got through.
EVIDENCE: dict[tuple[str, str], str] = {
    ("sink", "fetch"): "fetch (other origin)",
    ("sink", "pyfetch"): "pyfetch (other origin)",
    ("sink", "xhr"): "XMLHttpRequest (other origin)",
    ("sink", "ws"): "WebSocket",
    ("sink", "sse"): "EventSource",
    ("sink", "import.mjs"): "dynamic import() (other origin)",
    ("same", "fetch"): "fetch (same origin)",
    ("same", "pyfetch"): "pyfetch (same origin)",
    ("same", "xhr"): "XMLHttpRequest (same origin)",
    ("same", "worker.js"): "nested Worker (same origin)",
    ("same", "import-scripts.js"): "importScripts",
    ("same", "import.mjs"): "dynamic import() (same origin)",
}

#: What the deployed runtime does not block, each a residual risk the README names.
RESIDUAL_RISKS: frozenset[str] = frozenset({
    BYPASS,
    "forged result of its own execution",
    "sandbox executions share one interpreter",
})

#: What a worker under the CSP alone (no import guard, no API removal) does not block:
#: a CSP does not govern storage or same-origin channels, and worker-src 'self' (Firefox
#: needs it for a module worker's own imports) lets a same-origin nested worker start;
#: the runtime's lock-down removes Worker, so there the probe is blocked.
CSP_ONLY_ALLOWED: frozenset[str] = frozenset({
    *GUARD_PROBES,
    "nested Worker (same origin)",
    "IndexedDB",
    "Cache Storage",
    "BroadcastChannel",
    "origin private file system",
    "Web Locks",
})

#: What the runtime without its CSP (requireCSP: false) does not block: string
#: evaluation, and through it module imports from any origin.
NO_CSP_ALLOWED: frozenset[str] = frozenset({
    BYPASS,
    "eval",
    "Function",
    "pyodide.code.run_js",
    "constructor.constructor",
    "dynamic import() (other origin)",
    "dynamic import() (same origin)",
})


# --------------------------------------------------------------------------- sink


class _SinkHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sink: Sink

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self) -> None:
        self.sink.record(self.command, self.path)
        if self.headers.get("Upgrade", "").lower() == "websocket":
            body = b"no websockets here"
            self.send_response(400)
        else:
            self.send_response(200)
            body = b"export default 1;\n"
        if self.path.endswith("sse"):
            ctype, body = "text/event-stream", b"data: hi\n\n"
        elif self.path.endswith((".mjs", ".js")):
            ctype = "text/javascript"
        else:
            ctype = "text/plain"
        self.send_header("Content-Type", ctype)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cross-Origin-Resource-Policy", "cross-origin")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_OPTIONS = _answer


class Sink:
    """A server on another origin (another port of 127.0.0.1) that records every request
    it gets and answers each one permissively (CORS, CORP): if a probe's request gets
    here at all, the probe got out."""

    def __init__(self) -> None:
        handler = type("Handler", (_SinkHandler,), {"sink": self})
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/"
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def paths(self) -> list[str]:
        with self._lock:
            return [p for _m, p in self.requests]

    def __enter__(self) -> Sink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# --------------------------------------------------------------------------- outcomes


@dataclass
class Column:
    name: str
    results: dict[str, dict[str, str]] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)

    def allowed(self) -> set[str]:
        return {name for name, r in self.results.items() if r["outcome"] == "allowed"}


def verdict(result: dict[str, str] | None) -> str:
    """A short cell: "allowed", or "blocked (<by what>)"."""
    if result is None:
        return "-"
    if result["outcome"] == "allowed":
        return "ALLOWED"
    detail = result["detail"]
    if "ImportError" in detail:
        by = "import guard"
    elif "EvalError" in detail:
        by = "CSP: no eval"
    elif "boot is over" in detail or "not available in this worker" in detail:
        by = "boot fetch closed"
    elif "Illegal invocation" in detail:
        by = "unreachable"
    elif "Module scripts don't support" in detail:
        by = "module worker"
    elif any(s in detail for s in ("AttributeError", "is not defined", "has no attribute")):
        by = "removed"
    elif "ignored" in detail or "refused" in detail or "not found" in detail:
        by = "page"
    elif any(s in detail for s in ("Failed to fetch", "NetworkError", "SecurityError",
                                   "Content Security Policy", "error event", "close event",
                                   "no answer", "TypeError")):
        by = "CSP"
    else:
        by = detail[:24]
    return f"blocked ({by})"


def apply_evidence(column: Column, prefix: str, same_paths: list[str],
                   sink_paths: list[str]) -> None:
    """A request under ``prefix`` on either server turns its probe into "allowed"."""
    for server, paths in (("same", same_paths), ("sink", sink_paths)):
        for path in paths:
            if not path.startswith(prefix):
                continue
            suffix = path[len(prefix):].split("?", 1)[0]
            probe = EVIDENCE.get((server, suffix), f"unexpected request {server}:{suffix}")
            column.results[probe] = {
                "outcome": "allowed",
                "detail": f"a request reached the {'other-origin' if server == 'sink' else 'same-origin'} server",
            }


def _parse(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        parsed: dict[str, Any] = json.loads(value)
        return parsed
    raise AssertionError(f"expected JSON text from the worker, got {value!r:.300}")


# --------------------------------------------------------------------------- columns

RUNTIME_JS = """async ({ program, cfg, requireCSP }) => {
  // The worker that boots cold and makes the warm-start snapshot sees `js` through
  // Pyodide's snapshot proxy (accessors of the global throw "Illegal invocation");
  // probe a worker as most are: one restored from the snapshot (or a plain cold one).
  await (await M.MontyRuntime.create({ requireCSP })).dispose();
  const rt = await M.MontyRuntime.create({ requireCSP });
  try {
    const env = rt.info.env;
    const def = await H.run(rt, program);
    if (!def.ok || def.result.error) return { failed: def };
    const guard = await H.run(rt, "guard_probes()");
    const probes = await H.run(rt,
      "await probe_run(" + JSON.stringify(JSON.stringify(cfg)) + ", 10.0)");
    return { env, guard, probes };
  } finally {
    await rt.dispose();
  }
}"""

CSP_ONLY_JS = """async ({ program, cfg }) => {
  const bc = window.bootCheck;
  // Each step within its own bound, so that a step that never ends is named (the boot
  // check's worker answers nothing while Python runs).
  const step = (name, promise, ms) => {
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(
        `csp-only column: ${name} did not finish within ${ms} ms (boot phases: ` +
        `${JSON.stringify(bc.phases)})`)), ms);
    });
    return Promise.race([promise, late]).finally(() => clearTimeout(timer));
  };
  const booted = await step("the boot", bc.start({}), 150000);
  if (!booted.ok) return { failed: booted };
  try {
    const def = await step("defining the probes", bc.run(program), 30000);
    if (!def.ok) return { failed: def };
    const guard = await step("guard_probes()", bc.run("guard_probes()"), 30000);
    const started = await step("probe_start()",
      bc.run("probe_start(" + JSON.stringify(JSON.stringify(cfg)) + ")"), 30000);
    if (!started.ok) return { failed: started };
    let out = null;
    const t0 = performance.now();
    for (;;) {
      const wait = performance.now() - t0 > 10000 ? "0.0" : "1e9";
      out = await step("probe_collect(" + wait + ")", bc.run("probe_collect(" + wait + ")"), 30000);
      if (!out.ok || JSON.parse(out.value).done) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    return { env: booted, guard, probes: out };
  } finally {
    bc.stop();
  }
}"""


def _settle_requests() -> None:
    # A refused or answered request is logged at once; give stragglers (a WebSocket
    # handshake, a worker script fetch) a moment before the logs are read.
    time.sleep(0.5)


def run_column(page: Any, server: Any, sink: Sink, name: str, *, csp_only: bool = False,
               require_csp: bool = True, evaluate: Any) -> Column:
    """Run the JS probes (and the import-guard probes) in one configuration."""
    token = secrets.token_hex(6)
    context = name.replace(" ", "-")
    prefix = f"/probe/{token}/{context}/"
    cfg = {"cross": sink.url.rstrip("/") + prefix, "same": server.url.rstrip("/") + prefix,
           "token": token, "context": "bare" if csp_only else "runtime"}
    if csp_only:
        out = evaluate(page, CSP_ONLY_JS, {"program": PROGRAM, "cfg": cfg}, timeout_s=240)
    else:
        out = evaluate(page, RUNTIME_JS, {"program": PROGRAM, "cfg": cfg,
                                          "requireCSP": require_csp}, timeout_s=240)
    if "failed" in out:
        raise AssertionError(f"{name}: the probe program did not run: {out['failed']}")
    column = Column(name, env=out["env"])
    guard = out["guard"]
    probes = out["probes"]
    if csp_only:
        guard_value, probes_value = guard["value"], probes["value"]
    else:
        assert guard["ok"] and guard["result"]["error"] is None, guard
        assert probes["ok"] and probes["result"]["error"] is None, probes
        guard_value, probes_value = guard["result"]["value"], probes["result"]["value"]
    column.results.update(_parse(guard_value))
    column.results.update(_parse(probes_value)["results"])
    _settle_requests()
    same_paths = [r.path for r in server.requests()]
    apply_evidence(column, prefix, same_paths, sink.paths())
    return column


# --------------------------------------------------------------------------- page side

FORGE_PY = r'''
import json, sys
js = reach("js")
rid = reach("monty_runtime.bridge").current_execution.get().state.rid
UNKNOWN = 987654321
def result(i, value="FORGED"):
    return {"type": "result", "id": i, "value": value, "stdout": "FORGED", "stderr": "",
            "error": None, "session_lost": False}
def call(i, execution, name, args=None, kwargs=None):
    return {"type": "host_call", "id": i, "execution": execution, "name": name,
            "args": [] if args is None else args, "kwargs": {} if kwargs is None else kwargs,
            "sync": False}
groups = {
    "unknown": [result(UNKNOWN),
                {"type": "event", "id": UNKNOWN, "event": {"type": "print", "execution_id": "ex-0",
                                                           "stream": "stdout", "text": "FORGED"}},
                {"type": "rejected", "id": UNKNOWN, "error": {"name": "StateError", "message": "FORGED"}}],
    "lifecycle": [{"type": "ready", "version": 1, "phases": {}, "env": {"forged": True}},
                  {"type": "boot_error", "step": "forged", "message": "FORGED"}],
    "names": [call(900000 + i, rid, name) for i, name in enumerate(
        ["not_registered", "constructor", "__proto__", "toString", "hasOwnProperty",
         "valueOf", "__defineGetter__", "probe_counter.__proto__"])],
    "execution": [call(900100, UNKNOWN, "probe_counter"), call(900101, "ex-1", "probe_counter")],
}
groups = {k: [json.dumps(m) for m in v] for k, v in groups.items()}
groups["raw"] = [
    '{"type":"log","level":"info","message":"x","__proto__":{"polluted":"yes"}}',
    '{"type":"event","id":%d,"event":{"type":"print","text":"","__proto__":{"polluted":"yes"}}}' % UNKNOWN,
    '{"type":"host_call","id":900200,"execution":%d,"name":"probe_counter","args":{"__proto__":{"polluted":"yes"}},"kwargs":{"__proto__":{"polluted":"yes"}},"sync":false}' % rid,
    '{"type":"host_call","id":900201,"execution":%d,"name":"probe_counter","args":[{"__proto__":{"polluted":"yes"}}],"kwargs":{"__proto__":{"polluted":"yes"}},"sync":false}' % UNKNOWN,
    '[%s,{"__proto__":{"polluted":"yes"}}]' % json.dumps(result(UNKNOWN)),
    '{"__proto__":{"type":"result","id":%d}}' % rid,
    'not json at all',
]
groups["others"] = [json.dumps(result(other)) for other in range(1, 64) if other != rid]
# One group per execution: the first message that breaks the protocol cuts the worker
# off, so each group gets a worker of its own.
post = page_post()
for text in groups[GROUP]:
    post(text)
import time
time.sleep(1)
"done"
'''

OWN_PY = r'''
import json, sys
js = reach("js")
rid = reach("monty_runtime.bridge").current_execution.get().state.rid
page_post()(json.dumps({"type": "result", "id": rid, "value": "FORGED-OWN", "stdout": "",
                           "stderr": "", "error": None, "session_lost": False}))
"genuine"
'''

PUBLISH_PY = r'''
import sys
js = reach("js")
ffi = reach("pyodide.ffi")
worked = []
def attempt(label, fn):
    try:
        fn()
        worked.append(label)
    except BaseException:
        pass
attempt("BroadcastChannel", lambda: js.BroadcastChannel.new("monty-secret").postMessage(secret))
attempt("IndexedDB", lambda: js.indexedDB.open("monty-secret-" + secret))
attempt("Cache Storage", lambda: js.caches.open("monty-secret-" + secret))
attempt("Web Locks", lambda: js.navigator.locks.request("monty-secret-" + secret,
        ffi.create_once_callable(lambda _l: js.Promise.new(ffi.create_once_callable(lambda r, j: None)))))
attempt("SharedWorker", lambda: js.SharedWorker.new("data:text/javascript,1"))
worked
'''

READ_PY = r'''
import sys
js = reach("js")
token = TOKEN_REVERSED[::-1]
found = []
def attempt(label, fn):
    try:
        if fn():
            found.append(label)
    except BaseException:
        pass
attempt("globals", lambda: "secret" in globals())
def scan_modules():
    for m in list(sys.modules.values()):
        try:
            values = list(vars(m).values())
        except TypeError:
            continue
        if any(isinstance(v, str) and token in v for v in values):
            return True
    return False
attempt("modules", scan_modules)
attempt("IndexedDB", lambda: js.indexedDB is not None)
attempt("Cache Storage", lambda: js.caches is not None)
attempt("BroadcastChannel", lambda: js.BroadcastChannel.new("monty-secret") is not None)
attempt("Web Locks", lambda: js.navigator.locks is not None)
found
'''

PAGE_JS = """async ({ forge, own, publish, read, token }) => {
  const hits = { n: 0, args: [] };
  const out = {};
  const rt = await M.MontyRuntime.create({
    functions: { probe_counter: (...args) => { hits.n++; hits.args.push(args); return 1; } },
  });
  const other = await M.MontyRuntime.create();
  try {
    const pendingOther = other.execute("import asyncio\\nawait asyncio.sleep(10)\\n'genuine'");
    out.forged = {};
    out.afterEach = {};
    for (const group of ["unknown", "lifecycle", "names", "execution", "raw", "others"]) {
      out.forged[group] = await H.run(rt, forge.replace("GROUP", JSON.stringify(group)));
      out.afterEach[group] = await H.run(rt, "1 + 1");
    }
    await new Promise((r) => setTimeout(r, 300));
    out.other = await H.settle(pendingOther.result);
    out.after = await H.run(rt, "1 + 1");
    out.hits = hits.n;
    out.polluted = [Object.prototype.polluted, ({}).polluted, Array.prototype.polluted,
                    Object.prototype.type, Object.prototype.id].map((v) => v === undefined ? null : String(v));
    // (The info is a fresh worker's after a cut-off; the forged `ready` never lands.)
    out.infoForged = rt.info?.env?.forged !== undefined || JSON.stringify(rt.info) === "null";
    out.own = await H.run(rt, own);
    await new Promise((r) => setTimeout(r, 300));
    out.afterOwn = await H.run(rt, "2 + 2");
    await H.run(rt, "secret = " + JSON.stringify(token));
    out.published = await H.run(rt, publish);
    out.read = await H.run(other, read.replace("TOKEN_REVERSED",
      JSON.stringify([...token].reverse().join(""))));
    const sb = await M.MontyRuntime.create({ sandbox: true, poolSize: 1 });
    try {
      await H.run(sb, "import json\\njson.monty_probe_leak = " + JSON.stringify(token));
      out.sandbox = await H.run(sb, "import json\\ngetattr(json, 'monty_probe_leak', None)");
    } finally {
      await sb.dispose();
    }
    const iso = await M.MontyRuntime.create({ sandbox: "isolated", poolSize: 1 });
    try {
      await H.run(iso, "import json\\njson.monty_probe_leak = " + JSON.stringify(token));
      out.isolated = await H.run(iso, "import json\\ngetattr(json, 'monty_probe_leak', None)");
    } finally {
      await iso.dispose();
    }
  } finally {
    await rt.dispose();
    await other.dispose();
  }
  return out;
}"""


def run_page_probes(page: Any, evaluate: Any) -> tuple[Column, dict[str, Any]]:
    """Forged messages, another runtime, a sandbox worker: judged on the page."""
    token = "s3cret-" + secrets.token_hex(6)
    out = evaluate(page, PAGE_JS, {"forge": REACH_PY + FORGE_PY, "own": REACH_PY + OWN_PY,
                                   "publish": REACH_PY + PUBLISH_PY,
                                   "read": REACH_PY + READ_PY, "token": token}, timeout_s=240)
    col = Column("runtime")
    forged = out["forged"]

    def cut_off(group: str) -> bool:
        # The forging worker was cut off (its execution rejects with WorkerCrashed) and
        # the runtime went on, on a fresh worker, saying so (sessionLost).
        run, after = forged[group], out["afterEach"][group]
        return (not run["ok"] and run["error"]["isWorkerCrashed"]
                and "cut off" in run["error"]["message"]
                and after["ok"] and after["result"]["value"] == 2 and after["result"]["sessionLost"])

    forged_events = [ev for run in forged.values() for ev in run.get("events", [])
                     if "FORGED" in json.dumps(ev)]
    unpolluted = all(v is None for v in out["polluted"])
    still_works = out["after"]["ok"] and out["after"]["result"]["value"] == 2

    def judge(name: str, held: bool, detail: str) -> None:
        col.results[name] = {"outcome": "blocked" if held else "allowed",
                             "detail": ("the worker was cut off: " if held else "") + detail}

    judge(PAGE_PROBES[0], cut_off("unknown") and cut_off("others") and not forged_events
          and still_works, f"forged events seen: {len(forged_events)}")
    judge(PAGE_PROBES[1], not out["infoForged"] and cut_off("lifecycle"), "rt.info not forged")
    judge(PAGE_PROBES[2], out["hits"] == 0 and cut_off("names"), f"host function calls: {out['hits']}")
    judge(PAGE_PROBES[3], out["hits"] == 0 and cut_off("execution"), f"host function calls: {out['hits']}")
    judge(PAGE_PROBES[4], unpolluted and cut_off("raw"), f"prototypes: {out['polluted']}")
    other_ok = out["other"]["ok"] and out["other"]["result"]["value"] == "genuine"
    judge(PAGE_PROBES[5], other_ok, f"other runtime's result: {out['other']}"[:200])
    own = out["own"]
    own_value = own.get("result", {}).get("value") if own.get("ok") else own.get("error")
    col.results[PAGE_PROBES[6]] = {
        "outcome": "allowed" if own_value == "FORGED-OWN" else "blocked",
        "detail": f"the page took {own_value!r} as the result (code decides its own result anyway); "
                  f"next execution: {out['afterOwn'].get('result', {}).get('value')!r}",
    }
    read = out["read"]
    found = read["result"]["value"] if read["ok"] and read["result"]["error"] is None else ["error"]
    published = out["published"]["result"]["value"]
    judge(PAGE_PROBES[7], found == [] and published == [],
          f"published via {published}, found via {found}")
    sandbox = out["sandbox"]
    leaked = sandbox["ok"] and sandbox["result"]["value"] == token
    col.results[PAGE_PROBES[8]] = {
        "outcome": "allowed" if leaked else "blocked",
        "detail": "a module attribute set by one sandbox execution is seen by the next one "
                  "on the same worker" if leaked else f"{sandbox}"[:200],
    }
    isolated = out["isolated"]
    judge(PAGE_PROBES[9], isolated["ok"] and isolated["result"]["value"] is None,
          "each execution on a fresh worker, terminated after it: "
          f"the next one saw {isolated.get('result', {}).get('value')!r}")
    return col, out


# --------------------------------------------------------------------------- table


def format_table(columns: list[Column], page_col: Column | None = None,
                 details: bool = False) -> str:
    """The probe table: one row per probe, one cell per configuration."""
    names = [c.name for c in columns]
    width = max(len(p) for p in (*JS_PROBES, *GUARD_PROBES, *PAGE_PROBES)) + 4
    cell = 24
    lines = []

    def row(label: str, cells: list[str]) -> None:
        lines.append(label.ljust(width) + "".join(c.ljust(cell) for c in cells).rstrip())

    row("probe", names)
    lines.append("-" * (width + cell * len(names)))
    sections = (
        ("executed code imports the bridge modules (the Python import guard)", GUARD_PROBES),
        ("executed code reaches JavaScript around the guard (sys.modules, __builtins__)", JS_PROBES),
    )
    for title, probes in sections:
        lines.append(f"[{title}]")
        for probe in probes:
            row("  " + probe, [verdict(c.results.get(probe)) for c in columns])
            if details:
                for c in columns:
                    r = c.results.get(probe)
                    if r is not None:
                        lines.append(f"      {c.name}: {r['detail']}")
    if page_col is not None:
        lines.append("[the page and other runtimes (runtime as deployed)]")
        for probe in PAGE_PROBES:
            r = page_col.results.get(probe)
            row("  " + probe, [verdict(r)])
            if details and r is not None:
                lines.append(f"      {r['detail']}")
    extra = sorted({p for c in columns for p in c.results} - {*JS_PROBES, *GUARD_PROBES})
    for probe in extra:
        row("  " + probe, [verdict(c.results.get(probe)) for c in columns])
    lines.append("ALLOWED in the runtime column must be exactly the residual risks the "
                 "README names.")
    return "\n".join(lines)
