"""MontyRuntime: the object an application holds, one per conversation.

It owns the host functions and extensions, the sandbox switch and the limits, and a
:class:`~monty_runtime.bridge.PlatformBridge` (shared mode) or a fresh bridge per call
(``sandbox=True``).  It adds no queue: a busy shared runtime rejects ``execute()`` with
``StateError("Bridge is already executing")`` -- see :mod:`monty_runtime.tools` for the
three consumer policies.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import Any, Literal

from ._names import check_function_names, is_identifier
from .bridge import Execution, PlatformBridge, check_code
from .errors import StateError
from .events import Event, ExecutionResult, Print, RunStarted
from .extensions import Extension, HostFunction
from .limits import Limits

__all__ = ["ExecutionHandle", "MontyRuntime"]

DISPOSED_MESSAGE = "MontyRuntime has been disposed"
#: ``MontyRuntime(backend=...)``: where executed code runs.
BACKENDS = ("native", "deno")


class EventStream:
    """A single-consumer async stream of events, fed on one event loop.

    When the consumer lags, adjacent ``print`` events of one stream are merged, so a
    print flood costs memory in proportion to its text (which ``max_output_bytes``
    bounds), not to the number of writes.
    """

    __slots__ = ("_buffer", "_closed", "_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._buffer: deque[Event] = deque()
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._loop = loop

    def push(self, event: Event) -> None:
        if self._closed:
            return
        buf = self._buffer
        if buf and isinstance(event, Print):
            last = buf[-1]
            if (
                isinstance(last, Print)
                and last.stream == event.stream
                and last.execution_id == event.execution_id
            ):
                buf.pop()
                event = Print(last.execution_id, last.stream, last.text + event.text)
        buf.append(event)
        self._wake()

    def close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            loop = waiter.get_loop()
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                waiter.set_result(None)
            else:
                loop.call_soon_threadsafe(_set_if_pending, waiter)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._buffer.popleft()

    def drain(self) -> list[Event]:
        """What is buffered now (non-blocking)."""
        out = list(self._buffer)
        self._buffer.clear()
        return out


def _set_if_pending(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _native_state(loop: asyncio.AbstractEventLoop) -> Any:
    from ._native import NativeState

    return NativeState(loop)


class ExecutionHandle:
    """What ``execute()`` returns at once: ``events`` (an async stream of this
    execution's events, ending after ``run_finished``/``run_error``) and ``result`` (an
    awaitable :class:`ExecutionResult`).  ``await handle`` is ``await handle.result``.

    Not reading ``events`` is fine: they are buffered (bounded by the output limit)
    and dropped with the handle.  Cancelling a task that awaits ``result`` interrupts
    the execution; the runtime's guard is released as soon as the code has stopped.
    """

    __slots__ = ("_execution", "_future", "events", "execution_id", "released")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.events = EventStream(loop)
        self._future: asyncio.Future[ExecutionResult] = loop.create_future()
        #: Done when the execution is over and the runtime's guard released, even if
        #: ``result`` was cancelled by its awaiting task (the code stops a little later).
        self.released: asyncio.Future[None] = loop.create_future()
        self._execution: Execution | None = None
        self.execution_id = ""

    @property
    def finished(self) -> asyncio.Future[None]:
        """Deprecated name of :attr:`released` (one word, one meaning: "finished" is the
        ``run_finished`` event); kept working."""
        warnings.warn("ExecutionHandle.finished is deprecated: use ExecutionHandle.released",
                      DeprecationWarning, stacklevel=2)
        return self.released

    @property
    def result(self) -> asyncio.Future[ExecutionResult]:
        """Resolves to the :class:`ExecutionResult`; rejects only on infrastructure
        failures (``StateError``)."""
        return self._future

    def __await__(self) -> Generator[Any, None, ExecutionResult]:
        return self._future.__await__()

    def interrupt(self) -> None:
        """Raise ``KeyboardInterrupt`` in this execution's code, if it is still running."""
        if self._execution is not None:
            self._execution.interrupt(KeyboardInterrupt)

    # wiring -------------------------------------------------------------------------

    def _bind(self, execution: Execution) -> None:
        self._execution = execution
        self.execution_id = execution.id
        self._future.add_done_callback(self._on_done)

    def _on_done(self, fut: asyncio.Future[ExecutionResult]) -> None:
        # The awaiting task was cancelled: stop the code too (the guard is released when
        # it has stopped, or when the timeout's grace gives up on it).
        if fut.cancelled() and self._execution is not None:
            self._execution.interrupt(KeyboardInterrupt)

    def _resolve(self, result: ExecutionResult) -> None:
        if not self._future.done():
            if result.error is not None and result.error.type == "StateError":
                self._future.set_exception(StateError(result.error.message, "broken"))
            else:
                self._future.set_result(result)
        self.events.close()
        if not self.released.done():
            self.released.set_result(None)

    def _reject(self, error: BaseException) -> None:
        if not self._future.done():
            self._future.set_exception(error)
            # Mark it retrieved: a caller that only reads events must not get
            # "exception was never retrieved" noise.
            self._future.exception()
        self.events.close()
        if not self.released.done():
            self.released.set_result(None)


def _build_functions(
    functions: Iterable[Callable[..., Any] | HostFunction], extensions: Iterable[Extension]
) -> tuple[list[HostFunction], list[Extension]]:
    if isinstance(functions, str | bytes) or not isinstance(functions, Iterable):
        raise TypeError("functions must be a list of callables")
    if isinstance(extensions, str | bytes) or not isinstance(extensions, Iterable):
        raise TypeError("extensions must be a list of Extension instances")
    out: list[HostFunction] = []
    for fn in functions:
        hf = HostFunction.from_callable(fn)
        if "." in hf.name:  # dotted names are an extension's (namespace.name)
            raise ValueError(f"host function name {hf.name!r} is not a Python identifier")
        out.append(hf)
    exts = list(extensions)
    spaces: set[str] = set()
    for ext in exts:
        if not isinstance(ext, Extension):
            raise TypeError(f"extensions must be Extension instances, got {type(ext).__name__}")
        fns = ext.host_functions()
        ns = ext.namespace
        if ns in spaces or any(hf.name == ns for hf in out):
            raise ValueError(f"extension namespace {ns!r} clashes with another name")
        spaces.add(ns)
        out.extend(fns)
    # One rule for names (_names.py, as in the browser): identifiers, unique, and no
    # namespace that is also a function's name.
    check_function_names(hf.name for hf in out)
    return out, exts


class MontyRuntime:
    """A stateful Python runtime for one conversation.

    ``functions`` (plain callables, sync or async, or :class:`HostFunction`) and
    ``extensions`` become callable from executed code; ``sandbox=True`` gives every
    ``execute()`` a fresh REPL (so parallel calls work and nothing persists);
    ``limits`` applies to every call (a call may pass its own).

    ``backend``: ``"native"`` (default) runs the code in CPython threads with the host
    process's privileges -- for trusted code; ``"deno"`` runs it in Pyodide in a
    locked-down Deno worker (no files, network, environment or processes) behind the
    same contract -- for untrusted code on servers (:mod:`monty_runtime._deno`).
    """

    def __init__(
        self,
        functions: Iterable[Callable[..., Any] | HostFunction] = (),
        extensions: Iterable[Extension] = (),
        *,
        sandbox: bool | Literal["isolated"] = False,
        limits: Limits | dict[str, Any] | None = None,
        backend: str = "native",
    ) -> None:
        if backend not in BACKENDS:
            choices = ", ".join(map(repr, BACKENDS))
            raise ValueError(f"backend must be one of {choices}, got {backend!r}")
        if not isinstance(sandbox, bool) and sandbox != "isolated":
            raise TypeError(f'sandbox must be a bool or "isolated", got {sandbox!r}')
        self._functions, self._extensions = _build_functions(functions, extensions)
        #: Natively, ``"isolated"``: every execute() in a fresh subprocess (_isolated.py);
        #: on the Deno backend the JS host gives each execute() a fresh worker.
        self.isolated = sandbox == "isolated" and backend == "native"
        if self.isolated and self._extensions:
            raise TypeError('extensions are not supported with sandbox="isolated" natively; '
                            "pass their functions as plain functions")
        self.sandbox: bool | Literal["isolated"] = sandbox
        self.limits = Limits.coerce(limits)
        if not self.isolated and backend == "native":
            _check_native_memory(self.limits)
        self._bridge: PlatformBridge | None = None
        self._disposed = False
        self._attached: list[Extension] | None = None
        self._attach_lock = threading.Lock()
        self._running: set[ExecutionHandle] = set()
        self._subscribers: list[EventStream] = []
        self._sync_loop: asyncio.AbstractEventLoop | None = None
        self.backend = backend
        self._attach_tasks: set[asyncio.Future[Any]] = set()
        self._remote: Any = None
        if backend == "deno":
            from ._deno import DenoBackend

            self._remote = DenoBackend(self._functions, sandbox, self.limits)
            # A runtime dropped without dispose() still frees its worker (and, with the
            # last one, the JS host process).
            weakref.finalize(self, self._remote.dispose)

    # -- introspection ------------------------------------------------------------------

    @property
    def schemas(self) -> list[dict[str, Any]]:
        """OpenAI-style descriptions (``name``, ``description``, ``parameters``) of every
        host function, as executed code calls them."""
        return [hf.to_schema() for hf in self._functions]

    @property
    def functions(self) -> list[HostFunction]:
        return list(self._functions)

    @property
    def disposed(self) -> bool:
        return self._disposed

    @property
    def is_executing(self) -> bool:
        """True while a shared-mode execution holds the bridge."""
        if self._remote is not None:
            return bool(self._remote.is_executing)
        return self._bridge is not None and self._bridge.is_executing

    @property
    def events(self) -> EventStream:
        """A new stream of every execution's events from now on (ends at dispose)."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        stream = EventStream(loop)
        if self._disposed:
            stream.close()
        else:
            self._subscribers.append(stream)
        return stream

    # -- execution ----------------------------------------------------------------------

    def _platform(self) -> Any:
        from ._native import native_platform  # (ctypes: imported on first use)

        return native_platform

    def _new_bridge(self) -> PlatformBridge:
        bridge = PlatformBridge(self._platform(), self._functions, self.limits)
        return bridge

    def execute(
        self,
        code: str,
        *,
        script_name: str | None = None,
        inputs: dict[str, Any] | None = None,
        limits: Limits | dict[str, Any] | None = None,
    ) -> ExecutionHandle:
        """Start running ``code``; returns an :class:`ExecutionHandle` at once.

        Raises ``StateError`` at the call when the shared REPL is busy (``"Bridge is
        already executing"``) or the runtime is disposed; ``TypeError``/``ValueError``
        for bad input.  Needs a running event loop (use :meth:`execute_sync` from sync
        code).
        """
        if self._disposed:
            raise StateError(DISPOSED_MESSAGE, "disposed")
        check_code(code)
        if not self.sandbox and self._bridge is not None:
            # Busy first, whoever calls (a sync host function runs off the loop): the
            # bridge takes its guard atomically below; this only picks the message.
            self._bridge.check_ready()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise StateError(
                "execute() needs a running asyncio event loop; use execute_sync() from "
                "synchronous code",
                "busy",
            ) from None
        call_limits = self.limits if limits is None else Limits.coerce(limits).inherit(self.limits)
        if self._remote is not None:
            return self._execute_remote(loop, code, script_name, inputs, call_limits, limits)
        if self.isolated:
            return self._execute_isolated(loop, code, script_name, inputs, call_limits)
        _check_native_memory(call_limits)
        if self.sandbox:
            bridge = self._new_bridge()
        elif self._bridge is not None:
            bridge = self._bridge
        else:
            bridge = self._bridge = self._new_bridge()
        handle = ExecutionHandle(loop)
        subscribers = self._subscribers
        stream = handle.events

        if subscribers:

            def on_event(event: Event) -> None:
                stream.push(event)
                for sub in subscribers:
                    sub.push(event)
        else:
            on_event = stream.push

        def on_complete(result: ExecutionResult) -> None:
            self._running.discard(handle)
            if self.sandbox:
                bridge.dispose()
            handle._resolve(result)

        ex = bridge.execute(
            code,
            on_event=on_event,
            on_complete=on_complete,
            script_name=script_name,
            inputs=inputs,
            limits=call_limits,
            state=_native_state(loop),
            prelude=self._attach_from_code_thread
            if self._attached is None and self._extensions
            else None,
        )
        handle._bind(ex)
        self._running.add(handle)
        return handle

    def _execute_remote(
        self,
        loop: asyncio.AbstractEventLoop,
        code: str,
        script_name: str | None,
        inputs: dict[str, Any] | None,
        call_limits: Limits,
        limits: Limits | dict[str, Any] | None,
    ) -> ExecutionHandle:
        if inputs is not None and not isinstance(inputs, dict):
            raise TypeError("inputs must be a dict whose keys are Python identifiers")
        for key in inputs or ():
            if not isinstance(key, str) or not is_identifier(key):
                raise TypeError(f"inputs keys must be Python identifiers, got {key!r}")
        handle = ExecutionHandle(loop)
        subscribers = self._subscribers
        stream = handle.events

        def on_event(event: Event) -> None:
            stream.push(event)
            for sub in subscribers:
                sub.push(event)

        self._remote.execute(
            handle,
            code,
            on_event=on_event,
            on_done=lambda: self._running.discard(handle),
            script_name=script_name,
            inputs=inputs,
            limits=None if limits is None else call_limits,
        )
        self._running.add(handle)
        if self._attached is None and self._extensions:
            self._attach_remote()
        return handle

    def _attach_remote(self) -> None:
        """``on_attach`` of every extension, once, at the first execution (the code runs
        in the worker; an async hook runs as a task on the caller's loop)."""
        attached: list[Extension] = []
        for ext in self._extensions:
            out = ext.on_attach(self)
            if asyncio.iscoroutine(out):
                self._attach_tasks.add(task := asyncio.ensure_future(out))
                task.add_done_callback(self._attach_tasks.discard)
            attached.append(ext)
        self._attached = attached

    def _execute_isolated(self, loop: asyncio.AbstractEventLoop, code: str,
                          script_name: str | None, inputs: dict[str, Any] | None,
                          limits: Limits) -> ExecutionHandle:
        from ._isolated import start_isolated

        handle = ExecutionHandle(loop)
        subscribers = self._subscribers
        stream = handle.events

        def on_event(event: Event) -> None:
            if isinstance(event, RunStarted):
                handle.execution_id = event.execution_id
            stream.push(event)
            for sub in subscribers:
                sub.push(event)

        def on_complete(result: ExecutionResult) -> None:
            self._running.discard(handle)
            handle._resolve(result)

        ex = start_isolated(code, functions=self._functions, limits=limits,
                            script_name=script_name, inputs=inputs,
                            on_event=on_event, on_complete=on_complete)
        handle._execution = ex  # type: ignore[assignment]  # interrupt() goes to the child
        self._running.add(handle)
        return handle

    def _attach_from_code_thread(self) -> None:
        """Run ``on_attach`` of every extension once, before the first execution's code,
        in the code's thread (so a slow attach never blocks the caller's loop)."""
        with self._attach_lock:
            if self._attached is not None:
                return
            from .bridge import current_execution

            ex = current_execution.get()
            assert ex is not None
            attached: list[Extension] = []
            for ext in self._extensions:
                try:
                    out = ext.on_attach(self)
                    if asyncio.iscoroutine(out):
                        asyncio.run_coroutine_threadsafe(out, ex.state.loop).result()
                except Exception as exc:
                    self._attached = None
                    self._dispose_extensions(attached)
                    raise StateError(
                        f"extension {type(ext).__name__} ({ext.namespace}) failed to attach: "
                        f"{type(exc).__name__}: {exc}",
                        "broken",
                    ) from exc
                attached.append(ext)
            self._attached = attached

    async def run(self, code: str, **options: Any) -> ExecutionResult:
        """``await runtime.execute(code, **options).result``."""
        return await self.execute(code, **options).result

    def execute_sync(self, code: str, **options: Any) -> ExecutionResult:
        """Run ``code`` to completion from synchronous code and return the result.

        Raises ``RuntimeError`` when called from a running event loop (that would block
        it: use ``await runtime.execute(code).result`` there)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "execute_sync() called from a running event loop; use "
                "`await runtime.execute(code).result` instead"
            )
        if self._disposed:
            raise StateError(DISPOSED_MESSAGE, "disposed")
        loop = self._sync_loop
        if loop is None or loop.is_closed():
            loop = self._sync_loop = asyncio.new_event_loop()
        return loop.run_until_complete(self.run(code, **options))

    def interrupt(self) -> bool:
        """Raise ``KeyboardInterrupt`` in the running shared-mode execution (globals are
        kept).  Returns whether one was running.  In sandbox mode, interrupts them all."""
        if self._remote is not None:
            return bool(self._remote.interrupt())
        if self.sandbox:
            for handle in list(self._running):
                handle.interrupt()
            return bool(self._running)
        return self._bridge is not None and self._bridge.interrupt()

    # -- lifecycle ----------------------------------------------------------------------

    def dispose(self) -> _Disposal:
        """Dispose the runtime; idempotent.  Running executions are interrupted and their
        results reject with ``StateError("MontyRuntime has been disposed")``; extensions'
        ``on_dispose`` run in reverse order of attachment.  Later ``execute()`` raises
        ``StateError``.  The returned object may be awaited to wait for async
        ``on_dispose`` hooks; errors of hooks are raised together as an
        ``ExceptionGroup`` (by ``dispose()`` itself for sync hooks, or when awaited)."""
        if self._disposed:
            return _Disposal(None)
        self._disposed = True
        error = StateError(DISPOSED_MESSAGE, "disposed")
        if self._remote is not None:
            self._remote.dispose()
        if self._bridge is not None:
            self._bridge.dispose()
        for handle in list(self._running):
            ex = handle._execution
            if ex is not None and not ex.completed and self._remote is None:
                ex.bridge.dispose()
            handle._reject(error)
        self._running.clear()
        for sub in self._subscribers:
            sub.close()
        self._subscribers.clear()
        if self._sync_loop is not None and not self._sync_loop.is_running():
            self._sync_loop.close()
        attached, self._attached = self._attached or [], []
        pending = self._dispose_extensions(attached)
        return _Disposal(pending)

    def _dispose_extensions(self, attached: list[Extension]) -> Awaitable[None] | None:
        errors: list[Exception] = []
        coros: list[Any] = []
        for ext in reversed(attached):
            try:
                out = ext.on_dispose(self)
                if asyncio.iscoroutine(out):
                    coros.append(out)
            except Exception as exc:
                errors.append(exc)
        if coros:
            async def finish() -> None:
                for coro in coros:
                    try:
                        await coro
                    except Exception as exc:
                        errors.append(exc)
                if errors:
                    raise ExceptionGroup("extension on_dispose failed", errors)

            try:
                asyncio.get_running_loop()
            except RuntimeError:
                asyncio.run(finish())
                return None
            return asyncio.ensure_future(finish())
        if errors:
            raise ExceptionGroup("extension on_dispose failed", errors)
        return None

    async def __aenter__(self) -> MontyRuntime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.dispose()

    def __enter__(self) -> MontyRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def __repr__(self) -> str:
        state = "disposed" if self._disposed else ("busy" if self.is_executing else "idle")
        mode = "sandbox" if self.sandbox else "shared"
        if self._remote is not None:
            mode += " deno"
        return f"<MontyRuntime {mode} {state} functions={len(self._functions)}>"


NATIVE_MEMORY_MESSAGE = (
    "Limits.memory cannot be enforced for native in-process execution: the code shares "
    "the host process's heap, and no per-runtime cap on it exists in CPython (see "
    "docs/isolation.md). Use the browser worker backend (limits: {memory}) for a hard cap."
)


def _check_native_memory(limits: Limits) -> None:
    """A memory cap this backend cannot honour is refused, never silently ignored."""
    if limits.memory is not None:
        raise NotImplementedError(NATIVE_MEMORY_MESSAGE)


class _Disposal:
    """Returned by :meth:`MontyRuntime.dispose`: awaiting it waits for async hooks."""

    __slots__ = ("_pending",)

    def __init__(self, pending: Awaitable[None] | None) -> None:
        self._pending = pending

    def __await__(self) -> Generator[Any, None, None]:
        if self._pending is not None:
            yield from self._pending.__await__()  # type: ignore[attr-defined]

