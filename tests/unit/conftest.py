"""Unit tests that compare the Python and JavaScript halves run Node.js: it is a
requirement of the project (``scripts/dev setup`` checks it), so its absence fails
loudly instead of skipping those tests."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(autouse=True, scope="session")
def _node_is_installed() -> None:
    if shutil.which("node") is None:
        pytest.fail("node (Node.js 18+) is not installed; it is needed to check the JS halves")
