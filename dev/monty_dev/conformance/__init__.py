"""The conformance runner: one corpus (the python ladder plus the project's own cases),
run on every backend (native CPython now; the browser worker through the same
:class:`Backend` interface), judged against the corpus's expectations and the
expectations file, and compared backend against backend.

``main(argv)`` is the ``conformance`` command; :func:`run_conformance` (sync) and
:func:`run_cases` (async) are the API behind it.  See ``docs/conformance.md``.
"""

from .backends import (
    Backend,
    BackendUnavailable,
    CaseOutcome,
    HostAnswer,
    HostScript,
    NativeBackend,
    RunOutcome,
    create_backend,
    register_backend,
)
from .cli import main, run_conformance, select_cases
from .corpus import (
    Case,
    CorpusError,
    CorpusSpec,
    Expectations,
    Step,
    default_corpora,
    find_ladder,
    load_corpus,
    load_expectations,
)
from .run import BackendSummary, CaseResult, Progress, Report, load_cases, run_cases

__all__ = [
    "Backend",
    "BackendSummary",
    "BackendUnavailable",
    "Case",
    "CaseOutcome",
    "CaseResult",
    "CorpusError",
    "CorpusSpec",
    "Expectations",
    "HostAnswer",
    "HostScript",
    "NativeBackend",
    "Progress",
    "Report",
    "RunOutcome",
    "Step",
    "create_backend",
    "default_corpora",
    "find_ladder",
    "load_cases",
    "load_corpus",
    "load_expectations",
    "main",
    "register_backend",
    "run_cases",
    "run_conformance",
    "select_cases",
]
