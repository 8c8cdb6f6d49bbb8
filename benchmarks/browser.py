"""Figures for the browser backend (web/monty-runtime.js + Pyodide worker), next to the
bare-Pyodide anchor measured in the same run (benchmarks/browser_anchor.py):

* first runtime ready (cold): ``MontyRuntime.create()`` in a fresh browser context
  (empty HTTP cache), N boots;
* a further runtime ready (warm): another ``create()`` in the same page;
* ``execute("1+1")`` round trip from JS: ``await rt.execute("1+1").result``, N=200
  sequential calls after a warm-up;
* host call round trip: a JS host function called from Python, sync style
  (``f(i)``, JSPI) and async style (``await f(i)``), timed inside Python per call;
* two-worker CPU speedup: two runtimes run the same ~1 s CPU-bound program at once.

Run ``python benchmarks/browser.py`` (builds web/dist if needed, starts its own server
and Chromium).  ``--no-isolation`` serves without COOP/COEP; ``--json`` prints the
figures as JSON too.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PAGE = "index.html?autostart=0"
TARGET_ROUND_TRIP_MS = 0.5


def _load(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def summarize(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "p95": p95,
        "max": ordered[-1],
        "n": float(len(ordered)),
    }


COLD_JS = """async () => {
  const { MontyRuntime } = await import("./monty-runtime.js");
  const t0 = performance.now();
  const rt = await MontyRuntime.create();
  const ms = performance.now() - t0;
  const phases = rt.info.phases;
  window.__rt = rt;
  window.__MontyRuntime = MontyRuntime;
  return { ms, phases };
}"""

WARM_JS = """async (n) => {
  const out = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const rt = await window.__MontyRuntime.create();
    out.push(performance.now() - t0);
    await rt.dispose();
  }
  return out;
}"""

ROUND_TRIP_JS = """async ({ n, warmup }) => {
  const rt = window.__rt;
  for (let i = 0; i < warmup; i++) await rt.execute("1+1").result;
  const out = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await rt.execute("1+1").result;
    out.push(performance.now() - t0);
  }
  return out;
}"""

HOST_CALL_JS = """async ({ n }) => {
  const { MontyRuntime } = await import("./monty-runtime.js");
  const rt = await MontyRuntime.create({ functions: { f: (x) => x, af: async (x) => x } });
  const code = (call) => [
    "import time",
    "out = []",
    "for i in range(" + n + "):",
    "    t0 = time.perf_counter()",
    "    v = " + call,
    "    out.append((time.perf_counter() - t0) * 1000)",
    "out",
  ].join("\\n");
  await rt.execute(code("f(i)")).result;
  const sync = (await rt.execute(code("f(i)")).result).value;
  const awaited = (await rt.execute(code("await af(i)")).result).value;
  const env = rt.info?.env;
  await rt.dispose();
  return { sync, awaited, env };
}"""

SPEEDUP_JS = """async () => {
  const { MontyRuntime } = await import("./monty-runtime.js");
  const prog = (n) => "acc = 0\\nfor i in range(" + n + "):\\n    acc += i * i";
  const [a, b] = await Promise.all([MontyRuntime.create(), MontyRuntime.create()]);
  await Promise.all([a.execute(prog(1500000)).result, b.execute(prog(1500000)).result]);
  let t = performance.now();
  await a.execute(prog(1000000)).result;
  const n = Math.round(1000 / ((performance.now() - t) / 1000000));
  const trials = [];
  for (let k = 0; k < 3; k++) {
    t = performance.now();
    await a.execute(prog(n)).result;
    const single = performance.now() - t;
    t = performance.now();
    await Promise.all([a.execute(prog(n)).result, b.execute(prog(n)).result]);
    const both = performance.now() - t;
    trials.push({ single, both, speedup: 2 * single / both });
  }
  await Promise.all([a.dispose(), b.dispose()]);
  return { n, trials };
}"""


def measure(
    *,
    round_trips: int = 200,
    warmup: int = 20,
    boots: int = 3,
    warm_boots: int = 3,
    host_calls: int = 200,
    isolated: bool = True,
    anchor: bool = True,
) -> dict[str, Any]:
    sys.path.insert(0, str(PROJECT_ROOT / "src"))
    from monty_runtime._build import build
    from monty_runtime._server import start_server

    config = _load("monty_playwright_config", PROJECT_ROOT / "playwright.config.py")
    build(PROJECT_ROOT, log=lambda _line: None)
    server = start_server(PROJECT_ROOT / "web", isolated=isolated)
    from playwright.sync_api import sync_playwright

    figures: dict[str, Any] = {}
    try:
        with sync_playwright() as pw:
            browser = config.launch_browser(pw)
            try:
                cold: list[float] = []
                phases: dict[str, list[float]] = {}
                page = None
                context = None
                for i in range(boots):
                    if context is not None:
                        context.close()
                    context = browser.new_context()
                    context.set_default_timeout(180_000)
                    page = context.new_page()
                    page.goto(server.url + PAGE, wait_until="load")
                    got = page.evaluate(COLD_JS)
                    cold.append(float(got["ms"]))
                    for name, ms in got["phases"].items():
                        phases.setdefault(name, []).append(float(ms))
                    del i
                assert page is not None and context is not None
                warm = page.evaluate(WARM_JS, warm_boots)
                trips = page.evaluate(ROUND_TRIP_JS, {"n": round_trips, "warmup": warmup})
                calls = page.evaluate(HOST_CALL_JS, {"n": host_calls})
                speed = page.evaluate(SPEEDUP_JS)
                figures.update(
                    {
                        "browser_version": browser.version,
                        "cross_origin_isolated": page.evaluate("self.crossOriginIsolated"),
                        "env": calls["env"],
                        "cold_ready_ms": summarize(cold),
                        "phases_median_ms": {k: statistics.median(v) for k, v in phases.items()},
                        "warm_ready_ms": summarize([float(x) for x in warm]),
                        "round_trip_ms": summarize([float(x) for x in trips]),
                        "host_call_sync_ms": summarize([float(x) for x in calls["sync"]]),
                        "host_call_await_ms": summarize([float(x) for x in calls["awaited"]]),
                        "speedup": max(t["speedup"] for t in speed["trials"]),
                        "speedup_trials": speed["trials"],
                        "speedup_n": speed["n"],
                    }
                )
                context.close()
                if anchor:
                    anchor_mod = _load(
                        "monty_browser_anchor", PROJECT_ROOT / "benchmarks" / "browser_anchor.py"
                    )
                    figures["anchor"] = anchor_mod.measure_anchor(
                        round_trips=round_trips,
                        warmup=warmup,
                        boots=boots,
                        isolated=isolated,
                        browser=browser,
                        base_url=server.url,
                    )
            finally:
                browser.close()
    finally:
        server.stop()
    return figures


def format_table(f: dict[str, Any]) -> str:
    mode = "isolated" if f["cross_origin_isolated"] else "not isolated"
    env = f.get("env") or {}
    lines = [
        f"browser backend: Chromium {f['browser_version']}, {mode}, "
        f"Pyodide {env.get('pyodideVersion')}, JSPI {env.get('jspi')}",
        f"{'figure (ms)':<40}{'median':>10}{'min':>10}{'p95':>10}{'max':>10}{'n':>6}",
    ]
    rows: list[tuple[str, dict[str, float]]] = [
        ("first runtime ready (cold)", f["cold_ready_ms"]),
        ("further runtime ready (warm)", f["warm_ready_ms"]),
        ('execute("1+1") round trip', f["round_trip_ms"]),
        ("host call, sync style f(i)", f["host_call_sync_ms"]),
        ("host call, await af(i)", f["host_call_await_ms"]),
    ]
    anchor = f.get("anchor")
    if anchor:
        rows += [
            ("anchor: bare Pyodide cold ready", anchor["cold_ready_ms"]),
            ('anchor: runPython("1+1") round trip', anchor["round_trip_ms"]),
        ]
    for label, s in rows:
        lines.append(
            f"{label:<40}{s['median']:>10.3f}{s['min']:>10.3f}{s['p95']:>10.3f}"
            f"{s['max']:>10.3f}{int(s['n']):>6}"
        )
    trials = ", ".join(f"{t['speedup']:.2f}" for t in f["speedup_trials"])
    lines.append(f"two-worker CPU speedup (best of {len(f['speedup_trials'])}): "
                 f"{f['speedup']:.2f}x  (trials: {trials}; ~1 s each alone)")
    rt = f["round_trip_ms"]["median"]
    verdict = "OK" if rt <= TARGET_ROUND_TRIP_MS else "over"
    extra = ""
    if anchor:
        extra = f"; anchor {anchor['round_trip_ms']['median']:.3f} ms"
    lines.append(f"round trip median {rt:.3f} ms vs target {TARGET_ROUND_TRIP_MS} ms: "
                 f"{verdict}{extra}")
    phases = ", ".join(f"{k} {v:.0f}" for k, v in f["phases_median_ms"].items())
    lines.append(f"boot phases (median ms): {phases}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--round-trips", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--boots", type=int, default=3)
    parser.add_argument("--warm-boots", type=int, default=3)
    parser.add_argument("--host-calls", type=int, default=200)
    parser.add_argument("--no-isolation", action="store_true")
    parser.add_argument("--no-anchor", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    figures = measure(
        round_trips=args.round_trips,
        warmup=args.warmup,
        boots=args.boots,
        warm_boots=args.warm_boots,
        host_calls=args.host_calls,
        isolated=not args.no_isolation,
        anchor=not args.no_anchor,
    )
    print(format_table(figures))
    if args.json:
        print(json.dumps(figures, indent=2))
    print(f"(measured in {time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
