// Warm start: a memory snapshot of a booted worker (Pyodide with monty_runtime
// imported), restored by later workers instead of a cold boot.
//
// Pyodide's snapshot options (`loadPyodide({ _makeSnapshot })`,
// `pyodide.makeMemorySnapshot()`, `loadPyodide({ _loadSnapshot })`) are private and
// experimental, so they are used only with the Pyodide versions listed in
// SNAPSHOT_PYODIDE_VERSIONS, feature-detected, and every failure falls back to a cold
// boot (said so in the boot report, never silently).
//
// What a snapshot holds
//   * Pyodide's own snapshot: the WebAssembly memory (the interpreter with
//     monty_runtime, monty_runtime.worker and what they import) plus its table of
//     JavaScript references (only Pyodide's own, by name);
//   * the files of site-packages (our wheel, micropip): the memory has the imported
//     modules, the file system (JavaScript-side) has the files of what is not imported
//     yet (micropip is imported lazily, on first use), so the files travel alongside;
//   * meta: the Pyodide version and the sha256 of every package it holds, checked by
//     the worker against its lock file before restoring, and how many bytes at the
//     start of the memory are stored as a delta against the memory Pyodide's module has
//     right after instantiation (`memoryXor`, see worker/snapshot.js: about 1.2 MB
//     less to download).
// The snapshot is taken before anything page-specific exists (no host functions, no
// message handlers into Python, no interrupt buffer, no session): worker.js runs those
// steps after a cold boot and after a restore alike.
//
// Where it comes from on a first visit: the build ships one (dist/snapshot.bin, made
// at build time by scripts/make-snapshot.mjs; named with its sha256 in
// build-info.json's "snapshot" entry). With no snapshot in Cache Storage, the page
// fetches it as a Blob (it may be served compressed) and hands it to the first worker,
// which reads it, checks its sha256 against build-info.json's and its meta against its
// lock file like any snapshot, and restores it; any failure falls back to a cold boot
// and the next worker makes the page's own snapshot (the boot report says why). The
// page never reads the ~14 MB itself: that would cost its thread long tasks.
//
// Where it lives (page side, never in the worker: the worker runs untrusted code and
// must not be able to write what later workers restore)
//   * in memory, for the page's lifetime;
//   * in Cache Storage (when available: secure contexts), keyed by the Pyodide version
//     and the sha256 of every wheel (dist/build-info.json), so a returning visit skips
//     the cold boot; a changed wheel or Pyodide changes the key; older entries are
//     deleted when a new one is stored. The stored bytes carry their sha256, checked
//     by the worker that restores them (the page hands it the Blob, unread).
//
//
// The modules: shared/snapshot-format.js (this one: the container format and the
// rules that decide whether a snapshot fits a lock file), worker/snapshot.js (make and
// restore, in the worker), page/snapshot.js (where snapshots come from and are kept:
// the shipped one, Cache Storage, memory). None of them evaluates code from data.

/** Pyodide versions whose private snapshot API this module was written and tested for. */
export const SNAPSHOT_PYODIDE_VERSIONS = Object.freeze(["314.0.7"]);

/** Bumped when the container layout or what goes into a snapshot changes. */
export const SNAPSHOT_FORMAT = 2;

/** Python modules imported before the snapshot is taken (monty_runtime itself is
 * imported by the boot chain). Not micropip: it is imported on first use. */
export const SNAPSHOT_PRELOAD = Object.freeze(["monty_runtime.worker", "monty_runtime._snapshot"]);

/** Packages whose files and hashes a snapshot holds (loaded by the boot chain). */
export const SNAPSHOT_PACKAGES = Object.freeze(["monty-runtime", "micropip"]);

const MAGIC = "MONTYSN1";
const HEADER_BYTES = 32;

export class SnapshotError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "SnapshotError";
  }
}


// ------------------------------------------------------------------ container format

/**
 * A snapshot in memory: `{ meta, files, pyodide }` where `files` holds the bytes of
 * `meta.files` ([path, length, mtimeMs, mode] each) back to back and `pyodide` is
 * Pyodide's own snapshot.
 * @typedef {{ meta: object, files: Uint8Array, pyodide: Uint8Array }} Snapshot
 */

const align16 = (n) => Math.ceil(n / 16) * 16;
/** Lower-case hex of a digest. */
export const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");

/** Granularity of the zero runs left out of a packed snapshot. */
const PAGE = 4096;

/**
 * The non-zero stretches of `bytes`, in whole pages: [[start, end], ...]. Pyodide's
 * snapshot is its whole memory, more than half of it zeros (about 18 of 32 MB, in a
 * few dozen runs): a packed snapshot leaves them out, so a first visit decodes, stores
 * and checks 14 MB instead of 32.
 */
export function nonZeroRuns(bytes) {
  const runs = [];
  const words = bytes.byteOffset % 4 === 0 ? new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2) : null;
  const pageZero = (start) => {
    const end = Math.min(start + PAGE, bytes.length);
    if (words !== null && start % 4 === 0) {
      const wordEnd = end >>> 2;
      for (let i = start >>> 2; i < wordEnd; i++) if (words[i] !== 0) return false;
      for (let i = wordEnd * 4; i < end; i++) if (bytes[i] !== 0) return false;
      return true;
    }
    for (let i = start; i < end; i++) if (bytes[i] !== 0) return false;
    return true;
  };
  for (let start = 0; start < bytes.length; start += PAGE) {
    if (pageZero(start)) continue;
    const end = Math.min(start + PAGE, bytes.length);
    const last = runs[runs.length - 1];
    if (last && last[1] === start) last[1] = end;
    else runs.push([start, end]);
  }
  return runs;
}

/**
 * One Blob: a 32-byte header, meta JSON, the files, padding, then the non-zero runs of
 * Pyodide's snapshot back to back (the meta's `pyodideRuns` and `pyodideBytes` say
 * where they go; the rest is zeros).
 */
export function packSnapshot(snapshot) {
  const runs = nonZeroRuns(snapshot.pyodide);
  const stored = runs.reduce((n, [start, end]) => n + end - start, 0);
  const meta = { ...snapshot.meta, pyodideBytes: snapshot.pyodide.length, pyodideRuns: runs };
  const metaBytes = new TextEncoder().encode(JSON.stringify(meta));
  const pyOffset = align16(HEADER_BYTES + metaBytes.length + snapshot.files.length);
  const header = new Uint8Array(HEADER_BYTES);
  header.set(new TextEncoder().encode(MAGIC), 0);
  const view = new DataView(header.buffer);
  view.setUint32(8, metaBytes.length, true);
  view.setUint32(12, snapshot.files.length, true);
  view.setUint32(16, pyOffset, true);
  view.setUint32(20, stored, true);
  view.setUint32(24, SNAPSHOT_FORMAT, true);
  const pad = new Uint8Array(pyOffset - HEADER_BYTES - metaBytes.length - snapshot.files.length);
  const parts = runs.map(([start, end]) => snapshot.pyodide.subarray(start, end));
  return new Blob([header, metaBytes, snapshot.files, pad, ...parts]);
}

/**
 * The inverse of packSnapshot: views into `bytes` for the meta and files, Pyodide's
 * snapshot rebuilt with its zeros (one new buffer); throws SnapshotError.
 */
export function unpackSnapshot(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length < HEADER_BYTES) {
    throw new SnapshotError("not a snapshot (too short)");
  }
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== MAGIC) throw new SnapshotError("not a snapshot (bad magic)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const metaLength = view.getUint32(8, true);
  const filesLength = view.getUint32(12, true);
  const pyOffset = view.getUint32(16, true);
  const pyLength = view.getUint32(20, true);
  const format = view.getUint32(24, true);
  if (format !== SNAPSHOT_FORMAT) throw new SnapshotError(`snapshot format ${format}, expected ${SNAPSHOT_FORMAT}`);
  const filesStart = HEADER_BYTES + metaLength;
  if (filesStart + filesLength > pyOffset || pyOffset % 16 !== 0 || pyOffset + pyLength !== bytes.length) {
    throw new SnapshotError("snapshot is truncated or its header is damaged");
  }
  let meta;
  try {
    meta = JSON.parse(new TextDecoder().decode(bytes.subarray(HEADER_BYTES, filesStart)));
  } catch (err) {
    throw new SnapshotError(`snapshot meta is not JSON (${err.message})`);
  }
  const { pyodideBytes, pyodideRuns, ...rest } = meta ?? {};
  checkMeta(rest);
  const pyodide = new Uint8Array(checkedLength(pyodideBytes));
  let at = pyOffset;
  let previous = 0;
  for (const run of Array.isArray(pyodideRuns) ? pyodideRuns : [null]) {
    const [start, end] = Array.isArray(run) ? run : [];
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < previous || end <= start ||
        end > pyodide.length || at + end - start > bytes.length) {
      throw new SnapshotError("snapshot layout is damaged");
    }
    pyodide.set(bytes.subarray(at, at + end - start), start);
    at += end - start;
    previous = end;
  }
  if (at !== bytes.length) throw new SnapshotError("snapshot layout is damaged");
  return { meta: rest, files: bytes.subarray(filesStart, filesStart + filesLength), pyodide };
}

function checkedLength(n) {
  if (!Number.isInteger(n) || n < 16 || n > 4 * 1024 ** 3) throw new SnapshotError("snapshot layout is damaged");
  return n;
}

function checkMeta(meta) {
  if (!meta || typeof meta !== "object" || meta.format !== SNAPSHOT_FORMAT ||
      typeof meta.pyodideVersion !== "string" || !meta.packages || typeof meta.packages !== "object" ||
      !Array.isArray(meta.files) || !Number.isInteger(meta.memoryXor) || meta.memoryXor < 0 ||
      meta.memoryXor % 4 !== 0) {
    throw new SnapshotError("snapshot meta is malformed");
  }
}

/**
 * A packed snapshot: the container file as a Blob plus the sha256 it must have, as the
 * page hands over the shipped one (and the one read back from Cache Storage) without
 * reading its ~14 MB on its own thread. The worker reads, checks and unpacks it
 * (readPackedSnapshot) before restoring.
 * @typedef {{ packed: Blob, sha256: string, from: string }} PackedSnapshot
 */

/** True for a PackedSnapshot (after a structured clone too). */
export function isPackedSnapshot(value) {
  return !!value && typeof value === "object" && typeof Blob === "function" && value.packed instanceof Blob &&
    typeof value.sha256 === "string";
}

/** Worker side: the Snapshot of a PackedSnapshot, its sha256 checked; throws SnapshotError. */
export async function readPackedSnapshot(value) {
  if (!isPackedSnapshot(value)) throw new SnapshotError("not a packed snapshot");
  const buffer = await value.packed.arrayBuffer();
  const digest = hex(await crypto.subtle.digest("SHA-256", buffer));
  if (digest !== value.sha256) {
    throw new SnapshotError(`the ${value.from ?? "packed"} snapshot is damaged or from another build ` +
      `(sha256 ${digest.slice(0, 12)}..., expected ${value.sha256.slice(0, 12)}...)`);
  }
  return unpackSnapshot(new Uint8Array(buffer));
}

/** A snapshot object as it arrives by postMessage (structured clone): checked shape. */
export function checkSnapshotObject(snapshot) {
  if (!snapshot || typeof snapshot !== "object") throw new SnapshotError("no snapshot object");
  checkMeta(snapshot.meta);
  if (!(snapshot.files instanceof Uint8Array) || !(snapshot.pyodide instanceof Uint8Array)) {
    throw new SnapshotError("snapshot parts must be Uint8Arrays");
  }
  let total = 0;
  for (const entry of snapshot.meta.files) {
    if (!Array.isArray(entry) || typeof entry[0] !== "string" || !Number.isInteger(entry[1]) || entry[1] < 0) {
      throw new SnapshotError("snapshot file table is malformed");
    }
    total += entry[1];
  }
  if (total !== snapshot.files.length) throw new SnapshotError("snapshot file table does not match its data");
  return snapshot;
}

// ------------------------------------------------------------------ compatibility

/** Why this Pyodide cannot make/restore snapshots, or null when it can. */
export function snapshotUnsupported(pyodideVersion) {
  if (!SNAPSHOT_PYODIDE_VERSIONS.includes(pyodideVersion)) {
    return `snapshots are not supported with Pyodide ${pyodideVersion} (only ${SNAPSHOT_PYODIDE_VERSIONS.join(", ")})`;
  }
  return null;
}

/**
 * Whether Pyodide finds JSPI (WebAssembly stack switching) in this context, by Pyodide's
 * own test. Pyodide keeps the answer it got at boot in its memory, so a snapshot works
 * only where the answer is the same: made without JSPI and restored where JSPI exists,
 * its sync-style host calls fail ("WebAssembly stack switching not supported in this
 * JavaScript runtime"); made with JSPI and restored without, the interpreter would
 * expect stack switching the engine cannot do. So every snapshot records it
 * (meta.jspi) and is restored only where it is the same.
 */
export function jspiAvailable() {
  const wasm = /** @type {any} */ (globalThis.WebAssembly);
  return typeof wasm === "object" && wasm !== null && ("Suspending" in wasm || "Suspender" in wasm);
}

// (module (func $f (result i32) i32.const 7) (table (export "t") 1 funcref)
//   (elem (i32.const 0) $f) (export "f" (func $f)))
const TABLE_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 127, 3, 2, 1, 0, 4, 4, 1, 112, 0, 1, 7, 9, 2, 1,
  116, 1, 0, 1, 102, 0, 0, 9, 7, 1, 0, 65, 0, 11, 1, 0, 10, 6, 1, 4, 0, 65, 7, 11,
]);
let tableIdentity = null;

/**
 * Whether this engine's WebAssembly `Table.prototype.get` gives back the very function
 * object a module exports (V8, SpiderMonkey: true; JavaScriptCore: false, it hands out
 * an object of its own). Emscripten's `addFunction` looks a function up in the table by
 * that identity: where it fails, Pyodide's boot appends the functions it links again, so
 * the table, and the function pointers the boot stores in memory, differ from V8's.
 * null where it cannot be told: a page whose Content-Security-Policy forbids compiling
 * WebAssembly (the worker, which runs Pyodide, always can, and checks it again).
 * @returns {boolean | null}
 */
export function wasmTableIdentity() {
  if (tableIdentity === null) {
    try {
      const { exports } = new WebAssembly.Instance(new WebAssembly.Module(TABLE_PROBE));
      tableIdentity = /** @type {any} */ (exports.t).get(0) === exports.f;
    } catch {
      return null;
    }
  }
  return tableIdentity;
}

/** Whether Pyodide's boot installs its WebAssembly call trampoline here: it leaves it
 * out on iOS (its own test, in pyodide.asm.mjs), which changes the table too. */
export function pyodideTrampoline() {
  const nav = /** @type {any} */ (globalThis.navigator);
  const ios = Boolean(nav) && (/iPad|iPhone|iPod/.test(String(nav.userAgent)) ||
    (nav.platform === "MacIntel" && typeof nav.maxTouchPoints !== "undefined" && nav.maxTouchPoints > 1));
  return !ios;
}

/**
 * What Pyodide's boot finds in this engine and keeps in its memory: a snapshot restores
 * only where all of them are as they were when it was made. `jspi`: see jspiAvailable;
 * `tableIdentity`: see wasmTableIdentity (null: not known here); `trampoline`: see
 * pyodideTrampoline. Chromium and Firefox: all true; WebKit: jspi and tableIdentity false.
 * @returns {{jspi: boolean, tableIdentity: boolean | null, trampoline: boolean}}
 */
export function engineTraits() {
  return { jspi: jspiAvailable(), tableIdentity: wasmTableIdentity(), trampoline: pyodideTrampoline() };
}

const TRAIT_TEXT = {
  jspi: ["with JSPI", "without JSPI", "has it", "lacks it"],
  tableIdentity: [
    "where a WebAssembly table gives back a module's own functions (V8, SpiderMonkey)",
    "where a WebAssembly table hands out functions of its own (JavaScriptCore)",
    "does so", "does not",
  ],
  trampoline: [
    "with Pyodide's WebAssembly call trampoline", "without Pyodide's WebAssembly call trampoline (iOS)",
    "has it", "goes without",
  ],
};

/**
 * Why a snapshot made with `traits` (those it records; a trait not recorded, or not
 * known here, is not checked) does not fit an engine with `here` (default: this one),
 * or null.
 * @param {{jspi?: unknown, tableIdentity?: unknown, trampoline?: unknown}} traits
 * @param {{jspi: boolean, tableIdentity: boolean | null, trampoline: boolean}} [here]
 */
export function traitsMismatch(traits, here = engineTraits()) {
  for (const [name, [made, madeNot, has, hasNot]] of Object.entries(TRAIT_TEXT)) {
    const recorded = /** @type {any} */ (traits)[name];
    const now = /** @type {any} */ (here)[name];
    if (typeof recorded === "boolean" && typeof now === "boolean" && recorded !== now) {
      return `it was made ${recorded ? made : madeNot} and this engine ${now ? has : hasNot}`;
    }
  }
  return null;
}

/** sha256 of each snapshot package, from the lock file (what the worker would load). */
export function lockPackages(lock) {
  const out = {};
  for (const name of SNAPSHOT_PACKAGES) {
    const sha = lock?.packages?.[name]?.sha256;
    out[name] = typeof sha === "string" ? sha : null;
  }
  return out;
}

/** Why `meta` does not fit this worker (its lock file and Pyodide), or null. */
export function snapshotMismatch(meta, lock, pyodideVersion) {
  if (meta.pyodideVersion !== pyodideVersion) {
    return `Pyodide changed (snapshot ${meta.pyodideVersion}, now ${pyodideVersion})`;
  }
  const now = lockPackages(lock);
  for (const [name, sha] of Object.entries(now)) {
    if (meta.packages[name] !== sha) return `package ${name} changed since the snapshot was made`;
  }
  const traits = traitsMismatch(meta);
  return traits === null ? null : `the snapshot does not fit this engine: ${traits}`;
}
