"""The bridge (monty_runtime.bridge) through the native runtime: the guard (busy,
disposed, released on every path), the events of an execution, limits, interrupts,
and input checks before the guard is taken."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from monty_runtime import (
    ExecutionResult,
    Extension,
    HostFunction,
    Limits,
    MontyRuntime,
    StateError,
)


async def test_second_execute_is_rejected_synchronously() -> None:
    async with MontyRuntime() as rt:
        h = rt.execute("import time\ntime.sleep(0.2)\n1")
        with pytest.raises(StateError, match=r"^Bridge is already executing$") as info:
            rt.execute("2")
        assert info.value.reason == "busy"
        assert (await h.result).value == 1
        assert (await rt.run("3")).value == 3


async def test_guard_released_after_python_error() -> None:
    async with MontyRuntime() as rt:
        assert (await rt.run("1/0")).error is not None
        assert not rt.is_executing
        assert (await rt.run("1")).value == 1


async def test_guard_released_after_host_error() -> None:
    def boom() -> None:
        raise ValueError("nope")

    async with MontyRuntime(functions=[boom]) as rt:
        res = await rt.run("boom()")
        assert res.error is not None and res.error.type == "ValueError"
        assert (await rt.run("1")).value == 1


async def test_guard_released_when_awaiting_task_is_cancelled() -> None:
    async with MontyRuntime() as rt:
        h = rt.execute("while True:\n    pass")
        waiter = asyncio.ensure_future(h.result)
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        for _ in range(200):
            if not rt.is_executing:
                break
            await asyncio.sleep(0.01)
        assert not rt.is_executing
        assert (await rt.run("'usable'")).value == "usable"


async def test_guard_released_when_consumer_stops_reading_events() -> None:
    async with MontyRuntime() as rt:
        h = rt.execute("for i in range(100):\n    print(i)\n'end'")
        async for _ev in h.events:
            break  # stop reading after one event
        assert (await h.result).value == "end"
        assert (await rt.run("1")).value == 1


async def test_disposed_runtime_and_bridge_messages() -> None:
    rt = MontyRuntime()
    await rt.run("1")
    bridge = rt._bridge
    assert bridge is not None
    rt.dispose()
    rt.dispose()  # idempotent
    with pytest.raises(StateError, match=r"^MontyRuntime has been disposed$") as info:
        rt.execute("1")
    assert info.value.reason == "disposed"
    with pytest.raises(StateError, match=r"^Bridge has been disposed$"):
        bridge.check_ready()


async def test_dispose_rejects_running_execution() -> None:
    rt = MontyRuntime()
    h = rt.execute("while True:\n    pass")
    await asyncio.sleep(0.02)
    rt.dispose()
    with pytest.raises(StateError, match="disposed"):
        await asyncio.wait_for(h.result, 5)


async def test_event_order_and_shapes() -> None:
    def tool(x: int) -> int:
        print("in host")
        return x + 1

    async with MontyRuntime(functions=[tool]) as rt:
        all_events = rt.events
        h = rt.execute("print('a')\ny = tool(1)\nprint('b')\ny")
        events = [e.to_dict() async for e in h.events]
        res = await h.result
    types_ = [e["type"] for e in events]
    assert types_ == ["run_started", "print", "call_started", "print", "call_finished", "print",
                      "run_finished"]
    assert events[2]["name"] == "tool" and events[2]["args"] == [1] and events[2]["kwargs"] == {}
    assert events[3]["text"] == "in host\n"
    assert events[4]["result"] == 2 and events[4]["call_id"] == events[2]["call_id"]
    assert events[-1]["value"] == 2
    assert res.stdout == "a\nin host\nb\n"
    assert all(e["execution_id"] == h.execution_id for e in events)
    seen = [e.to_dict() async for e in all_events]  # closed at dispose
    assert [e["type"] for e in seen] == types_


async def test_error_run_ends_with_single_run_error() -> None:
    async with MontyRuntime() as rt:
        h = rt.execute("print('x')\n1/0")
        events = [e async for e in h.events]
        assert [e.type for e in events] == ["run_started", "print", "run_error"]
        assert events[-1].to_dict()["error"]["type"] == "ZeroDivisionError"


async def test_print_events_coalesce_for_slow_consumer() -> None:
    async with MontyRuntime() as rt:
        h = rt.execute("for i in range(20000):\n    print(i)")
        res = await h.result  # read nothing until the end
        events = [e async for e in h.events]
        prints = [e for e in events if e.type == "print"]
        assert "".join(e.text for e in prints) == res.stdout  # type: ignore[union-attr]
        assert len(prints) < 200


async def test_timeout_interrupts_and_keeps_state() -> None:
    async with MontyRuntime(limits=Limits(timeout=0.2)) as rt:
        await rt.run("kept = 'yes'")
        res = await rt.run("while True:\n    try:\n        pass\n    except Exception:\n        pass")
        assert res.error is not None and res.error.type == "TimeoutError"
        assert not res.session_lost
        assert (await rt.run("kept")).value == "yes"


async def test_timeout_in_uninterruptible_code_loses_session_and_says_so() -> None:
    async with MontyRuntime(limits=Limits(timeout=0.1, grace=0.2)) as rt:
        await rt.run("kept = 1")
        res = await rt.run("import time\ntime.sleep(3)")
        assert res.error is not None and res.error.type == "TimeoutError"
        assert res.session_lost
        after = await rt.run("kept")
        assert after.error is not None and after.error.type == "NameError"


async def test_output_limit() -> None:
    async with MontyRuntime(limits=Limits(max_output_bytes=1000)) as rt:
        res = await rt.run("while True:\n    try:\n        print('x' * 99)\n    except Exception:\n"
                           "        pass")
        assert res.error is not None and res.error.type == "OutputLimitExceeded"
        assert len(res.stdout.encode()) == 1000
        assert (await rt.run("1")).value == 1


async def test_result_limit() -> None:
    async with MontyRuntime(limits=Limits(max_result_bytes=100)) as rt:
        res = await rt.run("'x' * 1000")
        assert res.error is not None and res.error.type == "ResultTooLarge"
        assert res.value is None
        assert (await rt.run("'x' * 10")).value == "x" * 10


async def test_per_call_limits_override() -> None:
    async with MontyRuntime() as rt:
        res = await rt.run("while True: pass", limits={"timeout": 0.1})
        assert res.error is not None and res.error.type == "TimeoutError"


async def test_interrupt_keeps_globals() -> None:
    async with MontyRuntime() as rt:
        await rt.run("g = 'kept'")
        h = rt.execute("while True:\n    pass")
        await asyncio.sleep(0.05)
        assert rt.interrupt()
        res = await h.result
        assert res.error is not None and res.error.type == "KeyboardInterrupt"
        assert (await rt.run("g")).value == "kept"


async def test_bad_input_errors() -> None:
    def f() -> None: ...

    rt = MontyRuntime()
    with pytest.raises(TypeError, match="code must be a str, got int"):
        rt.execute(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got NoneType"):
        rt.execute(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="over the limit"):
        rt.execute("#" * 1_000_001)
    with pytest.raises(TypeError):
        rt.execute("1", bogus=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        MontyRuntime(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="callable"):
        MontyRuntime(functions=[42])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="duplicate"):
        MontyRuntime(functions=[f, f])
    with pytest.raises(TypeError, match="sandbox"):
        MontyRuntime(sandbox="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Limits(timeout=-1)
    with pytest.raises(TypeError, match="unknown limit"):
        MontyRuntime(limits={"timeot": 1})

    class Mismatch(Extension):
        namespace = "a"

        def functions(self) -> list[Any]:
            return [HostFunction.from_callable(f, name="b.f")]

    with pytest.raises(ValueError, match="not in its namespace 'a'"):
        MontyRuntime(extensions=[Mismatch()])

    class NoNamespace(Extension):
        pass

    with pytest.raises(ValueError, match="identifier"):
        MontyRuntime(extensions=[NoNamespace()])
    # nothing above left the runtime in a bad state
    res = await rt.run("1")
    assert isinstance(res, ExecutionResult) and res.value == 1


async def test_inputs_and_script_name_validation() -> None:
    async with MontyRuntime() as rt:
        assert (await rt.run("a + b", inputs={"a": 1, "b": 2})).value == 3
        with pytest.raises(TypeError, match="identifiers"):
            rt.execute("1", inputs={"not valid": 1})
        with pytest.raises(ValueError, match="script_name"):
            rt.execute("1", script_name="")
