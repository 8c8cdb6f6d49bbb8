// Worker boot chain: Pyodide (from this origin, with our lock file) -> monty-runtime
// wheel -> micropip (installed; imported on first use) -> `import monty_runtime`.
// Or, with a snapshot (snapshot.js): lock file -> restore the snapshot; any failure
// there falls back to the cold chain, and the result says so.
//
// Every step is a small awaited function, timed and reported through
// onPhase(name, ms). A step that fails or takes longer than its timeout rejects with a
// BootError whose message names the step and the cause; nothing waits forever.
// Python source is never assembled from data: modules are imported by name with
// pyodide.pyimport(), values travel as values.

import {
  SNAPSHOT_PRELOAD,
  checkSnapshotObject,
  isPackedSnapshot,
  readPackedSnapshot,
  snapshotMismatch,
  snapshotUnsupported,
} from "../shared/snapshot-format.js";
import {
  afterRestore,
  atInstantiation,
  initialImage,
  makeSnapshot as takeSnapshot,
  restoreFiles,
  restoringMemory,
  withBootAssets,
} from "./snapshot.js";
import { BootError, describe } from "../shared/errors.js";
import { PYODIDE_DIR, RUNTIME_DIR } from "../layout.js";
import { fileHint, httpFailure } from "../shared/hints.js";

export { BootError };

export const DEFAULT_STEP_TIMEOUT_MS = 60_000;

export const STEPS = Object.freeze([
  "lockfile",
  "loadPyodide",
  "loadPackage:monty-runtime",
  "loadPackage:micropip",
  "import:monty_runtime",
]);

/** Steps of a boot from a snapshot (on failure: "snapshot:fallback", then STEPS). */
export const SNAPSHOT_STEPS = Object.freeze(["lockfile", "snapshot:restore", "snapshot:resume"]);

/** A failed boot step as a BootError naming the step and the cause. */
export function stepFailed(step, cause) {
  return new BootError(`boot step "${step}" failed: ${describe(cause)}`, step, { cause });
}

/** Reject with a timeout Error after `ms` unless `promise` settles first. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not finish within ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Run one named step: time it, bound it, and turn any failure into a BootError.
 * @param {string} name
 * @param {() => any} fn
 * @param {{timeoutMs?: number, phases?: Record<string, number>,
 *   onPhase?: (name: string, ms: number) => void}} [options]
 */
export async function runStep(
  name,
  fn,
  { timeoutMs = DEFAULT_STEP_TIMEOUT_MS, phases, onPhase } = {},
) {
  const start = performance.now();
  let value;
  try {
    value = await withTimeout(Promise.resolve().then(fn), timeoutMs, `step "${name}"`);
  } catch (err) {
    throw err instanceof BootError ? err : stepFailed(name, err);
  }
  const ms = performance.now() - start;
  if (phases) phases[name] = ms;
  if (onPhase) {
    try {
      onPhase(name, ms);
    } catch (err) {
      console.warn(`onPhase(${name}) threw`, err);
    }
  }
  return value;
}

function dirOf(url) {
  return new URL(".", url).href;
}

/**
 * Absolute URLs for the boot; defaults come from layout.js.
 * @param {{indexURL?: string, lockFileURL?: string, packageBaseUrl?: string}} [urls]
 * @param {string} [base]
 */
export function resolveUrls(
  { indexURL, lockFileURL, packageBaseUrl } = {},
  base = import.meta.url,
) {
  const index = new URL(indexURL ?? PYODIDE_DIR, base).href;
  const lock = new URL(lockFileURL ?? new URL("dist/pyodide-lock.json", RUNTIME_DIR), base).href;
  const packages = new URL(packageBaseUrl ?? dirOf(lock), base).href;
  return {
    indexURL: index.endsWith("/") ? index : `${index}/`,
    lockFileURL: lock,
    packageBaseUrl: packages.endsWith("/") ? packages : `${packages}/`,
  };
}

/** Fetch and sanity-check the lock file (a clear error instead of a failure deep in Pyodide). */
export async function fetchLockFile(url) {
  const response = await fetch(url, { cache: "no-cache", credentials: "same-origin" });
  if (!response.ok) {
    throw new Error(httpFailure(response.status, response.statusText, url));
  }
  let lock;
  try {
    lock = await response.json();
  } catch (err) {
    throw new Error(`${url} is not valid JSON (${describe(err)})`);
  }
  if (!lock || typeof lock !== "object" || !lock.packages || !lock.info) {
    throw new Error(`${url} is not a Pyodide lock file (no "info"/"packages")`);
  }
  for (const name of ["monty-runtime", "micropip"]) {
    if (!lock.packages[name]) throw new Error(`${url} does not list the package "${name}"`);
  }
  return lock;
}

export async function importPyodideModule(indexURL) {
  const url = new URL("pyodide.mjs", indexURL).href;
  let module;
  try {
    module = await import(url);
  } catch (err) {
    throw new Error(`cannot import ${url} (${describe(err)}): ${fileHint(url)}`, { cause: err });
  }
  if (typeof module.loadPyodide !== "function") {
    throw new Error(`${indexURL}pyodide.mjs does not export loadPyodide`);
  }
  return module;
}

/** loadPackage() reports most failures through errorCallback, not by rejecting. */
export async function loadPackageStrict(pyodide, name, from = "") {
  const errors = [];
  const loaded = await pyodide.loadPackage(name, {
    messageCallback: () => {},
    errorCallback: (message) => errors.push(message),
  });
  if (errors.length) {
    const text = errors.join(" ").replace(/\s+/g, " ").trim();
    const hint = /\b404\b|not found|failed to fetch/i.test(text)
      ? `: the wheels are in the lock file's folder; ${fileHint(`${from}pyodide-lock.json`)}`
      : "";
    throw new Error((from ? `${text} (packages from ${from})` : text) + hint);
  }
  if (!Array.isArray(loaded) || !loaded.some((pkg) => pkg && pkg.name === name)) {
    if (!(name in (pyodide.loadedPackages ?? {}))) {
      throw new Error(`package "${name}" was not loaded`);
    }
  }
  return loaded;
}

/** Import a Python module by name (no source code involved); returns a PyProxy. */
export function pyImport(pyodide, name) {
  return pyodide.pyimport(name);
}

/**
 * Boot Pyodide with monty_runtime in this (worker) context.
 *
 * @param {object} options
 * @param {string} [options.indexURL] folder of pyodide.mjs (default ./node_modules/pyodide/)
 * @param {string} [options.lockFileURL] our lock file (default ./dist/pyodide-lock.json)
 * @param {string} [options.packageBaseUrl] base for relative wheel names (default: the
 *   lock file's folder)
 * @param {(name: string, ms: number) => void} [options.onPhase] called after each step
 * @param {number} [options.timeoutMs] per-step timeout (default 60 s)
 * @param {boolean} [options.montyRuntime] load and import monty_runtime (default true);
 *   false gives a bare Pyodide (lockfile + loadPyodide only)
 * @param {boolean} [options.importMicropip] also import micropip during the boot
 *   (default false: it is installed, and imported on first use)
 * @param {object | null} [options.snapshot] a snapshot (snapshot.js) to restore instead
 *   of booting cold; if it does not fit or fails, the cold chain runs instead
 * @param {boolean} [options.makeSnapshot] after a cold boot, take a snapshot (returned
 *   as `snapshot.made`; a failure is reported, not thrown)
 * @param {object | null} [options.assets] Pyodide's compiled module and stdlib from the
 *   page (snapshot.js pyodideAssets), used instead of fetching and compiling them
 * @param {Promise<{snapshot?: object | null, makeSnapshot?: boolean, assets?: object | null}> | null}
 *   [options.plan] the three options above, when the page sends them later: the lock
 *   file and Pyodide's scripts load meanwhile (the wait is the phase "plan:wait")
 * @param {(text: string) => void} [options.stdout]
 * @param {(text: string) => void} [options.stderr]
 * @returns {Promise<{pyodide: any, phases: Record<string, number>, urls: object,
 *   snapshot: {status: "none" | "restored" | "fallback" | "made" | "make-failed",
 *   reason: string | null, made: object | null}}>}
 */
export async function boot(options = {}) {
  let early = null;
  if (options.plan != null) {
    // How to boot (snapshot, assets) comes later: the page may be downloading the
    // snapshot. Meanwhile, fetch the lock file and load Pyodide's scripts.
    early = startEarly(resolveUrls(options));
    const plan = await runStep("plan:wait", () => options.plan, {
      timeoutMs: options.timeoutMs ?? DEFAULT_STEP_TIMEOUT_MS,
      onPhase: options.onPhase,
    });
    options = { ...options, ...plan, plan: null };
  }
  return withBootAssets(options.assets ?? null, () => bootChain(options, early));
}

/**
 * The parts of a boot that need no plan, started at once: the lock file and Pyodide's
 * two scripts (a later import of the same URL takes the loaded module; a failure here
 * is reported by the step that needs it).
 */
function startEarly(urls) {
  const lock = fetchLockFile(urls.lockFileURL);
  lock.catch(() => {});
  for (const name of ["pyodide.mjs", "pyodide.asm.mjs"]) {
    import(new URL(name, urls.indexURL).href).catch(() => {});
  }
  return { lock };
}

/**
 * @param {any} options boot()'s options
 * @param {{lock: Promise<any>} | null} early what startEarly() began
 */
async function bootChain({
  indexURL,
  lockFileURL,
  packageBaseUrl,
  onPhase,
  timeoutMs = DEFAULT_STEP_TIMEOUT_MS,
  montyRuntime = true,
  importMicropip = false,
  snapshot = null,
  makeSnapshot = false,
  stdout,
  stderr,
} = {}, early = null) {
  const urls = resolveUrls({ indexURL, lockFileURL, packageBaseUrl });
  /** @type {Record<string, number>} */
  const phases = {};
  const step = (name, fn) => runStep(name, fn, { timeoutMs, phases, onPhase });
  const report = { status: "none", reason: null, made: null };
  const options = (extra) => ({
    indexURL: urls.indexURL,
    lockFileContents: lock,
    packageBaseUrl: urls.packageBaseUrl,
    checkAPIVersion: true,
    ...(stdout ? { stdout } : {}),
    ...(stderr ? { stderr } : {}),
    ...extra,
  });

  const lock = await step("lockfile", () => early?.lock ?? fetchLockFile(urls.lockFileURL));

  if (snapshot !== null && montyRuntime) {
    const restored = await restoreSnapshot(snapshot, { urls, lock, options, phases, onPhase, timeoutMs });
    if (restored.pyodide) {
      report.status = "restored";
      return { pyodide: restored.pyodide, phases, urls, snapshot: report };
    }
    report.status = "fallback";
    report.reason = restored.reason;
  }

  let make = makeSnapshot && montyRuntime;
  /** @type {Uint8Array | null} */
  let image = null;
  const pyodide = await step("loadPyodide", async () => {
    const module = await importPyodideModule(urls.indexURL);
    if (make && snapshotUnsupported(module.version) !== null) {
      report.status = "make-failed";
      report.reason = snapshotUnsupported(module.version);
      make = false;
    }
    try {
      if (!make) return await module.loadPyodide(options());
      // The memory as instantiated: the snapshot stores its start as a delta against it.
      return await atInstantiation(() => module.loadPyodide(options({ _makeSnapshot: true })), (memory) => {
        image = initialImage(memory);
      });
    } catch (err) {
      // A missing pyodide.asm.wasm / python_stdlib.zip surfaces here: say where it was
      // looked for and what provides it.
      const text = describe(err);
      if (!/\b404\b|not found|failed to fetch|HTTP/i.test(text)) throw err;
      throw new Error(`${text} (Pyodide folder ${urls.indexURL}): ${fileHint(`${urls.indexURL}pyodide.asm.wasm`)}`,
        { cause: err });
    }
  });

  if (montyRuntime) {
    const base = urls.packageBaseUrl;
    await step("loadPackage:monty-runtime", () =>
      loadPackageStrict(pyodide, "monty-runtime", base),
    );
    await step("loadPackage:micropip", () => loadPackageStrict(pyodide, "micropip", base));
    if (importMicropip) {
      await step("import:micropip", () => {
        pyImport(pyodide, "micropip").destroy();
      });
    }
    await step("import:monty_runtime", () => {
      pyImport(pyodide, "monty_runtime").destroy();
    });
  }
  if (make) {
    try {
      report.made = await step("snapshot:make", () => {
        for (const name of SNAPSHOT_PRELOAD) pyImport(pyodide, name).destroy();
        const check = pyImport(pyodide, "monty_runtime._snapshot");
        let problem;
        try {
          problem = check.check_clean();
        } finally {
          check.destroy();
        }
        if (typeof problem === "string") throw new Error(problem);
        return takeSnapshot(pyodide, lock, image);
      });
      if (report.status !== "fallback") report.status = "made";
    } catch (err) {
      report.status = report.status === "fallback" ? "fallback" : "make-failed";
      report.reason ??= describe(err.cause ?? err);
    }
  }
  return { pyodide, phases, urls, snapshot: report };
}

/**
 * Try to bring up Pyodide from `snapshot`; never throws. Resolves with `{pyodide}` or
 * with `{pyodide: null, reason}` (the time spent is recorded as "snapshot:fallback").
 */
async function restoreSnapshot(snapshot, { urls, lock, options, phases, onPhase, timeoutMs }) {
  const started = performance.now();
  const step = (name, fn) => runStep(name, fn, { timeoutMs, phases, onPhase });
  try {
    if (isPackedSnapshot(snapshot)) {
      // The shipped snapshot, as a Blob: read and checked here, off the page's thread.
      snapshot = await step("snapshot:read", () => readPackedSnapshot(snapshot));
    }
    const pyodide = await step("snapshot:restore", async () => {
      checkSnapshotObject(snapshot);
      const module = await importPyodideModule(urls.indexURL);
      const problem = snapshotUnsupported(module.version) ??
        snapshotMismatch(snapshot.meta, lock, module.version);
      if (problem !== null) throw new Error(problem);
      return restoringMemory(snapshot, () => module.loadPyodide(options({
        _loadSnapshot: snapshot.pyodide,
        fsInit: restoreFiles(snapshot),
      })));
    });
    await step("snapshot:resume", () => afterRestore(pyodide));
    return { pyodide };
  } catch (err) {
    const ms = performance.now() - started;
    phases["snapshot:fallback"] = ms;
    if (onPhase) {
      try {
        onPhase("snapshot:fallback", ms);
      } catch (err) {
        console.warn("onPhase(snapshot:fallback) threw", err);
      }
    }
    return { pyodide: null, reason: describe(err?.cause ?? err) };
  }
}
