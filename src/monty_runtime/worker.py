"""The worker session of the browser (and Deno) backend, imported by ``web/worker.js``.

One Web Worker holds one :class:`WorkerSession`: it reads the page's messages
(``protocol.py``), runs each ``execute`` on a :class:`~monty_runtime.bridge.PlatformBridge`
over the :class:`~monty_runtime._pyodide.PyodidePlatform` (one bridge for a shared-mode
runtime, a fresh bridge per ``execute`` in sandbox mode), and posts events and results
back as JSON text (print text batched: ``_batching.py``; interrupts between bytecodes:
``_control.py``).

Busy is the page's decision (``web/monty-runtime.js`` BusyGuard): the page never sends
a second ``execute`` to a runtime with one in flight. The bridge keeps its own guard
too: an ``execute`` that reaches a busy bridge anyway is posted back as ``rejected``
with ``StateError("Bridge is already executing")``.

JavaScript hands :func:`start` a ``hooks`` object (``_pyodide.Hooks``); messages leave
through ``hooks.post``. No Python source is ever built from data. The module imports in
CPython too (``js``/``pyodide`` are imported lazily), so its logic is unit-tested
without a browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from . import _lockdown, _wire, codec
from ._batching import PrintBatcher
from ._control import Control
from ._names import check_function_names, is_identifier
from ._pyodide import (
    Hooks,
    PageRequest,
    PyodidePlatform,
    jspi_available,
    quiet_loop,
    running_loop,
)
from .bridge import Execution, HostCall, PlatformBridge, current_execution
from .errors import StateError
from .events import CallStarted, Event, ExecutionResult, Print, RunError, RunFinished
from .extensions import HostFunction
from .limits import Limits
from .protocol import PROTOCOL_VERSION, check_message

__all__ = [
    "WorkerSession",
    "dispose",
    "handle",
    "handle_execute",
    "interrupt",
    "start",
]

_dumps = _wire.dumps  # compact JSON, one cached C encoder (hot path)


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
        call = HostCall(hf, list(args), kwargs, codec.encode(list(args)), codec.encode(kwargs))
        return self._platform.host_async(ex, call)


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
        # Optional hooks, looked up once (an attribute of a JS object costs a call into
        # JavaScript; these run twice per execution).
        self._post = hooks.post
        self._tell_running = getattr(hooks, "running", None)
        self._tell_memory_cap = getattr(hooks, "memoryCap", None)
        caps = config.get("capabilities")
        self.platform = PyodidePlatform(
            hooks,
            str(config.get("sync") or "auto"),
            bool(config.get("syncBuffer")),
            caps if isinstance(caps, dict) else None,
        )
        with contextlib.suppress(RuntimeError):  # no loop yet (unit tests)
            quiet_loop(running_loop())
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

    # -- what the control channel reads (_control.Session) ------------------------------

    def in_sync_call(self) -> bool:
        return self.platform.blocked > 0

    def execution_of(self, rid: Any) -> Execution | None:
        bridge = self.running.get(rid)
        ex = None if bridge is None else bridge.current
        if ex is None or ex.stopped:
            return None
        state = ex.state
        return ex if isinstance(state, PageRequest) and state.rid == rid else None

    def flush_output(self) -> None:
        """Post the print text held for the running executions."""
        for outbox in list(self.outboxes.values()):
            outbox.flush()

    def post(self, message: dict[str, Any]) -> None:
        self._post(_encode_message(message))

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
        post = self._post
        prefix = '{"type":"event","id":' + _dumps(rid) + ',"event":'
        running = self.running
        sandbox = self.sandbox
        last: list[dict[str, Any]] = []  # the final event, sent together with the result
        outbox = PrintBatcher(post, prefix)
        outboxes = self.outboxes

        req = PageRequest(rid)

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
                state=req,
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
        hook = self._tell_memory_cap
        if hook is None:
            return
        values = [c for c in caps.values() if c is not None]
        hook(max(values) if values and len(values) == len(caps) else None)
    # -- background work ----------------------------------------------------------------

    def _running_changed(self) -> None:
        """Executions in flight changed.  When the first starts, remember the tasks that
        exist; when the last ends, everything the executions left running stops: the
        tasks created since (whatever their context: ``contextvars.Context().run(
        loop.create_task, ...)`` escapes ``PyodidePlatform.stopped``), and the timers
        Python code set through ``js.setTimeout``/``setInterval`` (``worker.js`` clears
        them and refuses new ones until the next execution; ``hooks.running``)."""
        count = len(self.running)
        if count == 1 and self._tasks_before is None:
            try:
                self._tasks_before = set(asyncio.all_tasks(running_loop()))
            except Exception:
                self._tasks_before = set()
        tell = self._tell_running
        if tell is not None:
            with contextlib.suppress(Exception):
                tell(count)
        if count == 0:
            before = self._tasks_before or set()
            self._tasks_before = None
            try:
                tasks = asyncio.all_tasks(running_loop())
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
    """The page's default per-message limit for these limits (web/page/control.js
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
    return {"version": PROTOCOL_VERSION, "jspi": jspi_available(),
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
