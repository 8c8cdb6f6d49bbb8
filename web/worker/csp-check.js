// Is the worker's Content-Security-Policy in force? (worker side; no dependencies)
//
// A worker cannot read the policy it runs under, so it tests what the policy forbids:
//
//   * string evaluation: `new Function("...")` must throw an EvalError
//     (script-src without 'unsafe-eval');
//   * connections: a fetch of this very module must fail without reaching the server
//     (connect-src 'none'; with the policy the browser refuses the request itself and
//     fires a securitypolicyviolation event).
//
// worker.js runs this first, before Pyodide is loaded, and refuses to boot (a
// BootError with step "csp") when the policy is missing, unless the page opted out with
// `MontyRuntime.create({ requireCSP: false })`. The rest of the policy (worker-src
// 'self', default-src 'none') is covered by the escape probes in
// tests/browser/test_escape_probes.py. worker-src is 'self', not 'none': Firefox checks
// a module worker's own static imports against it, so 'none' stops worker.js from
// importing boot.js; nested workers are impossible because lockdown.js removes Worker
// and SharedWorker (checked below, once the lock-down ran: `checkNoNestedWorkers`).

/** The policy the dev server sends on worker scripts (src/monty_runtime/_server.py). */
export const WORKER_CSP =
  "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'none'; worker-src 'self'";

function evalBlocked() {
  try {
    // eslint-disable-next-line no-new-func
    new Function("return 1");
    return false;
  } catch (err) {
    return err instanceof EvalError || err?.name === "EvalError";
  }
}

async function connectBlocked(url, fetchImpl, timeoutMs) {
  let timer;
  const timeout = new Promise((resolve) => {
    // No answer either way in time: the request was not refused at once, so the
    // policy is not what refused it.
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const attempt = Promise.resolve()
    .then(() => fetchImpl(url, { method: "HEAD", cache: "no-store", credentials: "omit" }))
    .then(
      (response) => {
        response.body?.cancel?.().catch?.(() => {});
        return false; // reached the server
      },
      () => true,
    );
  try {
    return await Promise.race([attempt, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Test the policy in this (worker) context.
 *
 * @param {object} [options]
 * @param {string} [options.probeURL] a same-origin URL to try to fetch (default: this module)
 * @param {typeof fetch} [options.fetchImpl] the fetch to test (default: the global one;
 *   pass the original when a boot-time fetch replacement is installed)
 * @param {number} [options.timeoutMs] how long the fetch may take (default 5 s)
 * @returns {Promise<{ok: boolean, evalBlocked: boolean, connectBlocked: boolean,
 *   missing: string[]}>} `missing` names what the policy fails to forbid
 */
export async function checkWorkerPolicy({
  probeURL = import.meta.url,
  fetchImpl = globalThis.fetch,
  timeoutMs = 5_000,
} = {}) {
  const evalOk = evalBlocked();
  const connectOk = typeof fetchImpl !== "function"
    ? true
    : await connectBlocked(probeURL, fetchImpl, timeoutMs);
  const missing = [];
  if (!evalOk) missing.push("script-src without 'unsafe-eval' (new Function() works)");
  if (!connectOk) missing.push("connect-src 'none' (a fetch reached the server)");
  return { ok: missing.length === 0, evalBlocked: evalOk, connectBlocked: connectOk, missing };
}

/** The message of the BootError a worker without the policy fails with. */
export function policyMissingMessage(result) {
  return (
    `the worker script is not served with the required Content-Security-Policy ` +
    `(missing: ${result.missing.join("; ")}). Serve every worker script with ` +
    `"Content-Security-Policy: ${WORKER_CSP}" (see the README, "Security headers"), ` +
    `or pass requireCSP: false to MontyRuntime.create() to run without it`
  );
}
