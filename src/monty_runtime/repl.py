"""One interpreter session: globals, compilation, the last expression's value, print
capture and user-facing tracebacks.

The value of an execution (``result.value``) is deliberately defined like this:

* if the last top-level statement is an expression, its value;
* if it is an ``if``/``elif``/``else``, ``try``/``except``/``else`` or ``with`` block, the
  rule applies again to the last statement of whichever branch ran (so
  ``try: x = f()\\nexcept E as e: str(e)`` yields the message when ``f`` raised);
* anything else (an assignment, a loop, a ``def``, a ``finally`` clause) gives ``None``.

This matches what a person reading the cell expects, and the conformance corpus.
Top-level ``await`` works: code that uses it compiles to a coroutine which the platform
runs on an event loop of the execution.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import contextvars
import io
import itertools
import linecache
import os
import re
import sys
import traceback
import types
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from .errors import ExecutionInterrupted, HostError, ScriptError

__all__ = ["CompiledCell", "OutputCapture", "Repl", "install_stream_router"]

_LAST = "__monty_last_value__"
_CO_COROUTINE = 0x0080
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_ASYNCIO_DIR = os.path.dirname(os.path.abspath(asyncio.__file__ or ""))


@dataclass(frozen=True, slots=True)
class CompiledCell:
    """Code compiled for one execution."""

    code: types.CodeType
    filename: str
    is_async: bool
    source: str


# Where a host call's value is used as a value (its result is not handed to another
# call, a container or an await): only there is a call awaited for the caller.
_HANDED_ON = (ast.Call, ast.keyword, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Await,
              ast.Starred)
# Scopes of their own (an await there would be an error or change what the code is).
_OWN_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
               ast.GeneratorExp, ast.ListComp, ast.SetComp, ast.DictComp)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def await_host_calls(tree: ast.Module, names: frozenset[str]) -> int:
    """Sync-style host calls without a way to block (no JSPI, no SharedArrayBuffer):
    rewrite, in ``tree``'s top-level code, calls of host functions (by name, ``f(...)``
    or ``ns.f(...)``) into ``await f(...)``, so that the cell runs as a coroutine that
    awaits them and gets what a blocking call would have returned:

    * in a cell without ``await`` of its own (sync code, where every call blocks), every
      such call: ``x = f(1)``, ``[f(1), f(2)]``, ``print(f(1))``, ``f(f(1))``;
    * in a cell that awaits already (async code, where a call handed on -- to a call, a
      container -- is an awaitable, as natively), the calls whose value is used as a
      value: ``x = f(1)``, ``f(1) + 1``, not those in ``asyncio.gather(f(1), f(2))``.

    A name the cell binds itself (``def f``, ``f = ...``, an import) is not a host
    function there. Code inside ``def``, ``lambda``, classes and comprehensions is left
    alone (there a sync-style call still fails with its TypeError). Returns the number
    of calls rewritten. An AST transform: no source is built."""
    bound = _bound_names(tree)
    names = frozenset(n for n in names if n.split(".")[0] not in bound)
    if not names:
        return 0
    sync_cell = not _awaits(tree)
    wrap: set[int] = set()

    def walk(node: ast.AST, parent: ast.AST | None) -> None:
        if isinstance(node, _OWN_SCOPES):
            return
        if (
            isinstance(node, ast.Call)
            and _dotted(node.func) in names
            and not isinstance(parent, ast.Await)
            and (sync_cell or not isinstance(parent, _HANDED_ON))
        ):
            wrap.add(id(node))
        for child in ast.iter_child_nodes(node):
            walk(child, node)

    walk(tree, None)
    if not wrap:
        return 0

    class _Wrap(ast.NodeTransformer):
        def generic_visit(self, node: ast.AST) -> ast.AST:
            if isinstance(node, _OWN_SCOPES):
                return node
            super().generic_visit(node)
            if id(node) in wrap:
                return ast.copy_location(ast.Await(value=node), node)  # type: ignore[arg-type]
            return node

    _Wrap().visit(tree)
    return len(wrap)


def _top_level(tree: ast.AST) -> list[ast.AST]:
    """The nodes of the cell's own scope (not inside functions, classes, comprehensions)."""
    out: list[ast.AST] = []
    todo = list(ast.iter_child_nodes(tree))
    while todo:
        node = todo.pop()
        out.append(node)
        if not isinstance(node, _OWN_SCOPES):
            todo.extend(ast.iter_child_nodes(node))
    return out


def _awaits(tree: ast.AST) -> bool:
    """Whether the cell itself awaits (top-level ``await``, ``async for``/``with``)."""
    return any(isinstance(n, ast.Await | ast.AsyncFor | ast.AsyncWith) for n in _top_level(tree))


def _bound_names(tree: ast.AST) -> set[str]:
    """The names the cell binds in its own scope."""
    bound: set[str] = set()
    for node in _top_level(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.MatchAs | ast.MatchStar | ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


def _capture_last(body: list[ast.stmt]) -> bool:
    """Rewrite the last statement of ``body`` so that the value of a final expression is
    stored in ``_LAST``; returns whether anything was rewritten."""
    if not body:
        return False
    last = body[-1]
    if isinstance(last, ast.Expr):
        body[-1] = ast.copy_location(
            ast.Assign(targets=[ast.Name(id=_LAST, ctx=ast.Store())], value=last.value), last
        )
        return True
    if isinstance(last, ast.If):
        a = _capture_last(last.body)
        b = _capture_last(last.orelse)
        return a or b
    if isinstance(last, ast.Try | ast.TryStar):
        changed = _capture_last(last.orelse) if last.orelse else _capture_last(last.body)
        for handler in last.handlers:
            changed = _capture_last(handler.body) or changed
        return changed
    if isinstance(last, ast.With | ast.AsyncWith):
        return _capture_last(last.body)
    return False


def default_builtins() -> Any:
    """The ``__builtins__`` of a REPL: the real builtins module."""
    return builtins


#: Makes the ``__builtins__`` of each new REPL; ``monty_runtime._lockdown.enable()``
#: swaps in one whose ``__import__`` refuses the JavaScript bridge modules.
new_builtins: Callable[[], Any] = default_builtins


class Repl:
    """A persistent namespace plus the compile/run steps of one cell.

    The REPL is deliberately platform-free: running a coroutine (top-level ``await``) or
    calling the host is the platform's business (see ``bridge.py``).
    """

    _cache_size = 256
    # Shared by all sessions: a code object does not depend on the globals it runs in,
    # and sandbox mode makes a REPL per call.
    _cache: OrderedDict[tuple[str, str, frozenset[str]], CompiledCell] = OrderedDict()

    def __init__(self) -> None:
        self.globals: dict[str, Any] = {"__name__": "__main__", "__builtins__": new_builtins()}

    def compile(
        self, source: str, filename: str, await_calls: frozenset[str] = frozenset()
    ) -> CompiledCell:
        """Compile one cell (raises ``SyntaxError``).  Compiled cells are cached by source
        and file name: an agent often repeats the same small snippet.

        Each distinct cell is compiled under its own internal file name
        (``main.py#12``), registered with :mod:`linecache`, so that a traceback through
        a function defined three cells ago -- or through a parallel sandbox execution
        with the same ``script_name`` -- shows the right source lines (and
        ``inspect.getsource`` works).  Tracebacks given to the caller show the
        ``script_name`` itself.

        ``await_calls``: host function names whose top-level sync-style calls are
        awaited (:func:`await_host_calls`; the platform cannot block in a call)."""
        key = (source, filename, await_calls)
        cell = self._cache.get(key)
        if cell is None:
            internal = f"{filename}#{next(_cell_numbers)}"
            _register_source(source, internal, filename)
            flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
            tree = compile(source, internal, "exec", flags, dont_inherit=True)
            assert isinstance(tree, ast.Module)
            if await_calls:
                await_host_calls(tree, await_calls)
            _capture_last(tree.body)
            ast.fix_missing_locations(tree)
            code = compile(
                tree, internal, "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
            )
            cell = CompiledCell(code, filename, bool(code.co_flags & _CO_COROUTINE), source)
            cache = self._cache
            cache[key] = cell
            if len(cache) > self._cache_size:
                try:
                    cache.popitem(last=False)
                except KeyError:  # pragma: no cover - a concurrent eviction won
                    pass
        elif cell.code.co_filename not in linecache.cache:  # someone cleared linecache
            _register_source(source, cell.code.co_filename, filename)
        return cell

    def start(self, cell: CompiledCell) -> Any:
        """Run ``cell``.  For a sync cell, returns nothing (the value is read with
        :meth:`take_value`); for an async cell, returns the coroutine to be awaited."""
        self.globals.pop(_LAST, None)
        return eval(cell.code, self.globals)

    def take_value(self) -> Any:
        """The last expression's value of the cell that just ran (``None`` if none)."""
        return self.globals.pop(_LAST, None)

    def discard_value(self) -> None:
        self.globals.pop(_LAST, None)

    # -- errors -----------------------------------------------------------------------

    def script_error(self, exc: BaseException) -> ScriptError:
        """Describe ``exc`` for the caller: type, message, a traceback trimmed to the
        user's frames, and the line in the user's script."""
        if isinstance(exc, SyntaxError) and exc.filename in _display_names:
            text = _display("".join(traceback.format_exception_only(type(exc), exc)))
            return ScriptError(
                type=type(exc).__name__,
                message=exc.msg or str(exc),
                traceback=text,
                lineno=exc.lineno,
                filename=_display_names[exc.filename],
            )
        if isinstance(exc, ExecutionInterrupted):
            etype = exc.error_type
        elif isinstance(exc, HostError):
            etype = exc.type
        else:
            etype = type(exc).__name__
        tb = _trim(exc.__traceback__)
        lineno: int | None = None
        filename: str | None = None
        t = tb
        while t is not None:
            shown = _display_names.get(t.tb_frame.f_code.co_filename)
            if shown is not None:
                lineno = t.tb_lineno
                filename = shown
            t = t.tb_next
        try:
            if isinstance(exc, ExecutionInterrupted | HostError):
                # Name the type the caller sees, not the runtime's internal class.
                head = "Traceback (most recent call last):\n" if tb is not None else ""
                text = head + "".join(traceback.format_tb(tb)) + f"{etype}: {exc}\n"
            else:
                text = "".join(traceback.format_exception(type(exc), exc, tb))
        except Exception:  # a broken __str__ must not break error reporting
            text = f"{etype}: <unprintable>\n"
        text = _display(text)
        try:
            message = str(exc)
        except Exception:
            message = "<unprintable message>"
        if isinstance(exc, KeyError) and len(exc.args) == 1:
            message = repr(exc.args[0])
        return ScriptError(etype, message, text, lineno, filename)


_cell_numbers = itertools.count(1)
#: internal cell file name (``main.py#12``) -> the script name the user gave.
_display_names: dict[str, str] = {}
_CELL_FILE = re.compile(r'File "((?:[^"\\]|\\.)*)#\d+"')


def _register_source(source: str, internal: str, shown: str) -> None:
    lines = source.splitlines(keepends=True)
    linecache.cache[internal] = (len(source), None, lines, internal)
    _display_names[internal] = shown


def _display(text: str) -> str:
    """Show internal cell file names as the script name the user gave."""
    if "#" not in text:
        return text
    return _CELL_FILE.sub(lambda m: f'File "{m.group(1)}"', text)


#: Pyodide's own packages (its event loop, the FFI), in its standard library zip.
_PYODIDE_PARTS = ("/pyodide/", "/_pyodide/") if sys.platform == "emscripten" else ()


def is_internal_frame(filename: str) -> bool:
    """The one rule for "not the user's frame": the runtime's own, asyncio's, and under
    Pyodide, Pyodide's (its event loop and FFI). Tracebacks leave these out (here and in
    worker.py), and an interrupt is never raised into one (_control.py)."""
    return (
        filename.startswith(_PACKAGE_DIR)
        or filename.startswith(_ASYNCIO_DIR)
        or any(part in filename for part in _PYODIDE_PARTS)
    )


def _trim(tb: types.TracebackType | None) -> types.TracebackType | None:
    """Rebuild a traceback without the runtime's own frames (and asyncio's), so the user
    (and the model) sees only frames of their code and of the libraries it called."""
    frames: list[types.TracebackType] = []
    while tb is not None:
        if not is_internal_frame(tb.tb_frame.f_code.co_filename):
            frames.append(tb)
        tb = tb.tb_next
    new: types.TracebackType | None = None
    for t in reversed(frames):
        new = types.TracebackType(new, t.tb_frame, t.tb_lasti, t.tb_lineno)
    return new


# -- output capture ------------------------------------------------------------------

class OutputCapture:
    """The output of one execution: kept in full (for ``result.stdout``) and streamed as
    ``print`` events, line-buffered so that one ``print`` is one event.

    ``emit(stream, text)`` is called with complete lines (and with any rest at
    :meth:`flush`).  An unfinished line is held as a list of parts, and emitted as it is
    once many small writes made it ``PARTIAL_LINE_CHARS`` long, so that
    ``print(x, end="")`` in a loop streams and costs linear time.  The byte budget is
    checked at each write: the write that crosses it raises
    :class:`~monty_runtime.errors.OutputLimitExceeded`.
    """

    PARTIAL_LINE_CHARS = 65536
    _COMPACT_PARTS = 256

    __slots__ = ("_emit", "_exc", "_pending", "_used", "limit", "parts")

    def __init__(
        self,
        emit: Callable[[str, str], None],
        limit: int,
        exc: Callable[[str], BaseException],
    ) -> None:
        self._emit = emit
        self._exc = exc
        self.limit = limit
        self._used = 0
        self.parts: dict[str, list[str]] = {"stdout": [], "stderr": []}
        # The unfinished line of each stream, as parts.
        self._pending: dict[str, list[str]] = {"stdout": [], "stderr": []}

    def write(self, stream: str, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        n = len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
        if self._used + n > self.limit:
            room = self.limit - self._used
            if room > 0:
                head = text.encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
                self._used = self.limit
                self._add(stream, head)
            self.flush()
            raise self._exc(f"output exceeded max_output_bytes={self.limit}")
        self._used += n
        self._add(stream, text)
        return len(text)

    def _add(self, stream: str, text: str) -> None:
        self.parts[stream].append(text)
        held = self._pending[stream]
        cut = text.rfind("\n")
        if cut < 0:
            held.append(text)
            if len(held) >= self._COMPACT_PARTS:
                line = "".join(held)
                held.clear()
                if len(line) >= self.PARTIAL_LINE_CHARS:
                    self._emit(stream, line)
                else:
                    held.append(line)
            return
        if held:
            head = "".join(held) + text[: cut + 1]
            held.clear()
        else:
            head = text[: cut + 1]
        if cut + 1 < len(text):
            held.append(text[cut + 1 :])
        self._emit(stream, head)

    def flush(self) -> None:
        """Emit what is pending (called before a host call and at the end of a run)."""
        for stream in ("stdout", "stderr"):
            held = self._pending[stream]
            if held:
                rest = "".join(held)
                held.clear()
                if rest:
                    self._emit(stream, rest)

    def text(self, stream: str) -> str:
        return "".join(self.parts[stream])


#: The output capture of the execution running in this context (thread or task).
current_capture: contextvars.ContextVar[OutputCapture | None] = contextvars.ContextVar(
    "monty_current_capture", default=None
)


class _StreamRouter(io.TextIOBase):
    """Replaces ``sys.stdout``/``sys.stderr`` once per process: writes made inside an
    execution (in its thread, its tasks, or a host function it called) go to that
    execution's capture; all other writes go to the original stream.  Routing by
    context is what keeps the output of parallel executions apart."""

    def __init__(self, name: str, fallback: TextIO) -> None:
        self._name = name
        self.fallback = fallback

    def write(self, s: str) -> int:
        cap = current_capture.get()
        if cap is None:
            return self.fallback.write(s)
        return cap.write(self._name, s)

    def flush(self) -> None:
        if current_capture.get() is None:
            self.fallback.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def fileno(self) -> int:
        return self.fallback.fileno()


def install_stream_router() -> None:
    """Make sure ``sys.stdout``/``sys.stderr`` route by execution (cheap when already
    installed; re-installs if something replaced them, e.g. executed code)."""
    out = sys.stdout
    if not isinstance(out, _StreamRouter):
        sys.stdout = _StreamRouter("stdout", out)  # type: ignore[assignment]
    err = sys.stderr
    if not isinstance(err, _StreamRouter):
        sys.stderr = _StreamRouter("stderr", err)  # type: ignore[assignment]
