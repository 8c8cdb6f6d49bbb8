// Tests for the page/worker-independent parts of the snapshot modules (web/shared/snapshot-format.js,
// web/page/snapshot.js, web/worker/snapshot.js): the container format,
// the cache key, the checks a worker makes before restoring, and the page's snapshot
// source (who makes the snapshot, who waits, what a failure does).
// Run with: node --test tests/node/

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  SNAPSHOT_FORMAT,
  SNAPSHOT_PYODIDE_VERSIONS,
  SnapshotError,
  checkSnapshotObject,
  isPackedSnapshot,
  engineTraits,
  jspiAvailable,
  lockPackages,
  nonZeroRuns,
  packSnapshot,
  pyodideTrampoline,
  readPackedSnapshot,
  snapshotMismatch,
  snapshotUnsupported,
  traitsMismatch,
  unpackSnapshot,
  wasmTableIdentity,
} from "../../web/shared/snapshot-format.js";
import {
  SnapshotSource, shippedSnapshotEntries, shippedSnapshotFor, shippedSnapshotMismatch, snapshotKey,
} from "../../web/page/snapshot.js";
import { initialImage, restoringMemory, withBootAssets, xorMemory } from "../../web/worker/snapshot.js";

const VERSION = SNAPSHOT_PYODIDE_VERSIONS[0];
const LOCK = {
  info: {},
  packages: {
    "monty-runtime": { sha256: "a".repeat(64) },
    micropip: { sha256: "b".repeat(64) },
  },
};
const BUILD_INFO = {
  pyodide_version: VERSION,
  wheel_sha256: "a".repeat(64),
  extra_wheels: { "micropip-0.11.1-py3-none-any.whl": "b".repeat(64) },
  protocol_version: 1,
};

function sample() {
  const files = new Uint8Array([1, 2, 3, 4, 5]);
  const pyodide = new Uint8Array(64).map((_, i) => i);
  return {
    meta: {
      format: SNAPSHOT_FORMAT,
      pyodideVersion: VERSION,
      packages: lockPackages(LOCK),
      files: [["/lib/a.py", 2, 1000, 33188], ["/lib/b.py", 3, 1000, 33188]],
      memoryXor: 0,
    },
    files,
    pyodide,
  };
}

test("pack then unpack gives the same parts, Pyodide's part 16-byte aligned", async () => {
  const snap = sample();
  const bytes = new Uint8Array(await packSnapshot(snap).arrayBuffer());
  const back = unpackSnapshot(bytes);
  assert.deepStrictEqual(back.meta, snap.meta);
  assert.deepStrictEqual([...back.files], [...snap.files]);
  assert.deepStrictEqual([...back.pyodide], [...snap.pyodide]);
  assert.equal(back.pyodide.byteOffset % 16, 0);
  checkSnapshotObject(back);
});

test("unpack refuses what is not a whole snapshot", async () => {
  const bytes = new Uint8Array(await packSnapshot(sample()).arrayBuffer());
  assert.throws(() => unpackSnapshot(bytes.subarray(0, 10)), SnapshotError);
  assert.throws(() => unpackSnapshot(bytes.subarray(0, bytes.length - 1)), /truncated/);
  const bad = bytes.slice();
  bad[0] ^= 1;
  assert.throws(() => unpackSnapshot(bad), /magic/);
  const meta = bytes.slice();
  meta[33] = 0x7b; // "{" inside the JSON: no longer valid JSON
  assert.throws(() => unpackSnapshot(meta), SnapshotError);
});

test("a snapshot object with a wrong file table is refused", () => {
  const snap = sample();
  snap.meta.files[0][1] = 4;
  assert.throws(() => checkSnapshotObject(snap), /file table/);
  assert.throws(() => checkSnapshotObject({ ...sample(), pyodide: [1, 2] }), /Uint8Array/);
});

test("the key changes with the Pyodide version and with any wheel", () => {
  const key = snapshotKey(BUILD_INFO);
  assert.match(key, new RegExp(`^format=${SNAPSHOT_FORMAT};pyodide=${VERSION};wheel=a{64};`));
  assert.notEqual(snapshotKey({ ...BUILD_INFO, wheel_sha256: "c".repeat(64) }), key);
  assert.notEqual(snapshotKey({ ...BUILD_INFO, pyodide_version: "0.0.1" }), key);
  assert.notEqual(
    snapshotKey({ ...BUILD_INFO, extra_wheels: { "micropip-0.11.1-py3-none-any.whl": "d".repeat(64) } }),
    key,
  );
  assert.throws(() => snapshotKey({}), SnapshotError);
});

test("a worker refuses a snapshot of another Pyodide or other packages", () => {
  const { meta } = sample();
  assert.equal(snapshotMismatch(meta, LOCK, VERSION), null);
  assert.match(snapshotMismatch(meta, LOCK, "999.0.0"), /Pyodide changed/);
  const lock = structuredClone(LOCK);
  lock.packages["monty-runtime"].sha256 = "e".repeat(64);
  assert.match(snapshotMismatch(meta, lock, VERSION), /monty-runtime changed/);
  assert.equal(snapshotUnsupported(VERSION), null);
  assert.match(snapshotUnsupported("0.27.0"), /not supported/);
});

function source(t) {
  t.mock.method(globalThis, "fetch", async () => new Response(JSON.stringify(BUILD_INFO)));
  return new SnapshotSource({ buildInfoURL: "http://x/dist/build-info.json", persist: false });
}

test("the first worker makes the snapshot, the others wait for it and restore it", async (t) => {
  const src = source(t);
  const pa = src.acquire();
  const pb = src.acquire();
  const a = await pa;
  assert.equal(a.make, true);
  assert.equal(a.snapshot, null);
  assert.equal(src.state, "making");
  const snap = sample();
  src.offer(snap);
  const b = await pb;
  assert.equal(b.make, false);
  assert.equal(b.snapshot, snap);
  assert.equal(b.note, "made");
  assert.ok(b.waitedMs >= 0);
  const c = await src.acquire();
  assert.equal(c.snapshot, snap);
});

test("a maker that fails turns snapshots off; waiting workers boot cold", async (t) => {
  const src = source(t);
  const pa = src.acquire();
  const pb = src.acquire();
  await pa;
  src.offer(null, "boom");
  const b = await pb;
  assert.equal(b.snapshot, null);
  assert.equal(b.make, false);
  assert.equal(b.note, "off");
  assert.equal(b.problem, "boom");
});

test("a rejected snapshot is made again, a second rejection turns snapshots off", async (t) => {
  const src = source(t);
  await src.acquire();
  const first = sample();
  src.offer(first);
  src.reject(sample(), "stale"); // not the current one: ignored
  assert.equal(src.state, "ready");
  src.reject(first, "bad magic");
  assert.equal(src.state, "unknown");
  const again = await src.acquire();
  assert.equal(again.make, true);
  assert.match(again.problem, /bad magic/);
  const second = sample();
  src.offer(second);
  src.reject(second, "bad again");
  assert.equal(src.state, "off");
  const off = await src.acquire();
  assert.equal(off.make, false);
  assert.equal(off.snapshot, null);
});

test("a malformed offer is refused", async (t) => {
  const src = source(t);
  await src.acquire();
  src.offer({ meta: {}, files: new Uint8Array(0), pyodide: new Uint8Array(0) });
  assert.equal(src.state, "off");
  assert.match(src.reason, /malformed/);
});

test("no build info: snapshots are off, with the reason", async (t) => {
  t.mock.method(globalThis, "fetch", async () => new Response("nope", { status: 404 }));
  const src = new SnapshotSource({ buildInfoURL: "http://x/dist/build-info.json", persist: false });
  const plan = await src.acquire();
  assert.equal(plan.make, false);
  assert.match(plan.problem, /build-info.json unavailable: HTTP 404/);
});

test("withBootAssets serves the given files and puts fetch back", async (t) => {
  const inner = t.mock.fn(async () => new Response("from the network"));
  t.mock.method(globalThis, "fetch", inner);
  const before = globalThis.fetch;
  const url = "http://x/pyodide/python_stdlib.zip";
  const got = await withBootAssets({ files: { [url]: new Uint8Array([7, 8]) } }, async () => {
    const a = new Uint8Array(await (await fetch(url)).arrayBuffer());
    const b = await (await fetch("http://x/other")).text();
    return [[...a], b];
  });
  assert.deepStrictEqual(got, [[7, 8], "from the network"]);
  assert.equal(globalThis.fetch, before);
  assert.equal(inner.mock.callCount(), 1);
  assert.equal(await withBootAssets(null, async () => 5), 5);
});

test("a maker stopped before it could try hands the job to a waiting worker", async (t) => {
  const src = source(t);
  const pa = src.acquire();
  const pb = src.acquire();
  const pc = src.acquire();
  assert.equal((await pa).make, true);
  src.offer(null, "stopped", { retry: true });
  const b = await pb;
  assert.equal(b.make, true); // b makes it now
  src.offer(sample());
  const c = await pc;
  assert.equal(c.make, false);
  assert.ok(c.snapshot);
});

// Where a second worker's acquire() can land while the first one's lookup is under way:
// `lookup` resolves the download of the shipped snapshot (the lookup's last await).
const SECOND_ACQUIRE_AT = [
  ["the same tick", async () => {}],
  ...[1, 2, 3, 5, 8, 13].map((n) => [`${n} microtasks later`, async () => {
    for (let i = 0; i < n; i++) await Promise.resolve();
  }]),
  ["0 ms later", () => new Promise((r) => setTimeout(r, 0))],
  ["on the snapshot's request", (events) => events.requested],
  ["right after the download", (events) => events.downloaded],
];

for (const shippedOk of [true, false]) {
  for (const [when, wait] of SECOND_ACQUIRE_AT) {
    const outcome = shippedOk ? "both restore the shipped snapshot" : "one makes it, the other waits";
    test(`a second acquire ${when} in the first's lookup: ${outcome}`, async (t) => {
      const { packed, info } = await shippedFixture();
      let release;
      const gate = new Promise((r) => { release = r; });
      let requested;
      const events = { requested: new Promise((r) => { requested = r; }), downloaded: null };
      events.downloaded = events.requested.then(() => gate);
      let downloads = 0;
      t.mock.method(globalThis, "fetch", async (url) => {
        if (String(url).endsWith("build-info.json")) return Response.json(info);
        downloads++;
        requested();
        await gate;
        return shippedOk ? new Response(packed) : new Response("gone", { status: 404 });
      });
      const src = new SnapshotSource({ buildInfoURL: "http://x/dist/build-info.json", persist: false });
      const pa = src.acquire();
      const pb = wait(events).then(() => src.acquire());
      setTimeout(release, 10);
      const a = await pa;
      if (shippedOk) {
        const b = await pb;
        assert.equal(a.note, "shipped");
        assert.equal(b.note, "shipped");
        assert.equal(a.make || b.make, false);
        assert.equal(b.snapshot, a.snapshot);
      } else {
        assert.equal(a.make, true);
        assert.equal(src.state, "making");
        let bSettled = false;
        pb.then(() => { bSettled = true; });
        await new Promise((r) => setTimeout(r, 5));
        assert.equal(bSettled, false, "the second worker waits for the maker");
        const snap = sample();
        src.offer(snap);
        const b = await pb;
        assert.equal(b.make, false);
        assert.equal(b.snapshot, snap);
      }
      assert.equal(downloads, 1);
    });
  }
}

// ------------------------------------------------------------------ shipped snapshot

async function sha256hex(blob) {
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function shippedFixture() {
  const packed = packSnapshot(sample());
  const sha256 = await sha256hex(packed);
  // Made with this engine's traits (Node: no JSPI), so it fits.
  const traits = engineTraits();
  const entry = { file: "snapshot.bin", sha256, integrity: "sha256-x", bytes: packed.size, made_in: "deno",
                  jspi: traits.jspi, table_identity: traits.tableIdentity, trampoline: traits.trampoline };
  return { packed, sha256, entry, info: { ...BUILD_INFO, snapshots: [entry] } };
}

test("a packed snapshot is read back whole in the worker, its sha256 checked", async () => {
  const { packed, sha256 } = await shippedFixture();
  const value = { packed, sha256, from: "shipped" };
  assert.equal(isPackedSnapshot(value), true);
  assert.equal(isPackedSnapshot(sample()), false);
  const back = await readPackedSnapshot(structuredClone(value));
  assert.deepStrictEqual(back.meta, sample().meta);
  checkSnapshotObject(back);
  await assert.rejects(readPackedSnapshot({ ...value, sha256: "0".repeat(64) }),
    (err) => err instanceof SnapshotError && /shipped snapshot is damaged or from another build/.test(err.message));
});

test("build-info's snapshot entries are checked before anything is fetched", () => {
  assert.deepStrictEqual(shippedSnapshotEntries(BUILD_INFO), []);
  assert.equal(shippedSnapshotFor(BUILD_INFO), null);
  const good = { file: "snapshot.bin", sha256: "a".repeat(64), integrity: "sha256-x", bytes: 1 };
  assert.deepStrictEqual(shippedSnapshotEntries({ snapshots: [good] }), [good]);
  for (const bad of [{ ...good, file: "../x.bin" }, { ...good, file: "https://evil/x.bin" },
    { ...good, sha256: "zz" }, { ...good, integrity: "md5-x" }, { ...good, jspi: "yes" },
    { ...good, table_identity: 1 }, { ...good, trampoline: "no" }, "snapshot.bin", null]) {
    assert.throws(() => shippedSnapshotEntries({ snapshots: [good, bad] }), SnapshotError, JSON.stringify(bad));
  }
  for (const list of [good, "snapshot.bin", Array(9).fill(good)]) {
    assert.throws(() => shippedSnapshotEntries({ snapshots: list }), /malformed "snapshots" list/);
  }
});

// The engines of the browser matrix, by their traits.
const V8 = { jspi: true, tableIdentity: true, trampoline: true };
const JSC = { jspi: false, tableIdentity: false, trampoline: true };
const IOS = { jspi: false, tableIdentity: false, trampoline: false };

test("this engine's traits are found as Pyodide's boot finds them", () => {
  const traits = engineTraits();
  assert.equal(traits.jspi, jspiAvailable());
  assert.equal(traits.jspi, "Suspending" in WebAssembly || "Suspender" in WebAssembly);
  assert.equal(traits.tableIdentity, wasmTableIdentity());
  assert.equal(traits.tableIdentity, true); // Node is V8
  assert.equal(traits.trampoline, pyodideTrampoline());
  assert.equal(traits.trampoline, true);
});

test("a shipped snapshot fits only an engine with the traits it was made with", () => {
  const good = { file: "snapshot.bin", sha256: "a".repeat(64), integrity: "sha256-x", bytes: 1, made_in: "deno" };
  const v8 = { ...good, jspi: true, table_identity: true, trampoline: true };
  const jsc = { ...good, file: "snapshot-jsc.bin", jspi: false, table_identity: false, trampoline: true };
  assert.equal(shippedSnapshotMismatch(v8, V8), null);
  assert.equal(shippedSnapshotMismatch(jsc, JSC), null);
  assert.match(shippedSnapshotMismatch(v8, JSC), /made with JSPI and this engine lacks it \(made in deno\)/);
  assert.match(shippedSnapshotMismatch(jsc, V8), /made without JSPI and this engine has it/);
  assert.match(shippedSnapshotMismatch({ ...jsc, jspi: true }, V8),
    /made where a WebAssembly table hands out functions of its own \(JavaScriptCore\) and this engine does so/);
  assert.match(shippedSnapshotMismatch(jsc, IOS), /with Pyodide's WebAssembly call trampoline and this engine goes without/);
  assert.match(shippedSnapshotMismatch(good, V8), /does not say whether it was made with JSPI/);
  // An entry of an older build without the newer traits is checked on JSPI alone.
  assert.equal(shippedSnapshotMismatch({ ...good, jspi: true }, V8), null);

  // Each engine gets its own of the build's two; one without a fitting one is told why.
  const info = { snapshots: [v8, jsc] };
  assert.equal(shippedSnapshotFor(info, V8), v8);
  assert.equal(shippedSnapshotFor(info, JSC), jsc);
  assert.throws(() => shippedSnapshotFor(info, IOS),
    (err) => err instanceof SnapshotError && /^snapshot.bin: it was made with JSPI/.test(err.message) &&
      /; snapshot-jsc.bin: it was made with Pyodide's WebAssembly call trampoline/.test(err.message));
  assert.throws(() => shippedSnapshotFor({ snapshots: [v8] }, JSC),
    (err) => /^it was made with JSPI and this engine lacks it/.test(err.message));
});

test("a worker refuses a snapshot made with engine traits other than its own", () => {
  const here = engineTraits();
  const meta = { ...sample().meta };
  assert.equal(snapshotMismatch({ ...meta, ...here }, LOCK, VERSION), null);
  assert.equal(snapshotMismatch(meta, LOCK, VERSION), null); // not recorded: made in this page before
  assert.match(snapshotMismatch({ ...meta, jspi: !here.jspi }, LOCK, VERSION),
    here.jspi ? /does not fit this engine: it was made without JSPI and this engine has it/
      : /does not fit this engine: it was made with JSPI and this engine lacks it/);
  assert.match(snapshotMismatch({ ...meta, tableIdentity: !here.tableIdentity }, LOCK, VERSION),
    /WebAssembly table/);
  assert.match(snapshotMismatch({ ...meta, trampoline: !here.trampoline }, LOCK, VERSION), /trampoline/);
  assert.equal(traitsMismatch(JSC, JSC), null);
  assert.match(traitsMismatch(V8, JSC), /made with JSPI and this engine lacks it/);
});

test("a page that cannot compile WebAssembly still takes the snapshot its JSPI points to", (t) => {
  // A page whose CSP forbids compiling WebAssembly cannot tell how its table hands out
  // functions; the worker can, and checks again.
  const good = { file: "x.bin", sha256: "a".repeat(64), integrity: "sha256-x", bytes: 1, made_in: "deno" };
  const v8 = { ...good, file: "snapshot.bin", jspi: true, table_identity: true, trampoline: true };
  const jsc = { ...good, file: "snapshot-jsc.bin", jspi: false, table_identity: false, trampoline: true };
  const info = { snapshots: [v8, jsc] };
  assert.equal(shippedSnapshotFor(info, { ...V8, tableIdentity: null }), v8);
  assert.equal(shippedSnapshotFor(info, { ...JSC, tableIdentity: null }), jsc);
});

test("where WebAssembly cannot be compiled, how the table hands out functions is unknown", async (t) => {
  t.mock.method(WebAssembly, "Module", function () {
    throw new WebAssembly.CompileError("Refused to compile WebAssembly: 'wasm-unsafe-eval' is not allowed");
  });
  // A fresh copy of the module: the answer is kept once known.
  const fresh = await import("../../web/shared/snapshot-format.js?no-wasm");
  assert.equal(fresh.wasmTableIdentity(), null);
  assert.equal(fresh.engineTraits().tableIdentity, null);
  assert.equal(fresh.traitsMismatch({ jspi: jspiAvailable(), tableIdentity: false, trampoline: true }), null);
});

test("a first visit uses the shipped snapshot; a missing one means the first worker makes it", async (t) => {
  const { packed, entry, info } = await shippedFixture();
  const fetched = [];
  t.mock.method(globalThis, "fetch", async (url) => {
    fetched.push(String(url));
    if (String(url).endsWith("build-info.json")) return Response.json(info);
    if (String(url) === "http://x/dist/snapshot.bin") return new Response(packed);
    return new Response("nope", { status: 404 });
  });
  const src = new SnapshotSource({ buildInfoURL: "http://x/dist/build-info.json", persist: false });
  const plan = await src.acquire();
  assert.equal(plan.make, false);
  assert.equal(plan.note, "shipped");
  assert.equal(isPackedSnapshot(plan.snapshot), true);
  assert.equal(plan.snapshot.sha256, entry.sha256);
  assert.deepStrictEqual(fetched, ["http://x/dist/build-info.json", "http://x/dist/snapshot.bin"]);
  // The worker could not restore it: the next worker makes the page's own.
  src.reject(plan.snapshot, "Snapshot has invalid magic number");
  const next = await src.acquire();
  assert.equal(next.make, true);
  assert.match(next.problem, /previous snapshot rejected: Snapshot has invalid magic number/);

  const missing = new SnapshotSource({ buildInfoURL: "http://x/other/build-info.json", persist: false });
  const made = await missing.acquire();
  assert.equal(made.make, true);
  assert.match(made.problem, /shipped snapshot not used: HTTP 404 for the shipped snapshot/);
});

test("a shipped snapshot made with other JSPI is not downloaded; the first worker makes one", async (t) => {
  const { info } = await shippedFixture();
  const other = { ...info, snapshots: [{ ...info.snapshots[0], jspi: !jspiAvailable() }] };
  const fetched = [];
  t.mock.method(globalThis, "fetch", async (url) => {
    fetched.push(String(url));
    return Response.json(other);
  });
  const src = new SnapshotSource({ buildInfoURL: "http://x/dist/build-info.json", persist: false });
  const plan = await src.acquire();
  assert.equal(plan.make, true);
  assert.match(plan.problem, /shipped snapshot not used: it was made with(out)? JSPI and this engine (has|lacks) it \(made in deno\)/);
  assert.deepStrictEqual(fetched, ["http://x/dist/build-info.json"]);
});

test("useShippedSnapshot(false): the first worker makes the snapshot, nothing is downloaded", async (t) => {
  const { info } = await shippedFixture();
  const fetched = [];
  t.mock.method(globalThis, "fetch", async (url) => {
    fetched.push(String(url));
    return Response.json(info);
  });
  const { useShippedSnapshot } = await import("../../web/page/snapshot.js");
  useShippedSnapshot(false);
  try {
    const src = new SnapshotSource({ buildInfoURL: "http://x/dist/build-info.json", persist: false });
    const plan = await src.acquire();
    assert.equal(plan.make, true);
    assert.deepStrictEqual(fetched, ["http://x/dist/build-info.json"]);
  } finally {
    useShippedSnapshot(true); // the default
  }
  assert.throws(() => useShippedSnapshot("no"), TypeError);
});

// A module whose memory holds, right after instantiation, 0xdeadbeef at byte 8 (a data
// segment), as Pyodide's holds its data segments.
const TINY_WASM = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x05, 0x03, 0x01, 0x00, 0x01, // one memory, one page
  0x07, 0x0a, 0x01, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, // export "memory"
  0x0b, 0x0a, 0x01, 0x00, 0x41, 0x08, 0x0b, 0x04, 0xde, 0xad, 0xbe, 0xef, // data at 8
]);
const MAGIC = 0x12345678;

/** Pyodide's snapshot layout: magic, offset of the memory, ...; the memory at 16. */
function pyodideSnapshot(memory) {
  const bytes = new Uint8Array(16 + memory.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, 16, true);
  bytes.set(memory, 16);
  return bytes;
}

async function tinyImage() {
  const { instance } = await WebAssembly.instantiate(TINY_WASM, {});
  return initialImage(instance.exports.memory);
}

test("a snapshot's memory is stored as a delta against the instantiated memory", async () => {
  const image = await tinyImage();
  assert.deepStrictEqual([...image], [0, 0, 0, 0, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
  const memory = new Uint8Array(64).map((_, i) => (i >= 8 && i < 12 ? image[i] : i * 3));
  memory[10] = 0x42; // changed since instantiation
  const stored = pyodideSnapshot(memory);
  xorMemory(stored, image);
  assert.deepStrictEqual([...stored.subarray(24, 28)], [0, 0, 0x42 ^ 0xbe, 0]); // unchanged bytes: zeros
  assert.deepStrictEqual([...stored.subarray(28)], [...memory.subarray(12)]); // past the image: as is
  xorMemory(stored, image);
  assert.deepStrictEqual([...stored.subarray(16)], [...memory]);
});

test("a restore decodes the memory at instantiation, before Pyodide reads it", async () => {
  const image = await tinyImage();
  const memory = new Uint8Array(32).map((_, i) => (i * 7) & 0xff);
  const pyodide = pyodideSnapshot(memory);
  xorMemory(pyodide, image);
  const snapshot = { meta: { memoryXor: image.length }, pyodide };
  const before = WebAssembly.instantiate;
  const seen = await restoringMemory(snapshot, async () => {
    await WebAssembly.instantiate(TINY_WASM, {}); // what loadPyodide does first
    return { magic: new DataView(pyodide.buffer).getUint32(0, true), memory: [...pyodide.subarray(16)] };
  });
  assert.equal(seen.magic, MAGIC);
  assert.deepStrictEqual(seen.memory, [...memory]);
  assert.equal(WebAssembly.instantiate, before); // put back
});

test("a restore that never instantiated the module is refused, never run on undecoded memory", async () => {
  const image = await tinyImage();
  const pyodide = pyodideSnapshot(new Uint8Array(32));
  xorMemory(pyodide, image);
  const snapshot = { meta: { memoryXor: image.length }, pyodide };
  let ran = false;
  await assert.rejects(
    restoringMemory(snapshot, async () => {
      // As Pyodide's restoreSnapshot: it checks the magic number before anything else.
      if (new DataView(pyodide.buffer).getUint32(0, true) !== MAGIC) throw new Error("Snapshot has invalid magic number");
      ran = true;
    }),
    (err) => err instanceof SnapshotError && /not instantiated as expected/.test(err.message),
  );
  assert.equal(ran, false);
});

test("snapshot meta must say how much of its memory is a delta", async () => {
  const snap = sample();
  delete snap.meta.memoryXor;
  assert.throws(() => checkSnapshotObject(snap), SnapshotError);
  snap.meta.memoryXor = 6; // not whole words
  assert.throws(() => checkSnapshotObject(snap), SnapshotError);
});

test("a packed snapshot leaves out the zero pages of Pyodide's part and puts them back", async () => {
  const snap = sample();
  const pyodide = new Uint8Array(5 * 4096 + 100);
  pyodide[0] = 1;
  pyodide[3 * 4096 + 7] = 2;
  pyodide[pyodide.length - 1] = 3;
  snap.pyodide = pyodide;
  assert.deepStrictEqual(nonZeroRuns(pyodide), [[0, 4096], [3 * 4096, 4 * 4096], [5 * 4096, pyodide.length]]);
  const bytes = new Uint8Array(await packSnapshot(snap).arrayBuffer());
  assert.ok(bytes.length < 4096 * 3 + 1024, bytes.length);
  const back = unpackSnapshot(bytes);
  assert.deepStrictEqual(back.meta, snap.meta); // the layout is the container's, not the meta's
  assert.deepStrictEqual(back.pyodide, pyodide);
  // A layout pointing outside the part is refused, not followed.
  const metaLength = new DataView(bytes.buffer).getUint32(8, true);
  const text = new TextDecoder().decode(bytes.subarray(32, 32 + metaLength));
  const bad = text.replace(/"pyodideRuns":\[\[0,/, '"pyodideRuns":[[9,');
  assert.notEqual(bad, text);
  const damaged = bytes.slice();
  damaged.set(new TextEncoder().encode(bad), 32);
  assert.throws(() => unpackSnapshot(damaged), (err) => err instanceof SnapshotError && /layout is damaged/.test(err.message));
});
