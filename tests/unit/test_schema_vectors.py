"""The host-call argument rule is one rule on both sides: the worker checks a call
against the function's JSON Schema (``HostFunction.bind``), and the page checks every
``host_call`` it receives again (``web/shared/schema.js``), since executed code can post one
with any arguments.  ``tests/schema_vectors.json`` holds shared cases: this module runs
them through the Python checker, ``tests/node/schema.test.mjs`` through the JavaScript
one, and both assert the same verdicts, so the two cannot drift apart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monty_runtime import codec
from monty_runtime._pyodide import PyodidePlatform
from monty_runtime.worker import host_function_from_schema

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parents[1] / "schema_vectors.json").read_text(encoding="utf-8")
)


class _Hooks:
    def post(self, text: str) -> None:  # pragma: no cover - never called here
        raise AssertionError(text)


def _verdict(vector: dict[str, Any]) -> bool:
    spec = {"name": "f", "description": "", "parameters": vector["parameters"]}
    hf = host_function_from_schema(spec, PyodidePlatform(_Hooks()))  # type: ignore[arg-type]
    args = codec.decode(vector["args"])
    kwargs = codec.decode(vector["kwargs"])
    try:
        hf.bind(tuple(args), kwargs)
    except TypeError:
        return False
    return True


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_the_worker_judges_each_shared_vector_as_recorded(vector: dict[str, Any]) -> None:
    assert _verdict(vector) is vector["ok"]


def test_the_vectors_cover_both_verdicts_and_have_unique_names() -> None:
    names = [v["name"] for v in VECTORS]
    assert len(names) == len(set(names))
    assert {v["ok"] for v in VECTORS} == {True, False}
