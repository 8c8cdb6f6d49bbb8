"""The Python side of the browser worker's warm start (monty_runtime._snapshot) and the
compact JSON of worker messages (monty_runtime._wire)."""

from __future__ import annotations

import json
import math
import random
import sys
from typing import Any

import pytest

from monty_runtime import _snapshot, _wire, worker


class Hooks:
    def __init__(self) -> None:
        self.posted: list[str] = []

    def post(self, text: str) -> None:
        self.posted.append(text)

    def promise(self, call_id: int) -> Any:
        return None

    def settle(self, call_id: int, text: str) -> None:
        pass

    def waitSync(self) -> Any:
        return None


@pytest.fixture
def no_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "_session", None)


def test_clean_before_a_session_exists(no_session: None) -> None:
    assert _snapshot.check_clean() is None
    assert _snapshot.after_restore() is None


def test_not_clean_once_a_session_exists(no_session: None) -> None:
    worker.start({"version": 1, "functions": [], "sandbox": False, "limits": None,
                  "sync": "auto"}, Hooks())
    assert _snapshot.check_clean() == "a worker session already exists"
    assert _snapshot.after_restore() == "a worker session already exists"


def test_after_restore_needs_the_worker_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "monty_runtime.worker")
    assert _snapshot.check_clean() == "monty_runtime.worker is not imported"
    assert "does not hold monty_runtime.worker" in (_snapshot.after_restore() or "")


def test_after_restore_reseeds_random(no_session: None) -> None:
    state = random.getstate()
    try:
        random.seed(1234)
        expected = random.random()
        random.seed(1234)  # what a snapshot would carry
        assert _snapshot.after_restore() is None
        assert random.random() != expected
    finally:
        random.setstate(state)


@pytest.mark.parametrize(
    "value",
    [
        1, -0.0, 10**40, "plain", "é ☃ \ud800", "", None, True, [], {},
        {"type": "event", "id": 3, "event": {"type": "print", "text": "a\nb\t\"c\""}},
        [1.5, float("inf"), float("-inf"), {"nested": [None, False]}],
    ],
)
def test_wire_dumps_is_compact_json(value: Any) -> None:
    assert _wire.dumps(value) == json.dumps(value, separators=(",", ":"))


def test_wire_dumps_nan_and_errors() -> None:
    assert _wire.dumps(math.nan) == "NaN"
    with pytest.raises(TypeError, match="not JSON serializable"):
        _wire.dumps({"x": object()})
