"""Reference figures for the browser backend: a bare Pyodide worker, no monty_runtime.

* cold time to ready: ``new Worker()`` -> Pyodide booted (lock file + loadPyodide), in a
  fresh browser context each time (empty HTTP cache), N boots (default 3);
* round trip: the page posts ``runPython("1+1")`` to the worker and awaits the answer,
  N sequential round trips (default 200) after a warm-up.

Run ``python benchmarks/browser_anchor.py`` (it builds web/dist if needed and starts its
own server and Chromium). ``measure_anchor()`` returns the figures as a dict for other
benchmark scripts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from _common import PROJECT_ROOT, load_module, summarize  # type: ignore[import-not-found]

PAGE = "demos/boot-check.html?autostart=0&mode=bare"


def _boot(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(
        "async () => { const r = await window.bootCheck.start({ mode: 'bare' });"
        " return { ...r, readyMs: window.bootCheck.readyMs }; }"
    )
    if not result.get("ok"):
        raise RuntimeError(f"bare Pyodide worker failed to boot: {result.get('error')}")
    return result


def measure_anchor(
    *,
    round_trips: int = 200,
    warmup: int = 20,
    boots: int = 3,
    isolated: bool = True,
    browser: Any = None,
    base_url: str | None = None,
) -> dict[str, Any]:
    """Measure the bare-Pyodide anchor; returns figures in milliseconds.

    Pass ``browser`` (a Playwright sync Browser) and ``base_url`` (a running dev server)
    to reuse them; otherwise both are started here and stopped afterwards.
    """
    from monty_dev.build import build
    from monty_runtime._server import start_server

    if boots < 1 or round_trips < 1:
        raise ValueError("boots and round_trips must be at least 1")
    config = load_module("monty_playwright_config", PROJECT_ROOT / "playwright.config.py")
    last: dict[str, Any] = {}
    server = None
    pw_manager = None
    own_browser = None
    try:
        if base_url is None:
            build(PROJECT_ROOT, log=lambda _line: None)
            server = start_server(PROJECT_ROOT / "web", isolated=isolated)
            base_url = server.url
        if browser is None:
            from playwright.sync_api import sync_playwright

            pw_manager = sync_playwright()
            playwright = pw_manager.start()
            own_browser = config.launch_browser(playwright)
            browser = own_browser

        cold: list[float] = []
        worker_boot: list[float] = []
        phases: dict[str, list[float]] = {}
        for _ in range(boots):
            context = browser.new_context()
            context.set_default_timeout(120_000)
            try:
                page = context.new_page()
                page.goto(base_url + PAGE, wait_until="load")
                result = _boot(page)
                cold.append(float(result["readyMs"]))
                worker_boot.append(float(result["totalMs"]))
                for name, ms in result["phases"].items():
                    phases.setdefault(name, []).append(float(ms))
                last = result
            finally:
                context.close()

        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(base_url + PAGE, wait_until="load")
            _boot(page)
            page.evaluate("n => window.bootCheck.roundTrips(n, '1+1')", warmup)
            trips = page.evaluate("n => window.bootCheck.roundTrips(n, '1+1')", round_trips)
            cross_origin_isolated = page.evaluate("self.crossOriginIsolated")
        finally:
            context.close()

        return {
            "pyodide_version": last.get("pyodideVersion"),
            "python_version": str(last.get("version", "")).split(" ")[0],
            # Playwright's Chromium gives the bare number; the engine adapters a name too.
            "browser_version": (browser.version if " " in str(browser.version)
                                else f"Chromium {browser.version}"),
            "cross_origin_isolated": cross_origin_isolated,
            "cold_ready_ms": summarize(cold),
            "cold_ready_all_ms": cold,
            "worker_boot_ms": summarize(worker_boot),
            "phases_median_ms": {k: statistics.median(v) for k, v in phases.items()},
            "round_trip_ms": summarize([float(t) for t in trips]),
            "round_trips": round_trips,
            "warmup": warmup,
            "boots": boots,
        }
    finally:
        if own_browser is not None:
            own_browser.close()
        if pw_manager is not None:
            pw_manager.__exit__(None, None, None)
        if server is not None:
            server.stop()


def format_table(figures: dict[str, Any]) -> str:
    rows = [
        ("cold boot to ready (page)", figures["cold_ready_ms"]),
        ("  of which in the worker", figures["worker_boot_ms"]),
        ('runPython("1+1") round trip', figures["round_trip_ms"]),
    ]
    mode = "isolated" if figures["cross_origin_isolated"] else "not isolated"
    lines = [
        f"browser anchor: bare Pyodide {figures['pyodide_version']} "
        f"(Python {figures['python_version']}) worker, {figures['browser_version']}, "
        f"{mode}",
        f"{'figure (ms)':<32}{'median':>10}{'min':>10}{'p95':>10}{'max':>10}{'n':>6}",
    ]
    for label, s in rows:
        lines.append(
            f"{label:<32}{s['median']:>10.2f}{s['min']:>10.2f}{s['p95']:>10.2f}"
            f"{s['max']:>10.2f}{int(s['n']):>6}"
        )
    phases = ", ".join(f"{k} {v:.0f}" for k, v in figures["phases_median_ms"].items())
    lines.append(f"boot phases (median ms): {phases}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--round-trips", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--boots", type=int, default=3)
    parser.add_argument("--no-isolation", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    figures = measure_anchor(
        round_trips=args.round_trips,
        warmup=args.warmup,
        boots=args.boots,
        isolated=not args.no_isolation,
    )
    print(format_table(figures))
    if args.json:
        print(json.dumps(figures, indent=2))
    print(f"(measured in {time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
