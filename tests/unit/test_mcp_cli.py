"""``monty-runtime mcp`` without its extra, and its ``--functions`` loader (no Deno needed)."""

from __future__ import annotations

import sys
import types

import pytest

from monty_runtime._mcp import MISSING_SDK, MontyMCP, load_functions
from monty_runtime.cli import main


def test_without_the_mcp_sdk_the_command_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # import mcp -> ImportError
    with pytest.raises(SystemExit) as info:
        main(["mcp"])
    assert str(info.value) == MISSING_SDK
    assert "pip install 'monty-runtime[mcp]'" in MISSING_SDK


def test_functions_come_from_all_or_the_public_functions_defined_in_the_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mod = types.ModuleType("fake_tools")
    exec(
        "import os\n"
        "def visible(a: int) -> int:\n    '''Visible.'''\n    return a\n"
        "def _hidden() -> None: ...\n",
        mod.__dict__,
    )
    monkeypatch.setitem(sys.modules, "fake_tools", mod)
    assert [f.__name__ for f in load_functions(["fake_tools"])] == ["visible"]
    mod.__all__ = ["_hidden"]  # type: ignore[attr-defined]
    assert [f.__name__ for f in load_functions(["fake_tools"])] == ["_hidden"]
    with pytest.raises(SystemExit, match="cannot import"):
        load_functions(["no_such_module_here"])


def test_the_tool_description_lists_signatures_without_starting_a_runtime() -> None:
    def lookup(city: str, units: str = "C") -> dict:  # type: ignore[type-arg]
        """Look the weather up.

        Not in the description."""
        return {}

    state = MontyMCP([lookup], policy="busy")
    assert state.definition["name"] == "run_python"
    assert state.definition["description"].endswith(
        "\n- lookup(city: str, units: str = ...) -- Look the weather up."
    )
    assert state.sessions == {}
