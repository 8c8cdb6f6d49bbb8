"""One small page API over three browser engines, for the browser tests, the conformance
runner and the benchmarks.

Contract: ``launch(engine)`` returns a :class:`Browser` whose ``new_page()`` gives an
object with the part of Playwright's sync ``Page`` the engine-neutral tests use:

* ``goto(url, wait_until="load")`` -> a response with ``ok`` and ``status``;
* ``evaluate(source, arg=None)`` -> the value (``source``: a JS function expression,
  called with ``arg`` and awaited, or any other expression, awaited);
* ``wait_for_function(source, timeout=ms)``, ``reload()``, ``url``, ``close()``.

Engines (names as in ``MONTY_ENGINES``):

* ``chromium``: Debian's Chromium through Playwright; ``new_page()`` returns Playwright's
  own ``Page`` (so Chromium-only tests keep every Playwright feature).
* ``firefox``: Debian's ``firefox-esr``, driven over WebDriver BiDi, which Firefox serves
  itself on ``--remote-debugging-port`` (no geckodriver): a small client over
  ``websockets``. One fresh user context (own storage) per page.
* ``webkit``: WebKitGTK's ``MiniBrowser --automation`` through ``WebKitWebDriver``
  (classic WebDriver, ``selenium``), on an Xvfb display started here when there is no
  ``DISPLAY``. (MiniBrowser ``--headless`` hangs under automation.)

Values cross as JSON (``undefined`` -> ``None``; ``NaN``, the infinities and ``-0``
are kept). A failing ``evaluate`` raises :class:`EvaluateError` with the page's message.
``evaluate`` is thread-safe on every adapter: several may be in flight at once (the
conformance runner boots runtimes while a case runs), which classic WebDriver cannot do
with one blocking script, so the WebKit adapter starts the promise in the page and polls.

A missing engine raises :class:`EngineMissing` naming what to install.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

ENGINES: tuple[str, ...] = ("chromium", "firefox", "webkit")

FIREFOX_PATH = os.environ.get("MONTY_FIREFOX") or "/usr/bin/firefox-esr"
WEBKIT_DRIVER_PATH = os.environ.get("MONTY_WEBKIT_DRIVER") or "/usr/bin/WebKitWebDriver"
MINIBROWSER_PATH = (
    os.environ.get("MONTY_MINIBROWSER")
    or "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
)
XVFB_PATH = shutil.which("Xvfb") or "/usr/bin/Xvfb"

INSTALL_HINT = "run scripts/dev setup (it installs firefox-esr, webkit2gtk-driver and xvfb)"


@dataclass(frozen=True)
class Expected:
    """What each engine version tested offers the runtime (the README's browser table;
    tests assert the detected capabilities against it, so a change shows up)."""

    jspi: bool  # WebAssembly.Suspending in workers
    shared_memory_when_isolated: bool  # SharedArrayBuffer when cross-origin isolated
    # navigator.storage (StorageManager, the way to the origin private file system) in a
    # worker: WebKitGTK 2.50 has none there, so the lock-down has nothing to remove and
    # the probe is blocked even under the CSP alone.
    worker_storage: bool = True
    # Cache Storage entries survive a reload of the page. WebKitGTK's automation mode
    # runs MiniBrowser in an ephemeral network session, whose Cache Storage keeps the
    # caches' names but not their entries across a reload (a 5-byte and a 32 MiB entry,
    # both gone): a returning visit is shown there by a second snapshot source on the
    # same page, which reads Cache Storage as a new page would.
    cache_survives_reload: bool = True


EXPECTED: dict[str, Expected] = {
    "chromium": Expected(jspi=True, shared_memory_when_isolated=True),
    "firefox": Expected(jspi=True, shared_memory_when_isolated=True),
    # WebKitGTK 2.50: crossOriginIsolated is true, yet SharedArrayBuffer is undefined.
    "webkit": Expected(jspi=False, shared_memory_when_isolated=False, worker_storage=False,
                       cache_survives_reload=False),
}


class EngineMissing(RuntimeError):
    """The engine (or something it needs) is not installed."""


class EvaluateError(RuntimeError):
    """The evaluated script threw (or the page went away)."""


def selected_engines(value: str | None = None) -> list[str]:
    """Engines named in ``value`` or ``MONTY_ENGINES`` (comma separated; ``all``);
    default: every engine."""
    text = value if value is not None else os.environ.get("MONTY_ENGINES", "")
    text = text.strip()
    if not text or text == "all":
        return list(ENGINES)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ENGINES]
    if unknown:
        raise ValueError(f"unknown engine(s) {unknown}; choose from {', '.join(ENGINES)}")
    return names


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def missing_message(engine: str) -> str | None:
    """None when ``engine`` can run here, else what is missing and how to install it."""
    if engine == "chromium":
        chromium = os.environ.get("MONTY_CHROMIUM") or "/usr/bin/chromium"
        if not _executable(chromium):
            return f"Chromium not found at {chromium}; {INSTALL_HINT} or set MONTY_CHROMIUM"
        return None
    if engine == "firefox":
        if not _executable(FIREFOX_PATH):
            return f"Firefox not found at {FIREFOX_PATH}; {INSTALL_HINT} or set MONTY_FIREFOX"
        try:
            import websockets.sync.client  # noqa: F401
        except ImportError:
            return "the Python package websockets is missing; pip install -e '.[dev]'"
        return None
    if engine == "webkit":
        for what, path in (("WebKitWebDriver", WEBKIT_DRIVER_PATH), ("MiniBrowser", MINIBROWSER_PATH)):
            if not _executable(path):
                return f"{what} not found at {path}; {INSTALL_HINT}"
        if not os.environ.get("DISPLAY") and not _executable(XVFB_PATH):
            return f"no DISPLAY and no Xvfb at {XVFB_PATH}; {INSTALL_HINT}"
        try:
            import selenium  # noqa: F401
        except ImportError:
            return "the Python package selenium is missing; pip install -e '.[dev]'"
        return None
    raise ValueError(f"unknown engine {engine!r}")


# --------------------------------------------------------------------------- values

_SPECIAL = "\u0000monty-number"

# Calls the page function and returns its result as JSON text (numbers JSON cannot hold
# are marked). `source` is spliced in as code, exactly as Playwright's evaluate does.
_WRAP = """async (argText) => {
  const arg = argText === undefined ? undefined : JSON.parse(argText);
  const target = (%s);
  let value = typeof target === "function" ? await target(arg) : await target;
  const mark = (v) => {
    if (typeof v === "number" && (!Number.isFinite(v) || Object.is(v, -0))) {
      return { "%s": Number.isNaN(v) ? "NaN" : Object.is(v, -0) ? "-0" : v > 0 ? "Infinity" : "-Infinity" };
    }
    if (typeof v === "bigint") return Number(v);
    return v === undefined ? null : v;
  };
  return JSON.stringify(value, (_k, v) => mark(v)) ?? "null";
}"""


def wrap_source(source: str) -> str:
    return _WRAP % (source, _SPECIAL)


def _decode_special(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _SPECIAL in obj:
        return {"NaN": math.nan, "-0": -0.0, "Infinity": math.inf, "-Infinity": -math.inf}[
            obj[_SPECIAL]
        ]
    return obj


def decode_result(text: str) -> Any:
    return json.loads(text, object_hook=_decode_special)


def encode_arg(arg: Any) -> str:
    return json.dumps(arg)


@dataclass(frozen=True)
class Response:
    status: int

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _status_of(url: str) -> int:
    """The HTTP status of ``url`` (the engines' automation protocols do not all report
    the navigation's response; the servers under test are local)."""
    if not url.startswith(("http://", "https://")):
        return 200
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=30) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _PageBase:
    """What the Firefox and WebKit pages share: waits built on ``evaluate``."""

    engine = ""
    default_timeout_ms = 30_000

    def evaluate(self, source: str, arg: Any = None) -> Any:
        raise NotImplementedError

    def set_default_timeout(self, ms: float) -> None:
        self.default_timeout_ms = ms

    def wait_for_function(
        self, source: str, arg: Any = None, *, timeout: float | None = None, polling: float = 100
    ) -> Any:
        """Evaluate ``source`` (a function expression or expression) until truthy."""
        ms = self.default_timeout_ms if timeout is None else timeout
        deadline = time.monotonic() + ms / 1000.0
        while True:
            value = self.evaluate(source, arg)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"wait_for_function timed out after {ms:.0f} ms: {source}")
            time.sleep(polling / 1000.0)


# --------------------------------------------------------------------------- Firefox (BiDi)


class BiDiConnection:
    """A WebDriver BiDi session over one websocket; thread-safe ``command()``."""

    def __init__(self, url: str, on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        from websockets.sync.client import connect

        # Entered as a context manager (exited in close()), as websockets asks.
        self._ws = connect(url, max_size=None, open_timeout=30).__enter__()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._closed: str | None = None
        self._on_event = on_event
        self._reader = threading.Thread(target=self._read, name="bidi-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for text in self._ws:
                msg = json.loads(text)
                mid = msg.get("id")
                if mid is None:
                    if self._on_event is not None:
                        with contextlib.suppress(Exception):
                            self._on_event(msg)
                    continue
                with self._lock:
                    slot = self._waiting.pop(int(mid), None)
                if slot is not None:
                    slot[1].append(msg)
                    slot[0].set()
        except Exception as exc:
            self._closed = f"connection lost: {exc}"
        else:
            self._closed = "connection closed"
        with self._lock:
            waiting, self._waiting = self._waiting, {}
        for event, _box in waiting.values():
            event.set()

    def command(self, method: str, params: dict[str, Any], timeout: float = 300.0) -> Any:
        if self._closed is not None:
            raise EvaluateError(f"Firefox: {self._closed}")
        mid = next(self._ids)
        event, box = threading.Event(), []
        with self._lock:
            self._waiting[mid] = (event, box)
        self._ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        if not event.wait(timeout):
            with self._lock:
                self._waiting.pop(mid, None)
            raise TimeoutError(f"Firefox: {method} got no answer within {timeout:.0f}s")
        if not box:
            raise EvaluateError(f"Firefox: {method}: {self._closed}")
        msg = box[0]
        if msg.get("type") == "error":
            raise EvaluateError(f"Firefox: {method}: {msg.get('error')}: {msg.get('message')}")
        return msg.get("result")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close()


_FIREFOX_PREFS = {
    # No traffic of the browser's own, no first-run pages.
    "app.update.disabledForTesting": True,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "extensions.update.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.newtabpage.enabled": False,
    "services.settings.server": "http://127.0.0.1:9/",
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    # A context proxy (new_context(proxy=...)) also carries loopback traffic.
    "network.proxy.allow_hijacking_localhost": True,
    "network.proxy.no_proxies_on": "",
}


class FirefoxPage(_PageBase):
    engine = "firefox"

    def __init__(self, browser: FirefoxBrowser, user_context: str | None = None) -> None:
        self._browser = browser
        self._bidi = browser.bidi
        # Without a context of its own, the page gets a user context (own storage) that
        # closes with it.
        self._own_user_context = user_context is None
        self._user_context = (
            self._bidi.command("browser.createUserContext", {})["userContext"]
            if user_context is None
            else user_context
        )
        self._context = self._bidi.command(
            "browsingContext.create", {"type": "tab", "userContext": self._user_context}
        )["context"]
        self.url = "about:blank"
        self.closed = False

    def goto(self, url: str, wait_until: str = "load", timeout: float | None = None) -> Response:
        wait = {"load": "complete", "domcontentloaded": "interactive"}.get(wait_until, "complete")
        self._bidi.command(
            "browsingContext.navigate", {"context": self._context, "url": url, "wait": wait}
        )
        self.url = url
        return Response(_status_of(url))

    def reload(self, wait_until: str = "load") -> Response:
        wait = {"load": "complete", "domcontentloaded": "interactive"}.get(wait_until, "complete")
        self._bidi.command("browsingContext.reload", {"context": self._context, "wait": wait})
        return Response(_status_of(self.url))

    def evaluate(self, source: str, arg: Any = None) -> Any:
        args = [] if arg is None else [{"type": "string", "value": encode_arg(arg)}]
        result = self._bidi.command(
            "script.callFunction",
            {
                "functionDeclaration": wrap_source(source),
                "arguments": args,
                "awaitPromise": True,
                "target": {"context": self._context},
                "resultOwnership": "none",
            },
        )
        if result.get("type") == "exception":
            details = result.get("exceptionDetails") or {}
            raise EvaluateError(f"Firefox: {details.get('text') or details}")
        value = result.get("result") or {}
        if value.get("type") != "string":
            raise EvaluateError(f"Firefox: unexpected result {value}")
        return decode_result(value["value"])

    def is_closed(self) -> bool:
        return self.closed

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self._bidi.command("browsingContext.close", {"context": self._context}, timeout=30)
        if self._own_user_context:
            with contextlib.suppress(Exception):
                self._bidi.command(
                    "browser.removeUserContext", {"userContext": self._user_context}, timeout=30
                )


class _Context:
    """Pages sharing storage (Playwright's BrowserContext, the part tests use)."""

    def __init__(self, make_page: Callable[[], Any], on_close: Callable[[], None]) -> None:
        self._make_page = make_page
        self._on_close = on_close
        self.pages: list[Any] = []
        self.default_timeout_ms = 30_000.0

    def set_default_timeout(self, ms: float) -> None:
        self.default_timeout_ms = ms

    def new_page(self) -> Any:
        page = self._make_page()
        page.set_default_timeout(self.default_timeout_ms)
        self.pages.append(page)
        return page

    def close(self) -> None:
        for page in self.pages:
            with contextlib.suppress(Exception):
                page.close()
        self.pages.clear()
        self._on_close()


class FirefoxBrowser:
    engine = "firefox"

    def __init__(self, log: Callable[[str], None] | None = None) -> None:
        self._log = log
        self._profile = tempfile.mkdtemp(prefix="monty-firefox-")
        with open(os.path.join(self._profile, "user.js"), "w", encoding="utf-8") as f:
            for key, value in _FIREFOX_PREFS.items():
                f.write(f"user_pref({json.dumps(key)}, {json.dumps(value)});\n")
        port = _free_port()
        self._proc = subprocess.Popen(
            [FIREFOX_PATH, "--headless", "--no-remote", "--remote-debugging-port", str(port),
             "--profile", self._profile],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        last: Exception | None = None
        self.bidi: BiDiConnection
        while True:
            if self._proc.poll() is not None:
                self._cleanup()
                raise EngineMissing(f"Firefox exited at start (status {self._proc.returncode})")
            try:
                self.bidi = BiDiConnection(f"ws://127.0.0.1:{port}/session", self._event)
                break
            except Exception as exc:
                last = exc
                if time.monotonic() > deadline:
                    self.close()
                    raise EngineMissing(f"Firefox did not serve WebDriver BiDi: {last}") from None
                time.sleep(0.2)
        caps = self.bidi.command("session.new", {"capabilities": {}})["capabilities"]
        self.version = f"Firefox {caps.get('browserVersion', '?')}"
        if log is not None:
            with contextlib.suppress(Exception):
                self.bidi.command("session.subscribe", {"events": ["log.entryAdded"]})

    def _event(self, msg: dict[str, Any]) -> None:
        if self._log is None or msg.get("method") != "log.entryAdded":
            return
        p = msg.get("params") or {}
        self._log(f"[firefox console.{p.get('level')}] {p.get('text')}")

    def new_page(self) -> FirefoxPage:
        return FirefoxPage(self)

    def new_context(self, proxy: dict[str, str] | None = None) -> _Context:
        """A user context: its own cookies, caches and storage. ``proxy`` as Playwright's
        (``{"server": "http://host:port"}``): every request of its pages and their
        workers goes through it, loopback included."""
        params: dict[str, Any] = {}
        if proxy is not None:
            server = proxy["server"].split("://", 1)[-1]
            params["proxy"] = {"proxyType": "manual", "httpProxy": server, "sslProxy": server,
                               "noProxy": []}
        user_context = self.bidi.command("browser.createUserContext", params)["userContext"]

        def remove() -> None:
            with contextlib.suppress(Exception):
                self.bidi.command(
                    "browser.removeUserContext", {"userContext": user_context}, timeout=30
                )

        return _Context(lambda: FirefoxPage(self, user_context), remove)

    def _cleanup(self) -> None:
        shutil.rmtree(self._profile, ignore_errors=True)

    def close(self) -> None:
        bidi = getattr(self, "bidi", None)
        if bidi is not None:
            with contextlib.suppress(Exception):
                bidi.command("browser.close", {}, timeout=10)
            bidi.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._cleanup()


# --------------------------------------------------------------------------- WebKit (classic)


class _Xvfb:
    """One Xvfb for the process, started on first use when there is no DISPLAY."""

    _lock = threading.Lock()
    _proc: subprocess.Popen[bytes] | None = None
    _display: str | None = None

    @classmethod
    def display(cls) -> str:
        if os.environ.get("DISPLAY"):
            return os.environ["DISPLAY"]
        with cls._lock:
            if cls._display is not None and cls._proc is not None and cls._proc.poll() is None:
                return cls._display
            read, write = os.pipe()
            cls._proc = subprocess.Popen(
                [XVFB_PATH, "-displayfd", str(write), "-screen", "0", "1280x1024x24",
                 "-nolisten", "tcp"],
                pass_fds=(write,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            os.close(write)
            with os.fdopen(read) as f:
                number = f.readline().strip()
            if not number:
                raise EngineMissing("Xvfb did not start")
            cls._display = f":{number}"
            import atexit

            atexit.register(cls.stop)
            return cls._display

    @classmethod
    def stop(cls) -> None:
        with cls._lock:
            if cls._proc is not None and cls._proc.poll() is None:
                cls._proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    cls._proc.wait(timeout=5)
            cls._proc = None
            cls._display = None


# Starts the promise in the page; `__montyEval` keeps the settled results until polled.
_WEBKIT_START = """
const [id, argText] = arguments;
const store = (window.__montyEval ??= new Map());
store.set(id, null);
Promise.resolve().then(() => (%s)(argText)).then(
  (text) => store.set(id, { ok: true, text }),
  (err) => store.set(id, { ok: false, text: String(err && err.stack || err) }),
);
"""

_WEBKIT_POLL = """
const store = window.__montyEval;
const done = {};
let pending = 0;
if (store) for (const [id, v] of store) {
  if (v === null) { pending++; continue; }
  done[id] = v; store.delete(id);
}
return JSON.stringify({ done, pending, marker: store ? true : false });
"""


class WebKitPage(_PageBase):
    engine = "webkit"

    def __init__(self, browser: WebKitBrowser) -> None:
        self._browser = browser
        self._driver = browser.driver
        self._lock = browser.lock
        self._ids = itertools.count(1)
        self._results: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._generation = 0
        self.closed = False

    @property
    def url(self) -> str:
        with self._lock:
            return str(self._driver.current_url)

    def _navigated(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def goto(self, url: str, wait_until: str = "load", timeout: float | None = None) -> Response:
        with self._lock:
            self._driver.get(url)  # returns once the page has loaded
        self._navigated()
        return Response(_status_of(url))

    def reload(self, wait_until: str = "load") -> Response:
        with self._lock:
            self._driver.refresh()
            url = str(self._driver.current_url)
        self._navigated()
        return Response(_status_of(url))

    def evaluate(self, source: str, arg: Any = None) -> Any:
        eid = f"e{next(self._ids)}"
        generation = self._generation
        with self._lock:
            self._driver.execute_script(
                _WEBKIT_START % wrap_source(source), eid, None if arg is None else encode_arg(arg)
            )
        delay = 0.005
        while True:
            with self._cond:
                if eid in self._results:
                    got = self._results.pop(eid)
                    break
                if self._generation != generation:
                    raise EvaluateError("WebKit: the page navigated while the script ran")
            self._poll()
            with self._cond:
                if eid in self._results:
                    continue
                self._cond.wait(delay)
            delay = min(delay * 2, 0.05)
        if not got["ok"]:
            raise EvaluateError(f"WebKit: {got['text']}")
        return decode_result(got["text"])

    def _poll(self) -> None:
        with self._lock:
            text = self._driver.execute_script(_WEBKIT_POLL)
        data = json.loads(text)
        if not data["done"]:
            return
        with self._cond:
            self._results.update(data["done"])
            self._cond.notify_all()

    def is_closed(self) -> bool:
        return self.closed

    def close(self) -> None:
        """Leave the page, with the origin's Cache Storage emptied (one window per
        WebKit session: the next test must not see this one's warm-start snapshots)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self._driver.set_script_timeout(10)
            with self._lock:
                self._driver.execute_async_script(
                    "const done = arguments[arguments.length - 1];"
                    "(globalThis.caches ? caches.keys().then((ks) => Promise.all(ks.map((k) =>"
                    " caches.delete(k)))) : Promise.resolve()).then(() => done(true), () => done(false));"
                )
        with contextlib.suppress(Exception), self._lock:
            self._driver.get("about:blank")
        self._browser.page_closed(self)


class WebKitBrowser:
    engine = "webkit"

    def __init__(self, log: Callable[[str], None] | None = None) -> None:
        from selenium import webdriver
        from selenium.webdriver.webkitgtk.options import Options
        from selenium.webdriver.webkitgtk.service import Service

        display = _Xvfb.display()
        options = Options()
        options.binary_location = MINIBROWSER_PATH
        options.add_argument("--automation")
        env = {**os.environ, "DISPLAY": display}
        service = Service(executable_path=WEBKIT_DRIVER_PATH, env=env)
        self.lock = threading.RLock()
        self.driver = webdriver.WebKitGTK(options=options, service=service)
        self.version = f"WebKitGTK {self.driver.capabilities.get('browserVersion', '?')}"
        self._page: WebKitPage | None = None

    def new_page(self) -> WebKitPage:
        # One window per session: a second page would share it. Pages are used one at
        # a time (per test); opening one closes the previous.
        if self._page is not None and not self._page.closed:
            self._page.close()
        self._page = WebKitPage(self)
        return self._page

    def new_context(self) -> _Context:
        """WebKit through WebDriver has one window: its pages are used one at a time,
        opening one leaves the previous (with the origin's Cache Storage emptied)."""
        return _Context(self.new_page, lambda: None)

    def page_closed(self, page: WebKitPage) -> None:
        if self._page is page:
            self._page = None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.driver.quit()


# --------------------------------------------------------------------------- Chromium


class ChromiumBrowser:
    """Playwright's Chromium (sync API); ``new_page()`` gives Playwright's own Page."""

    engine = "chromium"

    def __init__(self, playwright: Any, launch: Callable[..., Any]) -> None:
        self.playwright_browser = launch(playwright)
        self.version = f"Chromium {self.playwright_browser.version}"
        self._contexts: list[Any] = []

    def new_page(self) -> Any:
        ctx = self.playwright_browser.new_context()
        self._contexts.append(ctx)
        page = ctx.new_page()
        page.on("close", lambda _p: _close_quietly(ctx))
        return page

    def close(self) -> None:
        self.playwright_browser.close()


def _close_quietly(ctx: Any) -> None:
    with contextlib.suppress(Exception):
        ctx.close()


def launch(engine: str, *, log: Callable[[str], None] | None = None) -> Any:
    """Launch Firefox or WebKit (Chromium goes through Playwright: see conftest)."""
    message = missing_message(engine)
    if message is not None:
        raise EngineMissing(message)
    if engine == "firefox":
        return FirefoxBrowser(log)
    if engine == "webkit":
        return WebKitBrowser(log)
    raise ValueError(f"launch({engine!r}): Chromium is launched through Playwright")


@contextlib.contextmanager
def launched(engine: str, *, log: Callable[[str], None] | None = None) -> Iterator[Any]:
    browser = launch(engine, log=log)
    try:
        yield browser
    finally:
        browser.close()
