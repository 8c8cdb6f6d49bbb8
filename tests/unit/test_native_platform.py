"""The native platform (monty_runtime._native): code runs off the caller's loop in a
thread, host functions run on that loop (sync or async, called sync-style or
awaited), interrupts reach code blocked in a host call, sandbox runs in parallel."""

from __future__ import annotations

import asyncio
import time

from monty_runtime import (
    Limits,
    MontyRuntime,
    StateError,
)


async def test_host_functions_sync_and_async_both_call_styles() -> None:
    def double(x: int) -> int:
        return x * 2

    async def triple(x: int) -> int:
        await asyncio.sleep(0.001)
        return x * 3

    async with MontyRuntime(functions=[double, triple]) as rt:
        assert (await rt.run("double(2) + triple(2)")).value == 10
        assert (await rt.run("(await double(2)) + (await triple(2))")).value == 10
        code = "async def f():\n    return await triple(1) + double(1)\nawait f()"
        assert (await rt.run(code)).value == 5


async def test_gather_runs_host_calls_concurrently() -> None:
    spans: list[tuple[float, float]] = []

    async def slow(tag: str) -> str:
        t0 = time.perf_counter()
        await asyncio.sleep(0.1)
        spans.append((t0, time.perf_counter()))
        return tag

    async with MontyRuntime(functions=[slow]) as rt:
        res = await rt.run("import asyncio\nawait asyncio.gather(slow('a'), slow('b'))")
        assert res.value == ["a", "b"]
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1, "the two host calls did not overlap"


async def test_bad_arguments_are_type_errors_in_the_code() -> None:
    def greet(name: str, times: int = 1) -> str:
        return name * times

    async with MontyRuntime(functions=[greet]) as rt:
        res = await rt.run(
            "try:\n    greet(5)\nexcept TypeError as e:\n    str(e)"
        )
        assert res.value == "greet() argument 'name' must be string, got int"
        res = await rt.run("greet('a', bogus=1)")
        assert res.error is not None and res.error.type == "TypeError"
        assert "bogus" in res.error.message
        assert (await rt.run("greet('ab', times=2)")).value == "abab"


async def test_host_exception_type_and_message_kept() -> None:
    class QuotaExceeded(Exception):
        pass

    def builtin_err() -> None:
        raise KeyError("missing")

    def custom_err() -> None:
        raise QuotaExceeded("over quota")

    async with MontyRuntime(functions=[builtin_err, custom_err]) as rt:
        res = await rt.run("try:\n    builtin_err()\nexcept KeyError as e:\n    e.args[0]")
        assert res.value == "missing"
        res = await rt.run("custom_err()")
        assert res.error is not None
        assert res.error.type == "QuotaExceeded"
        assert res.error.message == "over quota"
        res = await rt.run("try:\n    custom_err()\nexcept Exception as e:\n    str(e)")
        assert res.value == "over quota"


async def test_host_function_reentering_its_runtime_gets_state_error() -> None:
    holder: dict[str, MontyRuntime] = {}
    seen: list[str] = []

    def reenter() -> str:
        try:
            holder["rt"].execute("1")
        except StateError as exc:
            seen.append(str(exc))
            return "refused"
        return "accepted"

    async def areenter() -> str:
        return reenter()

    async with MontyRuntime(functions=[areenter]) as rt:
        holder["rt"] = rt
        assert (await rt.run("areenter()")).value == "refused"
    assert seen == ["Bridge is already executing"]


async def test_loop_keeps_running_during_cpu_bound_execution_and_slow_host_call() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    async def slow() -> str:
        await asyncio.sleep(0.2)
        return "ok"

    async with MontyRuntime(functions=[slow]) as rt:
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        await rt.run("t = 0\nfor i in range(3_000_000):\n    t += i")
        during_cpu = ticks - before
        before = ticks
        assert (await rt.run("slow()")).value == "ok"
        during_host = ticks - before
        task.cancel()
    assert during_cpu >= 3, f"loop starved during CPU-bound code ({during_cpu} ticks)"
    assert during_host >= 10, f"loop starved during a host call ({during_host} ticks)"


async def test_sandbox_parallel_isolated() -> None:
    async with MontyRuntime(sandbox=True) as rt:
        handles = [
            rt.execute(
                f"import sys, time\nsecret = {i}\nfor _ in range(20):\n"
                f"    sys.stdout.write('{i}')\n    time.sleep(0.001)\n"
                "'secret' in dir() and secret"
            )
            for i in range(8)
        ]
        results = await asyncio.gather(*(h.result for h in handles))
        for i, res in enumerate(results):
            assert res.value == i
            assert res.stdout == str(i) * 20
        res = await rt.run("secret")
        assert res.error is not None and res.error.type == "NameError"


async def test_timeout_while_waiting_on_host_call() -> None:
    async def forever() -> None:
        await asyncio.sleep(100)

    async with MontyRuntime(functions=[forever], limits=Limits(timeout=0.1)) as rt:
        res = await rt.run("forever()")
        assert res.error is not None and res.error.type == "TimeoutError"
        assert not res.session_lost
        res = await rt.run("await forever()")
        assert res.error is not None and res.error.type == "TimeoutError"
        assert (await rt.run("1")).value == 1
