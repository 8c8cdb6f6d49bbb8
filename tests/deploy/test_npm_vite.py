"""A web developer's path: the npm package (built by `python -m monty_dev package`)
installed into a throw-away Vite app (vite from npm), used unchanged through
`import { MontyRuntime } from "monty-runtime"`: the Vite dev server, `vite build` served
by a static server with the exported `_headers`, and a plain static folder made by
`npx monty-runtime export`. The contract scenarios run in Chromium against each."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from monty_dev.package import Packages

from .support import STATIC_PAGE, Browser, check_scenarios, free_port, headers_file_server

#: Each test boots runtimes in a real browser (and builds or installs packages in its
#: fixtures): minutes on a loaded machine, far beyond the default per-test timeout.
pytestmark = pytest.mark.timeout(900)

#: The Vite major the test app installs (from the npm cache when it has it).
VITE = "vite@8"

APP_PAGE = """<!doctype html>
<meta charset="utf-8">
<title>app</title>
<script type="module" src="./main.js"></script>
"""
APP_MAIN = """import { MontyRuntime } from "monty-runtime";
import * as tools from "monty-runtime/tools";

window.monty = { MontyRuntime, tools };
"""
APP_CONFIG = """import montyRuntime from "monty-runtime/vite";
export default { plugins: [montyRuntime()] };
"""


def _npm(args: list[str], cwd: Path, timeout: float = 300) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False,
                          env={**os.environ, "npm_config_update_notifier": "false"})
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def app(packages: Packages, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vite-app")
    (root / "package.json").write_text(json.dumps({"name": "app", "private": True, "type": "module"}))
    _npm(["npm", "install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error",
          str(packages.npm), VITE], root)
    (root / "index.html").write_text(APP_PAGE)
    (root / "main.js").write_text(APP_MAIN)
    (root / "vite.config.js").write_text(APP_CONFIG)
    return root


def _stop(proc: subprocess.Popen[str]) -> None:
    """Stop ``proc`` and its children: npx runs vite as a child of its own, which a
    plain terminate() of npx would leave running."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _wait(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop(proc)
                out = proc.stdout.read() if proc.stdout else ""
                raise AssertionError(f"the server did not start:\n{out}") from None
            time.sleep(0.3)


@pytest.fixture(scope="module")
def vite_dev(app: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(["npx", "vite", "--host", "127.0.0.1", "--port", str(port), "--strictPort"],
                            cwd=app, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait(url, proc)
        yield url
    finally:
        _stop(proc)


def test_vite_dev_server_runs_the_contract(vite_dev: str, chromium: Browser) -> None:
    with urllib.request.urlopen(vite_dev + "monty-runtime/worker.js") as r:
        assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert r.headers["Content-Type"].startswith("text/javascript")
    out, _ = chromium.run_scenarios(vite_dev)
    check_scenarios(out, isolated=True)


def test_vite_build_served_with_the_exported_headers_runs_the_contract(app: Path, chromium: Browser) -> None:
    _npm(["npx", "vite", "build"], app)
    out_dir = app / "dist"
    assert (out_dir / "monty-runtime" / "worker.js").is_file()
    assert (out_dir / "monty-runtime" / "pyodide" / "pyodide.asm.wasm").is_file()
    headers = _npm(["npx", "monty-runtime", "headers", "netlify", "--path", "/monty-runtime/"], app)
    (out_dir / "_headers").write_text(headers)
    with headers_file_server(out_dir, out_dir / "_headers") as url:
        out, _ = chromium.run_scenarios(url + "/")
    check_scenarios(out, isolated=True)


def test_npx_export_makes_a_static_folder_that_runs_the_contract(app: Path, chromium: Browser) -> None:
    site = app / "static-site"
    printed = _npm(["npx", "monty-runtime", "export", str(site), "--headers", "cloudflare"], app)
    assert "-> " in printed
    files = sorted(p.relative_to(site / "monty-runtime").as_posix() for p in (site / "monty-runtime").rglob("*") if p.is_file())
    assert "worker.js" in files and "pyodide/python_stdlib.zip" in files and "dist/pyodide-lock.json" in files
    assert not [f for f in files if f.endswith((".html", ".css")) or f in ("vite.js", "deploy.json")]
    (site / "index.html").write_text(STATIC_PAGE)
    with headers_file_server(site, site / "_headers") as url:
        out, _ = chromium.run_scenarios(url + "/")
    check_scenarios(out, isolated=True)
