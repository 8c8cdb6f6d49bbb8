"""Native backend figures: medians over batches, printed beside the floor (a bare
``eval(compile("1+1"))``) measured in the same run.

    python benchmarks/native.py [--batches 15] [--per-batch 400]

Targets (from the original MontyRuntime's measured native FFI figures: construction
~9 us, reused execute ~80 us, lifecycle ~132 us): construction <= 5 us, reused execute
<= 40 us, lifecycle <= 60 us.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from monty_runtime import MontyRuntime

ANCHOR_US = {"construction": 9.0, "reused execute": 80.0, "lifecycle": 132.0}
TARGET_US = {"construction": 5.0, "reused execute": 40.0, "lifecycle": 60.0}


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def bench_sync(fn: Callable[[], object], batches: int, per: int) -> tuple[float, float]:
    out = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(per):
            fn()
        out.append((time.perf_counter() - t0) / per)
    out.sort()
    return _median_us(out), out[int(len(out) * 0.9)] * 1e6


async def bench_async(fn: Callable[[], Awaitable[object]], batches: int, per: int
                      ) -> tuple[float, float]:
    out = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(per):
            await fn()
        out.append((time.perf_counter() - t0) / per)
    out.sort()
    return _median_us(out), out[int(len(out) * 0.9)] * 1e6


def _thread_round_trip() -> Callable[[], Awaitable[object]]:
    """The least any off-loop execution costs here: hand a job to a waiting thread and
    wake the loop with its answer."""
    import queue
    import threading

    inbox: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def worker() -> None:
        while True:
            inbox.get()()

    threading.Thread(target=worker, daemon=True).start()

    def one() -> Awaitable[object]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        inbox.put(lambda: loop.call_soon_threadsafe(fut.set_result, None))
        return fut

    return one


async def main(batches: int, per: int) -> dict[str, tuple[float, float]]:
    figures: dict[str, tuple[float, float]] = {}
    code = compile("1+1", "<floor>", "eval")
    figures["floor: eval(compile('1+1'))"] = bench_sync(
        lambda: eval(compile("1+1", "<floor>", "eval")), batches, per
    )
    figures["floor: eval(precompiled)"] = bench_sync(lambda: eval(code), batches, per)
    figures["floor: thread round trip (queue + call_soon_threadsafe)"] = await bench_async(
        _thread_round_trip(), batches, per
    )
    figures["construction"] = bench_sync(MontyRuntime, batches, per)

    rt = MontyRuntime()
    await rt.run("1+1")
    figures["reused execute"] = await bench_async(
        lambda: rt.execute("1+1").result, batches, per
    )
    counter = iter(range(10**9))
    figures["reused execute, uncached source"] = await bench_async(
        lambda: rt.execute(f"{next(counter)}+1").result, batches, per
    )
    rt.dispose()

    async def lifecycle() -> None:
        r = MontyRuntime()
        await r.execute("1+1").result
        r.dispose()

    figures["lifecycle"] = await bench_async(lifecycle, batches, per)

    sb = MontyRuntime(sandbox=True)
    figures["sandbox execute"] = await bench_async(lambda: sb.execute("1+1").result, batches, per)
    sb.dispose()

    def add(a: int, b: int) -> int:
        return a + b

    async def aadd(a: int, b: int) -> int:
        return a + b

    host = MontyRuntime(functions=[add, aadd])
    base = (await bench_async(lambda: host.execute("x = 1").result, batches, per))[0]
    one_sync = (await bench_async(lambda: host.execute("x = add(1, 2)").result, batches, per))[0]
    many = 50
    loop_sync = f"for _ in range({many}):\n    add(1, 2)"
    loop_async = f"for _ in range({many}):\n    aadd(1, 2)"
    loop_empty = f"for _ in range({many}):\n    pass"
    t_empty = (await bench_async(lambda: host.execute(loop_empty).result, batches, per // 10))[0]
    t_sync = (await bench_async(lambda: host.execute(loop_sync).result, batches, per // 10))[0]
    t_async = (await bench_async(lambda: host.execute(loop_async).result, batches, per // 10))[0]
    host.dispose()
    figures["execute with one sync host call"] = (one_sync, 0.0)
    figures["host call (sync fn), per call"] = ((t_sync - t_empty) / many, 0.0)
    figures["host call (async fn on caller's loop), per call"] = ((t_async - t_empty) / many, 0.0)
    figures["execute('x = 1') baseline"] = (base, 0.0)
    return figures


def report(figures: dict[str, tuple[float, float]]) -> None:
    floor = figures["floor: eval(compile('1+1'))"][0]
    print(f"{'figure':52} {'median us':>10} {'p90 us':>8} {'x floor':>8} {'anchor':>8} {'target':>7}")
    for name, (med, p90) in figures.items():
        anchor = ANCHOR_US.get(name)
        target = TARGET_US.get(name)
        print(
            f"{name:52} {med:10.2f} {p90:8.2f} {med / floor:8.1f} "
            f"{'' if anchor is None else f'{anchor:.0f}':>8} "
            f"{'' if target is None else f'<={target:.0f}':>7}"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", type=int, default=15)
    ap.add_argument("--per-batch", type=int, default=400)
    args = ap.parse_args()
    report(asyncio.run(main(args.batches, args.per_batch)))
