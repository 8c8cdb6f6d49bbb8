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
from typing import Any, Literal

from . import codec
from .errors import StateError
from .events import ExecutionResult
from .runtime import ExecutionHandle, MontyRuntime

__all__ = ["BusyBinding", "Policy", "QueueBinding", "SandboxBinding", "ToolBinding", "bind_tool"]

Policy = Literal["queue", "busy", "sandbox"]

_DESCRIPTION = (
    "Run Python code in a persistent interpreter session and return the value of the last "
    "expression and the printed output. Variables, functions and imports persist between "
    "calls. Host functions are available as Python functions: {functions}."
)
_SANDBOX_DESCRIPTION = (
    "Run Python code in a fresh interpreter (nothing persists between calls) and return "
    "the value of the last expression and the printed output. Host functions are "
    "available as Python functions: {functions}."
)


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
        names = ", ".join(s["name"] for s in self.runtime.schemas) or "none"
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

    async def call(self, arguments: Any) -> dict[str, Any]:
        """Run one tool call; never raises for a bad call or a failing execution."""
        code = self.parse_arguments(arguments)
        if isinstance(code, dict):
            return code
        try:
            return await self._run(code)
        except StateError as exc:
            return _error("StateError", str(exc), reason=exc.reason)
        except (TypeError, ValueError) as exc:
            return _error("InvalidArguments", str(exc))

    async def _run(self, code: str) -> dict[str, Any]:
        raise NotImplementedError


class QueueBinding(ToolBinding):
    """Each call waits for the previous one (a future chain, not a lock with fairness
    questions: calls run in the order they arrived).  A previous call's failure or
    cancellation never blocks the next one."""

    policy: Policy = "queue"

    def __init__(self, runtime: MontyRuntime, **kwargs: Any) -> None:
        super().__init__(runtime, **kwargs)
        self._tail: asyncio.Future[None] | None = None

    async def _run(self, code: str) -> dict[str, Any]:
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
            handle = self.runtime.execute(code)
            return self.payload(await handle.result)
        finally:
            if handle is not None and not handle.finished.done():
                # Cancelled while its code runs: the next call waits until the code has
                # stopped and the runtime is free again.
                handle.finished.add_done_callback(lambda _f: _finish(mine))
            elif previous is not None and not previous.done():
                # Cancelled while waiting: keep the chain whole, so the next call still
                # waits for the one before this.
                previous.add_done_callback(lambda _f: _finish(mine))
            else:
                _finish(mine)


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

    async def _run(self, code: str) -> dict[str, Any]:
        try:
            handle = self.runtime.execute(code)
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

    async def _run(self, code: str) -> dict[str, Any]:
        return self.payload(await self.runtime.execute(code).result)


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
