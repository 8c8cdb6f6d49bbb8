/**
 * monty-runtime in the browser: a stateful Python runtime for LLM tool calls, running
 * in Pyodide inside one Web Worker per runtime.
 *
 * ```js
 * import { MontyRuntime, StateError } from "./monty-runtime.js";
 * const rt = await MontyRuntime.create({
 *   functions: { get_weather: async (city) => ({ city, t: 21 }) },
 * });
 * const h = rt.execute("x = 1\nx + 1");
 * for await (const ev of h.events) console.log(ev.type);
 * const res = await h.result;          // { value: 2, stdout: "", error: null, ... }
 * await rt.dispose();
 * ```
 *
 * The contract is the Python bridge's, unchanged: one `execute()` per runtime at a
 * time; an `execute()` made while an earlier one of the same runtime has not yet
 * delivered its result rejects its `result` with `StateError("Bridge is already
 * executing")` at once, whatever the timing, and its code is never sent (the page
 * decides: BusyGuard). The runtime does not queue. `sandbox: true`
 * spreads executions over a pool of workers, each in a fresh REPL, so parallel calls
 * work and no state persists.
 *
 * Failure handling (control.js; README "Failure handling"): interrupts and timeouts
 * land between bytecodes when cross-origin isolated, and code that does not stop is
 * stopped by replacing the worker (the result says `sessionLost`); a worker that dies
 * rejects its pending calls with WorkerCrashed and is replaced.
 *
 * The page trusts no message from a worker: JSON text within a size limit, known
 * message types and field types, request and call ids it issued, registered function
 * names only, arguments that pass the function's schema, and no more characters per
 * execution than its limits allow. A worker that breaks any of these is cut off
 * (terminated: its pending results reject with WorkerCrashed, and a shared runtime
 * continues on a fresh worker with `sessionLost`). Nothing read from shared memory is
 * trusted either (control.js, the sync host-call buffer).
 * ES module, no bundler needed.
 * @module monty-runtime
 */

import { serveBootFetches } from "./boot-fetch.js";
import { decode, dumps, encode } from "./codec.js";
import { BUSY_MESSAGE, BootError, ProtocolError, StateError, WorkerCrashed, errorFromWorker } from "./errors.js";
import {
  ControlChannel, DEFAULT_GRACE_S, DEFAULT_HEARTBEAT_MS, GATE_CHARS, Gate,
  MAX_BATCH, MAX_LOG_CHARS, NODE_CHARS, ProtocolLog, Supervisor, checkWorkerMessage, countNodes,
  locksAvailable, messageLimitFor, newLockName, nodeLimitFor, parseWorkerData, watchLock,
} from "./control.js";
import { checkCall } from "./schema.js";
import { PROTOCOL_VERSION, SYNC_BUFFER } from "./protocol.js";
import { PYODIDE_DIR, RUNTIME_DIR } from "./layout.js";
import { functionNameProblem, isIdentifier } from "./names.js";
import { NOT_ISOLATED_WARNING, diagnoseWorkerScript, httpFailure } from "./hints.js";
import { bootPlan, bootReport, offerSnapshot, planFields, poolFor, settlePlan } from "./pool.js";
import { clearSnapshots } from "./snapshot.js";

/** Code longer than this (UTF-8 bytes) is refused, as by the Python bridge. */
export { BootError, ProtocolError, StateError, WorkerCrashed } from "./errors.js";

export const MAX_CODE_BYTES = 1_000_000;

const DISPOSED_MESSAGE = "MontyRuntime has been disposed";
const DEFAULT_BOOT_TIMEOUT_MS = 120_000;
/** How long an idle worker may take to start an execute before it is replaced (ms). */
const DEFAULT_ACK_TIMEOUT_MS = 2_000;
/** Extra wait when the page itself was too busy to check the acknowledgement in time. */
const ACK_SLACK_MS = 250;
/** How many times one execution may be moved to a fresh worker before it fails. */
const MAX_MOVES = 2;
const LIMIT_KEYS = {
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
const MIN_MEMORY = 16 * 2 ** 20;
const SYNC_MODES = ["auto", "jspi", "atomics", "none"];
/** Isolated mode: workers kept booted for the next executions (poolSize overrides). */
const DEFAULT_ISOLATED_WARM = 2;
const CREATE_TOKEN = Symbol("MontyRuntime.create");

// ---------------------------------------------------------------------- small helpers

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
function checkCode(code) {
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
function encodeInputs(inputs) {
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

/** The failure-handling options of create() (see CreateOptions). */
function normalizeFailureOptions(options, limits) {
  const { heartbeatTimeoutMs, lockWatch, maxMessageBytes } = options;
  if (heartbeatTimeoutMs != null && !(typeof heartbeatTimeoutMs === "number" && heartbeatTimeoutMs >= 0)) {
    throw new TypeError("heartbeatTimeoutMs must be a non-negative number");
  }
  if (lockWatch != null && typeof lockWatch !== "boolean") throw new TypeError("lockWatch must be a boolean");
  if (maxMessageBytes != null && !(typeof maxMessageBytes === "number" && maxMessageBytes > 0)) {
    throw new TypeError("maxMessageBytes must be a positive number");
  }
  const { ackTimeoutMs } = options;
  if (ackTimeoutMs != null && !(typeof ackTimeoutMs === "number" && ackTimeoutMs >= 0)) {
    throw new TypeError("ackTimeoutMs must be a non-negative number");
  }
  return {
    ackTimeoutMs: ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS,
    heartbeatTimeoutMs: heartbeatTimeoutMs ?? null,
    lockWatch: lockWatch ?? true,
    maxMessageBytes: maxMessageBytes ?? messageLimitFor(limits),
    maxMessageFixed: maxMessageBytes != null,
  };
}

function normalizeLimits(limits, where) {
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

function normalizeFunctions(functions) {
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

function errorInfo(err) {
  if (err instanceof Error || (err && typeof err === "object" && "message" in err)) {
    const type = typeof err.name === "string" && err.name ? err.name : "Error";
    return { type, message: String(err.message ?? "") };
  }
  return { type: "Error", message: String(err) };
}

// ----------------------------------------------------------------------------- events

/**
 * An async iterable of one execution's events (the same dicts as the native
 * backend's `event.to_dict()`), ending after `run_finished` / `run_error` or when the
 * execution is refused. Single consumer. When the consumer lags, adjacent `print`
 * events of one stream are merged (the text is exact).
 * @implements {AsyncIterable<object>}
 */
export class EventStream {
  constructor() {
    this._buffer = [];
    this._closed = false;
    this._waiter = null;
  }

  /** @param {object} event */
  _push(event) {
    if (this._closed) return;
    const buf = this._buffer;
    const last = buf.length ? buf[buf.length - 1] : null;
    if (last && event.type === "print" && last.type === "print" && last.stream === event.stream) {
      buf[buf.length - 1] = { ...last, text: last.text + event.text };
    } else {
      buf.push(event);
    }
    this._wake();
  }

  _close() {
    this._closed = true;
    this._wake();
  }

  _wake() {
    const waiter = this._waiter;
    if (waiter !== null) {
      this._waiter = null;
      waiter();
    }
  }

  /** @returns {AsyncIterator<object>} */
  [Symbol.asyncIterator]() {
    return {
      next: async () => {
        while (this._buffer.length === 0) {
          if (this._closed) return { value: undefined, done: true };
          await new Promise((resolve) => {
            this._waiter = resolve;
          });
        }
        return { value: this._buffer.shift(), done: false };
      },
      return: async () => {
        this._buffer.length = 0;
        this._closed = true;
        return { value: undefined, done: true };
      },
    };
  }

  /** Everything buffered now (non-blocking). @returns {object[]} */
  drain() {
    return this._buffer.splice(0);
  }
}

/**
 * What `execute()` returns at once.
 */
class ExecutionHandle {
  constructor(id, runtime) {
    /** The page's request id. @type {number} */
    this.id = id;
    /** The worker's execution id ("ex-N"), known once `run_started` arrived. @type {string | null} */
    this.executionId = null;
    /** @type {EventStream} */
    this.events = new EventStream();
    /** @type {Promise<ExecutionResult>} */
    this.result = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    // A caller that reads only the events must not get "unhandled rejection" noise.
    this.result.catch(() => {});
    this._runtime = runtime;
    this._host = null;
    this._settled = false;
    this._timer = null;
    this._timers = []; // timeout / interrupt fallbacks (control.js Supervisor)
    this._execute = false; // an execute (not a raw protocol message)
    /** @type {any} the limits it was sent with (WorkerHost.send) */
    this._limits = undefined;
    this._interrupted = false;
    this._postedAt = performance.now();
    this._output = { stdout: [], stderr: [] }; // for a result the page has to write itself
    this._message = null; // the execute message, kept to re-post it on a fresh worker
    this._acked = false; // the worker has spoken for it (run_started, a host call)
    this._ackTimer = null;
    this._moves = 0; // times it was moved to a fresh worker before it started
    this._onSettle = null; // the runtime's busy guard lets go here
  }

  /** Raise KeyboardInterrupt in this execution's code, if it is still running. */
  interrupt() {
    if (!this._settled && this._host !== null) this._host.interrupt(this.id);
  }

  _event(event) {
    if (this._settled) return;
    this._ack();
    if (event.type === "run_started" && typeof event.execution_id === "string") {
      this.executionId = event.execution_id;
    } else if (event.type === "print") {
      this._output[event.stream].push(event.text);
    }
    this.events._push(event);
  }

  /** The worker started this execution (its first event or host call arrived). */
  _ack() {
    this._acked = true;
    if (this._ackTimer !== null) {
      clearTimeout(this._ackTimer);
      this._ackTimer = null;
    }
  }

  _finish(result, error) {
    if (this._settled) return;
    this._settled = true;
    // Released before the result is delivered: code awaiting it may execute at once.
    const onSettle = this._onSettle;
    this._onSettle = null;
    onSettle?.(this);
    if (this._ackTimer !== null) clearTimeout(this._ackTimer);
    if (this._timer !== null) clearTimeout(this._timer);
    for (const timer of this._timers) clearTimeout(timer);
    this._timers.length = 0;
    this._output = null;
    this.events._close();
    if (error) this._reject(error);
    else this._resolve(result);
  }
}

/**
 * @typedef {object} ExecutionResult
 * @property {any} value the value of the last expression (decoded; null if none)
 * @property {string} stdout
 * @property {string} stderr
 * @property {{type: string, message: string, traceback: string, lineno: number | null,
 *   filename: string | null} | null} error the Python exception of the code, if any
 * @property {boolean} sessionLost the REPL had to be replaced (its globals are gone)
 * @property {boolean} session_lost same as sessionLost
 * @property {string} executionId
 * @property {number} durationMs
 */

// ------------------------------------------------------------------------ busy guard

/**
 * "One execution at a time" for a shared runtime, decided by the page alone.
 *
 * `acquire(handle)` is false while another execution of the runtime has not delivered
 * its result: from the moment `execute()` accepted it, through booting, running, host
 * calls, interrupts and timeouts, until its `result` settles (the guard lets go in
 * ExecutionHandle#_finish, just before the result is delivered, so code that awaits
 * the result may execute at once). The refused call gets
 * StateError("Bridge is already executing") and its code is never sent.
 *
 * Why the page and not the worker's Python bridge: the page sees every `execute()` in
 * the order the caller made them and knows what it sent and what came back, whereas a
 * worker hears of a second execute only after it has read the first (a message waits
 * in its queue while it runs), and everything in the worker -- the bridge's flag
 * included -- can be rewritten by the code it runs. The bridge keeps its own guard
 * (natively it is the only one); the page never sends it a second execute, and a
 * worker that refuses one as busy when the page knew of nothing running is replaced
 * (WorkerHost#_move).
 */
class BusyGuard {
  constructor() {
    /** @type {ExecutionHandle | null} */
    this.holder = null;
  }

  /** @param {ExecutionHandle} handle @returns {boolean} */
  acquire(handle) {
    if (this.holder !== null) return false;
    this.holder = handle;
    handle._onSettle = (h) => {
      if (this.holder === h) this.holder = null;
    };
    return true;
  }
}

// ----------------------------------------------------------------------------- worker

/** One Web Worker and everything in flight on it. */
class WorkerHost {
  constructor(runtime, label) {
    this.runtime = runtime;
    this.label = label;
    /** @type {Map<number, ExecutionHandle>} */
    this.pending = new Map();
    /** @type {Map<number, {execution: number, sync: boolean}>} host calls being answered */
    this.calls = new Map();
    /** Executions interrupted while their synchronous host_call was still on its way. */
    this.interruptedSync = new Set();
    this.state = "booting"; // booting -> ready -> dead
    this.info = null;
    this.sessionLost = false;
    this.used = false; // isolated mode: an execution was sent to it
    this.syncBuffer = null;
    this._syncChain = Promise.resolve();
    this._boot = null;
    this.worker = null;
    this._plan = null; // how this worker boots (pool.js bootPlan)
    this._pooled = null; // the pre-warmed worker this host took, if any
    this._startedAt = 0;
    // Failure handling (control.js): the control channel (cross-origin isolated
    // pages), the Web Lock the worker holds while it lives, the timers, and the
    // refusal of malformed worker messages.
    const opts = runtime._options;
    this.control = ControlChannel.available ? new ControlChannel() : null;
    if (this.control !== null) this.control.onPoisoned = (why) => this._died(why);
    this._syncWrites = 0; // answers queued for the sync buffer, not yet written
    this._inbox = []; // messages waiting behind a large one being parsed by the gate
    this._gate = null; // control.js Gate, started at the first large message
    this._refunded = false; // the message being dispatched paid for a host call already
    this.lockName = opts.lockWatch && locksAvailable() ? newLockName() : null;
    this._unwatch = null;
    this.supervisor = new Supervisor(this, { heartbeatTimeoutMs: opts.heartbeatTimeoutMs ?? 0 });
    this.protocolLog = new ProtocolLog(label);
    this.maxMessageChars = opts.maxMessageBytes;
  }

  /** Fields of `init` / `configure` for the control channel and the life lock. */
  _controlFields() {
    const fields = {};
    if (this.control !== null) fields.controlBuffer = this.control.buffer;
    if (this.lockName !== null) fields.lockName = this.lockName;
    return fields;
  }

  /** Start the worker; resolves when it is ready, rejects with BootError. */
  start() {
    const opts = this.runtime._options;
    this._boot = new Promise((resolve, reject) => {
      this._bootResolve = resolve;
      this._bootReject = reject;
    });
    this._boot.catch(() => {});
    this._startedAt = performance.now();
    const pooled = opts.pool ? poolFor(opts)?.take() ?? null : null;
    if (pooled !== null) return this._adopt(pooled);
    let worker;
    try {
      worker = new Worker(opts.workerURL, { type: "module", name: this.label });
    } catch (err) {
      this._bootFailed(new BootError(`cannot start the worker: ${err?.message ?? err}`, "worker", { cause: err }));
      return this._boot;
    }
    this.worker = worker;
    worker.onmessage = (event) => this._onMessage(event.data);
    worker.onerror = (event) => {
      event.preventDefault?.();
      const where = event.filename ? ` (${event.filename}:${event.lineno})` : "";
      if (event.message) this._died(`the worker reported an uncaught error: ${event.message}${where}`);
      else diagnoseWorkerScript(opts.workerURL).then((why) => this._died(`the worker failed: ${why}`));
    };
    worker.onmessageerror = () => this._died("a worker message could not be deserialized");
    if (opts.sync !== "none" && opts.sync !== "jspi" && globalThis.crossOriginIsolated === true &&
        typeof SharedArrayBuffer === "function") {
      this.syncBuffer = new SharedArrayBuffer(opts.syncBufferBytes);
      this._i32 = new Int32Array(this.syncBuffer);
      this._u8 = new Uint8Array(this.syncBuffer);
    }
    // The worker has no network (connect-src 'none'): during its boot the page fetches
    // what it asks for (Pyodide, the lock file, the wheels) through this channel, which
    // closes before any code runs (boot-fetch.js).
    const channel = new MessageChannel();
    this._bootFetch = serveBootFetches(channel.port1, {
      allowed: [opts.workerURL, opts.indexURL, opts.lockFileURL, opts.packageBaseUrl],
      // A Pyodide file that is not there would leave Pyodide waiting: fail the boot now.
      // (A missing lock file or wheel is reported by the worker's own step.)
      onMissing: (url, status, text) => {
        if (opts.indexURL && url.startsWith(opts.indexURL)) {
          this._bootFailed(new BootError(`boot step "loadPyodide" failed: ${httpFailure(status, text, url)}`, "loadPyodide"));
        }
      },
    });
    const init = {
      type: "init",
      version: PROTOCOL_VERSION,
      functions: this.runtime._schemas,
      sandbox: opts.sandbox,
      limits: opts.limits,
      sync: opts.sync,
      indexURL: opts.indexURL,
      lockFileURL: opts.lockFileURL,
      packageBaseUrl: opts.packageBaseUrl,
      stepTimeoutMs: opts.bootTimeoutMs,
      syncBuffer: this.syncBuffer,
      requireCSP: opts.requireCSP,
      bootPort: channel.port2,
      ...this._controlFields(),
    };
    // Restore the page's snapshot, or boot cold and make it (snapshot.js, pool.js).
    bootPlan(opts).then((plan) => {
      this._plan = plan;
      if (this.state !== "booting") {
        settlePlan(plan, null, "the worker was stopped before it booted");
        return;
      }
      worker.postMessage({ ...init, ...planFields(plan) }, [channel.port2]);
    });
    this._bootTimer = setTimeout(() => {
      this._bootFailed(new BootError(`the worker did not boot within ${opts.bootTimeoutMs} ms`, "timeout"));
    }, opts.bootTimeoutMs);
    return this._boot;
  }

  get ready() {
    return this._boot;
  }

  /** Where this worker's boot time went (MontyRuntime#boot). */
  _bootReport(msg) {
    const pooled = this._pooled !== null;
    return bootReport({
      plan: this._plan,
      ready: msg,
      pooled,
      startedAt: this._startedAt,
      bootPhases: pooled ? this._pooled.info?.phases : msg.phases,
      waitMs: pooled ? this._waitedMs : 0,
      configureMs: pooled ? performance.now() - this._configureAt : null,
    });
  }

  /** Take over a pre-warmed worker (pool.js): once it has booted, send `configure`. */
  _adopt(pooled) {
    const opts = this.runtime._options;
    this._pooled = pooled;
    this._bootTimer = setTimeout(() => {
      this._bootFailed(new BootError(`the worker did not boot within ${opts.bootTimeoutMs} ms`, "timeout"));
    }, opts.bootTimeoutMs);
    pooled.booted.then(() => {
      if (this.state !== "booting") {
        pooled.detach().terminate();
        pooled.refill?.();
        return;
      }
      this._waitedMs = performance.now() - this._startedAt;
      this._plan = pooled.plan;
      const worker = pooled.detach();
      this.worker = worker;
      worker.onmessage = (event) => this._onMessage(event.data);
      worker.onerror = (event) => {
        event.preventDefault?.();
        const where = event.filename ? ` (${event.filename}:${event.lineno})` : "";
        if (event.message) this._died(`the worker reported an uncaught error: ${event.message}${where}`);
        else diagnoseWorkerScript(opts.workerURL).then((why) => this._died(`the worker failed: ${why}`));
      };
      worker.onmessageerror = () => this._died("a worker message could not be deserialized");
      if (opts.sync !== "none" && opts.sync !== "jspi" && globalThis.crossOriginIsolated === true &&
          typeof SharedArrayBuffer === "function") {
        this.syncBuffer = new SharedArrayBuffer(opts.syncBufferBytes);
        this._i32 = new Int32Array(this.syncBuffer);
        this._u8 = new Uint8Array(this.syncBuffer);
      }
      this._configureAt = performance.now();
      worker.postMessage({
        type: "configure",
        functions: this.runtime._schemas,
        sandbox: opts.sandbox,
        limits: opts.limits,
        sync: opts.sync,
        syncBuffer: this.syncBuffer,
        ...this._controlFields(),
      });
    }, (err) => {
      this._bootFailed(new BootError(`boot step "${err?.step ?? "unknown"}" failed: ${err?.message ?? err}`,
        String(err?.step ?? "unknown")));
    });
    return this._boot;
  }

  _bootFailed(error) {
    if (this.state !== "booting") return;
    settlePlan(this._plan, null, error?.message);
    this._pooled?.refill?.();
    this.state = "dead";
    this._bootFetch?.close();
    clearTimeout(this._bootTimer);
    this.worker?.terminate();
    this.supervisor.stop();
    this._gate?.close();
    this._bootReject(error);
    for (const handle of this.pending.values()) handle._finish(null, error);
    this.pending.clear();
    this.runtime._hostDied(this);
  }

  /**
   * Post an execute for `handle` (now, or once booted). Whether the runtime is busy
   * was decided by MontyRuntime#execute before this (the page's BusyGuard); nothing
   * the worker says or writes can change that decision.
   */
  send(handle, message) {
    handle._host = this;
    const limits = message.limits ?? this.runtime._options.limits;
    handle._limits = limits;
    if (message.type === "execute") {
      handle._execute = true;
      handle._message = message;
    }
    this.pending.set(handle.id, handle);
    if (this.state === "ready") {
      this._post(handle, message, limits);
      return;
    }
    this._boot.then(
      () => {
        if (this.state === "ready" && this.pending.get(handle.id) === handle) this._post(handle, message, limits);
      },
      () => {}, // _bootFailed already rejected it
    );
  }

  _post(handle, message, limits) {
    this.worker.postMessage(message);
    if (!handle._execute) return;
    this.supervisor.posted(handle, limits);
    this._armAck(handle, this.runtime._options.ackTimeoutMs);
  }

  /**
   * An idle worker starts an execute within milliseconds. One that does not (code of
   * an earlier execution still runs after its result: a forged result, ignored
   * signals, a background callback) is replaced, and the execution moved to a fresh
   * worker before any of it ran (`_move`). Only when nothing else of this runtime is
   * in flight on the worker, which then has no reason to be slow. The deadline counts
   * the page's own time: a page whose main thread was blocked waits a little more, so
   * that an acknowledgement already queued is read first.
   */
  _armAck(handle, ms) {
    if (!(ms > 0) || handle._acked) return;
    for (const other of this.pending.values()) if (other !== handle && other._execute) return;
    const due = performance.now() + ms;
    handle._ackTimer = setTimeout(() => {
      handle._ackTimer = null;
      if (handle._settled || handle._acked || this.pending.get(handle.id) !== handle || this.state !== "ready") return;
      if (handle._interrupted) return; // the interrupt's own deadline ends it (Supervisor)
      const late = performance.now() - due;
      if (late > ACK_SLACK_MS) {
        this._armAck(handle, ACK_SLACK_MS);
        return;
      }
      this._move(handle, `the worker did not start the execution within ${ms} ms of being sent it, ` +
        "though nothing else of this runtime was running on it (code of an earlier execution is still running)");
    }, ms);
  }

  /**
   * The worker cannot run `handle` (see _armAck, or it refused it as busy while the
   * page knew of nothing running): terminate it, and post the execution to a fresh
   * worker, where it runs from the start (nothing of it ran here: the worker never
   * acknowledged it, so no host function was called for it). Its result says
   * `sessionLost` in shared mode. Anything else in flight on this worker rejects with
   * WorkerCrashed.
   */
  _move(handle, reason) {
    if (this.state === "dead") return;
    this.pending.delete(handle.id);
    console.warn(`[monty-runtime ${this.label}] replacing the worker: ${reason}`);
    this.kill(new WorkerCrashed(`the worker was replaced: ${reason}`));
    this.runtime._hostDied(this, true);
    if (handle._settled) return;
    if (++handle._moves > MAX_MOVES || this.runtime._disposed) {
      handle._finish(null, new WorkerCrashed(`the execution could not be started: ${reason}`));
      return;
    }
    for (const timer of handle._timers) clearTimeout(timer);
    handle._timers.length = 0;
    handle._interrupted = false;
    this.runtime._pick().send(handle, handle._message);
  }

  /** True while the worker is blocked in Atomics.wait on a synchronous host call. */
  syncCallPending() {
    for (const call of this.calls.values()) if (call.sync) return true;
    return false;
  }

  /**
   * The hard path: `handle`'s code did not stop (timeout or interrupt past its grace).
   * Its result says `errorType` with sessionLost; the worker is terminated (anything
   * else on it rejects with WorkerCrashed) and, in shared mode, a fresh one starts.
   */
  replace(handle, errorType, message) {
    if (this.state === "dead" || handle._settled) return;
    this.pending.delete(handle.id);
    const error = { type: errorType, message, traceback: "", lineno: null, filename: null };
    const output = handle._output ?? { stdout: [], stderr: [] };
    const stdout = output.stdout.join("");
    const stderr = output.stderr.join("");
    const durationMs = performance.now() - handle._postedAt;
    const executionId = handle.executionId ?? "";
    const event = { type: "run_error", execution_id: executionId, error, stdout,
      duration_ms: durationMs, session_lost: true };
    handle._event(event);
    this.runtime._broadcast(event);
    handle._finish({ value: null, stdout, stderr, error, sessionLost: true, session_lost: true,
      executionId, durationMs });
    this.kill(new WorkerCrashed(`the worker was replaced: another execution on it did not stop (${errorType})`));
    this.runtime._hostDied(this, false);
  }

  /**
   * Interrupt every execution on this worker, or only request `id`'s: an `interrupt`
   * message (heard by code that awaits), the control channel (heard between two
   * bytecodes), and after `grace` the hard path (control.js Supervisor.interrupt).
   */
  interrupt(id = undefined) {
    if (this.state !== "ready") return;
    const ids = id === undefined ? [...this.pending.keys()] : [id];
    for (const target of ids) {
      const handle = this.pending.get(target);
      if (handle === undefined || !handle._execute) continue;
      this.worker.postMessage({ type: "interrupt", id: target });
      const limits = handle._limits ?? this.runtime._options.limits;
      this.supervisor.interrupt(handle, typeof limits?.grace === "number" ? limits.grace : DEFAULT_GRACE_S);
    }
    if (this.syncBuffer === null) return;
    // A worker blocked in Atomics.wait cannot read messages: answer its pending
    // synchronous call with an interrupt instead (or the call it is about to make).
    const targets = new Set(id === undefined ? this.pending.keys() : [id]);
    for (const [callId, call] of this.calls) {
      if (call.sync && targets.has(call.execution)) {
        this.calls.delete(callId);
        targets.delete(call.execution);
        this._writeSync(JSON.stringify({ interrupt: true, id: callId }));
      }
    }
    for (const target of targets) if (this.pending.has(target)) this.interruptedSync.add(target);
  }

  /** Reject everything in flight with `error` and terminate the worker. */
  kill(error) {
    if (this.state === "dead") return;
    const booting = this.state === "booting";
    this.state = "dead";
    this.supervisor.stop();
    this._gate?.close();
    this._inbox.length = 0;
    this._unwatch?.();
    this._bootFetch?.close();
    clearTimeout(this._bootTimer);
    try {
      this.worker?.postMessage({ type: "dispose" });
    } catch {
      // ignore: terminating anyway
    }
    this.worker?.terminate();
    if (booting) this._bootReject(error);
    for (const handle of this.pending.values()) handle._finish(null, error);
    this.pending.clear();
    this.calls.clear();
  }

  _died(reason) {
    if (this.state === "booting") {
      this._bootFailed(new BootError(reason, "worker"));
      return;
    }
    if (this.state === "dead") return;
    this.kill(new WorkerCrashed(reason));
    this.runtime._hostDied(this);
  }

  _onMessage(data) {
    // JSON text: one message, or an array of messages (a batch), within a size limit
    // and the budget of the executions in flight, both checked before it is parsed;
    // a large one is parsed off the main thread first (control.js Gate). Messages are
    // handled in order. Any violation cuts the worker off at once (never item by item).
    this.supervisor.heard();
    if (this.state === "dead") return;
    const chars = typeof data === "string" ? data.length : 0;
    if (this.state === "ready") {
      const over = this.supervisor.charge(chars);
      if (over !== null) {
        this._protocol(over);
        return;
      }
    }
    if (chars > this.maxMessageChars) {
      this._protocol(`a worker message of ${chars} characters is over the limit of ${this.maxMessageChars}`);
      return;
    }
    if (this._inbox.length > 0 || chars > GATE_CHARS) {
      this._inbox.push(data);
      if (this._inbox.length === 1) this._drainInbox();
      return;
    }
    this._take(data, null);
  }

  /** Handle the queued messages in order, the large ones parsed by the gate. */
  async _drainInbox() {
    const inbox = this._inbox;
    while (inbox.length > 0 && this.state !== "dead") {
      const data = inbox[0];
      let parsed = null;
      if (typeof data === "string" && data.length > GATE_CHARS) {
        this._gate ??= new Gate();
        parsed = await this._gate.parse(data, this._maxNodes());
        if (this.state === "dead") break;
      }
      inbox.shift();
      this._take(data, parsed);
    }
    inbox.length = 0;
  }

  /** Most values one message may hold (the limits of the executions in flight). */
  _maxNodes() {
    let most = nodeLimitFor(this.runtime._options.limits);
    for (const handle of this.pending.values()) most = Math.max(most, nodeLimitFor(handle._limits));
    return most;
  }

  _take(data, gated) {
    let msg;
    let nodes;
    if (gated !== null) {
      if (gated.problem !== undefined) {
        this._protocol(gated.problem);
        return;
      }
      msg = gated.message;
      nodes = gated.nodes;
    } else {
      const parsed = parseWorkerData(data, this.maxMessageChars);
      if ("problem" in parsed) {
        this._protocol(parsed.problem);
        return;
      }
      msg = parsed.message;
      nodes = typeof data === "string" ? countNodes(msg, Infinity) : 1;
    }
    if (this.state === "ready") {
      const over = this.supervisor.charge(NODE_CHARS * nodes);
      if (over !== null) {
        this._protocol(over);
        return;
      }
    }
    if (Array.isArray(msg) && msg.length > MAX_BATCH) {
      this._protocol(`a batch of ${msg.length} messages (at most ${MAX_BATCH})`);
      return;
    }
    this._messageChars = (typeof data === "string" ? data.length : 0) + NODE_CHARS * nodes;
    this._refunded = false;
    const items = Array.isArray(msg) ? msg : [msg];
    for (const item of items) {
      if (this.state === "dead") return;
      this._dispatch(item);
    }
  }

  _dispatch(msg) {
    const problem = checkWorkerMessage(msg);
    if (problem !== null) {
      this._protocol(problem);
      return;
    }
    switch (msg.type) {
      case "event": {
        const handle = this.pending.get(msg.id);
        if (!handle) {
          this._protocol(`event for request ${JSON.stringify(msg.id).slice(0, 40)}, which is not in flight`);
          return;
        }
        if (msg.event.type !== "print") {
          const over = this.supervisor.event();
          if (over !== null) {
            this._protocol(over);
            return;
          }
        }
        handle._event(msg.event);
        this.runtime._broadcast(msg.event);
        return;
      }
      case "result": {
        const handle = this.pending.get(msg.id);
        if (!handle) {
          this._protocol(`result for request ${JSON.stringify(msg.id).slice(0, 40)}, which is not in flight`);
          return;
        }
        this.pending.delete(msg.id);
        this.interruptedSync.delete(msg.id);
        this._result(handle, msg);
        this.supervisor.settled();
        return;
      }
      case "rejected": {
        const handle = msg.id === null ? undefined : this.pending.get(msg.id);
        if (!handle) {
          this.runtime._orphanRejection(msg);
          return;
        }
        if (handle._execute && !handle._acked && msg.error.name === "StateError" &&
            (msg.error.reason ?? "busy") === "busy") {
          // The page sent it because nothing of this runtime was running here: the
          // worker is still running code whose result was already delivered.
          this._move(handle, "the worker refused the execution as busy while the page knew of nothing running on it");
          return;
        }
        this.pending.delete(msg.id);
        this.interruptedSync.delete(msg.id);
        handle._finish(null, errorFromWorker(msg.error));
        this.supervisor.settled();
        return;
      }
      case "host_call":
        this._hostCall(msg);
        return;
      case "ready":
        if (this.state !== "booting") {
          this._protocol("a ready message after the boot");
          return;
        }
        this._bootFetch?.close(); // the worker runs code from now on: it gets nothing more
        if (msg.version !== PROTOCOL_VERSION) {
          this._bootFailed(new BootError(
            `protocol version mismatch: page ${PROTOCOL_VERSION}, worker ${msg.version}`, "ready"));
          return;
        }
        clearTimeout(this._bootTimer);
        this.state = "ready";
        settlePlan(this._plan, msg.boot);
        this.info = { phases: msg.phases, env: msg.env, boot: this._bootReport(msg) };
        this._pooled?.refill?.();
        this._watch(msg.env);
        this._bootResolve(this.info);
        return;
      case "snapshot":
        if (this.state !== "booting") {
          this._protocol("a snapshot message after the boot");
          return;
        }
        offerSnapshot(this._plan, msg);
        return;
      case "boot_error":
        if (this.state !== "booting") {
          this._protocol("a boot_error message after the boot");
          return;
        }
        this._bootFailed(new BootError(`boot step "${msg.step}" failed: ${msg.message}`, String(msg.step)));
        return;
      case "log": {
        const level = ["debug", "info", "warn", "error"].includes(msg.level) ? msg.level : "log";
        console[level](`[monty-runtime ${this.label}] ${msg.message.slice(0, MAX_LOG_CHARS)}`);
        return;
      }
      case "pong":
        return; // a sign of life (counted in _onMessage)
      case "fatal":
        this._died(`Pyodide failed fatally in the worker: ${msg.message.slice(0, 500)}`);
        return;
      default:
        this._protocol(`unexpected ${msg.type} message`);
    }
  }

  /**
   * A worker message broke the protocol or the budget: counted, logged once, and the
   * worker is cut off (terminated; its pending results reject with WorkerCrashed; a
   * shared runtime continues on a fresh worker, its next result says sessionLost).
   */
  _protocol(problem) {
    this.runtime._protocolErrors++;
    this.protocolLog.warn(problem);
    // Executions the worker never started did not run any of their code here: they
    // run on a fresh worker instead of failing with the one that misbehaved.
    const unstarted = [];
    if (this.state === "ready") {
      for (const handle of this.pending.values()) {
        if (handle._execute && !handle._acked && handle._message !== null) unstarted.push(handle);
      }
      for (const handle of unstarted) this.pending.delete(handle.id);
    }
    this._died(`the worker broke the protocol and was cut off: ${String(problem).slice(0, 300)}`);
    for (const handle of unstarted) {
      if (handle._settled) continue;
      if (this.runtime._disposed || ++handle._moves > MAX_MOVES) {
        handle._finish(null, new WorkerCrashed(`the execution could not be started: the worker broke the protocol`));
        continue;
      }
      for (const timer of handle._timers) clearTimeout(timer);
      handle._timers.length = 0;
      if (handle._ackTimer !== null) clearTimeout(handle._ackTimer);
      handle._ackTimer = null;
      this.runtime._pick().send(handle, handle._message);
    }
  }

  /** The worker is ready: watch its life lock, pick the heartbeat default. */
  _watch(env) {
    if (this.lockName !== null && env?.lock === true) {
      this._unwatch = watchLock(this.lockName, () => {
        this._died("the worker stopped (it closed itself, exited or was killed)");
      });
    }
    if (this.runtime._options.heartbeatTimeoutMs == null) {
      // Without a lock watch, a worker that goes silent is found by the heartbeat
      // instead, when its Python can answer mid-loop (the control channel).
      this.supervisor.heartbeatTimeoutMs =
        this._unwatch == null && this.control !== null ? DEFAULT_HEARTBEAT_MS : 0;
    }
  }

  _result(handle, msg) {
    let value;
    try {
      value = decode(msg.value);
    } catch (err) {
      handle._finish(null, new ProtocolError(`undecodable result value: ${err.message}`));
      return;
    }
    const error = msg.error ?? null;
    if (error !== null && error.type === "StateError") {
      handle._finish(null, new StateError(String(error.message), "broken"));
      return;
    }
    let sessionLost = Boolean(msg.session_lost);
    if (this.sessionLost) {
      this.sessionLost = false;
      sessionLost = true;
    }
    handle._finish({
      value,
      stdout: String(msg.stdout ?? ""),
      stderr: String(msg.stderr ?? ""),
      error,
      sessionLost,
      session_lost: sessionLost,
      executionId: msg.execution_id ?? handle.executionId,
      durationMs: msg.duration_ms ?? 0,
    });
  }

  _hostCall(msg) {
    const { id, name } = msg;
    const sync = msg.sync === true;
    const reply = (answer) => {
      if (this.state === "dead" || !this.calls.has(id)) return;
      this.calls.delete(id);
      answer.type = "host_result";
      answer.id = id; // sync answers too: the worker drops one that is not for its call
      if (sync) this._writeSync(JSON.stringify(answer));
      else this.worker.postMessage(answer);
    };
    // An honest worker asks only for registered functions, for an execution in flight,
    // with a fresh call id, and blocks on at most one synchronous call at a time.
    const entry = typeof name === "string" ? this.runtime._functions.get(name) : undefined;
    let problem = null;
    if (typeof id !== "number" || this.calls.has(id)) problem = `host_call with a bad or duplicate id ${JSON.stringify(id)}`;
    else if (sync && this.syncBuffer === null) problem = "synchronous host_call without a shared buffer";
    else if (sync && (this.syncCallPending() || this._syncWrites > 0)) {
      problem = "a second synchronous host_call while one is still being answered";
    } else if (entry === undefined) problem = `host_call to unknown host function ${String(name).slice(0, 80)}`;
    else if (!this.pending.has(msg.execution)) {
      problem = `host_call for request ${JSON.stringify(msg.execution).slice(0, 40)}, which is not in flight`;
    }
    if (problem !== null) {
      this._protocol(problem);
      return;
    }
    if (!this._refunded) {
      this._refunded = true;
      this.supervisor.served(this._messageChars ?? 0);
    }
    if (sync && this.interruptedSync.delete(msg.execution)) {
      this._writeSync(JSON.stringify({ interrupt: true, id }));
      return;
    }
    this.calls.set(id, { execution: msg.execution, sync });
    this.pending.get(msg.execution)?._ack();
    let result;
    try {
      const args = decode(msg.args);
      const kwargs = decode(msg.kwargs);
      // The worker checked them against the schema; the page checks again, by the same
      // rule (schema.js), since executed code can post any host_call.
      const named = checkCall(name, entry.parameters, args, kwargs);
      result = entry.fn(...arrange(entry.names, args, named));
    } catch (err) {
      reply({ ok: false, error: errorInfo(err) });
      return;
    }
    if (result !== null && typeof result === "object" && typeof result.then === "function") {
      Promise.resolve(result).then(
        (value) => reply({ ok: true, value: encode(value) }),
        (err) => reply({ ok: false, error: errorInfo(err) }),
      );
    } else {
      reply({ ok: true, value: encode(result) });
    }
  }

  /** Write one answer into the shared buffer, chunk by chunk, for a blocked worker. */
  _writeSync(text) {
    const bytes = new TextEncoder().encode(text);
    const i32 = this._i32;
    const u8 = this._u8;
    const room = u8.length - SYNC_BUFFER.HEADER_BYTES;
    this._syncWrites++;
    const write = async () => {
      let offset = 0;
      do {
        for (;;) {
          const current = Atomics.load(i32, SYNC_BUFFER.STATE);
          if (current === SYNC_BUFFER.EMPTY) break;
          if (this.state === "dead") return;
          const waited = Atomics.waitAsync(i32, SYNC_BUFFER.STATE, current, 1000);
          if (waited.async) await waited.value;
        }
        const n = Math.min(room, bytes.length - offset);
        u8.set(bytes.subarray(offset, offset + n), SYNC_BUFFER.HEADER_BYTES);
        Atomics.store(i32, SYNC_BUFFER.LENGTH, n);
        offset += n;
        Atomics.store(i32, SYNC_BUFFER.STATE, offset >= bytes.length ? SYNC_BUFFER.LAST : SYNC_BUFFER.CHUNK);
        Atomics.notify(i32, SYNC_BUFFER.STATE);
      } while (offset < bytes.length);
    };
    const done = () => {
      this._syncWrites--;
    };
    this._syncChain = this._syncChain.then(write, write).then(done, done);
  }
}

/** Positional arguments for a JS host function from Python's args and kwargs. */
function arrange(names, args, kwargs) {
  const keys = Object.keys(kwargs);
  if (keys.length === 0) return args;
  if (names === null) return [...args, kwargs];
  const out = args.slice();
  for (const key of keys) {
    const index = names.indexOf(key);
    if (index < 0) throw new TypeError(`unexpected keyword argument ${key}`);
    while (out.length < index) out.push(undefined);
    out[index] = kwargs[key];
  }
  return out;
}

// ---------------------------------------------------------------------------- runtime

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
 * @property {number} [ackTimeoutMs] an idle worker that has not started an execution
 *   this many ms after it was sent is replaced, and the execution runs on a fresh
 *   worker (`sessionLost`); default 2000, 0: off
 */

const SNAPSHOT_MODES = [true, false, "memory"];

let isolationWarned = false;
/** Once per page: a page that is not cross-origin isolated is told what it loses. */
function warnIfNotIsolated() {
  if (isolationWarned || globalThis.crossOriginIsolated === true) return;
  isolationWarned = true;
  console.warn(NOT_ISOLATED_WARNING);
}

/** The options that decide how a worker boots, checked and made absolute (they are
 * also the key of the pre-warmed pool, pool.js). */
function normalizeBootOptions(options) {
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
