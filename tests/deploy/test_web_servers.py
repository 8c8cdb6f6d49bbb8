"""The exported headers work as pasted: Debian's nginx and Caddy serve an exported site
with `monty-runtime headers nginx|caddy`, on loopback ports; the headers are checked
and the contract runs in Chromium against each."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from monty_runtime._deploy import export, snippet

from .support import STATIC_PAGE, Browser, check_scenarios, free_port

#: Each test boots runtimes in a real browser (and builds or installs packages in its
#: fixtures): minutes on a loaded machine, far beyond the default per-test timeout.
pytestmark = pytest.mark.timeout(900)


CSP = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'none'; worker-src 'self'"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("servers") / "site"
    export(root)
    (root / "index.html").write_text(STATIC_PAGE)
    (root / "app.js").write_text("export const app = 1;\n")
    return root


def _wait(url: str, proc: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"server did not start:\n{log.read_text() if log.exists() else ''}") from None
            time.sleep(0.2)


def _binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    assert path, f"{name} is not installed: apt-get install {name} (scripts/dev setup does)"
    return path


@pytest.fixture(scope="module")
def nginx(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    prefix = tmp_path_factory.mktemp("nginx")
    port = free_port()
    temp = "".join(f"{k}_temp_path {prefix}/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (prefix / "nginx.conf").write_text(
        "daemon off;\nmaster_process off;\nuser root;\n"
        f"pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n"
        "events {}\nhttp {\n"
        "include /etc/nginx/mime.types;\ndefault_type application/octet-stream;\n"
        f"access_log off;\n{temp}"
        f"server {{\nlisten 127.0.0.1:{port};\nroot {site};\nindex index.html;\n"
        # The snippet, exactly as printed, inside the server block.
        + snippet("nginx", path="/monty-runtime/")
        + "}\n}\n"
    )
    proc = subprocess.Popen([_binary("nginx"), "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url + "/", proc, prefix / "error.log")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def caddy(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("caddy")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (home / "Caddyfile").write_text(
        "{\n\tadmin off\n}\n"
        # The site block exactly as printed, with this test's address and root.
        + snippet("caddy", path="/monty-runtime/", root=str(site), address=url)
    )
    log = home / "caddy.log"
    env = {"HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "XDG_CONFIG_HOME": str(home / "config"),
           "PATH": "/usr/bin:/bin"}
    with log.open("w") as out:
        proc = subprocess.Popen([_binary("caddy"), "run", "--config", str(home / "Caddyfile"),
                                 "--adapter", "caddyfile"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                text=True)
    try:
        _wait(url + "/", proc, log)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _get(url: str) -> tuple[int, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=10) as r:
        r.read()
        return r.status, {k.lower(): v for k, v in r.headers.items()}


def _check_headers(base: str) -> None:
    status, page = _get(base + "/")
    assert status == 200
    # The page itself: HTML (not a download), cross-origin isolated, without the worker's policy.
    assert page["content-type"].startswith("text/html")
    assert page["cross-origin-opener-policy"] == "same-origin"
    assert page["cross-origin-embedder-policy"] == "require-corp"
    assert "content-security-policy" not in page
    _, app = _get(base + "/app.js")
    assert "content-security-policy" not in app and app["cross-origin-embedder-policy"] == "require-corp"
    for path, mime in [("monty-runtime/worker.js", "javascript"), ("monty-runtime/pyodide/pyodide.mjs", "javascript"),
                       ("monty-runtime/pyodide/pyodide.asm.wasm", "application/wasm"),
                       ("monty-runtime/dist/pyodide-lock.json", "application/json")]:
        _, h = _get(f"{base}/{path}")
        assert mime in h["content-type"], (path, h["content-type"])
        assert h["content-security-policy"] == CSP, path
        assert h["cross-origin-embedder-policy"] == "require-corp", path
        assert h["cross-origin-resource-policy"] == "same-origin", path
        assert h["x-content-type-options"] == "nosniff", path


def test_nginx_snippet_serves_the_site_with_the_headers(nginx: str) -> None:
    _check_headers(nginx)


def test_caddy_site_block_serves_the_site_with_the_headers(caddy: str) -> None:
    _check_headers(caddy)


def test_the_contract_runs_behind_nginx(nginx: str, chromium: Browser) -> None:
    out, _ = chromium.run_scenarios(nginx + "/")
    check_scenarios(out, isolated=True)


def test_the_contract_runs_behind_caddy(caddy: str, chromium: Browser) -> None:
    out, _ = chromium.run_scenarios(caddy + "/")
    check_scenarios(out, isolated=True)
