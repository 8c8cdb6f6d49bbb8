// Where the page's snapshots come from and where they are kept (see
// shared/snapshot-format.js for what a snapshot holds): the ones shipped with the build
// (dist/snapshot.bin, dist/snapshot-jsc.bin), Cache Storage, memory; and the
// SnapshotSource that plans each worker's boot with them (pool.js).
//
// Where it comes from on a first visit: the build ships them (dist/snapshot.bin for
// Chromium and Firefox, dist/snapshot-jsc.bin for WebKit, made at build time by
// scripts/make-snapshot.mjs in Deno; listed with their sha256 and the engine traits they
// were made with in build-info.json's "snapshots"). With no snapshot in Cache Storage,
// the page fetches the one whose traits are this engine's (engineTraits) as a Blob (it
// may be served compressed) and hands it to the first worker, which reads it, checks its
// sha256 against build-info.json's and its meta against its lock file and its engine
// like any snapshot, and restores it; any failure falls back to a cold boot and the
// next worker makes the page's own snapshot (the boot report says why). The page never
// reads the ~14 MB itself: that would cost its thread long tasks.
//
// Where it lives (page side, never in the worker: the worker runs untrusted code and
// must not be able to write what later workers restore)
//   * in memory, for the page's lifetime;
//   * in Cache Storage (when available: secure contexts), keyed by the Pyodide version
//     and the sha256 of every wheel (dist/build-info.json), so a returning visit skips
//     the cold boot; a changed wheel or Pyodide changes the key; older entries are
//     deleted when a new one is stored. The stored bytes carry their sha256, checked
//     by the worker that restores them (the page hands it the Blob, unread).

import { httpFailure } from "../shared/hints.js";
import {
  SNAPSHOT_FORMAT, SnapshotError, checkSnapshotObject, engineTraits, hex, packSnapshot, snapshotUnsupported,
  traitsMismatch,
} from "../shared/snapshot-format.js";

/** @typedef {import("../shared/snapshot-format.js").Snapshot} Snapshot */
/** @typedef {import("../shared/snapshot-format.js").PackedSnapshot} PackedSnapshot */

const CACHE_NAME = "monty-runtime-snapshots";
const CACHE_PATH = "/.monty-runtime-snapshot/";
const DIGEST_HEADER = "x-monty-snapshot-sha256";
const KEY_HEADER = "x-monty-snapshot-key";


/** Cache Storage is there (secure context) and usable from this context. */
export function cacheStorageAvailable() {
  return typeof globalThis.caches === "object" && globalThis.caches !== null &&
    globalThis.isSecureContext === true;
}

/** The cache key of a build: Pyodide version, every wheel's sha256, our format. */
export function snapshotKey(buildInfo) {
  if (!buildInfo || typeof buildInfo !== "object" || typeof buildInfo.pyodide_version !== "string" ||
      typeof buildInfo.wheel_sha256 !== "string") {
    throw new SnapshotError("build-info.json has no pyodide_version / wheel_sha256");
  }
  const extra = Object.entries(buildInfo.extra_wheels ?? {})
    .map(([name, sha]) => `${name}=${sha}`)
    .sort()
    .join(",");
  return [
    `format=${SNAPSHOT_FORMAT}`,
    `pyodide=${buildInfo.pyodide_version}`,
    `wheel=${buildInfo.wheel_sha256}`,
    `extra=${extra}`,
    `protocol=${buildInfo.protocol_version ?? ""}`,
  ].join(";");
}

function cacheRequestUrl(key) {
  const origin = globalThis.location?.origin ?? "http://localhost";
  return `${origin}${CACHE_PATH}${encodeURIComponent(key)}`;
}

/**
 * Read the stored snapshot (there is at most one per origin), whatever its key: the
 * read can start before the key is known. Resolves to null when there is none, else
 * `{key, digest, blob}`: the bytes stay in a Blob, never read on the page's thread.
 */
export async function readStoredSnapshot() {
  if (!cacheStorageAvailable()) return null;
  const cache = await caches.open(CACHE_NAME);
  const [request] = await cache.keys();
  if (!request) return null;
  const response = await cache.match(request);
  if (!response) return null;
  return {
    key: response.headers.get(KEY_HEADER),
    digest: response.headers.get(DIGEST_HEADER),
    blob: await response.blob(),
  };
}

/** The PackedSnapshot of a stored entry when it is the one for `key`; null for another
 * key; throws SnapshotError when it has no digest (the caller deletes it). The worker
 * checks the digest (readPackedSnapshot): a damaged entry falls back to a cold boot
 * there, and the page deletes it (SnapshotSource.reject). */
export async function checkCachedSnapshot(stored, key) {
  if (stored === null || stored.key !== key) return null;
  if (!stored.digest || !/^[0-9a-f]{64}$/.test(stored.digest)) {
    throw new SnapshotError("the cached snapshot has no digest");
  }
  return { packed: stored.blob, sha256: stored.digest, from: "cached" };
}

/** Read the snapshot stored for `key`; null when absent. Throws SnapshotError when
 * what is stored is damaged (the caller deletes it). */
export async function readCachedSnapshot(key) {
  return checkCachedSnapshot(await readStoredSnapshot(), key);
}

/** Store `snapshot` under `key` and delete every other snapshot of this origin. */
export async function writeCachedSnapshot(key, snapshot) {
  if (!cacheStorageAvailable()) return false;
  const blob = packSnapshot(snapshot);
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const digest = hex(await crypto.subtle.digest("SHA-256", bytes));
  const cache = await caches.open(CACHE_NAME);
  const url = cacheRequestUrl(key);
  for (const request of await cache.keys()) {
    if (request.url !== url) await cache.delete(request);
  }
  await cache.put(url, new Response(bytes, {
    headers: {
      "content-type": "application/octet-stream",
      [DIGEST_HEADER]: digest,
      [KEY_HEADER]: key,
    },
  }));
  return true;
}

/** Delete the stored snapshot of `key` (or every stored snapshot). */
export async function deleteCachedSnapshot(key = undefined) {
  if (!cacheStorageAvailable()) return;
  if (key === undefined) {
    await caches.delete(CACHE_NAME);
    return;
  }
  const cache = await caches.open(CACHE_NAME);
  await cache.delete(cacheRequestUrl(key));
}

// ------------------------------------------------------------------ page side: shipped

// On by default where one fits: the build makes its shipped snapshots in Deno, one as
// Chromium and Firefox boot Pyodide and one as WebKit does, and build-info.json lists
// each with the engine traits it was made with (engineTraits: JSPI, how the engine's
// WebAssembly table hands out functions, Pyodide's call trampoline); Pyodide keeps them
// in the snapshot's memory. The page downloads the one whose traits are its own; where
// none fits, its first worker boots cold and makes the page's own snapshot, and
// rt.boot.reason says why. The worker checks again (snapshotMismatch).
let shippedEnabled = true;

/**
 * Whether a first visit uses a snapshot shipped with the build (default true; one is
 * used only where its engine traits are this engine's, see above). With false, the
 * page's first worker boots cold and makes the snapshot itself (a page on a metered
 * connection may prefer that: the shipped snapshot is a download of its own).
 * Takes effect for snapshot lookups that have not started yet.
 * @param {boolean} enabled
 */
export function useShippedSnapshot(enabled) {
  if (typeof enabled !== "boolean") throw new TypeError("useShippedSnapshot(enabled): enabled must be a boolean");
  shippedEnabled = enabled;
}

const SHIPPED_NAME = /^[A-Za-z0-9._-]+\.bin$/;
const MAX_SHIPPED = 8;

function checkShippedEntry(entry) {
  const optionalBoolean = (value) => value === undefined || typeof value === "boolean";
  if (entry === null || typeof entry !== "object" || typeof entry.file !== "string" ||
      !SHIPPED_NAME.test(entry.file) ||
      typeof entry.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(entry.sha256) ||
      typeof entry.integrity !== "string" || !entry.integrity.startsWith("sha256-") ||
      !optionalBoolean(entry.jspi) || !optionalBoolean(entry.table_identity) ||
      !optionalBoolean(entry.trampoline)) {
    throw new SnapshotError("build-info.json has a malformed entry in \"snapshots\"");
  }
  return entry;
}

/** The `snapshots` of build-info.json, each checked: [{file, sha256, integrity, bytes,
 * made_in, jspi, table_identity, trampoline}] (empty when the build ships none). */
export function shippedSnapshotEntries(buildInfo) {
  const list = buildInfo?.snapshots;
  if (list == null) return [];
  if (!Array.isArray(list) || list.length > MAX_SHIPPED) {
    throw new SnapshotError("build-info.json has a malformed \"snapshots\" list");
  }
  return list.map(checkShippedEntry);
}

/** Why the shipped snapshot `entry` does not fit an engine with `here` (default: this
 * one), or null when it does: it must say whether JSPI was on when it was made, and
 * every trait it records must be the engine's. */
export function shippedSnapshotMismatch(entry, here = engineTraits()) {
  if (typeof entry.jspi !== "boolean") {
    return `build-info.json does not say whether it was made with JSPI (made in ${entry.made_in ?? "?"}: ` +
      "rebuild web/dist)";
  }
  const why = traitsMismatch({ jspi: entry.jspi, tableIdentity: entry.table_identity, trampoline: entry.trampoline },
    here);
  return why === null ? null : `${why} (made in ${entry.made_in ?? "?"})`;
}

/**
 * The shipped snapshot for an engine with `here` (default: this one): the first entry
 * of build-info.json's `snapshots` that fits it; null when the build ships none.
 * Throws SnapshotError saying why each one does not fit.
 */
export function shippedSnapshotFor(buildInfo, here = engineTraits()) {
  const entries = shippedSnapshotEntries(buildInfo);
  if (entries.length === 0) return null;
  const why = [];
  for (const entry of entries) {
    const mismatch = shippedSnapshotMismatch(entry, here);
    if (mismatch === null) return entry;
    why.push(entries.length === 1 ? mismatch : `${entry.file}: ${mismatch}`);
  }
  throw new SnapshotError(why.join("; "));
}

/**
 * Fetch the build's shipped snapshot (next to build-info.json) as a Blob: the page
 * never reads its bytes on its own thread (an ArrayBuffer of ~14 MB, or a Subresource
 * Integrity check, costs the page's thread long tasks in Chromium); the worker checks
 * its sha256 (readPackedSnapshot). Resolves to a PackedSnapshot; throws SnapshotError.
 */
export async function fetchShippedSnapshot(buildInfoURL, entry) {
  const url = new URL(entry.file, buildInfoURL).href;
  let response;
  try {
    response = await fetch(url, { credentials: "same-origin" });
  } catch (err) {
    throw new SnapshotError(`cannot fetch the shipped snapshot ${url}: ${err?.message ?? err}`);
  }
  if (!response.ok) throw new SnapshotError(`HTTP ${response.status} for the shipped snapshot ${url}`);
  const packed = await response.blob();
  if (typeof entry.bytes === "number" && packed.size !== entry.bytes) {
    throw new SnapshotError(`the shipped snapshot ${url} has ${packed.size} bytes, build-info.json says ` +
      `${entry.bytes} (from another build: rebuild and redeploy web/dist together)`);
  }
  return { packed, sha256: entry.sha256, from: "shipped" };
}

/** Store a packed snapshot (the shipped file, a Blob) under `key`. */
async function writeCachedBlob(key, blob, digest) {
  if (!cacheStorageAvailable()) return false;
  const cache = await caches.open(CACHE_NAME);
  const url = cacheRequestUrl(key);
  for (const request of await cache.keys()) {
    if (request.url !== url) await cache.delete(request);
  }
  await cache.put(url, new Response(blob, {
    headers: { "content-type": "application/octet-stream", [DIGEST_HEADER]: digest, [KEY_HEADER]: key },
  }));
  return true;
}

async function fetchBuildInfo(url) {
  const response = await fetch(url, { cache: "no-cache", credentials: "same-origin" });
  if (!response.ok) throw new SnapshotError(`HTTP ${response.status} for ${url}`);
  return response.json();
}

// ------------------------------------------------------------------ page side: assets

const assetCache = new Map();

/**
 * Pyodide's compiled WebAssembly module and its standard library zip, loaded once per
 * page (per Pyodide folder) and handed to every restoring worker (withBootAssets), so
 * that each restore skips fetching (through the page) and compiling ~10 MB. Resolves
 * to null when that is not possible here (e.g. a page CSP without 'wasm-unsafe-eval').
 * @param {string} indexURL the Pyodide folder (with a trailing slash)
 * @returns {Promise<{wasmModule: WebAssembly.Module, files: Record<string, Uint8Array>} | null>}
 */
export function pyodideAssets(indexURL) {
  let promise = assetCache.get(indexURL);
  if (!promise) {
    promise = loadPyodideAssets(indexURL).catch((err) => {
      console.warn(`[monty-runtime] Pyodide is not precompiled in the page: ${err?.message ?? err}`);
      return null;
    });
    assetCache.set(indexURL, promise);
  }
  return promise;
}

async function loadPyodideAssets(indexURL) {
  const wasmURL = new URL("pyodide.asm.wasm", indexURL).href;
  const stdlibURL = new URL("python_stdlib.zip", indexURL).href;
  const get = async (url) => {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) throw new Error(httpFailure(response.status, response.statusText, url));
    return response;
  };
  const compile = async () => {
    const response = await get(wasmURL);
    if (typeof WebAssembly.compileStreaming === "function" &&
        (response.headers.get("Content-Type") ?? "").startsWith("application/wasm")) {
      return WebAssembly.compileStreaming(response);
    }
    return WebAssembly.compile(await response.arrayBuffer());
  };
  const [wasmModule, stdlib] = await Promise.all([
    compile(),
    get(stdlibURL).then((r) => r.arrayBuffer()),
  ]);
  return { wasmModule, files: { [stdlibURL]: new Uint8Array(stdlib) } };
}

// ------------------------------------------------------------------ page side: source

/**
 * Where the workers of one boot configuration (same Pyodide, lock file, packages) get
 * their snapshot. One per configuration per page (see snapshotSource()).
 *
 * `acquire()` tells a worker about to boot what to do:
 *   { snapshot, make: false }  restore `snapshot` (on failure: a cold boot, and reject());
 *   { snapshot: null, make: true }  boot cold and make the snapshot (the first worker);
 *   { snapshot: null, make: false } boot cold (snapshots disabled/unsupported/failed).
 * While the first worker is making it, later workers wait for it rather than boot cold
 * at the same time (on few cores, parallel cold boots are slower than one cold boot
 * followed by restores).
 */
export class SnapshotSource {
  /**
   * @param {{buildInfoURL: string, persist: boolean}} options
   */
  constructor({ buildInfoURL, persist }) {
    this.buildInfoURL = buildInfoURL;
    this.persist = persist;
    /** "unknown" | "looking" | "making" | "ready" | "off" */
    this.state = "unknown";
    this.key = null;
    /** @type {Snapshot | PackedSnapshot | null} */
    this.snapshot = null;
    /** Why snapshots are off here (state "off"), or what went wrong last. */
    this.reason = null;
    /** How the current snapshot was obtained: "made" | "cache" | null. */
    this.origin = null;
    this._lookup = null;
    /** @type {{promise: Promise<void>, resolve: () => void} | null} */
    this._made = null; // {promise, resolve} while a worker is making it
    /** Where the lookup's time went (ms): read (Cache Storage, with build-info.json in
     * parallel) and verify (sha256 of what was read). */
    this.timings = {};
    this._lookupStarted = 0;
    /** @type {Promise<unknown>} */
    this._saving = Promise.resolve();
    /** The shipped snapshot (a PackedSnapshot), until a worker restored it. */
    this._shipped = null;
  }

  _off(reason) {
    this.state = "off";
    this.reason = reason;
    this.snapshot = null;
  }

  async _lookupOnce() {
    // The stored snapshot is read while build-info.json (its key) is fetched.
    const stored = this.persist ? readStoredSnapshot().catch((err) => ({ error: err })) : null;
    let info;
    try {
      info = await fetchBuildInfo(this.buildInfoURL);
      this.key = snapshotKey(info);
    } catch (err) {
      this._off(`build-info.json unavailable: ${err.message ?? err}`);
      return;
    }
    const unsupported = snapshotUnsupported(info.pyodide_version);
    if (unsupported !== null) {
      this._off(unsupported);
      return;
    }
    if (this.persist) {
      try {
        const entry = await stored;
        if (entry && "error" in entry) throw entry.error;
        this.timings.read = performance.now() - this._lookupStarted;
        const cached = await checkCachedSnapshot(entry, this.key);
        if (cached !== null) {
          this.snapshot = cached;
          this.origin = "cache";
          this.state = "ready";
          return;
        }
      } catch (err) {
        this.reason = `cached snapshot discarded: ${err.message ?? err}`;
        deleteCachedSnapshot(this.key).catch(() => {});
      }
    }
    if (shippedEnabled) {
      try {
        const entry = shippedSnapshotFor(info);
        if (entry !== null && typeof globalThis.crypto?.subtle?.digest !== "function") {
          // The worker checks its sha256 with WebCrypto, which only secure contexts have.
          throw new SnapshotError("the shipped snapshot needs a secure context (HTTPS or localhost) " +
            "to check its sha256");
        }
        if (entry !== null) {
          const t0 = performance.now();
          const shipped = await fetchShippedSnapshot(this.buildInfoURL, entry);
          this.timings.shipped = performance.now() - t0;
          this.snapshot = shipped;
          this._shipped = shipped;
          this.origin = "shipped";
          this.state = "ready";
          return;
        }
      } catch (err) {
        const reason = `shipped snapshot not used: ${err.message ?? err}`;
        this.reason = this.reason ? `${this.reason}; ${reason}` : reason;
      }
    }
    this.state = "unknown";
  }

  /**
   * A worker restored `snapshot`. For the shipped one, store it in Cache Storage now
   * (after the boot, not during it), so a returning visit reads it from there.
   */
  confirm(snapshot) {
    const shipped = this._shipped;
    if (!shipped || shipped !== snapshot || this.snapshot !== snapshot) return;
    this._shipped = null;
    if (this.persist && this.key !== null) {
      const key = this.key;
      this._saving = this._saving
        .then(() => writeCachedBlob(key, shipped.packed, shipped.sha256))
        .catch((err) => console.warn(`[monty-runtime] could not store the snapshot: ${err?.message ?? err}`));
    }
  }

  /**
   * @returns {Promise<{snapshot: Snapshot | PackedSnapshot | null, make: boolean, note: string,
   *   problem: string | null, waitedMs: number, lookupMs: number,
   *   lookup?: object | null}>} `note`: "cache", "shipped" (the build's snapshot, a
   *   first visit) or "made" (where the snapshot came from), "make" or "off"; `problem`: what went wrong
   *   before (a damaged cached snapshot, a rejected one, why snapshots are off)
   */
  async acquire() {
    let lookupMs = 0;
    if (!this._lookup && this.key === null && this.state !== "off") {
      this._lookupStarted = performance.now();
      this._lookup = this._lookupOnce().finally(() => {
        this._lookup = null;
      });
    }
    // A lookup in flight is waited for even once it knows the key: until it ends, the
    // state does not say yet whether a stored or shipped snapshot exists, and a worker
    // deciding now would boot cold beside the one about to restore (or make) it.
    if (this._lookup) {
      const t0 = performance.now();
      await this._lookup;
      lookupMs = performance.now() - t0;
    }
    let waitedMs = 0;
    // Wait for the maker; if it gave up without a verdict (stopped, or its boot failed),
    // one of the waiters makes it instead.
    while (this.state === "making") {
      const t0 = performance.now();
      await this._made.promise;
      waitedMs += performance.now() - t0;
    }
    if (this.state === "ready") {
      return { snapshot: this.snapshot, make: false, note: this.origin ?? "ready", problem: null, waitedMs,
               lookupMs, lookup: lookupMs ? { ...this.timings } : null };
    }
    if (this.state === "off") {
      return { snapshot: null, make: false, note: "off", problem: this.reason, waitedMs, lookupMs };
    }
    // No snapshot yet: this worker makes it.
    this.state = "making";
    let resolve;
    const promise = new Promise((r) => {
      resolve = r;
    });
    this._made = { promise, resolve };
    const problem = this.reason;
    this.reason = null;
    return { snapshot: null, make: true, note: "make", problem, waitedMs, lookupMs };
  }

  /**
   * The maker's snapshot arrived, or it could not make one (null + reason): then
   * snapshots are off for this page. With `{retry: true}` (the maker was stopped or
   * failed to boot before it could try) the next worker makes it instead.
   */
  offer(snapshot, reason = null, { retry = false } = {}) {
    const made = this._made;
    this._made = null;
    if (snapshot) {
      try {
        checkSnapshotObject(snapshot);
      } catch (err) {
        snapshot = null;
        reason = `the worker sent a malformed snapshot: ${err.message}`;
      }
    }
    if (snapshot) {
      this.snapshot = snapshot;
      this.origin = "made";
      this.state = "ready";
      this.reason = null;
      if (this.persist && this.key !== null) {
        const key = this.key;
        this._saving = this._saving
          .then(() => writeCachedSnapshot(key, snapshot))
          .catch((err) => console.warn(`[monty-runtime] could not store the snapshot: ${err?.message ?? err}`));
      }
    } else if (this.state === "making" && retry) {
      this.state = "unknown";
    } else if (this.state === "making") {
      // Making failed: later workers boot cold (the reason is in their boot report).
      this._off(reason ?? "the snapshot could not be made");
    }
    made?.resolve();
  }

  /** A worker could not restore `snapshot`: drop it (memory and Cache Storage) so the
   * next worker makes a fresh one; after a second failure snapshots are turned off for
   * this page. A stale call (the snapshot was already replaced) is ignored. */
  reject(snapshot, reason) {
    if (this.state !== "ready" || this.snapshot !== snapshot) return;
    this.rejections = (this.rejections ?? 0) + 1;
    this._shipped = null;
    if (this.persist && this.key !== null) deleteCachedSnapshot(this.key).catch(() => {});
    if (this.rejections >= 2) {
      this._off(`snapshots failed twice, last: ${reason}`);
      return;
    }
    this.snapshot = null;
    this.origin = null;
    this.state = "unknown";
    this.reason = `previous snapshot rejected: ${reason}`;
  }

  /** Resolves once a pending Cache Storage write finished (tests, benchmarks). */
  saved() {
    return this._saving;
  }
}

const sources = new Map();

/**
 * The page's SnapshotSource for the build whose info file is `buildInfoURL`.
 * @param {string} buildInfoURL
 * @param {{persist?: boolean}} [options] persist: false keeps snapshots in memory only
 */
export function snapshotSource(buildInfoURL, { persist = true } = {}) {
  const id = `${buildInfoURL}|${persist}`;
  let source = sources.get(id);
  if (!source) {
    source = new SnapshotSource({ buildInfoURL, persist });
    sources.set(id, source);
  }
  return source;
}

/** Forget every in-memory snapshot of this page (and, with `{cache: true}`, the stored
 * ones). For tests and for a page that wants its memory back. */
export async function clearSnapshots({ cache = false } = {}) {
  sources.clear();
  assetCache.clear();
  if (cache) await deleteCachedSnapshot();
}
