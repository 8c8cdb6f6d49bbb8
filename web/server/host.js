// The JS host process of the Deno backend: what a web page is to the browser backend,
// for a Python process (src/monty_runtime/_deno.py) that talks to it over stdio.
//
// It imports the page library itself (../monty-runtime.js: busy record, control
// channel, interrupts, timeouts with their hard path, worker death, snapshots) and runs
// every runtime's workers as Deno workers with read access to the Pyodide folder and
// the built wheels only, sealed (every permission revoked) before any executed code runs
// (./worker.js). One host serves many runtimes; it exits when its stdin closes, so it
// never outlives the Python process that started it.
//
// Started as: deno run --no-prompt --unstable-worker-options --allow-read=<web folder> host.js
// Messages: ./protocol.js (newline-delimited JSON). Host calls from a worker do not run
// here: they go to Python, which checks them against the function's schema and calls
// the Python callable; the answer comes back here and is posted to that worker.

import { HOST_PROTOCOL_VERSION, MESSAGES } from "./protocol.js";

const WEB = new URL("../", import.meta.url);
const PYODIDE = new URL("node_modules/pyodide/", WEB);
const DIST = new URL("dist/", WEB);
const WORKER_URL = new URL("server/worker.js", WEB).href;
/** Worker messages longer than this are left to the page library, which refuses them. */
const MAX_INSPECT_CHARS = 64 * 1024 * 1024;

const pathOf = (url) => decodeURIComponent(url.pathname);

// The page library enables its shared-memory paths (control channel, sync buffer) only
// in a cross-origin isolated page; this process shares memory with its workers only.
// Cache Storage (the stored snapshot) is used in a secure context only: a local process is one.
Object.defineProperty(globalThis, "crossOriginIsolated", { value: true, configurable: true });
if (globalThis.isSecureContext !== true) {
  Object.defineProperty(globalThis, "isSecureContext", { value: true, configurable: true });
}

/** Every worker this process starts: locked down (see ./worker.js for the seal). */
class SandboxWorker extends Worker {
  constructor(url, options = {}) {
    super(url, {
      ...options,
      deno: {
        permissions: {
          read: [pathOf(PYODIDE), pathOf(DIST)],
          write: false,
          net: false,
          env: false,
          run: false,
          ffi: false,
          sys: false,
          import: false,
        },
      },
    });
    /** Request id -> the worker's JSON text that carried its result. */
    this.raw = new Map();
    this.rid = null;
    this._handler = null;
  }

  postMessage(message, transfer) {
    // No boot fetches through the host: the worker reads its own (permitted) files.
    if (message && typeof message === "object" && message.type === "init" && message.bootPort) {
      message = { ...message };
      delete message.bootPort;
      transfer = (transfer ?? []).filter((item) => !(item instanceof MessagePort));
    }
    return transfer === undefined ? super.postMessage(message) : super.postMessage(message, transfer);
  }

  get onmessage() {
    return this._handler;
  }

  set onmessage(handler) {
    this._handler = handler;
    super.onmessage = handler === null ? null : (event) => this._inspect(event, handler);
  }

  /** Take host calls out for Python; note the raw text of results; pass the rest on.
   * What one worker message brings leaves for Python in one write, in its order: its
   * events (taken as the page library handles them, see run()), then its host calls;
   * a result that settles with it follows in the same write (see send()). */
  _inspect(event, handler) {
    const calls = [];
    holding++;
    try {
      this._sort(event, handler, calls);
    } finally {
      holding--;
      release();
      for (const [msg, text, index] of calls) forwardHostCall(this, msg, text, index);
      if (outbox.length) queueMicrotask(flush);
    }
  }

  _sort(event, handler, calls) {
    const data = event.data;
    if (typeof data !== "string" || data.length > MAX_INSPECT_CHARS ||
        (!data.includes('"host_call"') && !data.includes('"result"'))) {
      handler(event);
      return;
    }
    let parsed;
    try {
      parsed = JSON.parse(data);
    } catch {
      handler(event);
      return;
    }
    const batch = Array.isArray(parsed);
    const items = batch ? parsed : [parsed];
    const rest = [];
    items.forEach((msg, index) => {
      if (msg && typeof msg === "object" && msg.type === "host_call" && typeof msg.id === "number") {
        calls.push([msg, data, batch ? index : -1]);
        return;
      }
      if (msg && typeof msg === "object" && msg.type === "result" && typeof msg.id === "number") {
        this.raw.set(msg.id, { text: data, index: batch ? index : -1 });
      }
      rest.push(msg);
    });
    if (rest.length === items.length) handler(event);
    else if (rest.length) handler({ data: JSON.stringify(batch ? rest : rest[0]) });
  }
}
globalThis.Worker = SandboxWorker;

const { MontyRuntime } = await import("../monty-runtime.js");
const { decode, encode } = await import("../shared/codec.js");
const { snapshotSource } = await import("../page/snapshot.js");

// ------------------------------------------------------------------------------ stdio

const encoder = new TextEncoder();

/** Lines for Python, written together once the current message is handled: what a
 * worker posts in one message, and a result that settles with it, leave in one write
 * (each write is a syscall and, on a busy machine, a thread switch). */
let outbox = [];
/** >0 while a worker message is handled (SandboxWorker#_inspect): it flushes after. */
let holding = 0;
/** Runs whose events arrived while a worker message was handled (run(): take). */
const taking = new Set();

function send(message) {
  outbox.push(`${JSON.stringify(message)}\n`);
  // A microtask queued after the message was handled runs after the result's callback
  // (queued while it was handled), so the result leaves with the events.
  if (outbox.length === 1 && holding === 0) queueMicrotask(flush);
}

/** Send the events the runs took while a worker message was handled. */
function release() {
  for (const take of taking) take();
  taking.clear();
}

function flush() {
  if (!outbox.length) return;
  const bytes = encoder.encode(outbox.join(""));
  outbox = [];
  let offset = 0;
  while (offset < bytes.length) offset += Deno.stdout.writeSync(bytes.subarray(offset));
}

function log(level, message) {
  send({ type: "log", level, message: String(message).slice(0, 4000) });
}

// ---------------------------------------------------------------------------- runtimes

/** rid -> {promise: Promise<MontyRuntime>, runtime: MontyRuntime | null} */
const runtimes = new Map();
/** Host call number -> {worker, id} (the worker's own call id). */
const calls = new Map();
let nextCall = 1;
let prewarmed = false;

function ridOf(worker) {
  if (worker.rid !== null) return worker.rid;
  for (const [rid, entry] of runtimes) {
    if (entry.runtime?._hosts.some((host) => host.worker === worker)) {
      worker.rid = rid;
      return rid;
    }
  }
  return null;
}

function forwardHostCall(worker, msg, text, index) {
  const rid = ridOf(worker);
  if (rid === null) {
    worker.postMessage({ type: "host_result", id: msg.id, ok: false, error: { type: "ProtocolError", message: "no runtime" } });
    return;
  }
  const call = nextCall++;
  calls.set(call, { worker, id: msg.id });
  send({ type: "host_call", rid, call, raw: text, index });
}

function errorOf(err) {
  return {
    name: String(err?.name ?? "Error"),
    message: String(err?.message ?? err),
    ...(typeof err?.reason === "string" ? { reason: err.reason } : {}),
    ...(err?.step !== undefined ? { step: String(err.step) } : {}),
  };
}

function create(msg) {
  const functions = {};
  for (const schema of msg.functions) {
    functions[schema.name] = {
      // Never called: host calls are taken out for Python before the library sees them.
      fn: () => {
        throw new Error("host functions run in Python");
      },
      description: schema.description ?? "",
      parameters: schema.parameters ?? null,
    };
  }
  // inflight: request ids not settled yet; started: their handles once the code runs;
  // interrupted: ids to interrupt as soon as their code runs (the page library drops an
  // interrupt that reaches a worker still booting).
  const entry = { runtime: null, promise: null, inflight: new Set(), started: new Map(), interrupted: new Set() };
  const boot = {
    workerURL: WORKER_URL,
    indexURL: PYODIDE.href,
    lockFileURL: new URL("pyodide-lock.json", DIST).href,
    requireCSP: false,
    // Warm start: the first worker boots cold and makes a memory snapshot, kept in
    // Cache Storage (Deno keeps it on disk), so later workers -- and later processes --
    // restore it instead (false: always cold; "memory": this process only).
    snapshot: msg.snapshot ?? true,
  };
  entry.promise = MontyRuntime.create({
    functions,
    sandbox: msg.sandbox === true,
    limits: msg.limits ?? undefined,
    ...(msg.poolSize ? { poolSize: msg.poolSize } : {}),
    sync: "jspi",
    ...boot,
    pool: true, // takes a pre-booted worker when there is one (prewarm)
  });
  if (Number.isInteger(msg.prewarm) && msg.prewarm > 0 && !prewarmed) {
    // Keep workers booted (sealed only when configured) for the next runtimes.
    prewarmed = true;
    MontyRuntime.prewarm(msg.prewarm, boot).catch((err) => log("warn", `prewarm failed: ${err?.message ?? err}`));
  }
  runtimes.set(msg.rid, entry);
  entry.promise.then(
    (rt) => {
      entry.runtime = rt;
      if (runtimes.get(msg.rid) !== entry) {
        rt.dispose();
        return;
      }
      send({ type: "created", rid: msg.rid, info: { boot: rt.boot, env: rt.info?.env ?? null } });
    },
    (err) => send({ type: "create_failed", rid: msg.rid, error: errorOf(err) }),
  );
  entry.promise.catch(() => {});
}

function execute(msg) {
  const entry = runtimes.get(msg.rid);
  if (entry === undefined) {
    send({ type: "rejected", rid: msg.rid, id: msg.id, error: { name: "StateError", message: "MontyRuntime has been disposed", reason: "disposed" } });
    return;
  }
  entry.inflight.add(msg.id);
  const options = {};
  if (msg.limits != null) options.limits = msg.limits;
  if (msg.scriptName != null) options.scriptName = msg.scriptName;
  entry.promise.then(
    (rt) => run(rt, entry, msg, options),
    (err) => settle(entry, msg, { type: "rejected", rid: msg.rid, id: msg.id, error: errorOf(err) }),
  );
}

function settle(entry, msg, reply) {
  entry.inflight.delete(msg.id);
  entry.started.delete(msg.id);
  entry.interrupted.delete(msg.id);
  send(reply);
}

async function run(rt, entry, msg, options) {
  let handle;
  try {
    if (msg.inputs != null) options.inputs = decode(msg.inputs);
    handle = rt.execute(msg.code, options);
  } catch (err) {
    settle(entry, msg, { type: "rejected", rid: msg.rid, id: msg.id, error: errorOf(err) });
    return;
  }
  // Events go to Python as the page library takes them (at the end of the worker
  // message that brought them: release()), never waiting for a consumer; the result as
  // soon as it settles.
  const stream = handle.events;
  const take = () => {
    for (const event of stream.drain()) {
      if (event.type === "run_started") {
        entry.started.set(msg.id, handle);
        if (entry.interrupted.has(msg.id)) handle.interrupt();
      }
      send({ type: "event", rid: msg.rid, id: msg.id, event });
    }
  };
  const push = stream._push;
  stream._push = (event) => {
    push.call(stream, event);
    if (holding > 0) taking.add(take);
    else take();
  };
  take();
  let outcome;
  try {
    outcome = { value: await handle.result };
  } catch (error) {
    outcome = { error };
  }
  take();
  if ("error" in outcome) {
    settle(entry, msg, { type: "rejected", rid: msg.rid, id: msg.id, error: errorOf(outcome.error) });
    return;
  }
  const result = outcome.value;
  const worker = handle._host?.worker;
  const raw = worker?.raw?.get(handle.id);
  worker?.raw?.delete(handle.id);
  const out = {
    stdout: result.stdout,
    stderr: result.stderr,
    error: result.error,
    session_lost: result.sessionLost,
    execution_id: result.executionId,
    duration_ms: result.durationMs,
  };
  if (raw === undefined) out.value = encode(result.value);
  settle(entry, msg, { type: "result", rid: msg.rid, id: msg.id, result: out, ...(raw ? { raw: raw.text, index: raw.index } : {}) });
}

function hostResult(msg) {
  const call = calls.get(msg.call);
  if (call === undefined) return;
  calls.delete(msg.call);
  const answer = { type: "host_result", id: call.id, ok: msg.ok === true };
  if (msg.ok === true && typeof msg.value_json === "string") answer.value_json = msg.value_json;
  else if (msg.ok === true) answer.value = msg.value ?? null;
  else answer.error = msg.error ?? { type: "HostError", message: "host function failed" };
  try {
    call.worker.postMessage(answer);
  } catch {
    // the worker is gone; its execution was already settled
  }
}

function dispatch(msg) {
  const spec = msg && typeof msg === "object" ? MESSAGES.python_to_host[msg.type] : undefined;
  if (spec === undefined || spec.required.some((key) => !(key in msg))) {
    log("error", `bad message from Python: ${JSON.stringify(msg).slice(0, 200)}`);
    return;
  }
  switch (msg.type) {
    case "create":
      create(msg);
      return;
    case "execute":
      execute(msg);
      return;
    case "host_result":
      hostResult(msg);
      return;
    case "interrupt": {
      const entry = runtimes.get(msg.rid);
      if (entry === undefined) return;
      for (const id of msg.id === undefined ? [...entry.inflight] : [msg.id]) {
        if (!entry.inflight.has(id)) continue;
        entry.interrupted.add(id);
        entry.started.get(id)?.interrupt();
      }
      return;
    }
    case "dispose": {
      const entry = runtimes.get(msg.rid);
      runtimes.delete(msg.rid);
      entry?.promise.then((rt) => rt.dispose(), () => {});
      return;
    }
    case "stats": {
      const memory = Deno.memoryUsage();
      let workers = 0;
      for (const entry of runtimes.values()) workers += entry.runtime?.workerCount ?? 0;
      send({ type: "stats", id: msg.id, stats: { ...memory, runtimes: runtimes.size, workers } });
      return;
    }
  }
}

send({ type: "hello", version: HOST_PROTOCOL_VERSION, deno: Deno.version.deno, v8: Deno.version.v8 });

// Python -> host: one JSON message per line; end of input ends this process. Read
// straight into a buffer (no stream machinery per chunk).
const decoder = new TextDecoder();
const inbox = new Uint8Array(1 << 16);
let pending = "";
for (;;) {
  const n = await Deno.stdin.read(inbox);
  if (n === null) break;
  const searchFrom = pending.length; // a long line: only the new text is searched
  pending += decoder.decode(inbox.subarray(0, n), { stream: true });
  let start = 0;
  let newline = pending.indexOf("\n", searchFrom);
  for (; newline >= 0; newline = pending.indexOf("\n", start)) {
    const line = pending.slice(start, newline);
    start = newline + 1;
    if (!line.trim()) continue;
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      log("error", "a line from Python is not JSON");
      continue;
    }
    try {
      dispatch(msg);
    } catch (err) {
      log("error", `${msg?.type} failed: ${err?.stack ?? err}`);
    }
  }
  pending = pending.slice(start);
}
for (const entry of runtimes.values()) entry.runtime?._disposeNow();
// A snapshot made in this process may still be on its way to Cache Storage.
const saving = snapshotSource(new URL("build-info.json", DIST).href, { persist: true }).saved?.();
await Promise.race([saving, new Promise((resolve) => setTimeout(resolve, 5000))]);
flush();
Deno.exit(0);
