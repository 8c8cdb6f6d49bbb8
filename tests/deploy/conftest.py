"""Fixtures of the deployment tests: the release artifacts (built once per session), a
venv with the wheel pip-installed, and Chromium (per module: see tests/browser/conftest.py
for why sync Playwright is not kept across modules)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monty_dev.package import Packages, package

from .support import Browser


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    """The wheel users install and the npm package, built from this checkout."""
    return package(out=tmp_path_factory.mktemp("packages"))


@pytest.fixture(scope="session")
def installed(packages: Packages, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel pip-installed (no checkout on its path); its bin/."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index",
         "--disable-pip-version-check", str(packages.wheel)],
        check=True, timeout=300, env=env,
    )
    return venv / "bin"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    browser = Browser()
    try:
        yield browser
    finally:
        browser.close()
