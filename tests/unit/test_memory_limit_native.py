"""``Limits.memory``: checked values, the call's cap inheriting the runtime's, the
worker session telling worker.js the cap of the executions in flight, and the native
in-process backend refusing a cap it cannot honour."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from worker_hooks import FakeHooks

from monty_runtime import Limits, MontyRuntime, worker
from monty_runtime.limits import MIN_MEMORY
from monty_runtime.protocol import PROTOCOL_VERSION

MiB = 2**20


def test_memory_is_an_optional_int_of_at_least_16_mib() -> None:
    assert Limits().memory is None
    assert Limits(memory=64 * MiB).to_dict()["memory"] == 64 * MiB
    assert Limits.coerce({"memory": MIN_MEMORY}).memory == MIN_MEMORY
    with pytest.raises(TypeError):
        Limits(memory=1.5e8)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="16 MiB"):
        Limits(memory=MIN_MEMORY - 1)


def test_a_call_without_memory_keeps_the_runtime_cap() -> None:
    runtime = Limits(memory=64 * MiB)
    assert Limits(timeout=1).inherit(runtime).memory == 64 * MiB
    assert Limits(memory=32 * MiB).inherit(runtime).memory == 32 * MiB
    assert Limits(timeout=1).inherit(Limits()).memory is None


def test_native_in_process_runtime_refuses_a_memory_cap() -> None:
    with pytest.raises(NotImplementedError, match="browser worker backend"):
        MontyRuntime(limits=Limits(memory=64 * MiB))
    rt = MontyRuntime()
    try:
        with pytest.raises(NotImplementedError, match="in-process"):
            rt.execute_sync("1", limits={"memory": 64 * MiB})
    finally:
        rt.dispose()


class CapHooks(FakeHooks):
    def __init__(self) -> None:
        super().__init__()
        self.caps: list[Any] = []
        self.reserve_opened = 0

    def memoryCap(self, cap: Any) -> None:
        self.caps.append(cap)

    def memoryReserve(self) -> None:
        self.reserve_opened += 1


def session(**config: Any) -> tuple[worker.WorkerSession, CapHooks]:
    hooks = CapHooks()
    base = {"version": PROTOCOL_VERSION, "functions": [], "sandbox": False,
            "limits": None, "sync": "none"}
    base.update(config)
    return worker.WorkerSession(hooks, base), hooks


async def test_worker_session_sets_a_calls_cap_and_restores_the_runtimes() -> None:
    s, hooks = session(limits={"memory": 64 * MiB})
    s.execute(1, "1")  # the runtime's cap: nothing to tell worker.js
    await asyncio.sleep(0)
    assert hooks.caps == []
    s.execute(2, "2", '{"memory": 128000000}')
    await asyncio.sleep(0)
    assert hooks.caps == [128_000_000, None]  # the call's, then back to the runtime's
    assert [m["value"] for m in hooks.of("result")] == [1, 2]
    assert hooks.reserve_opened == 2  # the runtime may use the reserve after each code


async def test_sandbox_executions_in_flight_get_the_largest_cap() -> None:
    s, hooks = session(sandbox=True, limits={"memory": 64 * MiB})
    s.execute(1, "import asyncio\nawait asyncio.sleep(0.05)", '{"memory": 100000000}')
    s.execute(2, "import asyncio\nawait asyncio.sleep(0.01)", '{"memory": 200000000}')
    for _ in range(100):
        if len(hooks.of("result")) == 2:
            break
        await asyncio.sleep(0.01)
    assert len(hooks.of("result")) == 2
    assert hooks.caps == [100_000_000, 200_000_000, 100_000_000, None]
