/**
 * One execution as the caller holds it: `execute()` returns an ExecutionHandle (its
 * `events`, an EventStream, its `result`, `interrupt()`), settled by the WorkerHost
 * that runs it, or at once when the runtime refuses it.
 * @module page/execution
 */

/**
 * An async iterable of one execution's events (the same dicts as the native
 * backend's `event.to_dict()`), ending after `run_finished` / `run_error` or when the
 * execution is refused. Single consumer. When the consumer lags, adjacent `print`
 * events of one stream are merged (the text is exact).
 * @implements {AsyncIterable<object>}
 */
export class EventStream {
  constructor() {
    this._buffer = [];
    this._closed = false;
    this._waiter = null;
  }

  /** @param {object} event */
  _push(event) {
    if (this._closed) return;
    const buf = this._buffer;
    const last = buf.length ? buf[buf.length - 1] : null;
    if (last && event.type === "print" && last.type === "print" && last.stream === event.stream) {
      buf[buf.length - 1] = { ...last, text: last.text + event.text };
    } else {
      buf.push(event);
    }
    this._wake();
  }

  _close() {
    this._closed = true;
    this._wake();
  }

  _wake() {
    const waiter = this._waiter;
    if (waiter !== null) {
      this._waiter = null;
      waiter();
    }
  }

  /** @returns {AsyncIterator<object>} */
  [Symbol.asyncIterator]() {
    return {
      next: async () => {
        while (this._buffer.length === 0) {
          if (this._closed) return { value: undefined, done: true };
          await new Promise((resolve) => {
            this._waiter = resolve;
          });
        }
        return { value: this._buffer.shift(), done: false };
      },
      return: async () => {
        this._buffer.length = 0;
        this._closed = true;
        return { value: undefined, done: true };
      },
    };
  }

  /** Everything buffered now (non-blocking). @returns {object[]} */
  drain() {
    return this._buffer.splice(0);
  }
}

/**
 * What `execute()` returns at once.
 */
export class ExecutionHandle {
  constructor(id, runtime) {
    /** The page's request id. @type {number} */
    this.id = id;
    /** The worker's execution id ("ex-N"), known once `run_started` arrived. @type {string | null} */
    this.executionId = null;
    /** @type {EventStream} */
    this.events = new EventStream();
    /** @type {Promise<ExecutionResult>} */
    this.result = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    // A caller that reads only the events must not get "unhandled rejection" noise.
    this.result.catch(() => {});
    this._runtime = runtime;
    this._host = null;
    this._settled = false;
    this._timer = null;
    this._timers = []; // timeout / interrupt fallbacks (control.js Supervisor)
    this._execute = false; // an execute (not a raw protocol message)
    /** @type {any} the limits it was sent with (WorkerHost.send) */
    this._limits = undefined;
    this._interrupted = false;
    this._postedAt = performance.now();
    this._output = { stdout: [], stderr: [] }; // for a result the page has to write itself
    this._message = null; // the execute message, kept to re-post it on a fresh worker
    this._acked = false; // the worker has spoken for it (run_started, a host call)
    this._ackTimer = null;
    this._moves = 0; // times it was moved to a fresh worker before it started
    this._onSettle = null; // the runtime's busy guard lets go here
  }

  /** Raise KeyboardInterrupt in this execution's code, if it is still running. */
  interrupt() {
    if (!this._settled && this._host !== null) this._host.interrupt(this.id);
  }

  _event(event) {
    if (this._settled) return;
    this._ack();
    if (event.type === "run_started" && typeof event.execution_id === "string") {
      this.executionId = event.execution_id;
    } else if (event.type === "print") {
      this._output[event.stream].push(event.text);
    }
    this.events._push(event);
  }

  /** The worker started this execution (its first event or host call arrived). */
  _ack() {
    this._acked = true;
    if (this._ackTimer !== null) {
      clearTimeout(this._ackTimer);
      this._ackTimer = null;
    }
  }

  _finish(result, error) {
    if (this._settled) return;
    this._settled = true;
    // Released before the result is delivered: code awaiting it may execute at once.
    const onSettle = this._onSettle;
    this._onSettle = null;
    onSettle?.(this);
    if (this._ackTimer !== null) clearTimeout(this._ackTimer);
    if (this._timer !== null) clearTimeout(this._timer);
    for (const timer of this._timers) clearTimeout(timer);
    this._timers.length = 0;
    this._output = null;
    this.events._close();
    if (error) this._reject(error);
    else this._resolve(result);
  }
}

/**
 * @typedef {object} ExecutionResult
 * @property {any} value the value of the last expression (decoded; null if none)
 * @property {string} stdout
 * @property {string} stderr
 * @property {{type: string, message: string, traceback: string, lineno: number | null,
 *   filename: string | null} | null} error the Python exception of the code, if any
 * @property {boolean} sessionLost the REPL had to be replaced (its globals are gone)
 * @property {boolean} session_lost same as sessionLost
 * @property {string} executionId
 * @property {number} durationMs
 */
