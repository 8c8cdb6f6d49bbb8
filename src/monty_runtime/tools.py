"""LLM tool bindings: the three consumer policies for a runtime behind a tool.

The runtime does not queue: a busy shared runtime rejects ``execute()`` with
``StateError("Bridge is already executing")``.  An OpenAI-style planner may still call a
``run_python`` tool several times in parallel, so whoever wraps a runtime in a tool must
choose what the model sees.  The three policies, in increasing cost:

* :class:`QueueBinding` -- a future-chain lock: each call waits for the previous one; a
  previous failure never blocks the next call.  Recommended when state must persist
  (``x = 42`` in one call is visible to the next).
* :class:`BusyBinding` -- no waiting: a busy runtime answers with a structured
  ``{"status": "busy", "retry_after_ms": ...}`` payload, so back-pressure is visible to
  the planner, which may retry.
* :class:`SandboxBinding` -- a fresh REPL per call (``MontyRuntime(sandbox=True)``):
  parallel calls all run; nothing persists.

Every binding gives :meth:`~ToolBinding.definition` (an OpenAI-style tool definition)
and :meth:`~ToolBinding.call` which never raises for a bad call: it returns a JSON-able
payload ``{"status", "value", "stdout", "error"}``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, Literal

from . import codec
from .errors import StateError
from .events import Event, ExecutionResult
from .runtime import ExecutionHandle, MontyRuntime

__all__ = [
    "BusyBinding",
    "Policy",
    "QueueBinding",
    "SandboxBinding",
    "ToolBinding",
    "bind_tool",
    "describe_functions",
]

Policy = Literal["queue", "busy", "sandbox"]

_DESCRIPTION = (
    "Run Python code in a persistent interpreter session and return the value of the last "
    "expression and the printed output. Variables, functions and imports persist between "
    "calls. Host functions are available as Python functions (call them, or await them):"
    "{functions}"
)
_SANDBOX_DESCRIPTION = (
    "Run Python code in a fresh interpreter (nothing persists between calls) and return "
    "the value of the last expression and the printed output. Host functions are "
    "available as Python functions (call them, or await them):{functions}"
)
_JSON_TYPES = {
    "integer": "int", "number": "float", "string": "str", "boolean": "bool",
    "array": "list", "object": "dict", "null": "None",
}


def _type_text(schema: Any) -> str | None:
    """A JSON Schema as a Python annotation (``int``, ``str | None``), if it is that plain."""
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if isinstance(kind, str):
        return _JSON_TYPES.get(kind)
    if isinstance(kind, list):
        names = [_JSON_TYPES.get(k) if isinstance(k, str) else None for k in kind]
        return " | ".join(n for n in names if n) if names and all(names) else None
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            texts = [_type_text(o) for o in options]
            return " | ".join(t for t in texts if t) if all(texts) else None
    return None


def describe_functions(schemas: list[dict[str, Any]]) -> str:
    """Each host function as ``- name(param: type, opt: type = ...) -- first docstring
    line``, one a line (``" none."`` when there is none).  web/tools.js writes the same
    text for the same schemas."""
    if not schemas:
        return " none."
    lines = []
    for schema in schemas:
        params = schema.get("parameters")
        if isinstance(params, dict):
            props = params.get("properties") or {}
            required = params.get("required") or []
            parts = []
            for pname, sub in props.items():
                kind = _type_text(sub)
                text = pname if kind is None else f"{pname}: {kind}"
                parts.append(text if pname in required else f"{text} = ...")
            signature = f"{schema['name']}({', '.join(parts)})"
        else:
            signature = f"{schema['name']}(...)"
        doc = str(schema.get("description") or "").strip().split("\n")[0].strip()
        lines.append(f"\n- {signature}" + (f" -- {doc}" if doc else ""))
    return "".join(lines)


def _error(type_: str, message: str, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "status": "error",
        "value": None,
        "stdout": "",
        "error": {"type": type_, "message": message},
    }
    payload.update(extra)
    return payload


class ToolBinding:
    """Base of the three policies: argument parsing, the tool definition, the payload."""

    policy: Policy

    def __init__(self, runtime: MontyRuntime, *, name: str = "run_python",
                 description: str | None = None) -> None:
        if not isinstance(runtime, MontyRuntime):
            raise TypeError(f"runtime must be a MontyRuntime, got {type(runtime).__name__}")
        if not name or not all(c.isalnum() or c in "_-" for c in name) or len(name) > 64:
            raise ValueError(f"tool name must match ^[A-Za-z0-9_-]{{1,64}}$, got {name!r}")
        self.runtime = runtime
        self.name = name
        self._description = description

    def definition(self) -> dict[str, Any]:
        """The OpenAI-style tool definition (``{"type": "function", "function": ...}``)."""
        names = describe_functions(self.runtime.schemas)
        template = _SANDBOX_DESCRIPTION if self.runtime.sandbox else _DESCRIPTION
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self._description or template.format(functions=names),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string", "description": "The Python code to run."}
                    },
                    "required": ["code"],
                    "additionalProperties": False,
                },
            },
        }

    @staticmethod
    def parse_arguments(arguments: Any) -> str | dict[str, Any]:
        """The code from a tool call's arguments (a dict, or the JSON text a model
        sends), or an error payload."""
        if isinstance(arguments, str | bytes):
            try:
                arguments = json.loads(arguments)
            except ValueError as exc:
                return _error("InvalidArguments", f"arguments are not valid JSON: {exc}")
        if not isinstance(arguments, dict):
            return _error("InvalidArguments", "arguments must be an object with a 'code' string")
        unknown = set(arguments) - {"code"}
        if unknown:
            return _error("InvalidArguments", f"unknown argument(s): {', '.join(sorted(unknown))}")
        code = arguments.get("code")
        if not isinstance(code, str):
            return _error("InvalidArguments", "argument 'code' must be a string")
        return code

    @staticmethod
    def payload(result: ExecutionResult) -> dict[str, Any]:
        """The JSON-able tool result of an execution."""
        if result.error is None:
            return {"status": "ok", "value": codec.encode(result.value), "stdout": result.stdout,
                    "error": None}
        error = {"type": result.error.type, "message": result.error.message,
                 "traceback": result.error.traceback}
        out: dict[str, Any] = {
            "status": "error", "value": None, "stdout": result.stdout, "error": error
        }
        if result.session_lost:
            out["session_lost"] = True
        return out

    async def call(
        self, arguments: Any, *, on_event: Callable[[Event], None] | None = None
    ) -> dict[str, Any]:
        """Run one tool call; never raises for a bad call or a failing execution.
        ``on_event`` gets this call's events (``print``, host calls ...) as they come."""
        code = self.parse_arguments(arguments)
        if isinstance(code, dict):
            return code
        try:
            return await self._run(code, on_event)
        except StateError as exc:
            return _error("StateError", str(exc), reason=exc.reason)
        except (TypeError, ValueError) as exc:
            return _error("InvalidArguments", str(exc))

    async def _run(self, code: str, on_event: Callable[[Event], None] | None) -> dict[str, Any]:
        raise NotImplementedError

    def _execute(self, code: str, on_event: Callable[[Event], None] | None) -> ExecutionHandle:
        handle = self.runtime.execute(code)
        if on_event is not None:
            task = asyncio.ensure_future(_forward(handle, on_event))
            _FORWARDS.add(task)
            task.add_done_callback(_FORWARDS.discard)
        return handle


class QueueBinding(ToolBinding):
    """Each call waits for the previous one (a future chain, not a lock with fairness
    questions: calls run in the order they arrived).  A previous call's failure or
    cancellation never blocks the next one."""

    policy: Policy = "queue"

    def __init__(self, runtime: MontyRuntime, **kwargs: Any) -> None:
        super().__init__(runtime, **kwargs)
        self._tail: asyncio.Future[None] | None = None

    async def _run(self, code: str, on_event: Callable[[Event], None] | None) -> dict[str, Any]:
        previous = self._tail
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tail = mine
        handle: ExecutionHandle | None = None
        try:
            if previous is not None:
                # Swallow the previous call's outcome: it is reported through its own
                # result.  shield: cancelling this call must not cancel the chain.
                try:
                    await asyncio.shield(previous)
                except BaseException:
                    pass
            handle = self._execute(code, on_event)
            return self.payload(await handle.result)
        finally:
            if handle is not None and not handle.released.done():
                # Cancelled while its code runs: the next call waits until the code has
                # stopped and the runtime is free again.
                handle.released.add_done_callback(lambda _f: _finish(mine))
            elif previous is not None and not previous.done():
                # Cancelled while waiting: keep the chain whole, so the next call still
                # waits for the one before this.
                previous.add_done_callback(lambda _f: _finish(mine))
            else:
                _finish(mine)


_FORWARDS: set[asyncio.Future[None]] = set()


async def _forward(handle: ExecutionHandle, on_event: Callable[[Event], None]) -> None:
    async for event in handle.events:
        try:
            on_event(event)
        except Exception:
            pass  # a failing listener must not lose the call


def _finish(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class BusyBinding(ToolBinding):
    """A busy runtime answers ``{"status": "busy", "retry_after_ms": N, ...}`` at once.

    ``retry_after_ms`` estimates when the running execution will be done: the median
    duration of recent executions minus the time the current one has run, at least
    ``min_retry_ms``."""

    policy: Policy = "busy"

    def __init__(self, runtime: MontyRuntime, *, min_retry_ms: int = 50, **kwargs: Any) -> None:
        super().__init__(runtime, **kwargs)
        self.min_retry_ms = min_retry_ms
        self._durations: list[float] = []
        self._started: float | None = None

    def _retry_after_ms(self) -> int:
        if not self._durations:
            return self.min_retry_ms
        typical = sorted(self._durations)[len(self._durations) // 2]
        elapsed = 0.0 if self._started is None else (time.perf_counter() - self._started) * 1e3
        return max(self.min_retry_ms, round(typical - elapsed))

    async def _run(self, code: str, on_event: Callable[[Event], None] | None) -> dict[str, Any]:
        try:
            handle = self._execute(code, on_event)
        except StateError as exc:
            if exc.reason != "busy":
                raise
            return {
                "status": "busy",
                "retry_after_ms": self._retry_after_ms(),
                "value": None,
                "stdout": "",
                "error": {"type": "StateError", "message": str(exc)},
            }
        self._started = time.perf_counter()
        try:
            result = await handle.result
        finally:
            self._durations = [*self._durations[-19:], (time.perf_counter() - self._started) * 1e3]
            self._started = None
        return self.payload(result)


class SandboxBinding(ToolBinding):
    """Each call in a fresh REPL: parallel calls all run, nothing persists.  Needs a
    runtime made with ``sandbox=True``."""

    policy: Policy = "sandbox"

    def __init__(self, runtime: MontyRuntime, **kwargs: Any) -> None:
        if isinstance(runtime, MontyRuntime) and not runtime.sandbox:
            raise ValueError("SandboxBinding needs a runtime made with MontyRuntime(sandbox=True)")
        super().__init__(runtime, **kwargs)

    async def _run(self, code: str, on_event: Callable[[Event], None] | None) -> dict[str, Any]:
        return self.payload(await self._execute(code, on_event).result)


_POLICIES: dict[str, type[ToolBinding]] = {
    "queue": QueueBinding,
    "busy": BusyBinding,
    "sandbox": SandboxBinding,
}


def bind_tool(runtime: MontyRuntime, policy: Policy, **kwargs: Any) -> ToolBinding:
    """The binding for ``policy`` (``"queue"``, ``"busy"`` or ``"sandbox"``)."""
    try:
        cls = _POLICIES[policy]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown policy {policy!r}; choose one of {', '.join(_POLICIES)}"
        ) from None
    return cls(runtime, **kwargs)
