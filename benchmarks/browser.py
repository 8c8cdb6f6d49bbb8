"""Figures for the browser backend (web/monty-runtime.js + Pyodide workers), printed in
one run next to the bare-Pyodide anchor measured in the same run
(benchmarks/browser_anchor.py: a bare Pyodide worker, cold boot and a
``runPython("1+1")`` round trip over ``postMessage``).

* first visit to the first result: a fresh browser context (empty HTTP cache and Cache
  Storage) opens web/demos/first-visit.html, an app's page that calls ``create()`` as
  soon as its module runs (which restores the snapshot
  shipped with the build, web/dist/snapshot.bin, where it fits the engine; elsewhere it
  boots cold: the table prints how it came up) and ``execute("1+1")``, timed from the
  navigation's start; the same with ``create({snapshot: false})`` (a cold boot); bytes
  sent by the server for each (as sent, compressed where the browser accepts it, and
  the files' own sizes), and the page's main-thread long tasks (over 50 ms, from
  PerformanceObserver "longtask", with "long-animation-frame" script attribution);
* cold boot: ``MontyRuntime.create()`` in a fresh browser context with the shipped
  snapshot turned off (``useShippedSnapshot(false)``); this first worker makes the
  page's own memory snapshot;
* snapshot restore, one: further ``create()`` calls in the same page (the snapshot is in
  the page's memory), one at a time;
* snapshot restore, four at once: ``Promise.all`` of four ``create()``;
* returning visit: the page reloaded in the same profile, ``create()`` restores the
  snapshot from Cache Storage (WebKitGTK, whose automation session drops Cache
  Storage's entries at a reload: the same page, with a snapshot source of its own);
* create() from a warm pool: ``MontyRuntime.prewarm(1)``, then ``create()`` with a host
  function, waiting for the pool to refill before each one;
* ``execute("1+1")`` round trip from JS: ``await rt.execute("1+1").result``;
* host call round trip: a JS host function called from Python sync style (``f(i)``) with
  JSPI and with Atomics (cross-origin isolated only), and ``await af(i)``, timed inside
  Python per call;
* print-heavy program: ``for i in range(N): print(i)``, lines per second and ``print``
  events per second as the page receives them;
* two-worker CPU speedup: two runtimes run the same ~1 s CPU-bound program at once.

Run ``python benchmarks/browser.py`` (builds web/dist if needed, starts its own server
and browser). ``--engine chromium|firefox|webkit`` picks the engine (Firefox and WebKit
through tests/browser/support/engines.py); the anchor is measured in the same engine, in the
same run. Figures an engine cannot give (JSPI or Atomics host calls without JSPI or
SharedArrayBuffer) print as n/a. ``--no-isolation`` serves without COOP/COEP; ``--json`` prints the
figures as JSON too; ``--quick`` takes fewer samples.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from typing import Any

from _common import PROJECT_ROOT, summarize  # type: ignore[import-not-found]
from _common import load_module as _load

PAGE = "demos/index.html?autostart=0"

#: Targets (median, ms).
TARGETS = {
    "first_visit_ms": 1200.0,
    "pool_create_ms": 50.0,
    "restore_one_ms": 450.0,
    "restore_cached_ms": 450.0,
    "round_trip_ms": 0.2,
    "host_call_jspi_ms": 0.3,
    "host_call_atomics_ms": 0.3,
}


SETUP_JS = """async () => {
  window.M = await import("../monty-runtime.js");
  window.S = await import("../page/snapshot.js");
  window.P = await import("../page/pool.js");
  S.useShippedSnapshot(false);  // the page's own snapshot: cold boot, make, restore
  window.src = () => S.snapshotSource(new URL("../dist/build-info.json", location.href).href);
  window.sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  return true;
}"""

# Installed before any script of the page: the main thread's long tasks from the start.
LONGTASK_INIT = """
window.__longtasks = [];
window.__loaf = [];
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) __longtasks.push({ start: e.startTime, ms: e.duration });
  }).observe({ type: "longtask", buffered: true });
} catch {}
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      __loaf.push({ start: e.startTime, ms: e.duration, blocking: e.blockingDuration,
        scripts: e.scripts.map((x) => ({ src: x.sourceURL, fn: x.sourceFunctionName,
          invoker: x.invoker, ms: x.duration })) });
    }
  }).observe({ type: "long-animation-frame", buffered: true });
} catch {}
"""

# demos/first-visit.html: an app's page that creates a runtime as soon as its module
# loads.
FIRST_VISIT_PAGE = "demos/first-visit.html"

FIRST_VISIT_JS = """async () => {
  const got = await window.firstVisit;
  if (got.value !== 2) throw new Error("1+1 gave " + JSON.stringify(got.value));
  await new Promise((r) => setTimeout(r, 100));  // observers deliver
  // (No long-task observer where the context has no init scripts: Firefox, WebKit.)
  const long = (window.__longtasks ?? []).filter((t) => t.start < got.firstMs);
  const loaf = (window.__loaf ?? []).filter((f) => f.start < got.firstMs && f.blocking > 0);
  await window.rt.dispose();
  return { firstMs: got.firstMs, createMs: got.createMs, moduleMs: got.moduleMs, boot: got.boot, long, loaf };
}"""

COLD_JS = """async () => {
  const t0 = performance.now();
  const rt = await M.MontyRuntime.create();
  const ms = performance.now() - t0;
  window.__rt = rt;
  await src().saved();
  return { ms, boot: rt.boot, phases: rt.info.phases };
}"""

RESTORE_JS = """async (n) => {
  const one = [];
  const phases = [];
  let last = null;
  for (let i = 0; i < n; i++) {
    await sleep(100);
    const t0 = performance.now();
    const rt = await M.MontyRuntime.create();
    one.push(performance.now() - t0);
    phases.push(rt.info.phases);
    last = rt.boot;
    await rt.dispose();
  }
  const four = [];
  for (let k = 0; k < Math.max(1, Math.floor(n / 4)); k++) {
    await sleep(300);
    const t0 = performance.now();
    const rts = await Promise.all([0, 1, 2, 3].map(() => M.MontyRuntime.create()));
    four.push(performance.now() - t0);
    await Promise.all(rts.map((r) => r.dispose()));
  }
  return { one, four, phases, boot: last };
}"""

CACHED_JS = """async (buildInfo) => {
  const options = buildInfo ? { buildInfoURL: new URL(buildInfo, location.href).href } : {};
  const t0 = performance.now();
  const rt = await M.MontyRuntime.create(options);
  const end = performance.now();
  const ms = end - t0;
  const boot = rt.boot;
  await rt.dispose();
  await new Promise((r) => setTimeout(r, 100));  // observers deliver
  const long = (window.__longtasks ?? []).filter((t) => t.start < end);
  return { ms, boot, long };
}"""

POOL_JS = """async (n) => {
  await M.MontyRuntime.prewarm(1);
  const pool = P.allPools()[0];
  const out = [];
  let boot = null;
  for (let i = 0; i < n; i++) {
    while (pool.idle < 1) await sleep(20);
    await sleep(50);
    const t0 = performance.now();
    const rt = await M.MontyRuntime.create({ functions: { f: (x) => x } });
    out.push(performance.now() - t0);
    boot = rt.boot;
    const ok = (await rt.execute("f(1)").result).value === 1;
    if (!ok) throw new Error("pooled runtime does not call its host function");
    await rt.dispose();
  }
  await M.MontyRuntime.prewarm(0);
  return { ms: out, boot };
}"""

ROUND_TRIP_JS = """async ({ n, warmup, functions }) => {
  const rt = functions ? await M.MontyRuntime.create({ functions: { f: (x) => x } }) : window.__rt;
  for (let i = 0; i < warmup; i++) await rt.execute("1+1").result;
  const out = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await rt.execute("1+1").result;
    out.push(performance.now() - t0);
  }
  if (functions) await rt.dispose();
  return out;
}"""

HOST_CALL_JS = """async ({ n, sync }) => {
  const rt = await M.MontyRuntime.create({ sync, functions: { f: (x) => x, af: async (x) => x } });
  const code = (call) => [
    "import time",
    "out = []",
    "for i in range(" + n + "):",
    "    t0 = time.perf_counter()",
    "    v = " + call,
    "    out.append((time.perf_counter() - t0) * 1000)",
    "out",
  ].join("\\n");
  const run = async (c) => {
    const res = await rt.execute(c).result;
    if (res.error) throw new Error(res.error.type + ": " + res.error.message);
    return res.value;
  };
  let syncStyle = null;
  if (sync !== "none") {
    await run(code("f(i)"));
    syncStyle = await run(code("f(i)"));
  }
  const awaited = await run(code("await af(i)"));
  const env = rt.info?.env;
  await rt.dispose();
  return { sync: syncStyle, awaited, env };
}"""

PRINT_JS = """async (n) => {
  const rt = window.__rt;
  const code = "for i in range(" + n + "):\\n    print(i)";
  await rt.execute("for i in range(1000):\\n    print(i)").result;
  const h = rt.execute(code);
  let events = 0, lines = 0, first = null, last = null;
  const t0 = performance.now();
  for await (const ev of h.events) {
    if (ev.type === "print") {
      events += 1;
      lines += ev.text.split("\\n").length - 1;
      first ??= performance.now();
      last = performance.now();
    }
  }
  const res = await h.result;
  const ms = performance.now() - t0;
  return { ms, events, lines, streamMs: last - first, stdoutLines: res.stdout.split("\\n").length - 1 };
}"""

SPEEDUP_JS = """async () => {
  const prog = (n) => "acc = 0\\nfor i in range(" + n + "):\\n    acc += i * i";
  const [a, b] = await Promise.all([M.MontyRuntime.create(), M.MontyRuntime.create()]);
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
    round_trips: int = 300,
    warmup: int = 50,
    boots: int = 3,
    restores: int = 8,
    pool_creates: int = 10,
    host_calls: int = 300,
    print_lines: int = 100_000,
    isolated: bool = True,
    anchor: bool = True,
    speedup: bool = True,
    engine: str = "chromium",
) -> dict[str, Any]:
    sys.path.insert(0, str(PROJECT_ROOT / "src"))
    from monty_dev.build import build
    from monty_runtime._server import start_server

    config = _load("monty_playwright_config", PROJECT_ROOT / "playwright.config.py")
    build(PROJECT_ROOT, log=lambda _line: None)
    server = start_server(PROJECT_ROOT / "web", isolated=isolated)
    from playwright.sync_api import sync_playwright

    figures: dict[str, Any] = {"engine": engine}
    engines = _load("engines", PROJECT_ROOT / "tests" / "browser" / "support" / "engines.py")
    try:
        with contextlib.ExitStack() as stack:
            if engine == "chromium":
                pw = stack.enter_context(sync_playwright())
                browser = config.launch_browser(pw)
            else:
                browser = engines.launch(engine)
            try:
                for kind, query in (("first_visit", ""), ("first_visit_cold", "?snapshot=0")):
                    figures[kind] = first_visits(browser, server, query, boots)
                cold: list[float] = []
                phases: dict[str, list[float]] = {}
                cached: list[float] = []
                cached_boot: dict[str, Any] = {}
                cached_long: list[dict[str, float]] = []
                page = context = None
                for _ in range(boots):
                    if context is not None:
                        context.close()
                    context = browser.new_context()
                    context.set_default_timeout(300_000)
                    if hasattr(context, "add_init_script"):
                        context.add_init_script(LONGTASK_INIT)
                    page = context.new_page()
                    page.goto(server.url + PAGE, wait_until="load")
                    page.evaluate(SETUP_JS)
                    got = page.evaluate(COLD_JS)
                    cold.append(float(got["ms"]))
                    for name, ms in got["phases"].items():
                        phases.setdefault(name, []).append(float(ms))
                    # A returning visit: same profile, new page; the snapshot comes from
                    # Cache Storage. Where a reload drops Cache Storage's entries
                    # (WebKitGTK's automation session): the same page, with a snapshot
                    # source of its own, which reads Cache Storage as a new page would.
                    page.evaluate("() => window.__rt.dispose()")
                    returning = None
                    if engines.EXPECTED[engine].cache_survives_reload:
                        page.reload(wait_until="load")
                        page.evaluate(SETUP_JS)
                    else:
                        returning = "../dist/build-info.json?returning-visit"
                    again = page.evaluate(CACHED_JS, returning)
                    cached.append(float(again["ms"]))
                    cached_boot = again["boot"]
                    cached_long = again["long"]
                    page.evaluate(COLD_JS)  # a runtime for the figures below
                assert page is not None and context is not None
                restore = page.evaluate(RESTORE_JS, restores)
                pool = page.evaluate(POOL_JS, pool_creates)
                trips = page.evaluate(
                    ROUND_TRIP_JS, {"n": round_trips, "warmup": warmup, "functions": False}
                )
                trips_fn = page.evaluate(
                    ROUND_TRIP_JS, {"n": round_trips, "warmup": warmup, "functions": True}
                )
                caps = page.evaluate("""() => ({
                  jspi: typeof WebAssembly.Suspending === "function",
                  shared: self.crossOriginIsolated && typeof SharedArrayBuffer === "function",
                })""")
                # Without JSPI the sync-style figure cannot be taken: "none" keeps the
                # awaited one (a sync-style call then fails with its TypeError).
                jspi = page.evaluate(HOST_CALL_JS, {"n": host_calls,
                                                    "sync": "jspi" if caps["jspi"] else "none"})
                atomics = None
                if caps["shared"]:
                    atomics = page.evaluate(HOST_CALL_JS, {"n": host_calls, "sync": "atomics"})
                prints = page.evaluate(PRINT_JS, print_lines)
                speed = page.evaluate(SPEEDUP_JS) if speedup else None
                restore_phases: dict[str, list[float]] = {}
                for entry in restore["phases"]:
                    for name, ms in entry.items():
                        restore_phases.setdefault(name, []).append(float(ms))
                figures.update(
                    {
                        "browser_version": _version(browser),
                        "cross_origin_isolated": page.evaluate("self.crossOriginIsolated"),
                        "env": jspi["env"],
                        "cold_ready_ms": summarize(cold),
                        "phases_median_ms": {k: statistics.median(v) for k, v in phases.items()},
                        "restore_one_ms": summarize([float(x) for x in restore["one"]]),
                        "restore_four_ms": summarize([float(x) for x in restore["four"]]),
                        "restore_phases_median_ms": {
                            k: statistics.median(v) for k, v in restore_phases.items()
                        },
                        "restore_boot": restore["boot"],
                        "restore_cached_ms": summarize(cached),
                        "restore_cached_boot": cached_boot,
                        "restore_cached_long": cached_long,
                        "pool_create_ms": summarize([float(x) for x in pool["ms"]]),
                        "pool_boot": pool["boot"],
                        "round_trip_ms": summarize([float(x) for x in trips]),
                        "round_trip_functions_ms": summarize([float(x) for x in trips_fn]),
                        "host_call_jspi_ms": (
                            summarize([float(x) for x in jspi["sync"]]) if jspi["sync"] else None
                        ),
                        "host_call_await_ms": summarize([float(x) for x in jspi["awaited"]]),
                        "host_call_atomics_ms": (
                            summarize([float(x) for x in atomics["sync"]]) if atomics else None
                        ),
                        "prints": prints,
                    }
                )
                if speed is not None:
                    figures["speedup"] = max(t["speedup"] for t in speed["trials"])
                    figures["speedup_trials"] = speed["trials"]
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
                    figures["anchor"]["engine"] = engine
            finally:
                browser.close()
    finally:
        server.stop()
    return figures


def _served_sizes(server: Any, mark: int) -> dict[str, Any]:
    """Bytes of the responses since ``mark``: as sent, and the files' own sizes."""
    deadline = time.monotonic() + 5
    while True:  # the log fills in a body's size once it is sent
        records = server.requests()[mark:]
        if all(r.bytes or r.status != 200 for r in records) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    sent = raw = 0
    by_file: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.status != 200:
            continue
        path = PROJECT_ROOT / "web" / r.path.lstrip("/")
        size = path.stat().st_size if path.is_file() else r.bytes
        sent += r.bytes
        raw += size
        by_file[r.path] = {"sent": r.bytes, "raw": size, "encoding": r.encoding}
    return {"sent": sent, "raw": raw, "requests": len(records), "files": by_file}


def first_visits(browser: Any, server: Any, query: str, n: int) -> dict[str, Any]:
    """``n`` first visits (fresh context each) of demos/first-visit.html``query`` to the
    first result of ``execute``."""
    first: list[float] = []
    create: list[float] = []
    module: list[float] = []
    long_max: list[float] = []
    out: dict[str, Any] = {}
    for _ in range(n):
        context = browser.new_context()
        context.set_default_timeout(300_000)
        if hasattr(context, "add_init_script"):  # Playwright (Chromium) only
            context.add_init_script(LONGTASK_INIT)
        page = context.new_page()
        mark = len(server.requests())
        page.goto(server.url + FIRST_VISIT_PAGE + query, wait_until="load")
        got = page.evaluate(FIRST_VISIT_JS)
        out["bytes"] = _served_sizes(server, mark)
        context.close()
        first.append(float(got["firstMs"]))
        create.append(float(got["createMs"]))
        module.append(float(got["moduleMs"]))
        long_max.append(max([t["ms"] for t in got["long"]], default=0.0))
        out["boot"] = got["boot"]
        out["long"] = got["long"]
        out["loaf"] = got["loaf"]
    out["first_ms"] = summarize(first)
    out["create_ms"] = summarize(create)
    out["module_ms"] = summarize(module)
    out["longest_task_ms"] = summarize(long_max)
    return out


def _version(browser: Any) -> str:
    """Playwright's Chromium gives the bare number; the engine adapters a name too."""
    version = str(browser.version)
    return version if " " in version else f"Chromium {version}"


def _verdict(f: dict[str, Any], key: str) -> str:
    s = f.get(key)
    if not s:
        return "n/a"
    return "OK" if s["median"] <= TARGETS[key] else "over"


def format_table(f: dict[str, Any]) -> str:
    mode = "isolated" if f["cross_origin_isolated"] else "not isolated"
    env = f.get("env") or {}
    lines = [
        f"browser backend: {f['browser_version']}, {mode}, "
        f"Pyodide {env.get('pyodideVersion')}, JSPI {env.get('jspi')}",
        f"{'figure (ms)':<44}{'median':>10}{'min':>10}{'p95':>10}{'max':>10}{'n':>6}  target",
    ]
    fv, fc = f["first_visit"], f["first_visit_cold"]
    f["first_visit_ms"] = fv["first_ms"]
    rows: list[tuple[str, dict[str, float] | None, str]] = [
        ("first visit -> first result, default", fv["first_ms"], "first_visit_ms"),
        ("  the page's module ran at (default)", fv["module_ms"], ""),
        ("  of which create() (default)", fv["create_ms"], ""),
        ("first visit -> first result, snapshot:false", fc["first_ms"], ""),
        ("  of which create() (cold boot)", fc["create_ms"], ""),
        ("cold boot, first runtime (makes snapshot)", f["cold_ready_ms"], ""),
        ("snapshot restore, one new worker", f["restore_one_ms"], "restore_one_ms"),
        ("snapshot restore, four at once (wall)", f["restore_four_ms"], ""),
        ("returning visit: restore from Cache Storage", f["restore_cached_ms"],
         "restore_cached_ms"),
        ("create() from a warm pool", f["pool_create_ms"], "pool_create_ms"),
        ('execute("1+1") round trip', f["round_trip_ms"], "round_trip_ms"),
        ('execute("1+1"), runtime with a host fn', f["round_trip_functions_ms"], ""),
        ("host call f(i), sync style, JSPI", f["host_call_jspi_ms"], "host_call_jspi_ms"),
        ("host call f(i), sync style, Atomics", f["host_call_atomics_ms"],
         "host_call_atomics_ms"),
        ("host call await af(i)", f["host_call_await_ms"], ""),
    ]
    anchor = f.get("anchor")
    if anchor:
        rows += [
            ("anchor: bare Pyodide cold ready", anchor["cold_ready_ms"], ""),
            ('anchor: runPython("1+1") round trip', anchor["round_trip_ms"], ""),
        ]
    for label, s, key in rows:
        target = f"<= {TARGETS[key]:g} {_verdict(f, key)}" if key else ""
        if s is None:
            lines.append(f"{label:<44}{'n/a':>10}")
            continue
        lines.append(
            f"{label:<44}{s['median']:>10.3f}{s['min']:>10.3f}{s['p95']:>10.3f}"
            f"{s['max']:>10.3f}{int(s['n']):>6}  {target}"
        )
    mb = 1e6
    for label, visit in (("first visit, default", fv), ("first visit, snapshot:false", fc)):
        b = visit["bytes"]
        big = ", ".join(
            f"{path.rsplit('/', 1)[-1]} {x['sent'] / mb:.2f}{' ' + x['encoding'] if x['encoding'] else ''}"
            for path, x in sorted(b["files"].items(), key=lambda kv: -kv[1]["sent"])[:4]
        )
        lines.append(
            f"{label}: {b['sent'] / mb:.2f} MB sent ({b['raw'] / mb:.2f} MB uncompressed), "
            f"{b['requests']} requests; largest: {big}"
        )
    for label, visit in (("default", fv), ("snapshot:false", fc)):
        boot = visit.get("boot") or {}
        why = f"; reason: {boot['reason']}" if boot.get("reason") else ""
        lines.append(f"first visit, {label}: mode {boot.get('mode')}, snapshot {boot.get('snapshot')}, "
                     f"from {boot.get('snapshotFrom')}{why}")
    ratio = fv["bytes"]["sent"] / fc["bytes"]["sent"]
    lines.append(f"first-visit bytes, default vs cold boot: {ratio:.2f}x as sent, "
                 f"{fv['bytes']['raw'] / fc['bytes']['raw']:.2f}x uncompressed")
    for label, visit in (("default", fv), ("snapshot:false", fc)):
        tasks = ", ".join(f"{t['ms']:.0f} ms at {t['start']:.0f}" for t in visit["long"]) or "none"
        lines.append(f"main-thread long tasks until the first result ({label}, last visit): {tasks}")
        for frame in visit["loaf"]:
            scripts = "; ".join(
                f"{x['src'].rsplit('/', 1)[-1]}:{x['fn'] or '?'} {x['ms']:.0f} ms ({x['invoker']})"
                for x in frame["scripts"] if x["ms"] >= 5
            )
            lines.append(f"    long frame at {frame['start']:.0f}: blocking {frame['blocking']:.0f} ms; "
                         f"scripts: {scripts or 'none attributed'}")
    tasks = ", ".join(f"{t['ms']:.0f} ms at {t['start']:.0f}" for t in f.get("restore_cached_long", []))
    lines.append(f"main-thread long tasks until ready (returning visit, last): {tasks or 'none'}")
    p = f["prints"]
    lines.append(
        f"print-heavy program ({p['lines']} lines): {p['lines'] / p['ms'] * 1000:,.0f} lines/s, "
        f"{p['events']} print events ({p['events'] / p['ms'] * 1000:,.0f} events/s), "
        f"{p['ms']:.0f} ms to the result"
    )
    if "speedup" in f:
        trials = ", ".join(f"{t['speedup']:.2f}" for t in f["speedup_trials"])
        lines.append(f"two-worker CPU speedup (best of {len(f['speedup_trials'])}): "
                     f"{f['speedup']:.2f}x  (trials: {trials}; ~1 s each alone)")
    if anchor:
        a = anchor["cold_ready_ms"]["median"]
        lines.append(f"first visit -> first result {fv['first_ms']['median']:.0f} ms "
                     f"({fv['first_ms']['median'] / a:.2f}x anchor cold ready {a:.0f} ms); "
                     f"snapshot:false {fc['first_ms']['median']:.0f} ms "
                     f"({fc['first_ms']['median'] / a:.2f}x)")
        rt = f["round_trip_ms"]["median"]
        a = anchor["round_trip_ms"]["median"]
        lines.append(f'execute("1+1") {rt:.3f} ms vs anchor runPython {a:.3f} ms '
                     f"({rt / a:.2f}x); cold boot {f['cold_ready_ms']['median']:.0f} ms vs "
                     f"anchor {anchor['cold_ready_ms']['median']:.0f} ms")
    lines.append("cold boot phases (median ms): " + ", ".join(
        f"{k} {v:.0f}" for k, v in f["phases_median_ms"].items()))
    lines.append("restore phases (median ms): " + ", ".join(
        f"{k} {v:.0f}" for k, v in f["restore_phases_median_ms"].items()))
    cb = f.get("restore_cached_boot") or {}
    lines.append(f"returning visit boot: mode {cb.get('mode')}, snapshot {cb.get('snapshot')} "
                 f"from {cb.get('snapshotFrom')}; " + ", ".join(
                     f"{ph['name']} {ph['ms']:.0f}" for ph in cb.get("phases", [])))
    pb = f.get("pool_boot") or {}
    lines.append("pooled create() phases (last): " + ", ".join(
        f"{ph['name']}{'*' if ph.get('background') else ''} {ph['ms']:.1f}"
        for ph in pb.get("phases", [])) + "   (* = before create(), in the background)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--round-trips", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--boots", type=int, default=3)
    parser.add_argument("--restores", type=int, default=8)
    parser.add_argument("--pool-creates", type=int, default=10)
    parser.add_argument("--host-calls", type=int, default=300)
    parser.add_argument("--print-lines", type=int, default=100_000)
    parser.add_argument("--engine", choices=["chromium", "firefox", "webkit"],
                        default="chromium")
    parser.add_argument("--no-isolation", action="store_true")
    parser.add_argument("--no-anchor", action="store_true")
    parser.add_argument("--no-speedup", action="store_true")
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.boots, args.restores, args.pool_creates = 1, 4, 4
        args.round_trips, args.host_calls, args.print_lines = 100, 100, 20_000
    started = time.perf_counter()
    figures = measure(
        round_trips=args.round_trips,
        warmup=args.warmup,
        boots=args.boots,
        restores=args.restores,
        pool_creates=args.pool_creates,
        host_calls=args.host_calls,
        print_lines=args.print_lines,
        isolated=not args.no_isolation,
        anchor=not args.no_anchor,
        speedup=not args.no_speedup,
        engine=args.engine,
    )
    print(format_table(figures))
    if args.json:
        print(json.dumps(figures, indent=2))
    print(f"(measured in {time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
