// Types of web/monty-runtime.js: a stateful Python runtime for LLM tool calls, running
// Pyodide in one Web Worker per runtime.

/** Code longer than this (UTF-8 bytes) is refused with a RangeError. */
export declare const MAX_CODE_BYTES: number;

/** The runtime cannot take this request in its current state. */
export declare class StateError extends Error {
  constructor(message: string, reason?: "busy" | "disposed" | "broken", options?: ErrorOptions);
  readonly name: "StateError";
  /** "busy": "Bridge is already executing"; "disposed"; "broken". */
  reason: "busy" | "disposed" | "broken";
}

/**
 * The worker running the execution died: an uncaught error or `messageerror`, a fatal
 * Pyodide error (`os._exit()`, a JavaScript stack overflow), a worker that closed
 * itself (`js.close()`) or was killed, or one that stopped answering the heartbeat.
 * Every pending call of that worker rejects with it (within milliseconds for these
 * causes; heartbeatTimeoutMs for a silent death without a Web Lock). A shared-mode
 * runtime then starts a fresh worker: the next result has `sessionLost: true`.
 */
export declare class WorkerCrashed extends Error {
  constructor(message: string, options?: ErrorOptions);
  readonly name: "WorkerCrashed";
}

/** A worker failed to boot; `step` names the failed boot step (e.g. "lockfile"). */
export declare class BootError extends Error {
  constructor(message: string, step?: string, options?: ErrorOptions);
  readonly name: "BootError";
  step: string;
}

/** A message broke the page/worker protocol. */
export declare class ProtocolError extends Error {
  constructor(message: string);
  readonly name: "ProtocolError";
}

/** A JSON Schema object describing a host function's parameters. */
export interface ParametersSchema {
  type: "object";
  properties?: Record<string, object>;
  required?: string[];
  [key: string]: unknown;
}

/** A host function: called with positional arguments (keyword arguments are placed by
 * the schema's property order; without a schema they arrive as a trailing object). It
 * may return a value or a promise; a thrown error becomes a Python exception. */
export type HostFn = (...args: any[]) => unknown;

export interface HostFunctionSpec {
  fn: HostFn;
  description?: string;
  /** Checked in the worker at every call. Omitted: inferred from plain parameter
   * names (all required); null: any arguments. */
  parameters?: ParametersSchema | null;
}

export interface Limits {
  /** Seconds per call. */
  timeout?: number | null;
  grace?: number;
  maxOutputBytes?: number;
  maxResultBytes?: number;
  maxRecursionDepth?: number | null;
  max_output_bytes?: number;
  max_result_bytes?: number;
  max_recursion_depth?: number | null;
  /** A hard cap in bytes on the worker's WebAssembly heap (at least 16 MiB, and at
   * least the worker's heap after boot plus a reserve: `info.env.memory.minimum`).
   * Past it the code gets MemoryError and the REPL survives. A call's limits without
   * `memory` keep the runtime's. */
  memory?: number | null;
}

export interface CreateOptions {
  functions?: Record<string, HostFn | HostFunctionSpec>;
  /** true: a fresh REPL per execute, spread over a pool of workers (executions on one
   * worker share its interpreter). "isolated": every execute in a worker no other
   * execution used, terminated after it; the warm pool is kept `poolSize` deep
   * (default 2 in this mode). */
  sandbox?: boolean | "isolated";
  limits?: Limits;
  /** Sandbox pool size (default navigator.hardwareConcurrency, at least 1). */
  poolSize?: number;
  workerURL?: string | URL;
  /** Default 120000. */
  bootTimeoutMs?: number;
  indexURL?: string | URL;
  lockFileURL?: string | URL;
  packageBaseUrl?: string | URL;
  /** How sync-style host calls block (default "auto"). */
  sync?: "auto" | "jspi" | "atomics" | "none";
  /** Size of the shared buffer for Atomics-based sync calls (default 1 MiB). */
  syncBufferBytes?: number;
  /**
   * Default true: a worker not served with the worker Content-Security-Policy (no
   * string evaluation, no connections) refuses to boot (BootError, step "csp").
   * false boots it anyway; `info.env.csp` then says what is missing.
   */
  requireCSP?: boolean;
  /**
   * Warm start (default true): the first worker of a page boots cold and makes a memory
   * snapshot of Pyodide with monty_runtime imported (before anything page-specific
   * exists); later workers restore it instead of booting cold. It is kept in memory and
   * in Cache Storage, keyed by the Pyodide version and the sha256 of every wheel
   * (dist/build-info.json), so a returning visit skips the cold boot and a new build
   * does not reuse an old snapshot. "memory": this page only; false: always cold.
   * Any snapshot failure (damaged, made for other packages, refused by Pyodide) falls
   * back to a cold boot, and `boot` says so.
   */
  snapshot?: boolean | "memory";
  /** Take a pre-warmed worker (MontyRuntime.prewarm) if there is one for these boot
   * options (default true). */
  pool?: boolean;
  /** The build's build-info.json (default: next to the lock file); keys the snapshot. */
  buildInfoURL?: string | URL;
  /**
   * Watch each worker through a Web Lock it holds for its whole life (default true
   * where `navigator.locks` exists): its death, even a silent one (`js.close()`),
   * rejects the pending calls at once with WorkerCrashed.
   */
  lockWatch?: boolean;
  /**
   * Declare a worker dead (WorkerCrashed) after this many ms without a sign of life
   * while an execution is pending: a message, a `pong` (the worker answers `ping` when
   * its event loop is free) or a control-channel tick (answered between bytecodes when
   * cross-origin isolated). 0: off. Default: 0 when the Web Lock watches the worker,
   * else 5000 when cross-origin isolated, else 0 (a CPU-bound worker on a page that is
   * not isolated cannot answer; its execution's timeout applies). A worker blocked in
   * time.sleep or a long C call does not answer either.
   */
  heartbeatTimeoutMs?: number;
  /**
   * Each worker posts to a gate thread of its own (web/page/gate.js) that checks its
   * messages (size, JSON, batches, values), parses the large ones and passes on at
   * most a window the page has not handled yet, so a worker's messages cost the page's
   * main thread nothing before they are checked. Default: true in a web page, false
   * elsewhere (the Deno host receives its workers' messages itself).
   */
  messageGate?: boolean;
  /**
   * Largest worker message accepted, in characters of JSON text (default from the
   * limits: 12 x maxOutputBytes + 2 x maxResultBytes + 1 MiB, at least 1 MiB). A larger
   * message, like any malformed one, cuts the worker off: it is terminated, its calls
   * in flight reject with WorkerCrashed and a shared runtime continues on a fresh
   * worker (sessionLost). See docs/hostile.md for the per-execution budget.
   */
  maxMessageBytes?: number;
  /**
   * An execute sent to a worker on which nothing else of this runtime runs must be
   * started (its `run_started` arrives) within this many ms; otherwise code of an
   * earlier execution is still running there (it forged its result, ignores signals,
   * or a background callback spins), the worker is replaced and the execution runs on
   * a fresh one from the start (its result says `sessionLost`). Default 2000; 0: off.
   */
  ackTimeoutMs?: number;
}

/** One step of a worker's boot, in order. */
export interface BootPhase {
  /**
   * Page side: "snapshot:lookup" (build info and the Cache Storage read),
   * "snapshot:verify" (sha256 of a snapshot read from Cache Storage),
   * "snapshot:wait" (waiting for the page's first worker to make the snapshot),
   * "pyodide:compile" (the page compiling Pyodide once for restoring workers),
   * "pool:wait" (a pooled worker: waiting for it to finish booting; about 0 ms when it
   * was already ready), "configure" (a pooled
   * worker: sending it this runtime's functions, mode and limits until it is ready).
   * Worker side: "csp", "lockfile", then either the cold chain "loadPyodide",
   * "loadPackage:monty-runtime", "loadPackage:micropip", "import:monty_runtime"
   * [, "snapshot:make"], or "snapshot:restore", "snapshot:resume" (a failed restore
   * adds "snapshot:fallback", then the cold chain); then "import:monty_runtime.worker",
   * "start". Other steps may appear (names are informative, not a contract).
   */
  name: string;
  ms: number;
  where: "page" | "worker";
  /** True for a pooled worker's steps that ran before create() was called. */
  background?: boolean;
}

/** How a runtime's (first) worker came up and where the time went. */
export interface BootReport {
  /** "snapshot": restored from a memory snapshot; "cold": booted from scratch. */
  mode: "cold" | "snapshot";
  /**
   * "restored"; "made" (this cold worker made the page's snapshot); "fallback" (a
   * snapshot was given but could not be used: see `reason`; the worker booted cold);
   * "make-failed"; "disabled" (`snapshot: false`); "unavailable" (snapshots are off
   * in this page: see `reason`); "none".
   */
  snapshot: "restored" | "made" | "fallback" | "make-failed" | "disabled" | "unavailable" | "none";
  /** For "restored": the build's shipped snapshot, downloaded on a first visit
   * ("shipped"), read from Cache Storage ("cache"), or made earlier in this page. */
  snapshotFrom: "shipped" | "cache" | "page" | null;
  /** Why a snapshot was not used, or what was discarded (e.g. a damaged cached one). */
  reason: string | null;
  /** The worker came from a pre-warmed pool. */
  pooled: boolean;
  /** create() (or the worker's spawn) until ready, as the caller waited for it. */
  totalMs: number;
  phases: BootPhase[];
}

export interface PoolStats {
  target: number;
  idle: number;
  booting: number;
  failures: number;
}

export interface ScriptErrorInfo {
  type: string;
  message: string;
  traceback: string;
  lineno: number | null;
  filename: string | null;
}

export type MontyEvent =
  | { type: "run_started"; execution_id: string }
  | { type: "print"; execution_id: string; stream: "stdout" | "stderr"; text: string }
  | {
      type: "call_started";
      execution_id: string;
      call_id: string;
      name: string;
      args: unknown[];
      kwargs: Record<string, unknown>;
    }
  | {
      type: "call_finished";
      execution_id: string;
      call_id: string;
      name: string;
      result?: unknown;
      error?: { type: string; message: string };
      duration_ms: number;
    }
  | { type: "run_finished"; execution_id: string; value: unknown; stdout: string; duration_ms: number }
  | {
      type: "run_error";
      execution_id: string;
      error: ScriptErrorInfo;
      stdout: string;
      duration_ms: number;
      session_lost: boolean;
    };

export interface ExecutionResult {
  /** The last expression's value, decoded with codec.js (null if none). */
  value: any;
  stdout: string;
  stderr: string;
  /** The Python exception raised by the code, if any. */
  error: ScriptErrorInfo | null;
  sessionLost: boolean;
  session_lost: boolean;
  executionId: string | null;
  durationMs: number;
}

/** One execution's events; ends after run_finished / run_error (or a refusal). */
export declare class EventStream implements AsyncIterable<MontyEvent> {
  [Symbol.asyncIterator](): AsyncIterator<MontyEvent>;
  /** What is buffered now (non-blocking). */
  drain(): MontyEvent[];
}

export interface ExecutionHandle {
  /** The page's request id. */
  readonly id: number;
  /** The worker's execution id, known once run_started arrived. */
  readonly executionId: string | null;
  readonly events: EventStream;
  /** Rejects with StateError (busy, disposed), WorkerCrashed or BootError only. */
  readonly result: Promise<ExecutionResult>;
  /** Interrupt this execution only (see MontyRuntime.interrupt). */
  interrupt(): void;
}

export interface ExecuteOptions {
  limits?: Limits;
  /** Shown in tracebacks and `result.error` (default "main.py"). */
  scriptName?: string;
  /**
   * Names bound in the REPL's globals before the code runs, as `inputs=` natively. A
   * plain object whose keys are Python identifiers (else TypeError at the call); the
   * values cross with the codec, like results (a BigInt is an exact int, a Uint8Array
   * is bytes, a Map is a dict with any keys).
   */
  inputs?: Record<string, unknown>;
}

export declare class MontyRuntime {
  private constructor();
  /** Start a runtime; resolves once its worker is ready. Rejects with BootError. */
  static create(options?: CreateOptions): Promise<MontyRuntime>;
  /**
   * Keep `n` workers booted (nothing page-specific in them) for runtimes created later
   * with the same boot options (workerURL, indexURL, lockFileURL, packageBaseUrl,
   * bootTimeoutMs, requireCSP, snapshot, buildInfoURL); create() then only sends one
   * its functions, mode and limits. Refilled in the background; a worker is handed out
   * once (a disposed runtime's worker is terminated). Resolves when `n` are ready;
   * rejects with BootError when boots keep failing. `prewarm(0, options)` empties it.
   */
  static prewarm(n?: number, options?: CreateOptions): Promise<PoolStats>;
  /** Forget the page's in-memory snapshots; `{cache: true}`: the stored ones too. */
  static clearSnapshots(options?: { cache?: boolean }): Promise<void>;
  readonly sandbox: boolean | "isolated";
  readonly disposed: boolean;
  /** Boot phases (ms) and environment of the first worker. */
  readonly info: {
    phases: Record<string, number>;
    env: Record<string, unknown>;
    boot: BootReport;
  } | null;
  /** How the first worker came up and where the time went (for a boot-phases view);
   * null until it is ready, and after dispose(). */
  readonly boot: BootReport | null;
  readonly schemas: { name: string; description: string; parameters: ParametersSchema | null }[];
  readonly workerCount: number;
  /** Throws TypeError (code not a string), RangeError (too long), StateError (disposed). */
  execute(code: string, options?: ExecuteOptions): ExecutionHandle;
  /**
   * KeyboardInterrupt in the running code. Cross-origin isolated: raised between two
   * bytecodes even in a tight loop, globals kept. Code that awaits (a host call,
   * asyncio.sleep) is interrupted the same way without isolation. Code that has not
   * stopped after `limits.grace` seconds (default 1) -- CPU-bound code when the page is
   * not isolated, time.sleep, a long C call -- is stopped by replacing the worker: the
   * result is a KeyboardInterrupt with `sessionLost: true`.
   */
  interrupt(): void;
  /** Subscribe to every execution's events; returns an unsubscribe function. */
  onEvent(listener: (event: MontyEvent) => void): () => void;
  /** Terminates the workers; pending results reject with StateError. Idempotent. */
  dispose(): Promise<void>;
}
