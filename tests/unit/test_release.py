"""One version for the Python wheel and the npm package; the release files exist."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import monty_runtime

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_and_the_npm_package_have_one_version() -> None:
    npm = json.loads((ROOT / "web" / "package.json").read_text())
    assert npm["name"] == "monty-runtime"
    assert npm["version"] == monty_runtime.__version__
    # pyproject takes its version from the package (no second copy to drift).
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = { attr = "monty_runtime.__version__" }' in pyproject


def test_the_changelog_starts_with_this_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    first = re.search(r"^## (\S+)", text, re.MULTILINE)
    assert first is not None and first.group(1) == monty_runtime.__version__


def test_license_is_mit_as_declared() -> None:
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()
    assert json.loads((ROOT / "web" / "package.json").read_text())["license"] == "MIT"


def test_version_flag() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "monty_runtime", "--version"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"monty-runtime {monty_runtime.__version__} (protocol ")
