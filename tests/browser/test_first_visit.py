"""First visit: the snapshot shipped with the build (web/dist/snapshot.bin, made in
Deno with JSPI by ``python -m monty_runtime build``), in both server modes.

* by default, an engine with JSPI (Chromium, Firefox) restores it on a first visit, and
  the restored runtime makes sync-style host calls (JSPI), awaited ones, and is
  interrupted like a cold one; an engine without JSPI (WebKit) does not download it:
  its first worker boots cold, makes the page's own snapshot and says why in
  ``rt.boot.reason``, and the next worker restores that one;
* a first visit (empty HTTP cache and Cache Storage) downloads the shipped snapshot,
  compressed, the worker checks its sha256 and restores it: no cold boot, no
  wheel downloads; it is then kept in Cache Storage, so the returning visit reads it
  from there and does not download it again;
* a shipped snapshot that is damaged, missing, made for other packages, or whose
  Pyodide part is broken falls back to a cold boot that says why in ``rt.boot``;
* ``create({snapshot: false})`` boots cold and downloads no snapshot.

The cases that need the shipped snapshot restored are skipped where it does not fit
(the page's JSPI is not the snapshot's). Each case gets a fresh browser context (the ``page`` fixture). Only ``page.evaluate``
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


def shipped_mismatch(page: Any) -> str | None:
    """Why this engine does not take the shipped snapshot (JSPI differs), or None."""
    reason: str | None = page.evaluate("""async () => {
      const info = await (await fetch("../dist/build-info.json", { cache: "no-cache" })).json();
      return S.shippedSnapshotMismatch(S.shippedSnapshotEntry(info));
    }""")
    return reason


def needs_shipped(page: Any) -> None:
    reason = shipped_mismatch(page)
    if reason is not None:
        pytest.skip(f"the shipped snapshot does not fit this engine ({reason}); "
                    "test_by_default_a_first_visit_takes_the_shipped_snapshot_where_it_fits "
                    "covers this engine")


# ------------------------------------------------------------------------------ restore


def test_a_first_visit_restores_the_shipped_snapshot_then_the_cached_one(
    fpage: Any, server: Any
) -> None:
    info = json.loads((DIST / "build-info.json").read_text())
    assert info["snapshot"]["file"] == "snapshot.bin"
    assert (info["snapshot"]["made_in"], info["snapshot"]["jspi"]) == ("deno", True)
    needs_shipped(fpage)
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
    [snap] = fetched(records, "/dist/snapshot.bin")
    assert snap.status == 200
    # Served compressed; the worker checked the sha256 of the decoded bytes.
    assert snap.encoding in ("br", "gzip"), snap
    assert 0 < snap.bytes < info["snapshot"]["bytes"] / 3, snap
    assert not fetched(records, ".whl"), "a restored worker downloads no wheels"
    assert out["cached"] == 1

    # The returning visit restores it from Cache Storage, without downloading it.
    fpage.reload(wait_until="load")
    assert fpage.evaluate(HELPERS_JS) is True and fpage.evaluate(BRIEF_JS) is True
    mark = len(server.requests())
    again = evaluate(fpage, CREATE_JS, timeout_s=BOOT_S)
    assert (again["boot"]["snapshot"], again["boot"]["snapshotFrom"]) == ("restored", "cache")
    assert again["run"]["result"]["value"] == [45, True]
    assert not fetched(since(server, mark), "/dist/snapshot.bin")


def test_snapshot_false_boots_cold_without_the_shipped_snapshot(fpage: Any, server: Any) -> None:
    mark = len(server.requests())
    out = evaluate(fpage, CREATE_JS, {"snapshot": False}, timeout_s=BOOT_S)
    boot = out["boot"]
    assert (boot["mode"], boot["snapshot"], boot["snapshotFrom"]) == ("cold", "disabled", None)
    assert "loadPyodide" in boot["phaseNames"]
    assert out["run"]["result"]["value"] == [45, True]
    assert not fetched(since(server, mark), "/dist/snapshot.bin")


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
    """A build-info.json + snapshot.bin pair under web/dist/ (removed afterwards)."""
    name: str = request.param
    folder = DIST / f"test-first-visit-{uuid.uuid4().hex[:12]}"
    folder.mkdir()
    try:
        info = json.loads((DIST / "build-info.json").read_text())
        contents, renamed = _variant(name, (DIST / info["snapshot"]["file"]).read_bytes())
        if contents is not None:
            (folder / "snapshot.bin").write_bytes(contents)
        if renamed and contents is not None:
            digest = hashlib.sha256(contents)
            info["snapshot"] = {
                **info["snapshot"],
                "sha256": digest.hexdigest(),
                "integrity": "sha256-" + base64.b64encode(digest.digest()).decode(),
                "bytes": len(contents),
            }
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
}


@pytest.mark.parametrize("shipped_variant", list(EXPECTED), indirect=True)
def test_a_bad_shipped_snapshot_falls_back_to_a_cold_boot_with_a_reason(
    fpage: Any, shipped_variant: tuple[str, str]
) -> None:
    name, build_info = shipped_variant
    needs_shipped(fpage)
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
def test_by_default_a_first_visit_takes_the_shipped_snapshot_where_it_fits(
        fpage: Any, server: Any) -> None:
    """The shipped snapshot is made in Deno with JSPI. An engine with JSPI restores it
    and its sync-style host calls work (JSPI, not Atomics: no isolation needed); an
    engine without JSPI never downloads it and boots cold, saying why. Either way
    host calls, awaited host calls and interrupts work."""
    mismatch = shipped_mismatch(fpage)
    mark = len(server.requests())
    out = evaluate(fpage, DEFAULT_JS, timeout_s=BOOT_S * 2)
    first, second = out["first"], out["second"]
    downloads = fetched(since(server, mark), "/dist/snapshot.bin")
    if out["jspi"]:
        assert mismatch is None
        assert (first["mode"], first["snapshot"], first["snapshotFrom"]) == (
            "snapshot", "restored", "shipped"), first
        assert first["reason"] is None, first
        assert "loadPyodide" not in first["phaseNames"], first
        assert len(downloads) == 1, downloads
    else:
        # Detected, not guessed: the page has no JSPI and the entry says it was made with it.
        assert mismatch is not None and "made with JSPI" in mismatch, mismatch
        assert (first["mode"], first["snapshot"], first["snapshotFrom"]) == (
            "cold", "made", None), first
        assert "shipped snapshot not used: it was made with JSPI" in (first["reason"] or ""), first
        assert "lacks it" in first["reason"], first
        assert not downloads, "an engine without JSPI does not download the shipped snapshot"
        assert (second["snapshot"], second["snapshotFrom"]) == ("restored", "page"), second
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
