"""The whole conformance corpus in Firefox and in WebKit (each cross-origin isolated and
not: columns ``firefox``/``firefox-noniso``, ``webkit``/``webkit-noniso``), compared case
by case with the native backend: zero unexpected results. The same run as
``python -m monty_runtime conformance --backend native,firefox`` (or ``webkit``); the
Chromium columns are tests/conformance/test_conformance_chromium.py.

Engines run: Firefox, and WebKit with ``MONTY_ENGINE_SCOPE=full``, of those in
``MONTY_ENGINES`` (default: all). A missing engine fails with what to install
(tests/browser/support/engines.py).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from monty_dev.conformance import (
    BackendUnavailable,
    Report,
    default_corpora,
    load_cases,
    run_conformance,
)

ROOT = Path(__file__).resolve().parents[2]
EXPECTATIONS = ROOT / "tests" / "conformance" / "expectations.json"
#: A bound that only a hang or a broken runtime pool exceeds (WebKit boots slowly).
MAX_SECONDS = 2400

CASES, COUNTS = load_cases(default_corpora(ROOT))

pytestmark = pytest.mark.timeout(MAX_SECONDS + 300)


def _engines_module() -> ModuleType:
    module = sys.modules.get("engines")
    if module is not None and hasattr(module, "selected_engines"):
        return module
    path = ROOT / "tests" / "browser" / "support" / "engines.py"
    spec = importlib.util.spec_from_file_location("engines", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["engines"] = module
    spec.loader.exec_module(module)
    return module


#: Firefox by default; WebKit too with MONTY_ENGINE_SCOPE=full (its Pyodide boots are
#: several times slower: the corpus on WebKit does not fit the default CI time).
FULL = os.environ.get("MONTY_ENGINE_SCOPE", "paths") == "full"
ENGINES = [
    e for e in _engines_module().selected_engines()
    if e == "firefox" or (e == "webkit" and FULL)
]


@pytest.fixture(scope="module", params=ENGINES, ids=ENGINES)
def engine_report(request: pytest.FixtureRequest) -> tuple[str, Report]:
    engine: str = request.param
    backends = ["native", engine, f"{engine}-noniso"]
    started = time.perf_counter()
    try:
        result = run_conformance(
            default_corpora(ROOT), backends, EXPECTATIONS, progress=False, case_timeout=120
        )
    except BackendUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    result.duration_s = time.perf_counter() - started
    return engine, result


def test_every_case_runs_on_every_column(engine_report: tuple[str, Report]) -> None:
    engine, report = engine_report
    assert report.backends == ["native", engine, f"{engine}-noniso"]
    for backend in report.backends:
        ran = [r for r in report.results if r.backend == backend]
        assert len(ran) == len(CASES), f"{backend}: every case runs, none is skipped"


def test_no_unexpected_results(
    engine_report: tuple[str, Report], capsys: pytest.CaptureFixture[str]
) -> None:
    engine, report = engine_report
    with capsys.disabled():
        print(
            f"\nconformance, native + {engine} (isolated and not): {len(CASES)} cases per "
            f"backend in {report.duration_s:.1f}s"
        )
        for line in report.summary_lines():
            print("  " + line)
    assert report.ok, report.render()
    for backend, line in zip(report.backends, report.summary_lines(), strict=True):
        assert re.fullmatch(rf"{backend}: \d+ passed, 0 failed, \d+ expected differences", line), (
            line
        )


def test_expected_differences_are_few_and_explained(engine_report: tuple[str, Report]) -> None:
    _engine, report = engine_report
    for backend in report.backends[1:]:
        differences = [
            r for r in report.results
            if r.backend == backend and r.status == "expected-difference"
        ]
        assert len(differences) <= 25, [r.case.title for r in differences]
        for r in differences:
            assert r.reason.strip(), r.case.title
            assert r.diff.strip(), f"{r.case.title}: an expected difference shows what differs"
