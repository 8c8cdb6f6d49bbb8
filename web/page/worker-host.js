/**
 * One Web Worker of a runtime and everything in flight on it: its lifecycle.
 *
 * A WorkerHost starts a worker (or takes a pre-warmed one, pool.js), boots it
 * (`init` / `configure`; the page fetches what the worker needs, boot-fetch.js),
 * sends it executions (`send`; whether the runtime is busy was decided before, by the
 * runtime's BusyGuard), interrupts them (`interrupt`; control.js Supervisor for the
 * grace and the hard path), and ends it: `kill` (everything in flight rejects),
 * `replace` (an execution that did not stop), `_move` (an execution the worker did
 * not start runs on a fresh one), `_protocol` (the worker broke the protocol and is
 * cut off). What the worker says is handled by its Dispatcher (dispatch.js); the app's
 * functions are served by its HostCalls (host-calls.js).
 * @module page/worker-host
 */

import { serveBootFetches } from "../shared/boot-fetch.js";
import { BootError, WorkerCrashed } from "../shared/errors.js";
import { diagnoseWorkerScript, httpFailure } from "../shared/hints.js";
import { PROTOCOL_VERSION } from "../shared/protocol.js";
import {
  ControlChannel, DEFAULT_GRACE_S, DEFAULT_HEARTBEAT_MS, ProtocolLog, Supervisor,
  locksAvailable, newLockName, watchLock,
} from "./control.js";
import { Dispatcher } from "./dispatch.js";
import { HostCalls } from "./host-calls.js";
import { bootPlan, bootReport, planFields, poolFor, settlePlan } from "./pool.js";

/** Extra wait when the page itself was too busy to check the acknowledgement in time. */
const ACK_SLACK_MS = 250;
/** How many times one execution may be moved to a fresh worker before it fails. */
const MAX_MOVES = 2;

/** One Web Worker and everything in flight on it. */
export class WorkerHost {
  constructor(runtime, label) {
    this.runtime = runtime;
    this.label = label;
    /** @type {Map<number, import("./execution.js").ExecutionHandle>} */
    this.pending = new Map();
    this.state = "booting"; // booting -> ready -> dead
    this.info = null;
    this.sessionLost = false;
    this.used = false; // isolated mode: an execution was sent to it
    this._boot = null;
    this.worker = null;
    this._plan = null; // how this worker boots (pool.js bootPlan)
    this._pooled = null; // the pre-warmed worker this host took, if any
    this._startedAt = 0;
    // Failure handling (control.js): the control channel (cross-origin isolated
    // pages), the Web Lock the worker holds while it lives, the timers, and the
    // refusal of malformed worker messages.
    const opts = runtime._options;
    this.control = ControlChannel.available ? new ControlChannel() : null;
    if (this.control !== null) this.control.onPoisoned = (why) => this._died(why);
    /** Every message from the worker goes through it (dispatch.js). */
    this.dispatcher = new Dispatcher(this);
    /** The app's functions, served to the worker (host-calls.js). */
    this.hostCalls = new HostCalls(this);
    this.lockName = opts.lockWatch && locksAvailable() ? newLockName() : null;
    this._unwatch = null;
    this.supervisor = new Supervisor(this, { heartbeatTimeoutMs: opts.heartbeatTimeoutMs ?? 0 });
    this.protocolLog = new ProtocolLog(label);
    this.maxMessageChars = opts.maxMessageBytes;
  }

  /** Fields of `init` / `configure` for the control channel and the life lock. */
  _controlFields() {
    const fields = {};
    if (this.control !== null) fields.controlBuffer = this.control.buffer;
    if (this.lockName !== null) fields.lockName = this.lockName;
    return fields;
  }

  /** Start the worker; resolves when it is ready, rejects with BootError. */
  start() {
    const opts = this.runtime._options;
    this._boot = new Promise((resolve, reject) => {
      this._bootResolve = resolve;
      this._bootReject = reject;
    });
    this._boot.catch(() => {});
    this._startedAt = performance.now();
    const pooled = opts.pool ? poolFor(opts)?.take() ?? null : null;
    if (pooled !== null) return this._adopt(pooled);
    let worker;
    try {
      worker = new Worker(opts.workerURL, { type: "module", name: this.label });
    } catch (err) {
      this._bootFailed(new BootError(`cannot start the worker: ${err?.message ?? err}`, "worker", { cause: err }));
      return this._boot;
    }
    this._attach(worker);
    const gate = this._gateFields();
    if (gate === null) return this._boot;
    // The worker has no network (connect-src 'none'): during its boot the page fetches
    // what it asks for (Pyodide, the lock file, the wheels) through this channel, which
    // closes before any code runs (boot-fetch.js).
    const channel = new MessageChannel();
    this._bootFetch = serveBootFetches(channel.port1, {
      allowed: [opts.workerURL, opts.indexURL, opts.lockFileURL, opts.packageBaseUrl],
      // A Pyodide file that is not there would leave Pyodide waiting: fail the boot now.
      // (A missing lock file or wheel is reported by the worker's own step.)
      onMissing: (url, status, text) => {
        if (opts.indexURL && url.startsWith(opts.indexURL)) {
          this._bootFailed(new BootError(`boot step "loadPyodide" failed: ${httpFailure(status, text, url)}`, "loadPyodide"));
        }
      },
    });
    const init = {
      type: "init",
      version: PROTOCOL_VERSION,
      functions: this.runtime._schemas,
      sandbox: opts.sandbox,
      limits: opts.limits,
      sync: opts.sync,
      indexURL: opts.indexURL,
      lockFileURL: opts.lockFileURL,
      packageBaseUrl: opts.packageBaseUrl,
      stepTimeoutMs: opts.bootTimeoutMs,
      syncBuffer: this.hostCalls.syncBuffer,
      requireCSP: opts.requireCSP,
      bootPort: channel.port2,
      // How it boots (restore the page's snapshot, or boot cold and make it: snapshot.js,
      // pool.js) follows in `plan`: the worker starts on its lock file and Pyodide's
      // scripts while the page looks the snapshot up (and downloads it, on a first visit).
      planFollows: true,
      ...this._controlFields(),
      ...gate,
    };
    worker.postMessage(init, gate.outPort ? [channel.port2, gate.outPort] : [channel.port2]);
    bootPlan(opts).then((plan) => {
      this._plan = plan;
      if (this.state !== "booting") {
        settlePlan(plan, null, "the worker was stopped before it booted");
        return;
      }
      worker.postMessage({ type: "plan", ...planFields(plan) });
    });
    this._bootTimer = setTimeout(() => {
      this._bootFailed(new BootError(`the worker did not boot within ${opts.bootTimeoutMs} ms`, "timeout"));
    }, opts.bootTimeoutMs);
    return this._boot;
  }

  /** The `outPort` field of init / configure: the worker's end of its gate (dispatch.js
   * openGate; `started`: the gate a pre-warmed worker came with), `{}` without a gate,
   * null when the gate could not start (boot failed). */
  _gateFields(started = null) {
    if (!this.runtime._options.messageGate) {
      started?.terminate();
      return {};
    }
    const outPort = this.dispatcher.openGate(started);
    if (outPort !== null) return { outPort };
    this._bootFailed(new BootError("cannot start the message gate (web/page/gate.js): a worker's " +
      "messages reach the page only through it; check that the page may start module workers " +
      "from its own origin (worker-src)", "worker"));
    return null;
  }

  /** Make `worker` this host's (started here or taken from the pool): its messages go
   * to the dispatcher, its death to `_died`; the shared buffer for sync-style calls. */
  _attach(worker) {
    const opts = this.runtime._options;
    this.worker = worker;
    // With a gate, the data of a message that reaches the page around it is not read.
    worker.onmessage = (event) => {
      if (this.dispatcher.gated) this.dispatcher.receive(null);
      else this._onMessage(event.data);
    };
    worker.onerror = (event) => {
      event.preventDefault?.();
      const where = event.filename ? ` (${String(event.filename).slice(0, 200)}:${event.lineno})` : "";
      if (event.message) this._died(`the worker reported an uncaught error: ${String(event.message).slice(0, 500)}${where}`);
      else diagnoseWorkerScript(opts.workerURL).then((why) => this._died(`the worker failed: ${why}`));
    };
    worker.onmessageerror = () => this._died("a worker message could not be deserialized");
    this.hostCalls.allocate(opts);
  }

  get ready() {
    return this._boot;
  }

  /** Where this worker's boot time went (MontyRuntime#boot). */
  _bootReport(msg) {
    const pooled = this._pooled !== null;
    return bootReport({
      plan: this._plan,
      ready: msg,
      pooled,
      startedAt: this._startedAt,
      bootPhases: pooled ? this._pooled.info?.phases : msg.phases,
      waitMs: pooled ? this._waitedMs : 0,
      configureMs: pooled ? performance.now() - this._configureAt : null,
    });
  }

  /** Take over a pre-warmed worker (pool.js): once it has booted, send `configure`. */
  _adopt(pooled) {
    const opts = this.runtime._options;
    this._pooled = pooled;
    this._bootTimer = setTimeout(() => {
      this._bootFailed(new BootError(`the worker did not boot within ${opts.bootTimeoutMs} ms`, "timeout"));
    }, opts.bootTimeoutMs);
    pooled.booted.then(() => {
      if (this.state !== "booting") {
        pooled.detach().terminate();
        pooled.refill?.();
        return;
      }
      this._waitedMs = performance.now() - this._startedAt;
      this._plan = pooled.plan;
      const started = pooled.takeGate();
      const worker = pooled.detach();
      this._attach(worker);
      const gate = this._gateFields(started);
      if (gate === null) return;
      this._configureAt = performance.now();
      worker.postMessage({
        type: "configure",
        functions: this.runtime._schemas,
        sandbox: opts.sandbox,
        limits: opts.limits,
        sync: opts.sync,
        syncBuffer: this.hostCalls.syncBuffer,
        ...this._controlFields(),
        ...gate,
      }, gate.outPort ? [gate.outPort] : []);
    }, (err) => {
      this._bootFailed(new BootError(`boot step "${err?.step ?? "unknown"}" failed: ${err?.message ?? err}`,
        String(err?.step ?? "unknown")));
    });
    return this._boot;
  }

  _bootFailed(error) {
    if (this.state !== "booting") return;
    settlePlan(this._plan, null, error?.message);
    this._pooled?.refill?.();
    this.state = "dead";
    this._bootFetch?.close();
    clearTimeout(this._bootTimer);
    this.worker?.terminate();
    this.supervisor.stop();
    this.dispatcher.close();
    this._bootReject(error);
    for (const handle of this.pending.values()) handle._finish(null, error);
    this.pending.clear();
    this.runtime._hostDied(this);
  }

  /** The worker booted (its `ready` message, checked by the dispatcher). */
  _ready(msg) {
    this._bootFetch?.close(); // the worker runs code from now on: it gets nothing more
    if (msg.version !== PROTOCOL_VERSION) {
      this._bootFailed(new BootError(
        `protocol version mismatch: page ${PROTOCOL_VERSION}, worker ${msg.version}`, "ready"));
      return;
    }
    clearTimeout(this._bootTimer);
    this.state = "ready";
    settlePlan(this._plan, msg.boot);
    this.info = { phases: msg.phases, env: msg.env, boot: this._bootReport(msg) };
    this._pooled?.refill?.();
    this._watch(msg.env);
    this._bootResolve(this.info);
  }

  /** The worker is ready: watch its life lock, pick the heartbeat default. */
  _watch(env) {
    if (this.lockName !== null && env?.lock === true) {
      this._unwatch = watchLock(this.lockName, () => {
        this._died("the worker stopped (it closed itself, exited or was killed)");
      });
    }
    if (this.runtime._options.heartbeatTimeoutMs == null) {
      // Without a lock watch, a worker that goes silent is found by the heartbeat
      // instead, when its Python can answer mid-loop (the control channel).
      this.supervisor.heartbeatTimeoutMs =
        this._unwatch == null && this.control !== null ? DEFAULT_HEARTBEAT_MS : 0;
    }
  }

  /**
   * Post an execute for `handle` (now, or once booted). Whether the runtime is busy
   * was decided by MontyRuntime#execute before this (the page's BusyGuard); nothing
   * the worker says or writes can change that decision.
   */
  send(handle, message) {
    handle._host = this;
    const limits = message.limits ?? this.runtime._options.limits;
    handle._limits = limits;
    if (message.type === "execute") {
      handle._execute = true;
      handle._message = message;
    }
    this.pending.set(handle.id, handle);
    if (this.state === "ready") {
      this._post(handle, message, limits);
      return;
    }
    this._boot.then(
      () => {
        if (this.state === "ready" && this.pending.get(handle.id) === handle) this._post(handle, message, limits);
      },
      () => {}, // _bootFailed already rejected it
    );
  }

  _post(handle, message, limits) {
    this.worker.postMessage(message);
    if (!handle._execute) return;
    this.supervisor.posted(handle, limits);
    this._armAck(handle, this.runtime._options.ackTimeoutMs);
  }

  /**
   * An idle worker starts an execute within milliseconds. One that does not (code of
   * an earlier execution still runs after its result: a forged result, ignored
   * signals, a background callback) is replaced, and the execution moved to a fresh
   * worker before any of it ran (`_move`). Only when nothing else of this runtime is
   * in flight on the worker, which then has no reason to be slow. The deadline counts
   * the page's own time: a page whose main thread was blocked waits a little more, so
   * that an acknowledgement already queued is read first.
   */
  _armAck(handle, ms) {
    if (!(ms > 0) || handle._acked) return;
    for (const other of this.pending.values()) if (other !== handle && other._execute) return;
    const due = performance.now() + ms;
    handle._ackTimer = setTimeout(() => {
      handle._ackTimer = null;
      if (handle._settled || handle._acked || this.pending.get(handle.id) !== handle || this.state !== "ready") return;
      if (handle._interrupted) return; // the interrupt's own deadline ends it (Supervisor)
      const late = performance.now() - due;
      if (late > ACK_SLACK_MS) {
        this._armAck(handle, ACK_SLACK_MS);
        return;
      }
      this._move(handle, `the worker did not start the execution within ${ms} ms of being sent it, ` +
        "though nothing else of this runtime was running on it (code of an earlier execution is still running)");
    }, ms);
  }

  /**
   * The worker cannot run `handle` (see _armAck, or it refused it as busy while the
   * page knew of nothing running): terminate it, and post the execution to a fresh
   * worker, where it runs from the start (nothing of it ran here: the worker never
   * acknowledged it, so no host function was called for it). Its result says
   * `sessionLost` in shared mode. Anything else in flight on this worker rejects with
   * WorkerCrashed.
   */
  _move(handle, reason) {
    if (this.state === "dead") return;
    this.pending.delete(handle.id);
    console.warn(`[monty-runtime ${this.label}] replacing the worker: ${reason}`);
    this.kill(new WorkerCrashed(`the worker was replaced: ${reason}`));
    this.runtime._hostDied(this, true);
    if (handle._settled) return;
    if (++handle._moves > MAX_MOVES || this.runtime._disposed) {
      handle._finish(null, new WorkerCrashed(`the execution could not be started: ${reason}`));
      return;
    }
    for (const timer of handle._timers) clearTimeout(timer);
    handle._timers.length = 0;
    handle._interrupted = false;
    this.runtime._pick().send(handle, handle._message);
  }

  /** True while the worker is blocked in Atomics.wait on a synchronous host call. */
  syncCallPending() {
    return this.hostCalls.pendingSync();
  }

  /**
   * The hard path: `handle`'s code did not stop (timeout or interrupt past its grace).
   * Its result says `errorType` with sessionLost; the worker is terminated (anything
   * else on it rejects with WorkerCrashed) and, in shared mode, a fresh one starts.
   */
  replace(handle, errorType, message) {
    if (this.state === "dead" || handle._settled) return;
    this.pending.delete(handle.id);
    const error = { type: errorType, message, traceback: "", lineno: null, filename: null };
    const output = handle._output ?? { stdout: [], stderr: [] };
    const stdout = output.stdout.join("");
    const stderr = output.stderr.join("");
    const durationMs = performance.now() - handle._postedAt;
    const executionId = handle.executionId ?? "";
    const event = { type: "run_error", execution_id: executionId, error, stdout,
      duration_ms: durationMs, session_lost: true };
    handle._event(event);
    this.runtime._broadcast(event);
    handle._finish({ value: null, stdout, stderr, error, sessionLost: true, session_lost: true,
      executionId, durationMs });
    this.kill(new WorkerCrashed(`the worker was replaced: another execution on it did not stop (${errorType})`));
    this.runtime._hostDied(this, false);
  }

  /**
   * Interrupt every execution on this worker, or only request `id`'s: an `interrupt`
   * message (heard by code that awaits), the control channel (heard between two
   * bytecodes), and after `grace` the hard path (control.js Supervisor.interrupt).
   */
  interrupt(id = undefined) {
    if (this.state !== "ready") return;
    const ids = id === undefined ? [...this.pending.keys()] : [id];
    for (const target of ids) {
      const handle = this.pending.get(target);
      if (handle === undefined || !handle._execute) continue;
      this.worker.postMessage({ type: "interrupt", id: target });
      const limits = handle._limits ?? this.runtime._options.limits;
      this.supervisor.interrupt(handle, typeof limits?.grace === "number" ? limits.grace : DEFAULT_GRACE_S);
    }
    // A worker blocked in Atomics.wait cannot read messages (host-calls.js).
    this.hostCalls.interrupt(id === undefined ? [...this.pending.keys()] : [id]);
  }

  /** Reject everything in flight with `error` and terminate the worker. */
  kill(error) {
    if (this.state === "dead") return;
    const booting = this.state === "booting";
    this.state = "dead";
    this.supervisor.stop();
    this.dispatcher.close();
    this._unwatch?.();
    this._bootFetch?.close();
    clearTimeout(this._bootTimer);
    try {
      this.worker?.postMessage({ type: "dispose" });
    } catch {
      // ignore: terminating anyway
    }
    this.worker?.terminate();
    if (booting) this._bootReject(error);
    for (const handle of this.pending.values()) handle._finish(null, error);
    this.pending.clear();
    this.hostCalls.clear();
  }

  _died(reason) {
    if (this.state === "booting") {
      this._bootFailed(new BootError(reason, "worker"));
      return;
    }
    if (this.state === "dead") return;
    this.kill(new WorkerCrashed(reason));
    this.runtime._hostDied(this);
  }

  /** A message from the worker (its `onmessage`): see dispatch.js. */
  _onMessage(data) {
    this.dispatcher.receive(data);
  }

  /**
   * A worker message broke the protocol or the budget: counted, logged once, and the
   * worker is cut off (terminated; its pending results reject with WorkerCrashed; a
   * shared runtime continues on a fresh worker, its next result says sessionLost).
   */
  _protocol(problem) {
    this.runtime._protocolErrors++;
    this.protocolLog.warn(problem);
    // Executions the worker never started did not run any of their code here: they
    // run on a fresh worker instead of failing with the one that misbehaved.
    const unstarted = [];
    if (this.state === "ready") {
      for (const handle of this.pending.values()) {
        if (handle._execute && !handle._acked && handle._message !== null) unstarted.push(handle);
      }
      for (const handle of unstarted) this.pending.delete(handle.id);
    }
    this._died(`the worker broke the protocol and was cut off: ${String(problem).slice(0, 300)}`);
    for (const handle of unstarted) {
      if (handle._settled) continue;
      if (this.runtime._disposed || ++handle._moves > MAX_MOVES) {
        handle._finish(null, new WorkerCrashed(`the execution could not be started: the worker broke the protocol`));
        continue;
      }
      for (const timer of handle._timers) clearTimeout(timer);
      handle._timers.length = 0;
      if (handle._ackTimer !== null) clearTimeout(handle._ackTimer);
      handle._ackTimer = null;
      this.runtime._pick().send(handle, handle._message);
    }
  }
}
