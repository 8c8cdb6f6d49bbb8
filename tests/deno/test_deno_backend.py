"""``MontyRuntime(..., backend="deno")``: the native contract, in a sealed Deno worker."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from monty_runtime import Limits, MontyRuntime, StateError
from monty_runtime._deno import DenoHost
from monty_runtime._deno_protocol import MESSAGES

ROOT = Path(__file__).resolve().parents[2]


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def price(item: str) -> float:
    """A price."""
    return 20.0


async def double_later(x: int) -> int:
    """Double x after a short wait."""
    await asyncio.sleep(0.05)
    return x * 2


def test_python_and_js_host_protocol_tables_are_the_same() -> None:
    text = (ROOT / "web" / "server" / "protocol.js").read_text()
    block = re.search(r"/\* BEGIN MESSAGES \*/(.*?)/\* END MESSAGES \*/", text, re.DOTALL)
    assert block, "web/server/protocol.js lost its MESSAGES markers"
    assert json.loads(block.group(1)) == MESSAGES


def test_an_unknown_backend_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="'native', 'deno'"):
        MontyRuntime(backend="wasm")


async def test_values_output_and_errors_come_back_exactly_and_state_persists() -> None:
    async with MontyRuntime(backend="deno") as rt:
        r = await rt.execute("x = 2.0\nprint('hi')\n(x, {1: b'\\x00'}, 2**70)").result
        assert r.error is None and r.stdout == "hi\n"
        assert r.value == (2.0, {1: b"\x00"}, 2**70)
        assert isinstance(r.value[0], float)
        r = await rt.execute("1 / 0").result
        assert r.error is not None and r.error.type == "ZeroDivisionError"
        assert (await rt.execute("x + 1").result).value == 3.0
        h = rt.execute("print('a')\n'done'")
        kinds = [e.type async for e in h.events]
        assert kinds == ["run_started", "print", "run_finished"]
        assert (await h.result).value == "done"
        r = await rt.execute("n + 1", inputs={"n": 41}).result
        assert r.value == 42


async def test_host_functions_run_in_python_sync_style_or_awaited_with_schemas_checked() -> None:
    async with MontyRuntime([add, double_later, price], backend="deno") as rt:
        assert (await rt.execute("add(1, 2)").result).value == 3
        r = await rt.execute("p = price('x')\n(type(p).__name__, p)").result
        assert r.value == ("float", 20.0)
        assert (await rt.execute("await double_later(21)").result).value == 42
        r = await rt.execute("import asyncio\nawait asyncio.gather(double_later(1), double_later(2))").result
        assert r.value == [2, 4]
        r = await rt.execute("add('a', 2)").result
        assert r.error is not None and r.error.type == "TypeError"
        assert "'a'" in r.error.message or "integer" in r.error.message


async def test_a_forged_host_call_is_checked_in_python_too() -> None:
    # The worker is not trusted: a host_call that skipped its own schema check is
    # checked again here before the Python callable runs.
    calls: list[object] = []

    def record(a: int) -> int:
        calls.append(a)
        return a

    async with MontyRuntime([record], backend="deno") as rt:
        answers: list[dict[str, object]] = []
        backend = rt._remote
        backend._answer = lambda call, value=None, error=None: answers.append({"error": error})  # type: ignore[method-assign]
        h = rt.execute("import time\ntime.sleep(0.5)")
        request = max(backend._pending)
        raw = json.dumps({"type": "host_call", "id": 9, "execution": request, "name": "record",
                          "args": ["not an int"], "kwargs": {}, "sync": False})
        backend._on_host_call({"type": "host_call", "rid": backend.rid, "call": 1, "raw": raw, "index": -1})
        raw = raw.replace('"record"', '"os_system"')
        backend._on_host_call({"type": "host_call", "rid": backend.rid, "call": 2, "raw": raw, "index": -1})
        await h.result
        assert calls == []
        assert answers[0]["error"]["type"] == "TypeError"  # type: ignore[index]
        assert "unknown host function" in answers[1]["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize("delay_ms", [0, 1, 5, 20, 60, 120])
async def test_busy_is_decided_at_the_call_exactly_while_the_result_is_undelivered(delay_ms: int) -> None:
    async with MontyRuntime(backend="deno") as rt:
        for _ in range(3):
            first = rt.execute("import time\ntime.sleep(0.05)\n1")
            await asyncio.sleep(delay_ms / 1000)
            delivered = first.result.done()
            try:
                second = rt.execute("2")
            except StateError as exc:
                assert not delivered, "refused although the first result was delivered"
                assert str(exc) == "Bridge is already executing" and exc.reason == "busy"
                assert (await first.result).value == 1
                continue
            assert delivered, "accepted while the first execution was in flight"
            assert (await second.result).value == 2


async def test_sandbox_mode_runs_parallel_calls_in_fresh_repls() -> None:
    async with MontyRuntime(backend="deno", sandbox=True) as rt:
        hs = [rt.execute(f"import time\ntime.sleep(0.1)\ny = {i}\ny") for i in range(3)]
        values = [(await h.result).value for h in hs]
        assert values == [0, 1, 2]
        r = await rt.execute("y").result
        assert r.error is not None and r.error.type == "NameError"


async def test_timeout_interrupts_the_code_and_keeps_the_state() -> None:
    async with MontyRuntime(backend="deno", limits=Limits(timeout=0.5)) as rt:
        await rt.execute("kept = 7").result
        r = await rt.execute("while True: pass").result
        assert r.error is not None and r.error.type == "TimeoutError"
        assert not r.session_lost
        assert (await rt.execute("kept").result).value == 7


async def test_a_memory_cap_raises_memory_error_in_the_code_and_keeps_the_state() -> None:
    cap = 256 * 2**20
    async with MontyRuntime(backend="deno", limits=Limits(memory=cap)) as rt:
        await rt.execute("kept = 41").result
        r = await rt.execute("a = []\nwhile True:\n    a.append(bytearray(10**6))").result
        assert r.error is not None and r.error.type == "MemoryError", r.error
        assert not r.session_lost
        r = await rt.execute("a = None\nimport gc; gc.collect()\nkept + 1").result
        assert r.value == 42 and not r.session_lost
        # Per call, like the other limits: a call may raise the runtime's cap.
        r = await rt.execute("len(bytearray(300 * 2**20))", limits=Limits(memory=4 * cap)).result
        assert r.value == 300 * 2**20, r.error
        # The runtime's cap is back: the heap (which never shrinks) may not grow further.
        r = await rt.execute("len(bytearray(700 * 2**20))").result
        assert r.error is not None and r.error.type == "MemoryError"


async def test_interrupt_raises_keyboard_interrupt_and_keeps_the_state() -> None:
    async with MontyRuntime(backend="deno") as rt:
        await rt.execute("kept = 'yes'").result
        h = rt.execute("while True: pass")
        await asyncio.sleep(0.3)
        assert rt.interrupt() is True
        r = await h.result
        assert r.error is not None and r.error.type == "KeyboardInterrupt"
        assert (await rt.execute("kept").result).value == "yes"
        assert rt.interrupt() is False


async def test_a_dead_worker_rejects_its_call_and_the_next_result_says_session_lost() -> None:
    async with MontyRuntime(backend="deno") as rt:
        await rt.execute("kept = 1").result
        crash = textwrap.dedent("""
            import sys, json
            vars(json)["__builtins__"]["__import__"]("js")
            sys.modules["js"].close()
            import time
            time.sleep(5)
        """)
        with pytest.raises(StateError) as info:
            await rt.execute(crash).result
        assert info.value.reason == "broken"
        r = await rt.execute("'kept' in globals()").result
        assert r.session_lost is True and r.value is False


async def test_dispose_rejects_pending_calls_and_later_execute_raises() -> None:
    rt = MontyRuntime(backend="deno")
    h = rt.execute("import time\ntime.sleep(5)")
    rt.dispose()
    with pytest.raises(StateError, match="disposed"):
        await h.result
    with pytest.raises(StateError, match="disposed"):
        rt.execute("1")


def test_the_host_process_stops_at_the_last_dispose() -> None:
    script = textwrap.dedent("""
        from monty_runtime import MontyRuntime
        a = MontyRuntime(backend="deno"); b = MontyRuntime(backend="deno")
        assert a.execute_sync("1").value == 1
        pid = a._remote.host.pid
        a.dispose()
        assert b.execute_sync("2").value == 2
        print(pid, flush=True)
        b.dispose()
        import os, time
        def gone():  # exited: reaped, or a zombie its parent has not reaped yet
            try:
                os.kill(pid, 0)
                return open(f"/proc/{pid}/stat").read().split()[2] == "Z"
            except (ProcessLookupError, FileNotFoundError):
                return True
        for _ in range(100):
            if gone():
                print("gone"); break
            time.sleep(0.1)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "gone"


def test_killing_the_python_parent_leaves_no_js_host_behind() -> None:
    script = textwrap.dedent("""
        from monty_runtime import MontyRuntime
        rt = MontyRuntime(backend="deno")
        assert rt.execute_sync("1").value == 1
        print(rt._remote.host.pid, flush=True)
        import time
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    host_pid = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(host_pid, 0)
        except ProcessLookupError:
            return
        try:
            if Path(f"/proc/{host_pid}/stat").read_text().split()[2] == "Z":
                return  # exited; waiting for init to reap it
        except FileNotFoundError:
            return
        time.sleep(0.1)
    os.kill(host_pid, signal.SIGKILL)
    pytest.fail(f"the JS host {host_pid} outlived its killed parent")


async def test_one_host_process_serves_many_runtimes() -> None:
    rts = [MontyRuntime(backend="deno") for _ in range(3)]
    try:
        values = await asyncio.gather(*(rt.execute(f"{i} * 10").result for i, rt in enumerate(rts)))
        assert [v.value for v in values] == [0, 10, 20]
        assert len({id(rt._remote.host) for rt in rts}) == 1
        assert isinstance(DenoHost._current, DenoHost)
    finally:
        for rt in rts:
            rt.dispose()


def test_a_prewarmed_worker_serves_the_next_runtime_and_is_sealed_too() -> None:
    script = textwrap.dedent("""
        import asyncio, json, os
        os.environ["MONTY_DENO_PREWARM"] = "1"
        from monty_runtime import MontyRuntime
        READ = (
            "import sys, json\\n"
            "vars(json)['__builtins__']['__import__']('js')\\n"
            "js = sys.modules['js']\\n"
            "try:\\n"
            "    await js.eval('import(\\"node:fs\\").then((f) => f.readFileSync(\\"/etc/hostname\\", \\"utf8\\"))')\\n"
            "    out = 'read'\\n"
            "except Exception as exc:\\n"
            "    out = str(exc)\\n"
            "out"
        )
        async def main():
            a = MontyRuntime(backend="deno")
            await a.execute("1").result  # the host now keeps one worker booted
            b = MontyRuntime(backend="deno")  # takes it (booted or still booting)
            r = await b.execute(READ).result
            print(json.dumps({"pooled": b._remote.boot["boot"]["pooled"], "read": r.value}))
            a.dispose(); b.dispose()
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["pooled"] is True
    assert "NotCapable" in data["read"] and "read access" in data["read"]


async def test_interrupting_one_sandbox_execution_leaves_the_others_running() -> None:
    async with MontyRuntime(backend="deno", sandbox=True) as rt:
        spin = rt.execute("while True: pass")
        other = rt.execute("import time\ntime.sleep(1.0)\n'done'")
        await asyncio.sleep(0.5)
        spin.interrupt()
        r = await spin.result
        assert r.error is not None and r.error.type == "KeyboardInterrupt"
        assert (await other.result).value == "done"


async def test_an_interrupt_sent_while_the_worker_boots_is_not_lost() -> None:
    rt = MontyRuntime(backend="deno")  # a fresh worker: the execution waits for its boot
    try:
        h = rt.execute("while True: pass")
        assert rt.interrupt() is True
        r = await h.result
        assert r.error is not None and r.error.type == "KeyboardInterrupt"
    finally:
        rt.dispose()


def test_a_runtime_dropped_without_dispose_frees_the_host() -> None:
    script = textwrap.dedent("""
        import gc, os, time
        from monty_runtime import MontyRuntime
        rt = MontyRuntime(backend="deno")
        assert rt.execute_sync("1").value == 1
        host = rt._remote.host
        del rt
        gc.collect()
        host.process.wait(timeout=30)
        print("exited", host.process.returncode)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["exited", "0"]


async def test_host_functions_with_star_args_take_what_their_signature_takes() -> None:
    def record(*args: object, **kwargs: object) -> list[object]:
        return [list(args), kwargs]

    def tagged(tag: str, *values: int) -> str:
        return f"{tag}:{sum(values)}"

    async with MontyRuntime([record, tagged], backend="deno") as rt:
        assert (await rt.execute("record(1, 'a', k=2)").result).value == [[1, "a"], {"k": 2}]
        assert (await rt.execute("tagged('s', 1, 2, 3)").result).value == "s:6"
        r = await rt.execute("tagged()").result
        assert r.error is not None and r.error.type == "TypeError"
        with pytest.raises(ValueError, match="script_name"):
            rt.execute("1", script_name="a\nb")
