"""Escape probes against the Deno backend: everything blocked but the named residuals.

Run with ``-s`` to see the table (the README's "Deno" column, docs/server.md).
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from monty_runtime import MontyRuntime

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BYPASS = "object graph walk (sys.modules, a module's __builtins__)"

#: What executed code in the Deno worker can do, each a residual risk docs/server.md
#: names: reach the worker's JavaScript around the import guard, and evaluate strings
#: (there is no CSP in Deno: evaluated code holds no more than the code itself).
RESIDUAL_RISKS = frozenset({BYPASS, "eval (string evaluation)"})


class _Evidence:
    def __init__(self) -> None:
        self.http: list[str] = []
        self.tcp = 0


@pytest.fixture
def listeners() -> Any:
    evidence = _Evidence()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            evidence.http.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript")
            self.end_headers()
            self.wfile.write(b"export const x = 1;")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    tcp.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = tcp.accept()
                evidence.tcp += 1
                conn.close()
            except OSError:
                pass

    threads = [threading.Thread(target=httpd.serve_forever, daemon=True),
               threading.Thread(target=accept, daemon=True)]
    for t in threads:
        t.start()
    yield evidence, httpd.server_address[1], tcp.getsockname()[1]
    stop.set()
    httpd.shutdown()
    tcp.close()


async def test_every_probe_is_blocked_but_the_named_residual_risks(listeners: Any, tmp_path: Path) -> None:
    evidence, http_port, tcp_port = listeners
    module = tmp_path / "probe.mjs"
    module.write_text("globalThis.__probe = 1; export const x = 1;")
    config = {
        "host_file": str(ROOT / "web" / "server" / "host.js"),
        "pyodide_file": str(ROOT / "web" / "node_modules" / "pyodide" / "package.json"),
        "write_path": str(tmp_path / "written.txt"),
        "module_file": module.as_uri(),
        "http_url": f"http://127.0.0.1:{http_port}",
        "ws_url": f"ws://127.0.0.1:{http_port}/ws",
        "tcp_port": tcp_port,
    }
    program = (HERE / "probe_program_deno.py").read_text()
    async with MontyRuntime(backend="deno") as rt:
        setup = await rt.execute(program).result
        assert setup.error is None, setup.error
        r = await rt.execute(f"await probe_all({json.dumps(json.dumps(config))})").result
        assert r.error is None, r.error
        outcomes: dict[str, list[str]] = json.loads(r.value)
    # The listeners' evidence overrides what the code saw.
    if evidence.http:
        for name in ("fetch", "WebSocket", "nested Worker", "dynamic import() over the network",
                     "HTTP request (node:http)"):
            outcomes[name] = ["allowed", f"requests arrived: {evidence.http}"]
    if evidence.tcp:
        outcomes["TCP socket (node:net)"] = ["allowed", f"{evidence.tcp} connection(s) arrived"]
    if (tmp_path / "written.txt").exists():
        outcomes["write a file (node:fs)"] = ["allowed", "the file exists"]
    width = max(map(len, outcomes))
    print("\nDeno backend escape probes")
    for name, (outcome, detail) in outcomes.items():
        print(f"  {name:<{width}}  {outcome:<8} {detail[:90]}")
    allowed = {name for name, (outcome, _) in outcomes.items() if outcome == "allowed"}
    assert allowed == RESIDUAL_RISKS, outcomes
    assert len(outcomes) >= 20


async def test_executed_code_cannot_take_down_the_host_or_other_runtimes() -> None:
    exit_code = (
        "import sys, json\n"
        "vars(json)['__builtins__']['__import__']('js')\n"
        "js = sys.modules['js']\n"
        "await js.eval('import(\"node:process\").then((p) => p.exit(3))')\n"
        "import asyncio\nawait asyncio.sleep(3)\n"
    )
    async with MontyRuntime(backend="deno") as victim, MontyRuntime(backend="deno") as other:
        await other.execute("kept = 'other'").result
        await victim.execute("mine = 1").result
        try:
            r = await victim.execute(exit_code).result
            outcome = f"result: {r.error}"
        except Exception as exc:  # the worker died: StateError (broken)
            outcome = f"rejected: {exc}"
        print(f"\nprocess.exit() in a worker: {outcome}")
        assert (await other.execute("kept").result).value == "other"
        r = await victim.execute("1 + 1").result
        assert r.value == 2
