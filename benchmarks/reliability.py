"""Reliability suite: inject faults, print the outcome and the latency to detect or
recover, one row per fault.

    python benchmarks/reliability.py [--backend native|chromium|all] [--repeat 5]

The native backend runs in-process.  The browser rows (``--backend chromium``) come from
``benchmarks/reliability_browser.py`` when present: they need Chromium and a build.
Latencies are medians over ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from monty_runtime import Limits, MontyRuntime, StateError


@dataclass
class Row:
    backend: str
    fault: str
    outcome: str
    latency_ms: float
    note: str = ""


async def _interrupt() -> tuple[str, float]:
    async with MontyRuntime() as rt:
        await rt.run("kept = 1")
        h = rt.execute("while True:\n    pass")
        await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        rt.interrupt()
        res = await h.result
        dt = time.perf_counter() - t0
        kept = (await rt.run("kept")).value
        return f"{res.error.type if res.error else 'none'}, globals kept={kept == 1}", dt


async def _timeout_cpu() -> tuple[str, float]:
    async with MontyRuntime() as rt:
        await rt.run("kept = 1")
        h = rt.execute("while True:\n    pass", limits=Limits(timeout=0.1))
        res = await h.result
        t0 = time.perf_counter()
        after = await rt.run("kept")
        usable = time.perf_counter() - t0
        detail = f"{res.error.type if res.error else 'none'}, state kept={after.value == 1}"
        return detail, res.duration_ms / 1000 - 0.1 + usable


async def _timeout_sleep() -> tuple[str, float]:
    async with MontyRuntime() as rt:
        res = await rt.run("import time\ntime.sleep(5)", limits=Limits(timeout=0.1, grace=0.2))
        t0 = time.perf_counter()
        await rt.run("1")
        usable = time.perf_counter() - t0
        return (f"{res.error.type if res.error else 'none'}, session_lost={res.session_lost}",
                res.duration_ms / 1000 - 0.1 + usable)


async def _host_never_returns() -> tuple[str, float]:
    async def never() -> None:
        await asyncio.sleep(3600)

    async with MontyRuntime(functions=[never]) as rt:
        res = await rt.run("never()", limits=Limits(timeout=0.1))
        return f"{res.error.type if res.error else 'none'}", res.duration_ms / 1000 - 0.1


async def _busy_during_cpu() -> tuple[str, float]:
    async with MontyRuntime() as rt:
        h = rt.execute("while True:\n    pass")
        await asyncio.sleep(0.02)
        t0 = time.perf_counter()
        try:
            rt.execute("1")
            outcome = "accepted (wrong)"
        except StateError as exc:
            outcome = f"StateError: {exc}"
        dt = time.perf_counter() - t0
        rt.interrupt()
        await h.result
        return outcome, dt


async def _recursion() -> tuple[str, float]:
    async with MontyRuntime() as rt:
        t0 = time.perf_counter()
        res = await rt.run("def f(n):\n    return f(n + 1)\nf(0)")
        dt = time.perf_counter() - t0
        ok = (await rt.run("1 + 1")).value == 2
        return f"{res.error.type if res.error else 'none'}, usable={ok}", dt


async def _flood() -> tuple[str, float]:
    async with MontyRuntime() as rt:
        t0 = time.perf_counter()
        h = rt.execute("for i in range(10**6):\n    print(i)")
        events = 0
        async for _ in h.events:
            events += 1
        res = await h.result
        dt = time.perf_counter() - t0
        return f"{res.error.type if res.error else 'none'}, {events} events", dt


async def _memory() -> tuple[str, float]:
    async with MontyRuntime() as rt:
        t0 = time.perf_counter()
        res = await rt.run("x = bytearray(2**62)")
        dt = time.perf_counter() - t0
        ok = (await rt.run("1")).value == 1
        return f"{res.error.type if res.error else 'none'}, usable={ok}", dt


NATIVE: dict[str, Callable[[], Awaitable[tuple[str, float]]]] = {
    "interrupt a tight loop": _interrupt,
    "timeout, CPU-bound loop (to usable again)": _timeout_cpu,
    "timeout, time.sleep (hard path, to usable)": _timeout_sleep,
    "timeout, host call never returns": _host_never_returns,
    "busy rejection during CPU-bound code": _busy_during_cpu,
    "deep recursion": _recursion,
    "print flood 10**6 lines (to result)": _flood,
    "huge allocation": _memory,
}


async def run_native(repeat: int) -> list[Row]:
    rows = []
    for name, fn in NATIVE.items():
        outcomes, times = [], []
        for _ in range(repeat if "flood" not in name else 1):
            outcome, dt = await fn()
            outcomes.append(outcome)
            times.append(dt * 1000)
        rows.append(Row("native", name, outcomes[0], statistics.median(times)))
    return rows


def print_table(rows: list[Row]) -> None:
    bw = max([10, *(len(r.backend) for r in rows)])
    fw = max([46, *(len(r.fault) for r in rows)])
    print(f"{'backend':{bw}} {'fault':{fw}} {'latency ms':>11}  outcome")
    for r in rows:
        print(f"{r.backend:{bw}} {r.fault:{fw}} {r.latency_ms:11.2f}  {r.outcome}{r.note}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="native", choices=["native", "chromium", "all"])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rows: list[Row] = []
    if args.backend in ("native", "all"):
        rows += asyncio.run(run_native(args.repeat))
    if args.backend in ("chromium", "all"):
        try:
            from reliability_browser import run_browser  # type: ignore[import-not-found]
        except ImportError as exc:
            print(f"chromium rows unavailable: {exc}")
        else:
            rows += run_browser(args.repeat)
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
