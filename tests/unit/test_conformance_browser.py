"""The browser backend's pure-Python parts (no browser): how cases are planned onto
runtimes and shipped to the page, the expectations of the browser columns, and the
comparison rules they rely on.  The browser run itself is
tests/conformance/test_conformance_chromium.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from monty_dev.conformance import (
    Case,
    CaseOutcome,
    CorpusError,
    NativeBackend,
    load_corpus,
    load_expectations,
    run_cases,
)
from monty_dev.conformance.chromium import (
    ChromiumBackend,
    case_spec,
    host_script,
)
from monty_dev.conformance.cli import _backend_names
from monty_dev.conformance.corpus import parse_case
from monty_runtime import codec


def case(obj: dict[str, Any]) -> Case:
    return parse_case({"id": 1, **obj}, "corp", "mem.json", 0)


# -- the host script ----------------------------------------------------------------------


def test_host_script_follows_hostscript() -> None:
    c = case(
        {
            "code": "f()",
            "externalFunctions": ["f", "g"],
            "resumeValues": [1, 10**30, "x"],
            "resumeErrors": [None, "boom"],
            "asyncResumeMap": {"2": 2.5},
            "asyncErrorMap": {"4": {"type": "ValueError", "message": "bad"}},
            "hostDelays": {"g": 0.1},
        }
    )
    script = host_script(c)
    assert script["delays"] == {"g": 0.1}
    answers = script["answers"]
    assert len(answers) == 5
    assert answers[0] == {"value": 1, "error": None, "async": False}
    assert answers[1]["error"] == {"type": "RuntimeError", "message": "boom"}
    assert answers[2] == {"value": 2.5, "error": None, "async": True}
    assert answers[3] == {"value": None, "error": None, "async": False}
    assert answers[4]["error"] == {"type": "ValueError", "message": "bad"} and answers[4]["async"]
    big = case({"code": "f()", "externalFunctions": ["f"], "resumeValues": [10**30]})
    assert host_script(big)["answers"][0]["value"] == codec.encode(10**30)
    # What the page receives is JSON text: exact.
    assert json.loads(json.dumps(host_script(big))) == host_script(big)


def test_case_spec_labels_limits_and_inputs() -> None:
    c = case(
        {
            "limits": {"timeout": 1},
            "externalFunctions": ["f"],
            "steps": [
                {"code": "k", "inputs": {"k": 2}, "expected": 2},
                {"concurrent": [{"code": "f()"}, {"code": "1", "limits": {"timeout": 5}}]},
            ],
        }
    )
    shared = case_spec(c, per_call_limits=False)
    labels = [s["label"] for s in shared["steps"][:1]]
    labels += [s["a"]["label"] for s in shared["steps"][1:]]
    labels += [s["b"]["label"] for s in shared["steps"][1:]]
    assert labels == [label for label, _ in c.flat_steps()]
    first = shared["steps"][0]
    # Inputs go as values (their wire form), the code untouched.
    assert first["code"] == "k" and first["inputs"] == {"k": 2} and "limits" not in first
    assert "inputs" not in shared["steps"][1]["a"]
    assert shared["steps"][1]["b"]["limits"] == {"timeout": 5}
    sandbox = case_spec(c, per_call_limits=True)
    first = sandbox["steps"][0]
    assert first["code"] == "k" and first["inputs"] == {"k": 2}
    assert first["limits"] == {"timeout": 1}, "the case's limits go with every execute"
    assert sandbox["steps"][1]["b"]["limits"] == {"timeout": 5}, "a step's limits replace them"


def test_planning_reuses_only_where_a_fresh_repl_is_the_same() -> None:
    backend = ChromiumBackend("isolated", build=False)
    one = case({"code": "1"})
    sandbox = case({"sandbox": True, "steps": [{"code": "x = 1"}, {"code": "x"}]})
    steps = case({"steps": [{"code": "x = 1"}, {"code": "x"}]})
    busy = case({"externalFunctions": ["f"], "concurrent": [{"code": "f()"}, {"code": "1"}]})
    inputs = case({"code": "a", "inputs": {"a": 1}})
    limited = case({"code": "1", "limits": {"timeout": 1}})
    typed = case({"code": "1", "externalFunctions": ["f"], "hostSchemas": {"f": {"x": "integer"}}})
    assert backend._need(one).key is not None
    assert backend._need(one).key == backend._need(limited).key == backend._need(sandbox).key
    assert backend._need(typed).key not in (None, backend._need(one).key)
    # Inputs are an execute() option: a one-step case with inputs reuses a runtime too.
    assert backend._need(inputs).key == backend._need(one).key
    for c in (steps, busy):
        need = backend._need(c)
        assert need.key is None and need.spec["sandbox"] is False
    assert backend._need(limited).spec.get("limits") is None
    assert backend.name == "chromium"
    assert ChromiumBackend("not_isolated", build=False).name == "chromium-noniso"
    strict = ChromiumBackend("isolated", build=False, fresh_runtimes=True)
    assert all(strict._need(c).key is None for c in (one, sandbox, limited))
    assert strict._need(sandbox).spec["sandbox"] is True
    assert strict._need(limited).spec["limits"] == {"timeout": 1}


# -- columns, expectations, comparisons ---------------------------------------------------------


def test_backend_names_expand_chromium_per_server_mode() -> None:
    assert _backend_names("all") == [
        "native", "chromium", "chromium-noniso", "firefox", "firefox-noniso",
        "webkit", "webkit-noniso",
    ]
    assert _backend_names("all", "isolated") == ["native", "chromium", "firefox", "webkit"]
    assert _backend_names("firefox,webkit", "both") == [
        "firefox", "firefox-noniso", "webkit", "webkit-noniso"
    ]
    assert _backend_names("chromium", "not_isolated") == ["chromium-noniso"]
    assert _backend_names("native,chromium-noniso") == ["native", "chromium-noniso"]


def _expectations(tmp_path: Path, entries: list[dict[str, Any]]) -> Path:
    path = tmp_path / "exp.json"
    path.write_text(json.dumps({"differences": entries}), encoding="utf-8")
    return path


def test_chromium_expectation_covers_both_columns(tmp_path: Path) -> None:
    c = case({"code": "1"})
    both = load_expectations(
        _expectations(tmp_path, [{"corpus": "corp", "id": 1, "backend": "chromium", "reason": "r"}])
    )
    assert both.lookup(c, "chromium") and both.lookup(c, "chromium-noniso")
    assert both.lookup(c, "native") is None
    one = load_expectations(
        _expectations(
            tmp_path, [{"corpus": "corp", "id": 1, "backend": "chromium-noniso", "reason": "r"}]
        )
    )
    assert one.lookup(c, "chromium-noniso") and one.lookup(c, "chromium") is None
    with pytest.raises(CorpusError, match="listed twice"):
        load_expectations(
            _expectations(
                tmp_path,
                [
                    {"corpus": "corp", "id": 1, "backend": "chromium", "reason": "r"},
                    {"corpus": "corp", "id": 1, "backend": "chromium-noniso", "reason": "r"},
                ],
            )
        )


class _Renamed(NativeBackend):
    def __init__(self, name: str, value: Any) -> None:
        self.name = name
        self._value = value

    async def run_case(self, case: Case) -> CaseOutcome:
        outcome = await super().run_case(case)
        outcome.backend = self.name
        for run in outcome.runs:
            for event in run.events:
                if event["type"] == "run_finished":
                    event["value"] = self._value
            run.value_wire = self._value
        return outcome


def test_a_difference_only_in_the_comparison_is_the_expected_difference(tmp_path: Path) -> None:
    corpus = tmp_path / "c.json"
    corpus.write_text(json.dumps([{"id": 1, "code": "'abc'", "expectedContains": "b"}]))
    cases = load_corpus(corpus, "corp")
    exp = load_expectations(
        _expectations(tmp_path, [{"corpus": "corp", "id": 1, "backend": "chromium", "reason": "r"}])
    )
    report = asyncio.run(
        run_cases(cases, [NativeBackend(), _Renamed("chromium", "xbx")], exp),
    )
    native, browser = report.results
    assert native.status == "passed"
    assert browser.status == "expected-difference" and browser.reason == "r"
    assert "disagrees with native" in browser.diff and '"xbx"' in browser.diff
    # Agreeing while listed: the entry can go.
    report = asyncio.run(run_cases(cases, [NativeBackend(), _Renamed("chromium", "abc")], exp))
    assert report.results[1].status == "unexpectedly-passing"
