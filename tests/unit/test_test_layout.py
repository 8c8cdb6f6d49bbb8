"""Test modules are imported by basename (pytest's rootdir import mode): two files of
the same name in different test folders break collection of the whole suite."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_name_is_unique_across_the_test_folders() -> None:
    names = Counter(
        p.name for p in TESTS.rglob("*.py")
        if p.name not in ("conftest.py", "__init__.py") and "node_modules" not in p.parts
    )
    assert [n for n, c in names.items() if c > 1] == []
