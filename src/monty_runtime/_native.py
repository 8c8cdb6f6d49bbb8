"""The native CPython platform: executed code runs in a thread of a pool, off the
caller's event loop; host calls go back to that loop; interrupts are asynchronous
exceptions raised in the code's thread.

This is the only module that uses CPython-specific machinery (``ctypes`` and
``PyThreadState_SetAsyncExc``); the Pyodide worker has its own platform.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from .bridge import Execution, HostCall, current_execution

__all__ = ["NativePlatform", "NativeState", "native_platform"]

_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = [ctypes.c_ulong, ctypes.py_object]
_set_async_exc.restype = ctypes.c_int
# The same C function, declared so that ``None`` passes NULL (which clears a pending
# asynchronous exception) rather than ``Py_None``.
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)

class _Workers:
    """A minimal thread pool for executions: an idle thread waits on its own queue, a
    job goes to the most recently idle thread (warm caches) or to a new thread.

    Cheaper than ``ThreadPoolExecutor`` on the hot path (no Future, no work-item
    bookkeeping): the hand-off is one ``SimpleQueue.put``.  Idle threads beyond
    ``keep`` exit after ``idle_timeout`` seconds.
    """

    def __init__(self, keep: int = 4, idle_timeout: float = 30.0) -> None:
        self._idle: list[queue.SimpleQueue[Callable[[], None] | None]] = []
        self._lock = threading.Lock()
        self._keep = keep
        self._idle_timeout = idle_timeout
        self._count = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            self._count += 1
            threading.Thread(
                target=self._run, args=(inbox,), name=f"monty-exec-{self._count}", daemon=True
            ).start()
        inbox.put(job)

    def _run(self, inbox: queue.SimpleQueue[Callable[[], None] | None]) -> None:
        while True:
            try:
                job = inbox.get(timeout=self._idle_timeout)
            except queue.Empty:
                with self._lock:
                    if len(self._idle) > self._keep and inbox in self._idle:
                        self._idle.remove(inbox)
                        return
                continue
            if job is None:
                return
            try:
                job()
            except BaseException:
                pass
            with self._lock:
                self._idle.append(inbox)


_workers = _Workers()


class NativeState:
    """The native platform's state of one execution (``Execution.state``)."""

    __slots__ = ("cell_loop", "loop", "thread_id", "waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        #: The caller's loop: host functions and the execution's events run there.
        self.loop = loop
        #: The thread that runs the code (set when it starts).
        self.thread_id: int | None = None
        #: The sync host call the code blocks on, if any.
        self.waiting: concurrent.futures.Future[Any] | None = None
        #: The cell's own event loop while a cell with top-level ``await`` runs.
        self.cell_loop: asyncio.AbstractEventLoop | None = None


def _state(ex: Execution) -> NativeState:
    state = ex.state
    if not isinstance(state, NativeState):  # pragma: no cover - a wiring error
        raise TypeError(f"execution {ex.id} has no native state: {state!r}")
    return state


class NativePlatform:
    """See :class:`monty_runtime.bridge.Platform`.  Stateless: the caller's loop travels
    with each execution (``NativeState``), so one runtime may be used from
    ``execute_sync`` (a private loop per call) and from async code alike."""

    def submit(self, execution: Execution, job: Callable[[], None]) -> None:
        state = _state(execution)

        def run() -> None:
            state.thread_id = threading.get_ident()
            try:
                job()
            except BaseException as exc:
                # An interrupt that landed in the runtime's own code after the user's
                # code had stopped: report it rather than lose the result.
                self._disarm(execution)
                execution.bridge.fail(execution, exc)
            finally:
                self._disarm(execution)

        _workers.submit(run)

    def to_host(self, execution: Execution, fn: Callable[[], None]) -> None:
        loop = _state(execution).loop
        try:
            loop.call_soon_threadsafe(fn)
        except RuntimeError:  # the caller's loop is closed: nobody is listening
            pass

    def call_later(self, execution: Execution, delay: float, fn: Callable[[], None]) -> Any:
        return _state(execution).loop.call_later(delay, fn)

    def run_coroutine(
        self, execution: Execution, coro: Any, done: Callable[[Any, BaseException | None], None]
    ) -> None:
        state = _state(execution)
        loop = asyncio.new_event_loop()
        state.cell_loop = loop
        value: Any = None
        error: BaseException | None = None
        try:
            task = loop.create_task(coro)
            try:
                value = loop.run_until_complete(task)
            except BaseException as exc:
                error = exc
            self._disarm(execution)
            _cancel_all(loop)
        finally:
            state.cell_loop = None
            loop.close()
        done(value, error)

    def host_sync(self, execution: Execution, call: HostCall) -> Any:
        fn, args, kwargs = call.fn, call.args, call.kwargs
        state = _state(execution)
        if not fn.is_async:
            result = fn.fn(*args, **kwargs)
            if not asyncio.iscoroutine(result):
                return result
            coro = result
        else:
            coro = fn.fn(*args, **kwargs)
        future = asyncio.run_coroutine_threadsafe(coro, state.loop)
        with execution.lock:
            if execution.interrupt_exc is not None and not execution.stopped:
                future.cancel()
                raise execution.interrupt_exc()
            state.waiting = future
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            exc = execution.interrupt_exc
            if exc is not None:
                raise exc() from None
            raise
        finally:
            with execution.lock:
                state.waiting = None

    def host_async(self, execution: Execution, call: HostCall) -> Awaitable[Any]:
        fn, args, kwargs = call.fn, call.args, call.kwargs
        if not fn.is_async:
            from .bridge import _Resolved

            try:
                result = fn.fn(*args, **kwargs)
            except BaseException as exc:
                return _Resolved(exc=exc)
            if not asyncio.iscoroutine(result):
                return _Resolved(result)
            coro = result
        else:
            coro = fn.fn(*args, **kwargs)
        future = asyncio.run_coroutine_threadsafe(coro, _state(execution).loop)
        return asyncio.wrap_future(future)

    def interrupt(self, execution: Execution, exc: type[BaseException]) -> None:
        state = _state(execution)
        with execution.lock:
            if execution.stopped:
                return
            waiting = state.waiting
            if waiting is not None:
                # Blocked in a sync host call: fail the wait instead of raising into C.
                waiting.cancel()
                return
            if state.thread_id is not None:
                _set_async_exc(state.thread_id, exc)
            cell_loop = state.cell_loop
        if cell_loop is not None:
            # Waiting in the cell's own event loop: wake it so the exception is seen.
            try:
                cell_loop.call_soon_threadsafe(lambda: None)
            except RuntimeError:
                pass

    def stopped(self, execution: Execution) -> None:
        self._disarm(execution)

    @staticmethod
    def _disarm(execution: Execution) -> None:
        # Clear an asynchronous exception that arrived too late to matter, so that it
        # never fires inside the runtime's own code (or the next job of this thread).
        tid = threading.get_ident()
        if _state(execution).thread_id == tid:
            _clear_async_exc(tid, None)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    try:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    except BaseException:
        pass


native_platform = NativePlatform()
_ = current_execution
