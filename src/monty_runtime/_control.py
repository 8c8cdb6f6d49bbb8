"""The worker's control channel and print batching (the Pyodide side).

A Pyodide worker has one thread: while executed code runs a CPU-bound loop, the worker
reads no messages.  When the page is cross-origin isolated it reaches the code anyway:

* the page and the worker share a small ``SharedArrayBuffer`` (layout: ``CONTROL`` in
  ``web/protocol.js``).  Its first word is Pyodide's *interrupt buffer*
  (``pyodide.setInterruptBuffer``); the rest is a ring of requests ``(kind, request
  id)`` written by the page;
* to be heard, the page writes :data:`SIGNUM` (SIGUSR1) into the interrupt buffer.
  Between two bytecodes Python then runs :meth:`Control.on_signal`, which reads the
  ring (``hooks.control()`` in ``worker.js``, which also counts a heartbeat) and acts:

  ``INTERRUPT``  raise ``KeyboardInterrupt`` in that request's running code;
  ``TIMEOUT``    raise ``ExecutionTimeout`` (reported as ``TimeoutError``) in it;

  and, on every signal (the page also sends bare "ticks" while an execution is in
  flight), flushes the print text held by :class:`PrintBatcher`.

Executed code that prints a lot would otherwise post one message per line.
:class:`PrintBatcher` holds the ``print`` events of one execution and posts them
merged: at once when the previous flush is older than :data:`FLUSH_SECONDS`, else when
:data:`FLUSH_CHARS` are pending, before any other event (so ``call_started``, the final
event and the result always follow the text printed before them), on a control tick,
or from the event loop when the code awaits.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .bridge import Execution, current_execution
from .errors import ExecutionTimeout
from .events import Print
from .repl import is_internal_frame

if TYPE_CHECKING:
    from .worker import WorkerSession

__all__ = [
    "FLUSH_CHARS",
    "FLUSH_SECONDS",
    "KIND_INTERRUPT",
    "KIND_TIMEOUT",
    "MAX_BATCH",
    "SIGNUM",
    "Control",
    "PrintBatcher",
]

#: The signal number the page writes into the interrupt buffer: "read the ring".
SIGNUM = 10  # SIGUSR1; Pyodide ignores it unless a handler is installed
# Kind 1 was "an execute is on its way, refuse it if busy": the page decides that
# alone now (web/monty-runtime.js BusyGuard), so the kind is retired, not reused.
KIND_INTERRUPT = 2
KIND_TIMEOUT = 3

#: Print batching: post held text when the last post is older than this (seconds) ...
FLUSH_SECONDS = 0.016
#: ... or when this many characters are held.
FLUSH_CHARS = 65536

#: Most messages in one batch (the page refuses a longer one: web/control.js MAX_BATCH).
MAX_BATCH = 16

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_clock = time.monotonic


class PrintBatcher:
    """The ``print`` events of one execution, posted merged (see the module doc)."""

    __slots__ = ("_execution_id", "_last", "_post", "_prefix", "_segments", "_size",
                 "_timer")

    def __init__(self, post: Callable[[str], None], prefix: str) -> None:
        self._post = post
        self._prefix = prefix  # '{"type":"event","id":<rid>,"event":'
        self._segments: list[tuple[str, list[str]]] = []
        self._size = 0
        self._last = 0.0
        self._execution_id = ""
        self._timer: Any = None

    @property
    def pending(self) -> int:
        """Characters held."""
        return self._size

    def add(self, event: Print) -> None:
        segments = self._segments
        if segments and segments[-1][0] == event.stream:
            segments[-1][1].append(event.text)
        else:
            segments.append((event.stream, [event.text]))
            self._execution_id = event.execution_id
        self._size += len(event.text)
        if self._size >= FLUSH_CHARS or _clock() - self._last >= FLUSH_SECONDS:
            self.flush()
        elif self._timer is None:
            self._schedule()

    def flush(self) -> None:
        """Post what is held (one message; a JSON array when there are several)."""
        segments = self._segments
        if not segments:
            return
        self._segments = []
        self._size = 0
        self._last = _clock()
        prefix = self._prefix
        eid = self._execution_id
        texts = [
            prefix + _dumps(Print(eid, stream, "".join(parts)).to_dict()) + "}"  # type: ignore[arg-type]
            for stream, parts in segments
        ]
        for start in range(0, len(texts), MAX_BATCH):
            group = texts[start:start + MAX_BATCH]
            self._post(group[0] if len(group) == 1 else "[" + ",".join(group) + "]")

    def close(self) -> None:
        self.flush()
        timer = self._timer
        self._timer = None
        if timer is not None:
            timer.cancel()

    def _schedule(self) -> None:
        # Runs when the code awaits (or ends); a CPU-bound loop is covered by the
        # control ticks, or by its next print.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(FLUSH_SECONDS, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()


def _internal(frame: Any) -> bool:
    """A frame of the runtime, asyncio or Pyodide (not a place to raise into)."""
    if frame is None:
        return True
    return is_internal_frame(frame.f_code.co_filename)


class Control:
    """The signal handler side of the control channel of one worker session.

    An interrupt reaches the code in one of three ways: it fails the host call the
    code waits for, it cancels the code's task when the code awaits something else
    (both through ``Execution.interrupt``), or -- when the code is what runs now -- the
    handler raises it.  It is raised only from a frame of the user's code (or of a
    library it called): landing in the runtime's or Pyodide's own frames, the handler
    re-arms the signal and tries again between the next bytecodes.

    The page sends each interrupt twice, as an ``interrupt`` message (heard when the
    worker's event loop is free: code awaiting, or suspended in a JSPI host call) and
    as a ring entry (heard between bytecodes); the two are paired by counting them per
    request, so that one interrupt raises one exception.
    """

    def __init__(self, session: WorkerSession, read: Callable[..., Any]) -> None:
        self.session = session
        self._read = read
        self._requests: dict[Any, list[int]] = {}  # rid -> [ring, message] interrupts
        self._stops: dict[Any, type[BaseException]] = {}  # to raise from a user frame
        self.ticks = 0

    # -- the signal handler -------------------------------------------------------------

    def install(self) -> None:
        """(Re)install the handler (cheap when it is in place; executed code may have
        replaced it)."""
        if signal.getsignal(SIGNUM) is not self.on_signal:
            signal.signal(SIGNUM, self.on_signal)

    def on_signal(self, signum: int, frame: Any) -> None:
        if self.session.platform.blocking:
            # Inside a sync-style host call (JSPI run_sync / Atomics.wait): calling into
            # JavaScript here breaks the call. The ring keeps its entries, the page's
            # ticks signal again, and an interrupt reaches the call as a message.
            return
        exc = self.tick(frame)
        if exc is not None:
            raise exc

    def tick(self, frame: Any = None) -> BaseException | None:
        """Handle what the page asked; returns the exception to raise in the code that
        is running now, if the page asked to stop it."""
        self.ticks += 1
        text = self._read()
        self.session.flush_output()
        if text:
            try:
                numbers = [int(part) for part in str(text).split(",")]
            except ValueError:
                numbers = []
            for kind, rid in zip(numbers[::2], numbers[1::2], strict=False):
                if kind == KIND_INTERRUPT:
                    self.interrupt(rid, ring=True)
                elif kind == KIND_TIMEOUT:
                    self.stop(rid, ExecutionTimeout)
        if not self._stops:
            return None
        exc = self._deliver(frame)
        if self._stops:
            self._read(True)  # not in the user's code now: signal again, soon
        return exc

    # -- requests -----------------------------------------------------------------------

    def interrupt(self, rid: Any, ring: bool) -> None:
        """One half of an interrupt of request ``rid`` (a ring entry, or an
        ``interrupt`` message): the first of a pair interrupts, the second is its
        echo."""
        if self._execution(rid) is None:
            self._requests.pop(rid, None)
            return
        if not ring and self._stops:
            # A message is handled outside the code: an interrupt the handler could not
            # raise yet (the code went on into a host call) reaches it now, by failing
            # that call.
            self._deliver(None)
        counts = self._requests.setdefault(rid, [0, 0])
        before = max(counts)
        counts[0 if ring else 1] += 1
        if max(counts) > before:
            self.stop(rid, KeyboardInterrupt)

    def stop(self, rid: Any, exc_type: type[BaseException]) -> None:
        """Interrupt request ``rid``'s execution with ``exc_type``."""
        ex = self._execution(rid)
        if ex is None:
            return
        ex.interrupt(exc_type)  # fails the host call it waits for / cancels its task
        if current_execution.get() is ex and not getattr(ex.host, "interrupting", False):
            self._stops[rid] = exc_type  # it runs now: raise it from the handler

    def _deliver(self, frame: Any) -> BaseException | None:
        running_now = current_execution.get()
        for rid, exc_type in list(self._stops.items()):
            ex = self._execution(rid)
            if ex is None:
                del self._stops[rid]
            elif running_now is not ex:
                # It awaits now: interrupt it the way that reaches awaiting code.
                del self._stops[rid]
                ex.interrupt(exc_type)
            elif not _internal(frame):
                del self._stops[rid]
                return exc_type()
        return None

    def _execution(self, rid: Any) -> Execution | None:
        bridge = self.session.running.get(rid)
        ex = None if bridge is None else bridge.current
        if ex is None or ex.finished or getattr(ex.host, "rid", None) != rid:
            return None
        return ex
