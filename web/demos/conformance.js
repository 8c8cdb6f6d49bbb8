/**
 * The in-page side of the conformance runner's browser backend
 * (`monty_runtime.conformance.chromium`).
 *
 * Python drives this page through Playwright: it boots runtimes (`boot`), runs one case
 * at a time on a runtime (`run`) and disposes them (`dispose`). Every argument and
 * every answer is JSON text, so values the structured-clone bridge would bend (big
 * ints, lone surrogates) cross exactly; values inside are in the codec's wire form.
 *
 * A case runs here as it does natively (see docs/conformance.md, "How a case runs"):
 * host functions answer by call index from a script computed in Python (value or
 * error, at once or asynchronously, after `hostDelays`), steps run in order on the one
 * runtime, a concurrent step holds the first execution's host call until the second
 * execution has finished or been rejected. For each execution the page returns the
 * events of its handle and, when `execute()` or its result rejected, the rejection.
 *
 * ES module; exposes `window.montyConformance`.
 * @module conformance
 */

import { MontyRuntime } from "../monty-runtime.js";
import { decode, encode } from "../shared/codec.js";

/** @type {Map<string, Entry>} */
const runtimes = new Map();

/**
 * One booted (or booting) runtime and the host state of the case running on it.
 * The host functions are created once per runtime; they answer from `entry.host`,
 * which `run()` replaces for every case.
 */
class Entry {
  constructor(id, spec) {
    this.id = id;
    this.spec = spec;
    /** @type {Host | null} */
    this.host = null;
    /** @type {MontyRuntime | null} */
    this.runtime = null;
    this.disposed = false;
    this.busy = false;
    this.cases = 0;
    this.bootMs = 0;
    this.booting = this._boot();
    this.booting.catch(() => {});
  }

  async _boot() {
    const functions = {};
    for (const { name, parameters } of this.spec.functions) {
      functions[name] = {
        fn: (...args) => this._call(name, args),
        description: "",
        parameters: parameters ?? null,
      };
    }
    const options = { functions, sandbox: Boolean(this.spec.sandbox) };
    if (this.spec.limits != null) options.limits = this.spec.limits;
    if (this.spec.poolSize != null) options.poolSize = this.spec.poolSize;
    const started = performance.now();
    const runtime = await MontyRuntime.create(options);
    this.bootMs = performance.now() - started;
    if (this.disposed) {
      await runtime.dispose();
      throw new Error("disposed while booting");
    }
    this.runtime = runtime;
    return runtime;
  }

  _call(name, _args) {
    const host = this.host;
    if (host === null) throw new Error(`host function ${name} called while no case is running`);
    return host.call(name);
  }

  async dispose() {
    this.disposed = true;
    runtimes.delete(this.id);
    const runtime = this.runtime;
    this.runtime = null;
    if (runtime !== null) await runtime.dispose();
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function deferred() {
  let resolve;
  const promise = new Promise((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function hostError(info) {
  const err = new Error(String(info.message ?? ""));
  err.name = String(info.type ?? "RuntimeError");
  return err;
}

/**
 * The scripted host of one case: numbers the calls and answers each as
 * `HostScript.answer` does in Python (the per-index answers are computed there).
 */
class Host {
  constructor(script) {
    this.answers = script.answers ?? [];
    this.delays = script.delays ?? {};
    this.next = 0;
    this.hold = false;
    this.held = deferred();
    this.release = deferred();
  }

  answer(name) {
    const k = this.next++;
    const base = this.answers[k] ?? { value: null, error: null, async: false };
    const delay = Object.hasOwn(this.delays, name) ? Number(this.delays[name]) : 0;
    return {
      index: k,
      value: base.value ?? null,
      error: base.error ?? null,
      asynchronous: Boolean(delay) || Boolean(base.async),
      delay,
    };
  }

  call(name) {
    const hold = this.hold;
    const answer = this.answer(name);
    if (!(hold || answer.asynchronous)) {
      if (answer.error !== null) throw hostError(answer.error);
      return decode(answer.value);
    }
    return this._later(answer, hold);
  }

  async _later(answer, hold) {
    if (hold) {
      this.held.resolve();
      await this.release.promise;
    }
    if (answer.delay) await sleep(answer.delay * 1000);
    if (answer.error !== null) throw hostError(answer.error);
    return decode(answer.value);
  }
}

/**
 * JSON.stringify writes -0 as 0. The events keep the worker's -0.0 (JSON.parse gives
 * -0), so it travels to Python as {"\u0000-0": 1}, which the backend reads back as -0.0.
 */
function keepNegativeZero(_key, value) {
  return Object.is(value, -0) ? { "\u0000-0": 1 } : value;
}

function rejection(err) {
  return { type: String(err?.name ?? "Error"), message: String(err?.message ?? err) };
}

function sameJSON(a, b) {
  try {
    return JSON.stringify(a) === JSON.stringify(b);
  } catch {
    return false;
  }
}

/** What a runtime's `execute()` produced: its events, the rejection, inconsistencies. */
async function finish(label, handle) {
  const events = [];
  const pump = (async () => {
    for await (const event of handle.events) events.push(event);
  })();
  let result = null;
  let rejected = null;
  try {
    result = await handle.result;
  } catch (err) {
    rejected = rejection(err);
  }
  await pump;
  const problems = [];
  if (result !== null) {
    // The result and the events describe the same run: they must agree.
    const end = events.find((e) => e.type === "run_finished" || e.type === "run_error");
    const eventError = end?.type === "run_error" ? end.error : null;
    if (!sameJSON(result.error ?? null, eventError ?? null)) {
      problems.push(`result.error ${JSON.stringify(result.error)} != run_error event ${JSON.stringify(eventError)}`);
    }
    if (end !== undefined && result.stdout !== String(end.stdout ?? "")) {
      problems.push("result.stdout differs from the final event's stdout");
    }
    const stderr = events
      .filter((e) => e.type === "print" && e.stream === "stderr")
      .map((e) => String(e.text ?? ""))
      .join("");
    if (result.stderr !== stderr) problems.push("result.stderr differs from the stderr print events");
    if (end?.type === "run_error" && Boolean(result.sessionLost) !== Boolean(end.session_lost)) {
      problems.push("result.sessionLost differs from the run_error event");
    }
    if (end?.type === "run_finished" && !sameJSON(encode(result.value), end.value)) {
      problems.push("result.value differs from the run_finished value");
    }
  }
  return {
    label,
    events,
    rejected,
    problems,
    sessionLost: Boolean(result?.sessionLost),
  };
}

function start(runtime, step) {
  const options = {};
  if (step.scriptName != null) options.scriptName = step.scriptName;
  if (step.limits != null) options.limits = step.limits;
  // The wire form, decoded here so that big ints arrive as BigInt (exact).
  if (step.inputs != null) options.inputs = decode(step.inputs);
  return runtime.execute(step.code, options);
}

async function runStep(runtime, step) {
  let handle;
  try {
    handle = start(runtime, step);
  } catch (err) {
    return { label: step.label, events: [], rejected: rejection(err), problems: [] };
  }
  return finish(step.label, handle);
}

async function runConcurrent(runtime, host, step) {
  const [a, b] = [step.a, step.b];
  host.held = deferred();
  host.release = deferred();
  host.hold = true;
  let handle;
  try {
    handle = start(runtime, a);
  } catch (err) {
    host.hold = false;
    const outA = { label: a.label, events: [], rejected: rejection(err), problems: [] };
    return [outA, await runStep(runtime, b)];
  }
  const finishing = finish(a.label, handle);
  let outB;
  try {
    await Promise.race([finishing, host.held.promise]);
    host.hold = false;
    outB = await runStep(runtime, b);
  } finally {
    host.hold = false;
    host.release.resolve();
  }
  return [await finishing, outB];
}

async function runSteps(entry, runtime, spec, runs) {
  for (const step of spec.steps) {
    if (step.kind === "concurrent") runs.push(...(await runConcurrent(runtime, entry.host, step)));
    else runs.push(await runStep(runtime, step));
  }
}

// ------------------------------------------------------------------------ the API

/**
 * Start booting runtime `id` from `specText` ({functions: [{name, parameters}],
 * sandbox, limits, poolSize}); resolves (JSON text) once it is ready or has failed.
 */
async function boot(id, specText) {
  if (runtimes.has(id)) throw new Error(`runtime ${id} exists already`);
  const entry = new Entry(id, JSON.parse(specText));
  runtimes.set(id, entry);
  try {
    await entry.booting;
    return JSON.stringify({ ok: true, ms: entry.bootMs, info: entry.runtime?.info ?? null });
  } catch (err) {
    runtimes.delete(id);
    return JSON.stringify({ ok: false, error: rejection(err) });
  }
}

/**
 * Run one case (`caseText`: {script, steps}) on runtime `id`; settles within
 * `deadlineMs` (after the runtime is ready). Returns JSON text: {runs, timedOut,
 * tainted, workerCount}. A timed-out case leaves its runtime disposed.
 */
async function run(id, caseText, deadlineMs) {
  const entry = runtimes.get(id);
  if (entry === undefined) throw new Error(`no runtime ${id}`);
  const runtime = await entry.booting;
  if (entry.busy) throw new Error(`runtime ${id} is running another case`);
  const spec = JSON.parse(caseText);
  entry.busy = true;
  entry.cases += 1;
  entry.host = new Host(spec.script ?? {});
  const runs = [];
  let timer = null;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve("timeout"), deadlineMs);
  });
  let outcome;
  try {
    outcome = await Promise.race([runSteps(entry, runtime, spec, runs).then(() => "done"), timeout]);
  } catch (err) {
    outcome = "failed";
    runs.push({ label: "", events: [], rejected: null, problems: [`the page failed: ${err?.stack ?? err}`] });
  } finally {
    clearTimeout(timer);
  }
  const timedOut = outcome === "timeout";
  const workerCount = runtime.workerCount;
  const tainted = timedOut || outcome === "failed" || workerCount !== 1 ||
    runs.some((r) => r.sessionLost || r.rejected !== null);
  const answer = JSON.stringify({ runs: runs.slice(), timedOut, tainted, workerCount }, keepNegativeZero);
  entry.host = null;
  entry.busy = false;
  if (timedOut) await entry.dispose();
  return answer;
}

/** Dispose runtime `id` (unknown ids are ignored). */
async function dispose(id) {
  const entry = runtimes.get(id);
  if (entry !== undefined) await entry.dispose();
  return true;
}

/** Dispose every runtime. */
async function disposeAll() {
  await Promise.all([...runtimes.values()].map((entry) => entry.dispose()));
  return true;
}

function stats() {
  return JSON.stringify({
    runtimes: runtimes.size,
    workers: [...runtimes.values()].reduce((n, e) => n + (e.runtime?.workerCount ?? 0), 0),
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
  });
}

window.montyConformance = { boot, run, dispose, disposeAll, stats, ready: true };
document.documentElement.dataset.ready = "true";
