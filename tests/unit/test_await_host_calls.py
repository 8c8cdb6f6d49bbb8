"""Sync-style host calls where the platform cannot block (a browser without JSPI and
without SharedArrayBuffer, e.g. WebKitGTK 2.50): the REPL awaits top-level calls
(``repl.await_host_calls``) so that the cell gets what a blocking call returns -- every
call in a cell without ``await`` of its own, the calls used as values in a cell that
awaits already -- and leaves every other call as written."""

from __future__ import annotations

import ast
import asyncio
from typing import Any

import pytest

from monty_runtime.repl import Repl, await_host_calls

NAMES = frozenset({"f", "ns.g"})


def rewritten(source: str) -> tuple[int, str]:
    tree = ast.parse(source)
    count = await_host_calls(tree, NAMES)
    return count, ast.unparse(tree)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = f(1)", "x = await f(1)"),
        ("f(1) + f(2)", "await f(1) + await f(2)"),
        ("y = ns.g(2)", "y = await ns.g(2)"),
        ("for i in range(3):\n    t = f(i)", "for i in range(3):\n    t = await f(i)"),
        ("if f(1):\n    pass", "if await f(1):\n    pass"),
        # A cell without await is sync code: every call blocks there, whatever uses it.
        ("x = f(f(1))", "x = await f(await f(1))"),
        ("[ok, f(1)]", "[ok, await f(1)]"),
        ("print(f(1))", "print(await f(1))"),
        ("out.append(f(i))", "out.append(await f(i))"),
        ("d = {'a': f(1)}", "d = {'a': await f(1)}"),
        # A cell that awaits already: only the calls used as values.
        ("x = await f(1)", "x = await f(1)"),
        ("x = f(1)\nawait asyncio.sleep(0)", "x = await f(1)\nawait asyncio.sleep(0)"),
    ],
)
def test_top_level_calls_are_awaited_where_a_blocking_call_would_return_a_value(
    source: str, expected: str
) -> None:
    assert rewritten(source)[1] == expected


@pytest.mark.parametrize(
    "source",
    [
        "await asyncio.gather(f(1), f(2))",  # handed to a call in async code: awaitables
        "tasks = [f(1), f(2)]\nawait asyncio.gather(*tasks)",  # a container of awaitables
        "def h():\n    return f(1)",  # a function of its own
        "h = lambda: f(1)",
        "class C:\n    v = f(1)",
        "[f(i) for i in range(3)]",  # comprehensions are scopes of their own
        "sum(f(i) for i in range(3))",
        "x = g(1)",  # not a host function
        "x = ns.h(1)",
        "def f(u):\n    return u\nf(1)",  # the cell rebinds the name: not the host's
        "from m import f\nf(1)",
        "f = str\nx = f(1)",
        "import ns\nns.g(1)",
    ],
)
def test_other_calls_are_left_as_written(source: str) -> None:
    count, text = rewritten(source)
    assert count == 0
    assert text == ast.unparse(ast.parse(source))


def test_a_rewritten_cell_runs_as_a_coroutine_that_awaits_the_calls() -> None:
    calls: list[Any] = []

    async def f(x: int) -> int:
        calls.append(x)
        return x * 10

    repl = Repl()
    repl.globals["f"] = f
    cell = repl.compile("x = f(1)\ny = f(2) + 1\nx + y", "main.py", frozenset({"f"}))
    assert cell.is_async
    asyncio.run(repl.start(cell))
    assert repl.take_value() == 31
    assert calls == [1, 2]
    # The same source without the rewrite is another compiled cell (the cache key).
    plain = repl.compile("x = f(1)\ny = f(2) + 1\nx + y", "main.py")
    assert not plain.is_async


def test_line_numbers_are_kept() -> None:
    async def f(x: int) -> int:
        raise ValueError(x)

    repl = Repl()
    repl.globals["f"] = f
    cell = repl.compile("a = 1\nb = f(2)\n", "main.py", frozenset({"f"}))
    with pytest.raises(ValueError) as info:
        asyncio.run(repl.start(cell))
    error = repl.script_error(info.value)
    assert error.lineno == 2


def test_a_name_rebound_in_an_earlier_cell_is_not_awaited_any_more() -> None:
    """The bridge asks for the names that still mean the host function."""
    from monty_runtime._pyodide import PyodidePlatform
    from monty_runtime.bridge import PlatformBridge
    from monty_runtime.extensions import HostFunction

    class Hooks:
        def post(self, text: str) -> None: ...

    async def fetch(u: str) -> str:
        return "real"

    platform = PyodidePlatform(Hooks(), capabilities={"jspi": False})  # type: ignore[arg-type]
    assert platform.awaits_top_level_calls
    bridge = PlatformBridge(platform, [HostFunction.from_callable(fetch)])
    assert bridge._await_calls() == frozenset({"fetch"})
    bridge.repl.globals["fetch"] = lambda u: "shadow"
    assert bridge._await_calls() == frozenset()
