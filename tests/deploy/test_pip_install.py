"""A Python developer's path: pip-install the wheel into a fresh venv (no checkout),
`monty-runtime export` a site, `monty-runtime serve` it, run the contract in Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from monty_dev.package import Packages

from .support import STATIC_PAGE, Browser, check_scenarios, free_port

#: Each test boots runtimes in a real browser (and builds or installs packages in its
#: fixtures): minutes on a loaded machine, far beyond the default per-test timeout.
pytestmark = pytest.mark.timeout(900)



def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HOME"] = str(tmp)
    return env


def test_the_wheel_carries_the_web_host_and_the_worker_wheel_does_not(packages: Packages) -> None:
    with zipfile.ZipFile(packages.wheel) as wheel:
        names = wheel.namelist()
        web = sorted(n.removeprefix("monty_runtime/_web/") for n in names if "/_web/" in n)
        info = json.loads(wheel.read("monty_runtime/_web/dist/build-info.json"))
        inner = wheel.read(f"monty_runtime/_web/dist/{info['wheel']}")
    for name in ("monty-runtime.js", "monty-runtime.d.ts", "tools.js", "tools.d.ts", "worker.js",
                 "layout.js", "dist/pyodide-lock.json", f"dist/{info['wheel']}",
                 "pyodide/pyodide.mjs", "pyodide/pyodide.asm.wasm", "pyodide/python_stdlib.zip"):
        assert name in web
    # Runtime only: no demo pages, no tests.
    assert not [n for n in web if n.endswith((".html", ".css")) or "playground" in n]
    assert "monty_runtime/_deploy.py" in names and "monty_runtime/_server.py" in names
    assert not [n for n in names if "conformance" in n or n.startswith("monty_dev")]
    # The worker's wheel, inside it, is the runtime alone.
    inner_path = Path(str(packages.wheel) + ".inner.whl")
    inner_path.write_bytes(inner)
    with zipfile.ZipFile(inner_path) as worker_wheel:
        inner_names = worker_wheel.namelist()
    assert "monty_runtime/worker.py" in inner_names
    assert not [n for n in inner_names if "_web" in n or n.endswith(("_server.py", "cli.py", "_deploy.py"))]


def test_version_and_dev_commands(installed: Path, tmp_path: Path) -> None:
    out = subprocess.run([str(installed / "monty-runtime"), "--version"], capture_output=True,
                         text=True, timeout=60, env=_env(tmp_path), cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("monty-runtime 0.")
    out = subprocess.run([str(installed / "monty-runtime"), "build"], capture_output=True,
                         text=True, timeout=60, env=_env(tmp_path), cwd=tmp_path)
    assert out.returncode == 2
    assert "development command of a source checkout" in out.stderr


@pytest.fixture(scope="module")
def served_site(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("pip-site")
    site = tmp / "site"
    out = subprocess.run([str(installed / "monty-runtime"), "export", str(site), "--headers", "netlify"],
                         capture_output=True, text=True, timeout=120, env=_env(tmp), cwd=tmp)
    assert out.returncode == 0, out.stderr
    assert (site / "monty-runtime" / "worker.js").is_file()
    assert (site / "_headers").is_file() and (site / ".nojekyll").is_file()
    (site / "index.html").write_text(STATIC_PAGE)
    port = free_port()
    proc = subprocess.Popen([str(installed / "monty-runtime"), "serve", "--root", str(site),
                             "--port", str(port)], env=_env(tmp), cwd=tmp,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"serve did not start: {proc.stderr and proc.stderr.read()}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_installed_export_and_serve_run_the_contract(served_site: str, chromium: Browser) -> None:
    with urllib.request.urlopen(served_site + "/monty-runtime/worker.js") as r:
        assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    out, console = chromium.run_scenarios(served_site + "/")
    check_scenarios(out, isolated=True)
    assert not [line for line in console if "not cross-origin isolated" in line]
