/**
 * MontyRuntime, the page's handle on one runtime: it checks the options (options.js),
 * holds the busy guard (guard.js) and the runtime's workers (worker-host.js: one in
 * shared mode, a pool with `sandbox: true`, a fresh one per execution when
 * "isolated"), and hands each `execute()` to one of them. The contract is in
 * ../monty-runtime.js, the public entry that re-exports this module.
 * @module page/runtime
 */

import { BUSY_MESSAGE, BootError, StateError } from "../shared/errors.js";
import { SYNC_BUFFER } from "../shared/protocol.js";
import { NOT_ISOLATED_WARNING } from "../shared/hints.js";
import { messageLimitFor } from "./control.js";
import { EventStream, ExecutionHandle } from "./execution.js";
import { BusyGuard } from "./guard.js";
import {
  CREATE_TOKEN, DEFAULT_ISOLATED_WARM, DISPOSED_MESSAGE, SYNC_MODES, checkCode, encodeInputs,
  normalizeBootOptions, normalizeFailureOptions, normalizeFunctions, normalizeLimits,
} from "./options.js";
import { poolFor } from "./pool.js";
import { clearSnapshots } from "./snapshot.js";
import { WorkerHost } from "./worker-host.js";

/** @typedef {import("./options.js").CreateOptions} CreateOptions */
/** @typedef {import("./execution.js").ExecutionResult} ExecutionResult */

export { BootError, ProtocolError, StateError, WorkerCrashed } from "../shared/errors.js";
export { MAX_CODE_BYTES } from "./options.js";
export { EventStream };

/** Isolated mode: keep the warm pool of these boot options at least `poolSize` deep, so
 * that each execution's fresh worker is one that has booted already (pool.js). */
function keepWarm(opts) {
  const pool = poolFor(opts, true);
  if (pool !== null && pool.target < opts.warm) {
    pool.prewarm(opts.warm).catch((err) => {
      console.warn(`[monty-runtime] the warm pool for isolated executions failed: ${err?.message ?? err}`);
    });
  }
}

let isolationWarned = false;
/** Once per page: a page that is not cross-origin isolated is told what it loses. */
function warnIfNotIsolated() {
  if (isolationWarned || globalThis.crossOriginIsolated === true) return;
  isolationWarned = true;
  console.warn(NOT_ISOLATED_WARNING);
}

/**
 * A stateful Python runtime in a Web Worker. Create it with `await MontyRuntime.create()`.
 */
export class MontyRuntime {
  /**
   * Start a runtime and wait until its (first) worker is ready.
   * @param {CreateOptions} [options]
   * @returns {Promise<MontyRuntime>}
   * @throws {BootError} the worker failed to boot (bad lock file URL, timeout, ...)
   * @throws {TypeError} bad options
   */
  static async create(options = {}) {
    warnIfNotIsolated();
    const rt = new MontyRuntime(options, CREATE_TOKEN);
    try {
      await rt._first;
    } catch (err) {
      rt._disposeNow();
      throw err;
    }
    return rt;
  }

  /**
   * Keep `n` workers booted for runtimes created later with the same boot options
   * (workerURL, indexURL, lockFileURL, packageBaseUrl, bootTimeoutMs, requireCSP,
   * snapshot, buildInfoURL), so that `create()` only has to configure one (host
   * functions, mode and limits are per runtime and are sent then). The pool refills in
   * the background; a worker handed out never returns to it. `prewarm(0, options)`
   * terminates the idle workers and stops refilling.
   * @param {number} n
   * @param {CreateOptions} [options] only the boot options count
   * @returns {Promise<{target: number, idle: number, booting: number, failures: number}>}
   *   resolves once `n` workers are ready; rejects with BootError when boots keep failing
   */
  static async prewarm(n = 1, options = {}) {
    if (!Number.isInteger(n) || n < 0) throw new TypeError("prewarm(n): n must be a non-negative integer");
    if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
    const pool = poolFor(normalizeBootOptions(options), n > 0);
    if (pool === null) return { target: 0, idle: 0, booting: 0, failures: 0 };
    if (n === 0) {
      pool.drain();
      return pool.stats();
    }
    try {
      return await pool.prewarm(n);
    } catch (err) {
      throw new BootError(`pre-warmed workers failed to boot: ${err?.message ?? err}`, String(err?.step ?? "unknown"));
    }
  }

  /**
   * Forget the snapshots this page holds in memory, and with `{ cache: true }` the
   * ones stored in Cache Storage too (the next worker boots cold and makes a new one).
   * @param {{cache?: boolean}} [options]
   * @returns {Promise<void>}
   */
  static clearSnapshots(options = {}) {
    return clearSnapshots(options);
  }

  /** @private Use `MontyRuntime.create()`. */
  constructor(options, token) {
    if (token !== CREATE_TOKEN) throw new TypeError("use `await MontyRuntime.create(options)`");
    if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
    const boot = normalizeBootOptions(options);
    const { table, schemas } = normalizeFunctions(options.functions);
    const sync = options.sync ?? "auto";
    if (!SYNC_MODES.includes(sync)) throw new TypeError(`sync must be one of ${SYNC_MODES.join(", ")}`);
    const pool = options.poolSize ?? (globalThis.navigator?.hardwareConcurrency || 1);
    if (!Number.isInteger(pool) || pool < 1) throw new TypeError("poolSize must be a positive integer");
    const limits = normalizeLimits(options.limits, "limits");
    if (![undefined, null, true, false, "isolated"].includes(options.sandbox)) {
      throw new TypeError('sandbox must be true, false or "isolated"');
    }
    const isolated = options.sandbox === "isolated";
    this._options = {
      sandbox: Boolean(options.sandbox),
      isolated,
      warm: isolated ? options.poolSize ?? DEFAULT_ISOLATED_WARM : 0,
      limits,
      poolSize: Math.max(1, pool),
      sync,
      syncBufferBytes: options.syncBufferBytes ?? SYNC_BUFFER.DEFAULT_BYTES,
      ...boot,
      ...normalizeFailureOptions(options, limits),
    };
    this._functions = table;
    this._schemas = schemas;
    /** @type {WorkerHost[]} */
    this._hosts = [];
    this._nextId = 1;
    this._spawned = 0;
    this._disposed = false;
    this._listeners = new Set();
    this._sessionLost = false;
    this._protocolErrors = 0; // worker messages refused (control.js checkWorkerMessage)
    this._guard = new BusyGuard();
    this._first = this._spawn().ready;
    if (isolated && this._options.pool) keepWarm(this._options);
  }

  /** True for a sandbox-mode runtime, "isolated" for an isolated one. @type {boolean | "isolated"} */
  get sandbox() {
    return this._options.isolated ? "isolated" : this._options.sandbox;
  }

  /** True once dispose() was called. @type {boolean} */
  get disposed() {
    return this._disposed;
  }

  /** Boot phases (ms) and environment of the first worker (isolated: of the last one
   * that booted). */
  get info() {
    return this._hosts[0]?.info ?? this._lastInfo ?? null;
  }

  /**
   * How the first worker came up and where the time went: `{mode: "cold" | "snapshot",
   * snapshot, reason, pooled, totalMs, phases: [{name, ms, where, background?}]}`
   * (see BootReport in monty-runtime.d.ts); null until it is ready.
   */
  get boot() {
    return this.info?.boot ?? null;
  }

  /** The schemas ({name, description, parameters}) the worker checks calls against. */
  get schemas() {
    return this._schemas.map((s) => structuredClone(s));
  }

  /** Number of workers currently alive (booting or ready). */
  get workerCount() {
    return this._hosts.length;
  }

  _spawn() {
    const host = new WorkerHost(this, `monty-${++this._spawned}`);
    if (this._sessionLost) {
      host.sessionLost = true;
      this._sessionLost = false;
    }
    this._hosts.push(host);
    host.start();
    return host;
  }

  /**
   * `host` is gone. Shared mode: the next result says sessionLost (unless `lost` is
   * false: the result that caused it said so already), and a worker that had booted is
   * replaced at once, so the next execute finds a fresh one booting or ready.
   */
  _hostDied(host, lost = true) {
    const index = this._hosts.indexOf(host);
    if (index >= 0) this._hosts.splice(index, 1);
    if (this._options.sandbox || host.state !== "dead" || host.info === null) return;
    if (lost) this._sessionLost = true;
    if (!this._disposed && this._hosts.length === 0) this._spawn();
  }

  _pick() {
    const hosts = this._hosts;
    if (this._options.isolated) {
      // A worker no execution has used (the one create() booted, else a fresh one).
      return hosts.find((h) => !h.used && h.state !== "dead") ?? this._spawn();
    }
    if (!this._options.sandbox) return hosts[0] ?? this._spawn();
    let best = null;
    for (const host of hosts) {
      if (best === null || host.pending.size < best.pending.size) best = host;
    }
    if (best === null || (best.pending.size > 0 && hosts.length < this._options.poolSize)) {
      return this._spawn();
    }
    return best;
  }

  /**
   * Run `code`; returns at once. `result` resolves to the ExecutionResult (a Python
   * exception in the code is `result.error`, not a rejection) and rejects with
   * StateError("Bridge is already executing") when another execution is still running
   * on this (shared-mode) runtime, with WorkerCrashed when the worker died, and with
   * StateError("MontyRuntime has been disposed") on dispose().
   * @param {string} code
   * `options.inputs` binds names in the REPL before the code runs (a plain object whose
   * keys are Python identifiers; values cross with the codec, as results do).
   * @param {{limits?: object, scriptName?: string, inputs?: Record<string, unknown>}} [options]
   * @returns {{executionId: string | null, events: EventStream, result: Promise<ExecutionResult>,
   *   interrupt(): void}}
   * @throws {TypeError} code is not a string; options, scriptName or inputs malformed
   * @throws {RangeError} code is over MAX_CODE_BYTES
   * @throws {StateError} the runtime is disposed
   */
  execute(code, options = undefined) {
    checkCode(code);
    if (this._disposed) throw new StateError(DISPOSED_MESSAGE, "disposed");
    const message = { type: "execute", id: this._nextId++, code };
    if (options != null) {
      if (typeof options !== "object") throw new TypeError("options must be an object");
      if (options.limits != null) message.limits = normalizeLimits(options.limits, "options.limits");
      if (options.scriptName != null) {
        if (typeof options.scriptName !== "string") throw new TypeError("scriptName must be a string");
        message.scriptName = options.scriptName;
      }
      if (options.inputs != null) message.inputs = encodeInputs(options.inputs);
    }
    const handle = new ExecutionHandle(message.id, this);
    if (!this._options.sandbox && !this._guard.acquire(handle)) {
      // Refused before anything is sent: the code never reaches the worker.
      handle._finish(null, new StateError(BUSY_MESSAGE, "busy"));
      return handle;
    }
    const host = this._pick();
    if (message.limits != null && !this._options.maxMessageFixed) {
      host.maxMessageChars = Math.max(host.maxMessageChars, messageLimitFor(message.limits));
    }
    if (this._options.isolated) this._isolate(host, handle);
    host.send(handle, message);
    return handle;
  }

  /** Isolated mode: `host` runs this one execution, and is thrown away after it. */
  _isolate(host, handle) {
    host.used = true;
    const done = () => {
      if (host.info !== null) this._lastInfo = host.info;
      host.kill(new StateError("the isolated worker was discarded after its execution", "disposed"));
      this._hostDied(host);
    };
    handle.result.then(done, done);
  }

  /**
   * Raise KeyboardInterrupt in the running code. Cross-origin isolated: it lands
   * between two bytecodes, even in a tight loop (Pyodide's interrupt buffer); the
   * result has `error.type === "KeyboardInterrupt"` and the globals are kept. Code
   * that awaits (a host call, asyncio.sleep) is interrupted the same way without
   * isolation. Code that does not stop within `limits.grace` seconds (default 1) --
   * CPU-bound code on a page that is not cross-origin isolated, a long time.sleep, a
   * C-level loop -- is stopped by terminating the worker: the result is a
   * KeyboardInterrupt with `sessionLost: true` and the next execute runs on a fresh
   * worker (globals gone).
   */
  interrupt() {
    for (const host of [...this._hosts]) {
      try {
        host.interrupt();
      } catch (err) {
        // never let one worker keep the others running: cut it off instead
        host._died(`the worker could not be interrupted: ${err?.message ?? err}`);
      }
    }
  }

  /**
   * Subscribe to every execution's events (returns an unsubscribe function).
   * @param {(event: object) => void} listener
   * @returns {() => void}
   */
  onEvent(listener) {
    this._listeners.add(listener);
    return () => this._listeners.delete(listener);
  }

  _broadcast(event) {
    for (const listener of this._listeners) {
      try {
        listener(event);
      } catch (err) {
        console.error("monty-runtime event listener failed", err);
      }
    }
  }

  _orphanRejection(msg) {
    console.warn(`[monty-runtime] the worker refused a message: ${msg.error?.name}: ${msg.error?.message}`);
  }

  /**
   * Post a raw protocol message to the (first) worker and wait for the reply that
   * carries its id. For diagnostics and tests of the protocol.
   * @param {object} message
   * @param {number} [timeoutMs]
   * @returns {Promise<any>}
   */
  async _sendRaw(message, timeoutMs = 10_000) {
    const host = this._hosts[0];
    if (!host) throw new StateError(DISPOSED_MESSAGE, "disposed");
    await host.ready;
    const id = message?.id;
    const handle = new ExecutionHandle(id, this);
    if (typeof id === "number") host.pending.set(id, handle);
    host.worker.postMessage(message);
    const timer = new Promise((_, reject) =>
      setTimeout(() => reject(new Error(`no reply within ${timeoutMs} ms`)), timeoutMs));
    try {
      return await Promise.race([handle.result, timer]);
    } finally {
      host.pending.delete(id);
    }
  }

  _disposeNow() {
    this._disposed = true;
    const error = new StateError(DISPOSED_MESSAGE, "disposed");
    for (const host of this._hosts.splice(0)) host.kill(error);
    this._listeners.clear();
  }

  /**
   * Dispose the runtime (idempotent): terminates its workers; pending results reject
   * with StateError("MontyRuntime has been disposed"); later execute() throws it.
   * @returns {Promise<void>}
   */
  async dispose() {
    if (this._disposed) return;
    this._disposeNow();
  }
}
