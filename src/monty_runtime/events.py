"""Execution events and results.

Every event is a frozen dataclass with a ``type`` and ``to_dict()`` giving the JSON-able
dict that the JS host yields too, so a consumer can treat both backends alike.  Values
inside events (``args``, ``result``, ``value``) are already in the wire form of
:mod:`monty_runtime.codec`.

Order guaranteed for one execution::

    run_started, (print | call_started, print*, call_finished)*, run_finished | run_error

``print`` events may be coalesced (adjacent writes to one stream merged into one event)
when a consumer reads slower than the code prints; the concatenated text is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from .errors import ScriptError

__all__ = [
    "CallFinished",
    "CallStarted",
    "Event",
    "ExecutionResult",
    "Print",
    "RunError",
    "RunFinished",
    "RunStarted",
    "event_from_dict",
]

Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True, slots=True)
class RunStarted:
    """The execution was accepted by the bridge and is about to run."""

    type: ClassVar[str] = "run_started"
    execution_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "execution_id": self.execution_id}


@dataclass(frozen=True, slots=True)
class Print:
    """Text the executed code (or a host function it called) wrote to stdout/stderr."""

    type: ClassVar[str] = "print"
    execution_id: str
    stream: Stream
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "execution_id": self.execution_id,
            "stream": self.stream,
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class CallStarted:
    """The executed code called a host function (``args``/``kwargs`` in wire form)."""

    type: ClassVar[str] = "call_started"
    execution_id: str
    call_id: str
    name: str
    args: list[Any]
    kwargs: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "execution_id": self.execution_id,
            "call_id": self.call_id,
            "name": self.name,
            "args": self.args,
            "kwargs": self.kwargs,
        }


@dataclass(frozen=True, slots=True)
class CallFinished:
    """A host call returned (``result``, wire form) or raised (``error``: type, message)."""

    type: ClassVar[str] = "call_finished"
    execution_id: str
    call_id: str
    name: str
    duration_ms: float
    result: Any = None
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": self.type,
            "execution_id": self.execution_id,
            "call_id": self.call_id,
            "name": self.name,
        }
        if self.error is not None:
            d["error"] = self.error
        else:
            d["result"] = self.result
        d["duration_ms"] = self.duration_ms
        return d


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The execution completed; ``value`` is the last expression's value (wire form)."""

    type: ClassVar[str] = "run_finished"
    execution_id: str
    value: Any
    stdout: str
    duration_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "execution_id": self.execution_id,
            "value": self.value,
            "stdout": self.stdout,
            "duration_ms": self.duration_ms,
        }


@dataclass(frozen=True, slots=True)
class RunError:
    """The execution ended with an error (a Python exception in the code, a limit, or a
    lost session -- then ``session_lost`` is true)."""

    type: ClassVar[str] = "run_error"
    execution_id: str
    error: dict[str, Any]
    stdout: str = ""
    duration_ms: float = 0.0
    session_lost: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "execution_id": self.execution_id,
            "error": self.error,
            "stdout": self.stdout,
            "duration_ms": self.duration_ms,
            "session_lost": self.session_lost,
        }


Event = RunStarted | Print | CallStarted | CallFinished | RunFinished | RunError

_EVENT_TYPES: dict[str, Any] = {
    cls.type: cls for cls in (RunStarted, Print, CallStarted, CallFinished, RunFinished, RunError)
}


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from its ``to_dict()`` form (used for the browser backend and in
    tests).  Unknown types or fields raise ``ValueError``."""
    try:
        cls = _EVENT_TYPES[data["type"]]
    except (KeyError, TypeError):
        raise ValueError(f"not an event: {data!r:.200}") from None
    kwargs = {k: v for k, v in data.items() if k != "type"}
    try:
        event: Event = cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad {data['type']} event: {exc}") from None
    return event


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """What one ``execute()`` produced.

    A Python exception in the executed code does *not* reject ``result``: it completes
    with ``error`` set, and the REPL keeps its state for the next call.
    ``value`` is the last expression's value, decoded from the wire form (so it is plain
    data -- the same on both backends -- never a live object of the REPL).
    ``session_lost`` is true when the runtime had to replace the session (its globals are
    gone), for example after a timeout the code did not obey.
    """

    value: Any = None
    stdout: str = ""
    error: ScriptError | None = None
    stderr: str = ""
    execution_id: str = ""
    duration_ms: float = 0.0
    session_lost: bool = False

    @property
    def ok(self) -> bool:
        """True when the code ran to completion without an exception."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; ``value`` in wire form."""
        from . import codec

        return {
            "execution_id": self.execution_id,
            "value": codec.encode(self.value),
            "stdout": self.stdout,
            "stderr": self.stderr,
            "error": None if self.error is None else self.error.to_dict(),
            "duration_ms": self.duration_ms,
            "session_lost": self.session_lost,
        }
