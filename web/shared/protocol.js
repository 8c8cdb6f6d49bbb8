/**
 * Messages between the page (monty-runtime.js) and a runtime's Web Worker
 * (worker.js + the Python module monty_runtime.worker).
 *
 * The same table lives in src/monty_runtime/protocol.py; tests/unit/test_protocol.py
 * reads the JSON between the MESSAGES markers below and fails when the two drift, so
 * keep that block plain JSON. Page -> worker messages are plain objects; worker -> page
 * messages travel as JSON text, one message or a JSON array of them (a batch). Values
 * inside them are in the codec's wire form (codec.js).
 *
 * No code is evaluated from data here: this module is imported by the worker, which
 * runs under a Content-Security-Policy without 'unsafe-eval'.
 * @module protocol
 */

/** Bumped whenever a message or field changes meaning. @type {number} */
export const PROTOCOL_VERSION = 1;

/**
 * direction -> type -> {required: string[], optional: string[]}
 * @type {Readonly<Record<"page_to_worker" | "worker_to_page",
 *   Readonly<Record<string, Readonly<{required: readonly string[], optional: readonly string[]}>>>>>}
 */
export const MESSAGES = deepFreeze(
  /* BEGIN MESSAGES */
  {
    "page_to_worker": {
      "init": {
        "required": ["version", "functions", "sandbox", "limits", "sync"],
        "optional": ["indexURL", "lockFileURL", "packageBaseUrl", "stepTimeoutMs", "syncBuffer",
                     "requireCSP", "bootPort", "snapshot", "makeSnapshot", "deferConfig",
                     "controlBuffer", "lockName", "assets", "outPort", "planFollows"]
      },
      "plan": { "required": [], "optional": ["snapshot", "makeSnapshot", "assets"] },
      "configure": {
        "required": ["functions", "sandbox", "limits", "sync"],
        "optional": ["syncBuffer", "controlBuffer", "lockName", "outPort"]
      },
      "execute": { "required": ["id", "code"], "optional": ["limits", "scriptName", "inputs"] },
      "host_result": { "required": ["id", "ok"], "optional": ["value", "value_json", "error"] },
      "interrupt": { "required": [], "optional": ["id"] },
      "dispose": { "required": [], "optional": [] },
      "ping": { "required": [], "optional": [] }
    },
    "worker_to_page": {
      "ready": { "required": ["version", "phases", "env"], "optional": ["boot"] },
      "booted": { "required": ["phases", "boot", "env"], "optional": [] },
      "snapshot": { "required": ["ok"], "optional": ["snapshot", "reason"] },
      "boot_error": { "required": ["step", "message"], "optional": ["name"] },
      "event": { "required": ["id", "event"], "optional": [] },
      "result": {
        "required": ["id", "value", "stdout", "stderr", "error", "session_lost"],
        "optional": ["execution_id", "duration_ms"]
      },
      "rejected": { "required": ["id", "error"], "optional": [] },
      "host_call": {
        "required": ["id", "execution", "name", "args", "kwargs", "sync"],
        "optional": []
      },
      "log": { "required": ["level", "message"], "optional": [] },
      "pong": { "required": [], "optional": [] },
      "fatal": { "required": ["message"], "optional": ["uncaught"] }
    }
  }
  /* END MESSAGES */
);

/** @type {typeof MESSAGES.page_to_worker} */
export const PAGE_TO_WORKER = MESSAGES.page_to_worker;
/** @type {typeof MESSAGES.worker_to_page} */
export const WORKER_TO_PAGE = MESSAGES.worker_to_page;

/**
 * Layout of the shared buffer that answers synchronous host calls when JSPI is not
 * available (Atomics.wait in the worker). Int32 slots, then the payload bytes.
 */
export const SYNC_BUFFER = Object.freeze({
  /** Int32 index of the state word: EMPTY, CHUNK (more follows) or LAST. */
  STATE: 0,
  /** Int32 index of the byte length of the chunk in the payload area. */
  LENGTH: 1,
  /** Byte offset of the payload area. */
  HEADER_BYTES: 8,
  /** Default total size of the buffer (header + payload). */
  DEFAULT_BYTES: 1 << 20,
  EMPTY: 0,
  CHUNK: 1,
  LAST: 2,
});

/**
 * Layout of the control buffer (cross-origin isolated pages): how the page reaches a
 * worker whose Python is busy (src/monty_runtime/_control.py). Int32 slots. SIGNAL is
 * Pyodide's interrupt buffer; writing SIGNUM there makes Python run its handler, which
 * reads the ring of (kind, request id) entries the page wrote between READ and WRITE.
 */
export const CONTROL = Object.freeze({
  /** Int32 index of the interrupt buffer word (pyodide.setInterruptBuffer). */
  SIGNAL: 0,
  /** Int32 index of the count of entries written by the page. */
  WRITE: 1,
  /** Int32 index of the count of entries read by the worker. */
  READ: 2,
  /** Int32 index of the worker's heartbeat (bumped at every read). */
  BEAT: 3,
  /** Int32 index of the first ring entry (two slots: kind, request id). */
  RING: 8,
  /** Entries in the ring. */
  SLOTS: 64,
  /** Total size in bytes. */
  BYTES: (8 + 2 * 64) * 4,
  /** The signal number that means "read the ring" (SIGUSR1). */
  SIGNUM: 10,
  /** Kinds (1 is retired: the page decides "busy" itself): raise KeyboardInterrupt in
   * that request's code ... */
  INTERRUPT: 2,
  /** ... raise TimeoutError in it. */
  TIMEOUT: 3,
});

/**
 * `null` when `message` is a known message of `direction` carrying its required
 * fields, else a description of what is wrong (extra fields are tolerated).
 * @param {"page_to_worker" | "worker_to_page"} direction
 * @param {unknown} message
 * @returns {string | null}
 */
export function checkMessage(direction, message) {
  if (message === null || typeof message !== "object" || Array.isArray(message)) {
    return `a message must be an object, got ${message === null ? "null" : typeof message}`;
  }
  const kind = /** @type {any} */ (message).type;
  const table = MESSAGES[direction];
  const spec = typeof kind === "string" && Object.hasOwn(table, kind) ? table[kind] : null;
  if (spec === null) return `unknown message type ${JSON.stringify(String(kind)).slice(0, 60)}`;
  const missing = spec.required.filter((f) => !(f in /** @type {object} */ (message)));
  return missing.length ? `${kind} message without ${missing.join(", ")}` : null;
}

function deepFreeze(value) {
  if (value && typeof value === "object") {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}
