/**
 * Host-call serving for one worker (WorkerHost#hostCalls): the page runs the app's
 * functions for the code in the worker.
 *
 * A `host_call` is checked again here, whatever the worker checked (executed code can
 * post any message): an honest worker asks only for registered functions, for an
 * execution in flight, with a fresh call id, blocks on at most one synchronous call at
 * a time, and passes arguments that fit the function's schema (shared/schema.js, the
 * same rule as the worker's). A call that breaks one of these cuts the worker off
 * (`check` names the problem; the dispatcher acts on it).
 *
 * Answers go back as a `host_result` message, or, for a worker blocked in
 * Atomics.wait on a sync-style call, through the shared buffer (the page half of
 * SYNC_BUFFER in shared/protocol.js), chunk by chunk. An interrupt answers a blocked
 * call with `{interrupt: true}` instead.
 * @module page/host-calls
 */

import { decode, encode } from "../shared/codec.js";
import { SYNC_BUFFER } from "../shared/protocol.js";
import { checkCall } from "../shared/schema.js";

/** An exception thrown by a host function, as the worker raises it in Python. */
function errorInfo(err) {
  if (err instanceof Error || (err && typeof err === "object" && "message" in err)) {
    const type = typeof err.name === "string" && err.name ? err.name : "Error";
    return { type, message: String(err.message ?? "") };
  }
  return { type: "Error", message: String(err) };
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

export class HostCalls {
  /** @param {import("./worker-host.js").WorkerHost} host */
  constructor(host) {
    this.host = host;
    /** @type {Map<number, {execution: number, sync: boolean}>} host calls being answered */
    this.calls = new Map();
    /** Executions interrupted while their synchronous host_call was still on its way. */
    this.interruptedSync = new Set();
    /** The shared buffer of sync-style calls (null: none, answers go by message). */
    this.syncBuffer = null;
    this._i32 = null;
    this._u8 = null;
    this._syncChain = Promise.resolve();
    this._syncWrites = 0; // answers queued for the sync buffer, not yet written
  }

  /**
   * Make the shared buffer for sync-style calls where the page can (`sync` is "auto"
   * or "atomics", and the page is cross-origin isolated with SharedArrayBuffer); it is
   * sent to the worker in `init` / `configure`. Returns it, or null.
   */
  allocate(opts) {
    if (opts.sync !== "none" && opts.sync !== "jspi" && globalThis.crossOriginIsolated === true &&
        typeof SharedArrayBuffer === "function") {
      this.syncBuffer = new SharedArrayBuffer(opts.syncBufferBytes);
      this._i32 = new Int32Array(this.syncBuffer);
      this._u8 = new Uint8Array(this.syncBuffer);
    }
    return this.syncBuffer;
  }

  /** True while the worker is blocked in Atomics.wait on a synchronous host call. */
  pendingSync() {
    for (const call of this.calls.values()) if (call.sync) return true;
    return false;
  }

  /** Why `msg` is not a host call an honest worker makes, or null. */
  check(msg) {
    const { id, name } = msg;
    const sync = msg.sync === true;
    const entry = typeof name === "string" ? this.host.runtime._functions.get(name) : undefined;
    if (typeof id !== "number" || this.calls.has(id)) return `host_call with a bad or duplicate id ${JSON.stringify(id)}`;
    if (sync && this.syncBuffer === null) return "synchronous host_call without a shared buffer";
    if (sync && (this.pendingSync() || this._syncWrites > 0)) {
      return "a second synchronous host_call while one is still being answered";
    }
    if (entry === undefined) return `host_call to unknown host function ${String(name).slice(0, 80)}`;
    if (!this.host.pending.has(msg.execution)) {
      return `host_call for request ${JSON.stringify(msg.execution).slice(0, 40)}, which is not in flight`;
    }
    return null;
  }

  /** Run the host function of `msg` (checked by `check`) and answer the worker. */
  serve(msg) {
    const host = this.host;
    const { id, name } = msg;
    const sync = msg.sync === true;
    const entry = host.runtime._functions.get(name);
    const reply = (answer) => {
      if (host.state === "dead" || !this.calls.has(id)) return;
      this.calls.delete(id);
      answer.type = "host_result";
      answer.id = id; // sync answers too: the worker drops one that is not for its call
      if (sync) this._writeSync(JSON.stringify(answer));
      else host.worker.postMessage(answer);
    };
    if (sync && this.interruptedSync.delete(msg.execution)) {
      this._writeSync(JSON.stringify({ interrupt: true, id }));
      return;
    }
    this.calls.set(id, { execution: msg.execution, sync });
    host.pending.get(msg.execution)?._ack();
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

  /**
   * Interrupts of `targets` (request ids) for a worker that may be blocked in
   * Atomics.wait, where it cannot read messages: its pending synchronous call is
   * answered with an interrupt instead, or the next one it makes for that execution.
   */
  interrupt(targets) {
    if (this.syncBuffer === null) return;
    const left = new Set(targets);
    for (const [callId, call] of this.calls) {
      if (call.sync && left.has(call.execution)) {
        this.calls.delete(callId);
        left.delete(call.execution);
        this._writeSync(JSON.stringify({ interrupt: true, id: callId }));
      }
    }
    for (const target of left) if (this.host.pending.has(target)) this.interruptedSync.add(target);
  }

  /** Execution `id` delivered its result or was refused: forget its interrupt. */
  settled(id) {
    this.interruptedSync.delete(id);
  }

  /** The worker is gone: nothing is answered any more. */
  clear() {
    this.calls.clear();
    this.interruptedSync.clear();
  }

  /** Write one answer into the shared buffer, chunk by chunk, for a blocked worker. */
  _writeSync(text) {
    const host = this.host;
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
          if (host.state === "dead") return;
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
