"""The page/worker protocol: Python's table (monty_runtime.protocol) and JavaScript's
(web/shared/protocol.js) must not drift; and the worker's Python side (monty_runtime.worker),
driven in CPython with fake JS hooks."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from worker_hooks import FakeHooks

from monty_runtime import codec, protocol, worker
from monty_runtime._pyodide import PyodidePlatform
from monty_runtime.protocol import MESSAGES, PROTOCOL_VERSION, check_message

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL_JS = ROOT / "web" / "shared" / "protocol.js"


def js_table() -> tuple[int, dict[str, Any]]:
    text = PROTOCOL_JS.read_text(encoding="utf-8")
    version = re.search(r"export const PROTOCOL_VERSION = (\d+);", text)
    block = re.search(r"/\* BEGIN MESSAGES \*/(.*?)/\* END MESSAGES \*/", text, re.DOTALL)
    assert version and block, "web/shared/protocol.js lost its PROTOCOL_VERSION or MESSAGES markers"
    return int(version.group(1)), json.loads(block.group(1))


def test_python_and_js_tables_are_the_same() -> None:
    version, table = js_table()
    assert version == PROTOCOL_VERSION
    assert table == MESSAGES


def test_table_shape() -> None:
    assert set(MESSAGES) == {"page_to_worker", "worker_to_page"}
    assert set(MESSAGES["page_to_worker"]) == {
        "init", "plan", "configure", "execute", "host_result", "interrupt", "dispose", "ping"
    }
    assert set(MESSAGES["worker_to_page"]) == {
        "ready", "booted", "snapshot", "boot_error", "event", "result", "rejected",
        "host_call", "log", "pong", "fatal"
    }
    for direction in MESSAGES.values():
        for spec in direction.values():
            assert set(spec) == {"required", "optional"}
            assert not set(spec["required"]) & set(spec["optional"])
            assert "type" not in spec["required"]


def test_js_module_exports_the_same_table() -> None:
    """The module itself (not only the text between the markers) agrees, and its
    checkMessage() agrees with Python's check_message()."""
    samples = [
        ["page_to_worker", {"type": "execute", "id": 1, "code": "1"}],
        ["page_to_worker", {"type": "execute", "id": 1}],
        ["page_to_worker", {"type": "bogus"}],
        ["page_to_worker", [1, 2]],
        ["worker_to_page", {"type": "ready", "version": 1, "phases": {}, "env": {}}],
        ["worker_to_page", {"type": "host_call", "id": 1}],
    ]
    script = (
        "const m = await import(process.argv[1]);"
        "const samples = JSON.parse(process.argv[2]);"
        "console.log(JSON.stringify({version: m.PROTOCOL_VERSION, messages: m.MESSAGES,"
        " frozen: Object.isFrozen(m.MESSAGES.page_to_worker.execute.required),"
        " checks: samples.map(([d, msg]) => m.checkMessage(d, msg) === null)}));"
    )
    out = subprocess.run(
        ["node", "--input-type=module", "-e", script, PROTOCOL_JS.as_uri(), json.dumps(samples)],
        capture_output=True, text=True, timeout=30, check=True,
    )
    got = json.loads(out.stdout)
    assert got["version"] == PROTOCOL_VERSION
    assert got["messages"] == MESSAGES
    assert got["frozen"] is True
    assert got["checks"] == [check_message(d, m) is None for d, m in samples]


def test_check_message() -> None:
    assert check_message("page_to_worker", {"type": "execute", "id": 1, "code": ""}) is None
    assert "unknown message type" in str(check_message("page_to_worker", {"type": "nope"}))
    assert "without code" in str(check_message("page_to_worker", {"type": "execute", "id": 1}))
    assert "must be an object" in str(check_message("worker_to_page", "text"))
    assert protocol.fields("worker_to_page", "result")[:2] == ["id", "value"]


# ---------------------------------------------------------------- the worker, in CPython


FUNCTIONS = [
    {"name": "add", "description": "Add.", "parameters": {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    }},
    {"name": "anything", "description": "", "parameters": None},
    {"name": "ns.ping", "description": "", "parameters": {"type": "object", "properties": {}}},
]


def session(**config: Any) -> tuple[worker.WorkerSession, FakeHooks]:
    hooks = FakeHooks()
    base = {"version": PROTOCOL_VERSION, "functions": FUNCTIONS, "sandbox": False,
            "limits": None, "sync": "auto"}
    base.update(config)
    return worker.WorkerSession(hooks, base), hooks


async def until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.001)


async def test_execute_posts_events_then_result() -> None:
    s, hooks = session()
    s.execute(1, "print('hi')\nx = 41\nx + 1")
    events = [m["event"]["type"] for m in hooks.of("event", 1)]
    assert events == ["run_started", "print", "run_finished"]
    (result,) = hooks.of("result", 1)
    assert result["value"] == 42 and result["stdout"] == "hi\n" and result["error"] is None
    assert result["session_lost"] is False
    assert check_message("worker_to_page", result) is None
    s.execute(2, "x")
    assert hooks.of("result", 2)[0]["value"] == 41  # shared mode keeps state


async def test_contextvars_do_not_leak_between_executions() -> None:
    s, hooks = session()
    s.execute(1, "import asyncio, contextvars\nv = contextvars.ContextVar('v', default=0)")
    s.execute(2, "v.set(7)\nasync def f():\n    return v.get()\nawait asyncio.create_task(f())")
    await until(lambda: hooks.of("result", 2))
    assert hooks.of("result", 2)[0]["value"] == 7, "a task inherits the execution's context"
    s.execute(3, "v.get()")
    assert hooks.of("result", 3)[0]["value"] == 0, "a setting leaked into the next execution"


async def test_busy_bridge_rejects_overlapping_execute() -> None:
    s, hooks = session()
    s.execute(1, "v = await add(1, 2)\nv")
    await until(lambda: hooks.of("host_call"))
    (call,) = hooks.of("host_call")
    assert call["name"] == "add" and call["args"] == [1, 2] and call["execution"] == 1
    assert call["sync"] is False
    s.execute(2, "1 + 1")
    (rejected,) = hooks.of("rejected", 2)
    assert rejected["error"] == {"name": "StateError", "message": "Bridge is already executing",
                                 "reason": "busy"}
    hooks.answer(call["id"], 3)
    await until(lambda: hooks.of("result", 1))
    assert hooks.of("result", 1)[0]["value"] == 3
    s.execute(3, "1 + 1")
    assert hooks.of("result", 3)[0]["value"] == 2


async def test_execute_inputs_are_decoded_with_the_codec() -> None:
    s, hooks = session()
    wire = codec.dumps({"n": 10**30, "raw": b"\x00\xff", "m": {1: "one"}, "t": (1, 2)})
    s.handle({"type": "execute", "id": 1, "code": "[n + 1, raw, m[1], t]", "inputs": wire})
    (result,) = hooks.of("result", 1)
    assert result["error"] is None
    assert codec.decode(result["value"]) == [10**30 + 1, b"\x00\xff", "one", (1, 2)]
    # Malformed inputs are rejected with the reason, and the bridge stays usable.
    bad = {
        2: ("[1, 2]", "TypeError", "inputs must be an object, got list"),
        3: ('{"1x": 1}', "TypeError", "keys are Python identifiers"),
        4: ('{"a": {"$nope": 1}}', "ValueError", "not a codec wire value: malformed tagged"),
        5: ("{not json", "ValueError", "not a codec wire value: invalid JSON"),
    }
    for rid, (text, name, message) in bad.items():
        s.handle({"type": "execute", "id": rid, "code": "1", "inputs": text})
        (rejected,) = hooks.of("rejected", rid)
        assert rejected["error"]["name"] == name and message in rejected["error"]["message"]
    s.handle({"type": "execute", "id": 6, "code": "n % 7"})
    assert hooks.of("result", 6)[0]["value"] == 10**30 % 7


async def test_sandbox_runs_overlapping_executes_in_fresh_repls() -> None:
    s, hooks = session(sandbox=True)
    s.execute(1, "x = 1\nawait add(1, 1)")
    s.execute(2, "x = 2\nawait add(2, 2)")
    await until(lambda: len(hooks.of("host_call")) == 2)
    for call in hooks.of("host_call"):
        hooks.answer(call["id"], sum(call["args"]))
    await until(lambda: len(hooks.of("result")) == 2)
    assert [hooks.of("result", i)[0]["value"] for i in (1, 2)] == [2, 4]
    s.execute(3, "x")
    assert hooks.of("result", 3)[0]["error"]["type"] == "NameError"


async def test_host_errors_schema_and_kwargs() -> None:
    s, hooks = session()
    s.execute(1, "try:\n    add('x', 1)\nexcept TypeError as e:\n    m = str(e)\nm")
    assert "argument 'a' must be integer" in hooks.of("result", 1)[0]["value"]
    assert not hooks.of("host_call"), "a bad call must not reach the page"
    s.execute(2, "v = await anything(1, k=2)")
    await until(lambda: hooks.of("host_call"))
    call = hooks.of("host_call")[0]
    assert call["args"] == [1] and call["kwargs"] == {"k": 2}
    hooks.answer(call["id"], error={"type": "QuotaError", "message": "no"})
    await until(lambda: hooks.of("result", 2))
    error = hooks.of("result", 2)[0]["error"]
    assert error["type"] == "QuotaError" and error["message"] == "no"


async def test_sync_style_calls_by_mode() -> None:
    # Atomics: the answer is read from the shared buffer (here: a scripted waitSync).
    s, hooks = session(sync="atomics", syncBuffer=True)
    hooks.sync_answers.append(json.dumps({"type": "host_result", "id": 1, "ok": True, "value": 5}))
    s.execute(1, "x = add(2, 3)\nx")
    assert hooks.of("host_call")[0]["sync"] is True
    assert hooks.of("result", 1)[0]["value"] == 5
    # No JSPI and no buffer: a TypeError that says to await.
    s, hooks = session(sync="auto")
    s.execute(1, "x = add(2, 3)")
    error = hooks.of("result", 1)[0]["error"]
    assert error["type"] == "TypeError" and "use `await add(...)`" in error["message"]
    assert not hooks.of("host_call")


async def test_a_sync_answer_left_for_another_call_is_never_taken_for_this_one() -> None:
    # The shared buffer holds answers tagged with their call id: one the page wrote for
    # a host_call forged by executed code (and never read) is dropped by the next call.
    s, hooks = session(sync="atomics", syncBuffer=True)
    stale = {"type": "host_result", "id": 77, "ok": True, "value": 100}
    hooks.sync_answers += [json.dumps(stale), json.dumps({"interrupt": True, "id": 78}),
                           "not json", json.dumps({"type": "host_result", "ok": True, "value": 9}),
                           json.dumps({"type": "host_result", "id": 1, "ok": True, "value": 7}),
                           json.dumps({"type": "host_result", "id": 2, "ok": True, "value": 9})]
    s.execute(1, "a = add(2, 3)\nb = add(4, 5)\n[a, b]")
    assert [c["id"] for c in hooks.of("host_call")] == [1, 2]
    assert hooks.of("result", 1)[0]["value"] == [7, 9]
    assert hooks.sync_answers == []


async def test_timeout_fails_the_pending_call_and_keeps_state() -> None:
    # (KeyboardInterrupt from rt.interrupt() takes the same path; it is tested in the
    # browser, where the webloop is told not to re-raise it: CPython's loop would.)
    s, hooks = session()
    s.execute(1, "y = 5\nv = await add(1, 2)", {"timeout": 0.05})
    await until(lambda: hooks.of("host_call"))
    await until(lambda: hooks.of("result", 1))
    assert hooks.of("result", 1)[0]["error"]["type"] == "TimeoutError"
    finished = [m["event"] for m in hooks.of("event", 1) if m["event"]["type"] == "call_finished"]
    assert finished[0]["error"]["type"] == "TimeoutError"
    assert not hooks.pending, "the pending call was settled"
    s.execute(2, "y")
    assert hooks.of("result", 2)[0]["value"] == 5


async def test_timeout_cancels_an_awaiting_execution() -> None:
    s, hooks = session()
    s.execute(1, "import asyncio\nawait asyncio.sleep(30)", {"timeout": 0.05})
    await until(lambda: hooks.of("result", 1))
    error = hooks.of("result", 1)[0]["error"]
    assert error["type"] == "TimeoutError" and error["lineno"] == 2


async def test_handle_dispatch_and_bad_messages() -> None:
    s, hooks = session()
    s.handle(json.dumps({"type": "execute", "id": 7, "code": "6 * 7"}))
    assert hooks.of("result", 7)[0]["value"] == 42
    s.handle({"type": "bogus", "id": 8})
    assert hooks.of("rejected", 8)[0]["error"]["name"] == "ProtocolError"
    s.handle({"type": "execute", "id": 9})
    assert "without code" in hooks.of("rejected", 9)[0]["error"]["message"]
    s.handle("{not json")
    assert hooks.of("rejected")[-1]["id"] is None
    s.execute(10, 42)
    assert hooks.of("rejected", 10)[0]["error"]["name"] == "TypeError"
    s.execute(11, "#" + "x" * 1_000_000)
    assert hooks.of("rejected", 11)[0]["error"]["name"] == "ValueError"
    s.handle({"type": "dispose"})
    s.execute(12, "1")
    assert hooks.of("rejected", 12)[0]["error"]["name"] == "StateError"


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="protocol version"):
        session(version=PROTOCOL_VERSION + 1)
    with pytest.raises(ValueError, match="not a Python identifier"):
        session(functions=[{"name": "class"}])
    with pytest.raises(ValueError, match="duplicate"):
        session(functions=[{"name": "f"}, {"name": "f"}])
    with pytest.raises(ValueError, match="clashes"):
        session(functions=[{"name": "ns"}, {"name": "ns.f"}])
    with pytest.raises(ValueError, match="sync must be"):
        session(sync="sometimes")
    with pytest.raises(TypeError):
        session(limits={"bogus": 1})


def test_host_function_from_schema() -> None:
    platform = PyodidePlatform(FakeHooks())
    hf = worker.host_function_from_schema(FUNCTIONS[0], platform)
    assert hf.is_async and hf.signature is None and hf.to_schema() == {
        "name": "add", "description": "Add.", "parameters": FUNCTIONS[0]["parameters"]}
    hf.bind((1,), {"b": 2})
    with pytest.raises(TypeError):
        hf.bind((1,), {})
    open_fn = worker.host_function_from_schema({"name": "f", "parameters": None}, platform)
    open_fn.bind((1, 2, 3), {"anything": 4})


async def test_tasks_an_execution_leaves_running_stop_when_the_worker_is_idle() -> None:
    # A task in a fresh contextvars.Context is not the execution's (finished() misses
    # it); the worker stops it when no execution is left. The test's own task, which
    # existed before, is untouched; the JS side is told the count (timers: worker.js).
    hooks = FakeHooks()
    told: list[int] = []
    hooks.running = told.append  # type: ignore[attr-defined]
    s = worker.WorkerSession(hooks, {"version": PROTOCOL_VERSION, "functions": FUNCTIONS,
                                     "sandbox": False, "limits": None, "sync": "auto"})
    s.execute(1, "import asyncio, contextvars\nticks = []\n"
                 "async def forever():\n    while True:\n        ticks.append(1)\n"
                 "        await asyncio.sleep(0.005)\n"
                 "t = contextvars.Context().run(asyncio.get_event_loop().create_task, forever())\n"
                 "await asyncio.sleep(0.03)")
    await until(lambda: hooks.of("result", 1))
    assert hooks.of("result", 1)[0]["error"] is None
    await asyncio.sleep(0.05)
    s.execute(2, "n = len(ticks)\nimport asyncio\nawait asyncio.sleep(0.05)\n[t.cancelled(), len(ticks) - n]")
    await until(lambda: hooks.of("result", 2))
    assert hooks.of("result", 2)[0]["value"] == [True, 0]
    assert told == [1, 0, 1, 0]


async def test_messages_stay_within_the_pages_limit_for_honest_code() -> None:
    # The page cuts off a worker whose message is over its limit (web/page/control.js): a
    # huge exception message is shortened, host-call arguments over max_result_bytes
    # fail in the code instead of being sent.
    s, hooks = session(limits={"max_output_bytes": 1000, "max_result_bytes": 1000})
    s.execute(1, "raise ValueError('x' * 3_000_000)")
    result = hooks.of("result", 1)[0]
    assert result["error"]["type"] == "ValueError"
    assert len(result["error"]["message"]) < 200_000 and "characters cut" in result["error"]["message"]
    final = next(m["event"] for m in hooks.of("event", 1) if m["event"]["type"] == "run_error")
    assert len(final["error"]["message"]) < 200_000
    s.execute(2, "try:\n    await anything('y' * 5000, 1)\nexcept ValueError as e:\n    m = str(e)\nm")
    await until(lambda: hooks.of("result", 2))
    assert "over max_result_bytes=1000" in hooks.of("result", 2)[0]["value"]
    assert not hooks.of("host_call")
