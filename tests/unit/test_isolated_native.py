"""``sandbox="isolated"`` natively: each execution in a fresh subprocess (``_isolated``).

Nothing one execution does is seen by the next, host functions (sync and async) work
across the pipe, parallel executions run, ``Limits.memory`` caps the child's data
segment (every memory bomb ends in ``MemoryError``), timeouts hold. Cost figures are in
benchmarks/isolation.py.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from monty_runtime import Limits, MontyRuntime

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_DATA semantics are Linux's")

MiB = 2**20


async def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def mul(a: int, b: int) -> int:
    """Multiply two numbers."""
    return a * b


async def test_isolated_executions_share_nothing_and_call_host_functions() -> None:
    rt = MontyRuntime(functions=[add, mul], sandbox="isolated")
    try:
        first = await rt.execute(
            "import json, sys, builtins\njson.leak = 1\nsys.modules['planted'] = json\n"
            "builtins.leak = 1\nsecret = 1\nprint('hi')\nadd(1, 2) + add(3, 4) + mul(2, 3)"
        ).result
        assert first.error is None and first.value == 16 and first.stdout == "hi\n"
        second = await rt.execute(
            "import json, sys, builtins\n[getattr(json, 'leak', None), 'planted' in sys.modules,"
            " getattr(builtins, 'leak', None), 'secret' in globals()]"
        ).result
        assert second.value == [None, False, None, False]
        bad = await rt.execute("add('x')").result
        assert bad.error is not None and bad.error.type == "TypeError"
    finally:
        rt.dispose()


async def test_isolated_executions_run_in_parallel_with_events() -> None:
    rt = MontyRuntime(sandbox="isolated")
    try:
        handles = [rt.execute(f"import os, time\ntime.sleep(0.3)\nprint({i})\n(os.getpid(), {i})")
                   for i in range(3)]
        results = await asyncio.gather(*(h.result for h in handles))
        assert [r.value[1] for r in results] == [0, 1, 2]
        assert len({r.value[0] for r in results}) == 3  # three processes
        events = [ev.type for ev in handles[0].events.drain()]
        assert events[0] == "run_started" and events[-1] == "run_finished" and "print" in events
    finally:
        rt.dispose()


BOMBS = {
    "bytearray": "bytearray(10**9)",
    "list_loop": "a = []\nwhile True:\n    a.append(bytearray(10**6))",
    "deep_structure": "d = {}\nnode = d\nwhile True:\n    node['k'] = {'pad': 'x' * 200}\n    node = node['k']",
}


@pytest.mark.parametrize("bomb", list(BOMBS))
async def test_memory_bombs_hit_the_cap_with_memory_error(bomb: str) -> None:
    rt = MontyRuntime(sandbox="isolated", limits=Limits(memory=128 * MiB))
    try:
        res = await asyncio.wait_for(rt.execute(BOMBS[bomb]).result, 120)
        assert res.error is not None and res.error.type == "MemoryError", res
        after = await rt.execute("len(bytearray(50 * 2**20))").result
        assert after.value == 50 * MiB
    finally:
        rt.dispose()


async def test_a_call_may_raise_the_cap_and_timeouts_hold() -> None:
    rt = MontyRuntime(sandbox="isolated", limits=Limits(memory=64 * MiB))
    try:
        over = await rt.execute("len(bytearray(100 * 2**20))").result
        assert over.error is not None and over.error.type == "MemoryError"
        raised = await rt.execute("len(bytearray(100 * 2**20))", limits={"memory": 256 * MiB}).result
        assert raised.value == 100 * MiB
        spin = await rt.execute("while True: pass", limits={"timeout": 0.5}).result
        assert spin.error is not None and spin.error.type == "TimeoutError"
    finally:
        rt.dispose()


def test_isolated_mode_refuses_extensions_and_bad_modes() -> None:
    from monty_runtime import Extension

    class Ext(Extension):
        namespace = "ext"

    with pytest.raises(TypeError, match="isolated"):
        MontyRuntime(sandbox="isolated", extensions=[Ext()])
    with pytest.raises(TypeError, match="isolated"):
        MontyRuntime(sandbox="shared")  # type: ignore[arg-type]
