"""Property tests of the concurrency contract: many overlapping execute() calls, every
call settles (a result or StateError), none is lost, none hangs."""

from __future__ import annotations

import asyncio
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monty_runtime import MontyRuntime, StateError
from monty_runtime._native import NativeState

PROGRAMS = [
    "counter += 1\ncounter",  # fast
    "import time\ntime.sleep(0.0005)\ncounter += 1\ncounter",  # blocking
    "await tick()\ncounter += 1\ncounter",  # awaits a host call
    "tick()\ncounter += 1\ncounter",  # sync-style host call
    "for _ in range(2000):\n    pass\ncounter += 1\ncounter",  # CPU-bound
]


async def _storm(rt: MontyRuntime, calls: int, tasks: int, seed: int) -> tuple[int, int, list[int]]:
    """``calls`` execute() attempts spread over ``tasks`` tasks with random pauses."""
    rng = random.Random(seed)
    ok = 0
    busy = 0
    values: list[int] = []

    async def worker(n: int) -> None:
        nonlocal ok, busy
        for _ in range(n):
            await asyncio.sleep(rng.choice([0, 0, 0.0001, 0.001]))
            try:
                handle = rt.execute(rng.choice(PROGRAMS))
            except StateError as exc:
                assert str(exc) == "Bridge is already executing"
                busy += 1
                continue
            res = await handle.result
            assert res.error is None, res.error
            values.append(res.value)
            ok += 1

    per = [calls // tasks + (1 if i < calls % tasks else 0) for i in range(tasks)]
    await asyncio.wait_for(asyncio.gather(*(worker(n) for n in per)), timeout=60)
    return ok, busy, values


async def tick() -> None:
    await asyncio.sleep(0)


async def test_thousand_overlapping_calls_on_shared_runtime() -> None:
    async with MontyRuntime(functions=[tick]) as rt:
        await rt.run("counter = 0")
        ok, busy, values = await _storm(rt, calls=1000, tasks=25, seed=1)
        assert ok + busy == 1000  # every call settled
        assert ok > 0 and busy > 0  # both outcomes really happened
        # Side effects of the successful executions, counted exactly: never lost, never
        # applied twice, never interleaved.
        assert (await rt.run("counter")).value == ok
        assert sorted(values) == list(range(1, ok + 1))


async def test_thousand_overlapping_calls_on_sandbox_runtime_never_busy() -> None:
    async with MontyRuntime(functions=[tick], sandbox=True) as rt:
        # Each sandbox execution starts from a fresh REPL, so define the counter inline.
        programs = [p.replace("counter += 1", "counter = 0\ncounter += 1") for p in PROGRAMS]
        results = await asyncio.wait_for(
            asyncio.gather(*(rt.execute(programs[i % len(programs)]).result for i in range(1000))),
            timeout=120,
        )
        assert len(results) == 1000
        bad = [(r.value, r.error) for r in results if r.error is not None or r.value != 1]
        assert not bad, bad[:3]


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    tasks=st.integers(min_value=2, max_value=12),
    calls=st.integers(min_value=5, max_value=60),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_overlapping_calls_property(tasks: int, calls: int, seed: int) -> None:
    async def main() -> None:
        async with MontyRuntime(functions=[tick]) as rt:
            await rt.run("counter = 0")
            ok, busy, values = await _storm(rt, calls=calls, tasks=tasks, seed=seed)
            assert ok + busy == calls
            assert (await rt.run("counter")).value == ok
            assert sorted(values) == list(range(1, ok + 1))
            assert not rt.is_executing

    asyncio.run(main())


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(["ok", "error", "timeout", "cancel", "host_error"]),
                min_size=1, max_size=8))
def test_guard_always_released(paths: list[str]) -> None:
    """Whatever mix of outcomes, the runtime ends idle and usable."""

    def fail() -> None:
        raise ValueError("host failure")

    code = {
        "ok": "1",
        "error": "1/0",
        "timeout": "while True: pass",
        "cancel": "import time\nwhile True: time.sleep(0.001)",
        "host_error": "fail()",
    }

    async def main() -> None:
        async with MontyRuntime(functions=[fail]) as rt:
            for path in paths:
                limits = {"timeout": 0.05} if path == "timeout" else None
                h = rt.execute(code[path], limits=limits)
                if path == "cancel":
                    task = asyncio.ensure_future(h.result)
                    await asyncio.sleep(0.01)
                    task.cancel()
                    for _ in range(300):
                        if not rt.is_executing:
                            break
                        await asyncio.sleep(0.01)
                else:
                    await asyncio.wait_for(h.result, 10)
                assert not rt.is_executing, path
            assert (await asyncio.wait_for(rt.run("'alive'"), 10)).value == "alive"

    asyncio.run(main())


def test_guard_is_atomic_across_threads() -> None:
    """Even a runtime wrongly shared between threads admits one execution at a time."""
    import threading

    from monty_runtime._native import native_platform
    from monty_runtime.bridge import PlatformBridge

    for _ in range(20):
        bridge = PlatformBridge(native_platform)
        loop = asyncio.new_event_loop()
        barrier = threading.Barrier(8)
        accepted: list[int] = []
        refused: list[int] = []

        def attempt(i: int, bridge: PlatformBridge = bridge, loop: asyncio.AbstractEventLoop = loop,
                    barrier: threading.Barrier = barrier, accepted: list[int] = accepted,
                    refused: list[int] = refused) -> None:
            barrier.wait()
            try:
                bridge.execute("import time\ntime.sleep(0.05)", on_event=lambda e: None,
                               on_complete=lambda r: None, state=NativeState(loop))
                accepted.append(i)
            except StateError:
                refused.append(i)

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(accepted) == 1 and len(refused) == 7
        loop.run_until_complete(asyncio.sleep(0.1))
        loop.close()
