// The worker of one runtime in the Deno host (host.js): web/worker.js, unchanged, plus
// the seal. The host starts it with read access to the Pyodide folder and the built
// wheels only (no write, net, env, run, ffi, sys or import access); Pyodide reads its
// files during the boot. Just before `ready` goes to the host -- before any executed
// code can run -- every permission is revoked, so executed code holds none at all: every
// Deno (and Node-compatible) API that reaches outside the worker needs one.
import "../worker.js";

// Pyodide takes Deno for Node when it sees `process` (and then wants file paths, not
// URLs): without it and `Deno` in the global scope it boots as in a browser worker,
// reading its files with fetch() and import() -- which the read permission allows.
// Both come back at the seal (Deno's Node modules need them), holding no permission.
const { Deno, process } = globalThis;
delete globalThis.Deno;
delete globalThis.process;

const PERMISSIONS = ["read", "write", "net", "env", "run", "ffi", "sys", "import"];
const post = self.postMessage.bind(self);
let sealed = false;

function seal() {
  sealed = true;
  for (const name of PERMISSIONS) Deno.permissions.revokeSync({ name });
  const left = PERMISSIONS.filter((name) => Deno.permissions.querySync({ name }).state === "granted");
  if (left.length) throw new Error(`permissions still granted after the seal: ${left.join(", ")}`);
  Object.defineProperty(globalThis, "Deno", { value: Deno, configurable: true, enumerable: true });
  Object.defineProperty(globalThis, "process", { value: process, configurable: true, writable: true });
}

self.postMessage = function postMessage(message, transfer) {
  if (!sealed && typeof message === "string" && message.startsWith('{"type":"ready"')) {
    try {
      seal();
    } catch (err) {
      post(JSON.stringify({ type: "boot_error", name: "BootError", step: "seal", message: String(err?.message ?? err) }));
      self.close();
      return;
    }
  }
  return post(message, transfer);
};
