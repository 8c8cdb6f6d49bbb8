"""monty-runtime: a stateful Python execution runtime for LLM tool calls.

One contract on two backends: natively in CPython, and in the browser in one Pyodide
Web Worker per runtime.  One ``execute()`` per runtime at a time; a second overlapping
call fails with ``StateError("Bridge is already executing")``; ``sandbox=True`` gives a
fresh REPL per call so parallel calls work.
"""

from .errors import ScriptError, StateError
from .events import ExecutionResult
from .extensions import Extension, HostFunction
from .limits import Limits
from .runtime import ExecutionHandle, MontyRuntime

__all__ = [
    "ExecutionHandle",
    "ExecutionResult",
    "Extension",
    "HostFunction",
    "Limits",
    "MontyRuntime",
    "ScriptError",
    "StateError",
]

__version__ = "0.1.0"
