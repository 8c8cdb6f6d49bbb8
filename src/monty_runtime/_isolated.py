"""``sandbox="isolated"`` natively: each execution in a fresh CPython subprocess.

Contract: the code of one ``execute()`` runs in an interpreter no other execution has
used (a new ``python -m monty_runtime._isolated`` process, with the same package), and
the process exits after the result. Host functions stay in the host process: the child
calls them over its pipes, so they work as in the other modes (sync or ``await``). The
child's events and result come back as they happen. ``Limits.memory`` is a hard cap on
the child's data segment (``RLIMIT_DATA``: heap and anonymous mappings, what CPython's
allocators use): past it ``malloc`` fails and the code gets ``MemoryError``.

This isolates executions from each other; it is not a security boundary against the
code: the child has the host user's privileges, as in-process execution does (see
README "Security model"). Its cost is a process start per execution
(benchmarks/isolation.py).

Wire (JSON lines): parent -> child: the job, then ``host_result`` / ``interrupt``
messages; child -> parent: ``event``, ``host_call``, ``result``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from . import codec
from .errors import ScriptError
from .events import Event, ExecutionResult, event_from_dict
from .extensions import HostFunction
from .limits import Limits

__all__ = ["IsolatedExecution", "start_isolated"]

#: Pipe buffer limit per line (events carry output bounded by max_output_bytes).
_LINE_LIMIT = 256 * 2**20


class IsolatedExecution:
    """The host side of one isolated execution (what ``ExecutionHandle`` interrupts)."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.interrupted = False
        self.completed = False
        self.id = ""

    @property
    def bridge(self) -> IsolatedExecution:
        """What ``MontyRuntime.dispose()`` disposes (duck-typed like a bridge)."""
        return self

    def dispose(self) -> None:
        """Kill the child (the runtime was disposed)."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    def interrupt(self, exc: type[BaseException] = KeyboardInterrupt) -> None:
        self.interrupted = True
        proc = self.proc
        if proc is not None and proc.stdin is not None and proc.returncode is None:
            with contextlib.suppress(Exception):
                proc.stdin.write(b'{"type":"interrupt"}\n')


def start_isolated(
    code: str,
    *,
    functions: list[HostFunction],
    limits: Limits,
    script_name: str | None,
    inputs: dict[str, Any] | None,
    on_event: Callable[[Event], None],
    on_complete: Callable[[ExecutionResult], None],
) -> IsolatedExecution:
    """Start the child; events and the result are delivered on the running loop."""
    execution = IsolatedExecution()
    job = {
        "code": code,
        "script_name": script_name,
        "inputs": None if inputs is None else codec.encode(inputs),
        "limits": limits.to_dict(),
        "functions": [{"name": f.name, "description": f.description,
                       "parameters": f.parameters} for f in functions],
    }
    table = {f.name: f for f in functions}
    asyncio.get_running_loop().create_task(
        _drive(execution, job, table, limits, on_event, on_complete))
    return execution


async def _drive(
    execution: IsolatedExecution,
    job: dict[str, Any],
    table: dict[str, HostFunction],
    limits: Limits,
    on_event: Callable[[Event], None],
    on_complete: Callable[[ExecutionResult], None],
) -> None:
    result: ExecutionResult | None = None
    try:
        # The child imports this very package, wherever the host found it.
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": here if not path else here + os.pathsep + path}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monty_runtime._isolated",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=_LINE_LIMIT, env=env,
        )
        execution.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(job).encode() + b"\n")
        deadline = None if limits.timeout is None else limits.timeout + limits.grace + 5.0
        result = await asyncio.wait_for(_pump(proc, table, on_event), deadline)
    except TimeoutError:
        result = ExecutionResult(error=ScriptError(
            "TimeoutError", f"execution exceeded timeout={limits.timeout}s and did not stop; "
            "its process was killed"), session_lost=True)
    except Exception as exc:
        result = ExecutionResult(error=ScriptError("InternalError", f"{type(exc).__name__}: {exc}"))
    finally:
        proc_ = execution.proc
        if proc_ is not None and proc_.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc_.kill()
            await proc_.wait()
    if result is None:  # pragma: no cover - _pump always answers
        result = ExecutionResult(error=ScriptError("InternalError", "no result"))
    execution.completed = True
    on_complete(result)


async def _pump(
    proc: asyncio.subprocess.Process,
    table: dict[str, HostFunction],
    on_event: Callable[[Event], None],
) -> ExecutionResult:
    assert proc.stdout is not None and proc.stdin is not None
    stdin = proc.stdin
    calls: set[asyncio.Task[None]] = set()
    while True:
        line = await proc.stdout.readline()
        if not line:
            await proc.wait()
            err = b""
            if proc.stderr is not None:
                err = await proc.stderr.read()
            tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            return ExecutionResult(error=ScriptError(
                "WorkerCrashed", f"the isolated process exited ({proc.returncode}) "
                f"without a result: {tail[0][:300]}"), session_lost=True)
        msg = json.loads(line)
        kind = msg.get("type")
        if kind == "event":
            on_event(event_from_dict(msg["event"]))
        elif kind == "host_call":
            task = asyncio.get_running_loop().create_task(_answer(stdin, table, msg))
            calls.add(task)
            task.add_done_callback(calls.discard)
        elif kind == "result":
            data = msg["result"]
            error = data.get("error")
            return ExecutionResult(
                value=codec.decode(data.get("value")),
                stdout=data.get("stdout", ""),
                stderr=data.get("stderr", ""),
                error=None if error is None else ScriptError.from_dict(error),
                execution_id=data.get("execution_id", ""),
                duration_ms=data.get("duration_ms", 0.0),
                session_lost=bool(data.get("session_lost")),
            )


async def _answer(stdin: asyncio.StreamWriter, table: dict[str, HostFunction],
                  msg: dict[str, Any]) -> None:
    answer: dict[str, Any] = {"type": "host_result", "id": msg["id"]}
    fn = table.get(msg.get("name", ""))
    try:
        if fn is None:
            raise NameError(f"unknown host function {msg.get('name')!r}")
        args, kwargs = codec.decode(msg["args"]), codec.decode(msg["kwargs"])
        if fn.is_async:
            value = await fn.fn(*args, **kwargs)
        else:  # off the loop, as in-process
            value = await asyncio.to_thread(fn.fn, *args, **kwargs)
        answer.update(ok=True, value=codec.encode(value))
    except Exception as exc:
        answer.update(ok=False, error={"type": type(exc).__name__, "message": str(exc)})
    with contextlib.suppress(Exception):
        stdin.write(json.dumps(answer).encode() + b"\n")


# -- the child ------------------------------------------------------------------------


def _cap_memory(limit: int, lifted: Callable[[], object]) -> Any:
    """The code may use ``limit - reserve``; once its thread is done, a watcher lifts
    the soft limit to ``limit`` so the runtime can report even when the code's objects
    fill the memory (the same reserve as the browser worker's, web/worker/memory-cap.js)."""
    import resource
    import threading
    import time

    from . import _native

    reserve = max(8 * 2**20, limit // 8)
    full = (limit, limit)  # made now: the watcher must not need to allocate
    idle = _native._workers._idle
    started = threading.Event()

    def watch() -> None:
        started.wait()
        runners = [t for t in threading.enumerate() if t.name.startswith("monty-exec-")]
        while not idle and all(t.is_alive() for t in runners):
            time.sleep(0.02)
        resource.setrlimit(resource.RLIMIT_DATA, full)
        lifted()

    threading.Thread(target=watch, name="monty-memory-reserve", daemon=True).start()
    resource.setrlimit(resource.RLIMIT_DATA, (limit - reserve, limit))
    return started


async def _child() -> None:
    from .runtime import MontyRuntime

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    # The protocol keeps the real stdout; the code's file descriptor 1 is stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    job = json.loads(await reader.readline())
    pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
    next_id = iter(range(1, 1 << 62))

    def proxy(spec: dict[str, Any]) -> HostFunction:
        name = spec["name"]

        async def call(*args: Any, **kwargs: Any) -> Any:
            call_id = next(next_id)
            fut: asyncio.Future[dict[str, Any]] = loop.create_future()
            pending[call_id] = fut
            send({"type": "host_call", "id": call_id, "name": name,
                  "args": codec.encode(list(args)), "kwargs": codec.encode(kwargs)})
            answer = await fut
            if answer.get("ok"):
                return codec.decode(answer.get("value"))
            error = answer.get("error") or {}
            import builtins

            etype = getattr(builtins, str(error.get("type")), None)
            if isinstance(etype, type) and issubclass(etype, Exception):
                raise etype(error.get("message", ""))
            from .errors import HostError

            raise HostError(str(error.get("message", "")), str(error.get("type")))

        schema = spec.get("parameters") or {"type": "object", "properties": {}}
        return HostFunction(name=name, fn=call, description=spec.get("description") or "",
                            parameters=schema, is_async=True)

    limits = Limits.coerce(job["limits"])
    memory = limits.memory
    rt = MontyRuntime(functions=[proxy(s) for s in job["functions"]],
                      limits=Limits.coerce({**job["limits"], "memory": None}))

    async def listen() -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            msg = json.loads(line)
            if msg.get("type") == "interrupt":
                rt.interrupt()
            elif msg.get("type") == "host_result":
                fut = pending.pop(int(msg["id"]), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)

    listener = loop.create_task(listen())
    lifted = asyncio.Event()
    capped = None if memory is None else _cap_memory(
        memory, lambda: loop.call_soon_threadsafe(lifted.set))
    inputs = None if job.get("inputs") is None else codec.decode(job["inputs"])
    handle = rt.execute(job["code"], script_name=job.get("script_name"), inputs=inputs)
    if capped is not None:
        capped.set()  # the code's thread exists now: the watcher may look for it

    async def forward() -> ExecutionResult:
        async for event in handle.events:
            send({"type": "event", "event": event.to_dict()})
        return await handle.result

    forwarding = loop.create_task(forward())
    watching = loop.create_task(_watch(rt, memory, lifted))
    done: set[asyncio.Task[ExecutionResult]] = set()
    while not done:  # an allocation failure in the loop while the code fills memory
        with contextlib.suppress(MemoryError):
            done, _ = await asyncio.wait({forwarding, watching},
                                         return_when=asyncio.FIRST_COMPLETED)
    if forwarding in done:
        result = forwarding.result()
    else:
        result = watching.result()
        send({"type": "event", "event": {"type": "run_error", "execution_id": handle.execution_id,
                                         "error": result.error.to_dict() if result.error else None,
                                         "stdout": "", "duration_ms": 0.0}})
    send({"type": "result", "result": result.to_dict()})
    listener.cancel()


async def _watch(rt: Any, memory: int | None, lifted: asyncio.Event) -> ExecutionResult:
    """The code's thread is done and the reserve was opened (``_cap_memory``), but no
    result came: the runtime could not build one (objects the code still holds filled
    the cap, leaving it no memory). Drop the REPL's globals and say what happened."""
    import gc

    await lifted.wait()
    await asyncio.sleep(1.0)  # a result on its way wins (asyncio.wait in _child)
    bridge = getattr(rt, "_bridge", None)
    if bridge is not None:
        bridge.repl.globals.clear()
    gc.collect()
    return ExecutionResult(error=ScriptError(
        "MemoryError", f"the code reached limits.memory={memory} bytes and still held its "
        "objects, leaving no memory to report from where"))


def main() -> None:
    asyncio.run(_child())
    sys.stdout.flush()
    os._exit(0)  # the code's threads, if any, die with the process


if __name__ == "__main__":
    main()
