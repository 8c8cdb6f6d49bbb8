/**
 * LLM tool bindings for the browser runtime: the three consumer policies of the
 * concurrency contract, with the same behaviour and payloads as the Python module
 * `monty_runtime.tools`.
 *
 * A busy shared runtime rejects `execute()` with `StateError("Bridge is already
 * executing")`; it never queues. A planner may still call a `run_python` tool several
 * times in parallel, so whoever wraps a runtime in a tool chooses what the model sees:
 *
 * - `queueBinding(rt)`: a future chain; each call waits for the previous one, and a
 *   previous failure or cancellation never blocks the next. State persists.
 * - `busyBinding(rt)`: no waiting; a busy runtime answers
 *   `{status: "busy", retry_after_ms, ...}` so back-pressure is visible to the planner.
 * - `sandboxBinding(rt)`: needs `MontyRuntime.create({sandbox: true})`; parallel calls
 *   all run, each in a fresh REPL; nothing persists.
 *
 * ```js
 * import { MontyRuntime } from "./monty-runtime.js";
 * import { bindTool } from "./tools.js";
 * const tool = bindTool(await MontyRuntime.create(), "queue");
 * const tools = [tool.definition()];                       // give these to the model
 * const out = await tool.call('{"code": "x = 41\\nx + 1"}');  // {status: "ok", value: 42, ...}
 * ```
 *
 * `call(arguments)` takes the tool call's arguments (an object, or the JSON text a model
 * sends) and resolves to a JSON-able payload `{status, value, stdout, error}`; it never
 * rejects. `value` is in the codec's wire form (`codec.encode`), as in Python.
 * ES module; depends on codec.js only (the runtime is passed in), so it runs in Node too.
 * @module tools
 */

import { encode } from "../shared/codec.js";
import { BUSY_MESSAGE } from "../shared/errors.js";

/** The policy names, in increasing cost. */
export const POLICIES = Object.freeze(["queue", "busy", "sandbox"]);

const DESCRIPTION =
  "Run Python code in a persistent interpreter session and return the value of the last " +
  "expression and the printed output. Variables, functions and imports persist between " +
  "calls. Host functions are available as Python functions (call them, or await them):" +
  "{functions}";
const SANDBOX_DESCRIPTION =
  "Run Python code in a fresh interpreter (nothing persists between calls) and return " +
  "the value of the last expression and the printed output. Host functions are " +
  "available as Python functions (call them, or await them):{functions}";
const JSON_TYPES = {
  integer: "int", number: "float", string: "str", boolean: "bool",
  array: "list", object: "dict", null: "None",
};

/** A JSON Schema as a Python annotation (`int`, `str | None`), if it is that plain. */
function typeText(schema) {
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) return null;
  const kind = schema.type;
  if (typeof kind === "string") return Object.hasOwn(JSON_TYPES, kind) ? JSON_TYPES[kind] : null;
  if (Array.isArray(kind)) {
    const names = kind.map((k) => (typeof k === "string" && Object.hasOwn(JSON_TYPES, k) ? JSON_TYPES[k] : null));
    return names.length && names.every(Boolean) ? names.join(" | ") : null;
  }
  for (const key of ["anyOf", "oneOf"]) {
    const options = schema[key];
    if (Array.isArray(options) && options.length) {
      const texts = options.map(typeText);
      return texts.every(Boolean) ? texts.join(" | ") : null;
    }
  }
  return null;
}

/**
 * Each host function as `- name(param: type, opt: type = ...) -- first docstring line`,
 * one a line (" none." when there is none); the same text as Python's
 * describe_functions (src/monty_runtime/tools.py) for the same schemas.
 * @param {Array<{name: string, description?: string, parameters?: object | null}>} schemas
 * @returns {string}
 */
export function describeFunctions(schemas) {
  if (!schemas || schemas.length === 0) return " none.";
  const lines = [];
  for (const schema of schemas) {
    const params = schema.parameters;
    let signature;
    if (params !== null && typeof params === "object" && !Array.isArray(params)) {
      const props = params.properties ?? {};
      const required = params.required ?? [];
      const parts = Object.entries(props).map(([name, sub]) => {
        const kind = typeText(sub);
        const text = kind === null ? name : `${name}: ${kind}`;
        return required.includes(name) ? text : `${text} = ...`;
      });
      signature = `${schema.name}(${parts.join(", ")})`;
    } else {
      signature = `${schema.name}(...)`;
    }
    const doc = String(schema.description ?? "").trim().split("\n")[0].trim();
    lines.push(`\n- ${signature}${doc ? ` -- ${doc}` : ""}`);
  }
  return lines.join("");
}

const NAME = /^[\p{L}\p{N}_-]{1,64}$/u;

// ------------------------------------------------------------------------ payloads

/**
 * @param {string} type
 * @param {string} message
 * @param {object} [extra]
 * @returns {ToolPayload}
 */
function errorPayload(type, message, extra = undefined) {
  /** @type {ToolPayload} */
  const payload = { status: "error", value: null, stdout: "", error: { type, message } };
  if (extra) Object.assign(payload, extra);
  return payload;
}

/**
 * The JSON-able tool result of an ExecutionResult (as Python's `ToolBinding.payload`).
 * @param {{value: any, stdout: string, error: {type: string, message: string,
 *   traceback?: string} | null, sessionLost?: boolean, session_lost?: boolean}} result
 * @returns {ToolPayload}
 */
export function payloadOf(result) {
  const stdout = String(result?.stdout ?? "");
  const error = result?.error ?? null;
  if (error === null) return { status: "ok", value: encode(result?.value ?? null), stdout, error: null };
  /** @type {ToolPayload} */
  const out = {
    status: "error",
    value: null,
    stdout,
    error: {
      type: String(error.type ?? "Error"),
      message: String(error.message ?? ""),
      traceback: String(error.traceback ?? ""),
    },
  };
  if (result.sessionLost === true || result.session_lost === true) out.session_lost = true;
  return out;
}

// -------------------------------------------------------- arguments (Python's json)

/** A JSON error with Python's `json.JSONDecodeError` message. */
class PyJSONError extends Error {
  constructor(msg, doc, pos) {
    // Python counts code points; JS string indices are UTF-16 code units.
    const before = doc.slice(0, pos);
    const cpPos = [...before].length;
    const lineStart = before.lastIndexOf("\n");
    const lineno = before.split("\n").length;
    const colno = lineStart < 0 ? cpPos + 1 : [...before.slice(lineStart + 1)].length + 1;
    super(`${msg}: line ${lineno} column ${colno} (char ${cpPos})`);
    this.name = "JSONDecodeError";
  }
}

const WS = new Set([" ", "\t", "\n", "\r"]);
const ESCAPES = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
const HEX4 = /^[0-9A-Fa-f]{4}$/;
const MAX_INT_DIGITS = 4300; // sys.get_int_max_str_digits() default

/**
 * `json.loads(text)` as CPython's C scanner does it: the same accepted language (NaN,
 * Infinity and -Infinity included; control characters in strings refused) and the same
 * error messages and positions, so a bad tool call reads the same on both backends.
 * @param {string} doc
 * @returns {any}
 * @throws {PyJSONError}
 */
export function pyJSONLoads(doc) {
  if (doc.startsWith("\ufeff")) throw new PyJSONError("Unexpected UTF-8 BOM (decode using utf-8-sig)", doc, 0);
  const len = doc.length;
  const skip = (i) => {
    while (i < len && WS.has(doc[i])) i++;
    return i;
  };
  const expectingValue = (i) => new PyJSONError("Expecting value", doc, i);

  function scanString(end) {
    // `end` is just after the opening quote.
    const begin = end - 1;
    let out = "";
    for (;;) {
      let next = end;
      let c = "";
      for (; next < len; next++) {
        c = doc[next];
        if (c === '"' || c === "\\") break;
        if (c.charCodeAt(0) <= 0x1f) throw new PyJSONError("Invalid control character at", doc, next);
      }
      if (next >= len) throw new PyJSONError("Unterminated string starting at", doc, begin);
      out += doc.slice(end, next);
      if (c === '"') return [out, next + 1];
      next++; // the backslash
      if (next >= len) throw new PyJSONError("Unterminated string starting at", doc, begin);
      c = doc[next];
      if (c !== "u") {
        if (!Object.hasOwn(ESCAPES, c)) throw new PyJSONError("Invalid \\escape", doc, next - 1);
        out += ESCAPES[c];
        end = next + 1;
        continue;
      }
      next++;
      end = next + 4;
      if (end >= len) throw new PyJSONError("Invalid \\uXXXX escape", doc, next - 1);
      let hex = doc.slice(next, end);
      if (!HEX4.test(hex)) throw new PyJSONError("Invalid \\uXXXX escape", doc, end - 5);
      let code = parseInt(hex, 16);
      if (code >= 0xd800 && code <= 0xdbff && end + 6 < len && doc[end] === "\\" && doc[end + 1] === "u") {
        hex = doc.slice(end + 2, end + 6);
        if (!HEX4.test(hex)) throw new PyJSONError("Invalid \\uXXXX escape", doc, end + 1);
        const low = parseInt(hex, 16);
        if (low >= 0xdc00 && low <= 0xdfff) {
          code = 0x10000 + (((code - 0xd800) << 10) | (low - 0xdc00));
          end += 6;
        }
      }
      out += String.fromCodePoint(code);
    }
  }

  function scanNumber(idx) {
    const start = idx;
    const digit = (i) => i < len && doc[i] >= "0" && doc[i] <= "9";
    if (doc[idx] === "-") {
      idx++;
      if (idx >= len) throw expectingValue(start);
    }
    if (doc[idx] >= "1" && doc[idx] <= "9") {
      idx++;
      while (digit(idx)) idx++;
    } else if (doc[idx] === "0") {
      idx++;
    } else {
      throw expectingValue(start);
    }
    let isFloat = false;
    if (idx < len - 1 && doc[idx] === "." && digit(idx + 1)) {
      isFloat = true;
      idx += 2;
      while (digit(idx)) idx++;
    }
    if (idx < len - 1 && (doc[idx] === "e" || doc[idx] === "E")) {
      const eStart = idx;
      idx++;
      if (idx < len - 1 && (doc[idx] === "-" || doc[idx] === "+")) idx++;
      while (digit(idx)) idx++;
      if (digit(idx - 1)) isFloat = true;
      else idx = eStart;
    }
    const text = doc.slice(start, idx);
    if (!isFloat) {
      const digits = text.length - (text[0] === "-" ? 1 : 0);
      if (digits > MAX_INT_DIGITS) {
        const err = new Error(
          `Exceeds the limit (${MAX_INT_DIGITS} digits) for integer string conversion: ` +
            `value has ${digits} digits; use sys.set_int_max_str_digits() to increase the limit`,
        );
        err.name = "ValueError";
        throw err;
      }
    }
    return [Number(text), idx];
  }

  function scanOnce(idx, depth) {
    if (idx >= len) throw expectingValue(idx);
    if (depth > 10_000) {
      const err = new Error("maximum recursion depth exceeded while decoding a JSON document");
      err.name = "RecursionError";
      throw err;
    }
    const c = doc[idx];
    switch (c) {
      case '"':
        return scanString(idx + 1);
      case "{":
        return scanObject(idx + 1, depth + 1);
      case "[":
        return scanArray(idx + 1, depth + 1);
      case "n":
        if (doc.startsWith("null", idx)) return [null, idx + 4];
        break;
      case "t":
        if (doc.startsWith("true", idx)) return [true, idx + 4];
        break;
      case "f":
        if (doc.startsWith("false", idx)) return [false, idx + 5];
        break;
      case "N":
        if (doc.startsWith("NaN", idx)) return [NaN, idx + 3];
        break;
      case "I":
        if (doc.startsWith("Infinity", idx)) return [Infinity, idx + 8];
        break;
      case "-":
        if (doc.startsWith("-Infinity", idx)) return [-Infinity, idx + 9];
        break;
      default:
    }
    return scanNumber(idx);
  }

  function scanObject(idx, depth) {
    const obj = Object.create(null);
    idx = skip(idx);
    if (idx >= len || doc[idx] !== "}") {
      for (;;) {
        if (idx >= len || doc[idx] !== '"') {
          throw new PyJSONError("Expecting property name enclosed in double quotes", doc, idx);
        }
        let key;
        [key, idx] = scanString(idx + 1);
        idx = skip(idx);
        if (idx >= len || doc[idx] !== ":") throw new PyJSONError("Expecting ':' delimiter", doc, idx);
        idx = skip(idx + 1);
        let value;
        [value, idx] = scanOnce(idx, depth);
        obj[key] = value;
        idx = skip(idx);
        if (idx < len && doc[idx] === "}") break;
        if (idx >= len || doc[idx] !== ",") throw new PyJSONError("Expecting ',' delimiter", doc, idx);
        idx = skip(idx + 1);
      }
    }
    return [obj, idx + 1];
  }

  function scanArray(idx, depth) {
    const arr = [];
    idx = skip(idx);
    if (idx >= len || doc[idx] !== "]") {
      for (;;) {
        let value;
        [value, idx] = scanOnce(idx, depth);
        arr.push(value);
        idx = skip(idx);
        if (idx < len && doc[idx] === "]") break;
        if (idx >= len || doc[idx] !== ",") throw new PyJSONError("Expecting ',' delimiter", doc, idx);
        idx = skip(idx + 1);
      }
    }
    return [arr, idx + 1];
  }

  const [value, end] = scanOnce(skip(0), 0);
  const after = skip(end);
  if (after !== len) throw new PyJSONError("Extra data", doc, after);
  return value;
}

/** Sort strings by code point, as Python's `sorted()` does. */
function byCodePoint(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/**
 * The code from a tool call's arguments (an object, or the JSON text a model sends),
 * or an error payload (as Python's `ToolBinding.parse_arguments`).
 * @param {unknown} args
 * @returns {string | ToolPayload}
 */
export function parseArguments(args) {
  if (args instanceof Uint8Array) {
    try {
      args = new TextDecoder("utf-8", { fatal: true }).decode(args);
    } catch (err) {
      return errorPayload("InvalidArguments", `arguments are not valid JSON: ${err.message}`);
    }
  }
  if (typeof args === "string") {
    try {
      args = pyJSONLoads(args);
    } catch (err) {
      return errorPayload("InvalidArguments", `arguments are not valid JSON: ${err.message}`);
    }
  }
  if (args === null || typeof args !== "object" || Array.isArray(args) || args instanceof Map) {
    return errorPayload("InvalidArguments", "arguments must be an object with a 'code' string");
  }
  const unknown = Object.keys(args).filter((k) => k !== "code");
  if (unknown.length) {
    return errorPayload("InvalidArguments", `unknown argument(s): ${unknown.sort(byCodePoint).join(", ")}`);
  }
  const code = Object.hasOwn(args, "code") ? /** @type {{code?: unknown}} */ (args).code : undefined;
  if (typeof code !== "string") return errorPayload("InvalidArguments", "argument 'code' must be a string");
  return code;
}

// ------------------------------------------------------------------------ bindings

/** Python's repr() of a string (for messages that quote a value as Python does). */
function pyRepr(value) {
  if (typeof value !== "string") return value === null || value === undefined ? "None" : String(value);
  const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
  let out = "";
  for (const ch of value) {
    const c = ch.codePointAt(0);
    if (ch === "\\" || ch === quote) out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch;
  }
  return quote + out + quote;
}

function typeName(value) {
  if (value === null) return "NoneType";
  if (typeof value !== "object") return typeof value;
  return value.constructor?.name ?? "object";
}

function isRuntime(value) {
  return value !== null && typeof value === "object" && typeof value.execute === "function" &&
    "sandbox" in value;
}

/** Python's round(): halves to even. */
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function now() {
  return globalThis.performance?.now() ?? Date.now();
}

/**
 * An error a call turns into its payload (never rethrown).
 * @param {any} err
 * @returns {ToolPayload}
 */
function failurePayload(err) {
  const name = typeof err?.name === "string" && err.name ? err.name : "Error";
  const message = String(err?.message ?? err);
  if (name === "StateError") return errorPayload("StateError", message, { reason: err.reason ?? "busy" });
  if (name === "TypeError" || name === "RangeError") return errorPayload("InvalidArguments", message);
  // Infrastructure (a crashed worker, a failed boot): still a payload, never a rejection.
  return errorPayload(name, message);
}

/**
 * Base of the three policies: argument parsing, the tool definition, the payload.
 */
export class ToolBinding {
  /**
   * @param {import("./runtime.js").MontyRuntime} runtime
   * @param {BindingOptions} [options]
   */
  constructor(runtime, options = {}) {
    if (!isRuntime(runtime)) throw new TypeError(`runtime must be a MontyRuntime, got ${typeName(runtime)}`);
    const { name = "run_python", description = null } = options ?? {};
    if (typeof name !== "string" || !NAME.test(name)) {
      throw new RangeError(`tool name must match ^[A-Za-z0-9_-]{1,64}$, got ${pyRepr(name)}`);
    }
    /** The runtime behind the tool. */
    this.runtime = runtime;
    /** The tool's name (default "run_python"). @type {string} */
    this.name = name;
    this._description = description;
  }

  /** @type {"queue" | "busy" | "sandbox"} */
  get policy() {
    return /** @type {any} */ (this.constructor).policy;
  }

  /**
   * The OpenAI-style tool definition (`{type: "function", function: {...}}`); identical
   * to Python's for a runtime with the same host functions.
   */
  definition() {
    const names = describeFunctions(this.runtime.schemas ?? []);
    const template = this.runtime.sandbox ? SANDBOX_DESCRIPTION : DESCRIPTION;
    return {
      type: "function",
      function: {
        name: this.name,
        description: this._description || template.replace("{functions}", () => names),
        parameters: {
          type: "object",
          properties: { code: { type: "string", description: "The Python code to run." } },
          required: ["code"],
          additionalProperties: false,
        },
      },
    };
  }

  /**
   * Run one tool call. Resolves to the payload; never rejects (a bad call, a failing
   * execution, a busy or disposed runtime, a crashed worker: all are payloads).
   * @param {unknown} args an object `{code}` or its JSON text
   * @param {{signal?: AbortSignal}} [options] queue policy: abort a call waiting its
   *   turn (CancelledError payload) or running (its code is interrupted)
   * @returns {Promise<ToolPayload>}
   */
  async call(args, options = undefined) {
    const code = parseArguments(args);
    if (typeof code !== "string") return code;
    try {
      return await this._run(code, options?.signal ?? null);
    } catch (err) {
      return failurePayload(err);
    }
  }

  /**
   * @protected
   * @param {string} _code
   * @param {AbortSignal | null} [_signal]
   * @returns {Promise<ToolPayload>}
   */
  async _run(_code, _signal) {
    throw new Error("not implemented");
  }
}

/**
 * Each call waits for the previous one: a future chain, so calls run in the order they
 * arrived. A previous call's failure or cancellation never blocks the next one.
 */
export class QueueBinding extends ToolBinding {
  static policy = "queue";

  constructor(runtime, options = {}) {
    super(runtime, options);
    /** Settles (never rejects) when the last call in the chain is done. */
    this._tail = Promise.resolve();
  }

  async _run(code, signal) {
    const previous = this._tail;
    /** @type {(value?: unknown) => void} */
    let release = () => {};
    const mine = new Promise((resolve) => {
      release = resolve;
    });
    // Cancelled while waiting: this link still ends only after the previous one, so
    // the next call keeps waiting for the call before this.
    this._tail = mine;
    let running = false;
    try {
      if (signal) {
        if (signal.aborted) return cancelledPayload();
        let onAbort;
        const aborted = new Promise((resolve) => {
          onAbort = () => resolve(true);
          signal.addEventListener("abort", onAbort, { once: true });
        });
        const wasAborted = await Promise.race([previous.then(() => false), aborted]);
        signal.removeEventListener("abort", onAbort);
        if (wasAborted) return cancelledPayload();
      } else {
        await previous;
      }
      running = true;
      const handle = this.runtime.execute(code);
      // Cancelled while running: interrupt the code and wait for its (error) result, so
      // the next call never meets a busy runtime.
      const onAbort = () => handle.interrupt?.();
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        return payloadOf(await handle.result);
      } finally {
        signal?.removeEventListener("abort", onAbort);
      }
    } finally {
      if (running) release();
      else previous.then(release);
    }
  }
}

function cancelledPayload() {
  return errorPayload("CancelledError", "the tool call was cancelled before it ran");
}

/**
 * A busy runtime answers `{status: "busy", retry_after_ms: N, ...}` at once.
 *
 * `retry_after_ms` estimates when the running execution will be done: the median
 * duration of recent executions minus the time the current one has run, at least
 * `minRetryMs`.
 *
 * "Busy" means what it means natively: an execution was started and its result has not
 * come back. On a shared runtime, a call made while one of this binding's own calls is
 * in flight is answered at once, without asking the runtime (which would refuse it the
 * same way); an execution started by someone else is refused by the runtime itself,
 * with the same payload.
 */
export class BusyBinding extends ToolBinding {
  static policy = "busy";

  constructor(runtime, options = {}) {
    super(runtime, options);
    const minRetryMs = options?.minRetryMs ?? options?.min_retry_ms ?? 50;
    if (typeof minRetryMs !== "number" || !(minRetryMs >= 0)) {
      throw new TypeError("minRetryMs must be a non-negative number");
    }
    /** @type {number} */
    this.minRetryMs = minRetryMs;
    this._durations = [];
    /** Start times of this binding's calls that reached the runtime and are not done. */
    this._started = new Set();
  }

  _retryAfterMs() {
    if (this._durations.length === 0) return this.minRetryMs;
    const sorted = [...this._durations].sort((a, b) => a - b);
    const typical = sorted[Math.floor(sorted.length / 2)];
    // The busy answer comes from the worker: the running execution is (most likely)
    // this binding's oldest call still in flight.
    let oldest = null;
    for (const { started } of this._started) if (oldest === null || started < oldest) oldest = started;
    const elapsed = oldest === null ? 0 : now() - oldest;
    return Math.max(this.minRetryMs, roundHalfEven(typical - elapsed));
  }

  async _run(code) {
    if (!this.runtime.sandbox && this._started.size > 0) return this._busy(BUSY_MESSAGE);
    const handle = this.runtime.execute(code);
    const started = now();
    const token = { started };
    this._started.add(token);
    let result;
    try {
      result = await handle.result;
    } catch (err) {
      this._started.delete(token);
      if (err?.name === "StateError" && (err.reason ?? "busy") === "busy") return this._busy(String(err.message));
      this._record(started);
      throw err;
    }
    this._started.delete(token);
    this._record(started);
    return payloadOf(result);
  }

  /**
   * @param {string} message
   * @returns {ToolPayload}
   */
  _busy(message) {
    return {
      status: "busy",
      retry_after_ms: this._retryAfterMs(),
      value: null,
      stdout: "",
      error: { type: "StateError", message },
    };
  }

  _record(started) {
    this._durations = [...this._durations.slice(-19), now() - started];
  }
}

/**
 * Each call in a fresh REPL: parallel calls all run, nothing persists. Needs a runtime
 * made with `MontyRuntime.create({sandbox: true})`.
 */
export class SandboxBinding extends ToolBinding {
  static policy = "sandbox";

  constructor(runtime, options = {}) {
    if (isRuntime(runtime) && !runtime.sandbox) {
      throw new RangeError("sandboxBinding needs a runtime made with MontyRuntime.create({ sandbox: true })");
    }
    super(runtime, options);
  }

  async _run(code) {
    return payloadOf(await this.runtime.execute(code).result);
  }
}

const CLASSES = { queue: QueueBinding, busy: BusyBinding, sandbox: SandboxBinding };

/** @returns {QueueBinding} */
export function queueBinding(runtime, options = {}) {
  return new QueueBinding(runtime, options);
}

/** @returns {BusyBinding} */
export function busyBinding(runtime, options = {}) {
  return new BusyBinding(runtime, options);
}

/** @returns {SandboxBinding} */
export function sandboxBinding(runtime, options = {}) {
  return new SandboxBinding(runtime, options);
}

/**
 * The binding for `policy` ("queue", "busy" or "sandbox").
 * @throws {RangeError} unknown policy
 */
export function bindTool(runtime, policy, options = {}) {
  const cls = typeof policy === "string" && Object.hasOwn(CLASSES, policy) ? CLASSES[policy] : null;
  if (cls === null) {
    throw new RangeError(`unknown policy ${pyRepr(policy)}; choose one of ${POLICIES.join(", ")}`);
  }
  return new cls(runtime, options);
}

/**
 * @typedef {object} ToolPayload
 * @property {"ok" | "error" | "busy"} status
 * @property {any} value the last expression's value in wire form (null unless ok)
 * @property {string} stdout
 * @property {{type: string, message: string, traceback?: string} | null} error
 * @property {number} [retry_after_ms] busy only
 * @property {string} [reason] StateError only: "busy", "disposed" or "broken"
 * @property {boolean} [session_lost] the REPL was replaced (its globals are gone)
 */

/**
 * @typedef {object} BindingOptions
 * @property {string} [name] tool name (default "run_python")
 * @property {string | null} [description] replaces the generated description
 * @property {number} [minRetryMs] busy policy: smallest retry_after_ms (default 50)
 */
