"""The worker's control channel (monty_runtime._control), driven in
CPython: the signal handler is called directly (``Control.tick``) with a scripted ring,
and ``web/shared/protocol.js`` must agree with the Python constants."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from worker_hooks import make_session, until

from monty_runtime import _control
from monty_runtime._control import (
    KIND_INTERRUPT,
    KIND_TIMEOUT,
    SIGNUM,
)
from monty_runtime.bridge import current_execution
from monty_runtime.errors import ExecutionTimeout
from monty_runtime.repl import OutputCapture

ROOT = Path(__file__).resolve().parents[2]


# -------------------------------------------------------------------- constants


def test_constants_match_protocol_js() -> None:
    script = ("const m = await import(process.argv[1]);"
              "console.log(JSON.stringify(m.CONTROL));")
    out = subprocess.run(
        ["node", "--input-type=module", "-e", script, (ROOT / "web" / "shared" / "protocol.js").as_uri()],
        capture_output=True, text=True, timeout=30, check=True,
    )
    control = json.loads(out.stdout)
    assert control["SIGNUM"] == SIGNUM
    assert (control["INTERRUPT"], control["TIMEOUT"]) == (KIND_INTERRUPT, KIND_TIMEOUT)
    assert "EXECUTE" not in control, "the page decides busy; kind 1 is retired"
    assert control["SIGNAL"] == 0, "Pyodide reads the interrupt buffer's first word"
    assert control["BYTES"] == (control["RING"] + 2 * control["SLOTS"]) * 4
    assert len({control[k] for k in ("SIGNAL", "WRITE", "READ", "BEAT")}) == 4
    assert control["RING"] > max(control[k] for k in ("SIGNAL", "WRITE", "READ", "BEAT"))


# ------------------------------------------------------------------ output capture


def test_unfinished_lines_stream_in_linear_time() -> None:
    emitted: list[tuple[str, str]] = []
    cap = OutputCapture(lambda s, t: emitted.append((s, t)), 10**9, RuntimeError)
    n = 200_000
    t0 = time.perf_counter()
    for _ in range(n):
        cap.write("stdout", "x")
    cap.write("stdout", "y\nz")
    cap.flush()
    assert time.perf_counter() - t0 < 5
    assert "".join(t for _, t in emitted) == "x" * n + "y\nz"
    assert max(len(t) for _, t in emitted) < OutputCapture.PARTIAL_LINE_CHARS + 256
    assert cap.text("stdout") == "x" * n + "y\nz"
    emitted.clear()
    cap.write("stdout", "1")
    cap.write("stdout", "2\n3\n4")
    assert emitted == [("stdout", "12\n3\n")]


# ------------------------------------------------------------------ busy and interrupt


async def test_a_retired_execute_probe_in_the_ring_is_ignored() -> None:
    s, hooks = make_session()
    s.execute(1, "import asyncio\nawait asyncio.sleep(0.05)\n'one'")
    assert s.control is not None
    hooks.ring += [1, 2]  # kind 1 (the old busy probe): nothing to do
    s.control.tick()
    assert not hooks.of("rejected")
    await until(lambda: hooks.of("result", 1))
    assert hooks.of("result", 1)[0]["value"] == "one"


async def test_interrupt_of_an_awaiting_execution_pairs_ring_and_message() -> None:
    s, hooks = make_session()
    s.execute(1, "kept = 1")
    s.execute(2, "import asyncio\nawait asyncio.sleep(5)")
    assert s.control is not None
    hooks.ring += [KIND_INTERRUPT, 2]
    s.control.tick()  # from outside the execution: cancels its task
    s.interrupt(2)  # the same interrupt, as a message: an echo
    await until(lambda: hooks.of("result", 2))
    assert hooks.of("result", 2)[0]["error"]["type"] == "KeyboardInterrupt"
    s.execute(3, "kept")
    assert hooks.of("result", 3)[0]["value"] == 1


async def test_a_timeout_landing_while_the_execution_lock_is_held_does_not_deadlock() -> None:
    """The signal handler runs on the worker's one thread between any two bytecodes,
    also inside ``with ex.lock`` (the runtime's own timeout firing at the same moment
    as the page's), and then interrupts the execution, which takes that lock.  It must
    get it: a plain Lock left the worker blocked for good (found in Chromium)."""
    s, hooks = make_session()
    s.execute(1, "import asyncio\nawait asyncio.sleep(5)", {"timeout": 30})
    await asyncio.sleep(0.01)  # the code is in its sleep now
    bridge = s.running[1]
    ex = bridge.current
    assert ex is not None and s.control is not None
    control = s.control
    done = threading.Event()

    def signal_inside_the_lock() -> None:
        with ex.lock:  # the interrupted frame holds it...
            hooks.ring += [KIND_TIMEOUT, 1]
            control.tick()  # ...and the handler interrupts the execution
        done.set()

    # On its own thread so that a deadlock fails this test instead of hanging the run;
    # the lock is taken and re-taken on that one thread, as in the worker.
    t = threading.Thread(target=signal_inside_the_lock, daemon=True)
    t.start()
    t.join(5)
    assert done.is_set(), "the handler deadlocked on the execution's lock"
    await until(lambda: hooks.of("result", 1))
    err = hooks.of("result", 1)[0]["error"]
    assert err["type"] == "TimeoutError" and err["lineno"] == 2, err
    assert err["message"] == "execution exceeded timeout=30s"


def _frame(filename: str) -> Any:
    return SimpleNamespace(f_code=SimpleNamespace(co_filename=filename))


def test_interrupt_is_raised_only_from_the_users_frame() -> None:
    """The handler raises into the code only from a frame of the user's code; landing in
    the runtime's own frames it signals again (``control(True)``) and waits."""
    s, hooks = make_session()
    control = s.control
    assert control is not None
    seen: dict[str, Any] = {}

    def prelude() -> None:  # runs in the execution's context, like its code
        ex = current_execution.get()
        assert ex is not None
        hooks.ring += [KIND_TIMEOUT, ex.state.rid]
        seen["internal"] = control.tick(_frame(_control.__file__))
        seen["rearmed"] = hooks.rearmed
        seen["user"] = control.tick(_frame("main.py#3"))
        seen["again"] = control.tick(_frame("main.py#3"))

    bridge = s.bridge
    assert bridge is not None
    original = bridge.execute

    def execute(code: str, **kw: Any) -> Any:
        kw["prelude"] = prelude
        return original(code, **kw)

    bridge.execute = execute  # type: ignore[method-assign]
    s.execute(1, "y = 2")
    assert seen["internal"] is None and seen["rearmed"] == 1
    assert type(seen["user"]).__name__ == "ExecutionTimeout"
    assert seen["again"] is None, "one request, one exception"


def test_signal_handler_is_installed_and_reinstalled() -> None:
    import signal

    s, _ = make_session()
    assert s.control is not None
    assert signal.getsignal(SIGNUM) == s.control.on_signal
    signal.signal(SIGNUM, signal.SIG_DFL)
    s.execute(1, "1")
    assert signal.getsignal(SIGNUM) == s.control.on_signal
    signal.signal(SIGNUM, signal.SIG_DFL)


def test_no_control_without_the_hook() -> None:
    s, _ = make_session(control=False)
    assert s.control is None


async def test_a_deferred_interrupt_reaches_the_host_call_the_code_went_into() -> None:
    """The handler could not raise (it landed in the runtime's frames) and the code then
    blocked in a host call: the interrupt message fails that call."""
    s, hooks = make_session()
    control = s.control
    assert control is not None
    s.execute(1, "kept = 1")
    s.execute(2, "v = await wait()")
    await until(lambda: hooks.of("host_call"))
    # As left by a tick that landed in an internal frame, for the ring half of an
    # interrupt (ExecutionTimeout here: CPython's own event loop would re-raise a
    # KeyboardInterrupt out of the task; Pyodide's webloop is told not to).
    control._stops[2] = ExecutionTimeout
    control._requests[2] = [1, 0]
    s.interrupt(2)  # the message half
    await until(lambda: hooks.of("result", 2))
    assert hooks.of("result", 2)[0]["error"]["type"] == "TimeoutError"
    assert not control._stops
    s.execute(3, "kept")
    assert hooks.of("result", 3)[0]["value"] == 1
