// Warm start, page side: pre-warmed workers and the snapshot plan of each new worker.
//
// A pool keeps workers booted (Pyodide up, monty_runtime imported, nothing
// page-specific: no host functions, no mode, no limits, no shared buffer) for one set
// of boot options. MontyRuntime.create() takes one and sends it `configure`, which
// starts the Python session; the pool boots a replacement in the background. A worker
// that has been handed out never comes back: a disposed runtime's worker is
// terminated, its state is dirty.
//
// Every worker (pooled or not) asks the page's SnapshotSource (snapshot.js) how to
// boot: restore the page's snapshot, or boot cold and make it, or boot cold.
// No dependencies beyond snapshot.js, protocol.js and boot-fetch.js; no bundler needed.

import { serveBootFetches } from "../shared/boot-fetch.js";
import { PROTOCOL_VERSION } from "../shared/protocol.js";
import { PYODIDE_DIR } from "../layout.js";
import { diagnoseWorkerScript, httpFailure } from "../shared/hints.js";
import { startGateWorker } from "./control.js";
import { messageGateByDefault } from "./options.js";
import { pyodideAssets, snapshotSource } from "./snapshot.js";

/** Pool boots that fail in a row before the pool stops refilling (until prewarm()). */
const MAX_FAILURES = 3;

/** The options that decide how a worker boots (the pool key); everything else is
 * per runtime and travels with `configure`. */
export const BOOT_OPTION_KEYS = Object.freeze([
  "workerURL",
  "indexURL",
  "lockFileURL",
  "packageBaseUrl",
  "bootTimeoutMs",
  "requireCSP",
  "snapshot",
  "buildInfoURL",
]);

export function bootKey(opts) {
  return JSON.stringify(BOOT_OPTION_KEYS.map((k) => opts[k] ?? null));
}

// ------------------------------------------------------------------ snapshot plan

/** The Pyodide folder a worker boots from (boot.js's default: next to this module). */
function pyodideFolder(opts) {
  const href = new URL(opts.indexURL ?? PYODIDE_DIR).href;
  return href.endsWith("/") ? href : `${href}/`;
}

/**
 * How the next worker with these (normalized) options boots.
 * @returns {Promise<{snapshot: object | null, make: boolean, source: any, note: string,
 *   problem: string | null, lookupMs: number, waitedMs: number, assets?: any, assetsMs?: number}>}
 */
export async function bootPlan(opts) {
  if (opts.snapshot === false) {
    return { snapshot: null, make: false, source: null, note: "disabled", problem: null, lookupMs: 0, waitedMs: 0 };
  }
  const source = snapshotSource(opts.buildInfoURL, { persist: opts.snapshot !== "memory" });
  // Compiled in the page once, while the snapshot is looked up (or made), then handed
  // to every restoring worker.
  const assets = source.state === "off" ? null : pyodideAssets(pyodideFolder(opts));
  try {
    const plan = await source.acquire();
    const out = { ...plan, source, assets: null, assetsMs: 0 };
    if (plan.snapshot && assets !== null) {
      const t0 = performance.now();
      out.assets = await assets;
      out.assetsMs = performance.now() - t0;
    }
    return out;
  } catch (err) {
    return {
      snapshot: null, make: false, source: null, note: "off", problem: `snapshot lookup failed: ${err?.message ?? err}`,
      lookupMs: 0, waitedMs: 0,
    };
  }
}

/** The `init` fields of a plan. */
export function planFields(plan) {
  const out = {};
  if (plan.snapshot) out.snapshot = plan.snapshot;
  if (plan.make) out.makeSnapshot = true;
  if (plan.assets) out.assets = plan.assets;
  return out;
}

/** A worker's `snapshot` message: hand it to the source when this worker was the maker. */
export function offerSnapshot(plan, msg) {
  if (!plan?.make || !plan.source) return;
  plan.source.offer(msg.ok === true ? msg.snapshot : null, msg.ok === true ? null : String(msg.reason ?? ""));
  plan.make = false;
}

/** The worker booted (or failed to): settle the plan with the snapshot source. */
export function settlePlan(plan, boot, failure = null) {
  if (!plan?.source) return;
  if (plan.make) {
    // The maker was stopped or died before it said anything: later workers must not
    // wait for it; the next one makes the snapshot.
    plan.source.offer(null, failure ?? boot?.reason ?? "the worker made no snapshot", { retry: boot == null });
    plan.make = false;
  }
  if (plan.snapshot && boot?.snapshot === "fallback") {
    plan.source.reject(plan.snapshot, String(boot.reason ?? "restore failed"));
  } else if (plan.snapshot && boot?.snapshot === "restored") {
    plan.source.confirm(plan.snapshot);
  }
}

/**
 * The boot report of a runtime's worker (MontyRuntime#boot): how Python came up and
 * where the time went, page and worker phases in order.
 */
export function bootReport({ plan, ready, pooled, startedAt, bootPhases, waitMs = 0, configureMs = null }) {
  const boot = ready?.boot ?? {};
  const phases = [];
  const bg = pooled ? { background: true } : {};
  if (plan) {
    const verify = plan.lookup?.verify;
    const download = plan.note === "shipped" ? plan.lookup?.shipped : undefined;
    if (plan.lookupMs) {
      const own = plan.lookupMs - (typeof verify === "number" ? verify : 0) - (typeof download === "number" ? download : 0);
      phases.push({ name: "snapshot:lookup", ms: Math.max(0, own), where: "page", ...bg });
      if (typeof verify === "number") phases.push({ name: "snapshot:verify", ms: verify, where: "page", ...bg });
      // The build's snapshot (a first visit): fetched, integrity-checked, unpacked.
      if (typeof download === "number") phases.push({ name: "snapshot:download", ms: download, where: "page", ...bg });
    }
    if (plan.waitedMs) phases.push({ name: "snapshot:wait", ms: plan.waitedMs, where: "page", ...bg });
    if (plan.assetsMs >= 1) phases.push({ name: "pyodide:compile", ms: plan.assetsMs, where: "page", ...bg });
  }
  for (const [name, ms] of Object.entries(bootPhases ?? {})) {
    if (name === "start" && configureMs !== null) continue;
    phases.push({ name, ms, where: "worker", ...bg });
  }
  if (pooled) {
    // Always present for a pooled worker, so the report has one shape: 0 ms (or the
    // clock's resolution) when the worker had already booted.
    phases.push({ name: "pool:wait", ms: waitMs, where: "page" });
    if (configureMs !== null) {
      const start = ready?.phases?.start;
      if (typeof start === "number") phases.push({ name: "start", ms: start, where: "worker" });
      phases.push({ name: "configure", ms: configureMs, where: "page" });
    }
  }
  let snapshot = boot.snapshot ?? "none";
  if (snapshot === "none" && plan && !plan.snapshot && plan.note !== "make") {
    snapshot = plan.note === "disabled" ? "disabled" : "unavailable";
  }
  return {
    mode: boot.mode ?? "cold",
    snapshot,
    snapshotFrom: snapshot === "restored" ? (["cache", "shipped"].includes(plan?.note) ? plan.note : "page") : null,
    reason: boot.reason ?? plan?.problem ?? null,
    pooled,
    totalMs: performance.now() - startedAt,
    phases,
  };
}

// ------------------------------------------------------------------ pooled workers

/** One pre-warmed worker: boots with `deferConfig` and waits to be taken. */
export class PooledWorker {
  constructor(opts, label) {
    this.opts = opts;
    this.label = label;
    this.state = "booting"; // booting -> idle -> taken | dead
    this.plan = null;
    this.info = null; // {phases, env, boot} from `booted`
    this.startedAt = performance.now();
    this.bootedAt = null;
    this.booted = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    this.booted.catch(() => {});
    this.worker = null;
    /** @type {Worker | null} the gate started with it (takeGate) */
    this.gate = null;
    this._bootFetch = null;
    this._timer = null;
    /** @type {((worker: PooledWorker, err: Error) => void) | undefined} set by the pool */
    this.onDead = undefined;
    /** @type {(() => void) | undefined} set by the pool */
    this.refill = undefined;
    this._start();
  }

  _start() {
    const opts = this.opts;
    try {
      this.worker = new Worker(opts.workerURL, { type: "module", name: this.label });
    } catch (err) {
      this._fail(`cannot start the worker: ${err?.message ?? err}`, "worker");
      return;
    }
    const worker = this.worker;
    // Its gate (dispatch.js openGate) starts with it, so taking it costs no worker start.
    this.gate = messageGateByDefault() ? startGateWorker(`${this.label}-gate`) : null;
    if (this.gate !== null) {
      this.gate.onerror = (event) => {
        event.preventDefault?.();
        this.gate?.terminate();
        this.gate = null; // the taker starts one (and learns why it fails)
      };
    }
    worker.onmessage = (event) => this._onMessage(event.data);
    worker.onerror = (event) => {
      event.preventDefault?.();
      if (event.message) this._fail(`the worker reported an uncaught error: ${event.message}`, "worker");
      else diagnoseWorkerScript(opts.workerURL).then((why) => this._fail(`the worker failed: ${why}`, "worker"));
    };
    worker.onmessageerror = () => this._fail("a worker message could not be deserialized", "worker");
    const channel = new MessageChannel();
    this._bootFetch = serveBootFetches(channel.port1, {
      allowed: [opts.workerURL, opts.indexURL, opts.lockFileURL, opts.packageBaseUrl],
      onMissing: (url, status, text) => {
        if (opts.indexURL && url.startsWith(opts.indexURL)) {
          this._fail(`boot step "loadPyodide" failed: ${httpFailure(status, text, url)}`, "loadPyodide");
        }
      },
    });
    this._timer = setTimeout(
      () => this._fail(`the worker did not boot within ${opts.bootTimeoutMs} ms`, "timeout"),
      opts.bootTimeoutMs,
    );
    worker.postMessage({
      type: "init",
      version: PROTOCOL_VERSION,
      deferConfig: true,
      // Placeholders: the page-specific configuration comes with `configure`.
      functions: [],
      sandbox: false,
      limits: null,
      sync: "auto",
      indexURL: opts.indexURL,
      lockFileURL: opts.lockFileURL,
      packageBaseUrl: opts.packageBaseUrl,
      stepTimeoutMs: opts.bootTimeoutMs,
      requireCSP: opts.requireCSP,
      bootPort: channel.port2,
      planFollows: true, // how it boots: `plan`, below (worker-host.js says why)
    }, [channel.port2]);
    bootPlan(opts).then((plan) => {
      this.plan = plan;
      if (this.state === "dead") {
        settlePlan(plan, null, "the pooled worker was discarded");
        return;
      }
      worker.postMessage({ type: "plan", ...planFields(plan) });
    });
  }

  _onMessage(data) {
    let msg = data;
    if (typeof msg === "string") {
      try {
        msg = JSON.parse(msg);
      } catch {
        return;
      }
    }
    if (!msg || typeof msg !== "object") return;
    switch (msg.type) {
      case "snapshot":
        offerSnapshot(this.plan, msg);
        return;
      case "booted":
        if (this.state === "dead") return;
        clearTimeout(this._timer);
        this._bootFetch?.close();
        this.info = { phases: msg.phases ?? {}, env: msg.env ?? {}, boot: msg.boot ?? {} };
        settlePlan(this.plan, this.info.boot);
        this.bootedAt = performance.now();
        if (this.state === "booting") this.state = "idle";
        this._resolve(this);
        return;
      case "boot_error":
        this._fail(`boot step "${msg.step}" failed: ${msg.message}`, String(msg.step));
        return;
      case "log": {
        const level = ["debug", "info", "warn", "error"].includes(msg.level) ? msg.level : "log";
        console[level](`[monty-runtime ${this.label}] ${msg.message}`);
        return;
      }
      default:
        console.warn(`[monty-runtime ${this.label}] ignored a ${String(msg.type).slice(0, 40)} message before configure`);
    }
  }

  _fail(message, step) {
    if (this.state === "dead") return;
    this.state = "dead";
    clearTimeout(this._timer);
    this._bootFetch?.close();
    this.worker?.terminate();
    this.gate?.terminate();
    this.gate = null;
    settlePlan(this.plan, null, message);
    const err = /** @type {Error & {step?: string}} */ (new Error(message));
    err.step = step;
    this._reject(err);
    this.onDead?.(this, err);
  }

  /** The gate started with this worker, for its taker (or null). */
  takeGate() {
    const gate = this.gate;
    this.gate = null;
    if (gate !== null) gate.onerror = null;
    return gate;
  }

  /** Hand the worker over (its handlers are the caller's from now on). */
  detach() {
    const worker = this.worker;
    worker.onmessage = null;
    worker.onerror = null;
    worker.onmessageerror = null;
    this.state = "taken";
    return worker;
  }

  terminate() {
    if (this.state === "taken" || this.state === "dead") return;
    this.state = "dead";
    clearTimeout(this._timer);
    this._bootFetch?.close();
    this.worker?.terminate();
    this.gate?.terminate();
    this.gate = null;
    settlePlan(this.plan, null, "the pooled worker was discarded");
  }
}

/** Pre-warmed workers for one set of boot options. */
export class WorkerPool {
  constructor(opts) {
    this.opts = opts;
    this.target = 0;
    /** @type {PooledWorker[]} booting or idle, oldest first */
    this.entries = [];
    this.failures = 0;
    this.lastError = null;
    this._spawned = 0;
    this._waiters = [];
  }

  get idle() {
    return this.entries.filter((e) => e.state === "idle").length;
  }

  get booting() {
    return this.entries.filter((e) => e.state === "booting").length;
  }

  stats() {
    return { target: this.target, idle: this.idle, booting: this.booting, failures: this.failures };
  }

  /** Keep `n` workers ready; resolves once they are (rejects after repeated failures). */
  prewarm(n) {
    this.target = n;
    this.failures = 0;
    while (this.entries.length > n) {
      // Trim: the newest first (the oldest are likely ready).
      const extra = this.entries.pop();
      extra.terminate();
    }
    this._fill();
    return this._whenFull();
  }

  _whenFull() {
    if (this.idle >= this.target) return Promise.resolve(this.stats());
    if (this.failures >= MAX_FAILURES) return Promise.reject(this.lastError);
    return new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
  }

  _notify() {
    const waiters = this._waiters;
    if (this.idle >= this.target) {
      this._waiters = [];
      for (const w of waiters) w.resolve(this.stats());
    } else if (this.failures >= MAX_FAILURES) {
      this._waiters = [];
      for (const w of waiters) w.reject(this.lastError);
    }
  }

  _fill() {
    while (this.entries.length < this.target && this.failures < MAX_FAILURES) {
      const entry = new PooledWorker(this.opts, `monty-pool-${++this._spawned}`);
      entry.onDead = (dead, err) => {
        this._remove(dead);
        this.failures += 1;
        this.lastError = err;
        this._fill();
        this._notify();
      };
      entry.booted.then(() => {
        this.failures = 0;
        this._notify();
      }, () => {});
      this.entries.push(entry);
    }
  }

  _remove(entry) {
    const i = this.entries.indexOf(entry);
    if (i >= 0) this.entries.splice(i, 1);
  }

  /** A ready worker if there is one, else the one closest to ready, else null. The
   * taker calls `entry.refill()` once it has configured the worker (a replacement
   * booting at the same time would slow that down), and the pool boots a replacement. */
  take() {
    const entry = this.entries.find((e) => e.state === "idle") ??
      this.entries.find((e) => e.state === "booting");
    if (!entry) return null;
    this._remove(entry);
    entry.onDead = null;
    if (entry.state === "idle") entry.state = "taken";
    else entry.state = "claimed";
    let refilled = false;
    entry.refill = () => {
      if (refilled) return;
      refilled = true;
      this._fill();
    };
    return entry;
  }

  /** Terminate every idle or booting worker and stop refilling. */
  drain() {
    this.target = 0;
    for (const e of this.entries.splice(0)) e.terminate();
    this._notify();
  }
}

const pools = new Map();

/** The pool of these boot options, or null (`create`: make one). */
export function poolFor(opts, create = false) {
  const key = bootKey(opts);
  let pool = pools.get(key);
  if (!pool && create) {
    pool = new WorkerPool(opts);
    pools.set(key, pool);
  }
  return pool ?? null;
}

/** Every pool of this page. */
export function allPools() {
  return [...pools.values()];
}
