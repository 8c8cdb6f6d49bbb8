"""Development server for the web build.

Serves the web root (``web/``) with the headers the browser backend needs:

* cross-origin isolation (``Cross-Origin-Opener-Policy``/``-Embedder-Policy``/
  ``-Resource-Policy``) on every response, unless isolation is turned off;
* a strict ``Content-Security-Policy`` on every script (``.js``/``.mjs``) but the
  page's own modules, so a worker started from any of them, and everything it imports,
  runs under it (see ``HEADER_RULES``); ``csp=False`` (``serve --no-csp``) leaves it
  out, to test that the worker refuses to run code without it;
* correct MIME types (``.mjs``, ``.wasm``, ``.whl`` ...) and ``Cache-Control: no-cache``.

Every request is logged (method, path, status, ``Sec-Fetch-Dest``) so tests can see the
requests of dedicated workers, which page-level request events do not show.

``start_server()`` runs the server in a background thread (for tests and benchmarks);
``serve_forever()`` is the ``python -m monty_runtime serve`` entry point.
"""

from __future__ import annotations

import errno
import fnmatch
import http.server
import os
import posixpath
import signal
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = [
    "HEADER_RULES",
    "ISOLATION_HEADERS",
    "MIME_TYPES",
    "PAGE_SCRIPTS",
    "WORKER_CSP",
    "RequestLog",
    "RequestRecord",
    "RunningServer",
    "ServerError",
    "headers_for_path",
    "serve_forever",
    "start_server",
]

# Content-Security-Policy of the worker and of every script it imports: scripts only
# from our own origin and no string evaluation (WebAssembly compilation is allowed), no
# connections at all (fetch, XHR, WebSocket, EventSource: the page fetches what the
# worker needs during its boot, web/boot-fetch.js), workers only from our own origin
# (Firefox checks a module worker's own static imports against worker-src, so 'none'
# would refuse worker.js -> boot.js; nested workers are impossible because lockdown.js
# deletes Worker and SharedWorker, and every same-origin script carries this policy),
# nothing else.
WORKER_CSP = (
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; "
    "connect-src 'none'; worker-src 'self'"
)

ISOLATION_HEADERS: dict[str, str] = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}

# Path patterns (fnmatch, matched against the URL path without query) -> extra headers.
# ``*`` also matches ``/``, so ``*.js`` matches ``/worker.js`` and ``/web/worker.js``
# (when the server root is the project instead of ``web/``).
#
# Every script gets the worker's policy, so a new worker script, or a new module a
# worker imports, is covered without editing anything.  A browser applies a script
# response's CSP only when that response starts a worker; for a module imported by a
# page the header is ignored, so it costs the page nothing.
HEADER_RULES: tuple[tuple[str, dict[str, str]], ...] = (
    ("*.js", {"Content-Security-Policy": WORKER_CSP}),
    ("*.mjs", {"Content-Security-Policy": WORKER_CSP}),
)
# Modules only a page loads (never a worker), served without the policy for clarity.
# Listing one here is optional; leaving a page module out of it is harmless.
PAGE_SCRIPTS: tuple[str, ...] = ("*/monty-runtime.js", "*/tools.js")

MIME_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".whl": "application/octet-stream",
    ".zip": "application/zip",
    ".tar": "application/x-tar",
    ".gz": "application/gzip",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".ts": "text/plain; charset=utf-8",  # .d.ts: type declarations, not MPEG streams
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".py": "text/plain; charset=utf-8",
}
DEFAULT_MIME_TYPE = "application/octet-stream"


class ServerError(RuntimeError):
    """A dev-server problem with a message meant for the person running it."""


def headers_for_path(path: str, *, isolated: bool = True, csp: bool = True) -> dict[str, str]:
    """Extra headers (besides Content-Type) for a URL path; used by the handler and tests.
    ``csp=False`` drops the Content-Security-Policy (testing only)."""
    url_path = urllib.parse.urlsplit(path).path
    headers: dict[str, str] = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if isolated:
        headers.update(ISOLATION_HEADERS)
    page_script = any(fnmatch.fnmatchcase(url_path, p) for p in PAGE_SCRIPTS)
    for pattern, extra in HEADER_RULES:
        if fnmatch.fnmatchcase(url_path, pattern):
            headers.update(extra)
    if page_script or not csp:
        headers.pop("Content-Security-Policy", None)
    return headers


def mime_type_for(path: str) -> str:
    suffix = posixpath.splitext(urllib.parse.urlsplit(path).path)[1].lower()
    return MIME_TYPES.get(suffix, DEFAULT_MIME_TYPE)


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    status: int
    dest: str  # Sec-Fetch-Dest ("document", "worker", "script", "empty", ...) or ""
    time: float
    referrer: str = ""  # the Referer header: which document or worker asked

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.status} {self.dest or '-'}"


@dataclass
class RequestLog:
    """Thread-safe list of served requests, optionally mirrored to a text stream."""

    stream: IO[str] | None = None
    _records: list[RequestRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)
            if self.stream is not None:
                try:
                    self.stream.write(f"{record}\n")
                    self.stream.flush()
                except (OSError, ValueError):
                    pass

    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def paths(self) -> list[str]:
        return [r.path for r in self.records()]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.records())


class _Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "monty-runtime-dev"
    sys_version = ""
    # Set per server class by _make_handler().
    isolated: bool = True
    csp: bool = True
    request_log: RequestLog | None = None

    # -- paths ---------------------------------------------------------------
    def translate_path(self, path: str) -> str:
        """Map a URL path into the web root; anything that escapes it maps to ''."""
        url_path = urllib.parse.unquote(urllib.parse.urlsplit(path).path, errors="strict")
        root = os.path.realpath(self.directory)
        parts = url_path.split("/")
        if any(p in ("..", ".") or "\\" in p or "\x00" in p for p in parts):
            return ""
        candidate = os.path.realpath(os.path.join(root, *[p for p in parts if p]))
        if candidate != root and not candidate.startswith(root + os.sep):
            return ""
        if url_path.endswith("/") and not candidate.endswith(os.sep):
            candidate += os.sep
        return candidate

    def send_head(self) -> Any:
        try:
            translated = self.translate_path(self.path)
        except UnicodeDecodeError:
            translated = ""
        if not translated:
            self.send_error(404, "Not found")
            return None
        return super().send_head()

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        # No directory listings: only files (and index.html) are served.
        self.send_error(404, "Not found")
        return None

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        return mime_type_for(os.fspath(path))

    # -- headers -------------------------------------------------------------
    def end_headers(self) -> None:
        for name, value in headers_for_path(
            self.path, isolated=self.isolated, csp=self.csp
        ).items():
            self.send_header(name, value)
        super().end_headers()

    # -- logging -------------------------------------------------------------
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.request_log is None:
            return
        try:
            status = int(getattr(code, "value", code))
        except (TypeError, ValueError):
            status = 0
        path = urllib.parse.urlsplit(self.path).path if self.path else ""
        self.request_log.add(
            RequestRecord(
                method=self.command or "",
                path=path,
                status=status,
                dest=self.headers.get("Sec-Fetch-Dest", "") if self.headers else "",
                time=time.time(),
                referrer=self.headers.get("Referer", "") if self.headers else "",
            )
        )

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines go through log_request(); error details are not needed on stderr.
        return


def _make_handler(
    root: Path, isolated: bool, request_log: RequestLog, csp: bool = True
) -> Callable[..., http.server.BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.isolated = isolated
    Handler.csp = csp
    Handler.request_log = request_log

    def factory(*args: Any, **kwargs: Any) -> http.server.BaseHTTPRequestHandler:
        return Handler(*args, directory=str(root), **kwargs)

    return factory


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Browsers drop connections all the time (navigation, worker termination).
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def _check_root(root: Path) -> Path:
    root = Path(root).resolve()
    if not root.is_dir():
        raise ServerError(
            f"web root {root} does not exist or is not a directory "
            "(pass --root, or run from the project folder)"
        )
    return root


class _Server6(_Server):
    address_family = socket.AF_INET6


def _bind(host: str, port: int, factory: Callable[..., Any]) -> _Server:
    server_class = _Server6 if ":" in host else _Server
    try:
        return server_class((host, port), factory)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ServerError(
                f"port {port} on {host} is already in use: stop the other server, "
                "or pick another port with --port (--port 0 picks a free one)"
            ) from exc
        raise ServerError(f"cannot listen on {host}:{port}: {exc}") from exc


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


@dataclass
class RunningServer:
    """A server running in a background thread. Use as a context manager or call stop()."""

    url: str
    host: str
    port: int
    root: Path
    isolated: bool
    log: RequestLog
    _httpd: _Server
    _thread: threading.Thread
    csp: bool = True

    def requests(self) -> list[RequestRecord]:
        return self.log.records()

    def clear_log(self) -> None:
        self.log.clear()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout=10)
        self._httpd.server_close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    root: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    isolated: bool = True,
    log_stream: IO[str] | None = None,
    csp: bool = True,
) -> RunningServer:
    """Start the dev server in a daemon thread and return a handle (port 0: a free port).
    ``csp=False`` serves the scripts without the worker's Content-Security-Policy (for
    tests of the worker's policy check; never for real use)."""
    root_path = _check_root(Path(root))
    request_log = RequestLog(stream=log_stream)
    httpd = _bind(host, port, _make_handler(root_path, isolated, request_log, csp))
    actual_port = int(httpd.server_address[1])
    thread = threading.Thread(
        target=httpd.serve_forever,
        kwargs={"poll_interval": 0.1},
        name=f"monty-dev-server-{actual_port}",
        daemon=True,
    )
    thread.start()
    return RunningServer(
        url=_url(host, actual_port),
        host=host,
        port=actual_port,
        root=root_path,
        isolated=isolated,
        log=request_log,
        _httpd=httpd,
        _thread=thread,
        csp=csp,
    )


def serve_forever(
    root: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    isolated: bool = True,
    log_stream: IO[str] | None = None,
    out: IO[str] | None = None,
    csp: bool = True,
) -> int:
    """Serve until Ctrl-C (the ``serve`` command). Returns a process exit code."""
    out = out if out is not None else sys.stdout
    root_path = _check_root(Path(root))
    if not (root_path / "node_modules" / "pyodide").is_dir():
        print(
            f"warning: {root_path / 'node_modules' / 'pyodide'} is missing "
            "(run: npm ci --prefix web)",
            file=sys.stderr,
        )
    request_log = RequestLog(stream=log_stream)
    httpd = _bind(host, port, _make_handler(root_path, isolated, request_log, csp))
    actual_port = int(httpd.server_address[1])
    mode = "cross-origin isolated" if isolated else "not cross-origin isolated"
    if not csp:
        mode += "; worker scripts WITHOUT their Content-Security-Policy"
    print(f"Serving {_url(host, actual_port)} ({mode})", file=out, flush=True)
    print(f"Web root {root_path}; press Ctrl-C to stop.", file=out, flush=True)

    def _on_sigterm(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("Stopped.", file=out, flush=True)
    finally:
        httpd.server_close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0
