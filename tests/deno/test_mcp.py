"""``monty-runtime mcp`` end to end, driven by the official SDK's own client."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

HERE = Path(__file__).resolve().parent
CRASH = (
    "import sys, json\n"
    "vars(json)['__builtins__']['__import__']('js')\n"
    "sys.modules['js'].close()\n"
    "import time\ntime.sleep(5)\n"
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    return env


def _stdio(policy: str, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "monty_runtime", "mcp", "--policy", policy, "--functions", "mcp_functions",
              "--timeout", "3", *extra],
        env=_env(),
    )


async def run(client: Client, code: str, **kwargs: Any) -> dict[str, Any]:
    result = await client.call_tool("run_python", {"code": code}, **kwargs)
    text = result.content[0].text  # type: ignore[union-attr]
    return json.loads(text)


async def test_the_tool_describes_the_host_functions_with_signatures_and_docstrings() -> None:
    async with Client(_stdio("queue")) as client:
        tools = (await client.list_tools()).tools
        assert [t.name for t in tools] == ["run_python"]
        text = tools[0].description or ""
        assert "\n- add(a: int, b: int) -- Add two integers." in text
        assert "\n- slow_echo(text: str, delay: float = ...) -- Echo text after a delay." in text
        assert "Only the first line" not in text


async def test_queue_policy_parallel_calls_wait_their_turn_and_share_state() -> None:
    logs: list[Any] = []

    async def on_log(params: Any) -> None:
        logs.append(params)

    async with Client(_stdio("queue"), logging_callback=on_log, log_level="info") as client:
        assert (await run(client, "seen = []"))["status"] == "ok"
        calls = [run(client, f"import time\ntime.sleep(0.2)\nseen.append({i})\nlen(seen)") for i in range(3)]
        results = await asyncio.gather(*calls)
        assert sorted(r["value"] for r in results) == [1, 2, 3]
        assert all(r["status"] == "ok" for r in results)
        # host functions run in the server's Python, sync-style or awaited
        r = await run(client, "add(2, 3)")
        assert r == {"status": "ok", "value": 5, "stdout": "", "error": None}
        assert (await run(client, "len(await slow_echo('abc'))"))["value"] == 3
        # events reach the client: progress for each, print output as log messages
        progress: list[Any] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append(message)

        r = await run(client, "print('hello from the sandbox')\nadd(1, 1)", progress_callback=on_progress)
        assert r["stdout"] == "hello from the sandbox\n"
        assert any("hello from the sandbox" in str(m) for m in progress)
        assert "calling add" in progress and progress[-1] == "finished"
        assert any("hello from the sandbox" in str(getattr(p, "data", "")) for p in logs)


async def test_busy_policy_answers_busy_to_a_parallel_call() -> None:
    async with Client(_stdio("busy")) as client:
        slow = asyncio.ensure_future(run(client, "import time\ntime.sleep(1.5)\n'slow'"))
        await asyncio.sleep(0.5)
        fast = await run(client, "'fast'")
        assert fast["status"] == "busy" and fast["retry_after_ms"] >= 1
        assert (await slow)["value"] == "slow"
        assert (await run(client, "'after'"))["value"] == "after"


async def test_sandbox_policy_runs_parallel_calls_and_keeps_nothing() -> None:
    async with Client(_stdio("sandbox")) as client:
        calls = [run(client, f"import time\ntime.sleep(0.3)\nmine = {i}\nmine") for i in range(3)]
        assert [r["value"] for r in await asyncio.gather(*calls)] == [0, 1, 2]
        r = await run(client, "mine")
        assert r["status"] == "error" and r["error"]["type"] == "NameError"


async def test_timeout_interrupt_and_crash_through_the_client() -> None:
    async with Client(_stdio("queue")) as client:
        await run(client, "kept = 'state'")
        # a timeout: the code is stopped, the session keeps its state
        r = await run(client, "while True: pass")
        assert r["status"] == "error" and r["error"]["type"] == "TimeoutError"
        assert (await run(client, "kept"))["value"] == "state"
        # an interrupt: cancelling the call stops its code, state kept
        task = asyncio.ensure_future(run(client, "while True: pass"))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        started = time.monotonic()
        r = await run(client, "kept")
        assert r["value"] == "state", r
        assert time.monotonic() - started < 2.5, "the cancelled code kept running"
        # a crash: the call fails, the next one says the session was lost
        r = await run(client, CRASH)
        assert r["status"] == "error" and r["error"]["type"] == "StateError"
        r = await run(client, "'kept' in globals()")
        assert r["status"] == "ok" and r["value"] is False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_two_http_sessions_never_see_each_others_state() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "monty_runtime", "mcp", "--transport", "http", "--port", str(port),
         "--functions", "mcp_functions"],
        env=_env(), stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the HTTP server did not start"
                await asyncio.sleep(0.2)
        async with Client(url, mode="legacy") as a, Client(url, mode="legacy") as b:
            await run(a, "secret = 'a'")
            await run(b, "secret = 'b'")
            assert (await run(a, "secret"))["value"] == "a"
            assert (await run(b, "secret"))["value"] == "b"
            assert (await run(a, "add(40, 2)"))["value"] == 42
        # A stateless (2026 protocol) client has no session: a fresh REPL per call.
        async with Client(url) as c:
            await run(c, "secret = 'c'")
            r = await run(c, "secret")
            assert r["status"] == "error" and r["error"]["type"] == "NameError"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
