"""The engine adapters' pieces that need no browser: engine selection and the JSON value
bridge of tests/browser/support/engines.py (the browsers themselves: tests/browser)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _engines() -> ModuleType:
    module = sys.modules.get("engines")
    if module is not None and hasattr(module, "selected_engines"):
        return module
    spec = importlib.util.spec_from_file_location("engines", ROOT / "tests/browser/support/engines.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["engines"] = module
    spec.loader.exec_module(module)
    return module


engines = _engines()


def test_engine_selection() -> None:
    assert engines.selected_engines("") == ["chromium", "firefox", "webkit"]
    assert engines.selected_engines("all") == ["chromium", "firefox", "webkit"]
    assert engines.selected_engines(" firefox , webkit") == ["firefox", "webkit"]
    with pytest.raises(ValueError, match="safari"):
        engines.selected_engines("chromium,safari")


def test_values_json_cannot_hold_are_kept() -> None:
    def mark(name: str) -> dict[str, str]:
        return {engines._SPECIAL: name}

    # As the page writes it (JSON.stringify escapes the marker's NUL).
    text = json.dumps({"a": mark("NaN"), "b": mark("-0"),
                       "c": [mark("Infinity"), mark("-Infinity")], "d": None})
    value = engines.decode_result(text)
    assert math.isnan(value["a"])
    assert value["b"] == 0.0 and math.copysign(1.0, value["b"]) == -1.0
    assert value["c"] == [math.inf, -math.inf]
    assert value["d"] is None


def test_the_page_function_is_spliced_in_as_code() -> None:
    wrapped = engines.wrap_source("async (x) => x + 1")
    assert "(async (x) => x + 1)" in wrapped
    assert wrapped.startswith("async (argText) =>")


def test_a_missing_engine_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "FIREFOX_PATH", "/nonexistent/firefox-esr")
    message = engines.missing_message("firefox")
    assert message is not None and "scripts/dev setup" in message
    monkeypatch.setattr(engines, "WEBKIT_DRIVER_PATH", "/nonexistent/WebKitWebDriver")
    message = engines.missing_message("webkit")
    assert message is not None and "WebKitWebDriver" in message
