"""Browser rows of the reliability suite (``benchmarks/reliability.py --backend
chromium|all``): each fault injected into a runtime in Chromium, under a cross-origin
isolated server (backend ``chromium+coi``: control channel through a SharedArrayBuffer
and Pyodide's interrupt buffer) and a non-isolated one (backend ``chromium``: the
documented fallbacks).  Latencies are medians over ``repeat`` runs, measured in the
page with ``performance.now()``:

* interrupt a tight loop: ``rt.interrupt()`` -> result;
* busy rejection during CPU-bound code: ``execute()`` -> its ``StateError``;
* timeouts: result -> usable again (the result's lateness past the timeout plus the
  next ``execute``'s round trip, as in the native rows);
* worker death: the fault -> the pending call's ``WorkerCrashed``;
* print flood: ``execute`` -> result, with the page's timer gap alongside.

Run it alone with ``python benchmarks/reliability_browser.py [--repeat N]``.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_module as _load  # type: ignore[import-not-found]  # noqa: E402
from reliability import Row, print_table  # noqa: E402

GET_JS = (
    "import sys\\n"
    "js = sys.modules.get('js') or __import__('importlib')._bootstrap._gcd_import('js')\\n"
)

# Each fault: an async JS function (page side) returning {outcome, ms}.
FAULTS_JS = """
const M = await import("../monty-runtime.js");
const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const errType = (res) => res.error ? res.error.type : "none";
const settle = (p) => p.then((r) => ({ ok: true, r }), (e) => ({ ok: false, e }));
const GET_JS = "%(get_js)s";
async function withRuntime(fn, opts = {}) {
  const rt = await M.MontyRuntime.create(opts);
  try { return await fn(rt); } finally { await rt.dispose(); }
}
const FAULTS = {
  "interrupt a tight loop": () => withRuntime(async (rt) => {
    await rt.execute("kept = 1").result;
    const h = rt.execute("while True:\\n    pass");
    for await (const ev of h.events) if (ev.type === "run_started") break;
    await sleep(50);
    const t0 = now();
    rt.interrupt();
    const res = await h.result;
    const ms = now() - t0;
    const kept = (await rt.execute("kept").result).value === 1;
    return { ms, outcome: `${errType(res)}, globals kept=${kept}, sessionLost=${res.sessionLost}` };
  }),
  "timeout, CPU-bound loop (to usable again)": () => withRuntime(async (rt) => {
    await rt.execute("kept = 1").result;
    const t0 = now();
    const res = await rt.execute("while True:\\n    pass", { limits: { timeout: 0.1 } }).result;
    const late = now() - t0 - 100;
    const t1 = now();
    const after = await rt.execute("kept").result;
    const ms = late + now() - t1;
    return { ms, outcome: `${errType(res)}, state kept=${after.value === 1}, sessionLost=${res.sessionLost}` };
  }),
  "timeout, time.sleep (hard path, to usable)": () => withRuntime(async (rt) => {
    const t0 = now();
    const res = await rt.execute("import time\\ntime.sleep(5)", { limits: { timeout: 0.1, grace: 0.2 } }).result;
    const late = now() - t0 - 100;
    const t1 = now();
    await rt.execute("1").result;
    return { ms: late + now() - t1, outcome: `${errType(res)}, sessionLost=${res.sessionLost}` };
  }),
  "timeout, host call never returns": () => withRuntime(async (rt) => {
    const t0 = now();
    const res = await rt.execute("never()", { limits: { timeout: 0.1 } }).result;
    return { ms: now() - t0 - 100, outcome: `${errType(res)}, sessionLost=${res.sessionLost}` };
  }, { functions: { never: () => new Promise(() => {}) } }),
  "busy rejection during CPU-bound code": () => withRuntime(async (rt) => {
    const h = rt.execute("while True:\\n    pass");
    for await (const ev of h.events) if (ev.type === "run_started") break;
    await sleep(50);
    const t0 = now();
    const busy = await settle(rt.execute("1").result);
    const ms = now() - t0;
    rt.interrupt();
    await settle(h.result);
    return { ms, outcome: busy.ok ? "accepted (wrong)" : `${busy.e.name}: ${busy.e.message}` };
  }),
  "worker death: js.close() (to WorkerCrashed)": () => withRuntime(async (rt) => {
    const h = rt.execute(GET_JS + "import asyncio\\njs.close()\\nawait asyncio.sleep(30)");
    for await (const ev of h.events) if (ev.type === "run_started") break;
    const t0 = now();
    const r = await settle(h.result);
    const ms = now() - t0;
    const next = await rt.execute("1").result;
    return { ms, outcome: `${r.ok ? "resolved (wrong)" : r.e.name}, next sessionLost=${next.sessionLost}` };
  }),
  "worker death: os._exit(0) (to WorkerCrashed)": () => withRuntime(async (rt) => {
    const t0 = now();
    const r = await settle(rt.execute("import os\\nos._exit(0)").result);
    const ms = now() - t0;
    return { ms, outcome: r.ok ? "resolved (wrong)" : r.e.name };
  }),
  "silent death, heartbeat only (to WorkerCrashed)": () => withRuntime(async (rt) => {
    const h = rt.execute(GET_JS + "import asyncio\\njs.close()\\nawait asyncio.sleep(30)");
    for await (const ev of h.events) if (ev.type === "run_started") break;
    const t0 = now();
    const r = await settle(h.result);
    return { ms: now() - t0, outcome: `${r.ok ? "resolved (wrong)" : r.e.name} (heartbeatTimeoutMs=500)` };
  }, { lockWatch: false, heartbeatTimeoutMs: 500 }),
  "deep recursion": () => withRuntime(async (rt) => {
    const t0 = now();
    const res = await rt.execute("def f(n):\\n    return f(n + 1)\\nf(0)").result;
    const ms = now() - t0;
    const ok = (await rt.execute("1 + 1").result).value === 2;
    return { ms, outcome: `${errType(res)}, usable=${ok}` };
  }),
  "print flood 10**6 lines (to result)": () => withRuntime(async (rt) => {
    let maxGap = 0, last = now();
    const timer = setInterval(() => { const t = now(); maxGap = Math.max(maxGap, t - last); last = t; }, 10);
    const t0 = now();
    const h = rt.execute("for i in range(10**6):\\n    print(i)");
    let events = 0;
    for await (const ev of h.events) events++;
    const res = await h.result;
    const ms = now() - t0;
    clearInterval(timer);
    return { ms, outcome: `${errType(res)}, ${events} events, page timer max gap ${maxGap.toFixed(0)} ms` };
  }),
  "huge allocation": () => withRuntime(async (rt) => {
    const t0 = now();
    const res = await rt.execute("x = [0] * (2**31 - 1)").result;
    const ms = now() - t0;
    const ok = (await rt.execute("1").result).value === 1;
    return { ms, outcome: `${errType(res)}, usable=${ok}` };
  }),
};
"""

SETUP_JS = "async () => {\n%s\nwindow.__faults = FAULTS;\n}"
RUN_JS = "async (name) => await window.__faults[name]()"


FAULT_NAMES = [
    "interrupt a tight loop",
    "timeout, CPU-bound loop (to usable again)",
    "timeout, time.sleep (hard path, to usable)",
    "timeout, host call never returns",
    "busy rejection during CPU-bound code",
    "worker death: js.close() (to WorkerCrashed)",
    "worker death: os._exit(0) (to WorkerCrashed)",
    "silent death, heartbeat only (to WorkerCrashed)",
    "deep recursion",
    "print flood 10**6 lines (to result)",
    "huge allocation",
]
ONCE = {"print flood 10**6 lines (to result)", "huge allocation"}


def run_browser(repeat: int) -> list[Row]:
    """One row per fault and server mode (cross-origin isolated first)."""
    from playwright.sync_api import sync_playwright

    from monty_dev.build import build
    from monty_runtime._server import start_server

    config = _load("monty_playwright_config", PROJECT_ROOT / "playwright.config.py")
    build(PROJECT_ROOT, log=lambda _line: None)
    prelude = FAULTS_JS % {"get_js": GET_JS}
    rows: list[Row] = []
    with sync_playwright() as pw:
        browser = config.launch_browser(pw)
        try:
            for isolated, label in ((True, "chromium+coi"), (False, "chromium")):
                server = start_server(PROJECT_ROOT / "web", isolated=isolated)
                try:
                    context = browser.new_context()
                    page = context.new_page()
                    page.goto(server.url + "demos/index.html?autostart=0", wait_until="load")
                    page.evaluate(SETUP_JS % prelude)
                    for name in FAULT_NAMES:
                        outcomes: list[str] = []
                        times: list[float] = []
                        for _ in range(1 if name in ONCE else repeat):
                            out: dict[str, Any] = page.evaluate(RUN_JS, name)
                            outcomes.append(str(out["outcome"]))
                            times.append(float(out["ms"]))
                        rows.append(Row(label, name, outcomes[0], statistics.median(times)))
                    context.close()
                finally:
                    server.stop()
        finally:
            browser.close()
    return rows


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print_table(run_browser(args.repeat))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
