"""Print batching in the worker (monty_runtime._batching): merged, in order, exact,
before any other event, flushed by the clock, the size bound and control ticks; batches
no longer than the page accepts (web/page/control.js MAX_BATCH)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from worker_hooks import make_session, until

from monty_runtime import _batching
from monty_runtime._batching import MAX_BATCH, PrintBatcher
from monty_runtime.events import Print


def test_print_batcher_merges_and_flushes(monkeypatch: pytest.MonkeyPatch) -> None:
    posted: list[str] = []
    now = [100.0]
    monkeypatch.setattr(_batching, "_clock", lambda: now[0])
    batch = PrintBatcher(posted.append, '{"type":"event","id":1,"event":')
    batch.add(Print("ex-1", "stdout", "a\n"))  # the first: posted at once
    assert len(posted) == 1
    for text in ("b\n", "c\n"):
        batch.add(Print("ex-1", "stdout", text))
    batch.add(Print("ex-1", "stderr", "e\n"))
    assert len(posted) == 1 and batch.pending == 6
    now[0] += _batching.FLUSH_SECONDS  # the next print finds the last post old enough
    batch.add(Print("ex-1", "stdout", "d\n"))
    assert len(posted) == 2 and batch.pending == 0
    merged = json.loads(posted[1])
    assert [m["event"]["text"] for m in merged] == ["b\nc\n", "e\n", "d\n"]
    assert [m["event"]["stream"] for m in merged] == ["stdout", "stderr", "stdout"]
    assert all(m["event"]["execution_id"] == "ex-1" and m["id"] == 1 for m in merged)
    big = "x" * _batching.FLUSH_CHARS
    batch.add(Print("ex-1", "stdout", big))  # the size bound
    assert json.loads(posted[2])["event"]["text"] == big
    batch.close()
    assert len(posted) == 3


async def test_flood_is_coalesced_in_order_and_exact() -> None:
    s, hooks = make_session()
    s.execute(1, "for i in range(20000):\n    print(i)\nprint('end', flush=True)")
    events = [m["event"] for m in hooks.of("event", 1)]
    prints = [e for e in events if e["type"] == "print"]
    assert prints and len(prints) < 200
    text = "".join(e["text"] for e in prints)
    assert text == "".join(f"{i}\n" for i in range(20000)) + "end\n"
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert hooks.of("result", 1)[0]["stdout"] == text


async def test_prints_leave_before_the_host_call_that_follows_them() -> None:
    s, hooks = make_session()
    s.execute(1, "print('a')\nprint('b')\nv = await wait()\nprint('c')")
    await until(lambda: hooks.of("host_call"))
    kinds = [(m["type"], m.get("event", {}).get("type")) for m in hooks.sent]
    assert ("event", "call_started") in kinds
    texts = "".join(m["event"]["text"] for m in hooks.of("event", 1) if m["event"]["type"] == "print")
    assert texts == "a\nb\n", "held print text must precede call_started"
    call = hooks.of("host_call")[0]
    hooks.settle(call["id"], json.dumps({"ok": True, "value": 1}))
    await until(lambda: hooks.of("result", 1))
    assert hooks.of("result", 1)[0]["stdout"] == "a\nb\nc\n"


async def test_tick_flushes_held_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_batching, "_clock", lambda: 100.0)
    s, hooks = make_session()
    s.execute(1, "print('a')\nprint('b')\nimport asyncio\nawait asyncio.sleep(0.5)")
    for _ in range(3):
        await asyncio.sleep(0)  # the cell runs up to its sleep
    held = list(s.outboxes.values())
    assert held and held[0].pending == 2  # 'b\n' is held (the 'a' went at once)
    assert s.control is not None
    s.control.tick()
    texts = [m["event"]["text"] for m in hooks.of("event", 1) if m["event"]["type"] == "print"]
    assert texts == ["a\n", "b\n"]
    await until(lambda: hooks.of("result", 1))


def test_the_batch_limit_is_the_same_on_both_sides_and_print_batches_respect_it() -> None:
    text = (Path(__file__).resolve().parents[2] / "web" / "page" / "control.js").read_text(encoding="utf-8")
    found = re.search(r"export const MAX_BATCH = (\d+);", text)
    assert found and int(found.group(1)) == MAX_BATCH
    posted: list[str] = []
    batcher = PrintBatcher(posted.append, '{"type":"event","id":1,"event":')
    for i in range(5 * MAX_BATCH):  # alternating streams: one segment each
        batcher._segments.append(("stdout" if i % 2 else "stderr", [str(i)]))
    batcher.flush()
    sizes = [len(m) if isinstance(m := json.loads(p), list) else 1 for p in posted]
    assert max(sizes) <= MAX_BATCH and sum(sizes) == 5 * MAX_BATCH
