"""``monty-runtime mcp``: an MCP server (official ``mcp`` SDK) with one ``run_python`` tool.

Contract: each MCP session gets its own runtime on the Deno backend (untrusted code, a
locked-down worker), so two sessions never see each other's state; the ``--policy``
decides what parallel calls in one session do (:mod:`monty_runtime.tools`): ``queue``
(wait for the previous one; state persists), ``busy`` (answer ``status: "busy"`` at
once) or ``sandbox`` (a fresh REPL per call).  A session is the stdio connection, or an
HTTP client's ``Mcp-Session-Id``; a request without one (the stateless 2026 protocol
over HTTP) runs in a fresh REPL.  Host functions come from ``--functions
package.module``; their signatures and docstrings are in the tool's description.
Events go to the client as it runs: ``print`` output as log messages, every event as
a progress notification.  Cancelling a call interrupts its code (state kept); an idle
session's runtime is disposed after ``--session-idle`` seconds.

Streamable HTTP is stateful per session: run several servers behind a load balancer
with session affinity on the ``Mcp-Session-Id`` header, learnt from the response that
creates the session (docs/server.md).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import os
import time
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from .events import CallFinished, CallStarted, Event, Print, RunError, RunFinished
from .limits import Limits
from .runtime import MontyRuntime
from .tools import Policy, ToolBinding, bind_tool

__all__ = ["MontyMCP", "add_parser", "load_functions", "main"]

MISSING_SDK = (
    "`monty-runtime mcp` needs the MCP SDK: pip install 'monty-runtime[mcp]' "
    "(the official `mcp` package, 2.x, and the Deno backend)"
)
STDIO_SESSION = "stdio"


def load_functions(modules: Sequence[str]) -> list[Callable[..., Any]]:
    """The host functions of ``package.module`` names: the names in the module's
    ``__all__``, else its public functions defined in it."""
    out: list[Callable[..., Any]] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise SystemExit(f"--functions {name}: cannot import it ({exc})") from None
        names = getattr(module, "__all__", None)
        if names is None:
            names = [
                n for n, v in vars(module).items()
                if not n.startswith("_") and inspect.isfunction(v)
                and v.__module__ == module.__name__
            ]
        for n in names:
            fn = getattr(module, n, None)
            if not callable(fn):
                raise SystemExit(f"--functions {name}: {n} is not callable")
            out.append(fn)
        if not names:
            raise SystemExit(f"--functions {name}: the module defines no public function")
    return out


class _Session:
    __slots__ = ("binding", "runtime", "used")

    def __init__(self, runtime: MontyRuntime, binding: ToolBinding) -> None:
        self.runtime = runtime
        self.binding = binding
        self.used = time.monotonic()


class MontyMCP:
    """The server's state: one runtime (and tool binding) per MCP session."""

    def __init__(
        self,
        functions: Sequence[Callable[..., Any]] = (),
        *,
        policy: Policy = "queue",
        limits: Limits | None = None,
        backend: str = "deno",
        session_idle: float = 1800.0,
        max_sessions: int = 100,
    ) -> None:
        self.functions = list(functions)
        self.policy: Policy = policy
        self.limits = limits or Limits()
        self.backend = backend
        self.session_idle = session_idle
        self.max_sessions = max_sessions
        self.sessions: dict[str, _Session] = {}
        # Describes the tool (host functions with signatures) without starting anything.
        probe = MontyRuntime(self.functions, sandbox=policy == "sandbox")
        self.definition = bind_tool(probe, policy).definition()["function"]
        probe.dispose()

    def _new(self, sandbox: bool) -> _Session:
        rt = MontyRuntime(self.functions, sandbox=sandbox, limits=self.limits, backend=self.backend)
        return _Session(rt, bind_tool(rt, "sandbox" if sandbox else self.policy))

    def session(self, key: str | None) -> _Session:
        self.reap()
        if key is None:
            key = "\0stateless"
            sandbox = True
        else:
            sandbox = self.policy == "sandbox"
        s = self.sessions.get(key)
        if s is None:
            if len(self.sessions) >= self.max_sessions:
                oldest = min(self.sessions, key=lambda k: self.sessions[k].used)
                self.sessions.pop(oldest).runtime.dispose()
            s = self.sessions[key] = self._new(sandbox)
        s.used = time.monotonic()
        return s

    def reap(self) -> None:
        now = time.monotonic()
        for key, s in list(self.sessions.items()):
            if now - s.used > self.session_idle and not s.runtime.is_executing:
                del self.sessions[key]
                s.runtime.dispose()

    def close(self) -> None:
        for s in self.sessions.values():
            s.runtime.dispose()
        self.sessions.clear()

    def build(self, **settings: Any) -> Any:
        """The ``MCPServer`` with the ``run_python`` tool."""
        try:
            from mcp.server.mcpserver import Context, MCPServer
        except ImportError:
            raise SystemExit(MISSING_SDK) from None

        state = self

        @asynccontextmanager
        async def lifespan(_server: Any) -> Any:
            try:
                yield {}
            finally:
                state.close()

        server = MCPServer(
            "monty-runtime",
            instructions="Runs Python code in a sandboxed, stateful interpreter (run_python).",
            lifespan=lifespan,
            **settings,
        )

        async def run_python(code: str, ctx: Context) -> str:  # type: ignore[type-arg]
            headers = ctx.headers
            key = headers.get("mcp-session-id") if headers is not None else STDIO_SESSION
            session = state.session(key)
            forward = _Forwarder(ctx)
            payload = await session.binding.call({"code": code}, on_event=forward.push)
            await forward.flush()
            return json.dumps(payload, ensure_ascii=False)

        # The SDK reads the annotations; Context is only imported here.
        run_python.__annotations__ = {"code": str, "ctx": Context, "return": str}
        server.add_tool(
            run_python,
            name="run_python",
            description=self.definition["description"],
            structured_output=False,
        )
        return server


class _Forwarder:
    """An execution's events to the MCP client, in order: prints as log messages, every
    event as a progress notification (when the client asked for progress)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.count = 0
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._run())

    def push(self, event: Event) -> None:
        self.queue.put_nowait(event)

    async def flush(self) -> None:
        self.queue.put_nowait(None)
        try:
            await self.task
        except Exception:
            pass

    async def _run(self) -> None:
        while (event := await self.queue.get()) is not None:
            try:
                await self._send(event)
            except Exception:
                pass  # a client that went away must not fail the call

    async def _send(self, event: Event) -> None:
        self.count += 1
        if isinstance(event, Print):
            await self.ctx.log("info" if event.stream == "stdout" else "warning", event.text)
            message = f"{event.stream}: {event.text[:200]}"
        elif isinstance(event, CallStarted):
            message = f"calling {event.name}"
        elif isinstance(event, CallFinished):
            message = f"{event.name} returned"
        elif isinstance(event, RunFinished | RunError):
            message = "finished"
        else:
            message = event.type
        await self.ctx.report_progress(self.count, None, message)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "mcp",
        help="MCP server: a run_python tool on the locked-down Deno backend",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio",
                   help="stdio (default) or streamable HTTP")
    p.add_argument("--host", default="127.0.0.1", help="HTTP: address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="HTTP: port (default 8000)")
    p.add_argument("--path", default="/mcp", help="HTTP: endpoint path (default /mcp)")
    p.add_argument("--policy", choices=["queue", "busy", "sandbox"], default="queue",
                   help="parallel calls in one session: queue (default), busy, or sandbox")
    p.add_argument("--functions", action="append", default=[], metavar="PACKAGE.MODULE",
                   help="host functions: the public functions of this module (repeatable)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds per call before the code is interrupted (default 30)")
    p.add_argument("--session-idle", type=float, default=1800.0,
                   help="dispose a session's runtime after this many idle seconds (default 1800)")
    p.add_argument("--prewarm", type=int, default=1,
                   help="workers kept booted so that a new session starts at once (default 1)")
    p.add_argument("--max-sessions", type=int, default=100,
                   help="runtimes kept at once; the least recently used goes first (default 100)")


def main(args: argparse.Namespace) -> int:
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise SystemExit(MISSING_SDK) from None
    os.environ.setdefault("MONTY_DENO_PREWARM", str(max(0, args.prewarm)))
    state = MontyMCP(
        load_functions(args.functions),
        policy=args.policy,
        limits=Limits(timeout=args.timeout),
        session_idle=args.session_idle,
        max_sessions=args.max_sessions,
    )
    server = state.build(log_level="WARNING")
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=args.host, port=args.port,
                   streamable_http_path=args.path)
    return 0
