"""What the deployment tests share: a user's page, the contract scenarios run in it,
a static server that applies an exported ``_headers`` file, and Chromium.

The scenarios are what an app does with the runtime: create it, execute with inputs and
a host function, keep state, refuse an overlapping execute with "Bridge is already
executing", the tool bindings module, parallel sandbox calls.  Each deployment test
serves a site its own way (the installed wheel's export, nginx, Caddy, the Vite dev
server, a Vite build) and checks the same result.
"""

from __future__ import annotations

import contextlib
import fnmatch
import http.server
import importlib.util
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: A page as a user writes it, for a site whose runtime was exported to monty-runtime/.
STATIC_PAGE = """<!doctype html>
<meta charset="utf-8">
<title>app</title>
<script type="module">
  import { MontyRuntime } from "./monty-runtime/monty-runtime.js";
  import * as tools from "./monty-runtime/tools.js";
  window.monty = { MontyRuntime, tools };
  document.title = "ready";
</script>
"""

SCENARIOS_JS = r"""async () => {
  const { MontyRuntime, tools } = window.monty;
  const out = { isolated: globalThis.crossOriginIsolated === true };
  let release;
  const gate = new Promise((resolve) => { release = resolve; });
  const rt = await MontyRuntime.create({
    functions: {
      add: (a, b) => a + b,
      get_weather: async (city) => ({ city, temp_c: 21 }),
      hold: async () => { await gate; return "held"; },
    },
    limits: { timeout: 20 },
  });
  const h = rt.execute("w = get_weather(city)\nprint(w['city'])\nw['temp_c'] + add(n, 0)",
                       { inputs: { city: "Paris", n: 1 } });
  const events = [];
  for await (const e of h.events) events.push(e.type);
  const r = await h.result;
  out.first = { value: r.value, stdout: r.stdout, error: r.error };
  out.events = events;
  out.state = (await rt.execute("w['city']").result).value;
  // An execution in flight (awaiting a host call): an overlapping execute is refused.
  const slow = rt.execute("await hold()");
  const it = slow.events[Symbol.asyncIterator]();
  for (;;) {
    const next = await it.next();
    if (next.done || next.value.type === "call_started") break;
  }
  try {
    await rt.execute("2").result;
    out.busy = "no error";
  } catch (e) {
    out.busy = `${e.name}: ${e.message}`;
  }
  release();
  out.slow = (await slow.result).value;
  out.tool = await tools.bindTool(rt, "queue").call('{"code": "x = 41\\nx + 1"}');
  await rt.dispose();
  const sb = await MontyRuntime.create({ sandbox: true });
  const both = await Promise.all([sb.execute("a = 1\na + 1").result, sb.execute("'a' in globals()").result]);
  out.sandbox = both.map((x) => x.value);
  await sb.dispose();
  return out;
}"""


def check_scenarios(out: dict[str, Any], *, isolated: bool = True) -> None:
    """The results every deployment must give."""
    assert out["isolated"] is isolated
    assert out["first"] == {"value": 22, "stdout": "Paris\n", "error": None}
    assert out["events"][0] == "run_started" and out["events"][-1] == "run_finished"
    assert "call_started" in out["events"]
    assert out["state"] == "Paris"
    assert out["busy"] == "StateError: Bridge is already executing", out["busy"]
    assert out["slow"] == "held"
    assert out["tool"] == {"status": "ok", "value": 42, "stdout": "", "error": None}
    assert out["sandbox"] == [2, False]


def load_config() -> ModuleType:
    name = "monty_playwright_config"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "playwright.config.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Browser:
    """One Chromium (sync Playwright) for the deployment tests."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self.browser = load_config().launch_browser(self._pw)

    def run_scenarios(self, url: str, *, timeout_ms: int = 180_000) -> tuple[dict[str, Any], list[str]]:
        """Open ``url`` (a page that sets ``window.monty``), run the scenarios; returns
        their result and the console lines (page and workers)."""
        context = self.browser.new_context()
        console: list[str] = []
        try:
            page = context.new_page()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.set_default_timeout(timeout_ms)
            page.goto(url)
            page.wait_for_function("() => window.monty !== undefined")
            return page.evaluate(SCENARIOS_JS), console
        finally:
            context.close()

    def close(self) -> None:
        self.browser.close()
        self._pw.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_headers_file(text: str) -> list[tuple[str, dict[str, str]]]:
    """A Netlify / Cloudflare Pages ``_headers`` file: [(path pattern, headers)]."""
    rules: list[tuple[str, dict[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            rules.append((line.strip(), {}))
        else:
            name, _, value = line.strip().partition(":")
            assert rules, f"header before any path: {line!r}"
            rules[-1][1][name.strip()] = value.strip()
    return rules


@contextlib.contextmanager
def headers_file_server(root: Path, headers_file: Path) -> Iterator[str]:
    """Serve ``root`` as Netlify or Cloudflare Pages would with ``headers_file``: every
    rule whose path matches adds its headers (``*`` matches anything)."""
    rules = parse_headers_file(headers_file.read_text())
    types = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
             ".json": "application/json", ".whl": "application/zip", ".zip": "application/zip",
             ".html": "text/html", ".css": "text/css", ".ts": "text/plain"}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def guess_type(self, path: Any) -> str:
            return types.get(Path(str(path)).suffix, "application/octet-stream")

        def end_headers(self) -> None:
            url_path = self.path.split("?", 1)[0]
            for pattern, headers in rules:
                if fnmatch.fnmatchcase(url_path, pattern):
                    for name, value in headers.items():
                        self.send_header(name, value)
            super().end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
