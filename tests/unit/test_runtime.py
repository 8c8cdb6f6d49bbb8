"""The native runtime end to end: values, state, errors, host functions, events."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import pytest

import monty_runtime
from monty_runtime import (
    ExecutionResult,
    Extension,
    HostFunction,
    Limits,
    MontyRuntime,
    ScriptError,
    StateError,
)


def test_public_api_is_exact() -> None:
    assert sorted(monty_runtime.__all__) == sorted(
        [
            "ExecutionHandle",
            "ExecutionResult",
            "Extension",
            "HostFunction",
            "Limits",
            "MontyRuntime",
            "ScriptError",
            "StateError",
        ]
    )
    for name in monty_runtime.__all__:
        assert getattr(monty_runtime, name) is not None


async def test_value_stdout_and_state_persist() -> None:
    async with MontyRuntime() as rt:
        res = await rt.execute("x = 41\nprint('hello')\nx + 1").result
        assert res.value == 42
        assert res.stdout == "hello\n"
        assert res.error is None and res.ok
        res2 = await rt.execute("x * 2").result
        assert res2.value == 82


async def test_no_last_expression_gives_none() -> None:
    async with MontyRuntime() as rt:
        assert (await rt.run("y = 3")).value is None
        assert (await rt.run("for i in range(3):\n    i")).value is None
        assert (await rt.run("def f():\n    return 1")).value is None


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("if True:\n    'a'\nelse:\n    'b'", "a"),
        ("if False:\n    'a'\nelse:\n    'b'", "b"),
        ("if False:\n    'a'", None),
        ("try:\n    1/0\nexcept ZeroDivisionError:\n    'caught'", "caught"),
        ("try:\n    'body'\nexcept Exception:\n    'handler'", "body"),
        ("try:\n    x = 1\nexcept Exception:\n    'h'\nelse:\n    'else'", "else"),
        ("import contextlib\nwith contextlib.nullcontext():\n    7", 7),
        ("try:\n    5\nfinally:\n    pass", 5),
    ],
)
async def test_last_expression_in_blocks(code: str, expected: Any) -> None:
    async with MontyRuntime() as rt:
        assert (await rt.run(code)).value == expected


async def test_top_level_await() -> None:
    async with MontyRuntime() as rt:
        res = await rt.run("import asyncio\nawait asyncio.sleep(0)\n'done'")
        assert res.value == "done"
        res = await rt.run("async def f():\n    return 5\nawait f()")
        assert res.value == 5


async def test_syntax_error_is_data_and_state_survives() -> None:
    async with MontyRuntime() as rt:
        await rt.run("keep = 1")
        res = await rt.run("x = (1,\ny = 2", script_name="cell.py")
        assert res.error is not None
        assert res.error.type == "SyntaxError"
        assert res.error.lineno == 1
        assert "cell.py" in res.error.traceback
        assert (await rt.run("keep")).value == 1


async def test_runtime_error_traceback_is_trimmed_and_named() -> None:
    async with MontyRuntime() as rt:
        res = await rt.run("def b():\n    return 1/0\ndef a():\n    return b()\na()",
                           script_name="step.py")
        err = res.error
        assert isinstance(err, ScriptError)
        assert err.type == "ZeroDivisionError"
        assert err.message == "division by zero"
        assert err.lineno == 2
        assert err.filename == "step.py"
        assert err.traceback.count('File "step.py"') == 3
        assert "monty_runtime" not in err.traceback
        assert "return 1/0" in err.traceback  # source lines are shown


async def test_error_types_and_messages() -> None:
    async with MontyRuntime() as rt:
        assert (await rt.run("{}['k']")).error == ScriptError(
            "KeyError", "'k'", (await rt.run("{}['k']")).error.traceback, 1, "main.py"  # type: ignore[union-attr]
        )
        assert (await rt.run("raise RuntimeError('custom')")).error.message == "custom"  # type: ignore[union-attr]


# -- the guard ------------------------------------------------------------------------

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


def test_execute_sync_and_context_manager() -> None:
    with MontyRuntime() as rt:
        assert rt.execute_sync("1 + 1").value == 2
        assert rt.execute_sync("_ = 5\n_ * 2").value == 10


async def test_execute_sync_inside_loop_is_refused() -> None:
    async with MontyRuntime() as rt:
        with pytest.raises(RuntimeError, match="running event loop"):
            rt.execute_sync("1")


def test_execute_without_loop_is_a_clear_error() -> None:
    rt = MontyRuntime()
    with pytest.raises(StateError, match="execute_sync"):
        rt.execute("1")


# -- host functions ----------------------------------------------------------------------

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


async def test_schemas_from_type_hints() -> None:
    def search(query: str, limit: int = 10, tags: list[str] | None = None) -> list[str]:
        """Search the notes.

        More text."""
        return []

    rt = MontyRuntime(functions=[search])
    (schema,) = rt.schemas
    assert schema["name"] == "search"
    assert schema["description"] == "Search the notes."
    assert schema["parameters"] == {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "limit": {"type": "integer"},
            "tags": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
        },
        "required": ["query"],
    }


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


async def test_extension_namespace_and_lifecycle() -> None:
    log: list[str] = []

    class Weather(Extension):
        namespace = "weather"

        def functions(self) -> list[Any]:
            def forecast(city: str) -> str:
                return f"sunny in {city}"

            return [forecast]

        def on_attach(self, runtime: MontyRuntime) -> None:
            log.append("attach weather")

        async def on_dispose(self, runtime: MontyRuntime) -> None:
            log.append("dispose weather")

    class Notes(Extension):
        namespace = "notes"

        def functions(self) -> list[Any]:
            async def count() -> int:
                return 3

            return [HostFunction.from_callable(count)]

        async def on_attach(self, runtime: MontyRuntime) -> None:
            log.append("attach notes")

        def on_dispose(self, runtime: MontyRuntime) -> None:
            log.append("dispose notes")

    rt = MontyRuntime(extensions=[Weather(), Notes()])
    assert log == []  # attach happens on first use, not at construction
    assert [s["name"] for s in rt.schemas] == ["weather.forecast", "notes.count"]
    assert (await rt.run("weather.forecast('Oslo')")).value == "sunny in Oslo"
    assert (await rt.run("notes.count()")).value == 3
    assert log == ["attach weather", "attach notes"]
    await rt.dispose()
    assert log == ["attach weather", "attach notes", "dispose notes", "dispose weather"]


async def test_extension_attach_error_rejects_and_dispose_errors_collected() -> None:
    class Bad(Extension):
        namespace = "bad"

        def on_attach(self, runtime: MontyRuntime) -> None:
            raise OSError("no database")

    rt = MontyRuntime(extensions=[Bad()])
    with pytest.raises(StateError, match="failed to attach: OSError: no database"):
        await rt.run("1")

    class Fails(Extension):
        namespace = "fails"

        def on_dispose(self, runtime: MontyRuntime) -> None:
            raise RuntimeError("close failed")

    class Fine(Extension):
        namespace = "fine"
        closed = False

        def on_dispose(self, runtime: MontyRuntime) -> None:
            Fine.closed = True

    rt2 = MontyRuntime(extensions=[Fine(), Fails()])
    await rt2.run("1")
    with pytest.raises(ExceptionGroup) as info:
        rt2.dispose()
    assert "close failed" in str(info.value.exceptions[0])
    assert Fine.closed  # the others were still disposed


# -- off the caller's loop ---------------------------------------------------------------

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


# -- sandbox -----------------------------------------------------------------------------

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


# -- events ------------------------------------------------------------------------------

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


# -- limits ------------------------------------------------------------------------------

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


async def test_recursion_error_keeps_runtime_usable() -> None:
    async with MontyRuntime(limits=Limits(max_recursion_depth=200)) as rt:
        res = await rt.run("def f(n):\n    return f(n + 1)\nf(0)")
        assert res.error is not None and res.error.type == "RecursionError"
        assert (await rt.run("sum(range(10))")).value == 45


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


# -- bad input ---------------------------------------------------------------------------

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


async def test_stdout_restored_outside_executions(capsys: pytest.CaptureFixture[str]) -> None:
    async with MontyRuntime() as rt:
        await rt.run("print('inside')")
    print("outside")
    assert "outside" in capsys.readouterr().out
    assert sys.stdout is not None


async def test_traceback_shows_source_of_the_cell_that_defined_the_function() -> None:
    async with MontyRuntime() as rt:
        await rt.run("def helper():\n    return missing_name")
        res = await rt.run("x = 1\nhelper()")
        assert res.error is not None
        tb = res.error.traceback
        assert "return missing_name" in tb  # line 2 of the first cell, not of this one
        assert "    helper()" in tb
        assert 'File "main.py"' in tb and "#" not in tb


async def test_parallel_sandbox_tracebacks_do_not_mix_sources() -> None:
    async with MontyRuntime(sandbox=True) as rt:
        codes = [f"import time\ntime.sleep(0.01)\nundefined_{i}" for i in range(6)]
        results = await asyncio.gather(*(rt.run(c) for c in codes))
        for i, res in enumerate(results):
            assert res.error is not None
            assert f"    undefined_{i}\n" in res.error.traceback


async def test_getsource_works_for_functions_defined_in_cells() -> None:
    async with MontyRuntime() as rt:
        await rt.run("def f(a):\n    return a + 1")
        res = await rt.run("import inspect\ninspect.getsource(f)")
        assert res.value == "def f(a):\n    return a + 1"
