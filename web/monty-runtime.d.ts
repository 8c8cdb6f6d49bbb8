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

/** The worker running the execution died or reported an uncaught error. */
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
}

export interface CreateOptions {
  functions?: Record<string, HostFn | HostFunctionSpec>;
  /** A fresh REPL per execute, spread over a pool of workers. */
  sandbox?: boolean;
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
  interrupt(): void;
}

export interface ExecuteOptions {
  limits?: Limits;
  scriptName?: string;
}

export declare class MontyRuntime {
  private constructor();
  /** Start a runtime; resolves once its worker is ready. Rejects with BootError. */
  static create(options?: CreateOptions): Promise<MontyRuntime>;
  readonly sandbox: boolean;
  readonly disposed: boolean;
  /** Boot phases (ms) and environment of the first worker. */
  readonly info: { phases: Record<string, number>; env: Record<string, unknown> } | null;
  readonly schemas: { name: string; description: string; parameters: ParametersSchema | null }[];
  readonly workerCount: number;
  /** Throws TypeError (code not a string), RangeError (too long), StateError (disposed). */
  execute(code: string, options?: ExecuteOptions): ExecutionHandle;
  /** KeyboardInterrupt in the running code (best effort: host calls and awaits). */
  interrupt(): void;
  /** Subscribe to every execution's events; returns an unsubscribe function. */
  onEvent(listener: (event: MontyEvent) => void): () => void;
  /** Terminates the workers; pending results reject with StateError. Idempotent. */
  dispose(): Promise<void>;
}
