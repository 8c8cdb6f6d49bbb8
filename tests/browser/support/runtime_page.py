"""Helpers for driving web/monty-runtime.js from Playwright (sync API).

``open_runtime_page(page, server)`` loads ``index.html?autostart=0`` (no runtime yet)
and installs ``window.M`` (the module) and ``window.H`` (the helpers below).
``evaluate(page, fn, arg, timeout_s)`` runs an async JS function expression with a
deadline enforced in the page, so a hang fails the test instead of stalling it.
"""

from __future__ import annotations

import json
from typing import Any

#: create()'s boot deadline in tests (ms); see HELPERS_JS.
TEST_BOOT_MS = 300_000

HELPERS_JS = r"""
async () => {
  const TEST_BOOT_MS = __TEST_BOOT_MS__;
  const M = await import("../monty-runtime.js");
  const codec = await import("../shared/codec.js");
  const errorOf = (err) => ({
    name: err?.name ?? "Error",
    message: String(err?.message ?? err),
    isStateError: err instanceof M.StateError,
    isWorkerCrashed: err instanceof M.WorkerCrashed,
    isBootError: err instanceof M.BootError,
    step: err?.step ?? null,
    reason: err?.reason ?? null,
  });
  // A result made JSON-safe for Playwright: the value in wire form as well.
  const plain = (res) => ({ ...res, value: codec.encode(res.value) });
  const H = {
    errorOf,
    plain,
    /** Run code; collect its events and its result (or the rejection). */
    async run(rt, code, opts) {
      const h = rt.execute(code, opts);
      const events = [];
      const pump = (async () => { for await (const ev of h.events) events.push(ev); })();
      try {
        const res = await h.result;
        await pump;
        return { ok: true, result: plain(res), events, executionId: h.executionId };
      } catch (err) {
        await pump;
        return { ok: false, error: errorOf(err), events };
      }
    },
    /** Settle a result promise into {ok, result | error}. */
    async settle(promise) {
      try {
        return { ok: true, result: plain(await promise) };
      } catch (err) {
        return { ok: false, error: errorOf(err) };
      }
    },
    /** Call fn(), expecting it to throw synchronously. */
    throws(fn) {
      try {
        fn();
      } catch (err) {
        return errorOf(err);
      }
      return null;
    },
    /** A promise plus its resolve/reject, for host functions the test controls. */
    deferred() {
      let resolve, reject;
      const promise = new Promise((a, b) => { resolve = a; reject = b; });
      return { promise, resolve, reject };
    },
    /** Resolves with the first event of handle `h` that satisfies `pred`. */
    async waitEvent(h, pred) {
      for await (const ev of h.events) if (pred(ev)) return ev;
      return null;
    },
  };
  // Tests do not depend on the machine being idle: a cold boot of a slow engine
  // (WebKitGTK compiles Pyodide several times slower) on a busy machine can pass the
  // default bootTimeoutMs (120 s). create() gets a longer one unless the test names its own.
  const withBootTime = (o) => (o === undefined ? { bootTimeoutMs: TEST_BOOT_MS }
    : o !== null && typeof o === "object" && !Array.isArray(o) && !("bootTimeoutMs" in o)
      ? { ...o, bootTimeoutMs: TEST_BOOT_MS } : o);
  const MontyRuntime = new Proxy(M.MontyRuntime, {
    get(target, key, receiver) {
      if (key === "create") return (o) => target.create(withBootTime(o));
      // The same boot options for the warm pool, or create() would not find its workers.
      if (key === "prewarm") return (n, o) => target.prewarm(n, withBootTime(o));
      return Reflect.get(target, key, receiver);
    },
  });
  window.M = Object.freeze({ ...M, MontyRuntime });
  window.H = H;
  window.codec = codec;
  return true;
}
""".replace("__TEST_BOOT_MS__", str(TEST_BOOT_MS))


def open_runtime_page(page: Any, server: Any) -> Any:
    """Load the bare page of ``server`` and install the helpers; returns ``page``."""
    response = page.goto(server.url + "demos/index.html?autostart=0", wait_until="load")
    assert response is not None and response.ok
    assert page.evaluate(HELPERS_JS) is True
    return page


def evaluate(page: Any, fn: str, arg: Any = None, timeout_s: float = 60.0) -> Any:
    """Run ``fn`` (an async JS function expression taking one argument) in the page,
    failing with a clear error if it does not settle within ``timeout_s``."""
    ms = int(timeout_s * 1000)
    script = (
        "async (arg) => {"
        "  let timer;"
        f"  const deadline = new Promise((_, reject) => {{ timer = setTimeout("
        f"    () => reject(new Error('timed out after {ms} ms in the page')), {ms}); }});"
        f"  try {{ return await Promise.race([({fn})(arg), deadline]); }}"
        "  finally { clearTimeout(timer); }"
        "}"
    )
    return page.evaluate(script, arg)


def js_literal(value: Any) -> str:
    """A JSON literal for embedding test data in JS source."""
    return json.dumps(value)


def page_capabilities(page: Any) -> dict[str, bool]:
    """What the engine offers this page, detected: ``crossOriginIsolated``,
    ``sharedArrayBuffer``, ``jspi`` (``WebAssembly.Suspending``); ``sharedMemory``:
    both of the first two (interrupts mid-loop, the control channel, Atomics host calls)."""
    caps: dict[str, bool] = page.evaluate("""() => ({
      crossOriginIsolated: self.crossOriginIsolated === true,
      sharedArrayBuffer: typeof SharedArrayBuffer === "function",
      jspi: typeof WebAssembly.Suspending === "function",
    })""")
    caps["sharedMemory"] = caps["crossOriginIsolated"] and caps["sharedArrayBuffer"]
    return caps


def shared_memory(page: Any) -> bool:
    """Cross-origin isolated and with SharedArrayBuffer (WebKitGTK 2.50 is isolated
    without it): the page takes the shared-memory paths."""
    return page_capabilities(page)["sharedMemory"]


def no_shared_memory_reason(page: Any) -> str:
    """The words the runtime's errors use for why there is no shared memory here."""
    caps = page_capabilities(page)
    if not caps["crossOriginIsolated"]:
        return "not cross-origin isolated"
    return "no SharedArrayBuffer"
