"""Memory per runtime in the browser: renderer memory for 1, 8 and 24 runtimes, and
runtimes per GB, beside a bare Pyodide worker measured in the same run.

Chromium runs a page's dedicated workers in the page's renderer process, so a
runtime's cost is what the renderer grows by. The renderer's resident memory is read
from /proc (``Rss`` and ``Pss`` of ``/proc/<pid>/smaps_rollup``; the pids of the
renderers come from CDP ``SystemInfo.getProcessInfo``), summed over the renderer
processes of the browser (one page, so one renderer, plus the spare one Chromium
keeps), after the page has been idle for a moment.

* monty: ``MontyRuntime.create()`` (the first boots cold and makes the snapshot, the
  others restore it), each then runs ``import json, re, collections``;
* anchor: bare Pyodide workers (web/demos/boot-check-worker.js, ``mode: bare``: lock file +
  loadPyodide, no monty_runtime), each running the same import, in a fresh browser;
* per additional runtime: (memory at 24 - memory at 8) / 16, and at 8 - at 1 / 7;
* where it goes, per worker (monty): the wasm heap (``info.env.memory.heapBytes``).

Run ``python benchmarks/memory.py`` (``--counts 1,8,24``; ``--anchor-counts 1,8``;
``--json``). Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from _common import PROJECT_ROOT, load_module  # type: ignore[import-not-found]

MB = 1e6
SETTLE_S = 3.0

MONTY_JS = """async ([n]) => {
  window.M ??= await import("../monty-runtime.js");
  window.rts ??= [];
  while (rts.length < n) {
    const rt = await M.MontyRuntime.create();
    const res = await rt.execute("import json, re, collections\\n1").result;
    if (res.error) throw new Error(res.error.message);
    rts.push(rt);
  }
  return rts.map((rt) => rt.info.env.memory.heapBytes);
}"""

BARE_JS = """async ([n]) => {
  const { serveBootFetches } = await import("../shared/boot-fetch.js");
  window.bare ??= [];
  const lockFileURL = new URL("../dist/pyodide-lock.json", location.href).href;
  const packageBaseUrl = new URL("../dist/", location.href).href;
  while (bare.length < n) {
    const worker = new Worker(new URL("./boot-check-worker.js", location.href), { type: "module" });
    const channel = new MessageChannel();
    const fetches = serveBootFetches(channel.port1, {
      allowed: [new URL("../", location.href).href, lockFileURL, packageBaseUrl],
    });
    const booted = new Promise((resolve, reject) => {
      worker.onmessage = (e) => {
        if (e.data?.type === "booted") (e.data.ok ? resolve : reject)(e.data);
        if (e.data?.type === "result") resolve(e.data);
      };
    });
    worker.postMessage({ cmd: "boot", lockFileURL, packageBaseUrl, montyRuntime: false,
                         bootPort: channel.port2 }, [channel.port2]);
    await booted;
    fetches.close();
    const ran = new Promise((resolve) => { worker.onmessage = (e) => resolve(e.data); });
    worker.postMessage({ cmd: "run", id: 1, code: "import json, re, collections" });
    const r = await ran;
    if (!r.ok) throw new Error(String(r.error));
    bare.push(worker);
  }
  return bare.length;
}"""


def _rollup(pid: int) -> dict[str, float]:
    out = {"rss": 0.0, "pss": 0.0}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            out[key.lower()] = float(rest.split()[0]) * 1024
    return out


def renderer_memory(cdp: Any) -> dict[str, float]:
    """Rss and Pss (bytes) summed over the browser's renderer processes."""
    info = cdp.send("SystemInfo.getProcessInfo")
    total = {"rss": 0.0, "pss": 0.0, "processes": 0.0}
    for proc in info.get("processInfo", []):
        if proc.get("type") == "renderer":
            r = _rollup(int(proc["id"]))
            total["rss"] += r["rss"]
            total["pss"] += r["pss"]
            total["processes"] += 1
    return total


def _measure(browser: Any, base_url: str, js: str, counts: list[int], label: str) -> dict[str, Any]:
    cdp = browser.new_browser_cdp_session()
    context = browser.new_context()
    context.set_default_timeout(600_000)
    page = context.new_page()
    page.goto(base_url + "demos/index.html?autostart=0", wait_until="load")
    time.sleep(SETTLE_S)
    rows: dict[str, Any] = {"0": renderer_memory(cdp)}
    heaps: Any = None
    for n in counts:
        started = time.perf_counter()
        heaps = page.evaluate(js, [n])
        time.sleep(SETTLE_S)
        rows[str(n)] = {**renderer_memory(cdp), "seconds": time.perf_counter() - started}
        print(f"  {label:6} {n:3} workers: renderer RSS {rows[str(n)]['rss'] / MB:7.0f} MB, "
              f"PSS {rows[str(n)]['pss'] / MB:7.0f} MB", flush=True)
    context.close()
    return {"rows": rows, "heaps": heaps}


def _slope(rows: dict[str, Any], a: int, b: int, key: str) -> float | None:
    if str(a) not in rows or str(b) not in rows or b == a:
        return None
    return (rows[str(b)][key] - rows[str(a)][key]) / (b - a)


def main() -> int:
    global SETTLE_S
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,8,24")
    parser.add_argument("--anchor-counts", default="1,8")
    parser.add_argument("--no-isolation", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds of idle before each reading (default 3)")
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        print("benchmarks/memory.py reads /proc: Linux only", file=sys.stderr)
        return 2
    SETTLE_S = args.settle
    counts = [int(x) for x in args.counts.split(",")]
    anchor_counts = [int(x) for x in args.anchor_counts.split(",")]

    from monty_runtime._build import build
    from playwright.sync_api import sync_playwright

    from monty_runtime._server import start_server

    config = load_module("monty_playwright_config", PROJECT_ROOT / "playwright.config.py")
    build(PROJECT_ROOT, log=lambda _line: None)
    server = start_server(PROJECT_ROOT / "web", isolated=not args.no_isolation)
    figures: dict[str, Any] = {}
    try:
        with sync_playwright() as pw:
            for label, js, ns in (("bare", BARE_JS, anchor_counts), ("monty", MONTY_JS, counts)):
                browser = config.launch_browser(pw)
                try:
                    figures[label] = _measure(browser, server.url, js, ns, label)
                finally:
                    browser.close()
    finally:
        server.stop()

    bare = figures["bare"]["rows"]
    monty = figures["monty"]["rows"]
    print()
    print(f"{'':34}{'RSS MB':>10}{'PSS MB':>10}")
    for label, rows in (("bare Pyodide worker (anchor)", bare), ("monty runtime", monty)):
        for n in sorted(int(k) for k in rows):
            r = rows[str(n)]
            print(f"  {label:28} {n:3}{r['rss'] / MB:10.0f}{r['pss'] / MB:10.0f}")
    print()
    lo_b, hi_b = anchor_counts[0], anchor_counts[-1]
    bare_each = _slope(bare, lo_b, hi_b, "pss") or _slope(bare, 0, hi_b, "pss")
    lo, hi = (counts[-2], counts[-1]) if len(counts) > 1 else (0, counts[-1])
    monty_each = _slope(monty, lo, hi, "pss")
    monty_each_rss = _slope(monty, lo, hi, "rss")
    heaps = figures["monty"]["heaps"] or []
    heap = sum(heaps) / len(heaps) if heaps else 0.0
    if bare_each and monty_each:
        print(f"  per additional runtime ({lo}->{hi}): {monty_each / MB:.1f} MB PSS "
              f"({monty_each_rss / MB:.1f} MB RSS), {1e9 / monty_each:.1f} runtimes per GB")
        print(f"  per additional bare Pyodide worker ({lo_b}->{hi_b}): {bare_each / MB:.1f} MB PSS, "
              f"{1e9 / bare_each:.1f} per GB")
        print(f"  ratio monty / bare: {monty_each / bare_each:.2f}")
        print(f"  wasm heap per monty worker: {heap / MB:.1f} MB "
              f"({heap / monty_each:.0%} of its cost); the rest is the worker's JS heap, "
              "code and Pyodide's file system")
        figures["summary"] = {"monty_each_pss": monty_each, "monty_each_rss": monty_each_rss,
                              "bare_each_pss": bare_each, "heap_each": heap,
                              "runtimes_per_gb": 1e9 / monty_each}
    if args.json:
        print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
