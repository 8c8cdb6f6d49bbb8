// Worker boot chain: Pyodide (from this origin, with our lock file) -> monty-runtime
// wheel -> micropip -> `import monty_runtime`.
//
// Every step is a small awaited function, timed and reported through
// onPhase(name, ms). A step that fails or takes longer than its timeout rejects with a
// BootError whose message names the step and the cause; nothing waits forever.
// Python source is never assembled from data: modules are imported by name with
// pyodide.pyimport(), values travel as values.

export const DEFAULT_STEP_TIMEOUT_MS = 60_000;

export const STEPS = Object.freeze([
  "lockfile",
  "loadPyodide",
  "loadPackage:monty-runtime",
  "loadPackage:micropip",
  "import:micropip",
  "import:monty_runtime",
]);

export class BootError extends Error {
  constructor(step, cause) {
    super(`boot step "${step}" failed: ${describe(cause)}`, { cause });
    this.name = "BootError";
    this.step = step;
  }

  toJSON() {
    return { name: this.name, step: this.step, message: this.message };
  }
}

export function describe(cause) {
  if (cause instanceof Error) {
    const text = cause.message || String(cause);
    return cause.name && cause.name !== "Error" ? `${cause.name}: ${text}` : text;
  }
  return String(cause);
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

/** Run one named step: time it, bound it, and turn any failure into a BootError. */
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
    throw err instanceof BootError ? err : new BootError(name, err);
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

/** Absolute URLs for the boot; defaults are relative to this module (the web root). */
export function resolveUrls(
  { indexURL, lockFileURL, packageBaseUrl } = {},
  base = import.meta.url,
) {
  const index = new URL(indexURL ?? "./node_modules/pyodide/", base).href;
  const lock = new URL(lockFileURL ?? "./dist/pyodide-lock.json", base).href;
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
    throw new Error(`HTTP ${response.status} ${response.statusText} for ${url}`);
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
  const module = await import(new URL("pyodide.mjs", indexURL).href);
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
    throw new Error(from ? `${text} (packages from ${from})` : text);
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
 * @param {(text: string) => void} [options.stdout]
 * @param {(text: string) => void} [options.stderr]
 * @returns {Promise<{pyodide: any, phases: Record<string, number>, urls: object}>}
 */
export async function boot({
  indexURL,
  lockFileURL,
  packageBaseUrl,
  onPhase,
  timeoutMs = DEFAULT_STEP_TIMEOUT_MS,
  montyRuntime = true,
  stdout,
  stderr,
} = {}) {
  const urls = resolveUrls({ indexURL, lockFileURL, packageBaseUrl });
  const phases = {};
  const step = (name, fn) => runStep(name, fn, { timeoutMs, phases, onPhase });

  const lock = await step("lockfile", () => fetchLockFile(urls.lockFileURL));

  const pyodide = await step("loadPyodide", async () => {
    const { loadPyodide } = await importPyodideModule(urls.indexURL);
    return loadPyodide({
      indexURL: urls.indexURL,
      lockFileContents: lock,
      packageBaseUrl: urls.packageBaseUrl,
      checkAPIVersion: true,
      ...(stdout ? { stdout } : {}),
      ...(stderr ? { stderr } : {}),
    });
  });

  if (montyRuntime) {
    const base = urls.packageBaseUrl;
    await step("loadPackage:monty-runtime", () =>
      loadPackageStrict(pyodide, "monty-runtime", base),
    );
    await step("loadPackage:micropip", () => loadPackageStrict(pyodide, "micropip", base));
    await step("import:micropip", () => {
      pyImport(pyodide, "micropip").destroy();
    });
    await step("import:monty_runtime", () => {
      pyImport(pyodide, "monty_runtime").destroy();
    });
  }
  return { pyodide, phases, urls };
}
