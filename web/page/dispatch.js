/**
 * Message dispatch for one worker (WorkerHost#dispatcher): every message a worker
 * posts enters here, and nothing from a worker is trusted.
 *
 * In a browser the worker posts to its gate (gate.js, a thread of its own, opened by
 * `openGate`), not to the page: the gate checks each message's size, parses the large
 * ones, refuses a malformed batch or one with too many values, and passes on at most a
 * window of characters the page has not acknowledged. So what a worker posts costs the
 * page's main thread nothing until it passed the gate, and a worker posting past its
 * limits is cut off having cost the page at most its budget and one window. The
 * worker's own `postMessage` is removed at its lock-down; a message that reaches the
 * page by the worker's `onmessage` anyway cuts it off unread. Without a gate (the Deno
 * host, `messageGate: false`) the page receives the worker's messages itself and parses
 * a large one off its thread first (control.js Gate).
 *
 * A message is JSON text (one message, or an array of them: a batch) within a size
 * limit and the budget of the executions in flight, both checked before it is parsed.
 * Messages are handled in order. Each is checked (control.js checkWorkerMessage: known type,
 * field types, ids the page issued) and then routed: events and results to their
 * ExecutionHandle, host calls to HostCalls (host-calls.js), boot messages to the
 * WorkerHost's lifecycle. Any violation cuts the worker off at once
 * (WorkerHost#_protocol), never item by item.
 * @module page/dispatch
 */

import { decode } from "../shared/codec.js";
import { BootError, ProtocolError, StateError, errorFromWorker } from "../shared/errors.js";
import {
  GATE_CHARS, Gate, MAX_BATCH, MAX_LOG_CHARS, NODE_CHARS, checkWorkerMessage, countNodes,
  nodeLimitFor, parseWorkerData, startGateWorker,
} from "./control.js";
import { offerSnapshot } from "./pool.js";

/** Characters the gate may have on their way to the page unacknowledged (gate.js). */
export const GATE_WINDOW_CHARS = 4 * 1024 * 1024;
/** The page acknowledges what it handled once this much has gathered. */
const ACK_CHARS = 256 * 1024;

export class Dispatcher {
  /** @param {import("./worker-host.js").WorkerHost} host */
  constructor(host) {
    this.host = host;
    this._queue = []; // messages waiting behind a large one being parsed by the gate
    this._gate = null; // control.js Gate, started at the first large message
    this._front = null; // the gate worker in front of the worker (openGate)
    this._unacked = 0; // characters handled and not yet acknowledged to the gate
    this._messageChars = 0; // what the message being dispatched cost the budget
    this._refunded = false; // the message being dispatched paid for a host call already
  }

  /** Drop what is queued and stop the gate (the worker is gone). */
  close() {
    this._gate?.close();
    this._front?.terminate();
    this._front = null;
    this._queue.length = 0;
  }

  /**
   * Start the gate in front of the worker (see the module doc), or take `started`, one
   * a pre-warmed worker came with (pool.js). Returns the port to
   * give the worker (`outPort` of init or configure), or null when no gate could be
   * started (the caller fails the boot: a worker is never heard ungated by mistake).
   * @returns {MessagePort | null}
   */
  openGate(started = null) {
    const host = this.host;
    const gate = started ?? startGateWorker(`${host.label}-gate`);
    if (gate === null) return null;
    const channel = new MessageChannel();
    gate.onmessage = (event) => {
      if (this._front === gate && host.state !== "dead") this._fromGate(event.data);
    };
    gate.onerror = (event) => {
      event.preventDefault?.();
      host._died("the message gate failed");
    };
    gate.postMessage({
      type: "attach",
      port: channel.port1,
      maxMessageChars: host.maxMessageChars,
      maxNodes: this._maxNodes(),
      window: GATE_WINDOW_CHARS,
    }, [channel.port1]);
    this._front = gate;
    this._unacked = 0;
    return channel.port2;
  }

  /** True when the worker's messages come through the gate. */
  get gated() {
    return this._front !== null;
  }

  /** What the gate passes on (gate.js): a message, a refusal, or a question. */
  _fromGate(envelope) {
    const host = this.host;
    host.supervisor.heard();
    if (envelope.problem !== undefined) {
      host._protocol(String(envelope.problem));
      return;
    }
    if (envelope.ask !== undefined) {
      // A message over the limits the gate knew of: allowed if the executions in
      // flight allow it now (their limits may be larger than the runtime's).
      const maxNodes = this._maxNodes();
      if (envelope.chars > host.maxMessageChars) {
        host._protocol(`a worker message of ${envelope.chars} characters is over the limit of ${host.maxMessageChars}`);
        return;
      }
      if (envelope.nodes !== undefined && envelope.nodes > maxNodes) {
        host._protocol(`a worker message of ${envelope.chars} characters holds more than ${maxNodes} values`);
        return;
      }
      this._front.postMessage({ type: "limits", ask: envelope.ask, maxMessageChars: host.maxMessageChars, maxNodes });
      return;
    }
    const chars = envelope.text !== undefined ? envelope.text.length : (envelope.chars ?? 0);
    if (host.state === "ready") {
      const over = host.supervisor.charge(chars);
      if (over !== null) {
        host._protocol(over);
        return;
      }
    }
    if (envelope.text !== undefined) this._take(envelope.text, null);
    else if (envelope.raw !== undefined) this._take(envelope.raw, null);
    else this._take(null, { message: envelope.message, nodes: envelope.nodes, chars });
    this._unacked += envelope.cost ?? chars;
    if (this._unacked >= ACK_CHARS && this._front !== null) {
      this._front.postMessage({ type: "ack", chars: this._unacked });
      this._unacked = 0;
    }
  }

  /** One message from the worker (see the module doc): counted as a sign of life,
   * charged to the budget and size-checked before it is parsed. */
  receive(data) {
    const host = this.host;
    if (host.state === "dead") return;
    if (this._front !== null) {
      // Around the gate: the worker's own postMessage was removed at its lock-down, so
      // this is executed code that found another way. Cut off, the data unread.
      host._protocol("a message that did not pass the gate");
      return;
    }
    host.supervisor.heard();
    const chars = typeof data === "string" ? data.length : 0;
    if (host.state === "ready") {
      const over = host.supervisor.charge(chars);
      if (over !== null) {
        host._protocol(over);
        return;
      }
    }
    if (chars > host.maxMessageChars) {
      host._protocol(`a worker message of ${chars} characters is over the limit of ${host.maxMessageChars}`);
      return;
    }
    if (this._queue.length > 0 || chars > GATE_CHARS) {
      this._queue.push(data);
      if (this._queue.length === 1) this._drain();
      return;
    }
    this._take(data, null);
  }

  /** Handle the queued messages in order, the large ones parsed by the gate. */
  async _drain() {
    const host = this.host;
    const inbox = this._queue;
    while (inbox.length > 0 && host.state !== "dead") {
      const data = inbox[0];
      let parsed = null;
      if (typeof data === "string" && data.length > GATE_CHARS) {
        this._gate ??= new Gate();
        parsed = await this._gate.parse(data, this._maxNodes());
        if (host.state === "dead") break;
      }
      inbox.shift();
      this._take(data, parsed);
    }
    inbox.length = 0;
  }

  /** Most values one message may hold (the limits of the executions in flight). */
  _maxNodes() {
    const host = this.host;
    let most = nodeLimitFor(host.runtime._options.limits);
    for (const handle of host.pending.values()) most = Math.max(most, nodeLimitFor(handle._limits));
    return most;
  }

  _take(data, gated) {
    const host = this.host;
    let msg;
    let nodes;
    if (gated !== null) {
      if (gated.problem !== undefined) {
        host._protocol(gated.problem);
        return;
      }
      msg = gated.message;
      nodes = gated.nodes;
    } else {
      const parsed = parseWorkerData(data, host.maxMessageChars);
      if ("problem" in parsed) {
        host._protocol(parsed.problem);
        return;
      }
      msg = parsed.message;
      nodes = typeof data === "string" ? countNodes(msg, Infinity) : 1;
    }
    if (host.state === "ready") {
      const over = host.supervisor.charge(NODE_CHARS * nodes);
      if (over !== null) {
        host._protocol(over);
        return;
      }
    }
    if (Array.isArray(msg) && msg.length > MAX_BATCH) {
      host._protocol(`a batch of ${msg.length} messages (at most ${MAX_BATCH})`);
      return;
    }
    this._messageChars = (typeof data === "string" ? data.length : (gated?.chars ?? 0)) + NODE_CHARS * nodes;
    this._refunded = false;
    const items = Array.isArray(msg) ? msg : [msg];
    for (const item of items) {
      if (host.state === "dead") return;
      this.dispatch(item);
    }
  }

  dispatch(msg) {
    const host = this.host;
    const problem = checkWorkerMessage(msg);
    if (problem !== null) {
      host._protocol(problem);
      return;
    }
    switch (msg.type) {
      case "event": {
        const handle = host.pending.get(msg.id);
        if (!handle) {
          host._protocol(`event for request ${JSON.stringify(msg.id).slice(0, 40)}, which is not in flight`);
          return;
        }
        if (msg.event.type !== "print") {
          const over = host.supervisor.event();
          if (over !== null) {
            host._protocol(over);
            return;
          }
        }
        handle._event(msg.event);
        host.runtime._broadcast(msg.event);
        return;
      }
      case "result": {
        const handle = host.pending.get(msg.id);
        if (!handle) {
          host._protocol(`result for request ${JSON.stringify(msg.id).slice(0, 40)}, which is not in flight`);
          return;
        }
        host.pending.delete(msg.id);
        host.hostCalls.settled(msg.id);
        this._result(handle, msg);
        host.supervisor.settled();
        return;
      }
      case "rejected": {
        const handle = msg.id === null ? undefined : host.pending.get(msg.id);
        if (!handle) {
          host.runtime._orphanRejection(msg);
          return;
        }
        if (handle._execute && !handle._acked && msg.error.name === "StateError" &&
            (msg.error.reason ?? "busy") === "busy") {
          // The page sent it because nothing of this runtime was running here: the
          // worker is still running code whose result was already delivered.
          host._move(handle, "the worker refused the execution as busy while the page knew of nothing running on it");
          return;
        }
        host.pending.delete(msg.id);
        host.hostCalls.settled(msg.id);
        handle._finish(null, errorFromWorker(msg.error));
        host.supervisor.settled();
        return;
      }
      case "host_call": {
        const problem = host.hostCalls.check(msg);
        if (problem !== null) {
          host._protocol(problem);
          return;
        }
        // The first host call of a message gives its characters back to the budget:
        // a call is work the page asked for, not output.
        if (!this._refunded) {
          this._refunded = true;
          host.supervisor.served(this._messageChars ?? 0);
        }
        host.hostCalls.serve(msg);
        return;
      }
      case "ready":
        if (host.state !== "booting") {
          host._protocol("a ready message after the boot");
          return;
        }
        host._ready(msg);
        return;
      case "snapshot":
        if (host.state !== "booting") {
          host._protocol("a snapshot message after the boot");
          return;
        }
        offerSnapshot(host._plan, msg);
        return;
      case "boot_error":
        if (host.state !== "booting") {
          host._protocol("a boot_error message after the boot");
          return;
        }
        host._bootFailed(new BootError(`boot step "${msg.step}" failed: ${msg.message}`, String(msg.step)));
        return;
      case "log": {
        const level = ["debug", "info", "warn", "error"].includes(msg.level) ? msg.level : "log";
        console[level](`[monty-runtime ${host.label}] ${msg.message.slice(0, MAX_LOG_CHARS)}`);
        return;
      }
      case "pong":
        return; // a sign of life (counted in _onMessage)
      case "fatal":
        host._died(msg.uncaught === true
          ? `the worker reported an uncaught error: ${msg.message.slice(0, 500)}`
          : `Pyodide failed fatally in the worker: ${msg.message.slice(0, 500)}`);
        return;
      default:
        host._protocol(`unexpected ${msg.type} message`);
    }
  }

  _result(handle, msg) {
    const host = this.host;
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
    if (host.sessionLost) {
      host.sessionLost = false;
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
}
