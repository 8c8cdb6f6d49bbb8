"""First visit: the snapshots shipped with the build (web/dist/snapshot.bin for V8 and
SpiderMonkey, web/dist/snapshot-jsc.bin for JavaScriptCore, both made in Deno by
``python -m monty_runtime build``), in both server modes.

* by default, every engine of the matrix (Chromium, Firefox, WebKit) restores the one
  made with its own engine traits on a first visit, and the restored runtime makes
  sync-style host calls, awaited ones, and is interrupted like a cold one; a build whose
  snapshots do not fit the engine is not downloaded: the first worker boots cold, makes
  the page's own snapshot and says why in ``rt.boot.reason``, and the next worker
  restores that one;
* a first visit (empty HTTP cache and Cache Storage) downloads the shipped snapshot,
  compressed, the worker checks its sha256 and restores it: no cold boot, no
  wheel downloads; it is then kept in Cache Storage, so the returning visit reads it
  from there and does not download it again;
* a shipped snapshot that is damaged, missing, made for other packages, or whose
  Pyodide part is broken falls back to a cold boot that says why in ``rt.boot``;
* ``create({snapshot: false})`` boots cold and downloads no snapshot.

Each case gets a fresh browser context (the ``page`` fixture). Only ``page.evaluate``
and the dev server's request log are used, so the tests run as they are in any engine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.engines import EXPECTED as ENGINES
from support.runtime_page import HELPERS_JS, evaluate, open_runtime_page, shared_memory

from monty_runtime._server import RequestRecord

pytestmark = pytest.mark.engine_paths

BOOT_S = 180
DIST = Path(__file__).resolve().parents[2] / "web" / "dist"

BRIEF_JS = """async () => {
  window.S = await import("../page/snapshot.js");
  window.SF = await import("../shared/snapshot-format.js");
  window.brief = (rt) => ({ ...rt.boot, phaseNames: rt.boot.phases.map((p) => p.name) });
  return true;
}"""

CREATE_JS = """async (options) => {
  const rt = await M.MontyRuntime.create(options ?? {});
  const run = await H.run(rt, "import sys\\n[sum(range(10)), 'monty_runtime.worker' in sys.modules]");
  const r = { boot: brief(rt), run };
  await rt.dispose();
  return r;
}"""


def since(server: Any, mark: int) -> list[RequestRecord]:
    records: list[RequestRecord] = server.requests()[mark:]
    return records


def fetched(records: list[RequestRecord], suffix: str) -> list[RequestRecord]:
    return [r for r in records if r.path.endswith(suffix)]


@pytest.fixture
def fpage(page: Any, server: Any) -> Any:
    open_runtime_page(page, server)
    assert page.evaluate(BRIEF_JS) is True
    return page


def shipped_for(page: Any, build_info: str = "../dist/build-info.json") -> dict[str, Any]:
    """{"file": the shipped snapshot this engine takes, or None; "why": why none fits}."""
    found: dict[str, Any] = page.evaluate("""async (url) => {
      const info = await (await fetch(url, { cache: "no-cache" })).json();
      try {
        return { file: S.shippedSnapshotFor(info)?.file ?? null, why: null };
      } catch (err) {
        return { file: null, why: err.message };
      }
    }""", build_info)
    return found


def shipped_file(page: Any) -> str:
    """The shipped snapshot this engine takes: every engine of the matrix has one."""
    found = shipped_for(page)
    assert found["file"] is not None, f"no shipped snapshot fits this engine: {found['why']}"
    return str(found["file"])


# ------------------------------------------------------------------------------ restore


def test_a_first_visit_restores_the_shipped_snapshot_then_the_cached_one(
    fpage: Any, server: Any, engine: str
) -> None:
    info = json.loads((DIST / "build-info.json").read_text())
    traits = {
        e["file"]: (e["made_in"], e["jspi"], e["table_identity"], e["trampoline"])
        for e in info["snapshots"]
    }
    assert traits == {
        "snapshot.bin": ("deno", True, True, True),
        "snapshot-jsc.bin": ("deno", False, False, True),
    }
    file = shipped_file(fpage)
    entry = next(e for e in info["snapshots"] if e["file"] == file)
    mark = len(server.requests())
    out = evaluate(
        fpage,
        """async () => {
          const r = await ("""
        + CREATE_JS
        + """)();
          const source = S.snapshotSource(new URL("../dist/build-info.json", location.href).href);
          await source.saved();
          const cache = await caches.open("monty-runtime-snapshots");
          r.cached = (await cache.keys()).length;
          return r;
        }""",
        timeout_s=BOOT_S,
    )
    boot = out["boot"]
    assert (boot["mode"], boot["snapshot"], boot["snapshotFrom"]) == (
        "snapshot",
        "restored",
        "shipped",
    ), boot
    assert boot["reason"] is None
    assert "snapshot:download" in boot["phaseNames"] and "snapshot:read" in boot["phaseNames"]
    assert "loadPyodide" not in boot["phaseNames"]
    # The worker started before the download ended and waited for the page's plan.
    assert boot["phaseNames"].index("plan:wait") < boot["phaseNames"].index("snapshot:read")
    assert out["run"]["result"]["value"] == [45, True], out["run"]
    records = since(server, mark)
    [snap] = [r for r in records if r.path.startswith("/dist/snapshot")]
    assert snap.path == f"/dist/{file}", snap
    assert snap.status == 200
    # Served compressed; the worker checked the sha256 of the decoded bytes.
    assert snap.encoding in ("br", "gzip"), snap
    assert 0 < snap.bytes < entry["bytes"] / 2.5, snap
    assert not fetched(records, ".whl"), "a restored worker downloads no wheels"
    assert out["cached"] == 1

    # The returning visit restores it from Cache Storage, without downloading it. (Where
    # a reload drops Cache Storage's entries, WebKitGTK's automation session: a snapshot
    # source of its own on the same page, which reads Cache Storage as a new page would.)
    build_info = "../dist/build-info.json"
    if ENGINES[engine].cache_survives_reload:
        fpage.reload(wait_until="load")
        assert fpage.evaluate(HELPERS_JS) is True and fpage.evaluate(BRIEF_JS) is True
    else:
        build_info += "?returning-visit"
    mark = len(server.requests())
    again = evaluate(fpage, CREATE_JS, {"buildInfoURL": build_info}, timeout_s=BOOT_S)
    assert (again["boot"]["snapshot"], again["boot"]["snapshotFrom"]) == ("restored", "cache")
    assert again["run"]["result"]["value"] == [45, True]
    assert not [r for r in since(server, mark) if r.path.startswith("/dist/snapshot")]


def test_snapshot_false_boots_cold_without_the_shipped_snapshot(fpage: Any, server: Any) -> None:
    mark = len(server.requests())
    out = evaluate(fpage, CREATE_JS, {"snapshot": False}, timeout_s=BOOT_S)
    boot = out["boot"]
    assert (boot["mode"], boot["snapshot"], boot["snapshotFrom"]) == ("cold", "disabled", None)
    assert "loadPyodide" in boot["phaseNames"]
    assert out["run"]["result"]["value"] == [45, True]
    assert not [r for r in since(server, mark) if r.path.startswith("/dist/snapshot")]


# ------------------------------------------------------------------------------ fallbacks


def _repack(data: bytes, meta: dict[str, Any]) -> bytes:
    """The snapshot container (web/shared/snapshot-format.js packSnapshot) with another meta."""
    meta_len, files_len, py_offset, py_len, fmt = struct.unpack("<IIIII", data[8:28])
    files = data[32 + meta_len : 32 + meta_len + files_len]
    pyodide = data[py_offset:]
    meta_bytes = json.dumps(meta).encode()
    offset = -(-(32 + len(meta_bytes) + len(files)) // 16) * 16
    header = data[:8] + struct.pack("<IIIII", len(meta_bytes), len(files), offset, py_len, fmt)
    header += b"\0" * (32 - len(header))
    pad = b"\0" * (offset - 32 - len(meta_bytes) - len(files))
    return header + meta_bytes + files + pad + pyodide


def _meta(data: bytes) -> dict[str, Any]:
    meta_len = struct.unpack("<I", data[8:12])[0]
    meta: dict[str, Any] = json.loads(data[32 : 32 + meta_len])
    return meta


def _variant(name: str, data: bytes) -> tuple[bytes | None, bool]:
    """(file contents or None for a missing file, whether build-info names its digest)."""
    if name == "damaged":  # one byte changed in transit/storage: integrity fails
        broken = bytearray(data)
        broken[len(broken) // 2] ^= 0x5A
        return bytes(broken), False
    if name == "missing":
        return None, False
    if name == "other-packages":  # a snapshot of another build, correctly named
        meta = _meta(data)
        meta["packages"]["monty-runtime"] = "0" * 64
        return _repack(data, meta), True
    if name == "broken-pyodide":  # intact file, but Pyodide refuses its part
        py_offset = struct.unpack("<I", data[16:20])[0]
        broken = bytearray(data)
        broken[py_offset] ^= 0xFF
        return bytes(broken), True
    raise AssertionError(name)


@pytest.fixture
def shipped_variant(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A build-info.json and its snapshots under web/dist/ (removed afterwards): each
    snapshot the build lists, changed as the variant says ("no-fit": the real files,
    each listed with the opposite engine traits, so that none fits any engine)."""
    name: str = request.param
    folder = DIST / f"test-first-visit-{uuid.uuid4().hex[:12]}"
    folder.mkdir()
    try:
        info = json.loads((DIST / "build-info.json").read_text())
        entries = []
        for entry in info["snapshots"]:
            data = (DIST / entry["file"]).read_bytes()
            if name == "no-fit":
                shutil.copyfile(DIST / entry["file"], folder / entry["file"])
                entries.append({**entry, **{
                    key: not entry[key] for key in ("jspi", "table_identity", "trampoline")
                }})
                continue
            contents, renamed = _variant(name, data)
            if contents is not None:
                (folder / entry["file"]).write_bytes(contents)
            if renamed and contents is not None:
                digest = hashlib.sha256(contents)
                entry = {
                    **entry,
                    "sha256": digest.hexdigest(),
                    "integrity": "sha256-" + base64.b64encode(digest.digest()).decode(),
                    "bytes": len(contents),
                }
            entries.append(entry)
        info["snapshots"] = entries
        (folder / "build-info.json").write_text(json.dumps(info))
        yield name, f"../dist/{folder.name}/build-info.json"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


EXPECTED = {
    # variant: (snapshot state in rt.boot, words of the reason)
    "damaged": ("fallback", "damaged or from another build"),
    "missing": ("made", "HTTP 404"),
    "other-packages": ("fallback", "package monty-runtime changed"),
    "broken-pyodide": ("fallback", "magic"),
    "no-fit": ("made", "shipped snapshot not used: snapshot.bin: it was made"),
}


@pytest.mark.parametrize("shipped_variant", list(EXPECTED), indirect=True)
def test_a_bad_shipped_snapshot_falls_back_to_a_cold_boot_with_a_reason(
    fpage: Any, server: Any, shipped_variant: tuple[str, str]
) -> None:
    name, build_info = shipped_variant
    shipped_file(fpage)
    mark = len(server.requests())
    out = evaluate(
        fpage,
        """async (buildInfoURL) => {
          const first = await ("""
        + CREATE_JS
        + """)({ buildInfoURL });
          // The next worker of the page restores the snapshot the cold one made.
          const second = await ("""
        + CREATE_JS
        + """)({ buildInfoURL });
          return { first, second };
        }""",
        build_info,
        timeout_s=BOOT_S * 2,
    )
    boot = out["first"]["boot"]
    state, words = EXPECTED[name]
    assert (boot["mode"], boot["snapshot"]) == ("cold", state), boot
    assert words in (boot["reason"] or ""), boot
    assert "loadPyodide" in boot["phaseNames"]
    assert out["first"]["run"]["result"]["value"] == [45, True]
    second = out["second"]["boot"]
    if state == "made":
        assert (second["snapshot"], second["snapshotFrom"]) == ("restored", "page"), second
    assert out["second"]["run"]["result"]["value"] == [45, True]
    downloads = [r for r in since(server, mark) if r.path.endswith(".bin")]
    if name == "no-fit":
        assert "snapshot-jsc.bin: it was made" in boot["reason"], boot
        assert not downloads, "a snapshot that fits no engine is not downloaded"
    elif name != "missing":
        assert len(downloads) == 1, downloads


DEFAULT_JS = """async () => {
  const jspi = SF.jspiAvailable();
  const later = async (x) => { await new Promise((r) => setTimeout(r, 20)); return x * 2; };
  const rt = await M.MontyRuntime.create({ functions: { add: (a, b) => a + b, later } });
  const sync = await H.run(rt, "x = add(2, 3)\\nx");
  const awaited = await H.run(rt, "y = await later(21)\\ny");
  // An interrupt of awaiting code (both server modes), then of a tight loop (with
  // shared memory: through Pyodide's interrupt buffer); the state is kept.
  const sleeping = rt.execute("import asyncio\\nawait asyncio.sleep(30)");
  await H.waitEvent(sleeping, (ev) => ev.type === "run_started");
  await new Promise((r) => setTimeout(r, 50));
  sleeping.interrupt();
  const awaitInterrupted = await H.settle(sleeping.result);
  let loopInterrupted = null;
  if (globalThis.crossOriginIsolated && typeof SharedArrayBuffer === "function") {
    const loop = rt.execute("n = 0\\nwhile True:\\n    n = add(n, 1) if n < 3 else n + 1");
    await H.waitEvent(loop, (ev) => ev.type === "run_started");
    await new Promise((r) => setTimeout(r, 200));
    rt.interrupt();
    loopInterrupted = await H.settle(loop.result);
  }
  const after = await H.run(rt, "add(x, y)");
  const first = brief(rt);
  await rt.dispose();
  // The page's next worker restores a snapshot (the shipped one, or the page's own).
  const rt2 = await M.MontyRuntime.create({ functions: { add: (a, b) => a + b } });
  const again = await H.run(rt2, "add(40, 2)");
  const second = brief(rt2);
  await rt2.dispose();
  return { jspi, first, second, sync: sync.result, awaited: awaited.result, awaitInterrupted,
           loopInterrupted, after: after.result, again: again.result };
}"""


@pytest.mark.webkit_paths
def test_by_default_a_first_visit_takes_the_shipped_snapshot_made_for_its_engine(
        fpage: Any, server: Any) -> None:
    """Every engine of the matrix restores the shipped snapshot made with its engine
    traits (Chromium and Firefox snapshot.bin, WebKit snapshot-jsc.bin), downloads that
    one only, and its sync-style host calls (JSPI where there is JSPI), awaited host
    calls and interrupts work."""
    file = shipped_file(fpage)
    mark = len(server.requests())
    out = evaluate(fpage, DEFAULT_JS, timeout_s=BOOT_S * 2)
    first, second = out["first"], out["second"]
    downloads = [r.path for r in since(server, mark) if r.path.endswith(".bin")]
    assert file == ("snapshot.bin" if out["jspi"] else "snapshot-jsc.bin"), (file, out["jspi"])
    assert (first["mode"], first["snapshot"], first["snapshotFrom"]) == (
        "snapshot", "restored", "shipped"), first
    assert first["reason"] is None, first
    assert "loadPyodide" not in first["phaseNames"], first
    assert downloads == [f"/dist/{file}"], downloads
    assert second["snapshot"] == "restored", second
    assert out["sync"]["error"] is None and out["sync"]["value"] == 5, out["sync"]
    assert out["awaited"]["error"] is None and out["awaited"]["value"] == 42, out["awaited"]
    stopped = out["awaitInterrupted"]
    assert stopped["ok"] and stopped["result"]["error"]["type"] == "KeyboardInterrupt", stopped
    assert stopped["result"]["sessionLost"] is False, stopped
    if shared_memory(fpage):
        loop = out["loopInterrupted"]
        assert loop["ok"] and loop["result"]["error"]["type"] == "KeyboardInterrupt", loop
        assert loop["result"]["sessionLost"] is False, loop
    assert out["after"]["error"] is None and out["after"]["value"] == 47, out["after"]
    assert out["again"]["error"] is None and out["again"]["value"] == 42, out["again"]
