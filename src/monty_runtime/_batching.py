"""Print batching of the worker: the ``print`` events of one execution, posted merged.

Executed code that prints a lot would otherwise post one message per line.
:class:`PrintBatcher` holds the ``print`` events of one execution and posts them
merged: at once when the previous flush is older than :data:`FLUSH_SECONDS`, else when
:data:`FLUSH_CHARS` are pending, before any other event (so ``call_started``, the final
event and the result always follow the text printed before them), on a control tick
(``_control.py``), or from the event loop when the code awaits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from . import _wire
from .events import Print

__all__ = ["FLUSH_CHARS", "FLUSH_SECONDS", "MAX_BATCH", "PrintBatcher"]

#: Print batching: post held text when the last post is older than this (seconds) ...
FLUSH_SECONDS = 0.016
#: ... or when this many characters are held.
FLUSH_CHARS = 65536

#: Most messages in one batch (the page refuses a longer one: web/page/control.js MAX_BATCH).
MAX_BATCH = 16

_dumps = _wire.dumps
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
