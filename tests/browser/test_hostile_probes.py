"""Hostile-code probes: executed code that attacks the page, other runtimes and the
next caller, from the attacker's position (it controls only the Python passed to
``execute()`` and reaches JavaScript around the import guard through
``vars(json)["__builtins__"]["__import__"]``), in both server modes.

Each probe tries the attack and asserts what must hold (README "Security", residual
risks): the page's cost for a runtime's messages is bounded by that runtime's limits
and a runtime over them is cut off (WorkerCrashed, then sessionLost) without freezing
the page; a poisoned control buffer never makes interrupt() or execute() throw; the
page checks forged host calls against the schema; a sync host-call answer is never
delivered to another call; nothing the worker's lock-down did not list is reachable;
background callbacks stop with their execution; a replaced ``self.onmessage`` does not
see a later sandbox execution's inputs.

The tests drive the page only through ``page.evaluate`` and in-page JavaScript (no
Playwright event hooks), so the same fixture can drive every engine.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import RunningServer
from support.escape_probes import REACH_PY
from support.runtime_page import evaluate, open_runtime_page

# Every engine of the matrix, in both server modes (docs/engines.md).
pytestmark = [pytest.mark.engine_paths, pytest.mark.webkit_paths]

# Measures the page's freeze while `fn` runs: the longest gap of a 5 ms page timer (any
# engine; on a busy machine it also counts time the page's thread was not scheduled) and,
# where the engine reports them (Chromium), the page's long tasks (over 50 ms).
GAP_JS = """() => {
window.gapWhile = async (fn) => {
  let last = performance.now(), maxGap = 0;
  const tasks = [];
  const types = PerformanceObserver.supportedEntryTypes ?? [];
  const observer = types.includes("longtask")
    ? new PerformanceObserver((list) => { for (const e of list.getEntries()) tasks.push(e.duration); })
    : null;
  observer?.observe({ type: "longtask" });
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 5);
  try {
    const value = await fn();
    await new Promise((resolve) => setTimeout(resolve, 100)); // long tasks are reported late
    return { value, maxGap: Math.max(maxGap, performance.now() - last),
             longTask: observer === null ? null : Math.max(0, ...tasks) };
  } finally {
    clearInterval(timer);
    observer?.disconnect();
  }
};
return true;
}"""

FLOOD_PY = REACH_PY + r'''
post = page_post()
rid = reach("monty_runtime.bridge").current_execution.get().state.rid
kind = KIND
if kind == "array":
    post("[" + "{}," * 3_000_000 + "{}]")
elif kind == "oversized":
    post("[" + "{}," * 12_000_000 + "{}]")
elif kind == "prints":
    text = "x" * 4_000_000
    msg = ('{"type":"event","id":%d,"event":{"type":"print","execution_id":"ex-1",'
           '"stream":"stdout","text":"%s"}}' % (rid, text))
    for i in range(400):
        post(msg)
elif kind == "calls":
    one = ('{"type":"event","id":%d,"event":{"type":"call_started","execution_id":"ex-1",'
           '"call_id":1,"name":"f","args":[],"kwargs":{}}}' % rid)
    batch = "[" + ",".join([one] * 16) + "]"
    for i in range(150_000):
        post(batch)
elif kind == "error":
    js = reach("js")
    js.reportError(js.Error.new("x" * 50_000_000))
elif kind == "bad_items":
    post("[" + ",".join(['{"type":"bogus"}'] * 16) + "]")
    for i in range(100_000):
        post('{"type":"event","id":987654,"event":{}}')
import time
time.sleep(3)
"not cut off"
'''

#: Longest page task an attack may cause (ms): none over 50 ms on an idle machine (a
#: long task is reported from 50 ms), with a margin for a loaded one.
LONG_TASK_BOUND_MS = 120

# The smallest violation: one 16-byte bogus message.
ANCHOR_PY = REACH_PY + r'''
page_post()('{"type":"bogus"}')
import time
time.sleep(2)
'''


@pytest.fixture
def hpage(server: RunningServer, page: Any) -> Any:
    open_runtime_page(page, server)
    assert page.evaluate(GAP_JS) is True
    return page


@pytest.mark.timeout(900)
def test_message_floods_are_cut_off_without_freezing_the_page_or_other_runtimes(
    hpage: Any,
) -> None:
    """Finding 1: huge batches of bogus items, forged print events far over the output
    limit, millions of forged call events, messages for ids never issued."""
    out = evaluate(hpage, """async ({ code, anchor, kinds, longTaskBound }) => {
      const limits = { maxOutputBytes: 1_000_000, maxResultBytes: 1_000_000 };
      const bystander = await M.MontyRuntime.create();
      const rt = await M.MontyRuntime.create({ limits });
      const out = { attacks: {} };
      const heap = () => performance.memory?.usedJSHeapSize ?? null;
      // The anchor, same page, same run: what cutting a runtime off costs the page for
      // the smallest violation (one 16-byte bogus message): terminating the worker and
      // starting a fresh one. The attacks must cost about that, whatever their size.
      await H.run(rt, "1");
      const replaced = await gapWhile(() => H.run(rt, anchor));
      out.anchor = replaced.maxGap;
      out.anchorTask = replaced.longTask;
      out.anchorCrashed = !replaced.value.ok && replaced.value.error.isWorkerCrashed;
      await H.run(rt, "1");
      const heapBefore = heap();
      for (const kind of kinds) {
        // A long task is wall time: on a loaded machine the page's thread may lose the
        // CPU inside one. An attack whose task ran long is tried once more, and the
        // shorter counts (a real cost shows in both).
        let longTask = Infinity;
        let attack, after, other;
        for (let attempt = 0; attempt < 2 && !(longTask < longTaskBound); attempt++) {
          other = bystander.execute("import asyncio\\nawait asyncio.sleep(0.5)\\n'genuine'");
          attack = await gapWhile(() => H.run(rt, code.replace("KIND", JSON.stringify(kind))));
          after = await H.run(rt, "1 + 1");
          other = (await H.settle(other.result)).result?.value ?? null;
          longTask = attack.longTask === null ? null : Math.min(longTask, attack.longTask);
          if (longTask === null) break;
        }
        out.attacks[kind] = {
          gap: attack.maxGap,
          longTask,
          error: attack.value.ok ? null : attack.value.error,
          value: attack.value.ok ? attack.value.result.value : null,
          events: attack.value.events.length,
          after: after.ok ? { value: after.result.value, sessionLost: after.result.sessionLost } : after.error,
          other,
        };
      }
      out.protocolErrors = rt._protocolErrors;
      out.heapGrowth = heapBefore === null ? null : heap() - heapBefore;
      await rt.dispose();
      await bystander.dispose();
      return out;
    }""", {"code": FLOOD_PY, "anchor": ANCHOR_PY, "longTaskBound": LONG_TASK_BOUND_MS,
          "kinds": ["array", "oversized", "prints", "calls", "error", "bad_items"]},
        timeout_s=600)
    assert out["anchorCrashed"], out
    anchor = out["anchor"]
    for kind, attack in out["attacks"].items():
        print(f"{kind}: longest page timer gap {attack['gap']:.0f} ms, longest page task "
              f"{attack['longTask']} ms (cutting off a worker for one 16-byte bogus message, "
              f"same run: {anchor:.0f} ms, {out['anchorTask']} ms)")
        error = attack["error"]
        assert error is not None and error["isWorkerCrashed"], (kind, attack)
        assert ("cut off" in error["message"] if kind != "error"
                else "uncaught error" in error["message"] or "cut off" in error["message"]), (kind, error)
        assert len(error["message"]) < 2000, (kind, len(error["message"]))
        assert attack["events"] < 5000, (kind, attack["events"])
        assert attack["after"] == {"value": 2, "sessionLost": True}, (kind, attack)
        assert attack["other"] == "genuine", (kind, attack)
        # Bounded freeze: about what cutting off for the smallest violation costs, not the
        # size of the attack (tens of seconds, or the tab killed, before), with room for
        # a loaded machine.
        assert attack["gap"] < max(3 * anchor, anchor + 600), (kind, attack["gap"], anchor)
        # Where the engine reports long tasks: the worker's messages reach the page only
        # through its gate (a thread of its own), which refuses these before the page
        # sees them, so no task of the page runs long (none over 50 ms on an idle machine;
        # a margin for a loaded one).
        if attack["longTask"] is not None:
            assert attack["longTask"] < LONG_TASK_BOUND_MS, (kind, attack["longTask"])
    if out["heapGrowth"] is not None:  # Chromium reports the page's heap
        print(f"page heap after all attacks: {out['heapGrowth'] / 2**20:+.0f} MiB")
        assert out["heapGrowth"] < 200 * 2**20, out["heapGrowth"]


AROUND_PY = REACH_PY + r'''
js = reach("js")
found = []
ways = {
    "js.postMessage": lambda: js.postMessage,
    "self.postMessage": lambda: js.self.postMessage,
    "the global's prototype chain": lambda: js.Object.getPrototypeOf(js.self).postMessage,
    "DedicatedWorkerGlobalScope.prototype": lambda: js.DedicatedWorkerGlobalScope.prototype.postMessage,
    "Reflect.get": lambda: js.Reflect.get(js.self, "postMessage"),
}
for where, get in ways.items():
    try:
        if get() is not None:
            found.append(where)
    except Exception:
        pass
found
'''


def test_executed_code_finds_no_way_to_post_to_the_page_around_the_gate(hpage: Any) -> None:
    """The worker's postMessage is gone after its lock-down, wherever code looks for it:
    what it posts reaches the page only through the gate."""
    out = evaluate(hpage, """async ({ code }) => {
      const rt = await M.MontyRuntime.create();
      const res = await H.run(rt, code);
      await rt.dispose();
      return res;
    }""", {"code": AROUND_PY}, timeout_s=180)
    assert out["ok"], out
    assert out["result"]["value"] == [], out["result"]


POISON_PY = REACH_PY + r'''
import signal
pyodide = reach("pyodide_js") if "pyodide_js" in sys.modules else None
js = reach("js")
buf = None
try:
    buf = reach("pyodide_js")._module.Py_EmscriptenSignalBuffer
except Exception:
    pass
if buf is not None:
    i32 = js.Int32Array.new(buf.buffer)
    # Negative, and READ within one ring of WRITE: a page that trusted these words
    # computed a negative slot (RangeError from Atomics); READ a ring or more behind
    # would only have looked full.
    i32[1] = -1000  # WRITE
    i32[2] = -1010  # READ
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(10, signal.SIG_IGN)
while True:
    try:
        pass
    except BaseException:
        pass
'''


@pytest.mark.timeout(400)
def test_a_poisoned_control_buffer_never_makes_interrupt_or_execute_throw(hpage: Any) -> None:
    """Finding 3: the code writes nonsense into the control ring and ignores signals;
    interrupt() and execute() never throw, the deadline is the page's, and in a sandbox
    pool the other busy worker is interrupted as well."""
    out = evaluate(hpage, """async ({ code }) => {
      const out = {};
      const rt = await M.MontyRuntime.create({ limits: { grace: 0.5 } });
      out.control = rt.info.env.control;
      const h = rt.execute(code);
      await new Promise((r) => setTimeout(r, 1500));
      const t0 = performance.now();
      out.interruptThrew = H.throws(() => rt.interrupt());
      let next = null;
      out.executeThrew = H.throws(() => { next = rt.execute("1").result; });
      out.result = await H.settle(h.result);
      out.settleMs = performance.now() - t0;
      out.next = await H.settle(next); // refused as busy, or run on the fresh worker
      out.after = await H.run(rt, "40 + 2");
      await rt.dispose();
      const sb = await M.MontyRuntime.create({ sandbox: true, poolSize: 2, limits: { grace: 0.5 } });
      const a = sb.execute(code);
      const b = sb.execute("while True:\\n    pass");
      await H.waitEvent(b, (ev) => ev.type === "run_started"); // the second worker booted
      await new Promise((r) => setTimeout(r, 500));
      out.sandboxInterruptThrew = H.throws(() => sb.interrupt());
      out.sandbox = [await H.settle(a.result), await H.settle(b.result)];
      await sb.dispose();
      return out;
    }""", {"code": POISON_PY}, timeout_s=300)
    assert out["interruptThrew"] is None and out["executeThrew"] is None, out
    assert out["sandboxInterruptThrew"] is None, out
    res = out["result"]
    # Stopped by the page within the grace (or at once, the buffer being poisoned).
    assert out["settleMs"] < 5000, out
    assert out["after"]["result"]["value"] == 42, out
    if res["ok"]:  # the hard path: the result itself says the session is lost
        assert res["result"]["sessionLost"] is True, res
    else:  # cut off (poisoned buffer): the next result on the fresh worker says it
        assert res["error"]["isWorkerCrashed"], res
        lost = [r["result"]["sessionLost"] for r in (out["next"], out["after"]) if r["ok"]]
        assert lost and lost[0] is True, out
    for settled in out["sandbox"]:
        stopped = (not settled["ok"] and settled["error"]["isWorkerCrashed"]) or (
            settled["ok"] and settled["result"]["error"]["type"] == "KeyboardInterrupt")
        assert stopped, out["sandbox"]


FORGED_CALL_PY = REACH_PY + r'''
import json
js = reach("js")
rid = reach("monty_runtime.bridge").current_execution.get().state.rid
bad = [
    [["mallory", 1000000], {}],
    [["alice", 1.5], {}],
    [["alice", "10"], {}],
    [["alice"], {}],
    [["alice", 1, 2], {}],
    [["alice", 1], {"memo": "x"}],
    [[{"$map": [[1, 2]]}, 1], {}],
    [["alice", {"$bytes": "aGk="}], {}],
    [["alice", {"$int": "100000000000000000000000"}], {"to": "bob"}],
]
for i, (args, kwargs) in enumerate(bad):
    page_post()(json.dumps({"type": "host_call", "id": 800000 + i, "execution": rid,
                            "name": "transfer", "args": args, "kwargs": kwargs,
                            "sync": False}))
honest = []
for args in (("mallory", 1), ("alice", True)):
    try:
        transfer(*args)
        honest.append("called")
    except TypeError as e:
        honest.append("TypeError")
import asyncio
await asyncio.sleep(0.5)
honest
'''


@pytest.mark.timeout(300)
def test_forged_host_calls_are_checked_against_the_schema_by_the_page(hpage: Any) -> None:
    """Finding 4: host_call messages forged under the execution's own id with
    arguments that fail the schema are refused by the page as by the worker."""
    out = evaluate(hpage, """async ({ code }) => {
      const calls = [];
      const rt = await M.MontyRuntime.create({ functions: { transfer: {
        fn: (to, amount) => { calls.push([to, String(amount)]); return "ok"; },
        parameters: { type: "object", properties: { to: { enum: ["alice", "bob"] },
          amount: { type: "integer" } }, required: ["to", "amount"] },
      } } });
      const res = await H.run(rt, code);
      const good = await H.run(rt, "transfer('bob', 5)");
      await rt.dispose();
      return { res, good, calls };
    }""", {"code": FORGED_CALL_PY}, timeout_s=180)
    assert out["res"]["ok"], out
    assert out["res"]["result"]["value"] == ["TypeError", "TypeError"], out["res"]
    assert out["good"]["result"]["value"] == "ok"
    assert out["calls"] == [["bob", "5"]], out["calls"]


STALE_PY = REACH_PY + r'''
import json
js = reach("js")
rid = reach("monty_runtime.bridge").current_execution.get().state.rid
page_post()(json.dumps({"type": "host_call", "id": 700000, "execution": rid,
                        "name": "get_price", "args": ["apple"], "kwargs": {},
                        "sync": True}))
import time
time.sleep(0.3)
[get_price("pear"), get_price("plum"), get_price("pear")]
'''


@pytest.mark.timeout(300)
def test_a_parked_sync_answer_is_never_delivered_to_another_call(
    server: RunningServer, hpage: Any
) -> None:
    """Finding 6 (cross-origin isolated pages: the Atomics buffer): a forged sync
    host_call leaves its answer in the shared buffer; later calls get their own. Where
    the page has no shared memory -- not isolated, or WebKit, which has no
    SharedArrayBuffer even when isolated -- there is no buffer to poison."""
    shared = evaluate(hpage, """() =>
      self.crossOriginIsolated === true && typeof SharedArrayBuffer === "function" """)
    assert shared is (server.isolated and getattr(hpage, "engine", "chromium") != "webkit")
    if not shared:
        out = evaluate(hpage, """async () => {
          const rt = await M.MontyRuntime.create({ sync: "atomics",
            functions: { get_price: (name) => 1 } });
          const r = await H.run(rt, "get_price('x')");
          await rt.dispose();
          return { env: rt.info?.env ?? null, r };
        }""", timeout_s=180)
        # No shared buffer without isolation: nothing to poison, sync calls are refused.
        assert "cannot be called synchronously" in out["r"]["result"]["error"]["message"]
        return
    out = evaluate(hpage, """async ({ code }) => {
      const prices = { apple: 100, pear: 7, plum: 9 };
      const rt = await M.MontyRuntime.create({ sync: "atomics",
        functions: { get_price: (name) => prices[name] } });
      const r = await H.run(rt, code);
      await rt.dispose();
      return r;
    }""", {"code": STALE_PY}, timeout_s=180)
    assert out["ok"] and out["result"]["value"] == [7, 9, 7], out


LOCKDOWN_JS = """async () => {
  const rt = await M.MontyRuntime.create();
  const code = [
    "import json",
    "g = vars(json)['__builtins__']['__import__']('js').globalThis",
    // Pyodide's `js` is a proxy: its accessors throw "Illegal invocation". The real
    // global is the value of its own globalThis property.
    "g = g.Object.getOwnPropertyDescriptor(g, 'globalThis').value",
    "names = g.Object.getOwnPropertyNames",
    "proto = g.Object.getPrototypeOf",
    "def chain(o):",
    "    out = set()",
    "    while o is not None and o != g.Object.prototype:",
    "        out |= set(names(o))",
    "        o = proto(o)",
    "    return sorted(out)",
    "[chain(g), chain(g.navigator)]",
  ].join("\\n");
  const res = await H.run(rt, code);
  const env = rt.info.env.lockdown;
  await rt.dispose();
  return { res, env };
}"""


@pytest.mark.timeout(300)
def test_lockdown_leaves_exactly_the_allow_list_reachable(hpage: Any) -> None:
    """Finding 2: enumerate every property of the worker's global object and navigator
    (and their prototypes) as executed code sees them: only the allow-list remains;
    the legacy FileSystem API is gone; info.env.lockdown reports what remains."""
    out = evaluate(hpage, LOCKDOWN_JS, timeout_s=180)
    assert out["res"]["ok"] and out["res"]["result"]["error"] is None, out["res"]
    scope, nav = out["res"]["result"]["value"]
    env = out["env"]
    for name in ("webkitRequestFileSystem", "webkitRequestFileSystemSync",
                 "webkitResolveLocalFileSystemURL", "webkitResolveLocalFileSystemSyncURL",
                 "fetch", "indexedDB", "caches", "BroadcastChannel", "importScripts"):
        assert name not in scope, name
    assert "storage" not in nav and "locks" not in nav
    allowed = set(env["allowed"]["global"])
    # Besides the allow-list only what Pyodide and the runtime put there themselves.
    own = set(env["kept"]["global"]) | set(env["constants"]) | {"constructor"}
    assert set(scope) - allowed <= own, sorted(set(scope) - allowed - own)
    assert set(scope) == set(env["remaining"]["global"]), sorted(set(scope) ^ set(env["remaining"]["global"]))
    nav_allowed = set(env["allowed"]["navigator"]) | {"constructor"}
    assert set(nav) <= nav_allowed, sorted(set(nav) - nav_allowed)
    assert env["failed"] == []


BACKGROUND_PY = REACH_PY + r'''
import asyncio, contextvars, sys
js = reach("js")
ffi = reach("pyodide.ffi")
ticks = sys.modules.setdefault("monty_probe_ticks", type(sys)("monty_probe_ticks"))
ticks.interval = 0
ticks.task = 0
def on_interval(*_):
    ticks.interval += 1
js.setInterval(ffi.create_proxy(on_interval), 50)
async def forever():
    while True:
        ticks.task += 1
        await asyncio.sleep(0.05)
loop = asyncio.get_event_loop()
contextvars.Context().run(loop.create_task, forever())
await asyncio.sleep(0.2)
"started"
'''

COUNT_PY = REACH_PY + r'''
import sys
t = sys.modules["monty_probe_ticks"]
[t.interval, t.task]
'''


@pytest.mark.timeout(300)
def test_background_callbacks_do_not_outlive_their_execution(hpage: Any) -> None:
    """Finding 5 (worker side): a js.setInterval callback and a task created in a fresh
    contextvars.Context stop when their execution ends."""
    out = evaluate(hpage, """async ({ start, count }) => {
      const rt = await M.MontyRuntime.create();
      const started = await H.run(rt, start);
      const before = await H.run(rt, count);
      await new Promise((r) => setTimeout(r, 1500));
      const later = await H.run(rt, count);
      await rt.dispose();
      return { started, before, later };
    }""", {"start": BACKGROUND_PY, "count": COUNT_PY}, timeout_s=180)
    assert out["started"]["result"]["value"] == "started", out
    before = out["before"]["result"]["value"]
    later = out["later"]["result"]["value"]
    assert later == before, (before, later)


ONMESSAGE_PY = REACH_PY + r'''
js = reach("js")
ffi = reach("pyodide.ffi")
seen = []
g = js.globalThis
g = g.Object.getOwnPropertyDescriptor(g, "globalThis").value  # the real global
original = g.onmessage
def spy(event):
    try:
        seen.append(js.JSON.stringify(event.data))
    except Exception:
        pass
    if original is not None:
        return original(event)
g.onmessage = ffi.create_proxy(spy)
g.addEventListener("message", ffi.create_proxy(spy))
sys = reach("sys")
sys.modules["monty_probe_spy"] = type(sys)("monty_probe_spy")
sys.modules["monty_probe_spy"].seen = seen
"installed"
'''


@pytest.mark.timeout(300)
def test_a_replaced_onmessage_does_not_see_a_later_sandbox_execution(hpage: Any) -> None:
    """Finding 5 (worker side): on a sandbox pool of one, code replaces self.onmessage;
    a later execution's inputs (an API key) do not reach it."""
    out = evaluate(hpage, """async ({ code }) => {
      const sb = await M.MontyRuntime.create({ sandbox: true, poolSize: 1 });
      const first = await H.run(sb, code);
      const second = await H.run(sb, "key[:4]", { inputs: { key: "sk-SECRET-123" } });
      const spy = await H.run(sb, "import sys\\ngetattr(sys.modules.get('monty_probe_spy'), 'seen', None)");
      await sb.dispose();
      return { first, second, spy };
    }""", {"code": ONMESSAGE_PY}, timeout_s=180)
    assert out["second"]["result"]["value"] == "sk-S", out
    spy = out["spy"]["result"]["value"] if out["spy"]["ok"] else None
    assert not spy or not any("SECRET" in s for s in spy), spy
