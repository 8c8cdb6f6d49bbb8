// The Web Worker of one monty-runtime runtime (module worker).
//
// Waits for the page's `init`, boots Pyodide offline with monty_runtime (boot.js: each
// step small and timed), loads `monty_runtime.worker`, then posts `ready` with the
// protocol version and the boot phases. A failed step posts `boot_error` (the step and
// the cause), so the page always gets a typed answer, never a hang.
//
// Warm start (snapshot.js, pool.js): `init.snapshot` restores a memory snapshot instead
// of booting cold (falling back to the cold chain if it does not fit), and
// `init.makeSnapshot` takes one after a cold boot and posts it (`snapshot`) before
// anything page-specific exists; with `init.planFollows` those two (and the page's
// compiled Pyodide) come in a later `plan` message, and the worker fetches its lock file
// and loads Pyodide's scripts while the page downloads the snapshot (a first visit).
// With `init.deferConfig` the worker only boots, posts
// `booted` and waits in a pool: the page-specific part (host functions, mode, limits,
// the shared buffer) comes with `configure`, then `ready` as above.
//
// After `ready`, page messages are dispatched here: `execute` enters Python through
// `callPromising` (so a sync-style host call can block on the page's answer with JSPI),
// `host_result` resolves the promise that Python waits on without entering Python,
// `interrupt`/`dispose` go to Python, anything else is refused with a ProtocolError.
//
// This script runs under a Content-Security-Policy without 'unsafe-eval' and without
// connections (connect-src 'none'): no eval, no new Function, no Python source
// assembled from data (modules are imported by name, values are passed as values), and
// no fetch. The boot first checks that the policy is in force (csp-check.js; a
// BootError with step "csp" unless the page passed requireCSP: false), loads what it
// needs through the page (boot-fetch.js), and before `ready` removes the network,
// storage and cross-context APIs from this global scope (lockdown.js).
import { boot } from "./boot.js";
import { describe } from "../shared/errors.js";
import { installBootFetch } from "../shared/boot-fetch.js";
import { checkWorkerPolicy, policyMissingMessage } from "./csp-check.js";
import { lockDownGlobals } from "./lockdown.js";
import {
  capProblem, heapBytes, installMemoryCap, memoryCap, memoryRefusals, minimumCap, openReserve, rearmReserve,
  releaseBootData, setMemoryCap,
} from "./memory-cap.js";
import { CONTROL, PROTOCOL_VERSION, SYNC_BUFFER, checkMessage } from "../shared/protocol.js";

const { STATE, LENGTH, HEADER_BYTES, EMPTY, LAST } = SYNC_BUFFER;

// limits.memory: growth of the wasm heap is refused past the cap (memory-cap.js);
// installed before Pyodide loads. The runtime's cap is set at configure.
installMemoryCap();
const memory = { floor: 0, runtimeCap: null };
// The global names the platform gave this worker, before the boot added Pyodide's own
// (lockdown.js keeps those the boot added, and reports them).
const PLATFORM_NAMES = new Set(Object.getOwnPropertyNames(globalThis));

const phases = {};
let state = "init"; // init -> booting [-> booted -> configuring] -> ready | failed | disposed
let booted = null; // { pyodide, mod, policy, bootFetch, boot, init } once Python is up
const early = []; // page messages that arrived while booting
const hostCalls = new Map(); // call id -> resolve(json text)
let py = null; // { execute, handle, interrupt, dispose } (PyProxy callables)
let jspi = false;
/** JSPI works here (whether or not this runtime has host functions). */
let jspiUsable = false;
/** Code that may block on a coroutine (asyncio.run, run_until_complete, run_sync). */
const MAY_STACK_SWITCH = /\brun(?:_until_complete|_sync)?\s*\(/;
/** @type {{i32: Int32Array, u8: Uint8Array} | null} */
let sync = null; // { i32, u8 } views of the shared buffer, when the page sent one
let importGuard = false; // Python refuses `import js` & co. to executed code (_lockdown.py)
/** @type {Int32Array | null} */
let control = null; // Int32Array over the page's control buffer (cross-origin isolated only)
let fatal = false; // Pyodide failed fatally: reported once, nothing enters Python again
let running = 0; // executions in flight (told by Python: hooks.running)
const codeTimers = new Map(); // timer id -> clear function, for timers Python code set

// Messages to the page are JSON text: one message, or a JSON array of messages that
// belong together (Python sends a run's last event and its result as one batch). Each
// is posted at once, so output streams even while Python is busy in a long loop.
// In a browser they go to the page's gate for this worker (page/gate.js) through the
// port that came with `init` or `configure`. The worker's own postMessage (for a page
// without a gate: the Deno host, whose server/worker.js wraps it) is taken just before
// the lock-down, which removes it from the global scope.
/** @type {((message: any, transfer?: any) => void) | null} */
let nativePost = null;
/** @type {MessagePort | null} */
let out = null;

/** Post `data` (JSON text, or the snapshot object with its transfer) to the page. */
function send(data, transfer = undefined) {
  /** @type {any} */
  const target = out ?? { postMessage: nativePost ?? self.postMessage.bind(self) };
  if (transfer === undefined) target.postMessage(data);
  else target.postMessage(data, transfer);
}

const post = (message) => send(JSON.stringify(message));

/** From now on, talk to the page through `port` (the `outPort` of init or configure). */
function useOutPort(msg) {
  const port = msg?.outPort;
  if (port instanceof MessagePort) out = port;
}

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
  if (msg.deferConfig !== true) checkConfigure(msg, "init");
  for (const key of ["indexURL", "lockFileURL", "packageBaseUrl"]) {
    if (msg[key] != null && typeof msg[key] !== "string") throw new TypeError(`init.${key} must be a string`);
  }
  checkPlan(msg, "init");
  if (msg.bootPort != null && !(msg.bootPort instanceof MessagePort)) {
    throw new TypeError("init.bootPort must be a MessagePort");
  }
  if (msg.requireCSP != null && typeof msg.requireCSP !== "boolean") {
    throw new TypeError("init.requireCSP must be a boolean");
  }
  if (msg.planFollows != null && typeof msg.planFollows !== "boolean") {
    throw new TypeError("init.planFollows must be a boolean");
  }
}

/** A `plan` (or the plan fields of `init`): how to boot. */
function checkPlan(msg, what) {
  if (msg.snapshot != null && (typeof msg.snapshot !== "object" ||
      !(msg.snapshot.pyodide instanceof Uint8Array || msg.snapshot.packed instanceof Blob))) {
    throw new TypeError(`${what}.snapshot must be a snapshot object`);
  }
  if (msg.makeSnapshot != null && typeof msg.makeSnapshot !== "boolean") {
    throw new TypeError(`${what}.makeSnapshot must be a boolean`);
  }
  if (msg.assets != null && typeof msg.assets !== "object") throw new TypeError(`${what}.assets must be an object`);
  return { snapshot: msg.snapshot ?? null, makeSnapshot: msg.makeSnapshot === true, assets: msg.assets ?? null };
}

/** With `init.planFollows`: settled by the page's `plan` message (onPageMessage). */
let planArrived = null;

/** The page-specific part of the configuration (`init`, or `configure` later). */
function checkConfigure(msg, what) {
  if (!Array.isArray(msg.functions)) throw new TypeError(`${what}.functions must be an array`);
  if (msg.syncBuffer != null && !(msg.syncBuffer instanceof SharedArrayBuffer)) {
    throw new TypeError(`${what}.syncBuffer must be a SharedArrayBuffer`);
  }
  if (msg.controlBuffer != null && !(msg.controlBuffer instanceof SharedArrayBuffer &&
      msg.controlBuffer.byteLength >= CONTROL.BYTES)) {
    throw new TypeError(`${what}.controlBuffer must be a SharedArrayBuffer of ${CONTROL.BYTES} bytes`);
  }
  if (msg.outPort != null && !(msg.outPort instanceof MessagePort)) {
    throw new TypeError(`${what}.outPort must be a MessagePort`);
  }
  if (msg.lockName != null && typeof msg.lockName !== "string") {
    throw new TypeError(`${what}.lockName must be a string`);
  }
}

// ------------------------------------------------------------ control and liveness

/**
 * Called by Python's signal handler (src/monty_runtime/_control.py): the page's
 * pending control requests as "kind,id,kind,id..." (empty: a bare tick). Counts a
 * heartbeat the page can read while Python is busy. `rearm`: only signal Python again
 * (it has an interrupt to raise once it is back in the user's code).
 */
function readControl(rearm = false) {
  const i32 = control;
  if (i32 === null) return "";
  if (rearm === true) {
    Atomics.store(i32, CONTROL.SIGNAL, CONTROL.SIGNUM);
    return "";
  }
  Atomics.add(i32, CONTROL.BEAT, 1);
  const end = Atomics.load(i32, CONTROL.WRITE);
  let at = Atomics.load(i32, CONTROL.READ);
  if (end - at > CONTROL.SLOTS || end < at) at = end - CONTROL.SLOTS; // never trust the counters
  const out = [];
  for (; at < end; at++) {
    const slot = CONTROL.RING + 2 * (((at % CONTROL.SLOTS) + CONTROL.SLOTS) % CONTROL.SLOTS);
    out.push(Atomics.load(i32, slot), Atomics.load(i32, slot + 1));
  }
  Atomics.store(i32, CONTROL.READ, end);
  return out.join(",");
}

/**
 * Hold a Web Lock for the life of this worker: the page waits for the same lock, so
 * it learns at once when the worker is gone (closed by executed code, exited, killed),
 * even though a closing worker sends nothing. Taken before lockdown.js removes
 * navigator.locks; resolves false when Web Locks are not available.
 */
function holdLock(name) {
  const locks = typeof name === "string" ? self.navigator?.locks : undefined;
  if (!locks) return Promise.resolve(false);
  return new Promise((resolve) => {
    locks.request(name, { mode: "exclusive", ifAvailable: true }, (lock) => {
      resolve(lock !== null);
      return lock === null ? undefined : new Promise(() => {}); // held until the worker dies
    }).catch(() => resolve(false));
  });
}

const FATAL = /fatally failed|already exited|can no longer be used/i;

/** Report a fatal Pyodide error once; the page then replaces the worker. */
function reportFatal(err) {
  if (fatal) return;
  fatal = true;
  post({ type: "fatal", message: describe(err).slice(0, 2000) });
}

/** Post the snapshot this worker made (or why it made none, when asked to make one) and
 * say how Python came up: cold or from a snapshot, and why not from a snapshot. */
function settleSnapshot(init, snap) {
  const report = {
    mode: snap.status === "restored" ? "snapshot" : "cold",
    snapshot: snap.status, // none | restored | fallback | made | make-failed
    reason: snap.reason ?? null,
  };
  if (snap.made) {
    const made = snap.made;
    send({ type: "snapshot", ok: true, snapshot: made }, [made.files.buffer, made.pyodide.buffer]);
    snap.made = null;
  } else if (init.makeSnapshot === true) {
    post({ type: "snapshot", ok: false, reason: snap.reason ?? "no snapshot was made" });
  }
  return report;
}

/** Boot step "csp": the worker's Content-Security-Policy must be in force. */
async function checkPolicy(init) {
  const policy = await checkWorkerPolicy();
  if (!policy.ok && init.requireCSP !== false) {
    const err = /** @type {Error & {step?: string}} */ (new Error(policyMissingMessage(policy)));
    err.step = "csp";
    throw err;
  }
  return policy;
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
  post: (text) => send(text),
  promise: (id) => new Promise((resolve) => hostCalls.set(id, resolve)),
  settle: (id, text) => {
    const resolve = hostCalls.get(id);
    if (resolve) {
      hostCalls.delete(id);
      resolve(text);
    }
  },
  waitSync,
  control: readControl,
  /** The Python session: the cap of the executions in flight (null: the runtime's). */
  memoryCap: (bytes) => setMemoryCap(bytes ?? memory.runtimeCap),
  /** The Python platform: an execution's code stopped (memory-cap.js reserve). */
  memoryReserve: openReserve,
  running: (n) => {
    running = n;
    if (n === 0) clearCodeTimers();
  },
};

/**
 * Timers set from Python (a PyProxy callback: `js.setTimeout(create_proxy(f), ms)`)
 * live only while an execution is in flight: they are cleared when the worker has no
 * execution left, and none can be set between executions. So a callback an execution
 * left behind cannot keep running into later ones. Timers of JavaScript code (Pyodide's
 * own scheduling) are untouched. Installed once, before lockdown.js seals the scope.
 */
function guardTimers(pyodide) {
  const PyProxy = pyodide.ffi?.PyProxy;
  const isPython = (fn) => typeof PyProxy === "function" && fn instanceof PyProxy;
  const clear = { setTimeout: self.clearTimeout.bind(self), setInterval: self.clearInterval.bind(self) };
  for (const name of ["setTimeout", "setInterval"]) {
    const original = self[name].bind(self);
    const guarded = function (callback, ...rest) {
      if (!isPython(callback)) return original(callback, ...rest);
      if (running === 0) return 0; // between executions: refused
      const id = original(callback, ...rest);
      codeTimers.set(id, clear[name]);
      return id;
    };
    Object.defineProperty(self, name, { value: guarded, writable: false, configurable: false });
  }
  for (const name of ["clearTimeout", "clearInterval"]) {
    const original = self[name].bind(self);
    const guarded = (id) => {
      codeTimers.delete(id);
      original(id);
    };
    Object.defineProperty(self, name, { value: guarded, writable: false, configurable: false });
  }
}

function clearCodeTimers() {
  for (const [id, clear] of codeTimers) clear(id);
  codeTimers.clear();
}

async function start(init) {
  let stepName = "init";
  let bootFetch = null;
  // Ready for `plan` before the first await: the page may send it right after `init`.
  // Taken into `init`: settleSnapshot reads makeSnapshot, the release below snapshot.
  const plan = init.planFollows !== true ? null : new Promise((resolve, reject) => {
    planArrived = { resolve, reject };
  }).then((fields) => Object.assign(init, fields));
  plan?.catch(() => {});
  try {
    checkInit(init);
    stepName = "csp";
    const policy = await step(stepName, () => checkPolicy(init));
    if (init.bootPort) bootFetch = installBootFetch(init.bootPort);
    const result = await boot({
      indexURL: init.indexURL ?? undefined,
      lockFileURL: init.lockFileURL ?? undefined,
      packageBaseUrl: init.packageBaseUrl ?? undefined,
      timeoutMs: init.stepTimeoutMs ?? undefined,
      snapshot: init.snapshot ?? null,
      makeSnapshot: init.makeSnapshot === true,
      assets: init.assets ?? null,
      plan,
      onPhase: (name, ms) => {
        stepName = name;
        phases[name] = ms;
      },
    });
    const pyodide = result.pyodide;
    const report = settleSnapshot(init, result.snapshot);
    // The bytes are in Pyodide's memory now: free them and Pyodide's references.
    if (report.mode === "snapshot") releaseBootData(pyodide, init.snapshot);
    else releaseBootData(pyodide);
    init.snapshot = null;
    init.assets = null;
    stepName = "import:monty_runtime.worker";
    const mod = await step(stepName, () => pyodide.pyimport("monty_runtime.worker"));
    booted = { pyodide, mod, policy, bootFetch, boot: report, init };
    if (init.deferConfig === true) {
      // A pooled worker: booted, nothing page-specific yet; `configure` follows.
      bootFetch?.close();
      state = "booted";
      post({
        type: "booted",
        phases,
        boot: report,
        env: { crossOriginIsolated: self.crossOriginIsolated === true, pyodideVersion: pyodide.version },
      });
      for (const msg of early.splice(0)) onPageMessage({ data: msg });
      return;
    }
    stepName = "start";
    await configure(init);
  } catch (err) {
    bootFailed(err, stepName, bootFetch);
  }
}

/** The page-specific part: start the Python session, seal the worker, post `ready`. */
async function configure(init) {
  const { pyodide, mod, policy, bootFetch } = booted;
  memory.floor = heapBytes(pyodide._module);
  const capIssue = capProblem(init.limits?.memory ?? null, memory.floor);
  if (capIssue !== null) {
    throw Object.assign(new Error(capIssue), { step: "limits" });
  }
  memory.runtimeCap = init.limits?.memory ?? null;
  setMemoryCap(memory.runtimeCap);
  await step("start", () => {
    if (init.syncBuffer) {
      sync = { i32: new Int32Array(init.syncBuffer), u8: new Uint8Array(init.syncBuffer) };
    }
    if (init.controlBuffer) {
      control = new Int32Array(init.controlBuffer);
      pyodide.setInterruptBuffer(new Int32Array(init.controlBuffer, 0, 1));
    }
    try {
      pyodide._api.on_fatal = reportFatal; // internal hook; the catch in execute() is the fallback
    } catch {
      // not available in this Pyodide
    }
    const config = {
      version: init.version,
      functions: init.functions,
      sandbox: Boolean(init.sandbox),
      limits: init.limits ?? null,
      sync: init.sync ?? "auto",
      syncBuffer: sync !== null,
      control: control !== null,
      capabilities: capabilities(),
    };
    const info = mod.start(JSON.stringify(config), hooks);
    importGuard = info?.get?.("importGuard") === true;
    info?.destroy?.();
    py = {
      execute: mod.handle_execute,
      handle: mod.handle,
      interrupt: mod.interrupt,
      dispose: mod.dispose,
    };
    // Enter Python through callPromising only when a sync-style host call may block
    // with JSPI (it costs a scheduler hop per execute): never without host functions.
    // Code without host functions may still need stack switching: asyncio.run() and
    // friends block on a coroutine with JSPI, so such code always takes that entry.
    jspiUsable = typeof /** @type {any} */ (WebAssembly).Suspending === "function" &&
      typeof py.execute.callPromising === "function" &&
      (config.sync === "auto" || config.sync === "jspi");
    jspi = jspiUsable && config.functions.length > 0;
  });
  // The boot is over: no more fetches through the page, and the network, storage
  // and cross-context APIs leave this global scope before any executed code runs.
  bootFetch?.close();
  guardTimers(pyodide);
  const lock = await holdLock(init.lockName);
  nativePost ??= self.postMessage.bind(self);
  const locked = lockDownGlobals(self, {
    kept: Object.getOwnPropertyNames(globalThis).filter((name) => !PLATFORM_NAMES.has(name)),
  });
  if (locked.failed.length) log("warn", `lockdown: still reachable: ${locked.failed.join(", ")}`);
  state = "ready";
  post({
    type: "ready",
    version: PROTOCOL_VERSION,
    phases,
    env: {
      csp: {
        enforced: policy.ok,
        required: init.requireCSP !== false,
        evalBlocked: policy.evalBlocked,
        connectBlocked: policy.connectBlocked,
      },
      lockdown: {
        removed: locked.removed,
        failed: locked.failed,
        allowed: locked.allowed,
        kept: locked.kept,
        constants: locked.constants,
        remaining: locked.remaining,
      },
      importGuard,
      jspi,
      capabilities: capabilities(),
      crossOriginIsolated: self.crossOriginIsolated === true,
      syncBuffer: sync !== null,
      sync: init.sync ?? "auto",
      pyodideVersion: pyodide.version,
      control: control !== null,
      lock,
      memory: { cap: memoryCap(), heapBytes: heapBytes(pyodide._module), minimum: minimumCap(memory.floor) },
    },
    boot: booted.boot,
  });
  for (const msg of early.splice(0)) dispatch(msg);
}

/**
 * What this engine offers, detected (not guessed from the browser's name): JSPI
 * (WebAssembly.Suspending, for sync-style host calls), SharedArrayBuffer and Atomics.wait
 * (sync-style host calls through Atomics, interrupts, the control channel), and cross-origin
 * isolation, which SharedArrayBuffer needs but does not imply (WebKitGTK 2.50 is isolated
 * and has none).
 */
function capabilities() {
  return {
    jspi: typeof /** @type {any} */ (WebAssembly)?.Suspending === "function",
    sharedArrayBuffer: typeof SharedArrayBuffer === "function",
    atomicsWait: typeof Atomics?.wait === "function",
    crossOriginIsolated: self.crossOriginIsolated === true,
  };
}

function bootFailed(err, stepName, bootFetch) {
  state = "failed";
  bootFetch?.close();
  const failedStep = err?.step ?? stepName;
  post({ type: "boot_error", name: "BootError", step: failedStep, message: describe(err?.cause ?? err) });
  for (const msg of early.splice(0)) {
    const id = idOf(msg);
    if (id !== null) reject(id, "BootError", `the worker failed to boot (step ${failedStep})`);
  }
}

// -------------------------------------------------------------------------- dispatch

function execute(msg) {
  const id = msg.id;
  const limits = msg.limits == null ? undefined : JSON.stringify(msg.limits);
  const scriptName = msg.scriptName ?? undefined;
  const inputs = msg.inputs ?? undefined; // JSON text of the codec's wire form
  const capIssue = capProblem(msg.limits?.memory ?? null, memory.floor, "options.limits.memory");
  if (capIssue !== null) {
    reject(id, "ValueError", capIssue);
    return;
  }
  rearmReserve();
  const refusedBefore = memoryRefusals();
  const failed = (err) => {
    if (memoryRefusals() > refusedBefore && /MemoryError/.test(describe(err))) {
      // Python could not even unwind the MemoryError: its heap is full at the cap.
      reportFatal(new Error(`the memory cap of ${memoryCap()} bytes was reached and Python could not recover`));
    } else if (fatal || FATAL.test(describe(err))) reportFatal(err);
    else reject(id, "InternalError", describe(err));
  };
  if (jspi || (jspiUsable && MAY_STACK_SWITCH.test(msg.code))) {
    py.execute.callPromising(id, msg.code, limits, scriptName, inputs).catch(failed);
    return;
  }
  try {
    py.execute(id, msg.code, limits, scriptName, inputs);
  } catch (err) {
    failed(err);
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
    case "ping":
      post({ type: "pong" });
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

// The page's messages reach this listener only: it is registered first and stops the
// event there, so a handler that executed code installs later (`self.onmessage = f`,
// addEventListener) never sees a later execution's code or inputs.
function onPageMessage(event) {
  event.stopImmediatePropagation?.();
  const msg = event.data;
  if (state === "ready") {
    dispatch(msg);
  } else if (state === "init") {
    if (msg && typeof msg === "object" && msg.type === "init") {
      useOutPort(msg);
      state = "booting";
      start(msg);
    } else {
      reject(idOf(msg), "ProtocolError", "the first message must be init");
    }
  } else if (state === "booting" && planArrived !== null && msg && typeof msg === "object" && msg.type === "plan") {
    const { resolve, reject: refuse } = planArrived;
    planArrived = null;
    try {
      resolve(checkPlan(msg, "plan"));
    } catch (err) {
      refuse(err);
    }
  } else if (state === "booting" || state === "configuring") {
    early.push(msg);
  } else if (state === "booted" && msg && typeof msg === "object" && msg.type === "configure") {
    useOutPort(msg);
    state = "configuring";
    const init = { ...booted.init, ...msg };
    try {
      checkConfigure(init, "configure");
    } catch (err) {
      bootFailed(err, "configure", null);
      return;
    }
    configure(init).catch((err) => bootFailed(err, "start", null));
  } else if (state === "booted" && msg && typeof msg === "object" && msg.type === "dispose") {
    state = "disposed";
    self.close();
  } else {
    const id = idOf(msg);
    if (id !== null) reject(id, state === "failed" ? "BootError" : "StateError", `worker is ${state}`);
  }
}

self.addEventListener("message", onPageMessage);
// An uncaught error (a Python exception thrown into a JS timer...) ends this worker, as
// one that reached the page would: reported through the gate, its text bounded, and
// kept from the page's own error event, whose text the page would have to take in
// whole (executed code can throw one of any size).
self.addEventListener("error", (event) => {
  event.preventDefault();
  event.stopImmediatePropagation();
  let text;
  try {
    text = String(event.message ?? event.error ?? "unknown error").slice(0, 2000);
  } catch {
    text = "unknown error";
  }
  if (fatal) return;
  fatal = true;
  post({ type: "fatal", message: text, uncaught: true });
});
self.addEventListener("messageerror", (event) => {
  event.stopImmediatePropagation();
  log("error", "a page message could not be deserialized");
});
