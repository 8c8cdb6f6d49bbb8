/**
 * The busy guard of a shared runtime (MontyRuntime#execute).
 * @module page/guard
 */

/**
 * "One execution at a time" for a shared runtime, decided by the page alone.
 *
 * `acquire(handle)` is false while another execution of the runtime has not delivered
 * its result: from the moment `execute()` accepted it, through booting, running, host
 * calls, interrupts and timeouts, until its `result` settles (the guard lets go in
 * ExecutionHandle#_finish, just before the result is delivered, so code that awaits
 * the result may execute at once). The refused call gets
 * StateError("Bridge is already executing") and its code is never sent.
 *
 * Why the page and not the worker's Python bridge: the page sees every `execute()` in
 * the order the caller made them and knows what it sent and what came back, whereas a
 * worker hears of a second execute only after it has read the first (a message waits
 * in its queue while it runs), and everything in the worker -- the bridge's flag
 * included -- can be rewritten by the code it runs. The bridge keeps its own guard
 * (natively it is the only one); the page never sends it a second execute, and a
 * worker that refuses one as busy when the page knew of nothing running is replaced
 * (WorkerHost#_move).
 */
export class BusyGuard {
  constructor() {
    /** @type {import("./execution.js").ExecutionHandle | null} */
    this.holder = null;
  }

  /** @param {import("./execution.js").ExecutionHandle} handle @returns {boolean} */
  acquire(handle) {
    if (this.holder !== null) return false;
    this.holder = handle;
    handle._onSettle = (h) => {
      if (this.holder === h) this.holder = null;
    };
    return true;
  }
}
