"""The browser backend of the conformance runner: the cases run in a browser (Chromium,
Firefox or WebKit), in the Pyodide workers of ``web/monty-runtime.js``.

Chromium is driven through Playwright; Firefox (WebDriver BiDi) and WebKitGTK
(WebDriver) through the engine adapters of ``tests/browser/support/engines.py``, whose pages
this module drives exactly as Playwright's (``goto``, ``wait_for_function``,
``evaluate``), so every engine runs the same page code below. Columns are named
``<engine>`` and ``<engine>-noniso``.

One backend per server mode, each its own column in the report:

* ``chromium`` -- the dev server sends the cross-origin isolation headers
  (``SharedArrayBuffer``: interrupts and the control channel work in the worker);
* ``chromium-noniso`` -- the same server without them (the documented fallbacks).

How it works: :meth:`ChromiumBackend.start` builds ``web/dist`` (cheap when nothing
changed), starts the dev server in a background thread, launches Chromium through
Playwright (the launch settings of ``playwright.config.py``) and opens
``web/demos/conformance.html``.  Each case is sent to that page as JSON text: the runtime to
use, the host script (per call index: the value in wire form or the error, at once or
asynchronously; ``hostDelays``) computed here with :class:`HostScript`, and the steps.
The page runs them with the JS host and returns every execution's events and
rejection, from which :meth:`RunOutcome.from_events` builds the outcome -- so the
checks and the cross-backend comparison are the same as for the native backend.

Runtimes.  Booting a worker (Pyodide + the wheel) costs seconds of CPU, so:

* A case whose state must be its own -- several steps on a shared-mode runtime, a
  concurrent step -- gets a fresh shared-mode ``MontyRuntime`` with the
  case's limits, disposed after the case.
* A one-step case and a ``sandbox`` case get a fresh REPL on a reusable runtime:
  a sandbox-mode ``MontyRuntime`` (one worker) with the same host functions, reused by
  every such case with the same host functions and schemas.  Sandbox mode gives each
  ``execute()`` a new bridge and REPL, which is exactly a fresh runtime's first
  execution; the case's runtime limits go with each ``execute()`` (they replace the
  runtime's, so this is the same).  A case that lost its session, was rejected or timed
  out disposes its runtime (the next case boots a new one).  ``fresh_runtimes=True``
  (``--fresh-runtimes``) gives every case its own runtime as the case describes it.
* Runtimes are booted ahead (``lookahead``), at most ``boot_concurrency`` at a time, in
  the order the runner will need them (:meth:`prepare` receives the case list).

``inputs`` go to the JS host's ``execute(code, {inputs})`` as values (their codec wire
form, decoded in the page), as natively.

Every case settles: the page disposes a runtime whose case runs past the deadline, and
the case is reported as an error with the reason.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import importlib.util
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from monty_runtime import codec

from .backends import BackendUnavailable, CaseOutcome, HostScript, RunOutcome
from .corpus import Case, Step, find_repo_root

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Playwright

    from monty_runtime._server import RunningServer

__all__ = [
    "MODE_BACKENDS",
    "SERVER_MODES",
    "BrowserBackendError",
    "CaseTimeout",
    "ChromiumBackend",
    "backend_name",
    "create_backend",
]

#: Server modes: name -> cross-origin isolated?
SERVER_MODES: dict[str, bool] = {"isolated": True, "not_isolated": False}
#: Server mode -> backend (report column) name.
MODE_BACKENDS: dict[str, str] = {"isolated": "chromium", "not_isolated": "chromium-noniso"}

PAGE = "demos/conformance.html"
#: Seconds the page gives a case (after its runtime booted) when the runner gives none.
DEFAULT_CASE_DEADLINE = 55.0
#: Seconds a runtime may take to boot.
BOOT_TIMEOUT = 120.0


class BrowserBackendError(RuntimeError):
    """The browser side failed on a case (boot failure, page crash, ...)."""


class CaseTimeout(BrowserBackendError):
    """A case did not settle in the page within its deadline."""


def backend_name(mode: str, engine: str = "chromium") -> str:
    """The report column of a server mode (``isolated`` -> ``chromium``)."""
    try:
        return MODE_BACKENDS[mode].replace("chromium", engine)
    except KeyError:
        raise ValueError(
            f"unknown server mode {mode!r}; choose from {', '.join(SERVER_MODES)}"
        ) from None


def create_backend(mode: str = "isolated", **options: Any) -> ChromiumBackend:
    """A browser backend for one server mode (``isolated`` or ``not_isolated``) and
    ``engine`` (option; default ``chromium``). Raises :class:`BackendUnavailable` when it
    cannot run here."""
    return ChromiumBackend(mode, **options)


def _load_file_module(name: str, path: Path, unavailable: str) -> ModuleType:
    """The module at ``path`` (a file whose name cannot be imported), loaded once as
    ``name``; :class:`BackendUnavailable` (``unavailable``) when the file is missing."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise BackendUnavailable(f"{unavailable}: {path} not found")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[name]
        raise
    return module


def _load_engines(root: Path) -> ModuleType:
    """``tests/browser/support/engines.py``: the Firefox and WebKit adapters."""
    module = sys.modules.get("engines")
    if module is not None and hasattr(module, "missing_message"):
        return module
    return _load_file_module("engines", root / "tests" / "browser" / "support" / "engines.py",
                             "browser engines not available")


class _AdapterPage:
    """An engine adapter's (thread-safe, blocking) page as the async page this module
    drives: each call runs in a thread, so several may be in flight."""

    def __init__(self, page: Any) -> None:
        self._page = page

    async def goto(self, url: str, wait_until: str = "load") -> Any:
        return await asyncio.to_thread(self._page.goto, url, wait_until)

    async def wait_for_function(self, source: str) -> Any:
        return await asyncio.to_thread(self._page.wait_for_function, source)

    async def evaluate(self, source: str, arg: Any = None) -> Any:
        return await asyncio.to_thread(self._page.evaluate, source, arg)

    def is_closed(self) -> bool:
        return bool(self._page.closed)


# -- the project's browser settings ------------------------------------------------------


def _load_config(root: Path) -> ModuleType:
    """``playwright.config.py`` (its name cannot be imported with ``import``)."""
    module = sys.modules.get("monty_playwright_config")
    if module is not None:
        return module
    return _load_file_module("monty_playwright_config", root / "playwright.config.py",
                             "chromium backend not available")


def _copy_web(source: Path, target: Path) -> None:
    """Copy the web root to ``target``: its files and folders, of ``node_modules`` only
    ``pyodide``."""
    for entry in source.iterdir():
        if entry.name == "node_modules":
            shutil.copytree(entry / "pyodide", target / "node_modules" / "pyodide")
        elif entry.is_dir():
            shutil.copytree(entry, target / entry.name)
        elif entry.is_file():
            shutil.copy2(entry, target / entry.name)


def _check_dist(dist: Path) -> str:
    """An empty string when every wheel the lock file lists in ``dist`` has the lock
    file's digest, else the problem."""
    try:
        lock = json.loads((dist / "pyodide-lock.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{dist}: no usable pyodide-lock.json ({exc}); run: python -m monty_runtime build"
    for name, pkg in lock.get("packages", {}).items():
        file = dist / str(pkg.get("file_name", ""))
        if not pkg.get("file_name") or not file.is_file():
            continue
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        if digest != pkg.get("sha256"):
            return f"{file.name} does not match pyodide-lock.json ({name}): rebuilt meanwhile?"
    return ""


_NEGATIVE_ZERO = {"\u0000-0": 1}


def _negative_zero(obj: dict[str, Any]) -> Any:
    """The page's marker for -0 (``JSON.stringify`` writes -0 as 0) back to -0.0."""
    return -0.0 if obj == _NEGATIVE_ZERO else obj


# -- what the page receives ----------------------------------------------------------------


def _functions(case: Case) -> list[dict[str, Any]]:
    script = HostScript(case)
    return [{"name": n, "parameters": script.parameters(n)} for n in case.external_functions]


def host_script(case: Case) -> dict[str, Any]:
    """The answers of the case's host calls by index (``value`` in wire form, ``error``,
    ``async``) and ``hostDelays``: what :class:`HostScript` says, for the page."""
    keys = [int(k) for k in (*case.async_resume_map, *case.async_error_map)]
    count = max([len(case.resume_values), len(case.resume_errors), *(k + 1 for k in keys)])
    script = HostScript(case)
    answers = []
    for _ in range(count):
        answer = script.answer("")  # "" is no function's name: no delay
        answers.append(
            {
                "value": codec.encode(answer.value),
                "error": answer.error,
                "async": answer.asynchronous,
            }
        )
    return {"answers": answers, "delays": {k: float(v) for k, v in case.host_delays.items()}}


def _step_spec(
    step: Step, label: str, *, default_limits: Mapping[str, Any] | None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"kind": "run", "label": label, "code": step.code}
    if step.script_name is not None:
        spec["scriptName"] = step.script_name
    limits = step.limits if step.limits is not None else default_limits
    if limits is not None:
        spec["limits"] = dict(limits)
    if step.inputs is not None:
        spec["inputs"] = codec.encode(dict(step.inputs))  # execute(code, {inputs})
    return spec


def case_spec(case: Case, *, per_call_limits: bool) -> dict[str, Any]:
    """The case as the page runs it (see ``web/demos/conformance.js``).  ``per_call_limits``:
    the runtime was created without the case's limits, so every execute gets them."""
    default = case.limits if per_call_limits else None
    steps: list[dict[str, Any]] = []
    for step in case.steps:
        if step.concurrent is not None:
            a, b = step.concurrent
            steps.append(
                {
                    "kind": "concurrent",
                    "a": _step_spec(
                        a,
                        f"{step.label}a (concurrent, first)",
                        default_limits=default,
                    ),
                    "b": _step_spec(
                        b,
                        f"{step.label}b (concurrent, second)",
                        default_limits=default,
                    ),
                }
            )
        else:
            label = step.label if case.multi_step else ""
            steps.append(_step_spec(step, label, default_limits=default))
    return {"script": host_script(case), "steps": steps}


# -- runtimes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Need:
    """The runtime a case runs on: a reusable one (``key``) or its own."""

    key: str | None
    spec: Mapping[str, Any]


@dataclass(slots=True)
class _Runtime:
    id: str
    need: _Need
    boot: asyncio.Task[dict[str, Any]]
    cases: int = 0
    disposed: bool = False


@dataclass(slots=True)
class BackendStats:
    """Counters of one backend's run."""

    boots: int = 0
    boot_failures: int = 0
    boot_ms: float = 0.0
    reused: int = 0
    cases: int = 0
    page_restarts: int = 0

    def line(self, name: str) -> str:
        mean = self.boot_ms / self.boots if self.boots else 0.0
        return (
            f"{name}: {self.cases} cases, {self.boots} runtimes booted (mean "
            f"{mean / 1000:.1f}s), {self.reused} cases on a reused runtime"
        )


class ChromiumBackend:
    """Runs cases in Chromium (one server mode).  See the module docstring."""

    def __init__(
        self,
        mode: str = "isolated",
        *,
        fresh_runtimes: bool = False,
        lookahead: int = 4,
        boot_concurrency: int = 2,
        max_reusable: int = 8,
        case_deadline: float | None = None,
        root: str | os.PathLike[str] | None = None,
        build: bool = True,
        log: Any = None,
        engine: str = "chromium",
    ) -> None:
        self.mode = mode
        self.engine = engine
        self.name = backend_name(mode, engine)
        self.isolated = SERVER_MODES[mode]
        self.fresh_runtimes = fresh_runtimes
        self.lookahead = max(0, lookahead)
        self.boot_concurrency = max(1, boot_concurrency)
        self.max_reusable = max(1, max_reusable)
        self.case_deadline = case_deadline
        self.build = build
        self.log = log
        found = Path(root).resolve() if root is not None else find_repo_root()
        if found is None:
            raise BackendUnavailable(
                "chromium backend not available: the project (web/, playwright.config.py) "
                "was not found above the current directory"
            )
        self.root = found
        self.config = _load_config(self.root)
        self._engines: ModuleType | None = None
        if engine == "chromium":
            missing = self.config.chromium_missing_message()
            if missing:
                raise BackendUnavailable(f"chromium backend not available: {missing}")
            try:
                import playwright.async_api  # noqa: F401
            except ImportError as exc:
                raise BackendUnavailable(
                    f"chromium backend not available: Playwright is not installed ({exc})"
                ) from None
        else:
            self._engines = _load_engines(self.root)
            missing = self._engines.missing_message(engine)
            if missing:
                raise BackendUnavailable(f"{engine} backend not available: {missing}")
        self.web_root = Path(self.config.WEB_ROOT)
        if not (self.web_root / "node_modules" / "pyodide").is_dir():
            raise BackendUnavailable(
                f"chromium backend not available: {self.web_root / 'node_modules' / 'pyodide'} "
                "is missing (run: npm ci --prefix web)"
            )
        self.stats = BackendStats()
        self.console: collections.deque[str] = collections.deque(maxlen=60)
        self._server: RunningServer | None = None
        self._snapshot: Path | None = None
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._context: BrowserContext | None = None
        self._page: Page | None = None
        self._engine_browser: Any = None
        self._ids = itertools.count(1)
        self._boot_slots = asyncio.Semaphore(self.boot_concurrency)
        self._background: set[asyncio.Future[None]] = set()
        # The plan: the runtime each case needs, in the order the runner runs them.
        self._plan: list[_Need] = []
        self._index: dict[str, int] = {}
        self._uses: dict[str, list[int]] = {}
        self._pos = -1
        self._fresh: dict[int, _Runtime] = {}
        self._reusable: dict[str, _Runtime] = {}
        self._deadline = case_deadline

    # -- lifecycle ---------------------------------------------------------------------

    def _say(self, text: str) -> None:
        if self.log is not None:
            self.log(text)

    async def start(self) -> None:
        from playwright.async_api import async_playwright

        from monty_runtime._server import start_server

        self._boot_slots = asyncio.Semaphore(self.boot_concurrency)
        self.stats = BackendStats()
        try:
            self._snapshot = await asyncio.to_thread(self._take_snapshot)
            self._server = start_server(self._snapshot, port=0, isolated=self.isolated)
            if self._engines is not None:
                try:
                    self._engine_browser = await asyncio.to_thread(
                        self._engines.launch, self.engine
                    )
                except Exception as exc:
                    raise BackendUnavailable(
                        f"{self.engine} backend not available: cannot launch it: {exc}"
                    ) from None
                await self._open_page()
                return
            self._pw = await async_playwright().start()
            try:
                self._browser = await self.config.launch_browser(self._pw)
            except Exception as exc:
                raise BackendUnavailable(
                    f"chromium backend not available: cannot launch Chromium: {exc}"
                ) from None
            await self._open_page()
        except BaseException:
            await self.close()
            raise

    async def _new_page(self) -> Page:
        if self._engine_browser is not None:
            old = self._page
            if old is not None:
                await asyncio.to_thread(old._page.close)  # type: ignore[attr-defined]
            adapter = await asyncio.to_thread(self._engine_browser.new_page)
            return _AdapterPage(adapter)  # type: ignore[return-value]
        assert self._browser is not None
        if self._context is not None:
            try:
                await self._context.close()
            except Exception:
                pass
        self._context = await self._browser.new_context()
        self._context.set_default_timeout(self.config.DEFAULT_TIMEOUT_MS)
        page = await self._context.new_page()
        self._watch(page)
        return page

    async def _open_page(self) -> None:
        assert self._server is not None
        page = await self._new_page()
        response = await page.goto(self._server.url + PAGE, wait_until="load")
        if response is None or not response.ok:
            status = response.status if response is not None else "no response"
            raise BackendUnavailable(f"{self.name} backend not available: GET {PAGE}: {status}")
        await page.wait_for_function("() => window.montyConformance?.ready === true")
        isolated = await page.evaluate("() => globalThis.crossOriginIsolated === true")
        if bool(isolated) != self.isolated:
            raise BackendUnavailable(
                f"{self.name} backend not available: the page is "
                f"{'' if isolated else 'not '}cross-origin isolated in server mode {self.mode}"
            )
        self._page = page
        self._fresh.clear()
        self._reusable.clear()

    def _take_snapshot(self) -> Path:
        """Build ``web/dist`` (unless ``build=False``) and copy the web root to a
        temporary folder served for the whole run, so that edits and rebuilds of ``web/``
        during the run cannot mix two builds (a lock file and a wheel that disagree)."""
        from monty_dev.build import BuildError
        from monty_dev.build import build as build_web

        problem = ""
        for _attempt in range(3):
            if self.build:
                try:
                    build_web(self.root, log=lambda _line: None)
                except BuildError as exc:
                    raise BackendUnavailable(
                        f"chromium backend not available: web build failed: {exc}"
                    ) from None
            target = Path(tempfile.mkdtemp(prefix="monty-conformance-web-"))
            try:
                _copy_web(self.web_root, target)
                problem = _check_dist(target / "dist")
            except OSError as exc:
                problem = f"cannot copy {self.web_root}: {exc}"
            if not problem:
                return target
            shutil.rmtree(target, ignore_errors=True)
            time.sleep(1.0)
        raise BackendUnavailable(f"chromium backend not available: {problem}")

    def _watch(self, page: Page) -> None:
        console = self.console

        def on_console(msg: Any) -> None:
            console.append(f"[console.{msg.type}] {msg.text}")

        def on_worker(worker: Any) -> None:
            worker.on(
                "console", lambda msg: console.append(f"[worker console.{msg.type}] {msg.text}")
            )

        page.on("console", on_console)
        page.on("pageerror", lambda exc: console.append(f"[pageerror] {exc}"))
        page.on("crash", lambda _p: console.append("[page crashed]"))
        page.on("worker", on_worker)

    async def close(self) -> None:
        if self.stats.cases:
            self._say(self.stats.line(self.name))
        for rt in [*self._fresh.values(), *self._reusable.values()]:
            rt.boot.cancel()
        self._fresh.clear()
        self._reusable.clear()
        for closer in (
            self._context.close if self._context is not None else None,
            self._browser.close if self._browser is not None else None,
            self._pw.stop if self._pw is not None else None,
        ):
            if closer is None:
                continue
            try:
                await closer()
            except Exception:
                pass
        self._context = self._browser = self._pw = None
        if self._engine_browser is not None:
            browser, self._engine_browser = self._engine_browser, None
            try:
                await asyncio.to_thread(browser.close)
            except Exception:
                pass
        self._page = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._snapshot is not None:
            shutil.rmtree(self._snapshot, ignore_errors=True)
            self._snapshot = None

    # -- planning ----------------------------------------------------------------------

    def _need(self, case: Case) -> _Need:
        functions = _functions(case)
        if not self.fresh_runtimes:
            one_step = len(case.steps) == 1 and case.steps[0].concurrent is None
            if case.sandbox or one_step:
                spec = {"functions": functions, "sandbox": True, "poolSize": 1}
                return _Need(json.dumps(spec, sort_keys=True), spec)
        spec = {
            "functions": functions,
            "sandbox": case.sandbox,
            "limits": dict(case.limits) if case.limits is not None else None,
        }
        return _Need(None, spec)

    async def prepare(self, cases: Sequence[Case], *, case_timeout: float | None = None) -> None:
        """The cases the runner is about to run, in order: runtimes are booted ahead."""
        self._plan = [self._need(c) for c in cases]
        self._index = {c.key: i for i, c in enumerate(cases)}
        self._uses = {}
        for i, need in enumerate(self._plan):
            if need.key is not None:
                self._uses.setdefault(need.key, []).append(i)
        self._pos = -1
        if self.case_deadline is None and case_timeout is not None:
            # Settle in the page before the runner gives up on the case.
            self._deadline = max(1.0, min(case_timeout * 0.9, case_timeout - 3.0))
        self._prefetch()

    def _next_use(self, key: str, after: int) -> int | None:
        for i in self._uses.get(key, ()):
            if i > after:
                return i
        return None

    def _boot(self, need: _Need) -> _Runtime:
        rid = f"rt{next(self._ids)}"
        task = asyncio.ensure_future(self._boot_in_page(rid, need))
        return _Runtime(rid, need, task)

    async def _boot_in_page(self, rid: str, need: _Need) -> dict[str, Any]:
        page = self._page
        assert page is not None
        async with self._boot_slots:
            started = time.perf_counter()
            text = await asyncio.wait_for(
                page.evaluate(
                    "([id, spec]) => window.montyConformance.boot(id, spec)",
                    [rid, json.dumps(need.spec)],
                ),
                BOOT_TIMEOUT + 10,
            )
        answer: dict[str, Any] = json.loads(text)
        self.stats.boots += 1
        if answer.get("ok"):
            self.stats.boot_ms += (time.perf_counter() - started) * 1000.0
        else:
            self.stats.boot_failures += 1
        return answer

    def _reusable_for(self, key: str, need: _Need, at: int) -> _Runtime:
        rt = self._reusable.get(key)
        if rt is not None:
            return rt
        if len(self._reusable) >= self.max_reusable:
            # Evict the reusable runtime needed again last (or never), if it is not in use.
            def next_use(item: tuple[str, _Runtime]) -> float:
                n = self._next_use(item[0], at - 1)
                return float("inf") if n is None else float(n)

            candidates = [
                item for item in self._reusable.items() if item[0] != key and next_use(item) > at
            ]
            if candidates:
                victim_key, victim = max(candidates, key=next_use)
                del self._reusable[victim_key]
                self._discard(victim)
        rt = self._boot(need)
        self._reusable[key] = rt
        return rt

    def _prefetch(self) -> None:
        """Boot the runtimes of the next cases (up to ``lookahead`` boots ahead)."""
        if self._page is None:
            return
        ahead = 0
        for j in range(self._pos + 1, len(self._plan)):
            if ahead >= self.lookahead:
                break
            need = self._plan[j]
            if need.key is None:
                if j not in self._fresh:
                    self._fresh[j] = self._boot(need)
                ahead += 1
            elif need.key not in self._reusable:
                if len(self._reusable) >= self.max_reusable:
                    # Only boot ahead into free room; evictions happen when needed.
                    continue
                self._reusable_for(need.key, need, j)
                ahead += 1

    def _discard(self, rt: _Runtime) -> None:
        """Dispose a runtime (in the background)."""
        if rt.disposed:
            return
        rt.disposed = True
        page = self._page

        async def dispose() -> None:
            try:
                await rt.boot
            except BaseException:
                pass
            if page is None or page.is_closed():
                return
            try:
                await page.evaluate("(id) => window.montyConformance.dispose(id)", rt.id)
            except Exception:
                pass

        task = asyncio.ensure_future(dispose())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- running -----------------------------------------------------------------------

    def _runtime_for(self, case: Case) -> tuple[_Runtime, int]:
        index = self._index.get(case.key, -1)
        if index < 0 or index >= len(self._plan):
            need, index = self._need(case), -1
        else:
            need = self._plan[index]
            self._pos = index
        if need.key is not None:
            return self._reusable_for(need.key, need, index), index
        rt = self._fresh.pop(index, None) if index >= 0 else None
        return (rt if rt is not None else self._boot(need)), index

    def _recent_console(self, n: int = 8) -> str:
        lines = list(self.console)[-n:]
        return ("; recent console: " + " | ".join(lines)) if lines else ""

    async def run_case(self, case: Case) -> CaseOutcome:
        started = time.perf_counter()
        if self._page is None or self._page.is_closed():
            self.stats.page_restarts += 1
            await self._open_page()
        page = self._page
        assert page is not None
        rt, index = self._runtime_for(case)
        self._prefetch()
        reusable = rt.need.key is not None
        finished = False
        try:
            answer = await rt.boot
            if not answer.get("ok"):
                err = answer.get("error") or {}
                raise BrowserBackendError(
                    f"the runtime did not boot: {err.get('type')}: {err.get('message')}"
                    + self._recent_console()
                )
            spec = case_spec(case, per_call_limits=reusable)
            deadline = self._deadline if self._deadline is not None else DEFAULT_CASE_DEADLINE
            # The runner's timeout counts the wait for the boot too: settle before it.
            deadline = max(1.0, deadline - (time.perf_counter() - started))
            try:
                text = await page.evaluate(
                    "([id, spec, ms]) => window.montyConformance.run(id, spec, ms)",
                    [rt.id, json.dumps(spec), round(deadline * 1000)],
                )
            except Exception as exc:
                if page.is_closed() or "crash" in str(exc).lower() or "closed" in str(exc).lower():
                    self._page = None  # reopened for the next case
                raise BrowserBackendError(
                    f"the page failed: {exc}{self._recent_console()}"
                ) from None
            data: dict[str, Any] = json.loads(text, object_hook=_negative_zero)
            rt.cases += 1
            self.stats.cases += 1
            if reusable and rt.cases > 1:
                self.stats.reused += 1
            if data.get("timedOut"):
                rt.disposed = True  # the page disposed it
                done = sum(1 for _ in data.get("runs", []))
                raise CaseTimeout(
                    f"the case did not settle in the page within {deadline:.1f}s of its "
                    "runtime being ready "
                    f"({done} execution(s) finished; the runtime was disposed)"
                )
            outcome = CaseOutcome(self.name, case.key)
            for run in data.get("runs", []):
                out = RunOutcome.from_events(
                    str(run.get("label", "")), list(run.get("events", [])), run.get("rejected")
                )
                out.problems.extend(str(p) for p in run.get("problems", []))
                outcome.runs.append(out)
            finished = not data.get("tainted")
        finally:
            self._release(rt, index, keep=finished)
        outcome.duration_ms = round((time.perf_counter() - started) * 1000.0, 3)
        return outcome

    def _release(self, rt: _Runtime, index: int, *, keep: bool) -> None:
        key = rt.need.key
        if key is None:
            self._discard(rt)
            return
        if keep and not rt.disposed and self._next_use(key, index) is not None and index >= 0:
            return
        if self._reusable.get(key) is rt:
            del self._reusable[key]
        self._discard(rt)
        self._prefetch()
