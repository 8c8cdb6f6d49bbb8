"""Errors of the runtime, in trio's vocabulary: *busy*, *closed* and *broken*.

Two families, on purpose:

* :class:`StateError` is an infrastructure error raised *to the caller* (it rejects
  ``execute()`` or ``result``).  Its ``reason`` says which of the three situations you hit.
* :class:`ScriptError` is *data*: the description of a Python exception raised by the
  executed code.  It never rejects ``result``; it is carried in ``ExecutionResult.error``
  so that the REPL survives and the caller decides what to show the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "BUSY_MESSAGE",
    "ExecutionInterrupted",
    "ExecutionTimeout",
    "HostError",
    "LimitExceeded",
    "OutputLimitExceeded",
    "ScriptError",
    "StateError",
]

StateReason = Literal["busy", "disposed", "broken"]

BUSY_MESSAGE = "Bridge is already executing"


class StateError(RuntimeError):
    """The runtime cannot take this request in its current state.

    ``reason`` is one of:

    * ``"busy"`` -- you get it when ``execute()`` reaches a bridge that is still running an
      earlier execution (message ``"Bridge is already executing"``).  The runtime never
      queues: pick a policy from :mod:`monty_runtime.tools` if you want one.
    * ``"disposed"`` -- you get it when you use a runtime or bridge after ``dispose()``.
    * ``"broken"`` -- you get it when the session behind the runtime was lost (for example
      a browser worker crashed) and the runtime cannot honour the call.
    """

    def __init__(self, message: str, reason: StateReason = "busy") -> None:
        super().__init__(message)
        self.reason: StateReason = reason

    @property
    def name(self) -> str:
        """``"StateError"``; mirrors the JS host's ``error.name``."""
        return "StateError"


class HostError(Exception):
    """Raised inside executed code when a host function failed with an error whose type
    has no builtin Python equivalent (for example a custom exception class, or a JS
    ``Error``).  ``type`` keeps the original type name; ``str(e)`` is the message.
    """

    def __init__(self, message: str, type: str = "HostError") -> None:
        super().__init__(message)
        self.type = type


class ExecutionInterrupted(BaseException):
    """Base of the exceptions the runtime raises *into* executed code to stop it.

    They derive from ``BaseException`` so that the ``except Exception: pass`` an LLM
    likes to write does not swallow a timeout and keep a runaway loop alive.
    """

    error_type = "Interrupted"


class ExecutionTimeout(ExecutionInterrupted):
    """Raised into executed code when ``Limits.timeout`` expires (reported as
    ``TimeoutError``)."""

    error_type = "TimeoutError"


class LimitExceeded(ExecutionInterrupted):
    """Raised into executed code when one of its :class:`~monty_runtime.Limits` is
    exceeded."""

    error_type = "LimitExceeded"


class OutputLimitExceeded(LimitExceeded):
    """Raised at the ``print``/``write`` that would take the output over
    ``Limits.max_output_bytes``."""

    error_type = "OutputLimitExceeded"


@dataclass(frozen=True, slots=True)
class ScriptError:
    """A Python exception raised by the executed code, as data.

    ``traceback`` is trimmed to the user's frames (runtime internals removed) and names
    the ``script_name`` given to ``execute()``; ``lineno`` is the line of the innermost
    frame in the user's script (or of the syntax error).
    """

    type: str
    message: str
    traceback: str = ""
    lineno: int | None = None
    filename: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: ``{type, message, traceback, lineno, filename}``."""
        return {
            "type": self.type,
            "message": self.message,
            "traceback": self.traceback,
            "lineno": self.lineno,
            "filename": self.filename,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScriptError:
        """Inverse of :meth:`to_dict` (missing optional keys default)."""
        return cls(
            type=str(data["type"]),
            message=str(data.get("message", "")),
            traceback=str(data.get("traceback", "")),
            lineno=data.get("lineno"),
            filename=data.get("filename"),
        )

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type
