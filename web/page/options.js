/**
 * The options of the page library, checked before anything is sent: `create()`'s
 * (CreateOptions below; the boot options are also the key of the pre-warmed pool,
 * pool.js), `execute()`'s code, limits and inputs, and the host functions (names by
 * shared/names.js, parameters from their schema or their source). Every check throws
 * a TypeError or RangeError that names the option.
 * @module page/options
 */

import { dumps } from "../shared/codec.js";
import { messageLimitFor } from "./control.js";
import { functionNameProblem, isIdentifier } from "../shared/names.js";
import { PYODIDE_DIR, RUNTIME_DIR } from "../layout.js";

/** Code longer than this (UTF-8 bytes) is refused, as by the Python bridge. */
export const MAX_CODE_BYTES = 1_000_000;

export const DISPOSED_MESSAGE = "MontyRuntime has been disposed";
export const DEFAULT_BOOT_TIMEOUT_MS = 120_000;
/** How long an idle worker may take to start an execute before it is replaced (ms). */
export const DEFAULT_ACK_TIMEOUT_MS = 2_000;
export const LIMIT_KEYS = {
  timeout: "timeout",
  grace: "grace",
  maxOutputBytes: "max_output_bytes",
  max_output_bytes: "max_output_bytes",
  maxResultBytes: "max_result_bytes",
  max_result_bytes: "max_result_bytes",
  maxRecursionDepth: "max_recursion_depth",
  max_recursion_depth: "max_recursion_depth",
  memory: "memory",
};
/** The smallest limits.memory accepted (as Limits.MIN_MEMORY natively); a worker's own
 * floor (its heap after boot) is checked by the worker (memory-cap.js). */
export const MIN_MEMORY = 16 * 2 ** 20;
export const SYNC_MODES = ["auto", "jspi", "atomics", "none"];
/** Isolated mode: workers kept booted for the next executions (poolSize overrides). */
export const DEFAULT_ISOLATED_WARM = 2;
export const CREATE_TOKEN = Symbol("MontyRuntime.create");

/** UTF-8 length of `s` as Python's `s.encode("utf-8", "replace")` counts it. */
function utf8Length(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 1; // a lone surrogate becomes "?"
    } else if (c >= 0xdc00 && c <= 0xdfff) n += 1;
    else n += 3;
  }
  return n;
}

/** Throw what the Python bridge's check_code would raise, before anything is sent. */
export function checkCode(code) {
  if (typeof code !== "string") {
    throw new TypeError(`code must be a str, got ${code === null ? "null" : typeof code}`);
  }
  if (code.length > MAX_CODE_BYTES / 3 && utf8Length(code) > MAX_CODE_BYTES) {
    throw new RangeError(`code is over the limit of ${MAX_CODE_BYTES} bytes`);
  }
}

/**
 * execute()'s `inputs` as the JSON text of their wire form. A plain object whose keys
 * are Python identifiers, as natively; anything else is a TypeError at the call.
 */
export function encodeInputs(inputs) {
  const proto = typeof inputs === "object" ? Object.getPrototypeOf(inputs) : undefined;
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError("inputs must be a plain object whose keys are Python identifiers");
  }
  for (const key of Object.keys(inputs)) {
    if (!isIdentifier(key)) {
      throw new TypeError(`inputs must be a plain object whose keys are Python identifiers, got key ${JSON.stringify(key).slice(0, 60)}`);
    }
  }
  return dumps(inputs);
}

/** Whether workers get a message gate by default (dispatch.js): in a web page, yes; a
 * host without a page to protect (the Deno host) receives its workers' messages itself. */
export function messageGateByDefault() {
  return typeof document !== "undefined";
}

/** The failure-handling options of create() (see CreateOptions). */
export function normalizeFailureOptions(options, limits) {
  const { heartbeatTimeoutMs, lockWatch, maxMessageBytes } = options;
  if (heartbeatTimeoutMs != null && !(typeof heartbeatTimeoutMs === "number" && heartbeatTimeoutMs >= 0)) {
    throw new TypeError("heartbeatTimeoutMs must be a non-negative number");
  }
  if (lockWatch != null && typeof lockWatch !== "boolean") throw new TypeError("lockWatch must be a boolean");
  if (maxMessageBytes != null && !(typeof maxMessageBytes === "number" && maxMessageBytes > 0)) {
    throw new TypeError("maxMessageBytes must be a positive number");
  }
  const { ackTimeoutMs, messageGate } = options;
  if (messageGate != null && typeof messageGate !== "boolean") throw new TypeError("messageGate must be a boolean");
  if (ackTimeoutMs != null && !(typeof ackTimeoutMs === "number" && ackTimeoutMs >= 0)) {
    throw new TypeError("ackTimeoutMs must be a non-negative number");
  }
  return {
    ackTimeoutMs: ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS,
    heartbeatTimeoutMs: heartbeatTimeoutMs ?? null,
    lockWatch: lockWatch ?? true,
    maxMessageBytes: maxMessageBytes ?? messageLimitFor(limits),
    maxMessageFixed: maxMessageBytes != null,
    messageGate: messageGate ?? messageGateByDefault(),
  };
}

export function normalizeLimits(limits, where) {
  if (limits == null) return null;
  if (typeof limits !== "object" || Array.isArray(limits)) {
    throw new TypeError(`${where} must be an object, got ${typeof limits}`);
  }
  const out = {};
  for (const [key, value] of Object.entries(limits)) {
    const name = Object.hasOwn(LIMIT_KEYS, key) ? LIMIT_KEYS[key] : null;
    if (name === null) throw new TypeError(`unknown limit: ${key}`);
    if (value !== null && typeof value !== "number") {
      throw new TypeError(`limit ${key} must be a number, got ${typeof value}`);
    }
    if (name === "memory" && value !== null && !(Number.isSafeInteger(value) && value >= MIN_MEMORY)) {
      throw new RangeError(`limit memory must be an integer number of bytes, at least ${MIN_MEMORY} (16 MiB), got ${value}`);
    }
    out[name] = value;
  }
  return out;
}

/**
 * Parameters of a JS function from its source, when they are plain names: `(city,
 * units) => ...` gives {city: {}, units: {}}, all required. Anything fancier (defaults,
 * destructuring, rest, comments, native code) gives null: any arguments are accepted
 * and keyword arguments arrive as a trailing object.
 */
function inferParameters(fn) {
  let src;
  try {
    src = Function.prototype.toString.call(fn);
  } catch {
    return null;
  }
  if (src.includes("[native code]")) return null;
  let list = null;
  let m = /^(?:async\s+)?([A-Za-z_$][\w$]*)\s*=>/.exec(src);
  if (m) list = m[1];
  else {
    m = /^(?:async\s*)?(?:function\b\s*\*?\s*[\w$]*\s*|\*?\s*[\w$]+\s*)?\(([^)]*)\)/.exec(src);
    if (m) list = m[1];
  }
  if (list === null) return null;
  const names = list.trim() === "" ? [] : list.split(",").map((p) => p.trim());
  if (!names.every(isIdentifier) || new Set(names).size !== names.length) return null;
  const properties = {};
  for (const name of names) properties[name] = {};
  return names.length
    ? { type: "object", properties, required: names }
    : { type: "object", properties };
}

export function normalizeFunctions(functions) {
  /** @type {Map<string, {fn: Function, names: string[] | null, parameters: object | null}>} */
  const table = new Map();
  const schemas = [];
  if (functions == null) return { table, schemas };
  if (typeof functions !== "object" || Array.isArray(functions)) {
    throw new TypeError("functions must be an object: { name: fn | { fn, description, parameters } }");
  }
  const problem = functionNameProblem(Object.keys(functions));
  if (problem !== null) throw new TypeError(problem);
  for (const [name, entry] of Object.entries(functions)) {
    const fn = typeof entry === "function" ? entry : entry?.fn;
    if (typeof fn !== "function") throw new TypeError(`host function ${name} is not a function`);
    let parameters = typeof entry === "function" ? undefined : entry.parameters;
    if (parameters === undefined) parameters = inferParameters(fn);
    if (parameters !== null && (typeof parameters !== "object" || Array.isArray(parameters))) {
      throw new TypeError(`parameters of ${name} must be a JSON Schema object`);
    }
    const description = typeof entry === "function" ? "" : String(entry.description ?? "");
    const names = parameters === null ? null : Object.keys(parameters.properties ?? {});
    table.set(name, { fn, names, parameters });
    schemas.push({ name, description, parameters });
  }
  return { table, schemas };
}

/**
 * @typedef {object} CreateOptions
 * @property {Record<string, Function | {fn: Function, description?: string,
 *   parameters?: object | null}>} [functions] host functions callable from the code
 * @property {boolean | "isolated"} [sandbox] true: a fresh REPL per execute, on a pool
 *   of workers (one interpreter per worker, shared by the executions on it);
 *   "isolated": every execute in a worker no other execution used, terminated after
 *   it (taken from the warm pool, which is kept `poolSize` deep, default 2)
 * @property {object} [limits] {timeout, maxOutputBytes, maxResultBytes, memory,
 *   maxRecursionDepth, grace} (snake_case accepted too)
 * @property {number} [poolSize] sandbox pool size (default navigator.hardwareConcurrency)
 * @property {string | URL} [workerURL] default: worker.js next to this module
 * @property {number} [bootTimeoutMs] default 120000
 * @property {string | URL} [indexURL] folder of pyodide.mjs
 * @property {string | URL} [lockFileURL] our pyodide-lock.json
 * @property {string | URL} [packageBaseUrl] base of the wheels (default: the lock file's folder)
 * @property {"auto" | "jspi" | "atomics" | "none"} [sync] how sync-style host calls
 *   block (default "auto": JSPI, else Atomics when cross-origin isolated, else refuse)
 * @property {boolean} [requireCSP] default true: a worker whose script is not served
 *   with the worker Content-Security-Policy (no string evaluation, no connections)
 *   refuses to boot (BootError, step "csp"); false runs it anyway (`info.env.csp` says)
 * @property {boolean | "memory"} [snapshot] warm start (default true): the first worker
 *   boots cold and makes a memory snapshot, later workers restore it; kept in memory
 *   and in Cache Storage (keyed by the Pyodide version and the wheels' sha256), so a
 *   returning visit skips the cold boot. "memory": this page only; false: always cold.
 *   Any snapshot failure falls back to a cold boot (`boot.snapshot === "fallback"`).
 * @property {boolean} [pool] take a pre-warmed worker (MontyRuntime.prewarm) when
 *   there is one for these boot options (default true)
 * @property {string | URL} [buildInfoURL] the build's build-info.json (default: next
 *   to the lock file), whose versions and hashes key the stored snapshot
 * @property {boolean} [lockWatch] watch each worker through a Web Lock it holds while
 *   it lives (default true where navigator.locks exists): its death, even a silent
 *   `js.close()`, rejects the pending calls at once with WorkerCrashed
 * @property {number} [heartbeatTimeoutMs] declare a worker dead after this many ms
 *   without a sign of life while an execution is pending (0: off; default 0 with the
 *   lock watch, else 5000 when cross-origin isolated, else 0)
 * @property {number} [maxMessageBytes] largest worker message accepted (characters of
 *   JSON text; default from the limits, at least 1 MiB); a larger one cuts the worker off
 * @property {boolean} [messageGate] each worker posts to a gate thread of its own
 *   (web/page/gate.js), which checks and parses its messages before the page's main
 *   thread sees them (default: true in a web page, false elsewhere, e.g. the Deno host)
 * @property {number} [ackTimeoutMs] an idle worker that has not started an execution
 *   this many ms after it was sent is replaced, and the execution runs on a fresh
 *   worker (`sessionLost`); default 2000, 0: off
 */

const SNAPSHOT_MODES = [true, false, "memory"];

/** The options that decide how a worker boots, checked and made absolute (they are
 * also the key of the pre-warmed pool, pool.js). */
export function normalizeBootOptions(options) {
  const base = globalThis.location?.href;
  const url = (value) => (value == null ? undefined : new URL(String(value), base).href);
  const bootTimeoutMs = options.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS;
  if (typeof bootTimeoutMs !== "number" || !(bootTimeoutMs > 0)) {
    throw new TypeError("bootTimeoutMs must be a positive number");
  }
  if (options.requireCSP != null && typeof options.requireCSP !== "boolean") {
    throw new TypeError("requireCSP must be a boolean");
  }
  const snapshot = options.snapshot ?? true;
  if (!SNAPSHOT_MODES.includes(snapshot)) throw new TypeError('snapshot must be true, false or "memory"');
  if (options.pool != null && typeof options.pool !== "boolean") throw new TypeError("pool must be a boolean");
  const lockFileURL = url(options.lockFileURL);
  return {
    workerURL: url(options.workerURL) ?? new URL("worker.js", RUNTIME_DIR).href,
    bootTimeoutMs,
    indexURL: url(options.indexURL) ?? PYODIDE_DIR,
    lockFileURL,
    packageBaseUrl: url(options.packageBaseUrl),
    requireCSP: options.requireCSP ?? true,
    snapshot,
    buildInfoURL: url(options.buildInfoURL) ??
      new URL("build-info.json", lockFileURL ?? new URL("dist/pyodide-lock.json", RUNTIME_DIR)).href,
    pool: options.pool ?? true,
  };
}
