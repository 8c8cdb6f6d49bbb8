"""Warm start in the browser: memory snapshots (web/page/snapshot.js, web/worker/snapshot.js) and pre-warmed workers
(web/pool.js), in both server modes.

* the first worker of a page boots cold and makes the snapshot, the next ones restore
  it, and a returning visit restores it from Cache Storage;
* a restored runtime behaves like a cold one (the conformance corpus's one-step cases and a
  set of the runtime's own programs, run on both and compared);
* every way a snapshot can fail falls back to a cold boot, and says so in the boot
  report: a damaged cached snapshot, one that does not fit the worker's packages, one
  whose Pyodide part is broken, a changed wheel (another cache key);
* a pre-warmed pool hands out booted workers that get their host functions at
  create(), refills, and never hands out a worker twice.

Timings are not asserted here beyond "clearly warm" (benchmarks/browser.py measures).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from support.engines import EXPECTED
from support.runtime_page import HELPERS_JS, evaluate, open_runtime_page

from monty_dev.conformance.corpus import default_corpora, load_corpus

pytestmark = pytest.mark.engine_paths

BOOT_S = 180

SNAPSHOT_HELPERS = """async () => {
  window.S = await import("../page/snapshot.js");
  // These tests are about the page's own snapshot: the first worker makes it (the
  // build's shipped snapshot is tested in test_first_visit.py).
  S.useShippedSnapshot(false);
  window.P = await import("../page/pool.js");
  window.src = () => S.snapshotSource(new URL("../dist/build-info.json", location.href).href);
  window.brief = (rt) => ({ ...rt.boot, phaseNames: rt.boot.phases.map((p) => p.name) });
  return true;
}"""


@pytest.fixture
def wpage(page: Any, server: Any) -> Any:
    open_runtime_page(page, server)
    assert page.evaluate(SNAPSHOT_HELPERS) is True
    return page


def reload(page: Any) -> None:
    """A returning visit: the same browser profile (Cache Storage kept), a new page."""
    page.reload(wait_until="load")
    assert page.evaluate(HELPERS_JS) is True
    assert page.evaluate(SNAPSHOT_HELPERS) is True


def returning_visit(page: Any, engine: str) -> str:
    """Come back as a returning visitor; the build-info URL its runtimes should use.
    Where Cache Storage entries survive a reload: a reload, and the default URL. Where
    they do not (WebKitGTK's automation session, see support/engines.py): the same page,
    and a URL of its own, so a fresh snapshot source reads Cache Storage as a new page
    would, instead of the page's source, which holds the snapshot in memory."""
    if EXPECTED[engine].cache_survives_reload:
        reload(page)
        return "../dist/build-info.json"
    return "../dist/build-info.json?returning-visit"


def cached_keys(page: Any) -> list[str]:
    keys: list[str] = page.evaluate("""async () => {
      const cache = await caches.open("monty-runtime-snapshots");
      return (await cache.keys()).map((r) => decodeURIComponent(r.url.split("/").pop()));
    }""")
    return keys


# ------------------------------------------------------------------------ make, restore


def test_first_worker_makes_the_snapshot_later_ones_restore_it(wpage: Any) -> None:
    out = evaluate(wpage, """async () => {
      const a = await M.MontyRuntime.create();
      const aRun = await H.run(a, "import random\\nx = 41\\nx + 1");
      await src().saved();
      const b = await M.MontyRuntime.create();
      const c = await M.MontyRuntime.create();
      const bRun = await H.run(b, "import random, sys\\nprint('hi')\\n(random.random(), 'monty_runtime.worker' in sys.modules)");
      const cRun = await H.run(c, "import random\\nrandom.random()");
      const bState = await H.run(b, "x");
      const loaded = await H.run(b, "import importlib.util\\nimportlib.util.find_spec('micropip') is not None");
      const out = { a: brief(a), b: brief(b), c: brief(c), aRun, bRun, cRun, bState, loaded,
                    info: b.info.phases, env: b.info.env };
      for (const rt of [a, b, c]) await rt.dispose();
      return out;
    }""", timeout_s=BOOT_S)
    a, b, c = out["a"], out["b"], out["c"]
    assert (a["mode"], a["snapshot"], a["pooled"]) == ("cold", "made", False), a
    assert "snapshot:make" in a["phaseNames"], a
    for rt in (b, c):
        assert (rt["mode"], rt["snapshot"], rt["snapshotFrom"]) == ("snapshot", "restored", "page"), rt
        assert rt["reason"] is None
        assert "snapshot:restore" in rt["phaseNames"] and "loadPyodide" not in rt["phaseNames"]
        assert all(p["ms"] >= 0 and p["where"] in ("page", "worker") for p in rt["phases"])
        assert rt["totalMs"] > 0
    # The ready handshake carries the worker's phases as before.
    assert "snapshot:restore" in out["info"] and "start" in out["info"]
    assert out["aRun"]["result"]["value"] == 42
    res = out["bRun"]["result"]
    assert res["error"] is None and res["stdout"] == "hi\n"
    b_random, has_worker = res["value"]["$tuple"]
    assert has_worker is True
    # Each restored worker reseeds `random`: two restores do not share a sequence.
    assert out["cRun"]["result"]["value"] != b_random
    # State is per runtime: the restored one does not see the cold one's globals.
    assert out["bState"]["result"]["error"]["type"] == "NameError"
    # micropip is installed in a restored worker too (its files travel with the
    # snapshot; it is imported on first use).
    assert out["loaded"]["result"]["value"] is True, out["loaded"]


def test_returning_visit_restores_from_cache_storage(wpage: Any, engine: str) -> None:
    first = evaluate(wpage, """async () => {
      const a = await M.MontyRuntime.create();
      await src().saved();
      const r = brief(a);
      await a.dispose();
      return r;
    }""", timeout_s=BOOT_S)
    assert first["snapshot"] == "made"
    keys = cached_keys(wpage)
    assert len(keys) == 1 and keys[0].startswith("format=2;pyodide=314.0.7;wheel="), keys

    info = returning_visit(wpage, engine)
    again = evaluate(wpage, """async (info) => {
      const rt = await M.MontyRuntime.create({ buildInfoURL: new URL(info, location.href).href });
      const run = await H.run(rt, "sum(range(10))");
      const r = { boot: brief(rt), run };
      await rt.dispose();
      return r;
    }""", info, timeout_s=BOOT_S)
    boot = again["boot"]
    assert (boot["mode"], boot["snapshot"], boot["snapshotFrom"]) == ("snapshot", "restored", "cache")
    assert "snapshot:lookup" in boot["phaseNames"]
    assert again["run"]["result"]["value"] == 45


def test_snapshot_can_be_turned_off_or_kept_in_memory(wpage: Any) -> None:
    out = evaluate(wpage, """async () => {
      const off = await M.MontyRuntime.create({ snapshot: false });
      const r = { off: brief(off), v: (await off.execute("6 * 7").result).value };
      await off.dispose();
      const mem = await M.MontyRuntime.create({ snapshot: "memory" });
      r.mem = brief(mem);
      await mem.dispose();
      const mem2 = await M.MontyRuntime.create({ snapshot: "memory" });
      r.mem2 = brief(mem2);
      await mem2.dispose();
      r.bad = await M.MontyRuntime.create({ snapshot: "yes" }).then(() => null, (e) => e.name);
      return r;
    }""", timeout_s=BOOT_S)
    assert (out["off"]["mode"], out["off"]["snapshot"]) == ("cold", "disabled")
    assert out["v"] == 42
    assert out["mem"]["snapshot"] == "made"
    assert out["mem2"]["snapshot"] == "restored"
    assert cached_keys(wpage) == []  # "memory": nothing stored
    assert out["bad"] == "TypeError"


# ------------------------------------------------------------------ same behaviour as cold

OWN_PROGRAMS = [
    "1 + 1",
    "x = [i * i for i in range(10)]\nsum(x)",
    "import json\njson.dumps({'a': [1, 2.5, None, True]}, sort_keys=True)",
    "import re\nre.findall(r'\\d+', 'a1b22c333')",
    "import math, fractions, decimal\n(math.factorial(20), str(fractions.Fraction(3, 9)), "
    "str(decimal.Decimal('1.10') + decimal.Decimal('2.205')))",
    "import datetime\ndatetime.date(2024, 2, 29).isoformat()",
    "import collections\ncollections.Counter('mississippi').most_common(2)",
    "import random\nrandom.seed(7)\n[random.randint(0, 100) for _ in range(5)]",
    "print('a')\nimport sys\nprint('b', file=sys.stderr)\n2 ** 100",
    "def f(n):\n    return 1 / n\nf(0)",
    "raise ValueError('nope')",
    "import asyncio\nasync def g(i):\n    await asyncio.sleep(0)\n    return i * 2\n"
    "await asyncio.gather(*(g(i) for i in range(5)))",
    "class P:\n    def __init__(self, x):\n        self.x = x\n    def __repr__(self):\n"
    "        return f'P({self.x})'\nrepr(P(3))",
    "b'\\x00\\xff' + bytes(range(3))",
    "{1: 'a', (2, 3): 'b'}",
    "float('nan'), float('inf'), -0.0",
    "import itertools\nlist(itertools.islice(itertools.count(5, 3), 4))",
    "import js",
    "import micropip",
    "import sys\nsys.version_info[:2]",
    "syntax error here (",
    "def gen():\n    yield from range(3)\nlist(gen())",
    "try:\n    {}['k']\nexcept KeyError as e:\n    str(e)",
    "import textwrap\ntextwrap.fill('the quick brown fox jumps over the lazy dog', 12)",
    "import hashlib\nhashlib.sha256(b'monty').hexdigest()",
]


def corpus_programs() -> list[str]:
    """The one-step cases of the conformance corpora (the project's, plus the python
    ladder when $MONTY_LADDER names it)."""
    out = []
    for case in (c for spec in default_corpora() for c in load_corpus(spec.path)):
        step = case.steps[0]
        if (len(case.steps) == 1 and step.concurrent is None and not case.external_functions
                and not step.inputs and not case.limits and not step.limits
                and not case.native_only and not case.sandbox and not case.host_delays):
            out.append(step.code)
    return out


def test_a_restored_runtime_behaves_like_a_cold_one(wpage: Any) -> None:
    programs = OWN_PROGRAMS + corpus_programs()
    assert len(programs) > 60, "the conformance corpus was not found"
    out = evaluate(wpage, """async (programs) => {
      // Each program in a fresh REPL (sandbox mode), on a cold worker and on a restored one.
      const cold = await M.MontyRuntime.create({ snapshot: false, sandbox: true, poolSize: 1 });
      const maker = await M.MontyRuntime.create();
      const warm = await M.MontyRuntime.create({ sandbox: true, poolSize: 1 });
      const shape = (r) => r.ok
        ? { value: r.result.value, stdout: r.result.stdout, stderr: r.result.stderr,
            error: r.result.error && { type: r.result.error.type, message: r.result.error.message,
                                       traceback: r.result.error.traceback, lineno: r.result.error.lineno },
            // Adjacent prints may arrive as one event or several (the worker batches
            // output by time); stdout above is compared exactly.
            events: r.events.map((e) => e.type).filter((type, i, all) => !(type === "print" && all[i - 1] === "print")) }
        : { rejected: r.error };
      const results = [];
      for (const code of programs) {
        results.push([shape(await H.run(cold, code)), shape(await H.run(warm, code))]);
      }
      const boots = { cold: brief(cold), warm: brief(warm), maker: brief(maker) };
      for (const rt of [cold, maker, warm]) await rt.dispose();
      return { results, boots };
    }""", programs, timeout_s=BOOT_S * 2)
    assert out["boots"]["cold"]["mode"] == "cold"
    assert out["boots"]["warm"]["mode"] == "snapshot", out["boots"]
    # Object addresses in reprs (``<function f at 0x...>``) depend on the heap's history,
    # which a restored worker does not share with a cold one.
    def same(value: Any) -> str:
        return re.sub(r" at 0x[0-9a-f]+", " at 0x?", json.dumps(value, sort_keys=True))

    differ = [
        (code, cold, warm)
        for code, (cold, warm) in zip(programs, out["results"], strict=True)
        if same(cold) != same(warm)
    ]
    assert not differ, json.dumps(differ[:3], indent=1)
    # Sanity: the comparison saw successes and failures alike.
    kinds = {("error" if r[0].get("error") else "ok") for r in out["results"]}
    assert kinds == {"ok", "error"}


# ------------------------------------------------------------------------------ fallbacks


def test_a_damaged_cached_snapshot_falls_back_to_a_cold_boot(wpage: Any, engine: str) -> None:
    evaluate(wpage, """async () => {
      const a = await M.MontyRuntime.create();
      await src().saved();
      await a.dispose();
      // Flip one byte in the middle of the stored snapshot, keeping its headers.
      const cache = await caches.open("monty-runtime-snapshots");
      const [request] = await cache.keys();
      const response = await cache.match(request);
      const bytes = new Uint8Array(await response.arrayBuffer());
      bytes[bytes.length >> 1] ^= 0x5a;
      await cache.put(request, new Response(bytes, { headers: response.headers }));
      return true;
    }""", timeout_s=BOOT_S)
    info = returning_visit(wpage, engine)
    out = evaluate(wpage, """async (info) => {
      const url = new URL(info, location.href).href;
      const rt = await M.MontyRuntime.create({ buildInfoURL: url });
      const run = await H.run(rt, "'still ' + 'fine'");
      const r = { boot: brief(rt), run, state: S.snapshotSource(url).state };
      await rt.dispose();
      return r;
    }""", info, timeout_s=BOOT_S)
    boot = out["boot"]
    # The worker checked the digest (the page hands it the stored Blob unread).
    assert (boot["mode"], boot["snapshot"]) == ("cold", "fallback"), boot
    assert "cached snapshot is damaged" in boot["reason"], boot
    assert out["run"]["result"]["value"] == "still fine"
    # The damaged entry is deleted; the page's next worker makes a new snapshot.
    assert out["state"] == "unknown"
    for _ in range(50):
        if not cached_keys(wpage):
            break
        wpage.wait_for_timeout(100)
    assert cached_keys(wpage) == []


def test_a_snapshot_that_does_not_fit_or_fails_falls_back_to_a_cold_boot(wpage: Any) -> None:
    out = evaluate(wpage, """async () => {
      const a = await M.MontyRuntime.create();
      const good = src().snapshot;
      // Made for another wheel: the worker checks the snapshot against its lock file.
      src().snapshot = { ...good, meta: { ...good.meta,
        packages: { ...good.meta.packages, "monty-runtime": "0".repeat(64) } } };
      const b = await M.MontyRuntime.create();
      const bRun = await H.run(b, "x = 1\\nx + 1");
      const afterB = { state: src().state, reason: src().reason };
      // A broken Pyodide part: Pyodide itself refuses it.
      const broken = new Uint8Array(good.pyodide);
      broken[0] ^= 0xff;
      src().snapshot = { ...good, pyodide: broken };
      src().state = "ready";
      const c = await M.MontyRuntime.create();
      const cRun = await H.run(c, "2 + 2");
      const r = { b: brief(b), c: brief(c), bRun, cRun, afterB,
                  after: { state: src().state, reason: src().reason } };
      for (const rt of [a, b, c]) await rt.dispose();
      return r;
    }""", timeout_s=BOOT_S * 2)
    b, c = out["b"], out["c"]
    assert (b["mode"], b["snapshot"]) == ("cold", "fallback"), b
    assert "monty-runtime changed" in b["reason"]
    assert "snapshot:fallback" in b["phaseNames"] and "loadPyodide" in b["phaseNames"]
    assert out["bRun"]["result"]["value"] == 2
    # A rejected snapshot is dropped: the next worker makes a new one.
    assert out["afterB"]["state"] == "unknown"
    assert (c["mode"], c["snapshot"]) == ("cold", "fallback"), c
    assert "magic" in c["reason"]
    assert out["cRun"]["result"]["value"] == 4
    # After a second failure the page stops trying (cold boots, said so).
    assert out["after"]["state"] == "off"


@pytest.mark.chromium_only("page.route (request interception) is Playwright's")
def test_a_changed_wheel_is_another_cache_key(wpage: Any, server: Any) -> None:
    evaluate(wpage, """async () => {
      const a = await M.MontyRuntime.create();
      await src().saved();
      await a.dispose();
      return true;
    }""", timeout_s=BOOT_S)
    old = cached_keys(wpage)
    assert len(old) == 1

    def changed_build_info(route: Any) -> None:
        info = json.loads(route.fetch().text())
        info["wheel_sha256"] = "f" * 64
        route.fulfill(status=200, content_type="application/json", body=json.dumps(info))

    wpage.route("**/dist/build-info.json", changed_build_info)
    try:
        reload(wpage)
        out = evaluate(wpage, """async () => {
          const rt = await M.MontyRuntime.create();
          await src().saved();
          const r = brief(rt);
          await rt.dispose();
          return r;
        }""", timeout_s=BOOT_S)
    finally:
        wpage.unroute("**/dist/build-info.json")
    assert (out["mode"], out["snapshot"]) == ("cold", "made"), out
    new = cached_keys(wpage)
    assert len(new) == 1 and new != old and "wheel=" + "f" * 64 in new[0], (old, new)


# --------------------------------------------------------------------------------- pool


def test_prewarmed_pool_hands_out_configured_workers(wpage: Any) -> None:
    out = evaluate(wpage, """async () => {
      const stats = await M.MontyRuntime.prewarm(2);
      let t = performance.now();
      const a = await M.MontyRuntime.create({ functions: { double: (x) => 2 * x } });
      const aMs = performance.now() - t;
      const aRun = await H.run(a, "secret = double(21)\\nsecret");
      const aBoot = brief(a);
      await a.dispose();
      t = performance.now();
      const b = await M.MontyRuntime.create({ functions: { shout: (s) => s.toUpperCase() }, sandbox: false });
      const bMs = performance.now() - t;
      const bRun = await H.run(b, "shout('hi')");
      const bState = await H.run(b, "secret");
      const bOld = await H.run(b, "double(1)");
      // The pool refills in the background.
      const pool = P.allPools()[0];
      const deadline = performance.now() + 150000;
      while (pool.idle < 2 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const refilled = pool.stats();
      const bBoot = brief(b);
      await b.dispose();
      const drained = await M.MontyRuntime.prewarm(0);
      const bad = await M.MontyRuntime.prewarm(-1).then(() => null, (e) => e.name);
      return { stats, aMs, bMs, a: aBoot, b: bBoot, aRun, bRun, bState, bOld, refilled, drained, bad };
    }""", timeout_s=BOOT_S * 2)
    assert out["stats"]["idle"] == 2 and out["stats"]["target"] == 2
    a, b = out["a"], out["b"]
    assert a["pooled"] and b["pooled"], (a, b)
    assert "configure" in a["phaseNames"] and "pool:wait" in a["phaseNames"], a["phaseNames"]
    # prewarm(2) resolved with both workers booted: the wait is only the hand-over.
    wait = next(p["ms"] for p in a["phases"] if p["name"] == "pool:wait")
    assert 0 <= wait <= out["aMs"], (wait, out["aMs"])
    assert all(p.get("background") for p in a["phases"] if p["name"] == "loadPyodide"
               or p["name"].startswith("snapshot:"))
    # Warm: only the configure round trip is left (generous bound; the benchmark measures).
    assert out["aMs"] < 5000 and out["bMs"] < 5000, (out["aMs"], out["bMs"])
    # Host functions are per runtime: given at create(), sync style works.
    assert out["aRun"]["result"]["value"] == 42
    assert out["bRun"]["result"]["value"] == "HI"
    # A disposed runtime's worker never comes back: the next runtime starts clean, and
    # does not have the previous runtime's functions.
    assert out["bState"]["result"]["error"]["type"] == "NameError"
    assert out["bOld"]["result"]["error"]["type"] == "NameError"
    assert out["refilled"]["idle"] == 2, out["refilled"]
    assert out["drained"] == {"target": 0, "idle": 0, "booting": 0, "failures": 0}
    assert out["bad"] == "TypeError"


def test_create_during_prewarm_takes_the_booting_worker(wpage: Any) -> None:
    out = evaluate(wpage, """async () => {
      const warming = M.MontyRuntime.prewarm(1);
      const rt = await M.MontyRuntime.create();
      const run = await H.run(rt, "1 + 2");
      const r = { boot: brief(rt), run, workers: rt.workerCount };
      await rt.dispose();
      await warming;  // the pool boots another one for itself
      r.stats = await M.MontyRuntime.prewarm(0);
      return r;
    }""", timeout_s=BOOT_S * 2)
    assert out["boot"]["pooled"] is True
    assert out["run"]["result"]["value"] == 3
    assert out["workers"] == 1

