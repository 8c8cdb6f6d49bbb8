"""Development server for the web build.

Serves the web root (``web/``) with the headers the browser backend needs:

* cross-origin isolation (``Cross-Origin-Opener-Policy``/``-Embedder-Policy``/
  ``-Resource-Policy``) on every response, unless isolation is turned off;
* a strict ``Content-Security-Policy`` on every script (``.js``/``.mjs``) but the
  page's own modules, so a worker started from any of them, and everything it imports,
  runs under it (see ``HEADER_RULES``); ``csp=False`` (``serve --no-csp``) leaves it
  out, to test that the worker refuses to run code without it;
* correct MIME types (``.mjs``, ``.wasm``, ``.whl`` ...) and ``Cache-Control: no-cache``;
* precompressed files: for ``FILE`` with ``FILE.br``/``FILE.gz`` next to it (written by
  the build, no older than ``FILE``), a request whose ``Accept-Encoding`` allows it gets
  the compressed bytes with ``Content-Encoding`` and ``FILE``'s ``Content-Type``; every
  such response, compressed or not, says ``Vary: Accept-Encoding`` (see ``ENCODINGS``).

Every request is logged (method, path, status, ``Sec-Fetch-Dest``) so tests can see the
requests of dedicated workers, which page-level request events do not show.

``start_server()`` runs the server in a background thread (for tests and benchmarks);
``serve_forever()`` is the ``python -m monty_runtime serve`` entry point.
"""

from __future__ import annotations

import dataclasses
import email.utils
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
    "ENCODINGS",
    "HEADER_RULES",
    "ISOLATION_HEADERS",
    "MIME_TYPES",
    "PAGE_SCRIPTS",
    "WORKER_CSP",
    "RequestLog",
    "RequestRecord",
    "RunningServer",
    "ServerError",
    "accepted_encodings",
    "headers_for_path",
    "serve_forever",
    "start_server",
]

# Content-Security-Policy of the worker and of every script it imports: scripts only
# from our own origin and no string evaluation (WebAssembly compilation is allowed), no
# connections at all (fetch, XHR, WebSocket, EventSource: the page fetches what the
# worker needs during its boot, web/shared/boot-fetch.js), workers only from our own origin
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

# Precompressed siblings, in order of preference: (Content-Encoding, file suffix).
ENCODINGS: tuple[tuple[str, str], ...] = (("br", ".br"), ("gzip", ".gz"))


def accepted_encodings(header: str | None) -> set[str]:
    """The content codings an ``Accept-Encoding`` value allows (``q=0`` refuses one;
    ``*`` allows every coding not named)."""
    allowed: set[str] = set()
    refused: set[str] = set()
    for item in (header or "").split(","):
        name, _, params = item.strip().partition(";")
        name = name.strip().lower()
        if not name:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        (allowed if q > 0 else refused).add(name)
    if "*" in allowed:
        allowed |= {coding for coding, _ in ENCODINGS} - refused
    return allowed - refused


def precompressed_for(file_path: str, accept_encoding: str | None) -> tuple[str, str] | None:
    """(Content-Encoding, path) of the precompressed sibling to serve, or None."""
    try:
        mtime = os.stat(file_path).st_mtime
    except OSError:
        return None
    accepted = accepted_encodings(accept_encoding)
    for coding, suffix in ENCODINGS:
        if coding not in accepted:
            continue
        candidate = file_path + suffix
        try:
            if os.path.isfile(candidate) and os.stat(candidate).st_mtime >= mtime:
                return coding, candidate
        except OSError:
            continue
    return None


def has_precompressed(file_path: str) -> bool:
    return any(os.path.isfile(file_path + suffix) for _c, suffix in ENCODINGS)


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
    bytes: int = 0  # body bytes sent (compressed ones when encoded)
    encoding: str = ""  # Content-Encoding sent ("br", "gzip") or ""
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

    def _complete(self, record: RequestRecord, sent: int, encoding: str) -> None:
        """Fill in the body size of ``record`` once it is sent (the record is listed as
        soon as the response starts, so a client that got the response finds it)."""
        with self._lock:
            for i in range(len(self._records) - 1, -1, -1):
                if self._records[i] is record:
                    self._records[i] = dataclasses.replace(record, bytes=sent, encoding=encoding)
                    return

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
    _pending: RequestRecord | None = None
    _encoding: str = ""
    _sent: int = 0
    _vary: bool = False

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
        self._vary = False
        if os.path.isfile(translated) and has_precompressed(translated):
            self._vary = True
            chosen = precompressed_for(translated, self.headers.get("Accept-Encoding"))
            if chosen is not None:
                return self._send_encoded(translated, *chosen)
        return super().send_head()

    def _send_encoded(self, original: str, coding: str, path: str) -> Any:
        """The head of a precompressed response; returns the open file (the body)."""
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by do_GET/do_HEAD
        except OSError:
            self.send_error(404, "Not found")
            return None
        try:
            stat = os.fstat(f.fileno())
            since = self.headers.get("If-Modified-Since")
            if since and "If-None-Match" not in self.headers:
                try:
                    when = email.utils.parsedate_to_datetime(since)
                except (TypeError, ValueError, IndexError, OverflowError):
                    when = None
                if when is not None and int(stat.st_mtime) <= when.timestamp():
                    self.send_response(304)
                    self.end_headers()
                    f.close()
                    return None
            self.send_response(200)
            self.send_header("Content-Type", self.guess_type(original))
            self.send_header("Content-Encoding", coding)
            self.send_header("Content-Length", str(stat.st_size))
            self.send_header("Last-Modified", self.date_time_string(int(stat.st_mtime)))
            self.end_headers()
            return f
        except BaseException:
            f.close()
            raise

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        # No directory listings: only files (and index.html) are served.
        self.send_error(404, "Not found")
        return None

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        return mime_type_for(os.fspath(path))

    # -- headers -------------------------------------------------------------
    def end_headers(self) -> None:
        if self._vary:
            self.send_header("Vary", "Accept-Encoding")
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
        record = RequestRecord(
            method=self.command or "",
            path=path,
            status=status,
            dest=self.headers.get("Sec-Fetch-Dest", "") if self.headers else "",
            time=time.time(),
            referrer=self.headers.get("Referer", "") if self.headers else "",
        )
        self.request_log.add(record)
        # Its body size is filled in once the body is sent (handle_one_request).
        self._pending = record
        self._sent = 0

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "content-encoding":
            self._encoding = value
        super().send_header(keyword, value)

    def copyfile(self, source: Any, outputfile: Any) -> None:
        while chunk := source.read(1 << 16):
            outputfile.write(chunk)
            self._sent += len(chunk)

    def handle_one_request(self) -> None:
        self._pending = None
        self._encoding = ""
        self._sent = 0
        try:
            super().handle_one_request()
        finally:
            pending, self._pending = self._pending, None
            if pending is not None and self.request_log is not None:
                self.request_log._complete(pending, self._sent, self._encoding)

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
