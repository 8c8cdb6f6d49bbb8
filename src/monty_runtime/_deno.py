"""The Deno backend: ``MontyRuntime(..., backend="deno")`` runs the code in a locked-down
Deno worker (Pyodide with the same wheel), for untrusted code on servers.

Contract: the native backend's, unchanged.  ``execute()`` raises ``StateError("Bridge is
already executing")`` at the call while a shared-mode execution is in flight (this side
decides, from its own record: the moment ``execute()`` returns until the result is
delivered); ``sandbox=True`` spreads executions over a pool of workers; limits,
``interrupt()`` (state kept), and worker death (the call rejects with ``StateError``
reason ``broken``, the next result says ``session_lost``) are the JS host's
(web/monty-runtime.js).  Host functions stay Python callables in this process: the
worker's call arrives here, is checked against the function's signature and schema
(the worker is not trusted), and runs -- async ones on the loop that called
``execute()``, sync ones in a thread -- and the answer goes back.

One JS host process (``web/server/host.js``) serves every runtime of this process.  It
starts with the first runtime, stops when the last one is disposed or this interpreter
exits, and exits by itself when its stdin closes -- so a killed Python parent leaves no
orphan.  Messages: :mod:`monty_runtime._deno_protocol`.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import itertools
import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _wire, codec
from .errors import BUSY_MESSAGE, ScriptError, StateError
from .events import ExecutionResult, event_from_dict
from .extensions import HostFunction
from .limits import Limits

if TYPE_CHECKING:
    from .runtime import ExecutionHandle

__all__ = ["DenoBackend", "DenoHost", "deno_executable", "web_root"]

DISPOSED_MESSAGE = "MontyRuntime has been disposed"
_ANSWERED = object()  # a sync host function's call was answered from its thread
_LIMIT_KEYS = (
    "timeout", "grace", "max_output_bytes", "max_result_bytes", "max_recursion_depth", "memory",
)


_dumps = _wire.dumps  # compact JSON, one cached C encoder


def deno_executable() -> str:
    """The deno binary: ``$MONTY_DENO``, the ``deno`` package from PyPI (the
    ``monty-runtime[deno]`` extra), or ``deno`` on ``PATH``."""
    env = os.environ.get("MONTY_DENO")
    if env:
        if not os.access(env, os.X_OK):
            raise StateError(f"MONTY_DENO={env} is not an executable", "broken")
        return env
    try:
        import deno  # type: ignore[import-not-found,import-untyped,unused-ignore]

        found = deno.find_deno_bin()
        if found and os.access(found, os.X_OK):
            return str(found)
    except ImportError:
        pass
    found = shutil.which("deno")
    if found:
        return found
    raise StateError(
        "backend='deno' needs the Deno binary: pip install 'monty-runtime[deno]' "
        "(the deno package from PyPI), put deno on PATH, or set MONTY_DENO",
        "broken",
    )


def web_root() -> Path:
    """The web folder with the JS host, Pyodide and the built wheel: ``$MONTY_WEB_ROOT``
    or the project checkout's ``web/``."""
    env = os.environ.get("MONTY_WEB_ROOT")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "web"
    needed = ["server/host.js", "node_modules/pyodide/pyodide.mjs", "dist/pyodide-lock.json"]
    missing = [n for n in needed if not (root / n).is_file()]
    if missing:
        raise StateError(
            f"backend='deno' needs the built web folder, but {root} lacks "
            f"{', '.join(missing)}: run `scripts/dev setup` in the checkout (or "
            "`python -m monty_runtime build`), or set MONTY_WEB_ROOT",
            "broken",
        )
    return root


class DenoHost:
    """The JS host process and the thread that reads it."""

    _current: DenoHost | None = None
    _lock = threading.Lock()

    @classmethod
    def acquire(cls, backend: DenoBackend) -> DenoHost:
        with cls._lock:
            host = cls._current
            if host is None or host.closed:
                host = cls._current = DenoHost()
            host.backends[backend.rid] = backend
            return host

    def __init__(self) -> None:
        exe = deno_executable()
        root = web_root()
        self.closed = False
        self.backends: dict[str, DenoBackend] = {}
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._write_lock = threading.Lock()
        self._stats: dict[int, Callable[[dict[str, Any]], None]] = {}
        self._stat_ids = itertools.count(1)
        self.hello: dict[str, Any] | None = None
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DENO_DIR", "TMPDIR")}
        env["DENO_NO_UPDATE_CHECK"] = "1"
        env["NO_COLOR"] = "1"
        self.process = subprocess.Popen(
            [
                exe, "run", "--no-prompt", "--no-config", "--no-lock",
                "--unstable-worker-options", f"--allow-read={root}",
                str(root / "server" / "host.js"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=str(root),
            start_new_session=False,
        )
        self.pid = self.process.pid
        threading.Thread(target=self._read, name="monty-deno-host", daemon=True).start()
        threading.Thread(target=self._read_stderr, name="monty-deno-stderr", daemon=True).start()

    # -- io -------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> bool:
        line = (_dumps(message) + "\n").encode()
        with self._write_lock:
            stdin = self.process.stdin
            if self.closed or stdin is None:
                return False
            try:
                view = memoryview(line)
                while view:  # straight to the pipe: nothing is ever buffered here
                    view = view[os.write(stdin.fileno(), view):]
            except (BrokenPipeError, OSError, ValueError):
                return False
        return True

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        fd = stdout.fileno()
        partial: list[bytes] = []  # the start of a line still coming (a long one: many reads)
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except InterruptedError:  # pragma: no cover - retried by os.read since 3.5
                continue
            except OSError:
                break
            if not chunk:
                break
            end = chunk.rfind(b"\n")
            if end < 0:
                partial.append(chunk)
                continue
            partial.append(chunk[:end])
            lines = b"".join(partial).split(b"\n")
            partial = [chunk[end + 1:]] if end + 1 < len(chunk) else []
            # What one chunk brings for a loop reaches it in one wake-up (_deliveries).
            _deliveries.batch = {}
            try:
                for line in lines:
                    try:
                        msg = json.loads(line)
                    except ValueError:
                        continue
                    try:
                        self._dispatch(msg)
                    except Exception as exc:  # pragma: no cover - a bug must not kill the reader
                        self.stderr_tail.append(
                            f"dispatch failed: {type(exc).__name__}: {exc}"
                        )
            finally:
                _flush_deliveries()
        self.process.wait()
        self._gone()

    def _read_stderr(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        for line in stderr:
            self.stderr_tail.append(line.decode(errors="replace").rstrip())

    def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "hello":
            self.hello = msg
            return
        if kind == "stats":
            callback = self._stats.pop(msg.get("id", 0), None)
            if callback is not None:
                callback(msg["stats"])
            return
        if kind == "log":
            self.stderr_tail.append(f"[host {msg.get('level')}] {msg.get('message')}")
            return
        backend = self.backends.get(str(msg.get("rid")))
        if backend is not None:
            backend._on_message(msg)

    def _gone(self) -> None:
        with DenoHost._lock:
            self.closed = True
            if DenoHost._current is self:
                DenoHost._current = None
            backends = list(self.backends.values())
            self.backends.clear()
        tail = " | ".join(list(self.stderr_tail)[-5:])
        code = self.process.returncode
        for backend in backends:
            why = f"the JS host process exited (code {code})"
            backend._host_gone(f"{why}: {tail}" if tail else why)

    def release(self, backend: DenoBackend) -> None:
        with DenoHost._lock:
            self.backends.pop(backend.rid, None)
            last = not self.backends
        if last:
            self.close()

    def close(self) -> None:
        """End the host: close its stdin (it exits at end of input)."""
        with self._write_lock:
            if self.closed:
                return
            self.closed = True
            try:
                if self.process.stdin is not None:
                    self.process.stdin.close()
            except OSError:
                pass
        with DenoHost._lock:
            if DenoHost._current is self:
                DenoHost._current = None

    def stats(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Ask the host for its memory figures; ``callback`` gets them (reader thread)."""
        sid = next(self._stat_ids)
        self._stats[sid] = callback
        self.send({"type": "stats", "id": sid})


def _close_at_exit() -> None:
    host = DenoHost._current
    if host is not None:
        host.close()
        try:
            host.process.wait(timeout=6)  # it may still be storing a new snapshot
        except subprocess.TimeoutExpired:
            host.process.kill()


atexit.register(_close_at_exit)


class _Pending:
    """One execution in flight: its handle and the loop it belongs to."""

    __slots__ = ("handle", "id", "loop", "on_done", "on_event")

    def __init__(
        self,
        request: int,
        handle: ExecutionHandle,
        loop: asyncio.AbstractEventLoop,
        on_event: Callable[[Any], None],
        on_done: Callable[[], None],
    ) -> None:
        self.id = request
        self.handle = handle
        self.loop = loop
        self.on_event = on_event
        self.on_done = on_done


class _RemoteExecution:
    """What an :class:`ExecutionHandle` holds: interrupts go to the JS host."""

    __slots__ = ("backend", "completed", "id", "request")

    def __init__(self, backend: DenoBackend, request: int) -> None:
        self.backend = backend
        self.request = request
        self.id = ""
        self.completed = False

    def interrupt(self, _exc_type: type[BaseException] = KeyboardInterrupt) -> None:
        if not self.completed:
            self.backend._send({"type": "interrupt", "rid": self.backend.rid, "id": self.request})


class DenoBackend:
    """The runtime's half in this process: its record of what is in flight."""

    def __init__(self, functions: list[HostFunction], sandbox: bool | str, limits: Limits) -> None:
        self.rid = uuid.uuid4().hex
        self.functions = {hf.name: hf for hf in functions}
        self.sandbox = sandbox
        self.limits = limits
        self.disposed = False
        self.boot: dict[str, Any] | None = None
        self.boot_error: str | None = None
        self.ready = threading.Event()
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._session_lost = False
        self.host: DenoHost | None = None
        self._start()

    # -- wiring -----------------------------------------------------------------------

    def _start(self) -> None:
        self.ready.clear()
        self.boot = None
        self.boot_error = None
        host = DenoHost.acquire(self)
        self.host = host
        host.send({
            "type": "create",
            "rid": self.rid,
            "functions": [_schema_for_worker(hf) for hf in self.functions.values()],
            "sandbox": self.sandbox,
            "limits": _limits_wire(self.limits),
            "snapshot": _snapshot_mode(),
            "prewarm": _prewarm(),
        })

    def _send(self, message: dict[str, Any]) -> bool:
        host = self.host
        return host is not None and host.send(message)

    @property
    def is_executing(self) -> bool:
        return not self.sandbox and bool(self._pending)

    # -- calls from MontyRuntime (the caller's loop) ------------------------------------

    def execute(
        self,
        handle: ExecutionHandle,
        code: str,
        *,
        on_event: Callable[[Any], None],
        on_done: Callable[[], None],
        script_name: str | None,
        inputs: dict[str, Any] | None,
        limits: Limits | None,
    ) -> None:
        if script_name is not None and (
            not isinstance(script_name, str) or not script_name or "\n" in script_name
        ):
            raise ValueError(f"script_name must be a non-empty one-line str, got {script_name!r}")
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.disposed:
                raise StateError(DISPOSED_MESSAGE, "disposed")
            if not self.sandbox and self._pending:
                raise StateError(BUSY_MESSAGE, "busy")
            if self.host is None or self.host.closed:
                self._start()  # the host died since: a fresh one, the session is lost
            request = next(self._ids)
            self._pending[request] = _Pending(request, handle, loop, on_event, on_done)
        handle._bind(_RemoteExecution(self, request))  # type: ignore[arg-type]
        message: dict[str, Any] = {"type": "execute", "rid": self.rid, "id": request, "code": code}
        if limits is not None:
            message["limits"] = _limits_wire(limits)
        if script_name is not None:
            message["scriptName"] = script_name
        if inputs:
            message["inputs"] = codec.encode(dict(inputs))
        if not self._send(message):
            self._settle(request, error=StateError("the JS host process is not running", "broken"))

    def interrupt(self) -> bool:
        running = bool(self._pending)
        if running:
            self._send({"type": "interrupt", "rid": self.rid})
        return running

    def dispose(self) -> None:
        with self._lock:
            if self.disposed:
                return
            self.disposed = True
            pending = list(self._pending.values())
            self._pending.clear()
        self._send({"type": "dispose", "rid": self.rid})
        host, self.host = self.host, None
        if host is not None:
            host.release(self)
        error = StateError(DISPOSED_MESSAGE, "disposed")
        for p in pending:
            _call_on(p.loop, _finish, p, None, error)

    # -- messages from the host (reader thread) -----------------------------------------

    def _on_message(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "created":
            self.boot = msg.get("info")
            self.ready.set()
        elif kind == "create_failed":
            err = msg.get("error") or {}
            self.boot_error = f"{err.get('name', 'Error')}: {err.get('message', '')}"
            self.ready.set()
        elif kind == "event":
            p = self._pending.get(msg.get("id", -1))
            if p is not None:
                try:
                    event = event_from_dict(msg["event"])
                except ValueError:
                    return
                _call_on(p.loop, p.on_event, event)
        elif kind == "result":
            self._on_result(msg)
        elif kind == "rejected":
            self._on_rejected(msg)
        elif kind == "host_call":
            self._on_host_call(msg)

    def _on_result(self, msg: dict[str, Any]) -> None:
        body = msg.get("result") or {}
        try:
            if isinstance(msg.get("raw"), str):
                parsed = json.loads(msg["raw"])
                index = msg.get("index", -1)
                wire = (parsed[index] if index >= 0 else parsed).get("value")
            else:
                wire = body.get("value")
            value = codec.decode(wire)
            error = body.get("error")
            session_lost = bool(body.get("session_lost"))
            if self._session_lost:
                self._session_lost = False
                session_lost = True
            result = ExecutionResult(
                value=value,
                stdout=str(body.get("stdout", "")),
                stderr=str(body.get("stderr", "")),
                error=None if error is None else ScriptError.from_dict(error),
                execution_id=str(body.get("execution_id", "")),
                duration_ms=float(body.get("duration_ms") or 0.0),
                session_lost=session_lost,
            )
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            self._settle(msg.get("id", -1), error=StateError(f"malformed result: {exc}", "broken"))
            return
        self._settle(msg.get("id", -1), result=result)

    def _on_rejected(self, msg: dict[str, Any]) -> None:
        err = msg.get("error") or {}
        name = str(err.get("name", "Error"))
        text = str(err.get("message", ""))
        reason = err.get("reason")
        if name == "StateError":
            exc = StateError(text, reason if reason in ("busy", "disposed", "broken") else "broken")
        elif name == "BootError":
            exc = StateError(f"the worker failed to boot: {text}", "broken")
        elif name == "WorkerCrashed":
            exc = StateError(f"the worker crashed: {text}", "broken")
        else:
            exc = StateError(f"{name}: {text}", "broken")
        self._settle(msg.get("id", -1), error=exc)

    def _settle(
        self,
        request: int,
        *,
        result: ExecutionResult | None = None,
        error: BaseException | None = None,
    ) -> None:
        with self._lock:
            p = self._pending.get(request)
        if p is None:
            return

        def deliver() -> None:
            # The guard is released in the same loop turn that delivers the result.
            with self._lock:
                if self._pending.get(request) is not p:
                    return
                del self._pending[request]
            _finish(p, result, error)

        _call_on(p.loop, deliver)

    def _host_gone(self, why: str) -> None:
        with self._lock:
            self.host = None
            pending = list(self._pending.values())
            self._pending.clear()
            self._session_lost = True
        self.boot_error = self.boot_error or why
        self.ready.set()
        for p in pending:
            _call_on(p.loop, _finish, p, None, StateError(why, "broken"))

    # -- host calls ---------------------------------------------------------------------

    def _on_host_call(self, msg: dict[str, Any]) -> None:
        call = msg["call"]
        try:
            parsed = json.loads(msg["raw"])
            index = msg.get("index", -1)
            m = parsed[index] if index >= 0 else parsed
            name = m["name"]
            request = m["execution"]
            args = codec.decode(m["args"])
            kwargs = codec.decode(m["kwargs"])
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise TypeError("malformed arguments")
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            self._fail(call, "ProtocolError", f"malformed host call: {exc}")
            return
        p = self._pending.get(request) if isinstance(request, int) else None
        hf = self.functions.get(name) if isinstance(name, str) else None
        if p is None or hf is None:
            what = "unknown execution" if p is None else f"unknown host function {str(name)[:80]}"
            self._fail(call, "ProtocolError", what)
            return
        if not all(isinstance(k, str) for k in kwargs):
            self._fail(call, "TypeError", "keyword names must be strings")
            return
        try:
            hf.bind(tuple(args), kwargs)
        except TypeError as exc:
            self._fail(call, "TypeError", str(exc))
            return
        if _deliveries.batch is not None:  # what came before the call reaches the loop first
            _flush_deliveries()
            _deliveries.batch = {}
        try:
            asyncio.run_coroutine_threadsafe(self._run_host(call, hf, args, kwargs), p.loop)
        except RuntimeError:
            self._fail(call, "HostError", "the caller's event loop is closed")

    async def _run_host(
        self, call: int, hf: HostFunction, args: list[Any], kwargs: dict[str, Any]
    ) -> None:
        try:
            if hf.is_async:
                value = await hf.fn(*args, **kwargs)
            else:
                # In a thread, which sends the answer itself (no hop back to this loop),
                # unless the function returned a coroutine: that is awaited here.
                value = await asyncio.get_running_loop().run_in_executor(
                    None, self._call_sync, call, hf, args, kwargs
                )
                if value is _ANSWERED:
                    return
                value = await value
        except Exception as exc:
            self._answer(call, error={"type": type(exc).__name__, "message": str(exc)})
            return
        self._answer(call, value=codec.encode(value))

    def _call_sync(
        self, call: int, hf: HostFunction, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        """A sync host function, in the executor's thread: answers the call and returns
        ``_ANSWERED``, or returns the coroutine the function returned."""
        try:
            value = hf.fn(*args, **kwargs)
        except Exception as exc:
            self._answer(call, error={"type": type(exc).__name__, "message": str(exc)})
            return _ANSWERED
        if asyncio.iscoroutine(value):
            return value
        self._answer(call, value=codec.encode(value))
        return _ANSWERED

    def _fail(self, call: int, kind: str, message: str) -> None:
        self._answer(call, error={"type": kind, "message": message})

    def _answer(self, call: int, *, value: Any = None, error: dict[str, Any] | None = None) -> None:
        if error is None:
            # As JSON text: the worker reads it as written (2.0 stays a float).
            text = json.dumps(value, separators=(",", ":"), allow_nan=False)
            self._send({"type": "host_result", "call": call, "ok": True, "value_json": text})
        else:
            self._send({"type": "host_result", "call": call, "ok": False, "error": error})


def _schema_for_worker(hf: HostFunction) -> dict[str, Any]:
    """The schema the worker checks calls against.  A function taking ``*args`` or
    ``**kwargs`` (or one without a Python signature) gets ``parameters: None``: the
    worker lets any arguments through and this process checks them against the real
    signature before the function runs."""
    schema = hf.to_schema()
    sig = hf.signature
    if sig is not None and any(
        p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in sig.parameters.values()
    ):
        schema["parameters"] = None
    return schema


def _snapshot_mode() -> bool | str:
    """``$MONTY_DENO_SNAPSHOT``: ``1`` (default: made once, kept on disk by Deno's Cache
    Storage), ``memory`` (this host process only) or ``0`` (always boot cold)."""
    mode = os.environ.get("MONTY_DENO_SNAPSHOT", "1").strip().lower()
    if mode in ("0", "false", "off", "no"):
        return False
    return "memory" if mode == "memory" else True


def _prewarm() -> int:
    """``$MONTY_DENO_PREWARM``: workers the host keeps booted for the next runtimes
    (default 0; each costs a runtime's memory while it waits)."""
    try:
        return max(0, int(os.environ.get("MONTY_DENO_PREWARM", "0")))
    except ValueError:
        return 0


def _limits_wire(limits: Limits) -> dict[str, Any]:
    data = limits.to_dict()
    return {k: data[k] for k in _LIMIT_KEYS if k in data}


def _finish(p: _Pending, result: ExecutionResult | None, error: BaseException | None) -> None:
    execution = p.handle._execution
    if isinstance(execution, _RemoteExecution):
        execution.completed = True
        if result is not None:
            execution.id = result.execution_id
    p.on_done()
    if result is not None:
        p.handle._resolve(result)
    else:
        p.handle._reject(error if error is not None else StateError("lost", "broken"))


_Calls = list[tuple[Callable[..., Any], tuple[Any, ...]]]


class _Deliveries(threading.local):
    """Calls for the loops, gathered by the reader thread while it handles one chunk of
    the host's output (``batch``: loop -> calls), else ``None``: at once."""

    batch: dict[asyncio.AbstractEventLoop, _Calls] | None = None


_deliveries = _Deliveries()


def _run_all(calls: _Calls) -> None:
    for fn, args in calls:
        try:
            fn(*args)
        except Exception as exc:  # as the loop would report a failed callback of its own
            asyncio.get_running_loop().call_exception_handler({
                "message": f"Exception in callback {fn!r}", "exception": exc,
            })


def _flush_deliveries() -> None:
    batch, _deliveries.batch = _deliveries.batch, None
    for loop, calls in (batch or {}).items():
        try:
            loop.call_soon_threadsafe(_run_all, calls)
        except RuntimeError:
            pass  # that loop is closed: nobody is waiting


def _call_on(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    batch = _deliveries.batch
    if batch is not None:
        batch.setdefault(loop, []).append((fn, args))
        return
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        pass  # that loop is closed: nobody is waiting
