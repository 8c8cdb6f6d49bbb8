"""Deployment mistakes give errors that name the fix, in a real browser: a missing lock
file, a worker script served with the wrong MIME type, a page without cross-origin
isolation (a console warning naming the headers)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monty_runtime._deploy import export
from monty_runtime._server import RunningServer, start_server

from .support import STATIC_PAGE, Browser

#: Each test boots runtimes in a real browser (and builds or installs packages in its
#: fixtures): minutes on a loaded machine, far beyond the default per-test timeout.
pytestmark = pytest.mark.timeout(900)



@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("errors") / "site"
    export(root)
    (root / "index.html").write_text(STATIC_PAGE)
    # A second runtime folder without its lock file, and a worker served as text/plain.
    shutil.copytree(root / "monty-runtime", root / "broken")
    (root / "broken" / "dist" / "pyodide-lock.json").unlink()
    (root / "broken" / "pyodide" / "pyodide.asm.wasm").unlink()
    shutil.copyfile(root / "monty-runtime" / "worker.js", root / "monty-runtime" / "worker.txt")
    return root


@pytest.fixture(scope="module", params=[True, False], ids=["isolated", "not_isolated"])
def server(request: pytest.FixtureRequest, site: Path) -> Iterator[RunningServer]:
    with start_server(site, isolated=request.param) as running:
        yield running


def _create(chromium: Browser, url: str, options_js: str) -> tuple[str, list[str]]:
    context = chromium.browser.new_context()
    console: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.set_default_timeout(120_000)
        page.goto(url)
        page.wait_for_function("() => window.monty !== undefined")
        text: Any = page.evaluate(
            f"""async () => {{
              try {{ const rt = await window.monty.MontyRuntime.create({options_js}); await rt.dispose(); return "ok"; }}
              catch (e) {{ return `${{e.name}}: ${{e.message}}`; }}
            }}"""
        )
        return str(text), console
    finally:
        context.close()


def test_a_missing_lock_file_names_file_url_and_command(server: RunningServer, chromium: Browser) -> None:
    text, _ = _create(chromium, server.url, '{ lockFileURL: "/broken/dist/pyodide-lock.json", snapshot: false, pool: false }')
    assert text.startswith("BootError"), text
    assert f"HTTP 404 File not found for {server.url}broken/dist/pyodide-lock.json: " in text
    assert "pyodide-lock.json is an output of the web build" in text
    assert "monty-runtime export SITE" in text and "python -m monty_dev build" in text


def test_a_missing_pyodide_file_names_the_folder_and_the_fix(server: RunningServer, chromium: Browser) -> None:
    text, _ = _create(chromium, server.url, '{ indexURL: "/broken/pyodide/", snapshot: false, pool: false }')
    assert text.startswith("BootError"), text
    # Failed at once (the page saw the 404 while fetching for the worker), not at a timeout.
    assert f"HTTP 404 File not found for {server.url}broken/pyodide/pyodide.asm.wasm: " in text
    assert "pyodide.asm.wasm is a Pyodide file" in text and "indexURL" in text


def test_a_worker_served_with_a_wrong_mime_type_says_so(server: RunningServer, chromium: Browser) -> None:
    text, _ = _create(chromium, server.url, '{ workerURL: "/monty-runtime/worker.txt", snapshot: false, pool: false }')
    assert text.startswith("BootError"), text
    assert "unknown error" not in text
    assert f'{server.url}monty-runtime/worker.txt is served as "text/plain' in text
    assert "must be served as text/javascript" in text


def test_a_page_without_isolation_is_warned_once(server: RunningServer, chromium: Browser) -> None:
    text, console = _create(chromium, server.url, "{}")
    assert text == "ok"
    warnings = [line for line in console if "not cross-origin isolated" in line]
    if server.isolated:
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert warnings[0].startswith("warning: [monty-runtime]")
        assert "Cross-Origin-Embedder-Policy: require-corp" in warnings[0]
