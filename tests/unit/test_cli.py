"""The command line: run, conformance wiring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monty_runtime", *args],
        input=stdin, capture_output=True, text=True, timeout=120,
    )


def test_run_from_stdin_prints_output_and_value() -> None:
    out = _cli("run", stdin="print('hi')\n6 * 7\n")
    assert out.returncode == 0
    assert out.stdout == "hi\n42\n"


def test_run_error_exit_status_and_traceback(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("x = 1\n1/0\n")
    out = _cli("run", str(script))
    assert out.returncode == 1
    assert 'File "job.py", line 2' in out.stderr
    assert "ZeroDivisionError" in out.stderr


def test_run_json_and_timeout() -> None:
    out = _cli("run", "--json", "--timeout", "0.2", stdin="while True: pass")
    assert out.returncode == 1
    assert json.loads(out.stdout)["error"]["type"] == "TimeoutError"


def test_conformance_subcommand_is_wired() -> None:
    out = _cli("conformance", "--backend", "native", "-k", "codec", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "native: " in out.stdout + out.stderr
    assert " passed, 0 failed" in out.stdout + out.stderr
