// Minimal module worker used by boot-check.html, the boot tests and the browser
// benchmarks. Messages in:
//   {cmd: "boot", lockFileURL?, packageBaseUrl?, timeoutMs?, montyRuntime?, bootPort?}
//       -> {type: "phase", name, ms} per step, then {type: "booted", ok, ...}
//       (with connect-src 'none' the worker cannot fetch: the page answers its boot
//       fetches on bootPort, see boot-fetch.js)
//   {cmd: "run", id, code} -> {type: "result", id, ok, value | error}
import { boot } from "../worker/boot.js";
import { describe } from "../shared/errors.js";
import { installBootFetch } from "../shared/boot-fetch.js";

let pyodide = null;

function evalBlocked() {
  // The worker's Content-Security-Policy forbids string evaluation.
  try {
    return new Function("return 1")() !== 1;
  } catch {
    return true;
  }
}

function env() {
  return {
    evalBlocked: evalBlocked(),
    crossOriginIsolated: self.crossOriginIsolated === true,
    sharedArrayBuffer: typeof SharedArrayBuffer === "function",
    jspi:
      typeof WebAssembly.Suspending === "function" &&
      typeof WebAssembly.promising === "function",
  };
}

async function onBoot(msg) {
  const started = performance.now();
  const bootFetch = msg.bootPort instanceof MessagePort ? installBootFetch(msg.bootPort) : null;
  try {
    const montyRuntime = msg.montyRuntime !== false;
    const result = await boot({
      lockFileURL: msg.lockFileURL,
      packageBaseUrl: msg.packageBaseUrl,
      timeoutMs: msg.timeoutMs,
      montyRuntime,
      onPhase: (name, ms) => self.postMessage({ type: "phase", name, ms }),
    });
    pyodide = result.pyodide;
    bootFetch?.close();
    // A fixed snippet: no data is interpolated into Python source.
    const version = montyRuntime
      ? pyodide.runPython("import monty_runtime, sys; sys.version")
      : pyodide.runPython("import sys; sys.version");
    self.postMessage({
      type: "booted",
      ok: true,
      version,
      pyodideVersion: pyodide.version,
      phases: result.phases,
      totalMs: performance.now() - started,
      ...env(),
    });
  } catch (err) {
    bootFetch?.close();
    self.postMessage({
      type: "booted",
      ok: false,
      error: {
        name: err?.name ?? "Error",
        step: err?.step ?? null,
        message: err instanceof Error ? err.message : String(err),
      },
      totalMs: performance.now() - started,
      ...env(),
    });
  }
}

function onRun(msg) {
  try {
    if (!pyodide) throw new Error("not booted");
    let value = pyodide.runPython(String(msg.code));
    if (value && typeof value.toJs === "function") {
      const proxy = value;
      value = proxy.toJs();
      proxy.destroy();
    }
    self.postMessage({ type: "result", id: msg.id, ok: true, value });
  } catch (err) {
    self.postMessage({ type: "result", id: msg.id, ok: false, error: describe(err) });
  }
}

self.onmessage = (event) => {
  const msg = event.data;
  if (!msg || typeof msg !== "object") return;
  if (msg.cmd === "boot") onBoot(msg);
  else if (msg.cmd === "run") onRun(msg);
};
