// Types of web/tools.js: LLM tool bindings over a MontyRuntime, the three consumer
// policies of the concurrency contract (the same behaviour and payloads as Python's
// monty_runtime.tools).

import type { MontyRuntime } from "./monty-runtime.js";

export type Policy = "queue" | "busy" | "sandbox";

/** The policy names, in increasing cost. */
export declare const POLICIES: readonly Policy[];

/** What a tool call resolves to; JSON-able, the same shape as Python's payload. */
export interface ToolPayload {
  status: "ok" | "error" | "busy";
  /** The last expression's value in the codec's wire form (null unless ok). */
  value: unknown;
  stdout: string;
  error: { type: string; message: string; traceback?: string } | null;
  /** busy only: when a retry has a good chance to run. */
  retry_after_ms?: number;
  /** StateError only. */
  reason?: "busy" | "disposed" | "broken";
  /** The REPL was replaced (its globals are gone). */
  session_lost?: true;
}

/** The OpenAI-style tool definition. */
export interface ToolDefinition {
  type: "function";
  function: {
    name: string;
    description: string;
    parameters: {
      type: "object";
      properties: { code: { type: "string"; description: string } };
      required: ["code"];
      additionalProperties: false;
    };
  };
}

export interface BindingOptions {
  /** Tool name, ^[A-Za-z0-9_-]{1,64}$ (default "run_python"). */
  name?: string;
  /** Replaces the generated description. */
  description?: string | null;
}

export interface BusyOptions extends BindingOptions {
  /** Smallest retry_after_ms (default 50). */
  minRetryMs?: number;
}

export interface CallOptions {
  /** Queue policy: abort a call still waiting (it resolves with a CancelledError
   * payload) or running (its code is interrupted). */
  signal?: AbortSignal;
}

/** The runtime surface a binding uses (MontyRuntime from monty-runtime.js). */
export type RuntimeLike = Pick<MontyRuntime, "execute" | "sandbox" | "schemas">;

export declare abstract class ToolBinding {
  readonly runtime: RuntimeLike;
  readonly name: string;
  readonly policy: Policy;
  /** The OpenAI-style tool definition; identical to Python's for the same functions. */
  definition(): ToolDefinition;
  /** One tool call: `{code}` or its JSON text. Never rejects. */
  call(args: unknown, options?: CallOptions): Promise<ToolPayload>;
}

/** Each call waits for the previous one; a failure or cancellation never blocks the next. */
export declare class QueueBinding extends ToolBinding {
  constructor(runtime: RuntimeLike, options?: BindingOptions);
  readonly policy: "queue";
}

/** A busy runtime answers {status: "busy", retry_after_ms, ...} at once. */
export declare class BusyBinding extends ToolBinding {
  constructor(runtime: RuntimeLike, options?: BusyOptions);
  readonly policy: "busy";
  readonly minRetryMs: number;
}

/** A fresh REPL per call; needs `MontyRuntime.create({ sandbox: true })`. */
export declare class SandboxBinding extends ToolBinding {
  /** @throws RangeError when the runtime is not a sandbox runtime. */
  constructor(runtime: RuntimeLike, options?: BindingOptions);
  readonly policy: "sandbox";
}

export declare function queueBinding(runtime: RuntimeLike, options?: BindingOptions): QueueBinding;
export declare function busyBinding(runtime: RuntimeLike, options?: BusyOptions): BusyBinding;
export declare function sandboxBinding(runtime: RuntimeLike, options?: BindingOptions): SandboxBinding;

/** @throws RangeError for an unknown policy. */
export declare function bindTool(runtime: RuntimeLike, policy: "queue", options?: BindingOptions): QueueBinding;
export declare function bindTool(runtime: RuntimeLike, policy: "busy", options?: BusyOptions): BusyBinding;
export declare function bindTool(runtime: RuntimeLike, policy: "sandbox", options?: BindingOptions): SandboxBinding;
export declare function bindTool(runtime: RuntimeLike, policy: Policy, options?: BusyOptions): ToolBinding;

/** The payload of an ExecutionResult. */
export declare function payloadOf(result: {
  value: unknown;
  stdout: string;
  error: { type: string; message: string; traceback?: string } | null;
  sessionLost?: boolean;
  session_lost?: boolean;
}): ToolPayload;

/** The code of a tool call's arguments, or an InvalidArguments payload. */
export declare function parseArguments(args: unknown): string | ToolPayload;

/** json.loads with CPython's accepted language and error messages. */
export declare function pyJSONLoads(text: string): unknown;

/** Each host function as `- name(param: type, opt: type = ...) -- first docstring line`,
 * one a line (" none." without any); the same text as Python's describe_functions. */
export function describeFunctions(
  schemas: ReadonlyArray<{ name: string; description?: string; parameters?: object | null }>,
): string;
