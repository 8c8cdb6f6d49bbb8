"""What ``sandbox: "isolated"`` costs per execution, beside anchors measured in the same
run.

Browser (Chromium, the project's dev server):

* anchor: ``await rt.execute("1+1").result`` on a shared runtime (a worker already up);
* isolated, pool keeping up: ``execute("1+1")`` on an isolated runtime, one at a time
  with a pause between them, so each takes a worker the warm pool has ready (snapshot
  restore + configure happened in the background);
* isolated, pool exhausted: bursts of ``--burst`` executions at once with a warm pool of
  ``--warm`` workers: the ones past the pool wait for a worker to be restored from the
  snapshot (the figure is the whole burst's wall time, and per execution).

Native (CPython):

* anchor: ``execute("1+1")`` on an in-process shared runtime;
* isolated: the same on ``MontyRuntime(sandbox="isolated")`` (a fresh subprocess each).

Run ``python benchmarks/isolation.py`` (``--runs N``, ``--no-browser``, ``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from _common import PROJECT_ROOT, load_module, summarize  # type: ignore[import-not-found]

BROWSER_JS = """async ([runs, warm, burst]) => {
  const M = await import("../monty-runtime.js");
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const time = async (fn) => { const t = performance.now(); await fn(); return performance.now() - t; };
  const shared = await M.MontyRuntime.create();
  await shared.execute("1+1").result;
  const anchor = [];
  for (let i = 0; i < runs; i++) anchor.push(await time(() => shared.execute("1+1").result));
  const iso = await M.MontyRuntime.create({ sandbox: "isolated", poolSize: warm });
  await M.MontyRuntime.prewarm(warm);
  const keeping = [];
  for (let i = 0; i < runs; i++) {
    await M.MontyRuntime.prewarm(warm);  // the pool is full again
    await sleep(50);
    keeping.push(await time(async () => {
      const res = await iso.execute("1+1").result;
      if (res.value !== 2) throw new Error("wrong result");
    }));
  }
  const bursts = [];
  for (let i = 0; i < 2; i++) {
    await M.MontyRuntime.prewarm(warm);
    await sleep(50);
    bursts.push(await time(() => Promise.all(
      Array.from({ length: burst }, () => iso.execute("1+1").result))));
  }
  await iso.dispose();
  await shared.dispose();
  await M.MontyRuntime.prewarm(0);
  return { anchor, keeping, bursts };
}"""


def measure_browser(runs: int, warm: int, burst: int, isolated: bool) -> dict[str, Any]:
    from monty_runtime._build import build
    from playwright.sync_api import sync_playwright

    from monty_runtime._server import start_server

    config = load_module("monty_playwright_config", PROJECT_ROOT / "playwright.config.py")
    build(PROJECT_ROOT, log=lambda _line: None)
    server = start_server(PROJECT_ROOT / "web", isolated=isolated)
    try:
        with sync_playwright() as pw:
            browser = config.launch_browser(pw)
            try:
                page = browser.new_context().new_page()
                page.set_default_timeout(600_000)
                page.goto(server.url + "demos/index.html?autostart=0", wait_until="load")
                out: dict[str, Any] = page.evaluate(BROWSER_JS, [runs, warm, burst])
            finally:
                browser.close()
    finally:
        server.stop()
    return out


async def measure_native(runs: int) -> dict[str, list[float]]:
    from monty_runtime import MontyRuntime

    async def timed(rt: MontyRuntime) -> list[float]:
        out = []
        for _ in range(runs):
            t = time.perf_counter()
            res = await rt.execute("1+1").result
            assert res.value == 2, res
            out.append((time.perf_counter() - t) * 1000)
        return out

    shared = MontyRuntime()
    await shared.execute("1").result
    anchor = await timed(shared)
    shared.dispose()
    iso = MontyRuntime(sandbox="isolated")
    isolated = await timed(iso)
    iso.dispose()
    return {"anchor": anchor, "isolated": isolated}


def _line(label: str, values: list[float], anchor: float | None = None) -> str:
    s = summarize(values)
    ratio = f"  ({s['median'] / anchor:,.0f}x the anchor)" if anchor else ""
    return f"  {label:44} median {s['median']:9.2f} ms  p95 {s['p95']:9.2f} ms{ratio}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warm", type=int, default=2)
    parser.add_argument("--burst", type=int, default=6)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--no-isolation", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    if not args.no_browser:
        b = measure_browser(args.runs, args.warm, args.burst, not args.no_isolation)
        figures["browser"] = b
        anchor = summarize(b["anchor"])["median"]
        print("browser (Chromium)")
        print(_line("anchor: shared runtime execute('1+1')", b["anchor"]))
        print(_line("isolated, warm pool keeping up", b["keeping"], anchor))
        per = [t / args.burst for t in b["bursts"]]
        print(_line(f"isolated, burst of {args.burst} on a pool of {args.warm} (burst)",
                    b["bursts"], anchor))
        print(_line("  ... per execution", per, anchor))
    n = asyncio.run(measure_native(args.runs))
    figures["native"] = n
    anchor = summarize(n["anchor"])["median"]
    print("native (CPython)")
    print(_line("anchor: in-process execute('1+1')", n["anchor"]))
    print(_line("isolated: a subprocess per execute", n["isolated"], anchor))
    if args.json:
        print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
