"""Dev server: headers, MIME types, 404s, path traversal, request log, CLI."""

from __future__ import annotations

import gzip
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monty_runtime._server import (
    ISOLATION_HEADERS,
    WORKER_CSP,
    RunningServer,
    ServerError,
    accepted_encodings,
    headers_for_path,
    start_server,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SECRET = "top-secret-outside-the-web-root"

FILES = {
    "index.html": "<!doctype html><title>index</title>",
    "page.html": "<!doctype html><title>page</title>",
    "monty-runtime.js": "export const x = 1;",
    "worker.js": "import './boot.js';",
    "boot.js": "export const boot = 1;",
    "protocol.js": "export const p = 1;",
    "codec.js": "export const c = 1;",
    "boot-check-worker.js": "self.onmessage = () => {};",
    "app.mjs": "export {};",
    "style.css": "body {}",
    "icon.svg": "<svg xmlns='http://www.w3.org/2000/svg'/>",
    "data.json": "{}",
    "types.d.ts": "export {};",
    "dist/pkg-1.0-py3-none-any.whl": "PK",
    "dist/archive.zip": "PK",
    "dist/archive.tar": "tar",
    "dist/unknown.bin": "bin",
    "node_modules/pyodide/pyodide.mjs": "export {};",
    "node_modules/pyodide/pyodide.asm.mjs": "export {};",
    "node_modules/pyodide/pyodide.asm.js": "var x;",
    "node_modules/pyodide/pyodide.asm.wasm": "\0asm",
    "node_modules/pyodide/python_stdlib.zip": "PK",
}


@pytest.fixture(scope="module")
def web_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("site")
    (base / "secret.txt").write_text(SECRET)
    (base / "pyproject.toml").write_text(f"[project]\nname = '{SECRET}'\n")
    root = base / "web"
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "escape").symlink_to(base)  # a symlink out of the root must not be followed
    return root


@pytest.fixture(scope="module")
def isolated(web_root: Path) -> Iterator[RunningServer]:
    with start_server(web_root, isolated=True) as srv:
        yield srv


@pytest.fixture(scope="module")
def plain(web_root: Path) -> Iterator[RunningServer]:
    with start_server(web_root, isolated=False) as srv:
        yield srv


def send(srv: RunningServer, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """A raw request: the path goes on the wire exactly as given (no normalisation)."""
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize("path", ["/index.html", "/worker.js", "/dist/archive.zip", "/missing"])
def test_isolation_headers_on_every_response(isolated: RunningServer, path: str) -> None:
    _status, headers, _body = send(isolated, path)
    for name, value in ISOLATION_HEADERS.items():
        assert headers.get(name.lower()) == value, (path, name)
    assert headers["cache-control"] == "no-cache"
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/index.html", "/worker.js", "/missing"])
def test_no_isolation_headers_when_turned_off(plain: RunningServer, path: str) -> None:
    _status, headers, _body = send(plain, path)
    for name in ISOLATION_HEADERS:
        assert name.lower() not in headers, (path, name)
    assert headers["cache-control"] == "no-cache"


WORKER_SCRIPTS = [
    "/worker.js",
    "/boot.js",
    "/protocol.js",
    "/codec.js",
    "/boot-check-worker.js",
    "/node_modules/pyodide/pyodide.mjs",
    "/node_modules/pyodide/pyodide.asm.mjs",
    "/node_modules/pyodide/pyodide.asm.js",
    "/app.mjs",  # any script: a new worker script or worker module is covered unlisted
]


@pytest.mark.parametrize("mode", ["isolated", "plain"])
@pytest.mark.parametrize("path", WORKER_SCRIPTS)
def test_csp_on_worker_scripts(request: pytest.FixtureRequest, mode: str, path: str) -> None:
    srv: RunningServer = request.getfixturevalue(mode)
    status, headers, _body = send(srv, path)
    assert status == 200
    assert headers["content-security-policy"] == WORKER_CSP
    assert headers["content-type"].startswith("text/javascript")


def _get(srv: RunningServer, path: str) -> tuple[int, dict[str, str], bytes]:
    return send(srv, path)


@pytest.mark.parametrize(
    "path",
    [
        "/index.html",
        "/monty-runtime.js",
        "/node_modules/pyodide/pyodide.asm.wasm",
        "/dist/pkg-1.0-py3-none-any.whl",
    ],
)
def test_no_csp_on_other_files(isolated: RunningServer, path: str) -> None:
    status, headers, _body = send(isolated, path)
    assert status == 200
    assert "content-security-policy" not in headers


def test_csp_value() -> None:
    assert WORKER_CSP == (
        "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; "
        "connect-src 'none'; worker-src 'self'"
    )
    # Served from the project folder instead of web/, the same files still get it.
    assert headers_for_path("/web/worker.js")["Content-Security-Policy"] == WORKER_CSP
    assert "Content-Security-Policy" not in headers_for_path("/web/monty-runtime.js")
    assert "Cross-Origin-Opener-Policy" not in headers_for_path("/x", isolated=False)


@pytest.mark.parametrize(
    ("path", "mime"),
    [
        ("/index.html", "text/html"),
        ("/worker.js", "text/javascript"),
        ("/app.mjs", "text/javascript"),
        ("/node_modules/pyodide/pyodide.mjs", "text/javascript"),
        ("/node_modules/pyodide/pyodide.asm.wasm", "application/wasm"),
        ("/data.json", "application/json"),
        ("/dist/pkg-1.0-py3-none-any.whl", "application/octet-stream"),
        ("/dist/archive.zip", "application/zip"),
        ("/node_modules/pyodide/python_stdlib.zip", "application/zip"),
        ("/dist/archive.tar", "application/x-tar"),
        ("/style.css", "text/css"),
        ("/icon.svg", "image/svg+xml"),
        ("/types.d.ts", "text/plain"),
        ("/dist/unknown.bin", "application/octet-stream"),
    ],
)
def test_mime_types(isolated: RunningServer, path: str, mime: str) -> None:
    status, headers, body = send(isolated, path)
    assert status == 200
    assert headers["content-type"].split(";")[0] == mime
    assert int(headers["content-length"]) == len(body)


def test_root_serves_index_and_head_works(isolated: RunningServer) -> None:
    status, headers, body = send(isolated, "/")
    assert status == 200 and b"<title>index</title>" in body
    status, headers, body = send(isolated, "/index.html", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


def test_query_strings_are_ignored_for_files_and_headers(isolated: RunningServer) -> None:
    status, headers, _body = send(isolated, "/worker.js?v=123")
    assert status == 200
    assert headers["content-security-policy"] == WORKER_CSP


# --------------------------------------------------------------------------- 404 / traversal


@pytest.mark.parametrize("path", ["/missing.js", "/dist/nothing.whl", "/node_modules/"])
def test_404(isolated: RunningServer, path: str) -> None:
    status, headers, _body = send(isolated, path)
    assert status == 404
    assert headers["cross-origin-embedder-policy"] == "require-corp"


TRAVERSALS = [
    "/../pyproject.toml",
    "/../secret.txt",
    "/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/pyproject.toml",
    "/..%2fsecret.txt",
    "/..%2Fpyproject.toml",
    "/%2e%2e%2fsecret.txt",
    "/.%2e/secret.txt",
    "/dist/../../secret.txt",
    "/dist/%2e%2e/%2e%2e/secret.txt",
    "//../secret.txt",
    "/..\\secret.txt",
    "/%5c..%5csecret.txt",
    "/..%5csecret.txt",
    "/%252e%252e/secret.txt",
    "/escape/secret.txt",
    "/escape/pyproject.toml",
    "/secret.txt%00.html",
    "/%ff/secret.txt",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_rejected(isolated: RunningServer, path: str) -> None:
    status, _headers, body = send(isolated, path)
    assert status in (400, 404), (path, status)
    assert SECRET.encode() not in body


@pytest.mark.parametrize(
    "path", ["/../pyproject.toml", "/%2e%2e/pyproject.toml", "/..%2fpyproject.toml"]
)
def test_path_traversal_on_the_real_web_root(path: str) -> None:
    with start_server(PROJECT_ROOT / "web") as srv:
        status, _headers, body = send(srv, path)
    assert status == 404
    assert b"[project]" not in body


# --------------------------------------------------------------------------- log, errors


def test_request_log_records_method_path_status_and_dest(isolated: RunningServer) -> None:
    mark = len(isolated.requests())
    conn = http.client.HTTPConnection(isolated.host, isolated.port, timeout=10)
    conn.request("GET", "/worker.js?x=1", headers={"Sec-Fetch-Dest": "worker"})
    conn.getresponse().read()
    conn.request("GET", "/nope")
    conn.getresponse().read()
    conn.close()
    records = isolated.requests()[mark:]
    assert [(r.method, r.path, r.status, r.dest) for r in records] == [
        ("GET", "/worker.js", 200, "worker"),
        ("GET", "/nope", 404, ""),
    ]
    assert str(records[0]) == "GET /worker.js 200 worker"


def test_log_stream_gets_one_line_per_request(web_root: Path, tmp_path: Path) -> None:
    log_file = tmp_path / "requests.log"
    with log_file.open("w") as stream, start_server(web_root, log_stream=stream) as srv:
        send(srv, "/index.html")
        send(srv, "/missing")
    assert log_file.read_text().splitlines() == ["GET /index.html 200 -", "GET /missing 404 -"]


def test_port_in_use_is_a_clear_error(web_root: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ServerError, match="already in use"):
            start_server(web_root, port=port)


def test_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="does not exist"):
        start_server(tmp_path / "nowhere")


def test_port_zero_picks_a_free_port(web_root: Path) -> None:
    with start_server(web_root, port=0) as a, start_server(web_root, port=0) as b:
        assert a.port != b.port and a.port > 0
        assert a.url == f"http://127.0.0.1:{a.port}/"


# --------------------------------------------------------------------------- CLI


def _default_sigint() -> None:
    # As from a terminal: a test run started in the background (``cmd &``) inherits an
    # ignored SIGINT, and Python then installs no KeyboardInterrupt handler at all.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _serve_cli(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "monty_runtime", "serve", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_default_sigint,
    )


@pytest.mark.parametrize(
    ("flags", "mode"),
    [([], "cross-origin isolated"), (["--no-isolation"], "not cross-origin isolated")],
)
def test_cli_serve_prints_url_and_stops_on_ctrl_c(
    web_root: Path, tmp_path: Path, flags: list[str], mode: str
) -> None:
    log_file = tmp_path / "serve.log"
    proc = _serve_cli(
        "--port", "0", "--no-build", "--root", str(web_root), "--log", str(log_file), *flags
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"Serving http://127\.0\.0\.1:(\d+)/ \((.+)\)\n", line)
        assert match, line
        assert match.group(2) == mode
        port = int(match.group(1))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/worker.js")
        resp = conn.getresponse()
        resp.read()
        conn.close()
        assert resp.status == 200
        assert resp.getheader("Content-Security-Policy") == WORKER_CSP
        assert (resp.getheader("Cross-Origin-Opener-Policy") == "same-origin") is (not flags)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == 0
    deadline = time.monotonic() + 5
    while "GET /worker.js 200" not in log_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "GET /worker.js 200" in log_file.read_text()


def test_cli_serve_reports_missing_root(tmp_path: Path) -> None:
    proc = _serve_cli("--port", "0", "--no-build", "--root", str(tmp_path / "nowhere"))
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "does not exist" in err


def test_csp_can_be_turned_off_for_tests(web_root: Path) -> None:
    assert "Content-Security-Policy" not in headers_for_path("/worker.js", csp=False)
    with start_server(web_root, csp=False) as srv:
        assert srv.csp is False
        status, headers, _body = send(srv, "/worker.js")
        assert status == 200
        assert "content-security-policy" not in headers
        assert headers["cross-origin-embedder-policy"] == "require-corp"


# --------------------------------------------------------------------------- precompressed

ORIGINAL = b"\0asm" + bytes(range(256)) * 64
BROTLI_STANDIN = b"brotli bytes, served as they are"


@pytest.fixture(scope="module")
def compressed_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("compressed")
    (root / "m.wasm").write_bytes(ORIGINAL)
    (root / "m.wasm.gz").write_bytes(gzip.compress(ORIGINAL))
    (root / "m.wasm.br").write_bytes(BROTLI_STANDIN)
    (root / "only-gz.bin").write_bytes(ORIGINAL)
    (root / "only-gz.bin.gz").write_bytes(gzip.compress(ORIGINAL))
    (root / "stale.bin.gz").write_bytes(gzip.compress(b"old"))
    (root / "stale.bin").write_bytes(ORIGINAL)  # newer than its .gz: the .gz is stale
    past = time.time() - 3600
    os.utime(root / "stale.bin.gz", (past, past))
    (root / "plain.bin").write_bytes(ORIGINAL)
    with start_server(root, isolated=True) as srv:
        yield srv


def get(
    srv: RunningServer, path: str, headers: dict[str, str], method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        ("gzip, deflate, br, zstd", "br"),
        ("br", "br"),
        ("gzip", "gzip"),
        ("br;q=0, gzip", "gzip"),
        ("br;q=0.5, gzip;q=1", "br"),  # the server's preference among accepted codings
        ("*", "br"),
        ("*, br;q=0", "gzip"),
        ("identity", None),
        ("", None),
        ("gzip;q=0, br;q=0", None),
    ],
)
def test_precompressed_sibling_per_accept_encoding(
    compressed_site: RunningServer, accept: str, coding: str | None
) -> None:
    status, headers, body = get(compressed_site, "/m.wasm", {"Accept-Encoding": accept})
    assert status == 200
    assert headers["content-type"] == "application/wasm"  # the original's type, always
    assert headers["vary"] == "Accept-Encoding"
    assert headers["cross-origin-resource-policy"] == "same-origin"
    assert headers.get("content-encoding") == coding
    assert int(headers["content-length"]) == len(body)
    if coding == "br":
        assert body == BROTLI_STANDIN
    elif coding == "gzip":
        assert gzip.decompress(body) == ORIGINAL
    else:
        assert body == ORIGINAL


def test_gzip_only_stale_and_plain_files(compressed_site: RunningServer) -> None:
    accept = {"Accept-Encoding": "gzip, br"}
    _s, headers, body = get(compressed_site, "/only-gz.bin", accept)
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == ORIGINAL
    # A compressed copy older than its file is never served.
    _s, headers, body = get(compressed_site, "/stale.bin", accept)
    assert "content-encoding" not in headers and body == ORIGINAL
    assert headers["vary"] == "Accept-Encoding"
    # No compressed copy: no Vary either.
    _s, headers, body = get(compressed_site, "/plain.bin", accept)
    assert "content-encoding" not in headers and "vary" not in headers and body == ORIGINAL


def test_precompressed_head_and_not_modified(compressed_site: RunningServer) -> None:
    accept = {"Accept-Encoding": "br"}
    status, headers, body = get(compressed_site, "/m.wasm", accept, method="HEAD")
    assert status == 200 and body == b""
    assert headers["content-encoding"] == "br"
    assert headers["content-length"] == str(len(BROTLI_STANDIN))
    since = {**accept, "If-Modified-Since": headers["last-modified"]}
    status, headers, body = get(compressed_site, "/m.wasm", since)
    assert status == 304 and body == b"" and headers["vary"] == "Accept-Encoding"


def test_request_log_has_bytes_sent_and_encoding(compressed_site: RunningServer) -> None:
    mark = len(compressed_site.requests())
    get(compressed_site, "/m.wasm", {"Accept-Encoding": "gzip"})
    get(compressed_site, "/m.wasm", {})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # sizes are filled in once each body is sent
        records = compressed_site.requests()[mark:]
        if len(records) == 2 and all(r.bytes for r in records):
            break
        time.sleep(0.02)
    assert [(r.path, r.encoding, r.bytes) for r in records] == [
        ("/m.wasm", "gzip", len(gzip.compress(ORIGINAL))),
        ("/m.wasm", "", len(ORIGINAL)),
    ]


def test_accepted_encodings_parses_q_values() -> None:
    assert accepted_encodings("gzip, deflate, br") == {"gzip", "deflate", "br"}
    assert accepted_encodings("BR;Q=0.1 , gzip;q=0") == {"br"}
    assert accepted_encodings("*;q=0.5, gzip;q=0") == {"*", "br"}
    assert accepted_encodings(None) == set()
