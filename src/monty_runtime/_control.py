"""The worker's control channel (the Pyodide side).

A Pyodide worker has one thread: while executed code runs a CPU-bound loop, the worker
reads no messages.  When the page is cross-origin isolated it reaches the code anyway:

* the page and the worker share a small ``SharedArrayBuffer`` (layout: ``CONTROL`` in
  ``web/shared/protocol.js``).  Its first word is Pyodide's *interrupt buffer*
  (``pyodide.setInterruptBuffer``); the rest is a ring of requests ``(kind, request
  id)`` written by the page;
* to be heard, the page writes :data:`SIGNUM` (SIGUSR1) into the interrupt buffer.
  Between two bytecodes Python then runs :meth:`Control.on_signal`, which reads the
  ring (``hooks.control()`` in ``worker.js``, which also counts a heartbeat) and acts:

  ``INTERRUPT``  raise ``KeyboardInterrupt`` in that request's running code;
  ``TIMEOUT``    raise ``ExecutionTimeout`` (reported as ``TimeoutError``) in it;

  and, on every signal (the page also sends bare "ticks" while an execution is in
  flight), flushes the print text the session holds back (``_batching.py``).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any, Protocol

from .bridge import Execution, current_execution
from .errors import ExecutionTimeout
from .repl import is_internal_frame


class Session(Protocol):
    """What the control channel needs of the worker session it serves
    (``worker.WorkerSession``; a fake in the unit tests)."""

    def in_sync_call(self) -> bool:
        """Whether the code blocks in a sync-style host call now (JSPI ``run_sync`` or
        ``Atomics.wait``): calling into JavaScript then would break the call."""

    def flush_output(self) -> None:
        """Post the print text held back for batching."""

    def execution_of(self, rid: Any) -> Execution | None:
        """The running execution of the page's request ``rid``, if its code still runs."""

__all__ = [
    "KIND_INTERRUPT",
    "KIND_TIMEOUT",
    "SIGNUM",
    "Control",
    "Session",
]

#: The signal number the page writes into the interrupt buffer: "read the ring".
SIGNUM = 10  # SIGUSR1; Pyodide ignores it unless a handler is installed
# Kind 1 was "an execute is on its way, refuse it if busy": the page decides that
# alone now (web/monty-runtime.js BusyGuard), so the kind is retired, not reused.
KIND_INTERRUPT = 2
KIND_TIMEOUT = 3


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

    def __init__(self, session: Session, read: Callable[..., Any]) -> None:
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
        if self.session.in_sync_call():
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
        if current_execution.get() is ex and not getattr(ex.state, "interrupting", False):
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
        return self.session.execution_of(rid)
