"""The conformance runner: runs cases on backends, judges them, and reports.

Statuses of a case on a backend:

* ``passed`` -- it met every expectation of its corpus;
* ``xfail-passed`` -- the same, for a case the ladder marks ``xfail`` (counted as
  passed; the status only shows in the JSON report);
* ``failed`` -- a mismatch (or a disagreement with another backend);
* ``error`` -- the backend itself failed on the case (counted as failed);
* ``expected-difference`` -- a mismatch the expectations file lists, with its reason
  (counted apart);
* ``unexpectedly-passing`` -- listed in the expectations file, yet it passed (counted
  as passed; as failed with ``strict``).
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO
from xml.etree import ElementTree as ET

from .backends import Backend, CaseOutcome
from .check import check_case, compare_outcomes
from .corpus import Case, CorpusSpec, Expectations, load_corpus

__all__ = [
    "PASSED_STATUSES",
    "BackendSummary",
    "CaseResult",
    "Progress",
    "Report",
    "load_cases",
    "run_cases",
]

PASSED_STATUSES = frozenset({"passed", "xfail-passed"})
#: Seconds one case may take on a backend before it is reported as an error.
DEFAULT_CASE_TIMEOUT = 60.0
# Characters XML 1.0 cannot hold (control characters, lone surrogates, U+FFFE/U+FFFF).
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    return _XML_BAD.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def printable(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (lone surrogates) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(slots=True)
class CaseResult:
    """The verdict on one case on one backend."""

    case: Case
    backend: str
    status: str
    reason: str = ""
    diff: str = ""
    outcome: CaseOutcome | None = None
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.case.id,
            "corpus": self.case.corpus,
            "name": self.case.name,
            "backend": self.backend,
            "status": self.status,
            "reason": self.reason,
            "diff": self.diff,
            "duration_ms": self.duration_ms,
            "source": self.case.source,
        }


@dataclass(slots=True)
class BackendSummary:
    backend: str
    passed: int = 0
    failed: int = 0
    expected_differences: int = 0
    unexpectedly_passing: int = 0
    errors: int = 0
    total: int = 0

    def line(self) -> str:
        """``native: N passed, N failed, N expected differences``."""
        return (
            f"{self.backend}: {self.passed} passed, {self.failed} failed, "
            f"{self.expected_differences} expected differences"
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "expected_differences": self.expected_differences,
            "unexpectedly_passing": self.unexpectedly_passing,
            "errors": self.errors,
            "total": self.total,
        }


@dataclass(slots=True)
class Report:
    """Every verdict of a run, with summaries, exit status and the output formats."""

    results: list[CaseResult]
    backends: list[str]
    strict: bool = False
    corpora: dict[str, int] = field(default_factory=dict)
    deselected: int = 0
    duration_s: float = 0.0

    def summary(self, backend: str) -> BackendSummary:
        s = BackendSummary(backend)
        for r in self.results:
            if r.backend != backend:
                continue
            s.total += 1
            if r.status in PASSED_STATUSES:
                s.passed += 1
            elif r.status == "expected-difference":
                s.expected_differences += 1
            elif r.status == "unexpectedly-passing":
                s.unexpectedly_passing += 1
                if self.strict:
                    s.failed += 1
                else:
                    s.passed += 1
            else:
                s.failed += 1
                if r.status == "error":
                    s.errors += 1
        return s

    @property
    def unexpected(self) -> list[CaseResult]:
        """Results that make the run fail."""
        bad = {"failed", "error"} | ({"unexpectedly-passing"} if self.strict else set())
        return [r for r in self.results if r.status in bad]

    @property
    def ok(self) -> bool:
        return not self.unexpected

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary_lines(self) -> list[str]:
        return [self.summary(b).line() for b in self.backends]

    def to_json(self) -> dict[str, Any]:
        return {
            "backends": list(self.backends),
            "strict": self.strict,
            "ok": self.ok,
            "corpora": dict(self.corpora),
            "deselected": self.deselected,
            "duration_s": round(self.duration_s, 3),
            "summary": {b: self.summary(b).to_dict() for b in self.backends},
            "cases": [r.to_dict() for r in self.results],
        }

    def to_junit(self) -> str:
        """JUnit XML: a ``testsuite`` per backend; failures and errors as ``failure``
        (``error``), expected differences as ``skipped`` with their reason."""
        root = ET.Element("testsuites", name="monty-runtime conformance")
        for backend in self.backends:
            results = [r for r in self.results if r.backend == backend]
            s = self.summary(backend)
            suite = ET.SubElement(
                root,
                "testsuite",
                name=f"conformance.{backend}",
                tests=str(len(results)),
                failures=str(s.failed - s.errors),
                errors=str(s.errors),
                skipped=str(s.expected_differences),
                time=f"{sum(r.duration_ms for r in results) / 1000.0:.3f}",
            )
            for r in results:
                tc = ET.SubElement(
                    suite,
                    "testcase",
                    classname=f"conformance.{backend}.{r.case.corpus}",
                    name=_xml_safe(f"{r.case.id} {r.case.name}"),
                    time=f"{r.duration_ms / 1000.0:.3f}",
                )
                if r.status == "error":
                    el = ET.SubElement(tc, "error", message=_xml_safe(r.reason[:500]))
                    el.text = _xml_safe(r.diff)
                elif r.status == "failed" or (r.status == "unexpectedly-passing" and self.strict):
                    el = ET.SubElement(tc, "failure", message=_xml_safe(r.reason[:500]))
                    el.text = _xml_safe(r.diff)
                elif r.status == "expected-difference":
                    ET.SubElement(
                        tc, "skipped", message=_xml_safe(f"expected difference: {r.reason}")
                    )
                if r.status in ("xfail-passed", "unexpectedly-passing") or (
                    r.status == "expected-difference" and r.diff
                ):
                    out = ET.SubElement(tc, "system-out")
                    out.text = _xml_safe(f"{r.status}: {r.reason}\n{r.diff}".rstrip())
        ET.indent(root)
        return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"

    def render(self, *, verbose: bool = False) -> str:
        """The human report: failures with their diffs, notes, then a summary line per
        backend (the last lines)."""
        lines: list[str] = []
        for r in self.results:
            if r.status in ("failed", "error") or (
                r.status == "unexpectedly-passing" and self.strict
            ):
                lines.append(f"FAILED [{r.backend}] {r.case.title}: {r.reason}")
                if r.diff and r.diff != r.reason:
                    lines.extend("    " + ln for ln in r.diff.splitlines())
        for r in self.results:
            if r.status == "unexpectedly-passing" and not self.strict:
                lines.append(
                    f"unexpectedly passing [{r.backend}] {r.case.title} "
                    f"(listed as an expected difference: {r.reason})"
                )
        if verbose:
            for r in self.results:
                if r.status == "expected-difference":
                    lines.append(f"expected difference [{r.backend}] {r.case.title}: {r.reason}")
        corpora = ", ".join(f"{n} ({c} cases)" for n, c in self.corpora.items())
        extra = f"; {self.deselected} deselected by -k" if self.deselected else ""
        lines.append(f"conformance: {corpora}{extra}; {self.duration_s:.2f}s")
        lines.extend(self.summary_lines())
        return printable("\n".join(lines))


# -- progress ----------------------------------------------------------------------------------


class Progress:
    """Progress on ``stream`` (stderr): a one-line ``\\r`` bar on a terminal, a line every
    ``interval`` seconds otherwise (so short runs print nothing)."""

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        *,
        interval: float = 2.0,
        enabled: bool = True,
    ) -> None:
        self.total = max(total, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        try:
            self.tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self.tty = False
        self.interval = interval if not self.tty else 0.1
        self.done = 0
        self._last = time.monotonic()
        self._drawn = False

    def advance(self, label: str, failed: int = 0) -> None:
        self.done += 1
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.interval and self.done < self.total:
            return
        self._last = now
        if self.tty:
            width = 30
            filled = int(width * self.done / self.total)
            bar = "#" * filled + "-" * (width - filled)
            fails = f" {failed} failed" if failed else ""
            self.stream.write(f"\r[{bar}] {self.done}/{self.total} {label[:40]:<40}{fails}")
            self._drawn = True
        elif self.done < self.total:
            self.stream.write(f"conformance: {self.done}/{self.total} cases ({label})\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self._drawn:
            self.stream.write("\r" + " " * 90 + "\r")
            self.stream.flush()


# -- running -----------------------------------------------------------------------------------


def load_cases(specs: Iterable[CorpusSpec]) -> tuple[list[Case], dict[str, int]]:
    """Load the corpora (raises ``CorpusError``); returns the cases and counts per
    corpus."""
    cases: list[Case] = []
    counts: dict[str, int] = {}
    for spec in specs:
        name = spec.name
        n = 2
        while name in counts:
            name = f"{spec.name}-{n}"
            n += 1
        loaded = load_corpus(spec.path, name)
        counts[name] = len(loaded)
        cases.extend(loaded)
    return cases, counts


def _judge(
    case: Case, backend: str, outcome: CaseOutcome, expectations: Expectations
) -> CaseResult:
    mismatches = check_case(case, outcome)
    entry = expectations.lookup(case, backend)
    diff = "\n".join(mismatches)
    if mismatches:
        if entry is not None:
            return CaseResult(case, backend, "expected-difference", entry.reason, diff, outcome)
        return CaseResult(case, backend, "failed", mismatches[0], diff, outcome)
    if entry is not None:
        return CaseResult(case, backend, "unexpectedly-passing", entry.reason, "", outcome)
    if case.xfail:
        return CaseResult(case, backend, "xfail-passed", f"ladder xfail: {case.xfail}", "", outcome)
    return CaseResult(case, backend, "passed", "", "", outcome)


async def run_cases(
    cases: Sequence[Case],
    backends: Sequence[Backend],
    expectations: Expectations | None = None,
    *,
    strict: bool = False,
    progress: Progress | None = None,
    case_timeout: float = DEFAULT_CASE_TIMEOUT,
    corpora: dict[str, int] | None = None,
) -> Report:
    """Run every case on every backend (in that order: all cases on the first backend,
    then on the next) and judge them.  When several backends ran a case, each later
    backend must agree with the first one; a disagreement fails the case on the later
    backend, unless the expectations file lists the case for one of the two only."""
    expectations = expectations or Expectations()
    started = time.perf_counter()
    results: list[CaseResult] = []
    by_backend: dict[str, dict[str, CaseResult]] = {}
    failed = 0
    for backend in backends:
        verdicts = by_backend.setdefault(backend.name, {})
        await backend.start()
        try:
            prepare = getattr(backend, "prepare", None)
            if callable(prepare):
                # Optional: the cases to come, in order (a browser backend boots ahead).
                await prepare(list(cases), case_timeout=case_timeout)
            for case in cases:
                t0 = time.perf_counter()
                try:
                    outcome = await asyncio.wait_for(backend.run_case(case), case_timeout)
                except TimeoutError:
                    result = CaseResult(
                        case,
                        backend.name,
                        "error",
                        f"the case did not finish within {case_timeout:g}s on {backend.name}",
                    )
                except Exception as exc:
                    result = CaseResult(
                        case,
                        backend.name,
                        "error",
                        f"backend {backend.name} failed: {type(exc).__name__}: {exc}",
                        "".join(traceback.format_exception(exc)),
                    )
                else:
                    try:
                        result = _judge(case, backend.name, outcome, expectations)
                    except Exception as exc:  # a malformed outcome (e.g. a bad wire value)
                        result = CaseResult(
                            case,
                            backend.name,
                            "error",
                            f"cannot judge the outcome of {backend.name}: "
                            f"{type(exc).__name__}: {exc}",
                            "".join(traceback.format_exception(exc)),
                            outcome,
                        )
                result.duration_ms = round((time.perf_counter() - t0) * 1000.0, 3)
                if result.status in ("failed", "error"):
                    failed += 1
                results.append(result)
                verdicts[case.key] = result
                if progress is not None:
                    progress.advance(f"{backend.name} {case.key}", failed)
        finally:
            await backend.close()
    if progress is not None:
        progress.close()
    _cross_check(backends, by_backend, expectations)
    return Report(
        results=results,
        backends=[b.name for b in backends],
        strict=strict,
        corpora=dict(corpora or {}),
        duration_s=time.perf_counter() - started,
    )


def _cross_check(
    backends: Sequence[Backend],
    by_backend: dict[str, dict[str, CaseResult]],
    expectations: Expectations,
) -> None:
    if len(backends) < 2:
        return
    reference = backends[0].name
    for other in backends[1:]:
        for key, theirs in by_backend[other.name].items():
            ours = by_backend[reference].get(key)
            if ours is None or ours.outcome is None or theirs.outcome is None:
                continue
            diff = compare_outcomes(ours.outcome, theirs.outcome)
            if not diff:
                continue
            e_ref = expectations.lookup(ours.case, reference)
            e_other = expectations.lookup(theirs.case, other.name)
            if (e_ref is None) != (e_other is None) or (
                e_ref is not None and e_other is not None and e_ref is not e_other
            ):
                # Listed for one backend only: the two are expected to differ.  A listed
                # case that met its corpus's expectations differs in the comparison only:
                # that is the expected difference (not an unexpected pass).
                for listed, entry in ((ours, e_ref), (theirs, e_other)):
                    if entry is not None and listed.status == "unexpectedly-passing":
                        listed.status = "expected-difference"
                        listed.reason = entry.reason
                        listed.diff = (
                            f"disagrees with {other.name if listed is ours else reference}:\n{diff}"
                        )
                continue
            theirs.status = "failed"
            theirs.reason = f"disagrees with {reference}"
            theirs.diff = (theirs.diff + "\n" if theirs.diff else "") + diff
