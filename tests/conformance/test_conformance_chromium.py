"""The whole conformance corpus in Chromium -- the cross-origin isolated page
(``chromium``) and the page without isolation (``chromium-noniso``) -- compared case by
case with the native backend: zero unexpected results.

One run of about two minutes (most of it booting Pyodide workers); the per-case tests
below only read its report.
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import pytest

from monty_dev.conformance import (
    BackendUnavailable,
    CaseResult,
    Report,
    default_corpora,
    load_cases,
    run_conformance,
)

ROOT = Path(__file__).resolve().parents[2]
EXPECTATIONS = ROOT / "tests" / "conformance" / "expectations.json"
BACKENDS = ["native", "chromium", "chromium-noniso"]
BROWSERS = BACKENDS[1:]
#: A bound that only a hang or a broken runtime pool exceeds.
MAX_SECONDS = 1200

CASES, COUNTS = load_cases(default_corpora(ROOT))

# The module's single run takes minutes: lift the per-test timeout for its setup.
pytestmark = pytest.mark.timeout(MAX_SECONDS + 300)


@pytest.fixture(scope="module")
def report() -> Report:
    started = time.perf_counter()
    try:
        result = run_conformance(
            default_corpora(ROOT), BACKENDS, EXPECTATIONS, progress=False, case_timeout=60
        )
    except BackendUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    result.duration_s = time.perf_counter() - started
    return result


def test_every_case_runs_on_every_backend(report: Report) -> None:
    assert report.backends == BACKENDS
    for backend in BACKENDS:
        ran = [r for r in report.results if r.backend == backend]
        assert len(ran) == len(CASES), f"{backend}: every case runs, none is skipped"


def test_no_unexpected_results(report: Report, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(
            f"\nconformance, native + chromium (isolated and not): {len(CASES)} cases per "
            f"backend in {report.duration_s:.1f}s"
        )
        for line in report.summary_lines():
            print("  " + line)
    assert report.ok, report.render()
    assert report.exit_code == 0
    lines = report.summary_lines()
    for backend, line in zip(BACKENDS, lines, strict=True):
        assert re.fullmatch(rf"{backend}: \d+ passed, 0 failed, \d+ expected differences", line), (
            line
        )


def test_the_run_takes_minutes_not_more(report: Report) -> None:
    assert report.duration_s < MAX_SECONDS, f"the run took {report.duration_s:.0f}s"


def test_expected_differences_are_few_and_explained(report: Report) -> None:
    for backend in BROWSERS:
        listed = [r for r in report.results if r.backend == backend]
        differences = [r for r in listed if r.status == "expected-difference"]
        assert len(differences) <= 20, [r.case.title for r in differences]
        for r in differences:
            assert r.reason.strip(), r.case.title
            assert r.diff.strip(), f"{r.case.title}: an expected difference shows what differs"


def _result(report: Report, backend: str, key: str) -> CaseResult:
    for r in report.results:
        if r.backend == backend and r.case.key == key:
            return r
    raise AssertionError(f"{key} did not run on {backend}")


@pytest.mark.parametrize("backend", BROWSERS)
@pytest.mark.parametrize("key", [c.key for c in CASES])
def test_case(report: Report, backend: str, key: str) -> None:
    r = _result(report, backend, key)
    if r.status == "unexpectedly-passing":
        warnings.warn(
            f"{r.case.title} passes on {backend}: drop its expected difference", stacklevel=1
        )
        return
    assert r.status in ("passed", "xfail-passed", "expected-difference"), (
        f"{r.case.title} [{r.case.source}] on {backend}: {r.status}: {r.reason}\n{r.diff}"
    )
