"""The REPL (monty_runtime.repl) through the native runtime: the value of the last
expression, state kept between executions, top-level await, errors as data with
tracebacks trimmed to the user's frames and named after the script, source kept for
inspect and tracebacks."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from monty_runtime import (
    Limits,
    MontyRuntime,
    ScriptError,
)


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


async def test_recursion_error_keeps_runtime_usable() -> None:
    async with MontyRuntime(limits=Limits(max_recursion_depth=200)) as rt:
        res = await rt.run("def f(n):\n    return f(n + 1)\nf(0)")
        assert res.error is not None and res.error.type == "RecursionError"
        assert (await rt.run("sum(range(10))")).value == 45


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
