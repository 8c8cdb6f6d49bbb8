"""The whole conformance corpus (the project's cases, plus the python ladder when
``$MONTY_LADDER`` names it) on the native backend: zero unexpected results."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import pytest

from monty_dev.conformance import (
    CaseResult,
    Report,
    default_corpora,
    load_cases,
    load_expectations,
    run_conformance,
)

ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = ROOT / "tests" / "conformance" / "cases"
EXPECTATIONS = ROOT / "tests" / "conformance" / "expectations.json"

CASES, COUNTS = load_cases(default_corpora(ROOT))


@pytest.fixture(scope="module")
def report() -> Report:
    return run_conformance(
        default_corpora(ROOT), ["native"], EXPECTATIONS, progress=False, case_timeout=30
    )


def test_corpora_are_complete() -> None:
    # The project's corpus always; an external corpus only when the run names it.
    expected = {"project"} | ({"python_ladder"} if os.environ.get("MONTY_LADDER") else set())
    assert set(COUNTS) == expected
    if "python_ladder" in COUNTS:
        assert COUNTS["python_ladder"] == 109
    assert COUNTS["project"] >= 150
    project = [c for c in CASES if c.corpus == "project"]
    assert all(c.id >= 1000 for c in project)
    assert len({c.id for c in project}) == len(project)
    # Several files by theme.
    assert len({Path(c.source).name for c in project}) >= 8


def test_expectations_file_is_valid() -> None:
    expectations = load_expectations(EXPECTATIONS)
    expectations.check_against(CASES)
    for entry in expectations.entries:
        assert entry.reason.strip()


def test_native_has_no_unexpected_results(report: Report) -> None:
    assert report.backends == ["native"]
    assert len(report.results) == len(CASES), "every case runs, none is skipped"
    assert report.ok, report.render()
    assert report.exit_code == 0
    line = report.summary_lines()[0]
    assert re.fullmatch(r"native: \d+ passed, 0 failed, \d+ expected differences", line)


def test_the_run_is_fast(report: Report) -> None:
    assert report.duration_s < 30, f"the native run took {report.duration_s:.1f}s"


def _result(report: Report, key: str) -> CaseResult:
    for r in report.results:
        if r.case.key == key:
            return r
    raise AssertionError(f"{key} did not run")


@pytest.mark.parametrize("key", [c.key for c in CASES])
def test_case(report: Report, key: str) -> None:
    r = _result(report, key)
    if r.status == "unexpectedly-passing":
        warnings.warn(f"{r.case.title} passes: drop its expected difference", stacklevel=1)
        return
    assert r.status in ("passed", "xfail-passed", "expected-difference"), (
        f"{r.case.title} [{r.case.source}]: {r.status}: {r.reason}\n{r.diff}"
    )
