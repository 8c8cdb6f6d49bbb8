"""``sandbox: "isolated"``: every execution in an interpreter no other execution used.

Each ``execute()`` runs in a fresh worker (from the warm pool when one is ready) that is
terminated after its result, so nothing one execution does -- module attributes,
``sys.modules``, builtins, the worker's JavaScript globals reached past the import
guard -- is seen by another, and parallel executions all run. These are the escape
probes' cross-execution checks, run against this mode (where ``sandbox: true`` shares
one interpreter per pool worker, a residual risk the probe table names). Both server
modes. The cost per execution is in benchmarks/isolation.py, not here.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.escape_probes import REACH_PY
from support.runtime_page import evaluate, open_runtime_page

# Every engine of the matrix, in both server modes (docs/engines.md).
pytestmark = [pytest.mark.engine_paths, pytest.mark.webkit_paths]


@pytest.fixture
def rpage(page: Any, server: Any) -> Any:
    return open_runtime_page(page, server)


PLANT = REACH_PY + """
import builtins, json
json.monty_leak = TOKEN
sys.modules["monty_planted"] = json
builtins.monty_leak = TOKEN
reach("js").globalThis.monty_leak = TOKEN
secret = TOKEN
"done"
"""

LOOK = REACH_PY + """
import builtins, json
found = []
if getattr(json, "monty_leak", None) is not None: found.append("module attribute")
if "monty_planted" in sys.modules: found.append("sys.modules")
if getattr(builtins, "monty_leak", None) is not None: found.append("builtins")
if str(getattr(reach("js").globalThis, "monty_leak", None)) not in ("None", "undefined"):
    found.append("worker global")
if "secret" in globals(): found.append("globals")
found
"""


def test_isolated_executions_share_nothing(rpage: Any) -> None:
    out = evaluate(rpage, """async ([plant, look]) => {
      const r = {};
      for (const mode of [true, "isolated"]) {
        const rt = await M.MontyRuntime.create({ sandbox: mode, poolSize: 1 });
        const planted = await H.run(rt, plant.replaceAll("TOKEN", JSON.stringify("tok-" + mode)));
        const seen = await H.run(rt, look);
        r[mode] = { planted: planted.result?.value ?? planted, seen: seen.result?.value ?? seen,
                    sandbox: rt.sandbox, workers: rt.workerCount };
        await rt.dispose();
      }
      return r;
    }""", [PLANT, LOOK], timeout_s=240)
    shared = out["true"]
    assert shared["planted"] == "done"
    # sandbox: true shares the pool worker's interpreter: the residual risk.
    assert set(shared["seen"]) >= {"module attribute", "sys.modules", "worker global"}
    assert "globals" not in shared["seen"]  # a fresh REPL all the same (and its own builtins)
    iso = out["isolated"]
    assert iso["sandbox"] == "isolated"
    assert iso["planted"] == "done"
    assert iso["seen"] == [], iso


def test_isolated_executions_run_in_parallel_each_on_its_own_worker(rpage: Any) -> None:
    out = evaluate(rpage, """async () => {
      const rt = await M.MontyRuntime.create({ sandbox: "isolated", poolSize: 2 });
      const hs = [0, 1, 2].map((i) => rt.execute(
        "import asyncio, os\\nawait asyncio.sleep(0.3)\\n(" + i + ", id(asyncio))"));
      const during = rt.workerCount;
      const results = await Promise.all(hs.map((h) => H.settle(h.result)));
      await new Promise((r) => setTimeout(r, 50));
      const after = rt.workerCount;
      const again = await H.settle(rt.execute("x = 1\\nx").result);
      const state = await H.settle(rt.execute("globals().get('x')").result);
      await rt.dispose();
      return { during, after, results, again, state, info: rt.boot };
    }""", timeout_s=240)
    assert out["during"] == 3
    assert out["after"] == 0  # every worker was thrown away after its execution
    assert [r["result"]["value"]["$tuple"][0] for r in out["results"]] == [0, 1, 2]
    assert all(r["result"]["error"] is None for r in out["results"])
    assert out["again"]["result"]["value"] == 1
    assert out["state"]["result"]["value"] is None  # nothing persists


def test_isolated_mode_keeps_limits_and_refuses_bad_modes(rpage: Any) -> None:
    out = evaluate(rpage, """async () => {
      const r = {};
      try { await M.MontyRuntime.create({ sandbox: "shared" }); } catch (err) { r.bad = H.errorOf(err); }
      const rt = await M.MontyRuntime.create({ sandbox: "isolated", limits: { memory: 256 * 2 ** 20 } });
      r.bomb = await H.settle(rt.execute("bytearray(10**9)").result);
      r.next = await H.settle(rt.execute("len(bytearray(100 * 2**20))").result);
      r.timeout = await H.settle(rt.execute("while True: pass", { limits: { timeout: 0.5 } }).result);
      await rt.dispose();
      r.afterDispose = H.throws(() => rt.execute("1"));
      return r;
    }""", timeout_s=240)
    assert out["bad"]["name"] == "TypeError" and "isolated" in out["bad"]["message"]
    assert out["bomb"]["result"]["error"]["type"] == "MemoryError"
    assert out["next"]["result"]["value"] == 100 * 2**20
    assert out["timeout"]["result"]["error"]["type"] == "TimeoutError"
    assert out["afterDispose"]["isStateError"]
