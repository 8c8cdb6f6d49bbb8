/**
 * The errors of the browser runtime, in one place: what the page throws or rejects
 * with, and how an error the worker reports is rebuilt on the page. Python's names
 * (src/monty_runtime/errors.py) are kept: StateError with `reason` "busy" (message
 * BUSY_MESSAGE, as the Python bridge's), "disposed" or "broken".
 *
 * @module errors
 */

/** The Python bridge's message for a busy runtime. */
export const BUSY_MESSAGE = "Bridge is already executing";

/**
 * The runtime cannot take this request in its current state. `reason` is "busy"
 * (message "Bridge is already executing": another execution is still running on this
 * runtime), "disposed" or "broken".
 */
export class StateError extends Error {
  /**
   * @param {string} message
   * @param {"busy" | "disposed" | "broken"} [reason]
   * @param {ErrorOptions} [options]
   */
  constructor(message, reason = "busy", options) {
    super(message, options);
    this.name = "StateError";
    /** @type {"busy" | "disposed" | "broken"} */
    this.reason = reason;
  }
}

/** The worker running the execution died or reported an uncaught error. */
export class WorkerCrashed extends Error {
  /**
   * @param {string} message
   * @param {ErrorOptions} [options]
   */
  constructor(message, options) {
    super(message, options);
    this.name = "WorkerCrashed";
  }
}

/** A worker failed to boot (`step` names the failed boot step). */
export class BootError extends Error {
  /**
   * @param {string} message
   * @param {string} [step]
   * @param {ErrorOptions} [options]
   */
  constructor(message, step = "unknown", options) {
    super(message, options);
    this.name = "BootError";
    /** @type {string} */
    this.step = step;
  }

  toJSON() {
    return { name: this.name, step: this.step, message: this.message };
  }
}

/** A message broke the page/worker protocol. */
export class ProtocolError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "ProtocolError";
  }
}

/**
 * An error the worker reported (`{name, message, reason?, step?}`), as the page's class.
 * @param {any} error
 */
export function errorFromWorker(error) {
  const name = String(error?.name ?? "Error");
  const message = String(error?.message ?? "");
  switch (name) {
    case "StateError":
      return new StateError(message, error?.reason ?? "busy");
    case "TypeError":
      return new TypeError(message);
    case "ValueError":
      return new RangeError(message);
    case "ProtocolError":
      return new ProtocolError(message);
    case "BootError":
      return new BootError(message, error?.step);
    default: {
      const err = new Error(message);
      err.name = name;
      return err;
    }
  }
}

/**
 * The text of any thrown value: `Name: message` (no name for a plain Error).
 * @param {unknown} cause
 * @returns {string}
 */
export function describe(cause) {
  if (cause instanceof Error) {
    const text = cause.message || String(cause);
    return cause.name && cause.name !== "Error" ? `${cause.name}: ${text}` : text;
  }
  return String(cause);
}
