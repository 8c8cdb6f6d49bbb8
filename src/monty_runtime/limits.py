"""Per-call limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["MAX_CODE_BYTES", "MIN_MEMORY", "Limits"]

#: Code longer than this (UTF-8 bytes) is rejected by ``execute()`` with ``ValueError``:
#: a tool call is a snippet, and a bound keeps a runaway prompt from costing a compile.
MAX_CODE_BYTES = 1_000_000

#: The smallest ``Limits.memory`` accepted anywhere (an interpreter needs more than
#: this to start); each backend may need more and says so (the browser worker's floor
#: is its heap after boot).
MIN_MEMORY = 16 * 2**20


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits applied to each ``execute()``.

    * ``timeout`` -- seconds of wall time per call (``None``: no limit).  At expiry the
      code is interrupted between bytecodes and the result has
      ``error.type == "TimeoutError"``; the REPL survives.  Code that cannot be
      interrupted (a blocking C call) is abandoned after ``grace`` more seconds: the
      session is replaced by a fresh one and ``result.session_lost`` is true.
    * ``max_output_bytes`` -- captured ``print``/``sys.stdout``/``sys.stderr`` text
      (UTF-8 bytes) per call; the write that crosses it raises ``OutputLimitExceeded``.
    * ``max_result_bytes`` -- size of the encoded value of the last expression; a larger
      value gives ``error.type == "ResultTooLarge"`` instead of the value.
    * ``max_recursion_depth`` -- Python's recursion limit while the code runs
      (``None``: the interpreter's own).  Natively this is process-wide while code runs.
    * ``grace`` -- see ``timeout``.
    * ``memory`` -- a cap in bytes on the memory of the runtime (``None``: no cap).  Past
      it, the allocation that crosses it raises ``MemoryError`` in the code and the REPL
      survives.  In the browser it caps the worker's WebAssembly heap; natively it caps
      the address space of an isolated runtime's process (``sandbox="isolated"``) and
      is refused for an in-process runtime (docs/isolation.md).  A call's limits
      without ``memory`` keep the runtime's.
    """

    timeout: float | None = None
    max_output_bytes: int = 10_000_000
    max_result_bytes: int = 10_000_000
    max_recursion_depth: int | None = None
    grace: float = 1.0
    memory: int | None = None

    def __post_init__(self) -> None:
        for name in ("timeout", "grace"):
            value = getattr(self, name)
            if value is None and name == "timeout":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"Limits.{name} must be a number of seconds, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive number, got {value!r}")
        for name in ("max_output_bytes", "max_result_bytes", "max_recursion_depth", "memory"):
            value = getattr(self, name)
            if value is None and name in ("max_recursion_depth", "memory"):
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Limits.{name} must be an int, got {value!r}")
            if value <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {value!r}")
        if self.max_recursion_depth is not None and self.max_recursion_depth < 50:
            raise ValueError("Limits.max_recursion_depth must be at least 50")
        if self.memory is not None and self.memory < MIN_MEMORY:
            raise ValueError(
                f"Limits.memory must be at least {MIN_MEMORY} bytes (16 MiB), got {self.memory}"
            )

    def inherit(self, runtime: Limits) -> Limits:
        """A call's limits: ``memory`` falls back to the runtime's (a cap per runtime
        stays one unless a call names its own)."""
        if self.memory is None and runtime.memory is not None:
            return replace(self, memory=runtime.memory)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (used by the worker protocol)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def coerce(cls, value: Limits | dict[str, Any] | None) -> Limits:
        """Accept a ``Limits``, a dict of its fields, or ``None`` (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, Limits):
            return value
        if isinstance(value, dict):
            known = {f.name for f in fields(cls)}
            unknown = set(value) - known
            if unknown:
                raise TypeError(f"unknown limit(s): {', '.join(sorted(unknown))}")
            return cls(**value)
        raise TypeError(f"limits must be a Limits or a dict, got {type(value).__name__}")
