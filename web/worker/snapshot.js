// Making and restoring a memory snapshot, in the worker (see shared/snapshot-format.js
// for what a snapshot holds and how it is checked). The worker never stores one: the
// page keeps them (page/snapshot.js), since the worker runs untrusted code.

import {
  SNAPSHOT_FORMAT, SNAPSHOT_PRELOAD, SnapshotError, jspiAvailable, lockPackages, pyodideTrampoline, wasmTableIdentity,
} from "../shared/snapshot-format.js";

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

// ------------------------------------------------------------------ the memory's delta
//
// The first ~3.8 MB of a snapshot's memory are mostly Pyodide's data segments, exactly
// as instantiating its WebAssembly module writes them: 1.2 MB of a compressed download
// that the restoring worker can make itself. So a snapshot stores the start of its
// memory XORed with that image (`meta.memoryXor` bytes of it): the unchanged bytes
// become zeros, which compress to almost nothing, and the restoring worker, which
// instantiates the same module, XORs them back before Pyodide copies the memory in.

/**
 * Run `fn`; `onMemory(memory)` gets the exported memory of the first WebAssembly module
 * instantiated meanwhile, right after its instantiation, before any of its code has
 * run (both instantiation entry points are wrapped while `fn` runs).
 * @template T
 * @param {() => Promise<T>} fn
 * @param {(memory: WebAssembly.Memory) => void} onMemory
 * @returns {Promise<T>}
 */
export async function atInstantiation(fn, onMemory) {
  const wasm = /** @type {any} */ (WebAssembly);
  const { instantiate, instantiateStreaming } = wasm;
  let seen = false;
  const look = (result) => {
    const instance = result instanceof WebAssembly.Instance ? result : result?.instance;
    const memory = instance?.exports?.memory;
    if (!seen && memory instanceof WebAssembly.Memory) {
      seen = true;
      onMemory(memory);
    }
    return result;
  };
  wasm.instantiate = function (...args) {
    return instantiate.apply(this, args).then(look);
  };
  if (typeof instantiateStreaming === "function") {
    wasm.instantiateStreaming = function (...args) {
      return instantiateStreaming.apply(this, args).then(look);
    };
  }
  try {
    return await fn();
  } finally {
    wasm.instantiate = instantiate;
    if (typeof instantiateStreaming === "function") wasm.instantiateStreaming = instantiateStreaming;
  }
}

/** A copy of a just-instantiated module's memory up to its last non-zero word. */
export function initialImage(memory) {
  const words = new Uint32Array(memory.buffer);
  let end = words.length;
  while (end > 0 && words[end - 1] === 0) end--;
  return new Uint8Array(memory.buffer.slice(0, end * 4));
}

/**
 * XOR `image` into the memory part of Pyodide's own snapshot `pyodide` (in place): once
 * to encode, once more to decode. Pyodide's snapshot: a header whose second 32-bit word
 * is the offset of the memory, then the memory.
 * @param {Uint8Array} pyodide
 * @param {Uint8Array} image
 */
export function xorMemory(pyodide, image) {
  if (pyodide.length < 16 || image.length % 4 !== 0) throw new SnapshotError("cannot apply the memory's delta");
  const at = new DataView(pyodide.buffer, pyodide.byteOffset, 16).getUint32(4, true);
  if (at + image.length > pyodide.length) {
    throw new SnapshotError("the snapshot's memory is shorter than its delta");
  }
  const start = pyodide.byteOffset + at;
  if (start % 4 === 0 && image.byteOffset % 4 === 0) {
    const target = new Uint32Array(pyodide.buffer, start, image.length / 4);
    const source = new Uint32Array(image.buffer, image.byteOffset, image.length / 4);
    for (let i = 0; i < target.length; i++) target[i] ^= source[i];
  } else {
    const target = pyodide.subarray(at, at + image.length);
    for (let i = 0; i < target.length; i++) target[i] ^= image[i];
  }
}

/**
 * Run `load` (a loadPyodide() restoring `snapshot`) so that the snapshot's memory is
 * decoded from the module's freshly instantiated memory before Pyodide reads it. Until
 * then the snapshot's magic number is cleared, so a restore that did not decode it is
 * refused by Pyodide itself, never run. Throws SnapshotError when it could not be
 * decoded (the restore then falls back to a cold boot).
 * @template T
 * @param {{meta: any, pyodide: Uint8Array}} snapshot
 * @param {() => Promise<T>} load
 * @returns {Promise<T>}
 */
export async function restoringMemory(snapshot, load) {
  const length = snapshot.meta.memoryXor;
  if (!length) return load();
  const { pyodide } = snapshot;
  if (pyodide.length < 16) throw new SnapshotError("the snapshot's memory part is too short");
  const head = new DataView(pyodide.buffer, pyodide.byteOffset, 4);
  const magic = head.getUint32(0, true);
  head.setUint32(0, 0, true);
  let problem = "Pyodide's module was not instantiated as expected";
  const decode = (memory) => {
    if (memory.buffer.byteLength < length) {
      problem = "Pyodide's memory is smaller than the snapshot's delta";
      return;
    }
    try {
      xorMemory(pyodide, new Uint8Array(memory.buffer, 0, length));
    } catch (err) {
      problem = err.message;
      return;
    }
    head.setUint32(0, magic, true);
    problem = null;
  };
  try {
    return await atInstantiation(load, decode);
  } catch (err) {
    if (problem !== null) throw new SnapshotError(`cannot restore the snapshot's memory: ${problem}`, { cause: err });
    throw err;
  }
}

/**
 * Take the snapshot of a worker booted with `_makeSnapshot: true`, at a point with no
 * page-specific state. `image`: its memory right after instantiation (initialImage),
 * stored as a delta against (see above); null stores the memory as it is. Returns a
 * Snapshot (its parts are fresh buffers, transferable).
 */
export function makeSnapshot(pyodide, lock, image = null) {
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
  if (image !== null && image.length) xorMemory(bytes, image);
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
    memoryXor: image?.length ?? 0,
    // What Pyodide found at boot (kept in its memory): see engineTraits().
    jspi: typeof pyodide._module?.jspiSupported === "boolean" ? pyodide._module.jspiSupported : jspiAvailable(),
    tableIdentity: wasmTableIdentity(),
    trampoline: pyodideTrampoline(),
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
