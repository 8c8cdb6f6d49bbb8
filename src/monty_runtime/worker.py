"""The Pyodide side of the browser backend, imported by ``web/worker.js``.

One Web Worker holds one :class:`WorkerSession`: a :class:`PyodidePlatform` under the
shared :class:`~monty_runtime.bridge.PlatformBridge` (one bridge for a shared-mode
runtime, a fresh bridge per ``execute`` in sandbox mode).  The busy guard is the
bridge's own: an ``execute`` that reaches the worker while another is still running
(awaiting a host call or ``asyncio.sleep``) is refused by ``PlatformBridge.execute``
with ``StateError("Bridge is already executing")`` and posted as ``rejected``.

The worker has a single thread, so "off the caller's loop" means "on the worker's own
thread": the page's event loop is never blocked.  A host function called sync-style
(``x = f(1)``) blocks on the page's answer with JSPI (``pyodide.ffi.run_sync``; the
page message that started the execution entered Python through ``callPromising``), or
else with ``Atomics.wait`` on a SharedArrayBuffer when the page is cross-origin
isolated, or else fails with a ``TypeError`` that says to ``await`` it.

JavaScript hands :func:`start` a ``hooks`` object (see :class:`Hooks`); messages leave as
JSON text through ``hooks.post``.  No Python source is ever built from data.

The module imports in CPython too (``js``/``pyodide`` are imported lazily), so its
logic is unit-tested without a browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import itertools
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from . import _lockdown, _wire, codec
from ._control import Control, PrintBatcher
from ._names import check_function_names, is_identifier
from .bridge import Execution, PlatformBridge, current_execution
from .errors import HostError, StateError
from .events import CallStarted, Event, ExecutionResult, Print, RunError, RunFinished
from .extensions import HostFunction
from .limits import Limits
from .protocol import PROTOCOL_VERSION, check_message
from .repl import is_internal_frame

__all__ = [
    "SYNC_MODES",
    "Hooks",
    "PyodidePlatform",
    "WorkerSession",
    "dispose",
    "handle",
    "handle_execute",
    "interrupt",
    "start",
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


class _Request:
    """Platform data of one execution (``Execution.host``): the page's request id and
    the host calls it waits for."""

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


def _loop() -> asyncio.AbstractEventLoop:
    # Pyodide's webloop is always the running loop of the worker.
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.get_event_loop()


_can_run_sync: Callable[[], bool] | None = None


def _jspi_available() -> bool:
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
        self.sync = sync
        self.sync_buffer = sync_buffer
        #: What the worker detected (worker.js capabilities()): jspi, sharedArrayBuffer,
        #: crossOriginIsolated; used to say accurately why a sync-style call cannot block.
        self.capabilities: dict[str, Any] = dict(capabilities or {})
        self._call_ids = itertools.count(1)
        #: >0 while the code blocks in a sync-style host call (JSPI or Atomics): the
        #: control channel's signal handler must not call into JavaScript then.
        self.blocking = 0

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
            if not execution.completed:
                bridge = execution.bridge
                if not execution.finished:
                    bridge._stop(execution, bridge.repl, None, exc)
                else:
                    from .errors import ScriptError

                    bridge._complete(
                        execution,
                        ExecutionResult(
                            error=ScriptError("InternalError", f"{type(exc).__name__}: {exc}"),
                            execution_id=execution.id,
                        ),
                    )

    def to_host(self, execution: Execution, fn: Callable[[], None]) -> None:
        fn()

    def call_later(self, execution: Execution, delay: float, fn: Callable[[], None]) -> Any:
        return _loop().call_later(delay, fn)

    def run_coroutine(
        self, execution: Execution, coro: Any, done: Callable[[Any, BaseException | None], None]
    ) -> None:
        task = _loop().create_task(coro)
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

    def finished(self, execution: Execution) -> None:
        # The code stopped: the runtime's own work from here (its result) may use the
        # memory cap's reserve (web/memory-cap.js), even if the code filled the heap.
        open_reserve = getattr(self.hooks, "memoryReserve", None)
        if open_reserve is not None:
            with contextlib.suppress(Exception):
                open_reserve()
        # Tasks the code started and left behind stop with it (natively they die with
        # the execution's own event loop).
        try:
            tasks = asyncio.all_tasks(_loop())
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

    def _post_call(self, execution: Execution, fn: HostFunction, args: list[Any],
                   kwargs: dict[str, Any], sync: bool) -> int:
        req = _request(execution)
        call_id = next(self._call_ids)
        wire = execution.call_wire
        execution.call_wire = None
        if wire is None:
            wire = (codec.encode(args), codec.encode(kwargs))
        text = _dumps({
            "type": "host_call",
            "id": call_id,
            "execution": None if req is None else req.rid,
            "name": fn.name,
            "args": wire[0],
            "kwargs": wire[1],
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
        if mode in ("auto", "jspi") and _jspi_available():
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

    def host_sync(self, execution: Execution, fn: HostFunction, args: list[Any],
                  kwargs: dict[str, Any]) -> Any:
        mode = self._sync_mode()
        if mode == "none":
            raise TypeError(
                f"{fn.name}() cannot be called synchronously here ({self._why_not_sync()}); "
                f"use `await {fn.name}(...)` inside async code"
            )
        req = _request(execution)
        if mode == "jspi":
            call_id = self._post_call(execution, fn, args, kwargs, False)
            promise = self.hooks.promise(call_id)
            if req is not None:
                req.calls.add(call_id)
            self.blocking += 1
            try:
                text = _run_sync(promise)
            finally:
                self.blocking -= 1
                if req is not None:
                    req.calls.discard(call_id)
        else:
            call_id = self._post_call(execution, fn, args, kwargs, True)
            self.blocking += 1
            try:
                text = self._wait_sync(call_id)
            finally:
                self.blocking -= 1
        return _unpack(execution, text)

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

    def host_async(self, execution: Execution, fn: HostFunction, args: list[Any],
                   kwargs: dict[str, Any]) -> Awaitable[Any]:
        call_id = self._post_call(execution, fn, args, kwargs, False)
        promise = self.hooks.promise(call_id)
        req = _request(execution)
        if req is not None:
            req.calls.add(call_id)
        return self._answer(execution, req, call_id, promise)

    @staticmethod
    async def _answer(execution: Execution, req: _Request | None, call_id: int,
                      promise: Any) -> Any:
        try:
            text = await promise
        finally:
            if req is not None:
                req.calls.discard(call_id)
        return _unpack(execution, text)


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


def _quiet_loop(loop: asyncio.AbstractEventLoop) -> None:
    """A task re-raises ``KeyboardInterrupt``/``SystemExit`` to its loop after storing
    it as the task's exception; Pyodide's webloop would turn that into an uncaught error
    of the worker.  The execution reports it from the task, so the loop ignores it."""
    if hasattr(loop, "_keyboard_interrupt_handler"):
        loop._keyboard_interrupt_handler = lambda: None
    if hasattr(loop, "_system_exit_handler"):
        loop._system_exit_handler = lambda code=None: None


def _request(execution: Execution) -> _Request | None:
    req = execution.host
    return req if isinstance(req, _Request) else None


def _unpack(execution: Execution, text: Any) -> Any:
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


# -- host functions described by the page -----------------------------------------------

_OPEN_SIGNATURE = inspect.Signature([
    inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
    inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
])


class _PageFunction:
    """``HostFunction.fn`` of a function that lives in the page: calling it starts the
    call for the current execution and returns an awaitable of the answer."""

    __slots__ = ("__name__", "_platform", "name")

    def __init__(self, name: str, platform: PyodidePlatform) -> None:
        self.name = name
        self.__name__ = name.rpartition(".")[2]
        self._platform = platform

    def __call__(self, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        ex = current_execution.get()
        if ex is None:
            raise RuntimeError(f"{self.name}() can only be called while code is executing")
        hf = next(f for f in ex.bridge.functions if f.name == self.name)
        return self._platform.host_async(ex, hf, list(args), kwargs)


def host_function_from_schema(spec: Any, platform: PyodidePlatform) -> HostFunction:
    """A :class:`HostFunction` for a page function described as ``{name, description,
    parameters}``.  ``parameters`` (a JSON Schema object) checks every call in the
    worker; ``null`` accepts any arguments (a JS function given without a schema)."""
    if not isinstance(spec, dict):
        raise TypeError(f"a host function description must be an object, got {spec!r:.80}")
    name = spec.get("name")
    check_function_names([name])
    name = str(name)  # (checked: a str)
    description = spec.get("description") or ""
    if not isinstance(description, str):
        raise TypeError(f"description of {name} must be a string")
    params = spec.get("parameters")
    signature: inspect.Signature | None = None
    if params is None:
        params = {"type": "object", "properties": {}}
        signature = _OPEN_SIGNATURE
    elif not isinstance(params, dict) or not isinstance(params.get("properties", {}), dict):
        raise TypeError(f"parameters of {name} must be a JSON Schema object with properties")
    else:
        for key in params.get("properties", {}):
            if not is_identifier(key):
                raise ValueError(f"parameter {key!r} of {name} is not a Python identifier")
    return HostFunction(
        name=name,
        fn=_PageFunction(name, platform),
        description=description,
        parameters=params,
        signature=signature,
        is_async=True,
    )


# -- the session --------------------------------------------------------------------------

class WorkerSession:
    """Everything one worker holds: the platform, the host functions, the bridge (shared
    mode) and the executions in flight."""

    def __init__(self, hooks: Hooks, config: dict[str, Any]) -> None:
        version = config.get("version")
        if version != PROTOCOL_VERSION:
            raise ValueError(
                f"protocol version mismatch: page speaks {version!r}, worker "
                f"{PROTOCOL_VERSION}"
            )
        self.hooks = hooks
        caps = config.get("capabilities")
        self.platform = PyodidePlatform(
            hooks,
            str(config.get("sync") or "auto"),
            bool(config.get("syncBuffer")),
            caps if isinstance(caps, dict) else None,
        )
        with contextlib.suppress(RuntimeError):  # no loop yet (unit tests)
            _quiet_loop(_loop())
        functions = config.get("functions") or []
        if not isinstance(functions, list):
            raise TypeError("functions must be a list of {name, description, parameters}")
        self.functions = [host_function_from_schema(f, self.platform) for f in functions]
        check_function_names(f.name for f in self.functions)
        self.limits = Limits.coerce(config.get("limits"))
        self.sandbox = bool(config.get("sandbox"))
        self.bridge: PlatformBridge | None = None
        if not self.sandbox:
            self.bridge = PlatformBridge(self.platform, self.functions, self.limits)
        self.running: dict[Any, PlatformBridge] = {}  # rid -> bridge (for interrupt)
        # limits.memory per execution in flight, when a call has its own: worker.js
        # enforces the largest of them (the runtime's cap when there is none).
        self.memory_caps: dict[Any, int | None] = {}
        #: Tasks that existed when the first of the executions in flight started.
        self._tasks_before: set[asyncio.Task[Any]] | None = None
        self.disposed = False
        # Print batching per running request, and the control channel (signal handler
        # + shared ring; cross-origin isolated pages only): see _control.py.
        self.outboxes: dict[Any, PrintBatcher] = {}
        self.control: Control | None = None
        read_control = getattr(hooks, "control", None)
        if config.get("control") and read_control is not None:
            self.control = Control(self, read_control)
            self.control.install()

    def flush_output(self) -> None:
        """Post the print text held for the running executions."""
        for outbox in list(self.outboxes.values()):
            outbox.flush()

    def post(self, message: dict[str, Any]) -> None:
        self.hooks.post(_encode_message(message))

    def reject(self, rid: Any, name: str, message: str, reason: str | None = None) -> None:
        error: dict[str, Any] = {"name": name, "message": message}
        if reason is not None:
            error["reason"] = reason
        self.post({"type": "rejected", "id": rid, "error": error})

    # -- execute ------------------------------------------------------------------------

    def execute(
        self, rid: Any, code: Any, limits: Any = None, script_name: Any = None, inputs: Any = None
    ) -> None:
        """Start request ``rid``; every outcome is posted (``event``s then ``result``,
        or ``rejected``).  Never raises.  ``inputs``: the JSON text of a wire-form map
        (the page's ``execute(code, {inputs})``), decoded with the codec."""
        try:
            self._execute(rid, code, limits, script_name, inputs)
        except StateError as exc:
            self.reject(rid, "StateError", str(exc), exc.reason)
        except (TypeError, ValueError) as exc:
            self.reject(rid, type(exc).__name__, str(exc))
        except BaseException as exc:  # never leave the page waiting
            self.reject(rid, "InternalError", f"{type(exc).__name__}: {exc}")

    def _execute(self, rid: Any, code: Any, limits: Any, script_name: Any, inputs: Any) -> None:
        control = self.control
        if control is not None:
            control.install()
        if self.disposed:
            raise StateError("Bridge has been disposed", "disposed")
        if isinstance(limits, str):
            limits = json.loads(limits)
        call_limits = self.limits if limits is None else Limits.coerce(limits).inherit(self.limits)
        bound = _decode_inputs(inputs)
        if self.sandbox:
            bridge = PlatformBridge(self.platform, self.functions, call_limits)
        else:
            assert self.bridge is not None
            bridge = self.bridge
        post = self.hooks.post
        prefix = '{"type":"event","id":' + _dumps(rid) + ',"event":'
        running = self.running
        sandbox = self.sandbox
        last: list[dict[str, Any]] = []  # the final event, sent together with the result
        outbox = PrintBatcher(post, prefix)
        outboxes = self.outboxes

        req = _Request(rid)

        def on_event(event: Event) -> None:
            if type(event) is Print:
                outbox.add(event)
                return
            outbox.flush()
            text = prefix + _dumps(event.to_dict()) + "}"
            if req.held is not None:  # its host_call never left (the call failed first)
                post(req.held)
                req.held = None
            if type(event) is CallStarted:
                req.held = text  # leaves with its host_call (_post_call)
                return
            if isinstance(event, RunFinished | RunError):
                last.append(event.to_dict())  # the result follows at once
            else:
                post(text)

        def on_complete(result: ExecutionResult) -> None:
            self._memory_cap(rid, None, ended=True)
            if running.get(rid) is bridge:
                del running[rid]
                self._running_changed()
            if outboxes.get(rid) is outbox:
                del outboxes[rid]
            outbox.close()
            if req.held is not None:
                post(req.held)
                req.held = None
            if sandbox:
                bridge.dispose()
            message = result.to_dict()
            message["type"] = "result"
            message["id"] = rid
            limit = _message_limit(call_limits)
            texts = [prefix + _dumps(ev) + "}" for ev in last] + [_encode_message(message)]
            if sum(map(len, texts)) > limit:
                # A huge exception message or traceback: shortened, so that the page
                # (which cuts off a worker over its limits) gets the result.
                for d in [*last, message]:
                    _shorten_error(d)
                texts = [prefix + _dumps(ev) + "}" for ev in last] + [_encode_message(message)]
            post("[" + ",".join(texts) + "]" if len(texts) > 1 else texts[0])
            last.clear()

        running[rid] = bridge
        outboxes[rid] = outbox
        self._running_changed()
        try:
            bridge.execute(
                code,
                on_event=on_event,
                on_complete=on_complete,
                script_name=script_name,
                inputs=bound,
                limits=call_limits,
                host=req,
                prelude=self._cap_prelude(rid, call_limits.memory),
            )
        except BaseException:
            if running.get(rid) is bridge:
                del running[rid]
                self._running_changed()
            if outboxes.get(rid) is outbox:
                del outboxes[rid]
            raise

    def _cap_prelude(self, rid: Any, cap: int | None) -> Callable[[], None] | None:
        """What sets ``rid``'s memory cap as its code starts (None: nothing to set)."""
        if cap == self.limits.memory and not self.memory_caps:
            return None
        return lambda: self._memory_cap(rid, cap)

    def _memory_cap(self, rid: Any, cap: int | None, ended: bool = False) -> None:
        """Record ``rid``'s memory cap (or that it ended) and tell worker.js the
        effective one: the largest cap in flight, or the runtime's (``None``)."""
        caps = self.memory_caps
        if ended:
            if rid not in caps:
                return
            del caps[rid]
        else:
            caps[rid] = cap
        hook = getattr(self.hooks, "memoryCap", None)
        if hook is None:
            return
        values = [c for c in caps.values() if c is not None]
        hook(max(values) if values and len(values) == len(caps) else None)
    # -- background work ----------------------------------------------------------------

    def _running_changed(self) -> None:
        """Executions in flight changed.  When the first starts, remember the tasks that
        exist; when the last ends, everything the executions left running stops: the
        tasks created since (whatever their context: ``contextvars.Context().run(
        loop.create_task, ...)`` escapes ``PyodidePlatform.finished``), and the timers
        Python code set through ``js.setTimeout``/``setInterval`` (``worker.js`` clears
        them and refuses new ones until the next execution; ``hooks.running``)."""
        count = len(self.running)
        if count == 1 and self._tasks_before is None:
            try:
                self._tasks_before = set(asyncio.all_tasks(_loop()))
            except Exception:
                self._tasks_before = set()
        tell = getattr(self.hooks, "running", None)
        if tell is not None:
            with contextlib.suppress(Exception):
                tell(count)
        if count == 0:
            before = self._tasks_before or set()
            self._tasks_before = None
            try:
                tasks = asyncio.all_tasks(_loop())
            except Exception:
                return
            try:
                current = asyncio.current_task()
            except RuntimeError:
                current = None
            for task in tasks:
                if task not in before and task is not current and not task.done():
                    task.cancel()

    # -- control ------------------------------------------------------------------------

    def interrupt(self, rid: Any = None) -> None:
        """Interrupt the running execution(s), or only request ``rid``'s."""
        for key, bridge in list(self.running.items()):
            if rid is None or key == rid:
                if self.control is not None and rid is not None:
                    self.control.interrupt(key, ring=False)  # paired with its ring entry
                else:
                    bridge.interrupt()

    def dispose(self) -> None:
        if self.disposed:
            return
        self.disposed = True
        if self.bridge is not None:
            self.bridge.dispose()
        for bridge in list(self.running.values()):
            bridge.dispose()
        self.running.clear()

    def handle(self, message: Any) -> None:
        """Dispatch one page message (a dict, or its JSON text)."""
        if isinstance(message, str):
            try:
                message = json.loads(message)
            except ValueError as exc:
                self.reject(None, "ProtocolError", f"message is not JSON: {exc}")
                return
        problem = check_message("page_to_worker", message)
        rid = message.get("id") if isinstance(message, dict) else None
        if problem is not None:
            self.reject(rid, "ProtocolError", problem)
            return
        kind = message["type"]
        if kind == "execute":
            self.execute(
                rid, message["code"], message.get("limits"), message.get("scriptName"),
                message.get("inputs"),
            )
        elif kind == "interrupt":
            self.interrupt(rid)
        elif kind == "dispose":
            self.dispose()
        elif kind == "host_result":
            try:
                self.hooks.settle(int(message["id"]), _dumps(message))
            except Exception as exc:
                self.reject(rid, "ProtocolError", f"bad host_result: {exc}")
        else:  # "init" twice
            self.reject(rid, "ProtocolError", f"unexpected {kind} message")


#: Longest exception message / traceback kept in a result that would be over the page's
#: message limit otherwise.
_ERROR_CHARS = 100_000


def _message_limit(limits: Limits) -> int:
    """The page's default per-message limit for these limits (web/control.js
    messageLimitFor)."""
    return max(2**20, 12 * limits.max_output_bytes + 2 * limits.max_result_bytes + 2**20)


def _shorten_error(d: dict[str, Any]) -> None:
    error = d.get("error")
    if not isinstance(error, dict):
        return
    for key in ("message", "traceback"):
        text = error.get(key)
        if isinstance(text, str) and len(text) > _ERROR_CHARS:
            error[key] = text[:_ERROR_CHARS] + f"... [{len(text) - _ERROR_CHARS} characters cut]"


def _encode_message(message: dict[str, Any]) -> str:
    try:
        return _dumps(message)
    except (TypeError, ValueError) as exc:  # pragma: no cover - wire values are JSON
        return _dumps({"type": "log", "level": "error",
                       "message": f"cannot encode a {message.get('type')} message: {exc}"})


# -- entry points for worker.js -----------------------------------------------------------

_session: WorkerSession | None = None


def start(config: Any, hooks: Hooks) -> dict[str, Any]:
    """Create this worker's session from the ``init`` message (a dict or JSON text).
    Raises on a bad configuration (the worker reports it as a ``boot_error``)."""
    global _session
    if isinstance(config, str):
        config = json.loads(config)
    if not isinstance(config, dict):
        raise TypeError("init must be an object")
    if sys.platform == "emscripten":
        # Executed code cannot import js/pyodide/monty_runtime (defence in depth; see
        # _lockdown.py).  On before the first REPL exists.
        _lockdown.enable()
    _session = WorkerSession(hooks, config)
    return {"version": PROTOCOL_VERSION, "jspi": _jspi_available(),
            "importGuard": _lockdown.enabled()}


def _decode_inputs(inputs: Any) -> dict[str, Any] | None:
    """``execute``'s ``inputs``: JSON text (or the parsed wire value) of a map from
    Python identifiers to wire values; ``TypeError``/``ValueError`` when malformed (the
    page gets them as a rejection naming the problem)."""
    if inputs is None:
        return None
    try:
        value = codec.loads(inputs) if isinstance(inputs, str) else codec.decode(inputs)
    except codec.CodecError as exc:
        raise ValueError(f"inputs are not a codec wire value: {exc}") from None
    if not isinstance(value, dict):
        raise TypeError(f"inputs must be an object, got {type(value).__name__}")
    return value


def _current() -> WorkerSession:
    if _session is None:
        raise RuntimeError("monty_runtime.worker.start() was not called")
    return _session


def handle_execute(
    rid: Any, code: Any, limits: Any = None, script_name: Any = None, inputs: Any = None
) -> None:
    """The hot path: one ``execute`` message, fields passed as values."""
    _current().execute(rid, code, limits, script_name, inputs)


def handle(message: Any) -> None:
    """Any page message (a dict, or its JSON text)."""
    _current().handle(message)


def interrupt(rid: Any = None) -> None:
    _current().interrupt(rid)


def dispose() -> None:
    _current().dispose()
