// Making and restoring a memory snapshot, in the worker (see shared/snapshot-format.js
// for what a snapshot holds and how it is checked). The worker never stores one: the
// page keeps them (page/snapshot.js), since the worker runs untrusted code.

import { SNAPSHOT_FORMAT, SNAPSHOT_PRELOAD, SnapshotError, jspiAvailable, lockPackages } from "../shared/snapshot-format.js";

function mtimeMs(stat) {
  const m = stat.mtime;
  if (m instanceof Date) return m.getTime();
  return typeof m === "number" ? m : 0;
}

/** Every file under `dir` of Pyodide's file system: [[path, bytes, mtimeMs, mode]]. */
function collectFiles(FS, dir) {
  const out = [];
  const walk = (folder) => {
    for (const name of FS.readdir(folder)) {
      if (name === "." || name === "..") continue;
      const path = `${folder}/${name}`;
      const stat = FS.stat(path);
      if (FS.isDir(stat.mode)) walk(path);
      else if (FS.isFile(stat.mode)) out.push([path, FS.readFile(path), mtimeMs(stat), stat.mode]);
    }
  };
  walk(dir);
  return out;
}

/**
 * Take the snapshot of a worker booted with `_makeSnapshot: true`, at a point with no
 * page-specific state. Returns a Snapshot (its parts are fresh buffers, transferable).
 */
export function makeSnapshot(pyodide, lock) {
  if (typeof pyodide.makeMemorySnapshot !== "function") {
    throw new SnapshotError("this Pyodide has no makeMemorySnapshot()");
  }
  const sitePackages = pyodide._api?.sitePackages;
  if (typeof sitePackages !== "string") throw new SnapshotError("cannot find site-packages");
  const files = collectFiles(pyodide.FS, sitePackages);
  // Pyodide expects its loadedPackages table empty in a snapshot (it is rebuilt from
  // site-packages after a restore): empty it for the moment of the snapshot.
  const loaded = pyodide.loadedPackages;
  const saved = { ...loaded };
  for (const name of Object.keys(saved)) delete loaded[name];
  let bytes;
  try {
    bytes = pyodide.makeMemorySnapshot();
  } finally {
    Object.assign(loaded, saved);
  }
  const total = files.reduce((n, f) => n + f[1].length, 0);
  const data = new Uint8Array(total);
  let offset = 0;
  for (const f of files) {
    data.set(f[1], offset);
    offset += f[1].length;
  }
  const meta = {
    format: SNAPSHOT_FORMAT,
    pyodideVersion: pyodide.version,
    packages: lockPackages(lock),
    sitePackages,
    files: files.map(([path, b, mtime, mode]) => [path, b.length, mtime, mode]),
    preload: [...SNAPSHOT_PRELOAD],
    // What Pyodide found at boot (kept in its memory): see jspiAvailable().
    jspi: typeof pyodide._module?.jspiSupported === "boolean" ? pyodide._module.jspiSupported : jspiAvailable(),
    created: Date.now(),
  };
  return { meta, files: data, pyodide: bytes };
}

/** An `fsInit` for loadPyodide that writes the snapshot's files back. */
export function restoreFiles(snapshot) {
  return (FS) => {
    let offset = 0;
    const made = new Set();
    for (const [path, length, mtime, mode] of snapshot.meta.files) {
      const dir = path.slice(0, path.lastIndexOf("/"));
      if (!made.has(dir)) {
        FS.mkdirTree(dir);
        made.add(dir);
      }
      FS.writeFile(path, snapshot.files.subarray(offset, offset + length));
      offset += length;
      if (typeof mode === "number") FS.chmod(path, mode);
      if (mtime) FS.utime(path, mtime, mtime);
    }
  };
}

/** Python-side steps after a restore (reseed `random`, relink Pyodide's package table). */
export function afterRestore(pyodide) {
  const mod = pyodide.pyimport("monty_runtime._snapshot");
  try {
    const problem = mod.after_restore();
    if (typeof problem === "string" && problem) throw new SnapshotError(problem);
  } finally {
    mod.destroy();
  }
}

/**
 * Run `fn` (a boot) with Pyodide's two big files served from `assets` (sent by the
 * page): `fetch` of a URL in `assets.files` answers with those bytes, and the
 * instantiation of pyodide.asm.wasm uses the page's compiled `assets.wasmModule`
 * instead of fetching and compiling it again. Both are put back when `fn` settles.
 * Without assets (or a module), `fn` runs as is.
 */
export async function withBootAssets(assets, fn) {
  if (!assets || typeof assets !== "object") return fn();
  const files = assets.files && typeof assets.files === "object" ? assets.files : {};
  const module = assets.wasmModule instanceof WebAssembly.Module ? assets.wasmModule : null;
  const scope = globalThis;
  const fetchBefore = Object.getOwnPropertyDescriptor(scope, "fetch");
  const streamingBefore = WebAssembly.instantiateStreaming;
  const inner = scope.fetch;
  const urlOf = (input) => (input instanceof Request ? input.url : new URL(String(input), scope.location?.href).href);
  Object.defineProperty(scope, "fetch", {
    configurable: true,
    writable: true,
    value: (input, init) => {
      let url;
      try {
        url = urlOf(input);
      } catch {
        return inner(input, init);
      }
      const bytes = files[url];
      if (bytes instanceof Uint8Array) {
        return Promise.resolve(new Response(bytes.slice(), { headers: { "Content-Type": "application/octet-stream" } }));
      }
      if (module !== null && url.endsWith("/pyodide.asm.wasm")) {
        // Not needed: the instantiation below uses the page's compiled module.
        return Promise.resolve(new Response(new Uint8Array(0), { headers: { "Content-Type": "application/wasm" } }));
      }
      return inner(input, init);
    },
  });
  if (module !== null) {
    /** @type {any} */ (WebAssembly).instantiateStreaming = async (_source, imports) => {
      const instance = await WebAssembly.instantiate(module, imports);
      return { instance, module };
    };
  }
  try {
    return await fn();
  } finally {
    WebAssembly.instantiateStreaming = streamingBefore;
    if (fetchBefore) Object.defineProperty(scope, "fetch", fetchBefore);
    else delete scope.fetch;
  }
}
