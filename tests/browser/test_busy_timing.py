"""The busy contract at every timing, in the browser.

On a shared runtime an ``execute()`` made while another execution of the same runtime
has not yet delivered its result is refused: its ``result`` rejects with
``StateError("Bridge is already executing")`` (``reason: "busy"``) and its code never
runs.  An ``execute()`` made after the result was delivered is accepted.  The page
decides (``BusyGuard`` in ``web/monty-runtime.js``), so the rule holds however the
second call is timed against the first one's messages.

The property is searched over the timing space, not sampled at one point: for each kind
of first call (CPU-bound loop, ``asyncio.sleep``, sync-style host call, awaited host
call, print flood, timed out, interrupted, on a worker still booting, on a runtime
restored from a snapshot, on a pooled runtime) the second call is issued at each point
of a schedule (same tick, microtask, ``setTimeout(0)``, 1 ms, 10 ms, a random delay
within the first call's run, on its ``run_started``, on its ``call_started``, right
before its result resolves, when its event stream ends, right after its result
resolves), several times each.  Every second call starts with an awaited host call
``mark(n)``: the page records which calls ran, so "refused" is checked against side
effects, not just against the error, even where the first call's hard path (a
replaced worker) wipes the REPL.  Where the REPL survives, the refused call's global is
also checked to be absent.

The oracle for each trial is the page's own record of whether the first result had been
delivered when the second call was made; fixed points also have a fixed expectation
(before the result: refused; after it: accepted).
"""

from __future__ import annotations

from typing import Any

import pytest
from support.runtime_page import evaluate, open_runtime_page

BUSY = "Bridge is already executing"

# How many times each (kind, point) pair is tried.  Expensive kinds (a worker is
# replaced or booted per trial) get fewer.
REPS = {"default": 2, "expensive": 1}

POINTS = [
    "sync", "microtask", "timeout0", "1ms", "10ms", "random", "run_started",
    "call_started", "before_result", "stream_end", "after_result",
]
# Points whose outcome is fixed by construction.  The timer points (0, 1, 10 ms and a
# random delay) usually land while the first call runs, but a loaded machine may fire
# a timer late: their expected outcome is the oracle's alone.
EXPECT_REFUSED = {"sync", "microtask", "run_started", "call_started", "before_result"}
EXPECT_ACCEPTED = {"stream_end", "after_result"}

KINDS = [
    "cpu", "sleep", "sync_host", "awaited_host", "print_flood", "timed_out",
    "interrupted", "booting", "restored", "pooled",
]
EXPENSIVE = {"timed_out", "interrupted", "booting"}

TIMING_JS = r"""
async ({ kind, points, reps, binding }) => {
  const marks = new Map();       // n -> times mark(n) ran
  const firstMarks = new Set();
  const slow = (x) => new Promise((r) => setTimeout(() => r(x), 40));
  const functions = {
    mark: (n) => { marks.set(n, (marks.get(n) ?? 0) + 1); return n; },
    first_mark: (n) => { firstMarks.add(n); return n; },
    slow,
  };
  const opts = { functions, limits: { grace: 0.15 } };
  let rt;
  if (kind === "pooled") {
    await M.MontyRuntime.prewarm(1);
    rt = await M.MontyRuntime.create(opts);
    await M.MontyRuntime.prewarm(0);
  } else {
    // A runtime made before this one (warm-up) means this one restores the snapshot.
    const warm = await M.MontyRuntime.create({});
    await warm.dispose();
    rt = await M.MontyRuntime.create(opts);
  }
  const boot = rt.boot;
  const FIRST = {
    cpu: "await first_mark(N)\ns = 0\nfor i in range(200_000): s += i\nfirst_N = s",
    sleep: "await first_mark(N)\nimport asyncio\nawait asyncio.sleep(0.08)\nfirst_N = 1",
    sync_host: "await first_mark(N)\nfirst_N = [slow(i) for i in range(3)]",
    awaited_host: "await first_mark(N)\nfirst_N = [await slow(i) for i in range(3)]",
    print_flood: "await first_mark(N)\nfor i in range(10_000): print(i)\nfirst_N = 1",
    timed_out: "await first_mark(N)\nwhile True: pass",
    interrupted: "await first_mark(N)\nwhile True: pass",
    booting: "await first_mark(N)\nfirst_N = sum(range(100_000))",
    restored: "await first_mark(N)\ns = 0\nfor i in range(200_000): s += i\nfirst_N = s",
    pooled: "await first_mark(N)\ns = 0\nfor i in range(200_000): s += i\nfirst_N = s",
  }[kind];
  const firstLimits = kind === "timed_out" ? { timeout: 0.15, grace: 0.15 } : undefined;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const tools = binding ? await import("../tools.js") : null;
  const bound = binding ? tools.bindTool(rt, binding) : null;
  let n = 0;
  const trials = [];

  const runFirst = (code) => {
    if (bound) {
      // The binding's first call: its handle is the runtime's (busy guard) execution.
      const payload = bound.call({ code });
      return { payload };
    }
    return { h: rt.execute(code, firstLimits ? { limits: firstLimits } : undefined) };
  };

  for (const point of points) {
    for (let r = 0; r < reps; r++) {
      const id1 = ++n;
      const id2 = ++n;
      if (kind === "booting") {
        // Replace the worker: a call that cannot be interrupted past its grace.
        const lost = rt.execute("import time\ntime.sleep(30)", { limits: { timeout: 0.05, grace: 0.05 } });
        await H.settle(lost.result);
      }
      let settledAtCall = null;
      let second = null;
      let secondPayload = null;
      const first = runFirst(FIRST.replaceAll("N", String(id1)));
      const h1 = first.h ?? null;
      const secondCode = `await mark(${id2})\nsecond_${id2} = 1\n'second'`;
      let firstDone = false;
      const doSecond = () => {
        if (second !== null || secondPayload !== null) return;
        // The page's record: has the first result been delivered (resolved) yet?
        settledAtCall = firstDone || (h1 !== null && h1._settled === true);
        if (bound) secondPayload = bound.call({ code: secondCode });
        else second = rt.execute(secondCode);
      };
      // The first handle: directly, or the one the binding made (rt's onEvent sees
      // its events either way).
      const firstPromise = h1 ? h1.result : first.payload;
      const track = (p) => p.then(() => { firstDone = true; }, () => { firstDone = true; });
      const firstSettled = track(firstPromise);
      let firstExecutionId = null;
      const off = rt.onEvent((ev) => {
        if (ev.type === "run_started" && firstExecutionId === null) firstExecutionId = ev.execution_id;
        if (ev.execution_id !== firstExecutionId) return;
        if (point === "run_started" && ev.type === "run_started") doSecond();
        if (point === "call_started" && ev.type === "call_started") doSecond();
        if (point === "before_result" && (ev.type === "run_finished" || ev.type === "run_error")) doSecond();
        if (kind === "interrupted" && ev.type === "call_finished") {
          setTimeout(() => (h1 ? h1.interrupt() : rt.interrupt()), 20);
        }
      });
      switch (point) {
        case "sync": doSecond(); break;
        case "microtask": queueMicrotask(doSecond); break;
        case "timeout0": setTimeout(doSecond, 0); break;
        case "1ms": setTimeout(doSecond, 1); break;
        case "10ms": setTimeout(doSecond, 10); break;
        case "random": setTimeout(doSecond, Math.random() * 150); break;
        case "stream_end":
          if (h1) (async () => { for await (const _ of h1.events); doSecond(); })();
          else firstPromise.then(doSecond, doSecond);
          break;
        case "after_result":
          firstPromise.then(doSecond, doSecond);
          break;
      }
      await firstSettled;
      off();
      const firstOutcome = h1 ? await H.settle(h1.result) : { ok: true, payload: await first.payload };
      // Points tied to events that a refused/failed first call never emits.
      if (second === null && secondPayload === null) doSecond();
      let secondOutcome;
      if (bound) secondOutcome = { ok: true, payload: await secondPayload };
      else {
        const events = [];
        for await (const ev of second.events) events.push(ev);
        secondOutcome = { ...(await H.settle(second.result)), events };
      }
      // Anything that could still run has had its chance: nothing is left in flight.
      await sleep(30);
      const globals = await H.settle(rt.execute(
        `[${JSON.stringify("first_" + id1)} in globals(), ${JSON.stringify("second_" + id2)} in globals()]`).result);
      trials.push({
        point, rep: r, id1, id2, settledAtCall,
        first: firstOutcome.ok ? (firstOutcome.payload ?? { error: firstOutcome.result.error, sessionLost: firstOutcome.result.sessionLost }) : { rejected: firstOutcome.error },
        firstMarked: firstMarks.has(id1),
        second: secondOutcome,
        marks: marks.get(id2) ?? 0,
        globals: globals.ok ? codecDecode(globals.result.value) : null,
      });
    }
  }
  function codecDecode(v) { return codec.decode(v); }
  await rt.dispose();
  return { boot, trials, isolated: self.crossOriginIsolated === true };
}
"""


def _check_trial(kind: str, t: dict[str, Any], binding: str | None) -> str:
    """Assert one trial; returns "refused" or "accepted"."""
    where = f"{kind}/{t['point']}#{t['rep']}"
    assert t["firstMarked"], f"{where}: the first call never ran: {t['first']}"
    refused_expected = not t["settledAtCall"]
    if t["point"] in EXPECT_REFUSED:
        assert refused_expected, f"{where}: the first result was already delivered at the call"
    if t["point"] in EXPECT_ACCEPTED:
        assert not refused_expected, f"{where}: the first result was not yet delivered"
    second = t["second"]
    if binding == "busy":
        payload = second["payload"]
        if refused_expected:
            assert payload["status"] == "busy", (where, payload)
            assert payload["error"] == {"type": "StateError", "message": BUSY}, (where, payload)
            assert t["marks"] == 0, f"{where}: a call answered busy ran"
        else:
            assert payload["status"] == "ok" and payload["value"] == "second", (where, payload)
            assert t["marks"] == 1, where
        return "refused" if refused_expected else "accepted"
    if binding == "queue":
        payload = second["payload"]
        assert payload["status"] == "ok" and payload["value"] == "second", (where, payload)
        assert t["marks"] == 1, f"{where}: a queued call ran {t['marks']} times"
        return "accepted"
    if refused_expected:
        assert not second["ok"], f"{where}: an overlapping execute() was accepted: {second}"
        err = second["error"]
        assert (err["name"], err["message"], err["reason"], err["isStateError"]) == (
            "StateError", BUSY, "busy", True), (where, err)
        assert second["events"] == [], f"{where}: a refused execution has events"
        assert t["marks"] == 0, f"{where}: a refused execution ran (its host call arrived)"
        if t["globals"] is not None:
            assert t["globals"][1] is False, f"{where}: a refused execution left a global"
        return "refused"
    assert second["ok"], f"{where}: an execute() after the result was refused: {second}"
    assert second["result"]["error"] is None, (where, second["result"])
    assert t["marks"] == 1, f"{where}: an accepted execution ran {t['marks']} times"
    if t["globals"] is not None:
        assert t["globals"][1] is True, f"{where}: the accepted execution left no global"
    return "accepted"


def _run_kind(page: Any, kind: str, binding: str | None = None,
              points: list[str] | None = None) -> dict[str, int]:
    reps = REPS["expensive" if kind in EXPENSIVE else "default"]
    pts = points or POINTS
    out = evaluate(page, TIMING_JS, {"kind": kind, "points": pts, "reps": reps,
                                     "binding": binding}, timeout_s=300)
    if kind == "restored":
        assert out["boot"]["mode"] == "snapshot", out["boot"]
    if kind == "pooled":
        assert out["boot"]["pooled"] is True, out["boot"]
    counts = {"refused": 0, "accepted": 0}
    assert len(out["trials"]) == len(pts) * reps
    for t in out["trials"]:
        counts[_check_trial(kind, t, binding)] += 1
        first = t["first"]
        if kind == "timed_out":
            assert first.get("error", {}).get("type") == "TimeoutError", first
        elif kind == "interrupted":
            assert first.get("error", {}).get("type") == "KeyboardInterrupt", first
    return counts


def _check_property(page: Any, server: Any, kind: str) -> None:
    open_runtime_page(page, server)
    counts = _run_kind(page, kind)
    total = counts["refused"] + counts["accepted"]
    print(f"busy timing [{kind}]: {total} interleavings tried, "
          f"{counts['refused']} refused, {counts['accepted']} accepted")
    assert counts["refused"] > 0 and counts["accepted"] > 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_second_execute_is_refused_until_the_first_result_is_delivered(
        page: Any, server: Any, kind: str) -> None:
    _check_property(page, server, kind)


# Firefox and WebKit (the default engine scope runs the whole property on Chromium and
# this share of it on the other engines; MONTY_ENGINE_SCOPE=full runs all of it there).
@pytest.mark.engine_paths
@pytest.mark.webkit_paths
@pytest.mark.only_engines("firefox", "webkit")
@pytest.mark.parametrize("kind", ["cpu", "awaited_host"])
def test_the_busy_rule_holds_in_the_other_engines(page: Any, server: Any, kind: str) -> None:
    _check_property(page, server, kind)


@pytest.mark.parametrize("binding", ["busy", "queue"])
@pytest.mark.parametrize("kind", ["cpu"])
def test_tool_bindings_keep_their_policy_at_every_timing(
        page: Any, server: Any, kind: str, binding: str) -> None:
    open_runtime_page(page, server)
    counts = _run_kind(page, kind, binding=binding)
    total = counts["refused"] + counts["accepted"]
    print(f"busy timing [{binding} binding, {kind}]: {total} interleavings tried, "
          f"{counts['refused']} answered busy, {counts['accepted']} ran")
    if binding == "busy":
        assert counts["refused"] > 0 and counts["accepted"] > 0


# ------------------------------------------- an earlier execution cannot hurt a later one

# Executed code that reaches JavaScript (around the import guard, as the README's
# security model says it can) forges its own result, so the page delivers it and sees
# the runtime idle, then keeps the worker busy: spinning with the page's signals
# ignored, or awaiting with the bridge's guard held.
FORGE_THEN = r"""
import json, signal
js = vars(json)["__builtins__"]["__import__"]("js")
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(10, signal.SIG_IGN)
# The worker's postMessage is removed at its lock-down; the runtime's own is reachable.
post = getattr(js, "postMessage", None) or __import__("sys").modules["monty_runtime.worker"]._session.hooks.post
post(json.dumps({"type": "result", "id": rid, "value": "forged", "stdout": "",
                           "stderr": "", "error": None, "session_lost": False,
                           "execution_id": "ex-forged", "duration_ms": 0}))
"""
THEN = {
    "spin": "while True: pass",
    "await": "import asyncio\nawait asyncio.sleep(60)",
}

LATER_JS = r"""
async ({ code }) => {
  const rt = await M.MontyRuntime.create({});
  await rt.execute("kept = 1").result;
  const rid = rt._nextId;      // the request id the next execute() gets
  const first = await H.settle(rt.execute(code, { inputs: { rid } }).result);
  const t0 = performance.now();
  const honest = await H.settle(rt.execute("1 + 1").result);
  const ms = performance.now() - t0;
  const after = await H.settle(rt.execute("'kept' in globals()").result);
  await rt.dispose();
  return { first, honest, ms, after };
}
"""


@pytest.mark.engine_paths
@pytest.mark.parametrize("then", list(THEN))
def test_code_running_past_its_forged_result_cannot_make_the_next_execution_fail(
        page: Any, server: Any, then: str) -> None:
    open_runtime_page(page, server)
    out = evaluate(page, LATER_JS, {"code": FORGE_THEN + THEN[then]}, timeout_s=120)
    # The forged result is delivered (the code speaks for its own execution: a
    # documented residual) ...
    assert out["first"]["ok"] and out["first"]["result"]["value"] == "forged", out["first"]
    # ... but the honest execution after it runs, on a fresh worker: the worker that
    # did not start it (or refused it as busy) was replaced.
    honest = out["honest"]
    assert honest["ok"], honest
    assert honest["result"]["value"] == 2 and honest["result"]["error"] is None, honest
    assert honest["result"]["sessionLost"] is True, honest
    assert out["after"]["ok"] and out["after"]["result"]["value"] is False
    print(f"forged result then {then}: the next execution ran on a fresh worker "
          f"after {out['ms']:.0f} ms")
