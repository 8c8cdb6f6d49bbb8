"""Escape probes for the Deno backend, as executed code (its source is sent to a runtime).

Every probe reaches JavaScript around the Python import guard (an object graph walk,
as in tests/browser/support/probe_program.py) and tries one thing the worker must not do:
files, environment, processes, sockets, HTTP, imports, the Deno namespace, the
worker's removed APIs.  ``await probe_all(config_json)`` returns JSON
``{name: [outcome, detail]}`` with outcome "blocked" or "allowed".  The test adds the
evidence of its own listeners: a connection that reached one is "allowed", whatever the
code saw.
"""

from __future__ import annotations

import json
import sys
from typing import Any

BYPASS = "object graph walk (sys.modules, a module's __builtins__)"


def _reach(name: str) -> Any:
    if name not in sys.modules:
        vars(json)["__builtins__"]["__import__"](name)
    return sys.modules[name]


def _err(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]


async def probe_all(config_json: str) -> str:
    cfg = json.loads(config_json)
    out: dict[str, list[str]] = {}
    try:
        js = _reach("js")
        _reach("pyodide.ffi")
        out[BYPASS] = ["allowed", "js reached"]
    except BaseException as exc:
        out[BYPASS] = ["blocked", _err(exc)]
        return json.dumps(out)

    async def attempt(name: str, fn: Any) -> None:
        try:
            value = fn()
            if hasattr(value, "then"):
                value = await value
            out[name] = ["allowed", str(value)[:200]]
        except BaseException as exc:
            out[name] = ["blocked", _err(exc)]

    def node(mod: str) -> Any:
        return js.eval(f'import("node:{mod}")')

    host_file = cfg["host_file"]
    await attempt("eval (string evaluation)", lambda: js.eval("6 * 7"))
    await attempt("read a file (node:fs)", lambda: _then(node("fs"), lambda fs: fs.readFileSync("/etc/hostname", "utf8")))
    await attempt("read the host's own files (node:fs)", lambda: _then(node("fs"), lambda fs: fs.readFileSync(host_file, "utf8")[:40]))
    await attempt("read the Pyodide files it booted from", lambda: _then(node("fs"), lambda fs: fs.readFileSync(cfg["pyodide_file"], "utf8")[:40]))
    await attempt("write a file (node:fs)", lambda: _then(node("fs"), lambda fs: fs.writeFileSync(cfg["write_path"], "x")))
    await attempt("read an environment variable (node:process)", lambda: _then(node("process"), lambda p: p.env.HOME))
    await attempt("list the environment (node:process)", lambda: _then(node("process"), lambda p: js.Object.keys(p.env).length))
    await attempt("start a process (node:child_process)", lambda: _then(node("child_process"), lambda cp: cp.execFileSync("/bin/true")))
    await attempt("start a process (Deno.Command)", lambda: js.Deno.Command.new("/bin/true").outputSync().code)
    await attempt("load native code (process.dlopen)", lambda: _then(node("process"), lambda p: p.dlopen(js.Object.new(), "/lib/x86_64-linux-gnu/libc.so.6")))
    await attempt("Deno namespace", lambda: js.Deno.readTextFileSync("/etc/hostname"))
    await attempt("Deno permissions request", lambda: _then(js.Deno.permissions.request(js.JSON.parse('{"name": "read"}')), _granted))
    await attempt("fetch", lambda: js.fetch(cfg["http_url"]))
    await attempt("WebSocket", lambda: js.WebSocket.new(cfg["ws_url"]))
    await attempt("nested Worker", lambda: js.Worker.new(cfg["http_url"], js.JSON.parse('{"type": "module"}')))
    await attempt("dynamic import() of a local file", lambda: js.eval(f'import({json.dumps(cfg["module_file"])})'))
    await attempt("dynamic import() over the network", lambda: js.eval(f'import({json.dumps(cfg["http_url"] + "/x.mjs")})'))
    await attempt("HTTP request (node:http)", lambda: _then(node("http"), lambda h: _request(h, cfg["http_url"] + "/node-http")))
    await attempt("TCP socket (node:net)", lambda: _then(node("net"), lambda n: _connect(n, cfg["tcp_port"])))
    await attempt("Cache Storage", lambda: js.caches.open("x"))
    await attempt("BroadcastChannel", lambda: js.BroadcastChannel.new("x"))
    await attempt("Web Locks", lambda: js.navigator.locks.query())
    await attempt("the JS host's scope (its runtimes, the host's stdout)", lambda: js.eval("typeof runtimes === 'undefined' && typeof send === 'undefined' ? (() => { throw new Error('not in scope'); })() : 'reached'"))
    return json.dumps(out)


def _granted(status: Any) -> str:
    if status.state != "granted":
        raise PermissionError(f"permission {status.state}")
    return str(status.state)


def _then(promise: Any, fn: Any) -> Any:
    return promise.then(_proxy(fn))


def _proxy(fn: Any) -> Any:
    return _reach("pyodide.ffi").create_once_callable(fn)


def _request(http: Any, url: str) -> Any:
    js = _reach("js")
    ffi = _reach("pyodide.ffi")

    def executor(resolve: Any, reject: Any) -> None:
        req = http.get(url, ffi.create_once_callable(lambda res: resolve(res.statusCode)))
        req.on("error", ffi.create_proxy(lambda err: reject(err)))

    return js.Promise.new(ffi.create_once_callable(executor))


def _connect(net: Any, port: int) -> Any:
    js = _reach("js")
    ffi = _reach("pyodide.ffi")

    def executor(resolve: Any, reject: Any) -> None:
        sock = net.connect(port, "127.0.0.1")
        sock.on("connect", ffi.create_proxy(lambda *a: resolve("connected")))
        sock.on("error", ffi.create_proxy(lambda err: reject(err)))

    return js.Promise.new(ffi.create_once_callable(executor))
