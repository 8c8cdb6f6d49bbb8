"""``conformance [--backend native|chromium|firefox|webkit|all]
[--server-mode isolated|not_isolated|both] [--corpus DIR ...]
[--json FILE] [--junit FILE] [--strict] [-k SUBSTRING]``.

Exit status: 0 when every case conforms (expected differences included), 1 on any
unexpected result (a failure, a backend error, a disagreement between backends, or with
``--strict`` an expected difference that now passes), 2 when the run could not start
(bad corpus or expectations file, unavailable backend, bad arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .backends import (
    BROWSER_BACKENDS,
    BROWSER_ENGINES,
    Backend,
    BackendUnavailable,
    available_backends,
    create_backend,
)
from .corpus import (
    Case,
    CorpusError,
    CorpusSpec,
    Expectations,
    default_corpora,
    find_repo_root,
    load_expectations,
)
from .run import DEFAULT_CASE_TIMEOUT, Progress, Report, load_cases, run_cases

__all__ = ["main", "run_conformance", "select_cases"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m monty_dev conformance",
        description="Run the conformance corpus (the project's own cases, plus external "
        "corpora: --corpus, $MONTY_LADDER) on one or more backends and compare the results.",
    )
    p.add_argument(
        "--backend",
        default="native",
        help="native (default), chromium, firefox, webkit, or all (native and every "
        "engine); deno is MontyRuntime(backend='deno'); a comma-separated list works too. "
        "An engine runs in each --server-mode, "
        "each its own column (e.g. 'firefox' and 'firefox-noniso')",
    )
    p.add_argument(
        "--server-mode",
        default="both",
        choices=["isolated", "not_isolated", "both"],
        help="browsers: serve the page cross-origin isolated (column 'chromium'), not "
        "isolated ('chromium-noniso'), or both (default)",
    )
    p.add_argument(
        "--fresh-runtimes",
        action="store_true",
        help="chromium: boot a runtime for every case, as the case describes it (slow), "
        "instead of reusing sandbox-mode runtimes for one-step cases",
    )
    p.add_argument(
        "--corpus",
        action="append",
        metavar="DIR",
        help="a corpus directory (or NAME=DIR); repeatable; default: "
        "tests/conformance/cases, plus the python ladder when $MONTY_LADDER names it",
    )
    p.add_argument(
        "--expectations",
        metavar="FILE",
        help="expected differences (default: tests/conformance/expectations.json)",
    )
    p.add_argument("--no-expectations", action="store_true", help="ignore the expectations file")
    p.add_argument("--json", metavar="FILE", help="write a JSON report")
    p.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    p.add_argument(
        "--strict", action="store_true", help="an expected difference that passes is a failure"
    )
    p.add_argument(
        "-k",
        dest="keyword",
        action="append",
        metavar="SUBSTRING",
        help="only cases whose 'corpus#id name' or file name contains SUBSTRING "
        "(case-insensitive; repeatable: any)",
    )
    p.add_argument(
        "--case-timeout",
        type=float,
        default=DEFAULT_CASE_TIMEOUT,
        metavar="SECONDS",
        help="per case and backend (default %(default)s)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="also list the expected differences"
    )
    return p


def select_cases(cases: Sequence[Case], keywords: Sequence[str] | None) -> list[Case]:
    """The cases whose ``corpus#id name`` or file name contains any of ``keywords``
    (case-insensitive)."""
    if not keywords:
        return list(cases)
    wanted = [k.lower() for k in keywords]

    def text(c: Case) -> str:
        return f"{c.title} {Path(c.source).name}".lower()

    return [c for c in cases if any(k in text(c) for k in wanted)]


_SERVER_MODE_COLUMNS = {"isolated": [""], "not_isolated": ["-noniso"], "both": ["", "-noniso"]}


def _backend_names(text: str, server_mode: str = "both") -> list[str]:
    """Backend (column) names: an engine (``chromium``, ``firefox``, ``webkit``) stands
    for one column per server mode; ``all`` is native and every engine."""
    suffixes = _SERVER_MODE_COLUMNS.get(server_mode)
    if suffixes is None:
        raise ValueError(f"unknown server mode {server_mode!r}")

    def columns(engine: str) -> list[str]:
        return [engine + suffix for suffix in suffixes]

    known = available_backends()
    if text == "all":
        others = [n for n in known if n not in ("native", "deno", *BROWSER_BACKENDS)]
        return ["native", *(c for e in BROWSER_ENGINES for c in columns(e)), *others]
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("no backend named")
    out: list[str] = []
    for n in names:
        if n not in known:
            raise ValueError(f"unknown backend {n!r}; choose from {', '.join(known)} or all")
        for name in columns(n) if n in BROWSER_ENGINES else [n]:
            if name not in out:
                out.append(name)
    return out


def _note(stream: TextIO, line: str) -> None:
    """A line on the progress stream (over the progress bar on a terminal)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    stream.write(("\r\x1b[K" if tty else "") + line + "\n")
    stream.flush()


def _default_expectations() -> Path | None:
    root = find_repo_root()
    if root is None:
        return None
    path = root / "tests" / "conformance" / "expectations.json"
    return path if path.is_file() else None


def run_conformance(
    corpora: Sequence[CorpusSpec | str | Path] | None = None,
    backends: Sequence[str | Backend] = ("native",),
    expectations: Expectations | str | Path | None = None,
    *,
    strict: bool = False,
    keywords: Sequence[str] | None = None,
    progress: bool = False,
    case_timeout: float = DEFAULT_CASE_TIMEOUT,
) -> Report:
    """Load, run and judge (the API behind ``main``).  ``corpora`` defaults to the project's
    corpus plus ``$MONTY_LADDER`` when set (:func:`default_corpora`); ``expectations``
    to ``tests/conformance/expectations.json`` (pass ``Expectations()`` for none).  Raises
    ``CorpusError`` / ``BackendUnavailable``
    when the run cannot start.  Must not be called from a running event loop (use
    :func:`~monty_dev.conformance.run.run_cases` there)."""
    specs = (
        default_corpora()
        if corpora is None
        else [c if isinstance(c, CorpusSpec) else CorpusSpec.parse(str(c)) for c in corpora]
    )
    cases, counts = load_cases(specs)
    if isinstance(expectations, Expectations):
        exp = expectations
    else:
        path = expectations if expectations is not None else _default_expectations()
        exp = load_expectations(path)
    exp.check_against(cases)
    selected = select_cases(cases, keywords)
    instances = [create_backend(b) if isinstance(b, str) else b for b in backends]
    bar = Progress(len(selected) * len(instances), enabled=progress)
    report = asyncio.run(
        run_cases(
            selected,
            instances,
            exp,
            strict=strict,
            progress=bar,
            case_timeout=case_timeout,
            corpora=counts,
        )
    )
    report.deselected = len(cases) - len(selected)
    return report


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """The ``conformance`` command; returns the exit status (see the module doc)."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        names = _backend_names(args.backend, args.server_mode)
    except ValueError as exc:
        print(f"conformance: {exc}", file=err)
        return EXIT_USAGE
    browser_options: dict[str, object] = {"fresh_runtimes": args.fresh_runtimes}
    if not args.no_progress:
        browser_options["log"] = lambda line: _note(err, line)
    try:
        backends = [
            create_backend(n, **browser_options) if n in BROWSER_BACKENDS else create_backend(n)
            for n in names
        ]
    except BackendUnavailable as exc:
        print(f"conformance: {exc}", file=err)
        return EXIT_USAGE
    expectations: Expectations | str | None
    expectations = Expectations() if args.no_expectations else args.expectations
    try:
        report = run_conformance(
            args.corpus,
            backends,
            expectations,
            strict=args.strict,
            keywords=args.keyword,
            progress=not args.no_progress,
            case_timeout=args.case_timeout,
        )
    except CorpusError as exc:
        print(f"conformance: {exc}", file=err)
        return EXIT_USAGE
    except BackendUnavailable as exc:
        print(f"conformance: {exc}", file=err)
        return EXIT_USAGE
    try:
        if args.json:
            Path(args.json).write_text(
                json.dumps(report.to_json(), indent=1) + "\n",
                encoding="utf-8",
            )
        if args.junit:
            Path(args.junit).write_text(report.to_junit(), encoding="utf-8")
    except OSError as exc:
        print(f"conformance: cannot write report: {exc}", file=err)
        return EXIT_USAGE
    print(report.render(verbose=args.verbose), file=out)
    out.flush()
    return report.exit_code
