"""The browser backend end to end: web/monty-runtime.js -> worker.js -> Pyodide ->
monty_runtime.worker -> the shared PlatformBridge.

Every test runs twice, with the dev server cross-origin isolated and not (the
``server`` fixture).  Waits are on events and promises, each with a deadline enforced in
the page (``runtime_page.evaluate``), never on sleeps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import re
from typing import Any

import pytest
from support.runtime_page import evaluate, no_shared_memory_reason, open_runtime_page, shared_memory

from monty_runtime import MontyRuntime, codec

BUSY = "Bridge is already executing"


@pytest.fixture
def rpage(page: Any, server: Any) -> Any:
    return open_runtime_page(page, server)


def isolated(rpage: Any) -> bool:
    """Shared memory here (cross-origin isolated with SharedArrayBuffer): the isolated
    paths. WebKitGTK 2.50 is cross-origin isolated without SharedArrayBuffer."""
    return shared_memory(rpage)


# ------------------------------------------------------------------------ state and mode


def test_state_persists_in_shared_mode_and_not_in_sandbox(rpage: Any) -> None:
    out = evaluate(rpage, """async () => {
      const shared = await M.MontyRuntime.create();
      const a = await H.run(shared, "x = 41");
      const b = await H.run(shared, "x + 1");
      const env = shared.info.env;
      await shared.dispose();
      const sandbox = await M.MontyRuntime.create({ sandbox: true, poolSize: 1 });
      const c = await H.run(sandbox, "x = 41\\nx");
      const d = await H.run(sandbox, "x");
      await sandbox.dispose();
      return { a, b, c, d, env };
    }""", timeout_s=120)
    assert out["a"]["ok"] and out["a"]["result"]["value"] is None
    assert out["b"]["result"]["value"] == 42
    assert out["b"]["result"]["error"] is None
    assert out["c"]["result"]["value"] == 41
    assert out["d"]["result"]["error"]["type"] == "NameError"
    assert out["env"]["crossOriginIsolated"] == rpage.evaluate("self.crossOriginIsolated")
    assert out["env"]["syncBuffer"] == isolated(rpage)


@pytest.mark.engine_paths
def test_events_and_result_shape(rpage: Any) -> None:
    out = evaluate(rpage, """async () => {
      const rt = await M.MontyRuntime.create();
      const seen = [];
      rt.onEvent((ev) => seen.push(ev.type));
      const ok = await H.run(rt,
        "import sys\\nprint('a')\\nprint('b', file=sys.stderr)\\n(1, 'x', 2**70)");
      const bad = await H.run(rt, "def f():\\n    return 1/0\\nf()");
      await rt.dispose();
      return { ok, bad, seen };
    }""", timeout_s=120)
    ok = out["ok"]
    types = [e["type"] for e in ok["events"]]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    assert ok["executionId"] == ok["events"][0]["execution_id"]
    prints = [(e["stream"], e["text"]) for e in ok["events"] if e["type"] == "print"]
    assert prints == [("stdout", "a\n"), ("stderr", "b\n")]
    assert ok["result"]["value"] == {"$tuple": [1, "x", {"$int": str(2**70)}]}
    assert ok["result"]["stdout"] == "a\n" and ok["result"]["stderr"] == "b\n"
    assert ok["result"]["sessionLost"] is False and ok["result"]["session_lost"] is False
    bad = out["bad"]
    assert bad["ok"], "a Python exception must not reject the result"
    err = bad["result"]["error"]
    assert err["type"] == "ZeroDivisionError" and err["lineno"] == 2
    assert 'File "main.py", line 3' in err["traceback"]
    assert bad["events"][-1]["type"] == "run_error"
    assert out["seen"].count("run_started") == 2


# ------------------------------------------------------------------- serial in a worker

SERIAL_JS = """async ({ n, spanMs, seed }) => {
  let s = seed >>> 0;
  const rand = () => {  // mulberry32
    s = (s + 0x6D2B79F5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  window.__gate = H.deferred();
  const rt = await M.MontyRuntime.create({ functions: {
    slow: { fn: async (ms) => { await sleep(ms); return ms; },
            parameters: { type: "object", properties: { ms: { type: "integer" } },
                          required: ["ms"] } },
    gate: async () => window.__gate.promise,
  } });
  const head = "import time, asyncio\\n_t0 = time.perf_counter()\\n";
  const tail = "\\n[_t0, time.perf_counter()]";
  const kinds = {
    await_host: head + "v = await slow(25)" + tail,
    sync_host: head + "v = slow(25)" + tail,
    sleep: head + "await asyncio.sleep(0.03)" + tail,
    gather: head + "v = await asyncio.gather(slow(10), slow(20), asyncio.sleep(0.01))" + tail,
    cpu: head + "acc = 0\\nfor i in range(150000):\\n    acc += i" + tail,
  };
  const names = Object.keys(kinds);

  // 1. Deterministic: while an execution is certainly in flight (awaiting a host call
  //    the page holds back), every other execute is refused by the bridge.
  const overlapped = {};
  for (const style of ["v = await gate()", "v = gate()"]) {
    window.__gate = H.deferred();
    const first = rt.execute(head + style + tail);
    await H.waitEvent(first, (ev) => ev.type === "call_started");
    const others = names.map((k) => rt.execute(kinds[k]).result);
    const settled = [];
    for (const p of others) settled.push(await H.settle(p));
    window.__gate.resolve(7);
    overlapped[style] = { first: await H.settle(first.result), others: settled };
  }

  // 2. Stress: n executes of mixed kinds fired at random moments over spanMs.
  const fired = [];
  for (let i = 0; i < n; i++) {
    const kind = names[Math.floor(rand() * names.length)];
    const at = rand() * spanMs;
    fired.push(sleep(at).then(() => H.settle(rt.execute(kinds[kind]).result))
      .then((r) => ({ kind, ...r })));
  }
  const outcomes = await Promise.all(fired);
  const after = await H.settle(rt.execute("1 + 1").result);
  await rt.dispose();
  return { overlapped, outcomes, after };
}"""


def test_serial_within_one_worker(rpage: Any) -> None:
    n = 60
    out = evaluate(rpage, SERIAL_JS, {"n": n, "spanMs": 1500, "seed": 1234}, timeout_s=180)

    for style, got in out["overlapped"].items():
        assert got["first"]["ok"], (style, got["first"])
        for other in got["others"]:
            assert not other["ok"], (style, other)
            assert other["error"]["isStateError"] and other["error"]["name"] == "StateError"
            assert other["error"]["message"] == BUSY and other["error"]["reason"] == "busy"

    outcomes = out["outcomes"]
    assert len(outcomes) == n, "an execute() was lost"
    intervals = []
    refused = 0
    for o in outcomes:
        if o["ok"]:
            assert o["result"]["error"] is None, o
            intervals.append(tuple(o["result"]["value"]))
        else:
            assert o["error"]["name"] == "StateError" and o["error"]["message"] == BUSY, o
            refused += 1
    assert intervals, "no execution succeeded"
    intervals.sort()
    for (s1, e1), (s2, e2) in itertools.pairwise(intervals):
        assert s1 <= e1 <= s2 <= e2, f"executions overlapped: {(s1, e1)} and {(s2, e2)}"
    print(f"serial stress: {len(intervals)} ran, {refused} refused with StateError")
    assert out["after"]["ok"] and out["after"]["result"]["value"] == 2


# ------------------------------------------------------------ parallel across workers

PARALLEL_JS = """async ({ n }) => {
  const [a, b] = await Promise.all([M.MontyRuntime.create(), M.MontyRuntime.create()]);
  // A spins in a CPU-bound loop that never yields to anything: no await, no host call.
  const spin = a.execute("import time\\n_t0 = time.time()\\nspins = 0\\n" +
                         "while True:\\n    spins += 1");
  let spinSettled = false;
  const spinResult = spin.result.then((r) => { spinSettled = true; return r; },
                                      (e) => { spinSettled = true; throw e; });
  await H.waitEvent(spin, (ev) => ev.type === "run_started");
  // While A spins, B runs CPU-bound programs of its own to completion, over and over.
  const runs = [];
  for (let k = 0; k < 3; k++) {
    const r = await H.settle(b.execute("import time\\n_t0 = time.time()\\nacc = 0\\n" +
                              "for i in range(" + n + "):\\n    acc += i * i\\n[_t0, time.time(), acc]").result);
    runs.push({ ...r, spinStillRunning: !spinSettled });
  }
  const stopAt = Date.now() / 1000;
  spin.interrupt();
  const stopped = await H.settle(spinResult);
  const spins = await H.settle(a.execute("spins").result);
  await Promise.all([a.dispose(), b.dispose()]);
  return { runs, stopAt, stopped, spins };
}"""


@pytest.mark.engine_paths
def test_parallel_across_workers(rpage: Any) -> None:
    """Two runtimes are two interpreters on two threads: one worker's CPU-bound loop,
    which never yields, does not stop the other worker's CPU-bound code from running
    to completion. (How much faster two workers are than one is a benchmark figure:
    ``benchmarks/browser.py``, two-worker CPU speedup.)"""
    n = 200_000
    out = evaluate(rpage, PARALLEL_JS, {"n": n}, timeout_s=240)
    expected = sum(i * i for i in range(n))
    for run in out["runs"]:
        assert run["ok"] and run["result"]["error"] is None, run
        t0, t1, acc = run["result"]["value"]
        assert acc == expected
        # Settled while A's loop was still spinning: B made progress alongside it.
        assert run["spinStillRunning"], run
        assert t0 <= t1 <= out["stopAt"] + 0.05
    stopped = out["stopped"]
    assert stopped["ok"], stopped
    assert stopped["result"]["error"]["type"] == "KeyboardInterrupt", stopped
    if isolated(rpage):
        # Interrupted between two bytecodes, globals kept: A was really spinning.
        assert stopped["result"]["sessionLost"] is False
        assert out["spins"]["result"]["value"] > 0, out["spins"]
    else:
        # Without isolation a CPU-bound loop is stopped by replacing the worker.
        assert stopped["result"]["sessionLost"] is True
        assert out["spins"]["result"]["error"]["type"] == "NameError", out["spins"]


def test_sandbox_pool_runs_parallel_executes(rpage: Any) -> None:
    out = evaluate(rpage, """async () => {
      const rt = await M.MontyRuntime.create({ sandbox: true, poolSize: 2,
        functions: { twice: async (x) => 2 * x } });
      const codes = [];
      for (let i = 0; i < 8; i++) {
        codes.push(i % 2
          ? "import asyncio\\nawait asyncio.sleep(0.05)\\nx = " + i +
            "\\na = twice(x)\\n[a, await twice(x)]"
          : "x = " + i + "\\nacc = 0\\nfor k in range(100000):\\n    acc += k\\n[twice(x), x]");
      }
      const results = await Promise.all(codes.map((c) => H.settle(rt.execute(c).result)));
      const leftover = await H.settle(rt.execute("x").result);
      const workers = rt.workerCount;
      await rt.dispose();
      return { results, leftover, workers };
    }""", timeout_s=180)
    for i, r in enumerate(out["results"]):
        assert r["ok"], r
        assert r["result"]["error"] is None, r
        assert r["result"]["value"] == ([2 * i, 2 * i] if i % 2 else [2 * i, i])
    assert out["leftover"]["result"]["error"]["type"] == "NameError"
    assert out["workers"] in (1, 2)


def test_inputs_are_bound_as_values(rpage: Any) -> None:
    """``execute(code, {inputs})``, as ``inputs=`` natively: names bound before the code
    runs, values through the codec (exact big ints, bytes, maps with any keys)."""
    out = evaluate(rpage, """async () => {
      const shared = await M.MontyRuntime.create();
      const sandbox = await M.MontyRuntime.create({ sandbox: true, poolSize: 1 });
      const inputs = { n: 10n ** 30n, data: [1, 2.5, "x", null, true],
                       raw: new Uint8Array([0, 255]), m: new Map([[1, "one"]]),
                       café: "é", a\u00b7b: 3, nested: { deep: [[{ k: -0 }]] } };
      const code = "[type(n).__name__, n + 1, data, raw, m[1], café, a\u00b7b, nested]";
      const r = { bad: [] };
      for (const bad of [[1], "x", 5, new Date(0), { "1x": 1 }, { "a-b": 1 }, { "": 1 },
                         { "\u2e2f": 1 }, { "$x": 1 }]) {
        r.bad.push(H.throws(() => shared.execute("1", { inputs: bad })));
      }
      r.sharedRun = await H.run(shared, code, { inputs });
      r.kept = await H.run(shared, "n % 7");
      r.sandboxRun = await H.run(sandbox, code, { inputs });
      r.sandboxGone = await H.run(sandbox, "n");
      r.overrides = await H.run(shared, "n", { inputs: { n: "new" } });
      r.empty = await H.run(shared, "n", { inputs: {} });
      await shared.dispose();
      await sandbox.dispose();
      return r;
    }""", timeout_s=120)
    assert len(out["bad"]) == 9
    for err in out["bad"]:
        assert err is not None and err["name"] == "TypeError", out["bad"]
        assert "Python identifiers" in err["message"]
    expected = ["int", {"$int": str(10**30 + 1)}, [1, 2.5, "x", None, True],
                {"$bytes": "AP8="}, "one", "é", 3, {"deep": [[{"k": 0}]]}]
    for key in ("sharedRun", "sandboxRun"):
        res = out[key]["result"]
        assert res["error"] is None, res
        assert res["value"] == expected, res
    assert out["kept"]["result"]["value"] == 10**30 % 7
    assert out["sandboxGone"]["result"]["error"]["type"] == "NameError"
    assert out["overrides"]["result"]["value"] == "new"
    assert out["empty"]["result"]["value"] == "new"


# ------------------------------------------------------------------------ host calls

HOST_JS = """async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  let inFlight = 0, maxInFlight = 0;
  class QuotaError extends Error { constructor(m) { super(m); this.name = "QuotaError"; } }
  const rt = await M.MontyRuntime.create({ functions: {
    add: (a, b) => a + b,
    aadd: async (a, b) => { await sleep(5); return a + b; },
    kw: { fn: (a, b, c) => [a, b, c], parameters: { type: "object",
          properties: { a: { type: "integer" }, b: {}, c: {} }, required: ["a"] } },
    typed: { fn: (n) => n, parameters: { type: "object",
             properties: { n: { type: "integer" } }, required: ["n"] } },
    open: { fn: (...args) => args, parameters: null },
    js_type_error: () => { null.x; },
    js_custom: async () => { throw new QuotaError("over quota"); },
    js_value_error: () => { const e = new Error("bad value"); e.name = "ValueError"; throw e; },
    slow: async (ms) => { inFlight++; maxInFlight = Math.max(maxInFlight, inFlight);
                          await sleep(ms); inFlight--; return ms; },
    "ns.ping": () => "pong",
  } });
  const r = {};
  r.sync_style = await H.run(rt, "x = add(1, 2)\\ny = aadd(3, 4)\\n[x, y, ns.ping()]");
  r.async_style = await H.run(rt, "x = await add(1, 2)\\ny = await aadd(3, 4)\\n[x, y]");
  r.kwargs = await H.run(rt, "[kw(1, c=3), kw(a=5, b=6), open(1, z=2)]");
  r.schema = await H.run(rt,
    "try:\\n    typed('x')\\nexcept TypeError as e:\\n    msg = str(e)\\nmsg");
  r.errors = await H.run(rt, [
    "out = []",
    // awaited: a sync-style call below a cell's top level needs JSPI or shared memory
    // (test_sync_style_fallbacks), which not every engine has; this is about the errors.
    "for f in (js_type_error, js_custom, js_value_error):",
    "    try:",
    "        await f()",
    "    except Exception as e:",
    "        out.append([type(e).__name__, getattr(e, 'type', None), str(e)])",
    "out",
  ].join("\\n"));
  r.uncaught = await H.run(rt, "v = await js_custom()");
  r.python_error = await H.run(rt, "x = add(1, 2)\\n[][x]");
  const t0 = performance.now();
  r.gather = await H.run(rt,
    "import asyncio\\nawait asyncio.gather(*[slow(300) for _ in range(5)])");
  r.gatherMs = performance.now() - t0;
  r.maxInFlight = maxInFlight;
  // The engine's own message for the same JavaScript error (each engine words it its way).
  try { null.x; } catch (err) { r.nullMessage = err.message; }
  await rt.dispose();
  return r;
}"""


@pytest.mark.engine_paths
def test_host_calls(rpage: Any) -> None:
    r = evaluate(rpage, HOST_JS, timeout_s=120)
    assert r["sync_style"]["result"]["value"] == [3, 7, "pong"], r["sync_style"]
    assert r["async_style"]["result"]["value"] == [3, 7]
    calls = [e for e in r["sync_style"]["events"] if e["type"].startswith("call_")]
    assert [(e["type"], e["name"]) for e in calls] == [
        ("call_started", "add"), ("call_finished", "add"),
        ("call_started", "aadd"), ("call_finished", "aadd"),
        ("call_started", "ns.ping"), ("call_finished", "ns.ping"),
    ]
    assert calls[1]["result"] == 3
    assert r["kwargs"]["result"]["value"] == [[1, None, 3], [5, 6, None], [1, {"z": 2}]]
    assert "typed() argument 'n' must be integer" in r["schema"]["result"]["value"]
    assert r["errors"]["result"]["value"] == [
        ["TypeError", None, r["nullMessage"]],
        ["HostError", "QuotaError", "over quota"],
        ["ValueError", None, "bad value"],
    ]
    err = r["uncaught"]["result"]["error"]
    assert err["type"] == "QuotaError" and err["message"] == "over quota"
    finished = [e for e in r["uncaught"]["events"] if e["type"] == "call_finished"]
    assert finished[0]["error"] == {"type": "QuotaError", "message": "over quota"}
    assert r["python_error"]["result"]["error"]["type"] == "IndexError"
    # asyncio.gather over host calls: they run at the same time in the page.
    assert r["gather"]["result"]["value"] == [300] * 5
    assert r["maxInFlight"] == 5
    assert r["gatherMs"] < 5 * 300, r["gatherMs"]  # faster than one after another


@pytest.mark.engine_paths
def test_sync_style_fallbacks(rpage: Any) -> None:
    """Without JSPI: Atomics.wait when cross-origin isolated (answers larger than the
    shared buffer arrive in chunks), else a TypeError that says to await."""
    out = evaluate(rpage, """async () => {
      const fns = { big: (n) => "é".repeat(n), add: (a, b) => a + b,
                    never: () => new Promise(() => {}) };
      const atomics = await M.MontyRuntime.create({
        sync: "atomics", syncBufferBytes: 1024, functions: fns });
      const a = await H.run(atomics, "s = big(5000)\\nt = add(2, 3)\\n[len(s), t, await add(1, 1)]");
      let stuck = null;
      if (self.crossOriginIsolated) {
        // The worker is blocked in Atomics.wait: the page answers the call with an interrupt.
        const h = atomics.execute("never()");
        await H.waitEvent(h, (ev) => ev.type === "call_started");
        atomics.interrupt();
        stuck = await H.settle(h.result);
      }
      await atomics.dispose();
      const none = await M.MontyRuntime.create({ sync: "none", functions: fns });
      const b = await H.run(none, "x = add(1, 2)");
      const c = await H.run(none, "x = await add(1, 2)\\nx");
      await none.dispose();
      return { a, b, c, stuck };
    }""", timeout_s=120)
    if isolated(rpage):
        assert out["a"]["result"]["value"] == [5000, 5, 2], out["a"]
        assert out["stuck"]["result"]["error"]["type"] == "KeyboardInterrupt"
    else:
        err = out["a"]["result"]["error"]
        assert err["type"] == "TypeError" and no_shared_memory_reason(rpage) in err["message"]
        assert "await big(...)" in err["message"]
    err = out["b"]["result"]["error"]
    assert err["type"] == "TypeError" and "use `await add(...)`" in err["message"]
    assert out["c"]["result"]["value"] == 3


@pytest.mark.engine_paths
def test_interrupt_timeout_and_dispose(rpage: Any) -> None:
    out = evaluate(rpage, """async () => {
      const rt = await M.MontyRuntime.create({ functions: { never: () => new Promise(() => {}) } });
      const r = {};
      r.timeout = await H.run(rt, "y = 5\\nimport asyncio\\nawait asyncio.sleep(30)",
        { limits: { timeout: 0.3 } });
      let h = rt.execute("never()");
      await H.waitEvent(h, (ev) => ev.type === "call_started");
      rt.interrupt();
      r.interruptSync = await H.settle(h.result);
      h = rt.execute("await never()");
      await H.waitEvent(h, (ev) => ev.type === "call_started");
      h.interrupt();
      r.interruptAsync = await H.settle(h.result);
      r.kept = await H.settle(rt.execute("y").result);
      h = rt.execute("await never()");
      await H.waitEvent(h, (ev) => ev.type === "call_started");
      const disposing = rt.dispose();
      r.disposed = await H.settle(h.result);
      await disposing;
      r.afterDispose = H.throws(() => rt.execute("1"));
      return r;
    }""", timeout_s=120)
    assert out["timeout"]["result"]["error"]["type"] == "TimeoutError"
    assert out["timeout"]["result"]["error"]["lineno"] == 3
    assert out["interruptSync"]["result"]["error"]["type"] == "KeyboardInterrupt"
    assert out["interruptAsync"]["result"]["error"]["type"] == "KeyboardInterrupt"
    assert out["kept"]["result"]["value"] == 5, "an interrupt must keep the REPL's state"
    assert out["disposed"]["error"]["isStateError"]
    assert out["disposed"]["error"]["message"] == "MontyRuntime has been disposed"
    assert out["afterDispose"]["name"] == "StateError"


def test_cpu_bound_code_past_its_timeout_loses_the_worker_not_the_caller(rpage: Any) -> None:
    """Code the worker cannot interrupt (time.sleep blocks Pyodide's thread) is abandoned
    after timeout + grace: the worker is replaced, the result says TimeoutError and
    sessionLost, nothing hangs.  (A CPU-bound loop is interrupted in place when the page
    is cross-origin isolated: tests/browser/test_control.py.)"""
    out = evaluate(rpage, """async () => {
      const rt = await M.MontyRuntime.create();
      await rt.execute("x = 1").result;
      const t0 = performance.now();
      const stuck = await H.settle(rt.execute("import time\\ntime.sleep(30)",
        { limits: { timeout: 0.2, grace: 0.2 } }).result);
      const ms = performance.now() - t0;
      const next = await H.settle(rt.execute("x").result);
      const again = await H.settle(rt.execute("y = 2\\ny").result);
      await rt.dispose();
      return { stuck, ms, next, again };
    }""", timeout_s=120)
    err = out["stuck"]["result"]["error"]
    assert err["type"] == "TimeoutError" and out["stuck"]["result"]["sessionLost"] is True
    assert out["ms"] < 10_000
    assert out["next"]["result"]["error"]["type"] == "NameError"
    assert out["again"]["result"]["value"] == 2


def test_handle_interrupt_hits_only_its_execution(rpage: Any) -> None:
    out = evaluate(rpage, """async () => {
      const rt = await M.MontyRuntime.create({ sandbox: true, poolSize: 1, functions: {
        wait: (ms) => new Promise((r) => setTimeout(() => r(ms), ms)) } });
      const a = rt.execute("v = wait(400)\\nv");
      const b = rt.execute("v = await wait(400)\\nv");
      await H.waitEvent(b, (ev) => ev.type === "call_started");
      b.interrupt();
      const [ra, rb] = [await H.settle(a.result), await H.settle(b.result)];
      await rt.dispose();
      return { ra, rb };
    }""", timeout_s=120)
    assert out["ra"]["result"]["value"] == 400 and out["ra"]["result"]["error"] is None
    assert out["rb"]["result"]["error"]["type"] == "KeyboardInterrupt"


@pytest.mark.engine_paths
def test_worker_crash_rejects_pending_and_recovers(rpage: Any) -> None:
    out = evaluate(rpage, """async () => {
      const rt = await M.MontyRuntime.create({ functions: { never: () => new Promise(() => {}) } });
      await rt.execute("x = 1").result;
      // An uncaught error in the worker (a Python exception thrown into a JS timer).
      // (`import js` is refused to executed code; the real __import__ of a library
      // module walks around the guard.)
      const crash = rt.execute([
        "import json",
        "js = vars(json)['__builtins__']['__import__']('js')",
        "create_once_callable = vars(json)['__builtins__']['__import__'](",
        "    'pyodide.ffi', fromlist=['create_once_callable']).create_once_callable",
        "js.setTimeout(create_once_callable(lambda: 1 / 0), 0)",
        "await never()",
      ].join("\\n"));
      const crashed = await H.settle(crash.result);
      const next = await H.settle(rt.execute("x").result);
      const again = await H.settle(rt.execute("1 + 1").result);
      await rt.dispose();
      return { crashed, next, again };
    }""", timeout_s=180)
    assert out["crashed"]["error"]["isWorkerCrashed"], out["crashed"]
    assert out["crashed"]["error"]["name"] == "WorkerCrashed"
    assert "ZeroDivisionError" in out["crashed"]["error"]["message"]
    # A fresh worker took over: the state is gone, and the result says so once.
    assert out["next"]["result"]["error"]["type"] == "NameError"
    assert out["next"]["result"]["sessionLost"] is True
    assert out["again"]["result"]["sessionLost"] is False


# --------------------------------------------------------------------------- bad input


def test_bad_input_gives_typed_errors(rpage: Any) -> None:
    out = evaluate(rpage, """async () => {
      const rt = await M.MontyRuntime.create();
      const r = {};
      r.notString = H.throws(() => rt.execute(42));
      r.undefinedCode = H.throws(() => rt.execute());
      r.tooLong = H.throws(() => rt.execute("#" + "x".repeat(1000000)));
      r.tooLongUtf8 = H.throws(() => rt.execute("#" + "é".repeat(500000)));
      r.atLimit = await H.settle(rt.execute("#" + "x".repeat(999999)).result);
      r.badLimits = H.throws(() => rt.execute("1", { limits: { bogus: 1 } }));
      r.badLimitValue = await H.settle(rt.execute("1", { limits: { timeout: -1 } }).result);
      const raw = async (msg) => {
        try { return { reply: await rt._sendRaw(msg) }; } catch (err) { return H.errorOf(err); }
      };
      r.unknownType = await raw({ type: "bogus", id: 9001 });
      r.missingField = await raw({ type: "execute", id: 9002 });
      r.codeNotString = await raw({ type: "execute", id: 9003, code: 7 });
      r.stillWorks = await H.settle(rt.execute("6 * 7").result);
      r.badName = await M.MontyRuntime.create({ functions: { "not valid": () => 1 } })
        .then(() => null, H.errorOf);
      r.keyword = await M.MontyRuntime.create({ functions: { class: () => 1 } })
        .then(() => null, H.errorOf);
      r.notFn = await M.MontyRuntime.create({ functions: { f: 1 } }).then(() => null, H.errorOf);
      r.badSync = await M.MontyRuntime.create({ sync: "maybe" }).then(() => null, H.errorOf);
      await rt.dispose();
      return r;
    }""", timeout_s=120)
    assert out["notString"]["name"] == "TypeError"
    assert out["undefinedCode"]["name"] == "TypeError"
    assert out["tooLong"]["name"] == "RangeError" and "1000000 bytes" in out["tooLong"]["message"]
    assert out["tooLongUtf8"]["name"] == "RangeError"
    assert out["atLimit"]["ok"] and out["atLimit"]["result"]["error"] is None
    assert out["badLimits"]["name"] == "TypeError"
    assert out["badLimitValue"]["error"]["name"] == "RangeError"
    assert "timeout" in out["badLimitValue"]["error"]["message"]
    assert out["unknownType"]["name"] == "ProtocolError"
    assert "bogus" in out["unknownType"]["message"]
    assert out["missingField"]["name"] == "ProtocolError"
    assert "code" in out["missingField"]["message"]
    assert out["codeNotString"]["name"] == "TypeError"
    assert out["stillWorks"]["result"]["value"] == 42
    for key in ("badName", "keyword", "notFn", "badSync"):
        assert out[key] is not None and out[key]["name"] == "TypeError", (key, out[key])


@pytest.mark.engine_paths
def test_failed_boot_is_a_typed_error(rpage: Any) -> None:
    out = evaluate(rpage, """async () => {
      const t0 = performance.now();
      const lock = await M.MontyRuntime.create({ lockFileURL: "../dist/no-such-lock.json" })
        .then(() => null, H.errorOf);
      const lockMs = performance.now() - t0;
      const worker = await M.MontyRuntime.create({ workerURL: "./no-such-worker.js" })
        .then(() => null, H.errorOf);
      const index = await M.MontyRuntime.create({ indexURL: "../dist/" })
        .then(() => null, H.errorOf);
      return { lock, lockMs, worker, index };
    }""", timeout_s=120)
    assert out["lock"]["isBootError"] and out["lock"]["name"] == "BootError"
    assert out["lock"]["step"] == "lockfile"
    assert "404" in out["lock"]["message"]
    assert out["lockMs"] < 30_000
    assert out["worker"]["isBootError"]
    assert out["index"]["isBootError"] and out["index"]["step"] == "loadPyodide"


# ----------------------------------------------------------- the same as natively


PROGRAM = """import asyncio, sys
print("start")
w = lookup("Paris")
print("got", w["city"], w["temp"])
s = await add(2, b=3)
try:
    fail("nope")
except ValueError as e:
    print("caught", e)
r = await asyncio.gather(add(1, 1), add(2, 2))
print("sum", s, r, file=sys.stderr)
{"w": w, "s": s, "r": r, "t": (1, 2), "big": 2**60, "b": b"\\x00\\xff", "n": None}
"""

PROGRAM_ERROR = """def inner(d):
    return d["missing"]
print("before")
x = add(1, 2)
inner({"k": x})
"""


def _lookup(city: str) -> dict[str, Any]:
    return {"city": city, "temp": 21.5, "tags": ["a", "b"]}


async def _add(a: int, b: int = 0) -> int:
    return a + b


def _fail(msg: str) -> None:
    raise ValueError(msg)


_lookup.__name__ = "lookup"
_add.__name__ = "add"
_fail.__name__ = "fail"


def _run_native(codes: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        rt = MontyRuntime(functions=[_lookup, _add, _fail])
        runs: list[dict[str, Any]] = []
        for code in codes:
            h = rt.execute(code)
            events = [e.to_dict() async for e in h.events]
            res = await h.result
            d = res.to_dict()
            runs.append({"events": events, "result": d})
        schemas = rt.schemas
        rt.dispose()
        return runs, schemas

    # Playwright's sync API owns this thread: run the native runtime in another one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result(timeout=60)


_CARETS = re.compile(r"^[ \t]*[~^]+[ \t~^]*\n", re.MULTILINE)


def _plain_traceback(error: Any) -> Any:
    """Tracebacks without the caret lines, which differ between Python versions (the
    native side may run an older CPython than the browser's Pyodide)."""
    if isinstance(error, dict) and isinstance(error.get("traceback"), str):
        return {**error, "traceback": _CARETS.sub("", error["traceback"])}
    return error


def _normalize(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for ev in events:
        ev = {k: v for k, v in ev.items() if k not in ("execution_id", "call_id", "duration_ms")}
        if "error" in ev:
            ev["error"] = _plain_traceback(ev["error"])
        if out and ev["type"] == "print" and out[-1]["type"] == "print" and (
            out[-1]["stream"] == ev["stream"]
        ):
            out[-1] = {**out[-1], "text": out[-1]["text"] + ev["text"]}
        else:
            out.append(ev)
    return out


def test_same_program_same_results_and_events_as_native(rpage: Any) -> None:
    native, schemas = _run_native([PROGRAM, PROGRAM_ERROR])
    params = {s["name"]: s["parameters"] for s in schemas}
    browser = evaluate(rpage, """async ({ codes, params }) => {
      const rt = await M.MontyRuntime.create({ functions: {
        lookup: { fn: (city) => ({ city, temp: 21.5, tags: ["a", "b"] }),
                  parameters: params.lookup },
        add: { fn: async (a, b = 0) => a + b, parameters: params.add },
        fail: { fn: (msg) => { const e = new Error(msg); e.name = "ValueError"; throw e; },
                parameters: params.fail },
      } });
      const runs = [];
      for (const code of codes) runs.push(await H.run(rt, code));
      await rt.dispose();
      return runs;
    }""", {"codes": [PROGRAM, PROGRAM_ERROR], "params": params}, timeout_s=120)

    for nat, web in zip(native, browser, strict=True):
        assert web["ok"], web
        nres, wres = nat["result"], web["result"]
        for key in ("value", "stdout", "stderr"):
            assert wres[key] == nres[key], (key, wres[key], nres[key])
        assert _plain_traceback(wres["error"]) == _plain_traceback(nres["error"])
        assert wres["session_lost"] == nres["session_lost"]
        nev, wev = _normalize(nat["events"]), _normalize(web["events"])
        for i, (a, b) in enumerate(zip(nev, wev, strict=False)):
            assert b == a, f"event {i} differs:\n native  {a}\n browser {b}"
        assert len(wev) == len(nev)
    assert native[0]["result"]["value"]["big"] == {"$int": str(2**60)}
    assert codec.decode(native[0]["result"]["value"])["t"] == (1, 2)


# --------------------------------------------------------------------------- the page


@pytest.mark.chromium_only("clicks and selectors through Playwright")
def test_index_page_runs_code(page: Any, server: Any) -> None:
    page.goto(server.url + "demos/index.html", wait_until="load")
    page.wait_for_function(
        "document.getElementById('status').textContent.startsWith('ready')", timeout=120_000
    )
    page.click("#run")
    page.wait_for_function(
        "document.getElementById('result').textContent.includes('paris')", timeout=60_000
    )
    assert "hello from Python" in page.text_content("#result")
    assert "run_finished" in page.text_content("#events")
