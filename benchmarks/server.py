"""Deno backend figures, each beside the native backend measured in the same run and
beside mcp-run-python's published cold start (2.7 s, Pyodide in Deno, no snapshot).

    python benchmarks/server.py [--cold-runs 3] [--round-trips 200] [--runtimes 4]

* next runtime ready in a warm process, from a pre-warmed worker (``MONTY_DENO_PREWARM``);
* ready from a cold process: a fresh Python process (import included, no JS host
  running) until its first ``execute("1+1")`` result -- with the stored snapshot (made
  beforehand by this script), and booting cold (``MONTY_DENO_SNAPSHOT=0``);
* ``execute("1+1")`` round trip and a host-function call, from Python (median, after
  ``--warmup`` round trips: a fresh worker's JIT takes a few hundred to settle);
* memory per runtime: resident memory of the JS host process (Deno) per added runtime;
  natively, of this Python process per added runtime.

Targets: ready <= 1 s with a snapshot; round trip <= 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from monty_runtime import MontyRuntime

MCP_RUN_PYTHON_COLD_S = 2.7
TARGET_READY_S = 1.0
TARGET_ROUND_TRIP_MS = 1.0

COLD = textwrap.dedent("""
    import time
    t0 = time.perf_counter()
    from monty_runtime import MontyRuntime
    rt = MontyRuntime(backend={backend!r})
    assert rt.execute_sync("1+1").value == 2
    elapsed = time.perf_counter() - t0
    cpu = time.process_time()
    boot = None
    if rt._remote is not None:
        boot = rt._remote.boot["boot"]
        import os
        fields = open(f"/proc/{{rt._remote.host.pid}}/stat").read().rsplit(")", 1)[1].split()
        cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rt.dispose()
    import json
    print(json.dumps({{"s": elapsed, "cpu": cpu, "mode": boot and boot["mode"]}}))
""")


NEXT = textwrap.dedent("""
    import asyncio, json, os, time
    from monty_runtime import MontyRuntime
    async def main():
        first = MontyRuntime(backend={backend!r})
        await first.execute("1").result
        await asyncio.sleep(8)  # the host boots its pre-warmed worker meanwhile
        t0 = time.perf_counter()
        rt = MontyRuntime(backend={backend!r})
        await rt.execute("1+1").result
        print(json.dumps({{"s": time.perf_counter() - t0}}))
        first.dispose(); rt.dispose()
    asyncio.run(main())
""")


def next_runtime(backend: str) -> float:
    env = dict(os.environ, MONTY_DENO_PREWARM="1")
    out = subprocess.run([sys.executable, "-c", NEXT.format(backend=backend)], env=env,
                         capture_output=True, text=True, timeout=600, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["s"])


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def cold(backend: str, snapshot: str) -> tuple[float, str, float]:
    env = dict(os.environ, MONTY_DENO_SNAPSHOT=snapshot)
    out = subprocess.run([sys.executable, "-c", COLD.format(backend=backend)], env=env,
                         capture_output=True, text=True, timeout=600, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return float(data["s"]), str(data["mode"]), float(data["cpu"])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def round_trips(rt: MontyRuntime, code: str, n: int, warmup: int) -> float:
    """Median of ``n`` round trips after ``warmup`` ones: the engines' JIT tiers take
    the first few hundred executions of a fresh worker to settle (2-3 ms each at first,
    in Deno), so the figure is the steady state, for both backends alike."""
    for _ in range(warmup):
        await rt.execute(code).result
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await rt.execute(code).result
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


async def memory_per_runtime(backend: str, n: int) -> float:
    keep = MontyRuntime(backend=backend)
    await keep.execute("1+1").result
    pid = keep._remote.host.pid if backend == "deno" else os.getpid()
    await asyncio.sleep(0.5)
    before = rss_kib(pid)
    rts = [MontyRuntime(backend=backend) for _ in range(n)]
    await asyncio.gather(*(rt.execute("x = list(range(10))\n1+1").result for rt in rts))
    await asyncio.sleep(0.5)
    after = rss_kib(pid)
    for rt in [*rts, keep]:
        rt.dispose()
    return (after - before) / n / 1024


def row(name: str, deno: float, native: float, unit: str, note: str = "") -> None:
    ratio = deno / native if native else float("inf")
    print(f"  {name:<36} {deno:>10.3f} {unit:<4} {native:>10.3f} {unit:<4} {ratio:>8.1f}x  {note}")


async def warm_figures(args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    deno = MontyRuntime([add], backend="deno")
    native = MontyRuntime([add])
    try:
        out["round trip execute('1+1')"] = (
            await round_trips(deno, "1+1", args.round_trips, args.warmup),
            await round_trips(native, "1+1", args.round_trips, args.warmup),
        )
        out["host call execute('add(1, 2)')"] = (
            await round_trips(deno, "add(1, 2)", args.round_trips, args.warmup),
            await round_trips(native, "add(1, 2)", args.round_trips, args.warmup),
        )
    finally:
        deno.dispose()
        native.dispose()
    out["memory per runtime"] = (
        await memory_per_runtime("deno", args.runtimes),
        await memory_per_runtime("native", args.runtimes),
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--round-trips", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=300,
                        help="round trips before the timed ones (both backends)")
    parser.add_argument("--runtimes", type=int, default=4)
    parser.add_argument("--skip-no-snapshot", action="store_true",
                        help="skip the cold boot without a snapshot (slowest figure)")
    args = parser.parse_args()
    load = os.getloadavg()[0]  # at the start: the figures below depend on it

    cold("deno", "1")  # makes (or finds) the stored snapshot
    with_snap = [cold("deno", "1") for _ in range(args.cold_runs)]
    modes = {mode for _, mode, _ in with_snap}
    natives = [cold("native", "1") for _ in range(args.cold_runs)]
    native_cold = statistics.median(s for s, _, _ in natives)
    native_cpu = statistics.median(c for _, _, c in natives)
    snap_s = statistics.median(s for s, _, _ in with_snap)
    snap_cpu = statistics.median(c for _, _, c in with_snap)
    no_snap = None if args.skip_no_snapshot else cold("deno", "0")
    pooled = next_runtime("deno")
    pooled_native = next_runtime("native")
    warm = asyncio.run(warm_figures(args))

    print(f"Deno backend (this machine: {os.cpu_count()} cores, load average {load:.1f} at the "
          f"start, {os.getloadavg()[0]:.1f} at the end); medians; native measured in the same run")
    print(f"  {'figure':<36} {'deno':>15} {'native':>15} {'deno/native':>9}")
    row("ready, cold process, with snapshot", snap_s, native_cold, "s",
        f"boot mode {sorted(modes)}; {snap_s / MCP_RUN_PYTHON_COLD_S:.2f}x mcp-run-python's "
        f"{MCP_RUN_PYTHON_COLD_S} s; target <= {TARGET_READY_S} s: "
        f"{'met' if snap_s <= TARGET_READY_S else 'NOT met'}")
    row("  CPU time to ready, with snapshot", snap_cpu, native_cpu, "s",
        "Python + JS host processes: less sensitive to a loaded machine than wall time")
    if no_snap is not None:
        row("ready, cold process, no snapshot", no_snap[0], native_cold, "s",
            f"{no_snap[0] / MCP_RUN_PYTHON_COLD_S:.2f}x mcp-run-python's {MCP_RUN_PYTHON_COLD_S} s")
        row("  CPU time to ready, no snapshot", no_snap[2], native_cpu, "s")
    row("next runtime ready, warm process", pooled, pooled_native, "s",
        "a pre-warmed worker (MONTY_DENO_PREWARM=1; the MCP server's default)")
    ms, native_ms = warm["round trip execute('1+1')"]
    row("round trip execute('1+1')", ms, native_ms, "ms",
        f"after {args.warmup} warm-up round trips; target <= {TARGET_ROUND_TRIP_MS} ms: {'met' if ms <= TARGET_ROUND_TRIP_MS else 'NOT met'}")
    ms, native_ms = warm["host call execute('add(1, 2)')"]
    row("host call execute('add(1, 2)')", ms, native_ms, "ms")
    mib, native_mib = warm["memory per runtime"]
    row("memory per runtime (RSS)", mib, native_mib, "MiB", "Deno: the JS host process")


if __name__ == "__main__":
    main()
