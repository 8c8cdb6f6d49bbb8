// The gate: a runtime's worker talks to the page through this thread, so nothing it
// posts costs the page's main thread before it has been checked here.
//
// Started by the page for each runtime worker (dispatch.js Dispatcher#openGate), it
// gets `{type: "attach", port, maxMessageChars, maxNodes, window}`: `port` is its end of
// the channel the worker posts on (the worker's own `postMessage` is removed at its
// lock-down). Every message from the worker is checked here, in order:
//
// - JSON text within `maxMessageChars`. Text up to GATE_CHARS goes on to the page as it
//   is (`{text}`; the page parses it, a bounded cost). Longer text is parsed here, a
//   batch must be at most MAX_BATCH well-formed messages, and the value may hold at
//   most `maxNodes` values; it goes on parsed (`{message, nodes, chars}`).
// - The one object a worker posts as such, its memory snapshot (bytes transferred),
//   once, with small metadata: passed on with its transfer (the page takes it only
//   while the worker boots).
// - Anything else is refused: the gate posts `{problem}` and forwards nothing more.
//
// A message over `maxMessageChars` or `maxNodes` may still be within the limits of an
// execution the page started since: the gate holds it and asks the page (`{ask, chars,
// nodes}`), which answers with the limits now in force (`{type: "limits", ask,
// maxMessageChars, maxNodes}`) or cuts the worker off.
//
// Flow control: at most `window` characters are on their way to the page unacknowledged
// (the page answers `{type: "ack", chars}` as it handles them); the rest waits here. So
// a flood costs the page its budget plus one window before it cuts the worker off, and
// never fills the page's memory with messages queued for it.
//
// Without `attach`, the gate is the parse service of a page that receives its workers'
// messages itself (the Deno host): `{id, text, maxNodes}` in, `{id, message, nodes}` or
// `{id, problem}` out. Runs under the worker Content-Security-Policy.
import { GATE_CHARS, MAX_BATCH, NODE_CHARS, checkWorkerMessage, countNodes } from "./control.js";

/** Most characters of snapshot metadata (everything but its transferred bytes). */
const SNAPSHOT_META_CHARS = 64 * 1024;

/** Parse `text`; `{message, nodes}` or `{problem}`. */
function parse(text, maxNodes) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return { problem: "a worker message is not valid JSON" };
  }
  if (Array.isArray(message)) {
    const problem = message.length > MAX_BATCH
      ? `a batch of ${message.length} messages (at most ${MAX_BATCH})`
      : message.map(checkWorkerMessage).find((p) => p !== null);
    if (problem != null) return { problem };
  }
  const nodes = countNodes(message, maxNodes);
  return { message, nodes };
}

/** `[message, transfer]` for a snapshot message a worker may post once, else null. */
function snapshotOf(data) {
  if (data === null || typeof data !== "object" || Array.isArray(data) || data.type !== "snapshot") return null;
  const made = data.snapshot;
  if (made === null || typeof made !== "object") return null;
  const files = made.files?.buffer;
  const pyodide = made.pyodide?.buffer;
  if (!(files instanceof ArrayBuffer) || !(pyodide instanceof ArrayBuffer)) return null;
  let meta;
  try {
    meta = JSON.stringify(data, (key, value) => (ArrayBuffer.isView(value) ? null : value));
  } catch {
    return null;
  }
  if (meta === undefined || meta.length > SNAPSHOT_META_CHARS) return null;
  return [data, [files, pyodide]];
}

/** The front gate of one worker (see the module doc). */
class FrontGate {
  constructor({ port, maxMessageChars, maxNodes, window }) {
    this.port = port;
    this.maxMessageChars = maxMessageChars;
    this.maxNodes = maxNodes;
    this.window = window;
    this.inFlight = 0; // characters posted to the page and not acknowledged
    this.inbox = []; // the worker's messages not yet passed on, in order
    this.asking = false; // waiting for the page's limits for the first of them
    this.asks = 0;
    this.snapshots = 0; // snapshot messages passed on (at most one)
    this.closed = false;
    port.onmessage = (event) => {
      if (this.closed) return;
      this.inbox.push(event.data);
      this.pump();
    };
    port.onmessageerror = () => this.refuse("a worker message could not be deserialized");
  }

  /** Pass on what the window allows, in order, until one needs the page's limits. */
  pump() {
    while (!this.closed && !this.asking && this.inbox.length > 0 && this.inFlight < this.window) {
      const checked = this.check(this.inbox[0]);
      if (checked.problem !== undefined) {
        this.refuse(checked.problem);
        return;
      }
      if (checked.ask !== undefined) {
        this.asking = true;
        this.asks++;
        self.postMessage({ ask: this.asks, ...checked.ask });
        return;
      }
      this.inbox.shift();
      const { envelope, transfer, cost } = checked;
      this.inFlight += cost;
      envelope.cost = cost;
      if (transfer === undefined) self.postMessage(envelope);
      else self.postMessage(envelope, transfer);
    }
  }

  /** One message from the worker: what to pass on, or why not. */
  check(data) {
    if (typeof data !== "string") {
      const snapshot = this.snapshots === 0 ? snapshotOf(data) : null;
      if (snapshot === null) {
        return { problem: `a worker message must be JSON text, got ${data === null ? "null" : typeof data}` };
      }
      this.snapshots++;
      return { envelope: { raw: snapshot[0] }, transfer: snapshot[1], cost: SNAPSHOT_META_CHARS };
    }
    const chars = data.length;
    if (chars > this.maxMessageChars) return { ask: { chars } };
    if (chars <= GATE_CHARS) return { envelope: { text: data }, cost: chars };
    const parsed = parse(data, this.maxNodes);
    if (parsed.problem !== undefined) return parsed;
    if (parsed.nodes > this.maxNodes) return { ask: { chars, nodes: parsed.nodes } };
    return {
      envelope: { message: parsed.message, nodes: parsed.nodes, chars },
      cost: chars + NODE_CHARS * parsed.nodes,
    };
  }

  /** What the page says: acknowledgements, and the limits in force when asked. */
  fromPage(msg) {
    if (msg.type === "ack") {
      this.inFlight = Math.max(0, this.inFlight - msg.chars);
    } else if (msg.type === "limits" && msg.ask === this.asks && this.asking) {
      // Limits only grow while the worker lives (an execution with larger limits):
      // the page cuts the worker off itself when the message is over them.
      this.maxMessageChars = Math.max(this.maxMessageChars, msg.maxMessageChars);
      this.maxNodes = Math.max(this.maxNodes, msg.maxNodes);
      this.asking = false;
    }
    this.pump();
  }

  /** The worker broke the rules: say so once, pass nothing more on. */
  refuse(problem) {
    if (this.closed) return;
    this.closed = true;
    this.inbox.length = 0;
    this.port.onmessage = null;
    this.port.close();
    self.postMessage({ problem });
  }
}

let front = null;

self.onmessage = (event) => {
  const msg = event.data;
  if (front !== null) {
    front.fromPage(msg);
    return;
  }
  if (msg.type === "attach") {
    front = new FrontGate(msg);
    return;
  }
  const { id, text, maxNodes } = msg;
  const parsed = parse(text, maxNodes);
  if (parsed.problem === undefined && parsed.nodes > maxNodes) {
    self.postMessage({ id, problem: `a worker message of ${text.length} characters holds more than ${maxNodes} values` });
    return;
  }
  self.postMessage({ id, ...parsed });
};
