"""limits.memory in the browser: a hard cap on the worker's WebAssembly heap.

Past the cap the allocation fails inside Python as ``MemoryError``; the REPL and its
globals survive, the worker is not replaced, and other runtimes of the page are
untouched. Per call like the other limits; a cap below the worker's heap after boot is
refused with an error naming the minimum. Every test runs in both server modes.
Memory figures are in benchmarks/memory.py, not here.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.runtime_page import evaluate, open_runtime_page

# Every engine of the matrix, in both server modes (docs/engines.md).
pytestmark = [pytest.mark.engine_paths, pytest.mark.webkit_paths]

MiB = 2**20
CAP = 256 * MiB


@pytest.fixture
def rpage(page: Any, server: Any) -> Any:
    return open_runtime_page(page, server)


BOMBS = {
    "bytearray": "bytearray(10**9)",
    "list_loop": "a = []\nwhile True:\n    a.append(bytearray(10**6))",
    "list_of_lists": "a = []\nwhile True:\n    a.append([0] * 10**5)",
}
#: Millions of small objects, each a few hundred bytes, until the heap is full.
DEEP = "d = {}\nnode = d\nwhile True:\n    node['k'] = {'pad': 'x' * 200}\n    node = node['k']"


def test_memory_bombs_raise_memory_error_and_the_repl_survives(rpage: Any) -> None:
    out = evaluate(rpage, """async ([cap, bombs]) => {
      const rt = await M.MontyRuntime.create({ limits: { memory: cap } });
      const other = await M.MontyRuntime.create();
      await other.execute("mine = 'other'").result;
      const r = { env: rt.info.env.memory, bombs: {} };
      await rt.execute("kept = 41").result;
      for (const [name, code] of Object.entries(bombs)) {
        r.bombs[name] = await H.settle(rt.execute(code).result);
        // The names the bomb bound are dropped, so the next one starts from the same heap.
        await rt.execute("a = d = node = None\\nimport gc; gc.collect()").result;
      }
      r.after = await H.settle(rt.execute("kept + 1").result);
      r.workers = rt.workerCount;
      r.other = await H.settle(other.execute("mine").result);
      r.otherBig = await H.settle(other.execute("len(bytearray(400 * 2**20))").result);
      await rt.dispose();
      await other.dispose();
      return r;
    }""", [CAP, BOMBS], timeout_s=300)
    assert out["env"]["cap"] == CAP
    assert 0 < out["env"]["heapBytes"] < out["env"]["minimum"] <= CAP
    for name, res in out["bombs"].items():
        assert res["ok"], (name, res)
        assert res["result"]["error"]["type"] == "MemoryError", (name, res["result"]["error"])
        assert res["result"]["sessionLost"] is False, name
    assert out["after"]["result"]["value"] == 42  # globals kept
    assert out["after"]["result"]["sessionLost"] is False
    assert out["workers"] == 1
    assert out["other"]["result"]["value"] == "other"
    # The other runtime has no cap: the same page can still grow it past `CAP`.
    assert out["otherBig"]["result"]["value"] == 400 * MiB


def test_a_call_may_lower_or_raise_the_cap(rpage: Any) -> None:
    out = evaluate(rpage, """async ([cap]) => {
      const rt = await M.MontyRuntime.create({ limits: { memory: cap } });
      const r = {};
      const min = rt.info.env.memory.minimum;
      // Over the runtime's cap: refused; the same call with a higher cap: allowed.
      r.over = await H.settle(rt.execute("len(bytearray(300 * 2**20))").result);
      r.raised = await H.settle(rt.execute("len(bytearray(300 * 2**20))",
        { limits: { memory: 512 * 2 ** 20 } }).result);
      // A call's limits without memory keep the runtime's cap.
      r.timeoutOnly = await H.settle(rt.execute("len(bytearray(600 * 2**20))",
        { limits: { timeout: 30 } }).result);
      r.belowMinimum = await H.settle(rt.execute("1", { limits: { memory: Math.max(16 * 2 ** 20, min - 65536) } }).result);
      r.after = await H.settle(rt.execute("2 + 2").result);
      await rt.dispose();
      return { r, min };
    }""", [CAP], timeout_s=300)
    r = out["r"]
    assert r["over"]["result"]["error"]["type"] == "MemoryError"
    assert r["raised"]["result"]["value"] == 300 * MiB
    assert r["timeoutOnly"]["result"]["error"]["type"] == "MemoryError"
    below = r["belowMinimum"]
    assert below["ok"] is False and below["error"]["name"] == "RangeError", below
    assert "minimum" in below["error"]["message"] and str(out["min"]) in below["error"]["message"]
    assert r["after"]["result"]["value"] == 4


def test_a_cap_below_the_heap_after_boot_is_refused_naming_the_minimum(rpage: Any) -> None:
    # The minimum is the heap after boot, per worker: a cold boot and a snapshot restore
    # leave different heaps. A first runtime makes the page's snapshot, so every worker
    # below restores it and has the same minimum.
    out = evaluate(rpage, """async () => {
      await (await M.MontyRuntime.create()).dispose();
      const probe = await M.MontyRuntime.create();
      const min = probe.info.env.memory.minimum;
      await probe.dispose();
      const r = { min };
      try {
        await M.MontyRuntime.create({ limits: { memory: 16 * 2 ** 20 } });
        r.created = true;
      } catch (err) {
        r.error = H.errorOf(err);
      }
      try {
        await M.MontyRuntime.create({ limits: { memory: 1000 } });
      } catch (err) {
        r.bad = H.errorOf(err);
      }
      const ok = await M.MontyRuntime.create({ limits: { memory: min } });
      r.atMinimum = await H.settle(ok.execute("sum(range(100))").result);
      await ok.dispose();
      return r;
    }""", timeout_s=240)
    assert out["min"] > 16 * MiB
    assert "created" not in out
    err = out["error"]
    assert err["isBootError"] and err["step"] == "limits", err
    assert str(out["min"]) in err["message"] and "minimum" in err["message"]
    # A cap below what any interpreter needs is refused before a worker starts.
    assert out["bad"]["name"] == "RangeError" and "16 MiB" in out["bad"]["message"]
    assert out["atMinimum"]["result"]["value"] == 4950


def test_a_deep_structure_hits_the_cap_with_a_memory_error_and_the_state_kept(rpage: Any) -> None:
    """Millions of small objects fill the heap to the cap: the code gets MemoryError,
    which is reported (the execution's ballast is freed as the code stops), the
    runtime keeps its globals, and the next execution can free the structure."""
    out = evaluate(rpage, """async ([cap, deep]) => {
      const rt = await M.MontyRuntime.create({ limits: { memory: cap } });
      const other = await M.MontyRuntime.create();
      await other.execute("mine = 'other'").result;
      await rt.execute("kept = 41").result;
      const r = {};
      r.deep = await H.settle(rt.execute(deep).result);
      // Unlinked level by level: dropping a chain of millions of nested dicts at once
      // would recurse as deep in the deallocator (a worker's stack is small).
      r.after = await H.settle(rt.execute(
        "node = None\\nwhile d is not None:\\n    d = d.get('k')\\nkept + 1").result);
      r.again = await H.settle(rt.execute("len(bytearray(50 * 2**20))").result);
      r.other = await H.settle(other.execute("mine").result);
      await rt.dispose();
      await other.dispose();
      return r;
    }""", [CAP, DEEP], timeout_s=300)
    deep = out["deep"]
    assert deep["ok"] and deep["result"]["error"]["type"] == "MemoryError", deep
    assert deep["result"]["sessionLost"] is False
    assert out["after"]["ok"] and out["after"]["result"]["value"] == 42, out["after"]
    assert out["after"]["result"]["sessionLost"] is False
    assert out["again"]["result"]["value"] == 50 * MiB
    assert out["other"]["result"]["value"] == "other"
