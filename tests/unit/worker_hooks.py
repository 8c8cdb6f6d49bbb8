"""worker.js as ``monty_runtime.worker`` sees it, for driving a ``WorkerSession`` in
CPython: it records what Python posts and lets a test answer host calls, script
``Atomics.wait`` answers and fill the control ring."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from monty_runtime import worker
from monty_runtime.protocol import PROTOCOL_VERSION


class FakeHooks:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.pending: dict[int, asyncio.Future[str]] = {}
        self.sync_answers: list[str] = []  # what waitSync() returns, in order
        self.ring: list[int] = []  # control ring entries: kind, request id, ...
        self.rearmed = 0
        self.reads = 0

    def post(self, text: str) -> None:
        message = json.loads(text)
        if isinstance(message, list):  # a batch
            assert len(message) > 1
            self.sent.extend(message)
        else:
            self.sent.append(message)

    def promise(self, call_id: int) -> asyncio.Future[str]:
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.pending[call_id] = fut
        return fut

    def settle(self, call_id: int, text: str) -> None:
        fut = self.pending.pop(call_id, None)
        if fut is not None and not fut.done():
            fut.set_result(text)

    def waitSync(self) -> str:
        return self.sync_answers.pop(0)

    def control(self, rearm: bool = False) -> str:
        if rearm:
            self.rearmed += 1
            return ""
        self.reads += 1
        text = ",".join(map(str, self.ring))
        self.ring.clear()
        return text

    def answer(self, call_id: int, value: Any = None, error: dict[str, str] | None = None) -> None:
        msg: dict[str, Any] = {"type": "host_result", "id": call_id, "ok": error is None}
        if error is None:
            msg["value"] = value
        else:
            msg["error"] = error
        self.settle(call_id, json.dumps(msg))

    def of(self, kind: str, rid: Any = None) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == kind and (rid is None or m.get("id") == rid)]


def make_session(**config: Any) -> tuple[worker.WorkerSession, FakeHooks]:
    """A WorkerSession on FakeHooks (one page function ``wait``, control channel on)."""
    hooks = FakeHooks()
    base = {"version": PROTOCOL_VERSION, "functions": [
        {"name": "wait", "description": "", "parameters": None}], "sandbox": False,
        "limits": None, "sync": "none", "control": True}
    base.update(config)
    return worker.WorkerSession(hooks, base), hooks


async def until(predicate: Any, timeout: float = 5.0) -> None:
    """Wait (yielding to the loop) until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.001)
