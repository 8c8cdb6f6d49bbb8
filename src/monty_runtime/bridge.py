"""The PlatformBridge: the one-execution-at-a-time guard, the run loop, host-call
dispatch, events and limits.  This module is shared, unchanged, by the native CPython
backend and the Pyodide worker: only the :class:`Platform` below it differs.

The guard is the contract of the whole project::

    One execute() per bridge at a time.  A second execute() that reaches a bridge while
    another is still running fails with StateError("Bridge is already executing").

It rejects instead of queueing (like trio's ``ConflictDetector``): a queue inside the
runtime would hide back-pressure from the caller, and callers want different policies
(see :mod:`monty_runtime.tools`).  The check is synchronous, inside ``execute()``; the
flag is released on every path (success, exception, host error, timeout, dispose, a lost
session) *before* the result is delivered, so a caller that awaits the result and then
executes again never sees a spurious "busy".
"""

from __future__ import annotations

import contextvars
import dis
import itertools
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

from . import codec
from ._names import is_identifier
from .errors import (
    BUSY_MESSAGE,
    ExecutionInterrupted,
    ExecutionTimeout,
    HostError,
    OutputLimitExceeded,
    ScriptError,
    StateError,
)
from .events import (
    CallFinished,
    CallStarted,
    Event,
    ExecutionResult,
    Print,
    RunError,
    RunFinished,
    RunStarted,
)
from .extensions import HostFunction
from .limits import MAX_CODE_BYTES, Limits
from .repl import OutputCapture, Repl, current_capture, install_stream_router

__all__ = ["Execution", "HostProxy", "Namespace", "Platform", "PlatformBridge"]

EventSink = Callable[[Event], None]
CompletionSink = Callable[[ExecutionResult], None]

_CO_COROUTINE = 0x0080
_CO_ASYNC_GENERATOR = 0x0200
_ids = itertools.count(1)

#: The execution running in this context (its thread, its tasks, its host calls).
current_execution: contextvars.ContextVar[Execution | None] = contextvars.ContextVar(
    "monty_current_execution", default=None
)


@dataclass(frozen=True, slots=True)
class HostCall:
    """One host call as the platform gets it: the function, its arguments as Python
    values, and the same arguments in wire form (already encoded: a platform that
    forwards them, as the browser worker does, sends these as they are)."""

    fn: HostFunction
    args: list[Any]
    kwargs: dict[str, Any]
    wire_args: Any
    wire_kwargs: Any


class Platform(Protocol):
    """What differs between native CPython (``_native.py``) and Pyodide
    (``_pyodide.py``). Everything else is shared, here.

    A platform keeps what it needs per execution in ``Execution.state``, an object of
    its own type that its caller hands to :meth:`PlatformBridge.execute` (natively the
    caller's loop and the code's thread; in the worker the page's request). The bridge
    never reads it. A platform calls the bridge back through its public hooks only:
    :meth:`PlatformBridge.fail` when its own code fails around an execution.
    """

    def submit(self, execution: Execution, job: Callable[[], None]) -> None:
        """Run ``job`` off the caller's event loop (native: a thread; Pyodide: soon, on
        the worker's own thread)."""

    def to_host(self, execution: Execution, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the host side: where the app's code runs (native: the caller's
        loop; Pyodide: now)."""

    def call_later(self, execution: Execution, delay: float, fn: Callable[[], None]) -> Any:
        """Schedule ``fn`` on the host side after ``delay`` seconds; returns a handle with
        ``cancel()``."""

    def run_coroutine(
        self, execution: Execution, coro: Any, done: Callable[[Any, BaseException | None], None]
    ) -> None:
        """Drive a cell that used top-level ``await`` to completion, then call
        ``done(value, exc)`` in the execution's context."""

    def host_sync(self, execution: Execution, call: HostCall) -> Any:
        """Call a host function from executed code and block until it answers."""

    def host_async(self, execution: Execution, call: HostCall) -> Awaitable[Any]:
        """Start a host call now and return an awaitable of its value."""

    def interrupt(self, execution: Execution, exc: type[BaseException]) -> None:
        """Raise ``exc`` in the running code as soon as possible (between bytecodes, or in
        a pending host call)."""

    def stopped(self, execution: Execution) -> None:
        """The execution's code has stopped (``Execution.stopped`` is set): disarm
        pending interrupts, stop what the code left running."""


# -- host functions as seen by executed code ----------------------------------------

_VALUE_OPS = frozenset(
    name
    for name in dis.opname
    if name.startswith(("STORE_", "POP_JUMP", "UNARY_", "DELETE_", "BINARY_", "UNPACK_"))
    or name
    in {
        "POP_TOP",
        "RETURN_VALUE",
        "COMPARE_OP",
        "CONTAINS_OP",
        "IS_OP",
        "FORMAT_VALUE",
        "FORMAT_SIMPLE",
        "FORMAT_WITH_SPEC",
        "CONVERT_VALUE",
        "GET_ITER",
        "TO_BOOL",
        "LOAD_ATTR",
        "LOAD_METHOD",
        "JUMP_IF_TRUE_OR_POP",
        "JUMP_IF_FALSE_OR_POP",
    }
)
_COMPREHENSIONS = frozenset({"<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>"})
_next_op_cache: dict[Any, dict[int, str]] = {}


def _next_opname(code: Any, lasti: int) -> str:
    table = _next_op_cache.get(code)
    if table is None:
        instrs = list(dis.get_instructions(code))
        table = {a.offset: b.opname for a, b in itertools.pairwise(instrs)}
        if len(_next_op_cache) > 512:
            _next_op_cache.clear()
        _next_op_cache[code] = table
    return table.get(lasti, "")


def _wants_awaitable(frame: Any) -> bool:
    """Decide how a host call made from ``frame`` is answered.

    From sync code (a plain function, or a cell without ``await``) the call blocks and
    returns the value.  From async code (``async def``, or a cell using top-level
    ``await``) the call returns an awaitable when its result is awaited or handed on to
    another call (``asyncio.gather(f(1), g(2))``, ``create_task(f())``, a list of calls),
    and blocks when the result is used as a value (stored, compared, iterated, an
    attribute read, returned).  Both answers start the host call at once.
    """
    code = frame.f_code
    if not code.co_flags & (_CO_COROUTINE | _CO_ASYNC_GENERATOR):
        # A comprehension or generator expression is its own function (always for a
        # generator expression, before Python 3.12 for the others); it belongs to the
        # async code that runs it.
        if code.co_name not in _COMPREHENSIONS:
            return False
        outer = frame.f_back
        if outer is None or not outer.f_code.co_flags & (_CO_COROUTINE | _CO_ASYNC_GENERATOR):
            return False
    return _next_opname(code, frame.f_lasti) not in _VALUE_OPS


class HostProxy:
    """The callable that executed code sees for a host function."""

    __slots__ = ("__name__", "_hf")

    def __init__(self, hf: HostFunction) -> None:
        self._hf = hf
        self.__name__ = hf.name.rpartition(".")[2]

    @property
    def __doc__(self) -> str:  # type: ignore[override]
        return self._hf.description

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        ex = current_execution.get()
        if ex is None or ex.stopped:
            raise RuntimeError(
                f"host function {self._hf.name}() can only be called while code is executing"
            )
        return ex.call_host(self._hf, args, kwargs, _wants_awaitable(sys._getframe(1)))

    def __repr__(self) -> str:
        return f"<host function {self._hf.name}>"


class Namespace:
    """An extension's namespace object in the REPL (``weather.forecast(...)``)."""

    def __init__(self, name: str, members: dict[str, HostProxy]) -> None:
        self.__dict__.update(members)
        self._name = name

    def __repr__(self) -> str:
        return f"<extension {self._name}>"


def host_globals(functions: list[HostFunction]) -> dict[str, Any]:
    """The names that host functions add to a REPL's globals."""
    out: dict[str, Any] = {}
    spaces: dict[str, dict[str, HostProxy]] = {}
    for hf in functions:
        ns, _, short = hf.name.rpartition(".")
        if ns:
            spaces.setdefault(ns, {})[short] = HostProxy(hf)
        else:
            out[hf.name] = HostProxy(hf)
    for ns, members in spaces.items():
        out[ns] = Namespace(ns, members)
    return out


def _error_info(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, HostError):
        etype = exc.type
    else:
        etype = type(exc).__name__
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        message = str(exc.args[0])
    else:
        try:
            message = str(exc)
        except Exception:
            message = "<unprintable>"
    return {"type": etype, "message": message}


_BUILTIN_EXCEPTIONS = {
    name: obj
    for name, obj in vars(__import__("builtins")).items()
    if isinstance(obj, type) and issubclass(obj, Exception)
}


def exception_from_info(info: dict[str, Any]) -> Exception:
    """The exception executed code sees for a failed host call: the builtin type of the
    same name when there is one (``ValueError`` stays ``ValueError``), else
    :class:`HostError` carrying the original type name."""
    etype = str(info.get("type") or "HostError")
    message = str(info.get("message", ""))
    cls = _BUILTIN_EXCEPTIONS.get(etype)
    if cls is not None and cls.__init__ is not OSError.__init__:
        try:
            return cls(message)
        except Exception:
            pass
    return HostError(message, type=etype)


class _Resolved:
    """An already-answered host call, awaitable (a sync host function called with
    ``await``)."""

    __slots__ = ("_exc", "_value")

    def __init__(self, value: Any = None, exc: BaseException | None = None) -> None:
        self._value = value
        self._exc = exc

    def __await__(self) -> Generator[Any, None, Any]:
        if self._exc is not None:
            raise self._exc
        return self._value
        yield  # pragma: no cover - makes this a generator


# -- one execution ---------------------------------------------------------------------

class Execution:
    """The state of one ``execute()``: its id, output, events outbox and limits.

    Events are pushed from the code's thread into an ordered outbox and delivered on the
    host side in batches (adjacent ``print`` text is merged there, which is how a print
    flood becomes a few large events instead of a million small ones).
    """

    def __init__(
        self,
        bridge: PlatformBridge,
        code: str,
        script_name: str,
        inputs: dict[str, Any] | None,
        limits: Limits,
        on_event: EventSink,
        on_complete: CompletionSink,
        state: Any,
    ) -> None:
        self.id = f"ex-{next(_ids)}"
        self.bridge = bridge
        self.code = code
        self.script_name = script_name
        self.inputs = inputs
        self.limits = limits
        #: The platform's own state for this execution (see :class:`Platform`).
        self.state = state
        self.on_event = on_event
        self.on_complete = on_complete
        self.capture = OutputCapture(self._print, limits.max_output_bytes, OutputLimitExceeded)
        self.started = time.perf_counter()
        # Its life, in order: the code stopped (set in the code's context), the result
        # was delivered (host side); abandoned: given up on (session lost, disposed), its
        # output is dropped.
        self.stopped = False
        self.completed = False
        self.abandoned = False
        # Re-entrant: in a worker, the control channel's signal handler runs on the one
        # thread, between any two bytecodes -- also inside a ``with ex.lock`` block, and
        # then calls ``interrupt()``.  A plain Lock would deadlock the worker there.
        self.lock = threading.RLock()
        self.interrupt_exc: type[BaseException] | None = None
        self.timers: list[Any] = []
        self.prelude: Callable[[], None] | None = None  # runs first, in the code's context
        #: Under a memory cap: memory held while the code runs and freed the moment it
        #: stops (``_stop``), so that reporting a MemoryError never needs more memory
        #: than the code left (a heap full of the code's small objects).
        self.ballast: bytearray | None = None
        self._call_ids = itertools.count(1)
        self._outbox: deque[Any] = deque()
        self._drain_scheduled = False

    # events ---------------------------------------------------------------------------

    def _print(self, stream: str, text: str) -> None:
        self.push(("print", stream, text))

    def push(self, item: Any) -> None:
        """Queue an event (or a print tuple, or the final result) for the host side; safe
        from any thread, order kept."""
        if self.abandoned:
            return
        self._outbox.append(item)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self.bridge.platform.to_host(self, self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        box = self._outbox
        on_event = self.on_event
        pending: tuple[str, list[str]] | None = None
        while box:
            item = box.popleft()
            if isinstance(item, tuple):
                _, stream, text = item
                if pending is not None and pending[0] == stream:
                    pending[1].append(text)
                    continue
                if pending is not None:
                    on_event(Print(self.id, pending[0], "".join(pending[1])))  # type: ignore[arg-type]
                pending = (stream, [text])
                continue
            if pending is not None:
                on_event(Print(self.id, pending[0], "".join(pending[1])))  # type: ignore[arg-type]
                pending = None
            if isinstance(item, ExecutionResult):
                self.bridge._complete(self, item)
            else:
                on_event(item)
        if pending is not None:
            on_event(Print(self.id, pending[0], "".join(pending[1])))  # type: ignore[arg-type]

    # host calls -----------------------------------------------------------------------

    def call_host(
        self, hf: HostFunction, args: tuple[Any, ...], kwargs: dict[str, Any], awaited: bool
    ) -> Any:
        hf.bind(args, kwargs)
        wire_args = codec.encode(list(args))
        wire_kwargs = codec.encode(kwargs)
        call_id = f"{self.id}.{next(self._call_ids)}"
        self.capture.flush()
        self.push(CallStarted(self.id, call_id, hf.name, wire_args, wire_kwargs))
        call_args = codec.decode(wire_args)
        call_kwargs = codec.decode(wire_kwargs)
        started = time.perf_counter()
        platform = self.bridge.platform
        call = HostCall(hf, call_args, call_kwargs, wire_args, wire_kwargs)
        if awaited:
            inner = platform.host_async(self, call)
            return _pending_call(self, hf.name, call_id, started, inner)
        try:
            value = platform.host_sync(self, call)
        except BaseException as exc:
            raise self.call_failed(hf.name, call_id, started, exc) from None
        return self.call_returned(hf.name, call_id, started, value)

    def call_returned(self, name: str, call_id: str, started: float, value: Any) -> Any:
        try:
            wire = codec.encode(value)
        except Exception as exc:  # pragma: no cover - encode falls back to $repr
            raise self.call_failed(name, call_id, started, exc) from None
        self.capture.flush()
        self.push(CallFinished(self.id, call_id, name, _ms(started), result=wire))
        return codec.decode(wire)

    def call_failed(self, name: str, call_id: str, started: float,
                    exc: BaseException) -> BaseException:
        self.capture.flush()
        if isinstance(exc, ExecutionInterrupted | KeyboardInterrupt):
            info = {"type": getattr(exc, "error_type", type(exc).__name__), "message": str(exc)}
            self.push(CallFinished(self.id, call_id, name, _ms(started), error=info))
            return exc
        info = _error_info(exc)
        self.push(CallFinished(self.id, call_id, name, _ms(started), error=info))
        return exception_from_info(info)

    # control --------------------------------------------------------------------------

    def interrupt(self, exc: type[BaseException]) -> None:
        """Raise ``exc`` in the running code (no-op once it has stopped)."""
        with self.lock:
            if self.stopped:
                return
            self.interrupt_exc = exc
        self.bridge.platform.interrupt(self, exc)


async def _pending_call(
    ex: Execution, name: str, call_id: str, started: float, inner: Awaitable[Any]
) -> Any:
    """What ``await host_fn(...)`` awaits: a real coroutine, so ``create_task``,
    ``TaskGroup`` and ``gather`` accept it.  The call itself started when it was made."""
    try:
        value = await inner
    except BaseException as exc:
        raise ex.call_failed(name, call_id, started, exc) from None
    return ex.call_returned(name, call_id, started, value)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


# -- the bridge ----------------------------------------------------------------------

class PlatformBridge:
    """One REPL session and the guard that serialises executions on it."""

    def __init__(
        self,
        platform: Platform,
        functions: list[HostFunction] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.platform = platform
        self.functions = list(functions or [])
        self.limits = limits or Limits()
        self._host_globals = host_globals(self.functions)
        self.repl = self._new_repl()
        self._is_executing = False
        # The flag above is what callers read; this lock is what makes taking it atomic
        # even when a runtime is (wrongly) shared between threads.  Never blocks.
        self._guard = threading.Lock()
        self._disposed = False
        self._current: Execution | None = None
        self.session = 1  # bumped whenever the REPL is replaced (state lost)

    def _new_repl(self) -> Repl:
        repl = Repl()
        repl.globals.update(self._host_globals)
        return repl

    def _await_calls(self) -> frozenset[str]:
        """Host function names whose top-level sync-style calls the REPL awaits: all of
        them when the platform says it cannot block in a call (``awaits_top_level_calls``,
        e.g. a browser without JSPI and without SharedArrayBuffer), else none."""
        if not self.functions or not getattr(self.platform, "awaits_top_level_calls", False):
            return frozenset()
        # Only names that still mean the host function: code may have rebound them.
        live = self.repl.globals
        return frozenset(
            f.name for f in self.functions
            if live.get(top := f.name.split(".")[0]) is self._host_globals.get(top)
        )

    @property
    def is_executing(self) -> bool:
        """True while an execution holds the guard."""
        return self._is_executing

    @property
    def disposed(self) -> bool:
        return self._disposed

    @property
    def current(self) -> Execution | None:
        """The execution holding the guard, if any."""
        return self._current

    def check_ready(self) -> None:
        """Raise the ``StateError`` that ``execute()`` would raise now, if any."""
        if self._disposed:
            raise StateError("Bridge has been disposed", "disposed")
        if self._is_executing:
            raise StateError(BUSY_MESSAGE, "busy")

    def execute(
        self,
        code: str,
        *,
        on_event: EventSink,
        on_complete: CompletionSink,
        script_name: str | None = None,
        inputs: dict[str, Any] | None = None,
        limits: Limits | None = None,
        state: Any = None,
        prelude: Callable[[], None] | None = None,
    ) -> Execution:
        """Start one execution or raise ``StateError`` at once (busy / disposed).

        ``on_event`` receives each event and ``on_complete`` the result, both on the host
        side (the caller's loop natively).  Bad input raises ``TypeError``/``ValueError``
        before the guard is taken.
        """
        check_code(code)
        if script_name is None:
            script_name = "main.py"
        elif not isinstance(script_name, str) or not script_name or "\n" in script_name:
            raise ValueError(f"script_name must be a non-empty one-line str, got {script_name!r}")
        if inputs is not None:
            if not isinstance(inputs, dict) or not all(map(is_identifier, inputs)):
                raise TypeError("inputs must be a dict whose keys are Python identifiers")
        # The guard: checked and taken synchronously, before anything can interleave.
        if self._disposed:
            raise StateError("Bridge has been disposed", "disposed")
        if not self._guard.acquire(blocking=False):
            raise StateError(BUSY_MESSAGE, "busy")
        self._is_executing = True
        try:
            ex = Execution(
                self, code, script_name, inputs, limits or self.limits, on_event, on_complete,
                state,
            )
            ex.prelude = prelude
            if ex.limits.memory is not None:
                ex.ballast = _ballast(ex.limits.memory)
            self._current = ex
            # Delivered at once: nothing can precede it, and it saves a hop.
            on_event(RunStarted(ex.id))
            if ex.limits.timeout is not None:
                self._arm_timeout(ex)
            self.platform.submit(ex, lambda: self._job(ex))
        except BaseException:
            self._release()
            raise
        return ex

    def _release(self) -> None:
        """Release the guard (idempotent; host side)."""
        if self._is_executing:
            self._is_executing = False
            self._current = None
            self._guard.release()

    def _arm_timeout(self, ex: Execution) -> None:
        timeout = ex.limits.timeout
        assert timeout is not None

        def soft() -> None:
            ex.interrupt(ExecutionTimeout)

        def hard() -> None:
            if not ex.completed:
                self._lose_session(ex, "TimeoutError",
                                   f"execution exceeded timeout={timeout}s and did not stop "
                                   f"within grace={ex.limits.grace}s; the session was replaced")

        ex.timers.append(self.platform.call_later(ex, timeout, soft))
        ex.timers.append(self.platform.call_later(ex, timeout + ex.limits.grace, hard))

    # -- runs in the execution's context (native: its thread) ---------------------------

    def _job(self, ex: Execution) -> None:
        current_execution.set(ex)
        current_capture.set(ex.capture)
        install_stream_router()
        repl = self.repl
        old_limit = None
        if ex.limits.max_recursion_depth is not None:
            old_limit = sys.getrecursionlimit()
            sys.setrecursionlimit(ex.limits.max_recursion_depth + 50)
        try:
            if ex.prelude is not None:
                ex.prelude()
            if ex.inputs:
                for key, value in ex.inputs.items():
                    repl.globals[key] = codec.decode(codec.encode(value))
            cell = repl.compile(ex.code, ex.script_name, self._await_calls())
            started = repl.start(cell)
        except BaseException as exc:
            if old_limit is not None:
                sys.setrecursionlimit(old_limit)
            self._stop(ex, repl, None, exc)
            return
        if cell.is_async:

            def done(value: Any, exc: BaseException | None) -> None:
                if old_limit is not None:
                    sys.setrecursionlimit(old_limit)
                self._stop(ex, repl, value, exc)

            self.platform.run_coroutine(ex, started, done)
            return
        if old_limit is not None:
            sys.setrecursionlimit(old_limit)
        self._stop(ex, repl, None, None)

    def _stop(self, ex: Execution, repl: Repl, _value: Any, exc: BaseException | None) -> None:
        """The code stopped: build the result in the code's context and send it home."""
        # First, before anything allocates: the code may have filled its memory cap.
        ex.ballast = None
        with ex.lock:
            ex.stopped = True
        self.platform.stopped(ex)
        value_wire: Any = None
        error: ScriptError | None = None
        if exc is None:
            value = repl.take_value()
            try:
                value_wire = codec.encode(value)
                size = _wire_size(value_wire, ex.limits.max_result_bytes)
                if size > ex.limits.max_result_bytes:
                    error = ScriptError(
                        "ResultTooLarge",
                        f"the value of the last expression is over max_result_bytes="
                        f"{ex.limits.max_result_bytes} when encoded",
                    )
                    value_wire = None
            except Exception as enc_exc:  # pragma: no cover - encode falls back to $repr
                error = ScriptError("EncodeError", str(enc_exc))
        else:
            repl.discard_value()
            if isinstance(exc, KeyboardInterrupt) and ex.interrupt_exc is not None and not (
                issubclass(ex.interrupt_exc, KeyboardInterrupt)
            ):
                exc = ex.interrupt_exc()
            error = repl.script_error(exc)
            if error.type == "TimeoutError" and not error.message:
                # The page's deadline (control channel) may be the only one there is.
                timeout = ex.limits.timeout
                message = ("execution exceeded its timeout" if timeout is None
                           else f"execution exceeded timeout={timeout}s")
                error = ScriptError(
                    error.type, message, error.traceback.rstrip() + " " + message + "\n",
                    error.lineno, error.filename,
                )
        try:
            ex.capture.flush()
        except BaseException:  # pragma: no cover
            pass
        stdout = ex.capture.text("stdout")
        stderr = ex.capture.text("stderr")
        duration = _ms(ex.started)
        if error is None:
            ex.push(RunFinished(ex.id, value_wire, stdout, duration))
        else:
            ex.push(RunError(ex.id, error.to_dict(), stdout, duration))
        ex.push(
            ExecutionResult(
                value=codec.decode(value_wire) if error is None else None,
                stdout=stdout,
                error=error,
                stderr=stderr,
                execution_id=ex.id,
                duration_ms=duration,
            )
        )

    def fail(self, ex: Execution, exc: BaseException) -> None:
        """A platform's hook: its own code failed around ``ex`` (not the user's code:
        ``exc`` escaped the job, or an interrupt landed after the code stopped). Never
        keeps the guard taken: the result reports ``exc`` -- as the code's error while
        the code has not stopped, else as an ``InternalError`` -- unless it was
        delivered already."""
        if ex.completed:
            return
        if not ex.stopped:
            self._stop(ex, self.repl, None, exc)
            return
        self._complete(ex, ExecutionResult(
            error=ScriptError("InternalError", f"{type(exc).__name__}: {exc}"),
            execution_id=ex.id,
        ))

    # -- host side ----------------------------------------------------------------------

    def _complete(self, ex: Execution, result: ExecutionResult) -> None:
        """Release the guard, then deliver the result (host side, exactly once)."""
        if ex.completed:
            return
        ex.completed = True
        for timer in ex.timers:
            timer.cancel()
        if self._current is ex:
            self._release()
        ex.on_complete(result)

    def _lose_session(self, ex: Execution, etype: str, message: str) -> None:
        """Give up on an execution whose code will not stop: replace the REPL (its state
        is lost, and said so), release the guard, and report."""
        if ex.completed:
            return
        ex.interrupt(ExecutionTimeout)
        self.repl = self._new_repl()
        self.session += 1
        error = ScriptError(etype, message)
        stdout = ex.capture.text("stdout")
        duration = _ms(ex.started)
        ex._drain()
        ex.abandoned = True
        ex.on_event(RunError(ex.id, error.to_dict(), stdout, duration, session_lost=True))
        self._complete(
            ex,
            ExecutionResult(
                stdout=stdout, error=error, stderr=ex.capture.text("stderr"),
                execution_id=ex.id, duration_ms=duration, session_lost=True,
            ),
        )

    def interrupt(self) -> bool:
        """Raise ``KeyboardInterrupt`` in the running code; globals are kept.  Returns
        whether an execution was running."""
        ex = self._current
        if ex is None:
            return False
        ex.interrupt(KeyboardInterrupt)
        return True

    def dispose(self) -> Execution | None:
        """Idempotent.  A running execution is interrupted and abandoned: it ends with a
        ``run_error`` (``StateError``) and its caller gets ``StateError``.  Returns that
        execution, if any, so the owner can reject its result."""
        if self._disposed:
            return None
        self._disposed = True
        ex = self._current
        if ex is not None and not ex.completed:
            ex.interrupt(ExecutionInterrupted)
            ex._drain()
            ex.abandoned = True
            ex.completed = True
            for timer in ex.timers:
                timer.cancel()
            self._release()
            return ex
        self._release()
        return None


#: The ballast of an execution under a memory cap: a 64th of the cap, at most 4 MiB.
BALLAST_BYTES = 4 * 2**20


def _ballast(memory: int) -> bytearray | None:
    try:
        return bytearray(min(BALLAST_BYTES, memory // 64))
    except MemoryError:  # the heap is full already: the reserve has to do
        return None


def check_code(code: Any) -> None:
    """Reject what cannot be code, with a message a caller can act on."""
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, got {type(code).__name__}")
    if len(code) > MAX_CODE_BYTES // 4 and len(code.encode("utf-8", "replace")) > MAX_CODE_BYTES:
        raise ValueError(f"code is over the limit of {MAX_CODE_BYTES} bytes")


def _wire_size(wire: Any, limit: int) -> int:
    """Size of the encoded value in bytes (cheap for scalars and short strings)."""
    if wire is None or isinstance(wire, bool | int | float):
        return 8
    if isinstance(wire, str) and len(wire) * 4 < limit:
        return len(wire) + 2
    return len(json.dumps(wire, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
