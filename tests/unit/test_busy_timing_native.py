"""The busy contract at every timing, natively.

``execute()`` on a shared runtime raises ``StateError("Bridge is already executing")``
(``reason == "busy"``) at the call while another execution of the runtime has not
delivered its result, and accepts the call once it has.  The second call is scheduled
at many points of the first call's life, from the caller's loop and from other threads,
for each kind of first call; every second call records its start with a host function
and its REPL global, so "refused" is checked against side effects: a refused call never
runs, an accepted one runs once and never overlaps the first.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

import pytest

from monty_runtime import Limits, MontyRuntime, StateError

BUSY = "Bridge is already executing"

FIRST = {
    "cpu": "began(N)\ns = 0\nfor i in range(300_000): s += i\nended(N)",
    "time_sleep": "began(N)\nimport time\ntime.sleep(0.05)\nended(N)",
    "asyncio_sleep": "began(N)\nimport asyncio\nawait asyncio.sleep(0.05)\nended(N)",
    "sync_host": "began(N)\nx = [slow() for _ in range(3)]\nended(N)",
    "awaited_host": "began(N)\nx = [await aslow() for _ in range(3)]\nended(N)",
    "print_flood": "began(N)\nfor i in range(20_000): print(i)\nended(N)",
    "timed_out": "began(N)\nwhile True: pass",
    "interrupted": "began(N)\nwhile True: pass",
}
# Points whose outcome is fixed by construction: before the result (refused) ...
REFUSED_POINTS = ["same_tick", "in_host_call", "in_async_host_call"]
# ... after it (accepted) ...
ACCEPTED_POINTS = ["after_result", "done_callback", "thread_after_result"]
# ... and points decided by timing.  From the caller's loop the oracle is whether the
# first result was delivered at the call (the guard is released and the result set in
# one callback on the loop); from another thread, the side effects must agree with
# the outcome (a refused call never ran, an accepted one never overlapped the first).
RACING_POINTS = ["sleep0", "call_soon", "run_started", "loop_random", "run_finished_event",
                 "thread_while_running", "thread_random"]
LOOP_POINTS = {"same_tick", "sleep0", "call_soon", "run_started", "loop_random",
               "run_finished_event", "after_result", "done_callback", "in_async_host_call"}


class Recorder:
    """Host functions that record when each execution's code ran."""

    def __init__(self) -> None:
        self.began: dict[int, float] = {}
        self.ended: dict[int, float] = {}
        self.hook: Any = None  # called inside the host call of the first execution

    def functions(self) -> list[Any]:
        def began(n: int) -> None:
            self.began[n] = time.monotonic()

        def ended(n: int) -> None:
            self.ended[n] = time.monotonic()

        def slow() -> int:
            if self.hook is not None:
                self.hook()
            time.sleep(0.01)
            return 1

        async def aslow() -> int:
            if self.hook is not None:
                self.hook()
            await asyncio.sleep(0.01)
            return 1

        return [began, ended, slow, aslow]


async def _trial(rt: MontyRuntime, rec: Recorder, kind: str, point: str, n1: int,
                 n2: int) -> str:
    loop = asyncio.get_running_loop()
    limits = Limits(timeout=0.1) if kind == "timed_out" else None
    code1 = FIRST[kind].replace("N", str(n1))
    code2 = f"began({n2})\nsecond_{n2} = 1\nended({n2})\n'second'"
    outcome: dict[str, Any] = {}

    def second() -> None:
        if "handle" in outcome or "error" in outcome:
            return
        if point in LOOP_POINTS:
            outcome["delivered"] = h1.result.done()
        try:
            outcome["handle"] = rt.execute(code2)
        except StateError as exc:
            outcome["error"] = exc

    if (kind == "sync_host" and point == "in_host_call") or (
            kind == "awaited_host" and point == "in_async_host_call"):
        rec.hook = second
    elif point in ("in_host_call", "in_async_host_call"):
        # The first call of this kind makes no such host call: use the plain point.
        point = "same_tick"
    h1 = rt.execute(code1, limits=limits)
    if kind == "interrupted":
        loop.call_later(0.03, h1.interrupt)
    threads: list[threading.Thread] = []

    def in_thread(delay: float, wait_for: Any = None) -> None:
        # Another thread with an event loop of its own, calling the same runtime.
        async def from_thread() -> None:
            second()
            if "handle" in outcome:
                outcome["result"] = await asyncio.wait_for(outcome["handle"].result, 15)

        def run() -> None:
            if wait_for is not None:
                wait_for.wait(10)
            time.sleep(delay)
            asyncio.run(from_thread())
        t = threading.Thread(target=run)
        threads.append(t)
        t.start()

    if point == "same_tick":
        second()
    elif point == "sleep0":
        await asyncio.sleep(0)
        second()
    elif point == "call_soon":
        loop.call_soon(second)
    elif point == "thread_while_running":
        started = threading.Event()
        rec.hook = None
        in_thread(0, started)
        # began() has run once the first code is in its body.
        while n1 not in rec.began:
            await asyncio.sleep(0.001)
        started.set()
    elif point == "thread_random":
        in_thread(random.uniform(0, 0.08))
    elif point == "loop_random":
        loop.call_later(random.uniform(0, 0.08), second)
    elif point == "done_callback":
        h1.result.add_done_callback(lambda _f: second())

    if point in ("run_started", "run_finished_event"):
        wanted = "run_started" if point == "run_started" else "run_finished"
        async for ev in h1.events:
            if ev.type == wanted or (wanted == "run_finished" and ev.type == "run_error"):
                second()
                break
    try:
        res1 = await asyncio.wait_for(h1.result, 15)
    finally:
        rec.hook = None
    if kind == "timed_out":
        assert res1.error is not None and res1.error.type == "TimeoutError", res1
    elif kind == "interrupted":
        assert res1.error is not None and res1.error.type == "KeyboardInterrupt", res1
    else:
        assert res1.error is None, (kind, res1.error)
    if point == "after_result":
        second()
    elif point == "thread_after_result":
        in_thread(0)
    for t in threads:
        await asyncio.to_thread(t.join, 10)
    if "handle" not in outcome and "error" not in outcome:
        second()  # an event the first call never emitted: call now (accepted)

    where = f"{kind}/{point}"
    if "delivered" in outcome:
        refused = "error" in outcome
        assert refused != outcome["delivered"], (
            f"{where}: {'refused' if refused else 'accepted'} although the first result "
            f"was {'' if outcome['delivered'] else 'not yet '}delivered")
    if "error" in outcome:
        err = outcome["error"]
        assert (str(err), err.reason) == (BUSY, "busy"), (where, err)
        assert point not in ACCEPTED_POINTS, f"{where}: refused after the result"
        await asyncio.sleep(0.01)
        assert n2 not in rec.began, f"{where}: a refused execution ran"
        check = await rt.run(f"'second_{n2}' in globals()")
        assert check.value is False, f"{where}: a refused execution left a global"
        return "refused"
    assert point not in REFUSED_POINTS, f"{where}: an overlapping execute() was accepted"
    res2 = outcome.get("result") or await asyncio.wait_for(outcome["handle"].result, 15)
    assert res2.error is None and res2.value == "second", (where, res2)
    assert n2 in rec.began, where
    # Never overlapping: the second began after the first's code stopped.
    first_end = rec.ended.get(n1)
    if first_end is not None:
        assert rec.began[n2] >= first_end, f"{where}: the executions overlapped"
    return "accepted"


@pytest.mark.parametrize("kind", list(FIRST))
async def test_a_second_execute_is_refused_at_the_call_until_the_first_result_is_delivered(
        kind: str) -> None:
    rec = Recorder()
    counts = {"refused": 0, "accepted": 0}
    n = 0
    points = REFUSED_POINTS + ACCEPTED_POINTS + RACING_POINTS
    reps = 2 if kind in ("timed_out", "interrupted") else 4
    async with MontyRuntime(functions=rec.functions(), limits=Limits(grace=2)) as rt:
        for point in points:
            for _ in range(reps):
                n += 2
                counts[await _trial(rt, rec, kind, point, n - 1, n)] += 1
        assert not rt.is_executing
    total = sum(counts.values())
    print(f"native busy timing [{kind}]: {total} interleavings tried, "
          f"{counts['refused']} refused, {counts['accepted']} accepted")
    assert counts["refused"] >= len(REFUSED_POINTS) and counts["accepted"] >= len(ACCEPTED_POINTS)


@pytest.mark.parametrize("policy", ["busy", "queue"])
async def test_tool_bindings_keep_their_policy_at_every_timing(policy: str) -> None:
    from monty_runtime.tools import BusyBinding, QueueBinding

    rec = Recorder()
    tried = 0
    async with MontyRuntime(functions=rec.functions()) as rt:
        binding = BusyBinding(rt) if policy == "busy" else QueueBinding(rt)
        for n, point in enumerate(["started", "sleep0", "1ms", "10ms", "random",
                                   "after_result"] * 4):
            first_code = FIRST["cpu"].replace("N", str(2 * n + 1))
            second_code = f"began({2 * n + 2})\n'second'"
            first = asyncio.ensure_future(binding.call({"code": first_code}))
            await asyncio.sleep(0)  # the first call starts (its execute() is made)
            if point == "after_result":
                await first
            elif point != "started":
                delay = {"sleep0": 0, "1ms": 0.001, "10ms": 0.01,
                         "random": random.uniform(0, 0.05)}[point]
                await asyncio.sleep(delay)
            first_done = first.done()
            second = await binding.call({"code": second_code})
            first_payload = await first
            tried += 1
            assert first_payload["status"] == "ok", first_payload
            ran = (2 * n + 2) in rec.began
            if policy == "queue":
                assert second["status"] == "ok" and second["value"] == "second", second
                assert ran and rec.began[2 * n + 2] >= rec.ended[2 * n + 1]
            elif first_done:
                assert second["status"] == "ok" and ran, (point, second)
            else:
                assert second["status"] == "busy", (point, second)
                assert second["error"] == {"type": "StateError", "message": BUSY}
                assert not ran, f"{point}: a call answered busy ran"
    print(f"native {policy} binding: {tried} interleavings tried")
