"""Escape probes, as executed code: what can code running in a worker reach?

This file is not imported by the tests: its source is sent to a worker and run there
(the runtime's worker through ``execute()``, or boot-check's bare Pyodide worker through
``runPython``), then ``probe_start(config_json)`` starts every probe and
``probe_collect()`` returns the outcomes as JSON once nothing is pending.

Every probe gets at the JavaScript side *without* the import statement (``reach()``:
``sys.modules``, or the real ``__import__`` found in any library module's
``__builtins__``), so it tests what stands behind the Python import guard: the APIs
removed from the worker (web/lockdown.js) and the Content-Security-Policy.  The
import guard itself is probed by ``guard_probes()``.  Outcomes are "blocked" or
"allowed" with a detail; the test adds the evidence of the servers (a request that
reached one is "allowed", whatever the code saw).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

_P: dict[str, Any] = {"results": {}, "pending": {}, "keep": []}


def _err(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:240]


def _record(name: str, outcome: str, detail: Any) -> None:
    _P["pending"].pop(name, None)
    if name not in _P["results"]:
        _P["results"][name] = {"outcome": outcome, "detail": str(detail)[:240]}


BYPASS = "object graph walk (sys.modules, a module's __builtins__)"


def reach(name: str) -> Any:
    """A module without the import statement: from ``sys.modules``, else imported with
    the real ``__import__`` taken from a library module's globals."""
    if name not in sys.modules:
        real_import = vars(json)["__builtins__"]["__import__"]
        real_import(name)
    return sys.modules[name]


def _mods() -> tuple[Any, Any, Any]:
    return reach("js"), reach("pyodide.ffi"), reach("pyodide_js")


def _js_error(value: Any) -> str:
    try:
        return f"{value.name}: {value.message}"[:240]
    except Exception:
        return str(value)[:240]


def _attempt(name: str, fn: Any) -> Any:
    """Run fn(); an exception means blocked. Returns fn's value (or None)."""
    try:
        return fn()
    except BaseException as exc:
        _record(name, "blocked", _err(exc))
        return None


def _watch_promise(name: str, make: Any) -> None:
    """A probe whose answer is a JS promise: resolved = allowed, rejected = blocked."""
    _js, ffi, _ = _mods()
    promise = _attempt(name, make)
    if name in _P["results"]:
        return
    _P["pending"][name] = time.monotonic()

    def ok(_value: Any = None) -> None:
        _record(name, "allowed", "the promise resolved")

    def bad(reason: Any = None) -> None:
        _record(name, "blocked", _js_error(reason))

    try:
        promise.then(ffi.create_once_callable(ok), ffi.create_once_callable(bad))
    except BaseException as exc:
        _record(name, "blocked", _err(exc))


def _watch_coroutine(name: str, make: Any) -> None:
    """A probe whose answer is a Python coroutine (pyfetch): run it as a task."""
    coro = _attempt(name, make)
    if name in _P["results"]:
        return
    _P["pending"][name] = time.monotonic()

    async def run() -> None:
        try:
            await coro
        except BaseException as exc:
            _record(name, "blocked", _err(exc))
        else:
            _record(name, "allowed", "the request completed")

    _P["keep"].append(asyncio.ensure_future(run()))


def _watch_events(name: str, make: Any, good: tuple[str, ...], bad: tuple[str, ...]) -> None:
    """A probe answered by events (WebSocket, EventSource, Worker, IDB request)."""
    _js, ffi, _ = _mods()
    target = _attempt(name, make)
    if name in _P["results"]:
        return
    _P["pending"][name] = time.monotonic()
    for event in good:
        setattr(target, f"on{event}", ffi.create_proxy(
            lambda _e, ev=event: _record(name, "allowed", f"{ev} event")))
    for event in bad:
        setattr(target, f"on{event}", ffi.create_proxy(
            lambda e, ev=event: _record(name, "blocked", f"{ev} event" + (
                f" ({_js_error(e.error)})" if getattr(e, "error", None) else ""))))
    _P["keep"].append(target)


def _constructor_probe(name: str, holders: list[tuple[str, Any]]) -> None:
    """Walk .constructor (.constructor) from each reachable JS object and try to build
    a function from a string; any success is an escape."""
    made = []
    refused = []
    for label, get in holders:
        try:
            obj = get()
        except BaseException as exc:
            refused.append(f"{label}: unreachable ({type(exc).__name__})")
            continue
        for path in ("constructor", "constructor.constructor"):
            try:
                ctor = obj
                for part in path.split("."):
                    ctor = getattr(ctor, part)
                fn = ctor("return 1")
                # Object("...") wraps the string; only a function that runs is a win.
                if callable(fn) and fn() == 1:
                    made.append(f"{label}.{path} built and ran a function")
                else:
                    refused.append(f"{label}.{path}: no function ({fn!r:.30})")
            except BaseException as exc:
                refused.append(f"{label}.{path}: {_err(exc)}")
    if made:
        _record(name, "allowed", "; ".join(made))
    else:
        evals = [r for r in refused if "EvalError" in r]
        _record(name, "blocked", f"{len(evals)} EvalError, e.g. {evals[0] if evals else refused[:1]}")


def _hooks() -> Any:
    """The page channel of the runtime, reached by walking Python objects."""
    worker = reach("monty_runtime.worker")
    return worker._session.hooks


def probe_start(config_json: str) -> str:
    """Start every probe. config: {cross, same, token, context}."""
    cfg = json.loads(config_json)
    cross: str = cfg["cross"]  # a URL prefix on another origin (the sink server)
    same: str = cfg["same"]  # a URL prefix on our own origin
    runtime = cfg.get("context") == "runtime"
    js, ffi, pyodide_js = _mods()
    http = reach("pyodide.http")
    code_mod = reach("pyodide.code")

    # -- network ----------------------------------------------------------------------
    _watch_promise("fetch (other origin)", lambda: js.fetch(cross + "fetch"))
    _watch_promise("fetch (same origin)", lambda: js.fetch(same + "fetch"))
    try:  # pyfetch captured `fetch` when it was imported (during the boot): refresh it
        http._pyfetch._jsfetch = js.fetch
    except Exception:
        pass
    _watch_coroutine("pyfetch (other origin)", lambda: http.pyfetch(cross + "pyfetch"))
    _watch_coroutine("pyfetch (same origin)", lambda: http.pyfetch(same + "pyfetch"))

    def xhr(url: str) -> str:
        req = js.XMLHttpRequest.new()
        req.open("GET", url, False)  # synchronous XHR: the answer is here or raised
        req.send()
        return f"status {req.status}"

    for label, url in (("other origin", cross), ("same origin", same)):
        name = f"XMLHttpRequest ({label})"
        got = _attempt(name, lambda u=url: xhr(u + "xhr"))
        if got is not None:
            _record(name, "allowed", got)
    _watch_events("WebSocket", lambda: js.WebSocket.new(cross.replace("http", "ws", 1) + "ws"),
                  ("open",), ("error", "close"))
    _watch_events("EventSource", lambda: js.EventSource.new(cross + "sse"),
                  ("open", "message"), ("error",))

    # -- code loading and string evaluation --------------------------------------------
    _watch_events("nested Worker (same origin)",
                  lambda: js.Worker.new(same + "worker.js", ffi.to_js(
                      {"type": "module"}, dict_converter=js.Object.fromEntries)),
                  ("message",), ("error",))

    def blob_worker() -> Any:
        blob = js.Blob.new(ffi.to_js(["postMessage('alive')"]), ffi.to_js(
            {"type": "text/javascript"}, dict_converter=js.Object.fromEntries))
        return js.Worker.new(js.URL.createObjectURL(blob))

    _watch_events("nested Worker (blob:)", blob_worker, ("message",), ("error",))
    got = _attempt("importScripts", lambda: js.importScripts(same + "import-scripts.js"))
    if "importScripts" not in _P["results"]:
        _record("importScripts", "allowed", f"returned {got!r:.40}")
    for label, url in (("other origin", cross), ("same origin", same)):
        _watch_promise(f"dynamic import() ({label})",
                       lambda u=url: code_mod.run_js(f"import({json.dumps(u + 'import.mjs')})"))
    for name, fn in (
        ("eval", lambda: js.eval("1 + 1")),
        ("Function", lambda: js.Function("return 1")),
        ("pyodide.code.run_js", lambda: code_mod.run_js("1 + 1")),
    ):
        got = _attempt(name, fn)
        if name not in _P["results"]:
            _record(name, "allowed", f"returned {got!r:.40}")
    holders: list[tuple[str, Any]] = [
        ("globalThis", lambda: js),
        ("setTimeout", lambda: js.setTimeout),
        ("a Promise", lambda: js.Promise.resolve(1)),
        ("pyodide.loadPackage (async)", lambda: pyodide_js.loadPackage),
        ("pyodide.FS", lambda: pyodide_js.FS),
    ]
    if runtime:
        holders.append(("the page channel (hooks)", _hooks))
        holders.append(("hooks.post", lambda: _hooks().post))
    _constructor_probe("constructor.constructor", holders)

    # -- the origin's storage and other same-origin contexts ---------------------------
    _watch_events("IndexedDB", lambda: js.indexedDB.open("monty-probe"),
                  ("success", "upgradeneeded"), ("error", "blocked"))
    _watch_promise("Cache Storage", lambda: js.caches.open("monty-probe"))
    bc = _attempt("BroadcastChannel", lambda: js.BroadcastChannel.new("monty-probe"))
    if bc is not None:
        bc.postMessage("hello")
        bc.close()
        _record("BroadcastChannel", "allowed", "created and posted")
    _watch_promise("origin private file system", lambda: js.navigator.storage.getDirectory())
    _watch_promise("Web Locks", lambda: js.navigator.locks.query())
    return json.dumps({"started": len(_P["results"]) + len(_P["pending"])})


async def probe_run(config_json: str, timeout_s: float = 10.0) -> str:
    """Start every probe and wait (inside one execution, so that nothing the probes
    started is cancelled when it ends) until each answered or ``timeout_s`` passed."""
    probe_start(config_json)
    deadline = time.monotonic() + timeout_s
    while _P["pending"] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return probe_collect(0.0)


def probe_collect(wait_s: float = 0.0) -> str:
    """The outcomes so far; ``done`` when nothing is pending (or it waited long enough:
    what is still pending then never answered, which counts as blocked)."""
    now = time.monotonic()
    for name, since in list(_P["pending"].items()):
        if now - since > wait_s:
            _record(name, "blocked", "no answer")
    return json.dumps({"done": not _P["pending"], "results": _P["results"]})


def guard_probes() -> str:
    """The import guard, as executed code meets it (the normal import routes)."""
    attempts = {
        "import js": "import js",
        "import pyodide_js": "import pyodide_js",
        "import pyodide": "import pyodide",
        "from pyodide.ffi import to_js": "from pyodide.ffi import to_js",
        "import pyodide.code": "import pyodide.code",
        "import pyodide.http": "import pyodide.http",
        "import _pyodide": "import _pyodide",
        "import micropip": "import micropip",
        "import monty_runtime.worker": "import monty_runtime.worker",
        "importlib.import_module('js')": "import importlib\nimportlib.import_module('js')",
        "__import__('js')": "__import__('js')",
        "exec('import js', {})": "exec('import js', {})",
        "builtins.__import__('js')": "import builtins\nbuiltins.__import__('js')",
    }
    out = {}
    for label, source in attempts.items():
        try:
            exec(source, {})
        except ImportError as exc:
            out[label] = {"outcome": "blocked", "detail": _err(exc)}
        except BaseException as exc:
            out[label] = {"outcome": "blocked", "detail": _err(exc)}
        else:
            out[label] = {"outcome": "allowed", "detail": "imported"}
    try:
        reached = reach("js")
        out[BYPASS] = {"outcome": "allowed", "detail": f"got {type(reached).__name__}"}
    except BaseException as exc:
        out[BYPASS] = {"outcome": "blocked", "detail": _err(exc)}
    return json.dumps(out)
