"""Says which conformance corpora this run uses (the project's always; the python
ladder only when ``$MONTY_LADDER`` names it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monty_dev.conformance import CorpusError, default_corpora

ROOT = Path(__file__).resolve().parents[2]


def pytest_report_header(config: pytest.Config) -> str:
    try:
        specs = default_corpora(ROOT)
    except CorpusError as exc:
        return f"conformance corpora: {exc}"
    used = ", ".join(f"{s.name} ({s.path})" for s in specs)
    hint = "" if len(specs) > 1 else " (set $MONTY_LADDER or pass --corpus to add one)"
    return f"conformance corpora: {used}{hint}"
