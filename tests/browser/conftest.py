"""Fixtures for browser tests, on three engines (tests/browser/support/engines.py).

* ``engine`` (module): the browser engine, ``chromium`` (Playwright), ``firefox``
  (WebDriver BiDi) or ``webkit`` (WebKitGTK through WebDriver). Every test that uses
  ``browser``/``context``/``page``/``open_page`` is parametrized over the engines, so a
  test is written once; ids read ``test_x[firefox-isolated]``. Which engines run:
  ``--engines=chromium,firefox`` or ``MONTY_ENGINES`` (default: all three); a missing
  engine fails its tests with what to install.
* What runs where (``--engine-scope`` / ``MONTY_ENGINE_SCOPE``): ``paths`` (the default)
  runs every test on Chromium, on Firefox the tests marked ``engine_paths`` (boot,
  control channel, host calls, lock-down, warm start, escape probes), and on WebKit those
  also marked ``webkit_paths`` (boot, detected capabilities, sync-style calls, the hard
  path): WebKitGTK boots Pyodide several times slower, so its share is what CI time
  allows (docs/engines.md); ``full`` runs every test on every engine.
  ``@pytest.mark.chromium_only("reason")`` keeps a test that needs Playwright
  (clicks, screenshots, routes, proxies, request events) on Chromium.
* On Chromium ``page`` is Playwright's own Page; on Firefox and WebKit it is an adapter
  with the same ``goto``/``evaluate``/``wait_for_function``/``reload``/``close``.

* ``web_build`` (session): runs the web build (cheap when nothing changed).
* ``server``: the dev server, parametrized over ``SERVER_MODES`` (cross-origin isolated
  and not), so every test that uses it runs twice. One server per mode per session,
  each in a background thread with a request log (``server.requests()``).
* ``browser`` (module): one Chromium per test module; ``context``/``page`` per test, with
  the page's and its workers' console messages forwarded to the test output.
* ``open_page(server, path)``: a new page in the test's context, loaded and ready.
* ``logging_proxy``: a tiny HTTP proxy that records every host it is asked for (use it
  as a context proxy, ``browser.new_context(proxy=proxy.playwright_proxy())``).

The browser tests are synchronous on purpose: the session also runs pytest-asyncio
(asyncio_mode=auto). While Playwright's sync API is alive, its event loop counts as
"running" in the main thread, which breaks pytest-asyncio. So Playwright is started per
test module (and stopped after it, before any other module's async tests), and async
tests in this folder get the loop detached for their duration (they must not use the
sync Playwright objects).
"""

from __future__ import annotations

import asyncio.events as asyncio_events
import http.client
import http.server
import importlib.util
import inspect
import logging
import os
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from support import engines as engine_mod

from monty_runtime._server import RunningServer, start_server

# One copy of the engine adapters: the conformance runner loads them by file as "engines".
sys.modules.setdefault("engines", engine_mod)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("monty.browser")


def load_config() -> ModuleType:
    """Load /playwright.config.py (its name cannot be imported with `import`)."""
    name = "monty_playwright_config"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "playwright.config.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


config = load_config()


def _emit(line: str) -> None:
    # print: shown with the failing test's captured output; logging: with log_cli.
    print(line, flush=True)
    log.info(line)


def forward_console(page: Any, label: str = "page") -> None:
    """Forward console messages and errors of a page and of its workers to the test log
    (Playwright pages; the Firefox adapter forwards its console log itself)."""
    if not hasattr(page, "on"):
        return

    def on_console(msg: Any) -> None:
        if getattr(msg, "worker", None) is not None:
            return  # reported by the worker's own handler below
        _emit(f"[{label} console.{msg.type}] {msg.text}")

    def on_worker(worker: Any) -> None:
        name = worker.url.rsplit("/", 1)[-1]
        _emit(f"[{label}] worker started: {name}")
        worker.on("console", lambda msg: _emit(f"[worker {name} console.{msg.type}] {msg.text}"))
        worker.on("close", lambda _w: _emit(f"[{label}] worker closed: {name}"))

    page.on("console", on_console)
    page.on("pageerror", lambda exc: _emit(f"[{label} pageerror] {exc}"))
    page.on("worker", on_worker)
    page.on("crash", lambda _p: _emit(f"[{label}] page crashed"))


@pytest.fixture(autouse=True)
def _detach_playwright_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """Let an async test run in this folder while a module's sync Playwright is alive."""
    if not inspect.iscoroutinefunction(getattr(request, "function", None)):
        yield
        return
    running = asyncio_events._get_running_loop()
    asyncio_events._set_running_loop(None)
    try:
        yield
    finally:
        asyncio_events._set_running_loop(running)


# --------------------------------------------------------------------------- build/servers


@pytest.fixture(scope="session")
def web_build() -> Path:
    """Make sure web/dist matches the sources (runs the build; skips unchanged steps)."""
    from monty_dev.build import BuildError, build

    try:
        result = build(PROJECT_ROOT, log=_emit)
    except BuildError as exc:
        pytest.fail(f"web build failed: {exc}", pytrace=False)
    return result.dist


@pytest.fixture(scope="session")
def _servers(web_build: Path) -> Iterator[dict[str, RunningServer]]:
    servers: dict[str, RunningServer] = {}
    yield servers
    for srv in servers.values():
        srv.stop()


@pytest.fixture(params=list(config.SERVER_MODES), ids=list(config.SERVER_MODES))
def server(request: pytest.FixtureRequest, _servers: dict[str, RunningServer]) -> RunningServer:
    """The dev server in one mode ("isolated" / "not_isolated"); started once per session."""
    mode: str = request.param
    if mode not in _servers:
        _servers[mode] = start_server(config.WEB_ROOT, port=0, isolated=config.SERVER_MODES[mode])
    return _servers[mode]


# --------------------------------------------------------------------------- browser


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("monty browser engines")
    group.addoption(
        "--engines",
        default=None,
        help="comma-separated engines for the browser tests: chromium,firefox,webkit "
        "(default: MONTY_ENGINES, else all)",
    )
    group.addoption(
        "--engine-scope",
        choices=("paths", "full"),
        default=None,
        help="paths: everything on Chromium, the engine_paths tests on the others "
        "(default; MONTY_ENGINE_SCOPE); full: everything everywhere",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chromium_only(reason): needs a Playwright-only feature; Chromium only"
    )
    config.addinivalue_line(
        "markers", "only_engines(*names, reason): the engines that have what the test needs"
    )
    config.addinivalue_line(
        "markers",
        "webkit_paths: an engine_paths test also run on WebKit in the default scope",
    )
    config.addinivalue_line(
        "markers",
        "engine_paths: touches engine-specific paths; runs on every engine by default",
    )


def selected_engines(config: pytest.Config) -> list[str]:
    return engine_mod.selected_engines(config.getoption("--engines"))


def engine_scope(config: pytest.Config) -> str:
    scope = config.getoption("--engine-scope") or os.environ.get("MONTY_ENGINE_SCOPE") or "paths"
    if scope not in ("paths", "full"):
        raise pytest.UsageError(f"MONTY_ENGINE_SCOPE={scope!r}: use paths or full")
    return scope


def engines_for(item: Any, config: pytest.Config) -> list[str]:
    """The engines one test runs on."""
    names = selected_engines(config)
    if item.get_closest_marker("chromium_only") is not None:
        return [n for n in names if n == "chromium"]
    only = item.get_closest_marker("only_engines")
    if only is not None:
        names = [n for n in names if n in only.args]
    if engine_scope(config) == "paths":
        if item.get_closest_marker("engine_paths") is None:
            return [n for n in names if n == "chromium"]
        if item.get_closest_marker("webkit_paths") is None:
            return [n for n in names if n != "webkit"]
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" not in metafunc.fixturenames:
        return
    names = engines_for(metafunc.definition, metafunc.config)
    metafunc.parametrize("engine", names, indirect=True, scope="module", ids=names)


#: Per-test timeout factor by engine: WebKitGTK compiles Pyodide's WebAssembly several
#: times slower than Chromium (a cold boot takes it tens of seconds on a busy machine).
TIMEOUT_FACTOR = {"chromium": 1.0, "firefox": 1.5, "webkit": 5.0}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the tests no selected engine can run (instead of pytest's "empty parameter
    set" skip), and scale per-test timeouts by engine."""
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    default = float(config.getini("timeout") or 0)
    for item in items:
        callspec = getattr(item, "callspec", None)
        if "engine" in getattr(item, "fixturenames", ()):
            engine = callspec.params.get("engine") if callspec is not None else None
            if engine not in engine_mod.ENGINES:  # an empty parameter set: no engine
                dropped.append(item)
                continue
            factor = TIMEOUT_FACTOR.get(str(engine), 1.0)
            marker = item.get_closest_marker("timeout")
            base = float(marker.args[0]) if marker is not None and marker.args else default
            if factor != 1.0 and base > 0:
                item.add_marker(pytest.mark.timeout(base * factor), append=False)
        keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="module")
def engine(request: pytest.FixtureRequest) -> str:
    """The engine of this test: chromium, firefox or webkit."""
    return str(request.param)


@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Any]:
    message = config.chromium_missing_message()
    if message is not None:
        pytest.fail(message, pytrace=False)
    from playwright.sync_api import sync_playwright

    manager = sync_playwright()
    pw = manager.start()
    try:
        yield pw
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture(scope="module")
def browser(engine: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Chromium: Playwright's Browser; Firefox/WebKit: engines.FirefoxBrowser /
    WebKitBrowser (``new_context()``, ``new_page()``, ``version``)."""
    if engine == "chromium":
        pw = request.getfixturevalue("playwright_instance")
        browser = config.launch_browser(pw)
    else:
        message = engine_mod.missing_message(engine)
        if message is not None:
            pytest.fail(f"{engine}: {message}", pytrace=False)
        browser = engine_mod.launch(engine, log=_emit)
    _emit(f"[{engine}] {getattr(browser, 'version', '')}")
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context()
    ctx.set_default_timeout(config.DEFAULT_TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    page = context.new_page()
    forward_console(page)
    return page


def open_page_in(context: Any, server: RunningServer, path: str, *, label: str = "page") -> Any:
    """Open server.url + path in a new page of ``context`` and wait for its load event."""
    page = context.new_page()
    forward_console(page, label)
    response = page.goto(urllib.parse.urljoin(server.url, path.lstrip("/")), wait_until="load")
    assert response is not None and response.ok, f"GET {path}: {response and response.status}"
    return page


@pytest.fixture
def open_page(context: Any) -> Callable[..., Any]:
    """``open_page(server, "demos/boot-check.html")`` -> a loaded Playwright Page."""

    def _open(server: RunningServer, path: str, *, label: str = "page") -> Any:
        return open_page_in(context, server, path, label=label)

    return _open


# --------------------------------------------------------------------------- proxy


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy: LoggingProxy  # set on the subclass

    _HOP = frozenset(
        {
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authorization",
            "proxy-authenticate",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
        }
    )

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_CONNECT(self) -> None:
        self.proxy.record("CONNECT", self.path, self.path)
        self.send_error(403, "CONNECT is not allowed in tests")
        self.close_connection = True

    def _forward(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        host = parts.netloc or self.headers.get("Host", "")
        self.proxy.record(self.command, host, self.path)
        if parts.scheme != "http" or host not in self.proxy.allowed:
            self.send_error(403, f"{host} is not the test server")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in self._HOP}
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=60)
        try:
            conn.request(self.command, target, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as exc:
            self.send_error(502, f"upstream error: {exc}")
            return
        finally:
            conn.close()
        self.send_response(resp.status, resp.reason)
        for key, value in resp.getheaders():
            if key.lower() not in self._HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = _forward


class LoggingProxy:
    """An HTTP proxy on 127.0.0.1 that records each requested host and only forwards to
    the ``allowed`` hosts ("127.0.0.1:PORT"); everything else gets 403 (and is recorded).

    Chromium: ``--proxy-server=<proxy.url>`` plus ``--proxy-bypass-list=<-loopback>`` so
    that loopback traffic goes through the proxy as well.
    """

    def __init__(self, allowed: set[str]) -> None:
        self.allowed = set(allowed)
        self.hosts: list[tuple[str, str, str]] = []  # (method, host, target)
        self._lock = threading.Lock()
        handler = type("Handler", (_ProxyHandler,), {"proxy": self})
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def record(self, method: str, host: str, target: str) -> None:
        with self._lock:
            self.hosts.append((method, host, target))

    def requested_hosts(self) -> set[str]:
        with self._lock:
            return {host for _m, host, _t in self.hosts}

    def chromium_args(self) -> list[str]:
        """Launch flags sending all of the browser's traffic through this proxy."""
        return [f"--proxy-server={self.url}", "--proxy-bypass-list=<-loopback>"]

    def playwright_proxy(self) -> dict[str, str]:
        """``browser.new_context(proxy=...)``: that context's pages and workers only."""
        return {"server": self.url, "bypass": "<-loopback>"}

    def __enter__(self) -> LoggingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def logging_proxy() -> Iterator[Callable[[set[str]], LoggingProxy]]:
    """``logging_proxy({"127.0.0.1:PORT"})`` -> a running LoggingProxy (stopped after the test)."""
    proxies: list[LoggingProxy] = []

    def _make(allowed: set[str]) -> LoggingProxy:
        proxy = LoggingProxy(allowed).__enter__()
        proxies.append(proxy)
        return proxy

    yield _make
    for proxy in proxies:
        proxy.__exit__(None, None, None)


@pytest.fixture
def launch_extra_browser(playwright_instance: Any) -> Iterator[Callable[..., Any]]:
    """``launch_extra_browser(extra_args=[...])`` -> a separate Chromium, closed after the test."""
    browsers: list[Any] = []

    def _launch(extra_args: list[str] | None = None, **kwargs: Any) -> Any:
        b = config.launch_browser(playwright_instance, extra_args=extra_args, **kwargs)
        browsers.append(b)
        return b

    yield _launch
    for b in browsers:
        b.close()
