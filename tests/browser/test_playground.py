"""The playground (web/index.html), driven as a user would: create a second runtime,
type code, run it several times at once on two runtimes, run a CPU-bound loop several
times on one, then read the timeline (SVG) back.

What the timeline must show is the concurrency contract: within a shared runtime's lane
the bars never overlap (one execution at a time), bars in different lanes do (parallel
runtimes), and the executions refused with "Bridge is already executing" are marked with
a red tick in their lane, at a time when that lane's execution was running.

A screenshot of the page is saved as test-artifacts/playground-<mode>.png.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

# Clicks, typing, selectors, request events and screenshots: Playwright only.
pytestmark = pytest.mark.chromium_only("drives the playground UI through Playwright")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
BOOT_MS = 120_000
RUN_MS = 60_000

# Typed into the editor: awaits a host call and a sleep, so the worker reads (and
# refuses) the parallel executions that arrive meanwhile.
CODE = """import asyncio
w = await get_weather("Oslo")
await asyncio.sleep(0.5)
print("Oslo:", w["temp_c"])
w["temp_c"]"""


def _wait_idle(page: Any) -> None:
    page.wait_for_selector("#timeline[data-active='0']", state="attached", timeout=RUN_MS)


def _ready(page: Any, rt: str) -> None:
    page.wait_for_selector(f'[data-runtime="{rt}"][data-state="ready"]', timeout=BOOT_MS)


def _marks(page: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    bars = page.eval_on_selector_all(
        "#timeline rect.bar",
        """els => els.map(e => ({lane: e.dataset.lane, runtime: e.dataset.runtime,
             run: e.dataset.run, outcome: e.dataset.outcome, submit: parseFloat(e.dataset.submit),
             start: parseFloat(e.dataset.start), end: parseFloat(e.dataset.end)}))""",
    )
    ticks = page.eval_on_selector_all(
        "#timeline .busy-tick",
        "els => els.map(e => ({lane: e.dataset.lane, runtime: e.dataset.runtime, t: parseFloat(e.dataset.t)}))",
    )
    return bars, ticks


def test_playground_shows_serial_within_and_parallel_across(page: Any, server: Any) -> None:
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.set_viewport_size({"width": 1400, "height": 1000})
    response = page.goto(server.url + "demos/index.html", wait_until="load")
    assert response is not None and response.ok

    # the page starts rt-1 by itself; the user adds rt-2
    _ready(page, "rt-1")
    page.click("#new-runtime")
    _ready(page, "rt-2")
    phases = page.eval_on_selector_all('[data-runtime="rt-1"] .phases tr[data-phase]', "els => els.map(e => e.dataset.phase)")
    # rt-1 is the page's first runtime: it restored the build's shipped snapshot (where
    # JSPI fits, Chromium and Firefox) or booted cold (WebKit); the card shows that boot.
    assert "lockfile" in phases, phases
    assert "snapshot:restore" in phases or "loadPyodide" in phases, phases

    # type the code, then run it 3 times at once on rt-1 and on rt-2
    page.click("#code")
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.locator("#code").press_sequentially(CODE)
    assert page.input_value("#code") == CODE
    page.fill("#parallel-n", "3")
    page.click('[data-runtime="rt-1"]')
    page.click("#run-parallel")
    page.click('[data-runtime="rt-2"]')
    page.click("#run-parallel")
    _wait_idle(page)

    # once more on both at the same time
    page.click("#run-all")
    _wait_idle(page)

    bars, ticks = _marks(page)
    assert sorted(t["runtime"] for t in ticks) == ["rt-1", "rt-1", "rt-2", "rt-2"], ticks
    assert sorted(b["runtime"] for b in bars) == ["rt-1", "rt-1", "rt-2", "rt-2"], bars

    # a CPU-bound loop, 3 at once on rt-1: it never awaits; the other two are refused
    # while it runs (the page decides, at once)
    page.click('[data-snippet="cpu"]')
    page.click('[data-runtime="rt-1"]')
    page.click("#run-parallel")
    _wait_idle(page)

    bars, ticks = _marks(page)
    by_lane: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bar in bars:
        by_lane[bar["lane"]].append(bar)
    ticks_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for tick in ticks:
        ticks_of[tick["lane"]].append(tick)
    assert sorted(by_lane) == ["rt-1/monty-1", "rt-2/monty-1"], sorted(by_lane)
    assert len(by_lane["rt-1/monty-1"]) == 3 and len(ticks_of["rt-1/monty-1"]) == 2 + 2
    assert len(by_lane["rt-2/monty-1"]) == 1 + 1 and len(ticks_of["rt-2/monty-1"]) == 2
    assert all(bar["outcome"] == "ok" for bar in bars), bars

    # serial within a lane: sorted by start, each bar starts after the previous ended
    for lane, lane_bars in by_lane.items():
        lane_bars.sort(key=lambda b: b["start"])
        for prev, nxt in itertools.pairwise(lane_bars):
            assert nxt["start"] >= prev["end"], f"{lane}: {prev['run']} and {nxt['run']} overlap"

    # parallel across lanes: rt-1's and rt-2's executions of the typed code overlap
    overlaps = [
        (a["run"], b["run"])
        for a in by_lane["rt-1/monty-1"]
        for b in by_lane["rt-2/monty-1"]
        if max(a["start"], b["start"]) < min(a["end"], b["end"])
    ]
    assert len(overlaps) >= 2, overlaps

    # busy rejections: each marked in its lane while that lane had an execution in
    # flight (sent, and its result not back yet)
    for tick in ticks:
        assert any(
            b["submit"] - 1 <= tick["t"] <= b["end"] + 1 for b in by_lane[tick["lane"]]
        ), f"busy tick at {tick['t']} outside any execution of {tick['lane']}"
    assert page.locator("#timeline .busy-label").count() >= 2
    log = page.text_content("#events") or ""
    assert log.count("Bridge is already executing") == len(ticks)
    assert "run_finished" in log and "call_started get_weather" in log
    rt1_busy = len(ticks_of["rt-1/monty-1"])
    assert (page.text_content('[data-runtime="rt-1"] .meta') or "").endswith(f"{rt1_busy} busy")

    # clicking a bar shows its result
    page.click('#timeline rect.bar[data-run="rt-2 #1"]')
    assert "Oslo: 3" in (page.text_content("#result") or "")
    assert "rt-2 #1" in (page.text_content("#result-head") or "")

    ARTIFACTS.mkdir(exist_ok=True)
    mode = "isolated" if server.isolated else "not_isolated"
    page.screenshot(path=str(ARTIFACTS / f"playground-{mode}.png"), full_page=True)

    # dispose rt-2: its card says so and the selection moves to a live runtime
    page.click('[data-runtime="rt-2"] [data-action="dispose"]')
    page.wait_for_selector('[data-runtime="rt-2"][data-state="disposed"]')
    assert page.get_attribute('[data-runtime="rt-1"]', "class") is not None
    assert "selected" in (page.get_attribute('[data-runtime="rt-1"]', "class") or "")
    assert page.is_enabled("#run")

    # everything came from the page's own origin
    assert requests and all(url.startswith(server.url) or url.startswith("data:") for url in requests), [
        u for u in requests if not u.startswith(server.url)
    ]


def test_playground_sandbox_runtime_runs_in_parallel(page: Any, server: Any) -> None:
    page.goto(server.url + "demos/index.html?autostart=0", wait_until="load")
    page.check("#sandbox")
    page.fill("#pool", "2")
    page.click("#new-runtime")
    _ready(page, "rt-1")
    page.click('[data-snippet="async"]')
    page.fill("#parallel-n", "4")
    page.click("#run-parallel")
    _wait_idle(page)
    bars, ticks = _marks(page)
    assert len(bars) == 4 and not ticks
    assert all(bar["outcome"] == "ok" for bar in bars), bars
    overlapping = [
        (a["run"], b["run"])
        for i, a in enumerate(bars)
        for b in bars[i + 1:]
        if max(a["start"], b["start"]) < min(a["end"], b["end"])
    ]
    assert overlapping, "a sandbox runtime runs parallel executions at the same time"
    assert "warmest" in (page.text_content("#result") or "")


def test_playground_error_and_busy_tool(page: Any, server: Any) -> None:
    page.goto(server.url + "demos/index.html", wait_until="load")
    _ready(page, "rt-1")
    page.click('[data-snippet="error"]')
    page.click("#run")
    _wait_idle(page)
    assert "ZeroDivisionError" in (page.text_content("#result") or "")
    bars, _ = _marks(page)
    assert [b["outcome"] for b in bars] == ["error"]

    # through the busy tool binding: one runs, the others get the busy payload
    page.fill("#code", CODE)
    page.select_option("#via", "busy")
    page.fill("#parallel-n", "3")
    page.click("#run-parallel")
    _wait_idle(page)
    bars, ticks = _marks(page)
    assert [b["outcome"] for b in bars] == ["error", "ok"]
    assert len(ticks) == 2
    assert '"status": "ok"' in (page.text_content("#result") or "")
