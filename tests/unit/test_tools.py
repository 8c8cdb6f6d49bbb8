"""The three tool-binding policies under parallel tool calls."""

from __future__ import annotations

import asyncio
import json

import pytest

from monty_runtime import MontyRuntime
from monty_runtime.tools import BusyBinding, QueueBinding, SandboxBinding, bind_tool


def test_definition_is_openai_style() -> None:
    def lookup(city: str) -> str:
        return city

    binding = bind_tool(MontyRuntime(functions=[lookup]), "queue")
    d = binding.definition()
    assert d["type"] == "function"
    fn = d["function"]
    assert fn["name"] == "run_python"
    assert "lookup" in fn["description"]
    assert fn["parameters"]["required"] == ["code"]
    assert fn["parameters"]["properties"]["code"]["type"] == "string"
    json.dumps(d)


async def test_queue_policy_runs_parallel_calls_in_order_and_keeps_state() -> None:
    async with MontyRuntime() as rt:
        tool = QueueBinding(rt)
        await tool.call({"code": "log = []"})
        calls = [
            tool.call(json.dumps({"code": f"import asyncio\nawait asyncio.sleep(0.01)\n"
                                          f"log.append({i})\nlen(log)"}))
            for i in range(10)
        ]
        results = await asyncio.gather(*calls)
        assert [r["status"] for r in results] == ["ok"] * 10
        assert [r["value"] for r in results] == list(range(1, 11))
        assert (await tool.call({"code": "log"}))["value"] == list(range(10))


async def test_queue_policy_failure_does_not_block_next() -> None:
    async with MontyRuntime() as rt:
        tool = QueueBinding(rt)
        results = await asyncio.gather(
            tool.call({"code": "1/0"}),
            tool.call({"code": "'after'"}),
            tool.call({"code": 5}),  # bad arguments
            tool.call({"code": "'last'"}),
        )
        assert results[0]["status"] == "error"
        assert results[0]["error"]["type"] == "ZeroDivisionError"
        assert results[1] == {"status": "ok", "value": "after", "stdout": "", "error": None}
        assert results[2]["status"] == "error"
        assert results[2]["error"]["type"] == "InvalidArguments"
        assert results[3]["value"] == "last"


async def test_queue_policy_survives_a_cancelled_call() -> None:
    async with MontyRuntime() as rt:
        tool = QueueBinding(rt)
        first = asyncio.ensure_future(tool.call({"code": "import time\ntime.sleep(0.1)\n1"}))
        second = asyncio.ensure_future(tool.call({"code": "2"}))
        await asyncio.sleep(0.02)
        second.cancel()
        third = await asyncio.wait_for(tool.call({"code": "3"}), 5)
        assert (await first)["value"] == 1
        assert third["value"] == 3


async def test_busy_policy_returns_structured_busy() -> None:
    async with MontyRuntime() as rt:
        tool = BusyBinding(rt, min_retry_ms=25)
        results = await asyncio.gather(
            tool.call({"code": "import time\ntime.sleep(0.05)\n'first'"}),
            tool.call({"code": "'second'"}),
            tool.call({"code": "'third'"}),
        )
        assert results[0]["status"] == "ok" and results[0]["value"] == "first"
        for r in results[1:]:
            assert r["status"] == "busy"
            assert r["retry_after_ms"] >= 25
            assert r["error"] == {"type": "StateError", "message": "Bridge is already executing"}
        # the model retries: now it runs
        assert (await tool.call({"code": "'second'"}))["value"] == "second"


async def test_busy_policy_failure_then_good_calls() -> None:
    async with MontyRuntime() as rt:
        tool = BusyBinding(rt)
        assert (await tool.call({"code": "raise ValueError('x')"}))["error"]["type"] == "ValueError"
        assert (await tool.call({"code": "1 + 1"}))["value"] == 2


async def test_sandbox_policy_parallel_all_succeed_without_shared_state() -> None:
    async with MontyRuntime(sandbox=True) as rt:
        tool = SandboxBinding(rt)
        results = await asyncio.gather(
            *(tool.call({"code": f"import time\ntime.sleep(0.01)\nv = {i}\nprint(v)\nv"})
              for i in range(12))
        )
        assert [r["value"] for r in results] == list(range(12))
        assert [r["stdout"] for r in results] == [f"{i}\n" for i in range(12)]
        leaked = await tool.call({"code": "v"})
        assert leaked["status"] == "error" and leaked["error"]["type"] == "NameError"


def test_policy_errors() -> None:
    with pytest.raises(ValueError, match="sandbox=True"):
        SandboxBinding(MontyRuntime())
    with pytest.raises(ValueError, match="unknown policy"):
        bind_tool(MontyRuntime(), "lifo")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        QueueBinding("not a runtime")  # type: ignore[arg-type]


async def test_bad_arguments_never_raise() -> None:
    async with MontyRuntime() as rt:
        tool = BusyBinding(rt)
        for bad in ["not json", "[]", {"cod": "1"}, {"code": None}, {"code": "1", "x": 2}, 7]:
            out = await tool.call(bad)
            assert out["status"] == "error"
            assert out["error"]["type"] == "InvalidArguments"


async def test_disposed_runtime_is_reported_not_raised() -> None:
    rt = MontyRuntime()
    rt.dispose()
    out = await QueueBinding(rt).call({"code": "1"})
    assert out["status"] == "error"
    assert out["error"] == {"type": "StateError", "message": "MontyRuntime has been disposed"}


async def test_queue_policy_call_cancelled_while_running_does_not_make_next_busy() -> None:
    async with MontyRuntime() as rt:
        tool = QueueBinding(rt)
        running = asyncio.ensure_future(
            tool.call({"code": "import time\nfor _ in range(50):\n    time.sleep(0.01)"})
        )
        await asyncio.sleep(0.05)
        running.cancel()
        nxt = await asyncio.wait_for(tool.call({"code": "'next'"}), 5)
        assert nxt["status"] == "ok" and nxt["value"] == "next"
