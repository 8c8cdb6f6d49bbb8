"""The Pyodide platform: how executed code runs in a single-threaded Pyodide worker.

:class:`PyodidePlatform` is the :class:`monty_runtime.bridge.Platform` of the browser
(and Deno) backend, the counterpart of :mod:`monty_runtime._native`; the worker session
that drives it is :mod:`monty_runtime.worker`.

* Code runs at once, on the worker's one thread, in a copy of the current context.
* A host function called sync-style (``x = f(1)``) blocks on the page's answer with
  JSPI (``pyodide.ffi.run_sync``), or else with ``Atomics.wait`` on a shared buffer
  when the page is cross-origin isolated, or else fails with a ``TypeError`` that says
  why and to ``await`` it. ``await f(1)`` posts the call and awaits the page's promise.
* Interrupts, before the control channel (``_control.py``) reaches running code, fail
  the host calls the code waits for or cancel its top-level task.

Its per-execution state is a :class:`PageRequest` (``Execution.state``). The page is
reached only through :class:`Hooks` (``worker.js``; a fake in the unit tests), so this
module imports and is tested in CPython.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from . import _wire, codec
from .bridge import Execution, HostCall, current_execution
from .errors import HostError
from .repl import is_internal_frame

__all__ = [
    "SYNC_MODES",
    "Hooks",
    "PageRequest",
    "PyodidePlatform",
    "jspi_available",
    "quiet_loop",
    "running_loop",
    "unpack_answer",
]

#: How sync-style host calls block: "auto" (JSPI, else Atomics, else refuse),
#: "jspi", "atomics" or "none" (always refuse: the code must ``await``).
SYNC_MODES = ("auto", "jspi", "atomics", "none")

_INTERRUPTED = '{"interrupt":true}'
_dumps = _wire.dumps  # compact JSON, one cached C encoder (hot path)


class Hooks(Protocol):
    """What ``worker.js`` gives Python (a JS object; a fake in unit tests)."""

    def post(self, text: str) -> None:
        """``postMessage`` one JSON-encoded protocol message to the page."""

    def promise(self, call_id: int) -> Any:
        """A promise (awaitable) of the JSON text of the ``host_result`` for
        ``call_id``; the page's answer resolves it."""

    def settle(self, call_id: int, text: str) -> None:
        """Resolve the promise of ``call_id`` now with ``text`` (used to interrupt a
        pending call); a later answer from the page for it is ignored."""

    def waitSync(self) -> Any:
        """Block (``Atomics.wait``) until the page wrote the answer of the one pending
        synchronous call into the shared buffer; returns its JSON text."""

    # Optional, when the page sent a control buffer (init ``control``):
    # ``control() -> str`` reads the page's pending control requests ("kind,id,...")
    # and counts a heartbeat; see _control.py.


class PageRequest:
    """The Pyodide platform's state of one execution (``Execution.state``): the page's
    request id, the host calls the code waits for, its top-level task."""

    __slots__ = ("calls", "held", "interrupting", "rid", "task")

    def __init__(self, rid: Any) -> None:
        self.rid = rid
        self.calls: set[int] = set()
        self.task: asyncio.Task[Any] | None = None
        #: An interrupt was delivered by failing a host call, and the code has not seen
        #: it yet: a second interrupt must not also cancel the task.
        self.interrupting = False
        #: A ``call_started`` event held back to leave with its ``host_call`` (one
        #: message instead of two); posted before anything else otherwise.
        self.held: str | None = None


def running_loop() -> asyncio.AbstractEventLoop:
    # Pyodide's webloop is always the running loop of the worker.
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.get_event_loop()


_can_run_sync: Callable[[], bool] | None = None


def jspi_available() -> bool:
    """Whether ``run_sync`` works here and now (JSPI, and Python entered through a
    promising call)."""
    global _can_run_sync
    if _can_run_sync is None:
        try:
            from pyodide.ffi import can_run_sync  # type: ignore[import-not-found]
        except ImportError:
            _can_run_sync = lambda: False  # noqa: E731
        else:
            _can_run_sync = can_run_sync
    try:
        return bool(_can_run_sync())
    except Exception:
        return False


def _run_sync(awaitable: Any) -> Any:
    from pyodide.ffi import run_sync

    return run_sync(awaitable)


class PyodidePlatform:
    """:class:`monty_runtime.bridge.Platform` for a single-threaded Pyodide worker."""

    def __init__(
        self,
        hooks: Hooks,
        sync: str = "auto",
        sync_buffer: bool = False,
        capabilities: dict[str, Any] | None = None,
    ) -> None:
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {', '.join(SYNC_MODES)}, got {sync!r}")
        self.hooks = hooks
        #: Opens the memory cap's reserve (web/worker/memory-cap.js); looked up once.
        self._open_reserve = getattr(hooks, "memoryReserve", None)
        self.sync = sync
        self.sync_buffer = sync_buffer
        #: What the worker detected (worker.js capabilities()): jspi, sharedArrayBuffer,
        #: crossOriginIsolated; used to say accurately why a sync-style call cannot block.
        self.capabilities: dict[str, Any] = dict(capabilities or {})
        self._call_ids = itertools.count(1)
        #: >0 while the code blocks in a sync-style host call (JSPI or Atomics): the
        #: control channel's signal handler must not call into JavaScript then.
        self.blocked = 0

    # -- running code -------------------------------------------------------------------

    def submit(self, execution: Execution, job: Callable[[], None]) -> None:
        # At once, in a copy of the current context: contextvars set by the code do not
        # leak into the next execution, and tasks it creates inherit them.
        contextvars.copy_context().run(self._run_job, execution, job)

    @staticmethod
    def _run_job(execution: Execution, job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:
            # An exception in the runtime's own code (not the user's): never keep the
            # guard taken, report it as the result.
            execution.bridge.fail(execution, exc)

    def to_host(self, execution: Execution, fn: Callable[[], None]) -> None:
        fn()

    def call_later(self, execution: Execution, delay: float, fn: Callable[[], None]) -> Any:
        return running_loop().call_later(delay, fn)

    def run_coroutine(
        self, execution: Execution, coro: Any, done: Callable[[Any, BaseException | None], None]
    ) -> None:
        task = running_loop().create_task(coro)
        req = _request(execution)
        if req is not None:
            req.task = task

        def finish(t: asyncio.Task[Any]) -> None:
            value: Any = None
            exc: BaseException | None = None
            try:
                value = t.result()
            except BaseException as e:
                exc = e
            if isinstance(exc, asyncio.CancelledError) and execution.interrupt_exc is not None:
                # Cancelled to interrupt it: report the interrupt, where the code was.
                where = exc.__context__ if exc.__context__ is not None else exc
                exc = execution.interrupt_exc().with_traceback(where.__traceback__)
            if exc is not None:
                exc = _without_loop_frames(exc)
            done(value, exc)

        task.add_done_callback(finish)

    def interrupt(self, execution: Execution, exc: type[BaseException]) -> None:
        """Best effort until the interrupt buffer exists: fail the host calls the code
        waits for, or cancel its top-level task when it waits for something else.  A
        CPU-bound loop is not interrupted."""
        req = _request(execution)
        if req is None:
            return
        if req.calls:
            req.interrupting = True
            for call_id in sorted(req.calls):
                req.calls.discard(call_id)
                with contextlib.suppress(Exception):
                    self.hooks.settle(call_id, _INTERRUPTED)
            return
        if req.interrupting:
            return
        task = req.task
        if task is not None and not task.done():
            try:
                running = asyncio.current_task()
            except RuntimeError:
                running = None
            if running is not task:
                task.cancel()

    def stopped(self, execution: Execution) -> None:
        # The code stopped: the runtime's own work from here (its result) may use the
        # memory cap's reserve (web/worker/memory-cap.js), even if the code filled the heap.
        open_reserve = self._open_reserve
        if open_reserve is not None:
            with contextlib.suppress(Exception):
                open_reserve()
        # Tasks the code started and left behind stop with it (natively they die with
        # the execution's own event loop).
        try:
            tasks = asyncio.all_tasks(running_loop())
        except Exception:
            return
        for t in tasks:
            if t.done():
                continue
            get_context = getattr(t, "get_context", None)
            if get_context is None:  # pragma: no cover - Python < 3.12
                return
            owner = get_context().get(current_execution)
            if owner is execution:
                t.cancel()

    # -- host calls ---------------------------------------------------------------------

    def _post_call(self, execution: Execution, call: HostCall, sync: bool) -> int:
        req = _request(execution)
        call_id = next(self._call_ids)
        fn = call.fn
        text = _dumps({
            "type": "host_call",
            "id": call_id,
            "execution": None if req is None else req.rid,
            "name": fn.name,
            "args": call.wire_args,
            "kwargs": call.wire_kwargs,
            "sync": sync,
        })
        room = execution.limits.max_result_bytes + 1024
        if len(text) > room:
            # The page refuses (and cuts off) a message this large; the code gets an error.
            raise ValueError(
                f"the arguments of {fn.name}() are {len(text)} characters of JSON, over "
                f"max_result_bytes={execution.limits.max_result_bytes}: pass less data"
            )
        if req is not None and req.held is not None:
            text = "[" + req.held + "," + text + "]"
            req.held = None
        self.hooks.post(text)
        return call_id

    def _sync_mode(self) -> str:
        mode = self.sync
        if mode in ("auto", "jspi") and jspi_available():
            return "jspi"
        if mode in ("auto", "atomics") and self.sync_buffer:
            return "atomics"
        return "none"

    @property
    def awaits_top_level_calls(self) -> bool:
        """No way to block in a sync-style call (no JSPI, no shared buffer) while they are
        wanted (``sync="auto"``): the REPL awaits top-level ones instead
        (:func:`monty_runtime.repl.await_host_calls`)."""
        return (
            self.sync == "auto"
            and not self.sync_buffer
            and self.capabilities.get("jspi") is False
        )

    def _no_shared_buffer(self) -> str:
        """Why the page sent no shared buffer, from the capabilities the worker detected."""
        caps = self.capabilities
        if caps.get("crossOriginIsolated") is False:
            return (
                "the page is not cross-origin isolated, so there is no shared buffer "
                "(serve it with Cross-Origin-Opener-Policy: same-origin and "
                "Cross-Origin-Embedder-Policy: require-corp)"
            )
        if caps.get("sharedArrayBuffer") is False:
            return (
                "this browser has no SharedArrayBuffer, although the page is "
                "cross-origin isolated"
            )
        return "the page sent no shared buffer"

    def _why_not_sync(self) -> str:
        if self.sync == "none":
            return "sync-style host calls are turned off for this runtime"
        if self.sync == "jspi":
            if self.capabilities.get("jspi") is False:
                return "this browser has no JSPI (WebAssembly.Suspending)"
            return "JSPI is not available in this call"
        if self.sync == "atomics":
            return self._no_shared_buffer()
        if self.capabilities.get("jspi") is False:
            return f"no JSPI in this browser, and {self._no_shared_buffer()}"
        return f"JSPI is not available in this call, and {self._no_shared_buffer()}"

    def host_sync(self, execution: Execution, call: HostCall) -> Any:
        fn = call.fn
        mode = self._sync_mode()
        if mode == "none":
            raise TypeError(
                f"{fn.name}() cannot be called synchronously here ({self._why_not_sync()}); "
                f"use `await {fn.name}(...)` inside async code"
            )
        req = _request(execution)
        if mode == "jspi":
            call_id = self._post_call(execution, call, False)
            promise = self.hooks.promise(call_id)
            if req is not None:
                req.calls.add(call_id)
            self.blocked += 1
            try:
                text = _run_sync(promise)
            finally:
                self.blocked -= 1
                if req is not None:
                    req.calls.discard(call_id)
        else:
            call_id = self._post_call(execution, call, True)
            self.blocked += 1
            try:
                text = self._wait_sync(call_id)
            finally:
                self.blocked -= 1
        return unpack_answer(execution, text)

    def _wait_sync(self, call_id: int) -> Any:
        """The answer for ``call_id`` from the shared buffer.  Every answer carries the
        id of its call: one left there for another call (a ``host_call`` forged by
        executed code, answered by the page but never read) is dropped, never taken
        for this call's."""
        while True:
            text = self.hooks.waitSync()
            if text is None:
                return None
            try:
                answer = json.loads(str(text))
            except ValueError:
                continue
            if isinstance(answer, dict) and answer.get("id") == call_id and (
                type(answer.get("id")) is int
            ):
                return text

    def host_async(self, execution: Execution, call: HostCall) -> Awaitable[Any]:
        call_id = self._post_call(execution, call, False)
        promise = self.hooks.promise(call_id)
        req = _request(execution)
        if req is not None:
            req.calls.add(call_id)
        return self._answer(execution, req, call_id, promise)

    @staticmethod
    async def _answer(execution: Execution, req: PageRequest | None, call_id: int,
                      promise: Any) -> Any:
        try:
            text = await promise
        finally:
            if req is not None:
                req.calls.discard(call_id)
        return unpack_answer(execution, text)


def _without_loop_frames(exc: BaseException) -> BaseException:
    """Drop internal frames -- the event loop's own first (Pyodide's webloop runs a
    task's step inside ``run_handle``) -- from the head of a traceback, so that it
    starts at the user's code as it does natively."""
    tb = exc.__traceback__
    while tb is not None and is_internal_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    if tb is not exc.__traceback__:
        exc = exc.with_traceback(tb)
    return exc


def quiet_loop(loop: asyncio.AbstractEventLoop) -> None:
    """A task re-raises ``KeyboardInterrupt``/``SystemExit`` to its loop after storing
    it as the task's exception; Pyodide's webloop would turn that into an uncaught error
    of the worker.  The execution reports it from the task, so the loop ignores it."""
    if hasattr(loop, "_keyboard_interrupt_handler"):
        loop._keyboard_interrupt_handler = lambda: None
    if hasattr(loop, "_system_exit_handler"):
        loop._system_exit_handler = lambda code=None: None


def _request(execution: Execution) -> PageRequest | None:
    req = execution.state
    return req if isinstance(req, PageRequest) else None


def unpack_answer(execution: Execution, text: Any) -> Any:
    """The value of a ``host_result`` (JSON text), or raise its error."""
    if text is None:
        raise RuntimeError("the page did not answer the host call")
    answer = json.loads(str(text))
    if not isinstance(answer, dict):
        raise RuntimeError("malformed host_result")
    req = _request(execution)
    if answer.get("interrupt") or (req is not None and req.interrupting):
        # (An interrupt that came while the answer was on its way wins over it.)
        if req is not None:
            req.interrupting = False
        exc = execution.interrupt_exc or KeyboardInterrupt
        raise exc()
    if answer.get("ok") is True:
        # ``value_json``: the value as the JSON text its host wrote (the Deno host passes
        # on what Python's json wrote, so that 2.0 stays a float on its way here).
        raw = answer.get("value_json")
        return codec.decode(json.loads(raw) if isinstance(raw, str) else answer.get("value"))
    error = answer.get("error")
    if not isinstance(error, dict):
        error = {}
    raise HostError(str(error.get("message", "")), type=str(error.get("type") or "Error"))


