"""The conformance runner itself: corpus validation, verdicts, expected differences,
cross-backend comparison, exit codes, the summary line, JSON and JUnit output."""

from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from monty_dev.conformance import (
    BackendUnavailable,
    Case,
    CaseOutcome,
    CorpusError,
    Expectations,
    HostScript,
    NativeBackend,
    Progress,
    Report,
    RunOutcome,
    create_backend,
    default_corpora,
    find_ladder,
    load_corpus,
    load_expectations,
    main,
    register_backend,
    run_cases,
    select_cases,
)
from monty_dev.conformance import backends as backends_module
from monty_dev.conformance.check import (
    json_equal,
    normalize_events,
    traceback_frames,
    wire_to_plain,
)
from monty_dev.conformance.corpus import CASE_FIELDS, STEP_FIELDS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"
SUMMARY = re.compile(r"native: (\d+) passed, (\d+) failed, (\d+) expected differences")


def write_corpus(
    tmp_path: Path, cases: list[Any], name: str = "corp", file: str = "a.json"
) -> Path:
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    (d / file).write_text(json.dumps(cases), encoding="utf-8")
    return d


def write_expectations(tmp_path: Path, differences: list[dict[str, Any]]) -> Path:
    p = tmp_path / "expectations.json"
    p.write_text(json.dumps({"differences": differences}), encoding="utf-8")
    return p


def run(
    cases: list[Case],
    *backends: Any,
    expectations: Expectations | None = None,
    strict: bool = False,
    **kw: Any,
) -> Report:
    return asyncio.run(
        run_cases(cases, list(backends) or [NativeBackend()], expectations, strict=strict, **kw)
    )


def run_main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


GOOD = {"id": 1, "name": "adds", "code": "1 + 1", "expected": 2}
BAD = {"id": 2, "name": "wrong", "code": "1 + 1", "expected": 3}


# -- corpus validation --------------------------------------------------------------------


def test_loads_ladder_style_cases_with_null_defaults(tmp_path: Path) -> None:
    d = write_corpus(
        tmp_path,
        [
            {
                **GOOD,
                "expectedContains": None,
                "expectError": False,
                "externalFunctions": None,
                "xfail": None,
            }
        ],
    )
    (case,) = load_corpus(d)
    assert case.corpus == "corp" and case.id == 1 and case.key == "corp#1"
    assert case.steps[0].code == "1 + 1"
    assert case.steps[0].expect == {"expected": 2, "expectError": False}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ({**GOOD, "expectedValue": 2}, "unknown field 'expectedValue'"),
        ({"id": 1, "name": "no code", "expected": 2}, "missing code"),
        ({"name": "no id", "code": "1"}, "missing or non-integer id"),
        ({**GOOD, "code": 5}, "field 'code' must be a string"),
        ({**GOOD, "resumeErrors": [3]}, "resumeErrors"),
        ({**GOOD, "asyncResumeMap": {"x": 1}}, "not a call index"),
        ({**GOOD, "limits": {"timeout": 1, "cpu": 2}}, "unknown limit"),
        ({**GOOD, "hostSchemas": {"f": {"x": "integer"}}}, "not in externalFunctions"),
        ({**GOOD, "externalFunctions": ["f"], "hostSchemas": {"f": {"x": "int"}}}, "'int'"),
        ({"id": 1, "steps": [{"code": "1"}], "expected": 1}, "belong in the steps"),
        ({"id": 1, "steps": []}, "'steps' is empty"),
        ({"id": 1, "steps": [{"expected": 1}]}, "steps[0]: missing code"),
        ({"id": 1, "steps": [{"code": "1", "bogus": 1}]}, "steps[0]: unknown field 'bogus'"),
        ({"id": 1, "concurrent": ["a"]}, "exactly two steps"),
        ({"id": 1, "concurrent": [{"concurrent": ["a", "b"]}, "b"]}, "cannot be nested"),
        ({"id": 1, "steps": ["a"], "concurrent": ["a", "b"]}, "either 'steps' or"),
        ({**GOOD, "expectedEventTypes": ["started"]}, "expectedEventTypes"),
    ],
)
def test_validation_errors_name_file_and_case(
    tmp_path: Path, case: dict[str, Any], message: str
) -> None:
    d = write_corpus(tmp_path, [case], file="bad_cases.json")
    with pytest.raises(CorpusError) as info:
        load_corpus(d)
    text = str(info.value)
    assert message in text
    assert "bad_cases.json" in text
    if "id" in case:
        assert f"id={case['id']}" in text


def test_duplicate_ids_within_a_corpus(tmp_path: Path) -> None:
    d = write_corpus(tmp_path, [GOOD], file="a.json")
    (d / "b.json").write_text(json.dumps([{**GOOD, "name": "again"}]), encoding="utf-8")
    with pytest.raises(CorpusError, match=r"b\.json: case id=1 \('again'\): duplicate id"):
        load_corpus(d)


def test_same_id_in_two_corpora_is_fine(tmp_path: Path) -> None:
    a = load_corpus(write_corpus(tmp_path, [GOOD], name="one"))
    b = load_corpus(write_corpus(tmp_path, [GOOD], name="two"))
    assert {a[0].key, b[0].key} == {"one#1", "two#1"}


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    d = write_corpus(tmp_path, [{"id": 1, "x": 1}, {"id": 2, "code": "1", "y": 2}])
    with pytest.raises(CorpusError) as info:
        load_corpus(d)
    assert len(info.value.problems) == 3  # unknown x, missing code, unknown y


def test_bad_json_and_non_array(tmp_path: Path) -> None:
    d = tmp_path / "c"
    d.mkdir()
    (d / "a.json").write_text("[{", encoding="utf-8")
    (d / "b.json").write_text("{}", encoding="utf-8")
    (d / "c.json").write_text('[{"id": 1, "code": "1", "expected": NaN}]', encoding="utf-8")
    with pytest.raises(CorpusError) as info:
        load_corpus(d)
    text = str(info.value)
    assert "a.json: not valid JSON" in text
    assert "b.json: must hold a JSON array" in text
    assert "c.json: not valid JSON" in text


def test_missing_or_empty_corpus_directory(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match=r"no \*\.json"):
        load_corpus(tmp_path / "empty")


def test_steps_and_concurrent_shorthand(tmp_path: Path) -> None:
    d = write_corpus(
        tmp_path,
        [
            {
                "id": 1,
                "steps": [
                    "x = 1",
                    {"code": "x", "expected": 1},
                    {"concurrent": ["a", {"code": "b", "expectRejected": "busy"}]},
                ],
            },
            {"id": 2, "concurrent": ["a", "b"]},
        ],
    )
    one, two = load_corpus(d)
    labels = [label for label, _ in one.flat_steps()]
    assert labels == [
        "step 1",
        "step 2",
        "step 3a (concurrent, first)",
        "step 3b (concurrent, second)",
    ]
    assert two.steps[0].concurrent is not None


def test_every_schema_field_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name in {*CASE_FIELDS, *STEP_FIELDS}:
        assert f"`{name}`" in text, f"{name} is not documented in docs/conformance.md"


# -- expectations file ------------------------------------------------------------------


def test_expectations_validation(tmp_path: Path) -> None:
    p = write_expectations(
        tmp_path,
        [
            {"corpus": "c", "id": 1, "backend": "native"},
            {"corpus": "c", "id": 2, "backend": "safari", "reason": "x"},
            {"corpus": "c", "id": 3, "reason": "x", "extra": 1},
            {"corpus": "c", "id": 4, "reason": "x"},
            {"corpus": "c", "id": 4, "backend": "native", "reason": "again"},
        ],
    )
    with pytest.raises(CorpusError) as info:
        load_expectations(p)
    text = str(info.value)
    assert "c#1): a reason is required" in text
    assert "backend must be" in text
    assert "unknown field(s) ['extra']" in text
    assert "c#4 is listed twice" in text


def test_expectations_must_name_existing_cases(tmp_path: Path) -> None:
    cases = load_corpus(write_corpus(tmp_path, [GOOD]))
    exp = load_expectations(
        write_expectations(
            tmp_path,
            [
                {"corpus": "corp", "id": 99, "reason": "r"},
                {"corpus": "other", "id": 5, "reason": "not loaded: ignored"},
            ],
        )
    )
    with pytest.raises(CorpusError, match="corp#99 names no case"):
        exp.check_against(cases)


# -- verdicts ------------------------------------------------------------------------------


def test_failing_case_is_reported_with_a_diff(tmp_path: Path) -> None:
    cases = load_corpus(write_corpus(tmp_path, [GOOD, BAD]))
    report = run(cases)
    good, bad = report.results
    assert good.status == "passed" and good.diff == ""
    assert bad.status == "failed"
    assert bad.reason == "value: expected 3, got 2"
    assert "expected 3, got 2" in bad.diff
    assert report.summary_lines() == ["native: 1 passed, 1 failed, 0 expected differences"]
    assert report.exit_code == 1
    assert "FAILED [native] corp#2 wrong: value: expected 3, got 2" in report.render()


def test_expected_difference_is_counted_apart(tmp_path: Path) -> None:
    cases = load_corpus(write_corpus(tmp_path, [GOOD, BAD]))
    exp = load_expectations(
        write_expectations(
            tmp_path, [{"corpus": "corp", "id": 2, "backend": "native", "reason": "CPython adds"}]
        )
    )
    report = run(cases, expectations=exp)
    assert [r.status for r in report.results] == ["passed", "expected-difference"]
    assert report.results[1].reason == "CPython adds"
    assert "expected 3, got 2" in report.results[1].diff
    assert report.summary_lines() == ["native: 1 passed, 0 failed, 1 expected differences"]
    assert report.exit_code == 0


def test_expected_difference_for_another_backend_does_not_apply(tmp_path: Path) -> None:
    cases = load_corpus(write_corpus(tmp_path, [BAD]))
    exp = load_expectations(
        write_expectations(
            tmp_path, [{"corpus": "corp", "id": 2, "backend": "chromium", "reason": "r"}]
        )
    )
    assert run(cases, expectations=exp).results[0].status == "failed"


def test_unexpectedly_passing_is_reported_and_fails_only_when_strict(tmp_path: Path) -> None:
    cases = load_corpus(write_corpus(tmp_path, [GOOD]))
    exp = load_expectations(
        write_expectations(tmp_path, [{"corpus": "corp", "id": 1, "reason": "used to differ"}])
    )
    report = run(cases, expectations=exp)
    assert report.results[0].status == "unexpectedly-passing"
    assert report.summary(backend="native").unexpectedly_passing == 1
    assert report.summary_lines() == ["native: 1 passed, 0 failed, 0 expected differences"]
    assert report.exit_code == 0
    assert "unexpectedly passing [native] corp#1" in report.render()
    strict = run(cases, expectations=exp, strict=True)
    assert strict.summary_lines() == ["native: 0 passed, 1 failed, 0 expected differences"]
    assert strict.exit_code == 1


def test_xfail_case_that_passes_is_a_pass(tmp_path: Path) -> None:
    cases = load_corpus(write_corpus(tmp_path, [{**GOOD, "xfail": "monty lacks it"}]))
    report = run(cases)
    assert report.results[0].status == "xfail-passed"
    assert report.summary_lines() == ["native: 1 passed, 0 failed, 0 expected differences"]
    assert report.to_json()["cases"][0]["status"] == "xfail-passed"


def test_unexpected_error_and_expected_error(tmp_path: Path) -> None:
    cases = load_corpus(
        write_corpus(
            tmp_path,
            [
                {"id": 1, "code": "1/0"},
                {"id": 2, "code": "1/0", "expectError": True, "errorContains": "ZeroDivision"},
                {"id": 3, "code": "1/0", "expectedExcType": "ValueError"},
                {"id": 4, "code": "1", "expectError": True},
                {
                    "id": 5,
                    "code": "def f():\n  1/0\nf()",
                    "scriptName": "s.py",
                    "expectedTracebackFilename": "s.py",
                    "expectedTracebackMinFrames": 3,
                },
            ],
        )
    )
    statuses = [(r.status, r.reason) for r in run(cases).results]
    assert statuses[0] == ("failed", "unexpected error ZeroDivisionError: division by zero")
    assert statuses[1] == ("passed", "")
    assert statuses[2][0] == "failed" and "expected ValueError" in statuses[2][1]
    assert statuses[3] == ("failed", "expected an error, got value 1")
    assert statuses[4][0] == "failed" and "2 frame(s), expected at least 3" in statuses[4][1]


def test_host_calls_are_scripted_and_recorded(tmp_path: Path) -> None:
    cases = load_corpus(
        write_corpus(
            tmp_path,
            [
                {
                    "id": 1,
                    "code": "[f(1, k=2), g(), f(3)]",
                    "externalFunctions": ["f", "g"],
                    "resumeErrors": [None, "g failed"],
                    "resumeValues": ["a", None, "c"],
                    "expectedFnName": "f",
                    "expectedArgs": [1],
                    "expectedKwargs": {"k": 2},
                },
            ],
        )
    )
    (result,) = run(cases).results
    assert result.status == "failed"
    assert "unexpected error RuntimeError: g failed" in result.reason
    assert result.outcome is not None
    calls = result.outcome.calls
    assert [(c["name"], c["args"], c["kwargs"]) for c in calls] == [
        ("f", [1], {"k": 2}),
        ("g", [], {}),
    ]
    assert calls[1]["error"] == {"type": "RuntimeError", "message": "g failed"}


def test_host_script_answers_by_call_index(tmp_path: Path) -> None:
    (case,) = load_corpus(
        write_corpus(
            tmp_path,
            [
                {
                    "id": 1,
                    "code": "1",
                    "externalFunctions": ["f", "slow"],
                    "resumeValues": ["v0", "v1", "v2", "v3"],
                    "resumeErrors": ["e0", None, {"type": "ValueError", "message": "e2"}],
                    "asyncResumeMap": {"3": "a3"},
                    "asyncErrorMap": {"1": "a1"},
                    "hostDelays": {"slow": 0.5},
                    "hostSchemas": {"f": {"x": "integer"}},
                }
            ],
        )
    )
    script = HostScript(case)
    answers = [script.answer(n) for n in ("f", "f", "f", "f", "slow", "f")]
    assert [a.index for a in answers] == [0, 1, 2, 3, 4, 5]
    assert answers[0].error == {"type": "RuntimeError", "message": "e0"}
    assert not answers[0].asynchronous
    assert answers[1].error == {"type": "RuntimeError", "message": "a1"}
    assert answers[1].asynchronous
    assert answers[2].error == {"type": "ValueError", "message": "e2"}
    assert (answers[3].value, answers[3].asynchronous) == ("a3", True)
    assert (answers[4].value, answers[4].delay, answers[4].asynchronous) == (None, 0.5, True)
    assert answers[5].value is None and answers[5].error is None
    assert script.parameters("f") == {
        "type": "object",
        "properties": {"x": {"type": "integer"}},
        "required": ["x"],
    }
    assert script.parameters("slow") is None


def test_step_failures_name_the_step(tmp_path: Path) -> None:
    cases = load_corpus(
        write_corpus(
            tmp_path,
            [
                {"id": 1, "steps": ["x = 1", {"code": "x", "expected": 2, "expectedStdout": "?"}]},
            ],
        )
    )
    (result,) = run(cases).results
    assert result.diff.splitlines() == [
        "step 2: value: expected 2, got 1",
        "step 2: stdout: expected '?', got ''",
    ]


def test_concurrent_step_records_the_rejection(tmp_path: Path) -> None:
    cases = load_corpus(
        write_corpus(
            tmp_path,
            [
                {
                    "id": 1,
                    "externalFunctions": ["slow"],
                    "concurrent": [{"code": "slow()"}, {"code": "2", "expected": 2}],
                },
            ],
        )
    )
    (result,) = run(cases).results
    assert result.status == "failed"
    assert result.reason == (
        "step 1b (concurrent, second): execute() was rejected: "
        "StateError: Bridge is already executing"
    )


def test_backend_exception_is_an_error_not_a_crash(tmp_path: Path) -> None:
    class Broken(NativeBackend):
        async def run_case(self, case: Case) -> CaseOutcome:
            raise RuntimeError("browser died")

    cases = load_corpus(write_corpus(tmp_path, [GOOD]))
    report = run(cases, Broken())
    r = report.results[0]
    assert r.status == "error" and "browser died" in r.reason
    assert report.summary_lines() == ["native: 0 passed, 1 failed, 0 expected differences"]
    assert report.exit_code == 1


def test_malformed_outcome_is_an_error(tmp_path: Path) -> None:
    def tamper(outcome: CaseOutcome) -> None:
        outcome.runs[0].value_wire = {"$int": "not a number"}

    cases = load_corpus(write_corpus(tmp_path, [GOOD]))
    r = run(cases, Renamed("native", tamper)).results[0]
    assert r.status == "error" and r.reason.startswith("cannot judge the outcome of native")


def test_case_timeout_is_an_error(tmp_path: Path) -> None:
    class Hanging(NativeBackend):
        async def run_case(self, case: Case) -> CaseOutcome:
            await asyncio.sleep(10)
            raise AssertionError

    cases = load_corpus(write_corpus(tmp_path, [GOOD]))
    r = run(cases, Hanging(), case_timeout=0.05).results[0]
    assert r.status == "error" and "did not finish within 0.05s" in r.reason


# -- two backends ------------------------------------------------------------------------


class Renamed(NativeBackend):
    """The native backend under another name, optionally tampering with outcomes."""

    def __init__(self, name: str, tamper: Any = None) -> None:
        self.name = name
        self._tamper = tamper

    async def run_case(self, case: Case) -> CaseOutcome:
        outcome = await super().run_case(case)
        outcome.backend = self.name
        if self._tamper is not None:
            self._tamper(outcome)
        return outcome


def test_agreeing_backends(tmp_path: Path) -> None:
    cases = load_corpus(
        write_corpus(
            tmp_path,
            [
                GOOD,
                {"id": 3, "code": "class A: pass\nprint('x')\nA()", "externalFunctions": ["f"]},
            ],
        )
    )
    report = run(cases, NativeBackend(), Renamed("other"))
    assert report.ok, report.render()
    assert report.summary_lines()[1] == "other: 2 passed, 0 failed, 0 expected differences"


def test_disagreement_is_a_failure_with_a_diff(tmp_path: Path) -> None:
    def tamper(outcome: CaseOutcome) -> None:
        run_ = outcome.runs[0]
        run_.stdout = "different\n"
        for ev in run_.events:
            if ev["type"] == "run_finished":
                ev["stdout"] = "different\n"

    cases = load_corpus(write_corpus(tmp_path, [GOOD]))
    report = run(cases, NativeBackend(), Renamed("other", tamper))
    ours, theirs = report.results
    assert ours.status == "passed"
    assert theirs.status == "failed" and theirs.reason == "disagrees with native"
    assert '+  "stdout": "different\\n"' in theirs.diff
    assert report.exit_code == 1


def test_disagreement_is_tolerated_when_listed_for_one_backend(tmp_path: Path) -> None:
    def tamper(outcome: CaseOutcome) -> None:
        outcome.runs[0].value_wire = 5

    cases = load_corpus(write_corpus(tmp_path, [GOOD]))
    exp = Expectations(
        load_expectations(
            write_expectations(
                tmp_path, [{"corpus": "corp", "id": 1, "backend": "chromium", "reason": "r"}]
            )
        ).entries
    )
    report = run(cases, NativeBackend(), Renamed("chromium", tamper), expectations=exp)
    assert [r.status for r in report.results] == ["passed", "expected-difference"]
    assert report.ok


# -- output formats -------------------------------------------------------------------------


def test_json_and_junit_reports(tmp_path: Path) -> None:
    d = write_corpus(tmp_path, [GOOD, BAD, {"id": 3, "code": "'\\ud800\\x00'", "expected": 0}])
    exp = write_expectations(tmp_path, [{"corpus": "corp", "id": 3, "reason": "odd chars"}])
    jpath, xpath = tmp_path / "r.json", tmp_path / "r.xml"
    code, out, _ = run_main(
        "--corpus",
        str(d),
        "--expectations",
        str(exp),
        "--no-progress",
        "--json",
        str(jpath),
        "--junit",
        str(xpath),
    )
    assert code == 1
    assert out.splitlines()[-1] == "native: 1 passed, 1 failed, 1 expected differences"
    data = json.loads(jpath.read_text(encoding="utf-8"))
    assert data["summary"]["native"] == {
        "passed": 1,
        "failed": 1,
        "expected_differences": 1,
        "unexpectedly_passing": 0,
        "errors": 0,
        "total": 3,
    }
    assert data["ok"] is False
    by_id = {c["id"]: c for c in data["cases"]}
    assert set(by_id[2]) >= {"id", "corpus", "name", "backend", "status", "reason", "diff"}
    assert by_id[2]["status"] == "failed" and by_id[2]["corpus"] == "corp"
    assert by_id[3]["status"] == "expected-difference" and by_id[3]["reason"] == "odd chars"
    root = ET.parse(xpath).getroot()
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "conformance.native"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = {tc.get("name"): tc for tc in suite.findall("testcase")}
    failure = cases["2 wrong"].find("failure")
    assert failure is not None and "expected 3, got 2" in (failure.get("message") or "")
    skipped = cases["3 case 3"].find("skipped")
    assert skipped is not None and skipped.get("message") == "expected difference: odd chars"


def test_main_exit_codes(tmp_path: Path) -> None:
    good = write_corpus(tmp_path, [GOOD], name="good")
    bad = write_corpus(tmp_path, [BAD], name="bad")
    broken = write_corpus(tmp_path, [{"id": 1, "cod": "1"}], name="broken")
    none = ["--no-progress", "--no-expectations"]
    code, out, _ = run_main("--corpus", str(good), *none)
    assert code == 0 and out.splitlines()[-1] == (
        "native: 1 passed, 0 failed, 0 expected differences"
    )
    assert run_main("--corpus", str(bad), *none)[0] == 1
    code, _, err = run_main("--corpus", str(broken), *none)
    assert code == 2 and "unknown field 'cod'" in err and "a.json" in err
    assert run_main("--corpus", str(good), "--bogus-flag")[0] == 2
    code, _, err = run_main("--corpus", str(good), "--backend", "safari", *none)
    assert code == 2 and "unknown backend 'safari'" in err


def test_summary_line_per_backend_is_the_last_output(tmp_path: Path) -> None:
    d = write_corpus(tmp_path, [GOOD, BAD])
    code, out, _ = run_main("--corpus", str(d), "--no-progress", "--no-expectations")
    assert code == 1
    last = out.splitlines()[-1]
    m = SUMMARY.fullmatch(last)
    assert m is not None and m.groups() == ("1", "1", "0")
    assert re.search(r"\b1 passed, 1 failed\b", last)


def test_chromium_unavailable_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from monty_dev.conformance import chromium
    from monty_dev.conformance.corpus import find_repo_root

    root = find_repo_root()
    assert root is not None
    monkeypatch.setattr(chromium._load_config(root), "CHROMIUM_PATH", str(tmp_path / "nope"))
    for name in ("chromium", "chromium-noniso"):
        with pytest.raises(BackendUnavailable, match=r"^chromium backend not available: "):
            create_backend(name)
    d = write_corpus(tmp_path, [GOOD])
    for backend in ("chromium", "all"):
        code, out, err = run_main("--corpus", str(d), "--backend", backend)
        assert code == 2
        assert "chromium backend not available: Chromium not found at " in err
        assert out == ""


def test_registered_backend_plugs_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends_module, "_registry", {})
    columns = [f"{engine}{suffix}" for engine in ("chromium", "firefox", "webkit")
               for suffix in ("", "-noniso")]
    for column in columns:
        register_backend(column, lambda column=column: Renamed(column))
    d = write_corpus(tmp_path, [GOOD])
    code, out, err = run_main(
        "--corpus", str(d), "--backend", "all", "--no-progress", "--no-expectations"
    )
    assert code == 0, out + err
    assert out.splitlines()[-7:] == [
        f"{name}: 1 passed, 0 failed, 0 expected differences" for name in ["native", *columns]
    ]
    code, out, err = run_main(
        "--corpus",
        str(d),
        "--backend",
        "chromium",
        "--server-mode",
        "isolated",
        "--no-progress",
        "--no-expectations",
    )
    assert code == 0, out + err
    assert out.splitlines()[-1:] == ["chromium: 1 passed, 0 failed, 0 expected differences"]


def test_keyword_selection(tmp_path: Path) -> None:
    d = write_corpus(tmp_path, [GOOD, BAD], file="arith.json")
    cases = load_corpus(d)
    assert [c.id for c in select_cases(cases, ["WRONG"])] == [2]
    assert [c.id for c in select_cases(cases, ["corp#1"])] == [1]
    assert len(select_cases(cases, ["arith"])) == 2
    code, out, _ = run_main("--corpus", str(d), "-k", "adds", "--no-progress", "--no-expectations")
    assert code == 0 and "1 deselected by -k" in out


def test_progress_bar_on_a_terminal_and_lines_otherwise() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    bar = Progress(3, tty)
    for i in range(3):
        bar.advance(f"case {i}")
    bar.close()
    text = tty.getvalue()
    assert text.startswith("\r[") and "3/3" in text and "\n" not in text
    plain = io.StringIO()
    lines = Progress(3, plain, interval=0)
    for i in range(3):
        lines.advance(f"case {i}")
    assert plain.getvalue().splitlines() == [
        "conformance: 1/3 cases (case 0)",
        "conformance: 2/3 cases (case 1)",
    ]
    quiet = io.StringIO()
    slow = Progress(3, quiet, interval=60)
    for _ in range(3):
        slow.advance("x")
    assert quiet.getvalue() == ""


# -- helpers --------------------------------------------------------------------------------


def test_wire_to_plain_and_json_equal() -> None:
    wire = {
        "$tuple": [
            1,
            {"$int": "18446744073709551616"},
            {"$set": ["a"]},
            {"$map": [[1, "x"], [None, "y"]]},
            {"$bytes": "AP8="},
            {"$repr": "P()", "$type": "P"},
            {"$float": "inf"},
        ]
    }
    assert wire_to_plain(wire) == [
        1,
        2**64,
        ["a"],
        {"1": "x", "null": "y"},
        [0, 255],
        "P()",
        float("inf"),
    ]
    assert json_equal(1, 1.0) and not json_equal(1, 1.0, strict_numbers=True)
    assert not json_equal(True, 1) and not json_equal(1, True)
    assert json_equal(float("nan"), float("nan"))
    assert json_equal({"a": [1, None]}, {"a": [1, None]})
    assert not json_equal([1], [1, 2])


def test_traceback_frames() -> None:
    tb = (
        'Traceback (most recent call last):\n  File "a.py", line 3, in <module>\n    f()\n'
        '  File "lib/b.py", line 12, in f\n    1/0\nZeroDivisionError: division by zero\n'
    )
    assert traceback_frames(tb) == [("a.py", 3), ("lib/b.py", 12)]


def test_run_outcome_from_events() -> None:
    events: list[dict[str, Any]] = [
        {"type": "run_started", "execution_id": "e"},
        {"type": "print", "execution_id": "e", "stream": "stderr", "text": "w\n"},
        {
            "type": "call_started",
            "execution_id": "e",
            "call_id": "e.1",
            "name": "f",
            "args": [1],
            "kwargs": {},
        },
        {
            "type": "call_finished",
            "execution_id": "e",
            "call_id": "e.1",
            "name": "f",
            "result": {"$tuple": [1]},
            "duration_ms": 1.0,
        },
        {
            "type": "run_finished",
            "execution_id": "e",
            "value": {"$tuple": [1]},
            "stdout": "",
            "duration_ms": 2.0,
        },
    ]
    out = RunOutcome.from_events("", events)
    assert out.value == (1,) and out.stderr == "w\n" and out.problems == []
    assert out.calls == [
        {"name": "f", "args": [1], "kwargs": {}, "call_id": "e.1", "result": {"$tuple": [1]}}
    ]
    truncated = RunOutcome.from_events("", events[:2])
    assert truncated.problems == ["expected exactly one run_finished/run_error event, got 0"]


def test_find_ladder_only_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONTY_LADDER", str(tmp_path))
    assert find_ladder() == tmp_path
    monkeypatch.delenv("MONTY_LADDER")
    # A shared/ folder beside the checkout is not picked up on its own: the external
    # corpus is an input the run names (.ci/run sets $MONTY_LADDER when it exists).
    shared = tmp_path / "shared" / "fixtures" / "python_ladder"
    shared.mkdir(parents=True)
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    assert find_ladder(repo) is None


def test_default_corpora_are_the_project_plus_the_named_ladder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    (repo / "tests" / "conformance" / "cases").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("")
    monkeypatch.delenv("MONTY_LADDER", raising=False)
    assert [c.name for c in default_corpora(repo)] == ["project"]
    ladder = tmp_path / "ladder"
    ladder.mkdir()
    monkeypatch.setenv("MONTY_LADDER", str(ladder))
    assert [(c.name, c.path) for c in default_corpora(repo)] == [
        ("project", repo / "tests" / "conformance" / "cases"),
        ("python_ladder", ladder),
    ]
    monkeypatch.setenv("MONTY_LADDER", str(tmp_path / "missing"))
    with pytest.raises(CorpusError, match=r"MONTY_LADDER=.*missing: no such directory"):
        default_corpora(repo)


# ------------------------------------------------------------------ event comparison


def _finished(name: str, result: Any, call_id: str) -> dict[str, Any]:
    return {"type": "call_finished", "execution_id": "ex-1", "call_id": call_id,
            "name": name, "duration_ms": 1.0, "result": result, "error": None}


def _started(name: str, call_id: str) -> dict[str, Any]:
    return {"type": "call_started", "execution_id": "ex-1", "call_id": call_id,
            "name": name, "args": [], "kwargs": {}}


def test_calls_in_flight_together_may_finish_in_either_order() -> None:
    # asyncio.gather(a(), b(), c()): the answers reach the interpreter in the host's
    # timing, so two backends agree whatever order the adjacent finishes came in.
    started = [_started("a", "c1"), _started("b", "c2"), _started("c", "c3")]
    native = [*started, _finished("a", "x", "c1"), _finished("b", "y", "c2"),
              _finished("c", "z", "c3")]
    browser = [*started, _finished("a", "x", "c1"), _finished("c", "z", "c3"),
               _finished("b", "y", "c2")]
    assert normalize_events(native) == normalize_events(browser)


def test_an_event_between_two_finishes_still_fixes_their_order() -> None:
    one = [_finished("a", 1, "c1"), {"type": "print", "stream": "stdout", "text": "x\n"},
           _finished("b", 2, "c2")]
    other = [_finished("b", 2, "c2"), {"type": "print", "stream": "stdout", "text": "x\n"},
             _finished("a", 1, "c1")]
    assert normalize_events(one) != normalize_events(other)


def test_finishes_with_different_results_still_differ() -> None:
    assert normalize_events([_finished("a", 1, "c1")]) != normalize_events([_finished("a", 2, "c1")])
