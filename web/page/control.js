/**
 * Failure handling of monty-runtime workers, page side (used by monty-runtime.js).
 *
 * - ControlChannel: the shared control buffer of a cross-origin isolated page. The page
 *   writes (kind, request id) entries into a ring and SIGNUM into Pyodide's interrupt
 *   buffer; Python's signal handler runs between two bytecodes, even in a tight loop,
 *   and answers (src/monty_runtime/_control.py). Used for interrupts, soft timeouts,
 *   and periodic ticks
 *   (print flushing, heartbeat).
 * - watchLock(): the worker holds a Web Lock for its whole life; the page waits for the
 *   same lock and hears of the worker's death at once, even a silent one
 *   (`js.close()` sends no error event).
 * - Supervisor: per worker, the timers: the soft timeout (control channel) and the
 *   hard deadline (terminate + restart) of each execution, the fallback of an
 *   interrupt that did not land, the ticks and the optional heartbeat.
 * - parseWorkerData() / checkWorkerMessage(): the page trusts no worker message
 *   (executed code can post anything with `js.postMessage`): JSON text only, a size
 *   limit, known types and field types, no `__proto__` keys in the envelope.
 *
 * @module control
 */

import { CONTROL, checkMessage } from "../shared/protocol.js";

export { BUSY_MESSAGE } from "../shared/errors.js";
/** How often a worker with an execution in flight is ticked (ms). */
export const TICK_MS = 50;
/** Extra wait after timeout + grace before the hard path, so that a Python-side answer
 * already on its way wins (ms). */
export const HARD_MARGIN_MS = 250;
/** Default grace (seconds) between a soft interrupt and the hard path. */
export const DEFAULT_GRACE_S = 1;
/** Default heartbeat limit (ms) where no Web Lock watches the worker but the control
 * channel lets its Python answer mid-loop. */
export const DEFAULT_HEARTBEAT_MS = 5000;

// ----------------------------------------------------------------- control channel

/** The page's end of a worker's control buffer (cross-origin isolated pages only). */
export class ControlChannel {
  /** True when this page can have one (SharedArrayBuffer + cross-origin isolation). */
  static get available() {
    return globalThis.crossOriginIsolated === true && typeof SharedArrayBuffer === "function";
  }

  /** Why there is no shared memory here, as a user can act on it (null: there is). */
  static get unavailableReason() {
    if (globalThis.crossOriginIsolated !== true) {
      return "the page is not cross-origin isolated (serve it with Cross-Origin-Opener-Policy: " +
        "same-origin and Cross-Origin-Embedder-Policy: require-corp)";
    }
    if (typeof SharedArrayBuffer !== "function") {
      return "this browser has no SharedArrayBuffer, although the page is cross-origin isolated";
    }
    return null;
  }

  constructor() {
    /** Sent to the worker in `init` / `configure` (controlBuffer). */
    this.buffer = new SharedArrayBuffer(CONTROL.BYTES);
    this._i32 = new Int32Array(this.buffer);
    // The page's own count of the entries it wrote: the WRITE word is only a copy for
    // the worker, never read back as the truth (executed code can write any word).
    this._written = 0;
    /** Why the buffer is no longer trusted (the worker wrote what only the page may
     * write), or null. Once set, no request is sent through it. @type {string | null} */
    this.poisoned = null;
    /** Called once when the buffer is found poisoned (the host takes the hard path). */
    this.onPoisoned = null;
  }

  /**
   * Queue a request for the worker's signal handler and signal it. Never throws: every
   * word read from the shared buffer is range-checked, and a buffer the worker wrote
   * nonsense into is reported through `onPoisoned` (the request is not sent).
   * @param {number} kind CONTROL.INTERRUPT or TIMEOUT
   * @param {number} id the page's request id
   * @returns {boolean} false when the request was not sent (ring full, bad id, poisoned)
   */
  request(kind, id) {
    if (!Number.isInteger(id) || id > 0x7fffffff || id < -0x80000000 || !this.check()) return false;
    const i32 = this._i32;
    const written = this._written;
    if (written - Atomics.load(i32, CONTROL.READ) >= CONTROL.SLOTS || written >= 0x7fffffff) {
      this.signal();
      return false;
    }
    const slot = CONTROL.RING + 2 * (written % CONTROL.SLOTS); // from the page's own count
    Atomics.store(i32, slot, kind);
    Atomics.store(i32, slot + 1, id);
    this._written = written + 1;
    Atomics.store(i32, CONTROL.WRITE, written + 1);
    this.signal();
    return true;
  }

  /**
   * True while the words the worker may not write hold what the page wrote: WRITE is
   * the page's own count and READ lies within one ring of it. Else the buffer is
   * poisoned (reported once through `onPoisoned`) and false.
   */
  check() {
    if (this.poisoned !== null) return false;
    const i32 = this._i32;
    const write = Atomics.load(i32, CONTROL.WRITE);
    const read = Atomics.load(i32, CONTROL.READ);
    let problem = null;
    if (write !== this._written) problem = `its WRITE word says ${write}, the page wrote ${this._written}`;
    else if (!(read <= write && write - read <= CONTROL.SLOTS)) {
      problem = `its READ word ${read} is outside the ring (0..${CONTROL.SLOTS} behind ${write})`;
    }
    if (problem === null) return true;
    this.poisoned = `the worker wrote into its control buffer what only the page may write: ${problem}`;
    const report = this.onPoisoned;
    this.onPoisoned = null;
    if (typeof report === "function") queueMicrotask(() => report(this.poisoned));
    return false;
  }

  /** Make the worker's Python run its handler (a tick when nothing is queued). */
  signal() {
    Atomics.store(this._i32, CONTROL.SIGNAL, CONTROL.SIGNUM);
  }

  /** The worker's heartbeat: bumped each time its handler ran. */
  get beat() {
    return Atomics.load(this._i32, CONTROL.BEAT);
  }
}

// ----------------------------------------------------------------------- the lock

/** A fresh name for a worker's life lock. */
export function newLockName() {
  const random = globalThis.crypto?.randomUUID?.() ??
    `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  return `monty-runtime-worker/${random}`;
}

/** True when this page can watch workers through Web Locks. */
export function locksAvailable() {
  return typeof globalThis.navigator?.locks?.request === "function";
}

/**
 * Wait for the lock `name`, which the worker holds while it lives: `onGone()` runs
 * once it is released (the worker closed, exited, crashed or was terminated).
 * @param {string} name
 * @param {() => void} onGone
 * @returns {(() => void) | null} stop watching; null without Web Locks
 */
export function watchLock(name, onGone) {
  if (!locksAvailable()) return null;
  const abort = new AbortController();
  navigator.locks.request(name, { signal: abort.signal }, () => {
    if (!abort.signal.aborted) onGone();
  }).catch(() => {}); // aborted
  return () => abort.abort();
}

// -------------------------------------------------------------- worker messages

const EVENT_TYPES = new Set(["run_started", "print", "call_started", "call_finished",
  "run_finished", "run_error"]);
const LOG_LEVELS = new Set(["debug", "info", "warn", "error", "log"]);
/** Longest `log` line shown (characters). */
export const MAX_LOG_CHARS = 4000;

/** @type {(v: unknown) => v is Record<string, any>} */
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isId = (v) => (typeof v === "number" && Number.isSafeInteger(v)) || typeof v === "string";
const hasProto = (v) => Object.hasOwn(v, "__proto__");

/** Smallest per-message limit (characters of JSON text), whatever the limits. */
export const MIN_MESSAGE_CHARS = 2 ** 20;
/** What a worker may send while no execution of it is in flight (logs, pongs), and the
 * slack of each execution's budget (characters). */
export const IDLE_CHARS = 2 ** 20;
/** Extra budget for each host call the page serves (its call events and answer). */
export const HOST_CALL_CHARS = 4096;
/** Events other than `print` one execution may send, besides its host calls' ... */
export const EVENTS_PER_EXECUTION = 4096;
/** ... and for each host call the page served (call_started, call_finished). */
export const EVENTS_PER_HOST_CALL = 2;

/**
 * Default size limit of one worker message (characters of JSON text) for a runtime
 * with these limits: a result carries its stdout twice (the final event and the
 * result) JSON-escaped, plus the value. Checked before the text is parsed.
 * @param {{max_output_bytes?: number, max_result_bytes?: number} | null} limits
 */
export function messageLimitFor(limits) {
  const out = limits?.max_output_bytes ?? 10_000_000;
  const res = limits?.max_result_bytes ?? 10_000_000;
  return Math.max(MIN_MESSAGE_CHARS, 12 * out + 2 * res + 2 ** 20);
}

/**
 * What one execution may cost the page in total (characters of worker messages, each
 * parsed value charged NODE_CHARS more): its printed text (up to 6 characters of JSON
 * per byte of output), its result message, and slack. Host calls the page serves add
 * HOST_CALL_CHARS each. A worker that sends more is cut off.
 * @param {{max_output_bytes?: number, max_result_bytes?: number} | null} limits
 */
export function executionBudgetFor(limits) {
  const out = limits?.max_output_bytes ?? 10_000_000;
  return 6 * out + messageLimitFor(limits) + NODE_CHARS * nodeLimitFor(limits) + IDLE_CHARS;
}

/** Most messages in one batch (an honest worker batches a few: print segments, an
 * event with its host_call, the final event with the result). */
export const MAX_BATCH = 16;
/** Messages longer than this (characters) are parsed off the main thread (gate.js). */
export const GATE_CHARS = 64 * 1024;
/** The page's memory for one parsed value (an object, array, string or number) beyond
 * its text, in characters charged to the budget. */
export const NODE_CHARS = 8;

/**
 * Most values (objects, arrays, strings, numbers...) one worker message may hold: the
 * result value twice (the final event and the result) plus slack. Counted before the
 * message is handed to the page's code; checked off the main thread for large messages.
 * @param {{max_result_bytes?: number} | null} limits
 */
export function nodeLimitFor(limits) {
  return (limits?.max_result_bytes ?? 10_000_000) + 65_536;
}

/** Values in `value`, counting stops past `max` (same as gate.js). */
export function countNodes(value, max) {
  let n = 0;
  const stack = [value];
  while (stack.length) {
    const v = stack.pop();
    n++;
    if (n > max) return n;
    if (v !== null && typeof v === "object") {
      if (Array.isArray(v)) for (let i = 0; i < v.length; i++) stack.push(v[i]);
      else for (const k in v) stack.push(v[k]);
    }
  }
  return n;
}

/**
 * The gate of one runtime's worker: a small worker (gate.js) that parses its large
 * messages off the main thread and refuses those holding more values than allowed.
 * Falls back to parsing on the main thread where no worker can be started.
 */
/** Start a gate worker (gate.js); null where no worker can be started. It waits for its
 * `attach` (dispatch.js Dispatcher#openGate) or serves parse requests (Gate). */
export function startGateWorker(name) {
  try {
    return new Worker(new URL("./gate.js", import.meta.url), { type: "module", name });
  } catch {
    return null;
  }
}

export class Gate {
  constructor() {
    this._worker = null;
    this._next = 1;
    this._waiting = new Map();
    this._broken = false;
  }

  /**
   * Parse `text`: resolves to `{message, nodes}` or `{problem}`.
   * @param {string} text
   * @param {number} maxNodes
   * @returns {Promise<{message?: any, nodes?: number, problem?: string}>}
   */
  parse(text, maxNodes) {
    const worker = this._start();
    if (worker === null) {
      try {
        const message = JSON.parse(text);
        const nodes = countNodes(message, maxNodes);
        return Promise.resolve(nodes > maxNodes
          ? { problem: `a worker message of ${text.length} characters holds more than ${maxNodes} values` }
          : { message, nodes });
      } catch {
        return Promise.resolve({ problem: "a worker message is not valid JSON" });
      }
    }
    const id = this._next++;
    return new Promise((resolve) => {
      this._waiting.set(id, resolve);
      worker.postMessage({ id, text, maxNodes });
    });
  }

  _start() {
    if (this._worker !== null || this._broken) return this._worker;
    try {
      const worker = startGateWorker("monty-gate");
      if (worker === null) throw new Error("no gate");
      worker.onmessage = (event) => {
        const resolve = this._waiting.get(event.data?.id);
        this._waiting.delete(event.data?.id);
        resolve?.(event.data);
      };
      worker.onerror = (event) => {
        event.preventDefault?.();
        this._fail("the message gate failed");
      };
      this._worker = worker;
    } catch {
      this._broken = true;
    }
    return this._worker;
  }

  _fail(problem) {
    for (const resolve of this._waiting.values()) resolve({ problem });
    this._waiting.clear();
  }

  /** Stop the gate (the runtime's worker is gone); pending parses resolve as refused. */
  close() {
    this._worker?.terminate();
    this._worker = null;
    this._broken = true;
    this._fail("the worker is gone");
  }
}

/**
 * Turn a worker's postMessage data into a message (or a batch): JSON text within
 * `maxChars`. The one object message a worker posts as such (a memory snapshot whose
 * bytes are transferred) is passed through for its own checks.
 * @param {unknown} data
 * @param {number} maxChars
 * @returns {{message: any} | {problem: string}}
 */
export function parseWorkerData(data, maxChars) {
  if (typeof data !== "string") {
    if (isObject(data) && data.type === "snapshot") return { message: data };
    return { problem: `a worker message must be JSON text, got ${data === null ? "null" : typeof data}` };
  }
  if (data.length > maxChars) {
    return { problem: `a worker message of ${data.length} characters is over the limit of ${maxChars}` };
  }
  try {
    return { message: JSON.parse(data) };
  } catch {
    return { problem: "a worker message is not valid JSON" };
  }
}

/**
 * `null` when `msg` is a well-formed worker -> page message, else what is wrong.
 * Stricter than protocol.js checkMessage(): field types, known event types, no
 * `__proto__` key where the page copies or hands on objects.
 * @param {any} msg
 * @returns {string | null}
 */
export function checkWorkerMessage(msg) {
  const problem = checkMessage("worker_to_page", msg);
  if (problem !== null) return problem;
  if (hasProto(msg)) return `${msg.type} message with a __proto__ key`;
  switch (msg.type) {
    case "event": {
      const ev = msg.event;
      if (!isId(msg.id)) return "event message with a bad id";
      if (!isObject(ev) || hasProto(ev)) return "event message without an event object";
      if (!EVENT_TYPES.has(ev.type)) return `unknown event type ${JSON.stringify(String(ev.type)).slice(0, 60)}`;
      if (typeof ev.execution_id !== "string") return `${ev.type} event without an execution_id`;
      if (ev.type === "print" && (typeof ev.text !== "string" ||
          (ev.stream !== "stdout" && ev.stream !== "stderr"))) {
        return "print event without a stream and text";
      }
      if ((ev.type === "run_error") && (!isObject(ev.error) || hasProto(ev.error))) {
        return "run_error event without an error";
      }
      return null;
    }
    case "result": {
      if (!isId(msg.id)) return "result message with a bad id";
      if (typeof msg.stdout !== "string" || typeof msg.stderr !== "string") return "result without stdout/stderr text";
      if (typeof msg.session_lost !== "boolean") return "result without a session_lost flag";
      const err = msg.error;
      if (err !== null && (!isObject(err) || hasProto(err) || typeof err.type !== "string" ||
          typeof err.message !== "string")) {
        return "result with a malformed error";
      }
      return null;
    }
    case "rejected": {
      if (msg.id !== null && !isId(msg.id)) return "rejected message with a bad id";
      const err = msg.error;
      if (!isObject(err) || hasProto(err) || typeof err.name !== "string" || typeof err.message !== "string") {
        return "rejected message with a malformed error";
      }
      return null;
    }
    case "host_call":
      if (!Number.isSafeInteger(msg.id)) return "host_call with a bad id";
      if (typeof msg.name !== "string" || typeof msg.sync !== "boolean" || !isId(msg.execution)) {
        return "host_call with a bad name, sync flag or execution";
      }
      return null;
    case "log":
      return typeof msg.message === "string" && LOG_LEVELS.has(msg.level) ? null : "malformed log message";
    case "fatal":
      return typeof msg.message === "string" ? null : "malformed fatal message";
    case "ready":
      return isObject(msg.phases) && isObject(msg.env) ? null : "malformed ready message";
    default:
      return null;
  }
}

/** Console warnings about refused worker messages, at most `max` per worker. */
export class ProtocolLog {
  constructor(label, max = 20) {
    this.label = label;
    this.max = max;
    /** Messages refused so far. */
    this.count = 0;
  }

  warn(problem) {
    this.count++;
    if (this.count <= this.max) {
      console.warn(`[monty-runtime ${this.label}] refused a worker message: ${String(problem).slice(0, 300)}`);
    } else if (this.count === this.max + 1) {
      console.warn(`[monty-runtime ${this.label}] refusing more worker messages; further warnings suppressed`);
    }
  }
}

// ------------------------------------------------------------------- supervisor

/**
 * The timers of one worker. `host` is monty-runtime.js's WorkerHost: it provides
 * `state`, `pending` (request id -> handle), `control` (ControlChannel | null),
 * `worker`, `syncCallPending()`, `replace(handle, errorType, message)` (terminate +
 * restart, the handle's result says sessionLost) and `_died(reason)`.
 */
export class Supervisor {
  /**
   * @param {any} host
   * @param {{heartbeatTimeoutMs?: number}} [options] 0 / absent: no heartbeat
   */
  constructor(host, options = {}) {
    this.host = host;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 0;
    this.lastSign = performance.now();
    this._beat = -1;
    this._pingAt = 0;
    this._timer = null;
    // The page's cost budget for this worker's messages (characters): IDLE_CHARS, plus
    // each posted execution's budget while executions are in flight.
    this.allowance = IDLE_CHARS;
    this.spent = 0;
    this.eventAllowance = 0;
    this.events = 0;
  }

  /** Any message from the worker is a sign of life. */
  heard() {
    this.lastSign = performance.now();
  }

  /**
   * Charge `chars` to the worker's budget. Returns what is wrong when it is over
   * (the caller cuts the worker off), else null.
   * @param {number} chars
   * @returns {string | null}
   */
  charge(chars) {
    this.spent += chars;
    if (this.spent <= this.allowance) return null;
    return `the worker sent ${this.spent} characters of messages, over the ${this.allowance} ` +
      "its executions' limits allow (max_output_bytes, max_result_bytes)";
  }

  /**
   * Count one event other than `print` (those are bounded by their text). Returns what
   * is wrong when there are more than the executions in flight allow, else null.
   * @returns {string | null}
   */
  event() {
    this.events++;
    if (this.events <= this.eventAllowance) return null;
    return `the worker sent more than ${this.eventAllowance} events that are not print events ` +
      `(${EVENTS_PER_EXECUTION} per execution and ${EVENTS_PER_HOST_CALL} per host call it made)`;
  }

  /** A host call was served: its events and answer are the app's own work. */
  served(chars) {
    this.allowance += chars + HOST_CALL_CHARS;
    this.eventAllowance += EVENTS_PER_HOST_CALL;
  }

  /** Nothing is in flight any more: the next execution starts a fresh budget. */
  settled() {
    if (this.host.pending.size === 0) {
      this.allowance = IDLE_CHARS;
      this.spent = 0;
      this.eventAllowance = 0;
      this.events = 0;
    }
  }

  /**
   * The execute of `handle` was posted: arm its timeout (soft through the control
   * channel at `timeout`, hard at `timeout + grace`) and the ticks.
   * @param {any} handle
   * @param {{timeout?: number | null, grace?: number, max_output_bytes?: number,
   *   max_result_bytes?: number} | null} limits
   */
  posted(handle, limits) {
    handle._postedAt = performance.now();
    this.allowance += executionBudgetFor(limits);
    this.eventAllowance += EVENTS_PER_EXECUTION;
    const timeout = limits?.timeout;
    if (typeof timeout === "number" && timeout > 0) {
      const grace = typeof limits.grace === "number" ? limits.grace : DEFAULT_GRACE_S;
      const host = this.host;
      if (host.control !== null) {
        handle._timers.push(setTimeout(() => {
          if (!handle._settled && host.pending.get(handle.id) === handle) {
            host.control.request(CONTROL.TIMEOUT, handle.id);
          }
        }, timeout * 1000));
      }
      handle._timers.push(setTimeout(() => {
        if (!handle._settled && host.pending.get(handle.id) === handle && host.state === "ready") {
          host.replace(handle, "TimeoutError",
            `execution exceeded timeout=${timeout}s and did not stop within grace=${grace}s; ` +
            "the worker was replaced and the session's state is lost");
        }
      }, (timeout + grace) * 1000 + HARD_MARGIN_MS));
    }
    this._ensureTicking();
  }

  /**
   * Interrupt `handle`'s code: KeyboardInterrupt through the control channel (the
   * caller also posts an `interrupt` message, which reaches code that awaits); if it
   * has not stopped after `grace` seconds, the hard path.
   * @param {any} handle
   * @param {number} grace seconds
   */
  interrupt(handle, grace) {
    const host = this.host;
    // Every interrupt goes through the ring too (the worker pairs it with its message).
    if (host.control !== null) host.control.request(CONTROL.INTERRUPT, handle.id);
    if (handle._interrupted) return;
    handle._interrupted = true;
    handle._timers.push(setTimeout(() => {
      if (!handle._settled && host.pending.get(handle.id) === handle && host.state === "ready") {
        host.replace(handle, "KeyboardInterrupt",
          `the code did not stop within ${grace}s of the interrupt` +
          (host.control === null ? ` (${ControlChannel.unavailableReason ?? "no control channel"}, so CPU-bound code cannot be interrupted)` : "") +
          "; the worker was replaced and the session's state is lost");
      }
    }, grace * 1000));
  }

  stop() {
    if (this._timer !== null) clearInterval(this._timer);
    this._timer = null;
  }

  _ensureTicking() {
    if (this._timer !== null) return;
    if (this.host.control === null && !(this.heartbeatTimeoutMs > 0)) return;
    this.lastSign = performance.now();
    this._timer = setInterval(() => this._tick(), TICK_MS);
  }

  _tick() {
    const host = this.host;
    if (host.state !== "ready" || host.pending.size === 0) {
      this.stop();
      return;
    }
    const now = performance.now();
    if (host.control !== null && host.control.check()) {
      host.control.signal(); // flushes held print text; the handler bumps the beat
      const beat = host.control.beat;
      if (beat !== this._beat) {
        this._beat = beat;
        this.lastSign = now;
      }
    }
    const limit = this.heartbeatTimeoutMs;
    if (!(limit > 0)) return;
    if (now - this._pingAt >= Math.max(TICK_MS, limit / 4)) {
      this._pingAt = now;
      try {
        host.worker.postMessage({ type: "ping" });
      } catch {
        // a dead worker: the check below decides
      }
    }
    // A worker blocked in Atomics.wait waits for the page itself: not silent.
    if (host.syncCallPending()) this.lastSign = now;
    else if (now - this.lastSign > limit) {
      this.stop();
      host._died(`the worker stopped answering (no sign of life for ${Math.round(now - this.lastSign)} ms)`);
    }
  }
}
