// The Web Worker of one monty-runtime runtime (module worker).
//
// Waits for the page's `init`, boots Pyodide offline with monty_runtime (boot.js: each
// step small and timed), loads `monty_runtime.worker`, then posts `ready` with the
// protocol version and the boot phases. A failed step posts `boot_error` (the step and
// the cause), so the page always gets a typed answer, never a hang.
//
// After `ready`, page messages are dispatched here: `execute` enters Python through
// `callPromising` (so a sync-style host call can block on the page's answer with JSPI),
// `host_result` resolves the promise that Python waits on without entering Python,
// `interrupt`/`dispose` go to Python, anything else is refused with a ProtocolError.
//
// This script runs under a Content-Security-Policy without 'unsafe-eval': no eval, no
// new Function, and no Python source assembled from data (modules are imported by name,
// values are passed as values).
import { boot, describe } from "./boot.js";
import { PROTOCOL_VERSION, SYNC_BUFFER, checkMessage } from "./protocol.js";

const { STATE, LENGTH, HEADER_BYTES, EMPTY, LAST } = SYNC_BUFFER;

const phases = {};
let state = "init"; // init -> booting -> ready | failed | disposed
const early = []; // page messages that arrived while booting
const hostCalls = new Map(); // call id -> resolve(json text)
let py = null; // { execute, handle, interrupt, dispose } (PyProxy callables)
let jspi = false;
let sync = null; // { i32, u8 } views of the shared buffer, when the page sent one

// Messages to the page are JSON text: one message, or a JSON array of messages that
// belong together (Python sends a run's last event and its result as one batch). Each
// is posted at once, so output streams even while Python is busy in a long loop.
const post = (message) => self.postMessage(JSON.stringify(message));

function idOf(message) {
  const id = message && typeof message === "object" ? message.id : undefined;
  return typeof id === "number" || typeof id === "string" ? id : null;
}

function reject(id, name, message) {
  post({ type: "rejected", id, error: { name, message } });
}

function log(level, message) {
  post({ type: "log", level, message: String(message) });
}

// ------------------------------------------------------------------------------ boot

async function step(name, fn) {
  const start = performance.now();
  try {
    return await fn();
  } catch (err) {
    err.step ??= name;
    throw err;
  } finally {
    phases[name] = performance.now() - start;
  }
}

function checkInit(msg) {
  if (msg.version !== PROTOCOL_VERSION) {
    throw new Error(`protocol version mismatch: page ${msg.version}, worker ${PROTOCOL_VERSION}`);
  }
  if (!Array.isArray(msg.functions)) throw new TypeError("init.functions must be an array");
  for (const key of ["indexURL", "lockFileURL", "packageBaseUrl"]) {
    if (msg[key] != null && typeof msg[key] !== "string") throw new TypeError(`init.${key} must be a string`);
  }
  if (msg.syncBuffer != null && !(msg.syncBuffer instanceof SharedArrayBuffer)) {
    throw new TypeError("init.syncBuffer must be a SharedArrayBuffer");
  }
}

/** Block until the page wrote the answer of the pending synchronous host call. */
function waitSync() {
  if (sync === null) return null;
  const { i32, u8 } = sync;
  const parts = [];
  let total = 0;
  for (;;) {
    Atomics.wait(i32, STATE, EMPTY);
    const s = Atomics.load(i32, STATE);
    if (s === EMPTY) continue;
    const n = Atomics.load(i32, LENGTH);
    parts.push(u8.slice(HEADER_BYTES, HEADER_BYTES + n)); // a copy (TextDecoder refuses shared memory)
    total += n;
    Atomics.store(i32, STATE, EMPTY);
    Atomics.notify(i32, STATE);
    if (s === LAST) break;
  }
  let bytes = parts[0];
  if (parts.length > 1) {
    bytes = new Uint8Array(total);
    let offset = 0;
    for (const part of parts) {
      bytes.set(part, offset);
      offset += part.length;
    }
  }
  return new TextDecoder().decode(bytes);
}

const hooks = {
  post: (text) => self.postMessage(text),
  promise: (id) => new Promise((resolve) => hostCalls.set(id, resolve)),
  settle: (id, text) => {
    const resolve = hostCalls.get(id);
    if (resolve) {
      hostCalls.delete(id);
      resolve(text);
    }
  },
  waitSync,
};

async function start(init) {
  let stepName = "init";
  try {
    checkInit(init);
    const booted = await boot({
      indexURL: init.indexURL ?? undefined,
      lockFileURL: init.lockFileURL ?? undefined,
      packageBaseUrl: init.packageBaseUrl ?? undefined,
      timeoutMs: init.stepTimeoutMs ?? undefined,
      onPhase: (name, ms) => {
        stepName = name;
        phases[name] = ms;
      },
    });
    const pyodide = booted.pyodide;
    stepName = "import:monty_runtime.worker";
    const mod = await step(stepName, () => pyodide.pyimport("monty_runtime.worker"));
    stepName = "start";
    await step(stepName, () => {
      if (init.syncBuffer) {
        sync = { i32: new Int32Array(init.syncBuffer), u8: new Uint8Array(init.syncBuffer) };
      }
      const config = {
        version: init.version,
        functions: init.functions,
        sandbox: Boolean(init.sandbox),
        limits: init.limits ?? null,
        sync: init.sync ?? "auto",
        syncBuffer: sync !== null,
      };
      const info = mod.start(JSON.stringify(config), hooks);
      info?.destroy?.();
      py = {
        execute: mod.handle_execute,
        handle: mod.handle,
        interrupt: mod.interrupt,
        dispose: mod.dispose,
      };
      // Enter Python through callPromising only when a sync-style host call may block
      // with JSPI (it costs a scheduler hop per execute).
      jspi = typeof WebAssembly.Suspending === "function" &&
        typeof py.execute.callPromising === "function" &&
        (config.sync === "auto" || config.sync === "jspi");
    });
    state = "ready";
    post({
      type: "ready",
      version: PROTOCOL_VERSION,
      phases,
      env: {
        jspi,
        crossOriginIsolated: self.crossOriginIsolated === true,
        syncBuffer: sync !== null,
        sync: init.sync ?? "auto",
        pyodideVersion: pyodide.version,
      },
    });
    for (const msg of early.splice(0)) dispatch(msg);
  } catch (err) {
    state = "failed";
    const failedStep = err?.step ?? stepName;
    post({ type: "boot_error", name: "BootError", step: failedStep, message: describe(err?.cause ?? err) });
    for (const msg of early.splice(0)) {
      const id = idOf(msg);
      if (id !== null) reject(id, "BootError", `the worker failed to boot (step ${failedStep})`);
    }
  }
}

// -------------------------------------------------------------------------- dispatch

function execute(msg) {
  const id = msg.id;
  const limits = msg.limits == null ? undefined : JSON.stringify(msg.limits);
  const scriptName = msg.scriptName ?? undefined;
  if (jspi) {
    py.execute.callPromising(id, msg.code, limits, scriptName).catch((err) => {
      reject(id, "InternalError", describe(err));
    });
    return;
  }
  try {
    py.execute(id, msg.code, limits, scriptName);
  } catch (err) {
    reject(id, "InternalError", describe(err));
  }
}

function dispatch(msg) {
  const problem = checkMessage("page_to_worker", msg);
  if (problem !== null) {
    reject(idOf(msg), "ProtocolError", problem);
    return;
  }
  switch (msg.type) {
    case "execute":
      if (idOf(msg) === null) {
        reject(null, "ProtocolError", "execute message without a number or string id");
        return;
      }
      execute(msg);
      return;
    case "host_result": {
      const resolve = hostCalls.get(msg.id);
      if (resolve) {
        hostCalls.delete(msg.id);
        resolve(JSON.stringify(msg));
      }
      return;
    }
    case "interrupt":
      try {
        py.interrupt(idOf(msg) ?? undefined);
      } catch (err) {
        log("error", `interrupt failed: ${describe(err)}`);
      }
      return;
    case "dispose":
      state = "disposed";
      try {
        py.dispose();
      } catch (err) {
        log("error", `dispose failed: ${describe(err)}`);
      }
      self.close();
      return;
    default: // "init" again
      reject(idOf(msg), "ProtocolError", `unexpected ${msg.type} message`);
  }
}

self.onmessage = (event) => {
  const msg = event.data;
  if (state === "ready") {
    dispatch(msg);
  } else if (state === "init") {
    if (msg && typeof msg === "object" && msg.type === "init") {
      state = "booting";
      start(msg);
    } else {
      reject(idOf(msg), "ProtocolError", "the first message must be init");
    }
  } else if (state === "booting") {
    early.push(msg);
  } else {
    const id = idOf(msg);
    if (id !== null) reject(id, state === "failed" ? "BootError" : "StateError", `worker is ${state}`);
  }
};

self.onmessageerror = () => log("error", "a page message could not be deserialized");
