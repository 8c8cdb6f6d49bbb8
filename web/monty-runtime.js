/**
 * monty-runtime in the browser: a stateful Python runtime for LLM tool calls, running
 * in Pyodide inside one Web Worker per runtime.
 *
 * ```js
 * import { MontyRuntime, StateError } from "./monty-runtime.js";
 * const rt = await MontyRuntime.create({
 *   functions: { get_weather: async (city) => ({ city, t: 21 }) },
 * });
 * const h = rt.execute("x = 1\nx + 1");
 * for await (const ev of h.events) console.log(ev.type);
 * const res = await h.result;          // { value: 2, stdout: "", error: null, ... }
 * await rt.dispose();
 * ```
 *
 * The contract is the Python bridge's, unchanged: one `execute()` per runtime at a
 * time; an `execute()` made while an earlier one of the same runtime has not yet
 * delivered its result rejects its `result` with `StateError("Bridge is already
 * executing")` at once, whatever the timing, and its code is never sent (the page
 * decides: BusyGuard). The runtime does not queue. `sandbox: true`
 * spreads executions over a pool of workers, each in a fresh REPL, so parallel calls
 * work and no state persists.
 *
 * Failure handling (page/control.js; README "Failure handling"): interrupts and timeouts
 * land between bytecodes when cross-origin isolated, and code that does not stop is
 * stopped by replacing the worker (the result says `sessionLost`); a worker that dies
 * rejects its pending calls with WorkerCrashed and is replaced.
 *
 * The page trusts no message from a worker: JSON text within a size limit, known
 * message types and field types, request and call ids it issued, registered function
 * names only, arguments that pass the function's schema, and no more characters per
 * execution than its limits allow. A worker that breaks any of these is cut off
 * (terminated: its pending results reject with WorkerCrashed, and a shared runtime
 * continues on a fresh worker with `sessionLost`). Nothing read from shared memory is
 * trusted either (page/control.js, page/host-calls.js).
 * ES module, no bundler needed. Where the code is: page/ (runs on the page), worker/
 * (in each Web Worker), shared/ (both); README "Architecture".
 * @module monty-runtime
 */

export {
  BootError, EventStream, MAX_CODE_BYTES, MontyRuntime, ProtocolError, StateError, WorkerCrashed,
} from "./page/runtime.js";
