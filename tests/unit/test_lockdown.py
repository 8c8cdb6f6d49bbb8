"""The Python import guard (monty_runtime._lockdown), natively.

In the browser worker it is always on; natively it is off unless enabled, and then it
only refuses the JavaScript bridge modules and monty_runtime to executed code.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest

from monty_runtime import MontyRuntime, _lockdown, repl


@pytest.fixture
def guard() -> Iterator[None]:
    _lockdown.enable()
    try:
        yield
    finally:
        _lockdown.disable()


def run(rt: MontyRuntime, code: str) -> tuple[object, str | None]:
    res = rt.execute_sync(code)
    return res.value, None if res.error is None else f"{res.error.type}: {res.error.message}"


def test_off_by_default_natively() -> None:
    assert not _lockdown.enabled()
    assert repl.new_builtins is repl.default_builtins
    rt = MontyRuntime()
    assert run(rt, "import monty_runtime\nmonty_runtime.__name__") == ("monty_runtime", None)
    rt.dispose()


@pytest.mark.parametrize("name", ["js", "js.foo", "pyodide", "pyodide.ffi", "pyodide_js",
                                  "_pyodide", "_pyodide._base", "_pyodide_core", "micropip",
                                  "monty_runtime", "monty_runtime.worker"])
def test_denied_names(name: str) -> None:
    assert _lockdown.is_denied(name)


@pytest.mark.parametrize("name", ["json", "jsonschema", "pyodidex", "asyncio", "monty",
                                  "monty_runtime_extra", "micropipe"])
def test_allowed_names(name: str) -> None:
    assert not _lockdown.is_denied(name)


ROUTES = [
    "import monty_runtime",
    "import monty_runtime.worker",
    "from monty_runtime import repl",
    "from monty_runtime.repl import Repl",
    "__import__('monty_runtime')",
    "__builtins__.__import__('monty_runtime')",
    "import importlib\nimportlib.import_module('monty_runtime.repl')",
    "import importlib\nimportlib.import_module('.repl', 'monty_runtime')",
    "import importlib\nimportlib.__import__('monty_runtime')",
    "exec('import monty_runtime')",
    "exec('import monty_runtime', {})",
    "eval(\"__import__('monty_runtime')\")",
    "def f():\n    import monty_runtime\nf()",
    "import builtins\nbuiltins.__import__('monty_runtime')",
    "g = {}\nexec('import builtins\\nb = builtins', g)\ng['b'].__import__('monty_runtime')",
    "__package__ = 'monty_runtime'\nfrom . import repl",
    "async def f():\n    import monty_runtime\nawait f()",
]


@pytest.mark.parametrize("code", ROUTES)
def test_every_normal_route_is_refused(guard: None, code: str) -> None:
    rt = MontyRuntime()
    _value, error = run(rt, code)
    assert error is not None and error.startswith("ImportError: import of 'monty_runtime"), error
    assert "not allowed in this runtime" in error
    rt.dispose()


def test_the_refusal_is_a_normal_python_error(guard: None) -> None:
    rt = MontyRuntime()
    res = rt.execute_sync("x = 1\nimport monty_runtime")
    assert res.error is not None
    assert res.error.type == "ImportError"
    assert res.error.lineno == 2
    # The traceback shows the user's line only, not the guard's frames.
    assert "_lockdown" not in res.error.traceback
    assert run(rt, "try:\n    import monty_runtime\nexcept ImportError:\n    r = 'no'\nr") == (
        "no", None)
    assert run(rt, "x") == (1, None)  # the REPL survives
    rt.dispose()


def test_ordinary_code_is_unaffected(guard: None) -> None:
    rt = MontyRuntime()
    code = (
        "import json, asyncio, builtins, importlib, sys\n"
        "await asyncio.sleep(0)\n"
        "assert builtins is __builtins__ and builtins.print is print\n"
        "assert importlib.import_module('json') is json\n"
        "[json.dumps({'a': 1}), sys.version_info >= (3, 11), len('abc')]"
    )
    assert run(rt, code) == (['{"a": 1}', True, 3], None)
    rt.dispose()


def test_host_functions_and_the_runtime_keep_their_imports(guard: None) -> None:
    def lazy() -> str:
        # A host function runs as host code: it may import anything.
        from monty_runtime import tools

        return tools.__name__

    rt = MontyRuntime(functions=[lazy])
    assert run(rt, "lazy()") == ("monty_runtime.tools", None)
    # The test's own (non-executed) code is not guarded either.
    assert importlib.import_module("monty_runtime.tools").__name__ == "monty_runtime.tools"
    assert __import__("monty_runtime").__name__ == "monty_runtime"
    rt.dispose()


def test_each_repl_gets_its_own_builtins(guard: None) -> None:
    rt = MontyRuntime(sandbox=True)
    assert run(rt, "__builtins__.len = lambda x: 42\nlen('ab')") == (42, None)
    assert run(rt, "len('ab')") == (2, None)  # a fresh REPL: untouched builtins
    rt.dispose()
    shared = MontyRuntime()
    assert run(shared, "len('ab')") == (2, None)
    shared.dispose()


def test_the_guard_is_bypassable_by_walking_objects(guard: None) -> None:
    """Documented: defence in depth only."""
    rt = MontyRuntime()
    value, error = run(rt, "import sys\nsys.modules['monty_runtime'].__name__")
    assert (value, error) == ("monty_runtime", None)
    value, error = run(rt, "import json\nvars(json)['__builtins__']['__import__']"
                           "('monty_runtime').__name__")
    assert (value, error) == ("monty_runtime", None)
    rt.dispose()


def test_enable_and_disable(guard: None) -> None:
    assert _lockdown.enabled()
    _lockdown.enable()  # idempotent
    assert repl.new_builtins is _lockdown.guarded_builtins
    _lockdown.disable()
    assert not _lockdown.enabled()
    assert repl.new_builtins is repl.default_builtins
    assert importlib.import_module.__module__ == "importlib"
    rt = MontyRuntime()
    assert run(rt, "import monty_runtime\nmonty_runtime.__name__") == ("monty_runtime", None)
    rt.dispose()
    _lockdown.disable()  # idempotent
