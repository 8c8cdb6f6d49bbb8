/**
 * Messages that name the fix, for the failures a deployment runs into: a missing file
 * (which one, the URL tried, the command that produces it), a worker script that does
 * not start (the reason, or the likely causes), a page without cross-origin isolation.
 * Pure functions: used by the page (monty-runtime.js, pool.js) and the worker (boot.js).
 */

const EXPORT = "deploy the runtime with `monty-runtime export SITE` (pip) or " +
  "`npx monty-runtime export SITE` (npm), or use the Vite plugin `monty-runtime/vite`";

/** What produces the file at `url`, and the option that points elsewhere. */
export function fileHint(url) {
  const name = String(url).split(/[?#]/)[0].split("/").pop() ?? "";
  if (name === "pyodide-lock.json" || name === "build-info.json" || name.endsWith(".whl")) {
    return `${name} is an output of the web build (the runtime folder's dist/): ${EXPORT}; ` +
      "in a source checkout run `python -m monty_dev build` (scripts/dev setup); " +
      "the option lockFileURL points at another lock file";
  }
  if (/^(pyodide\.(mjs|asm\.mjs|asm\.wasm)|python_stdlib\.zip)$/.test(name)) {
    return `${name} is a Pyodide file (npm package pyodide, pinned): ${EXPORT} ` +
      "(it copies Pyodide into the runtime folder's pyodide/); in a source checkout run " +
      "`npm ci --prefix web`; the option indexURL points at another Pyodide folder";
  }
  if (name.endsWith(".js")) {
    return `${name} is a module of the runtime: ${EXPORT}; the option workerURL points at another worker`;
  }
  return EXPORT;
}

/** `HTTP 404 Not Found for URL: <fix>`. */
export function httpFailure(status, statusText, url) {
  const text = `HTTP ${status}${statusText ? ` ${statusText}` : ""} for ${url}`;
  return status === 404 || status === 410 ? `${text}: ${fileHint(url)}` : text;
}

const JS_TYPES = /^(text|application)\/(x-)?(javascript|ecmascript)\b/i;

/**
 * Why a module worker from `url` did not start, when the browser gave no message
 * (engines report a failed module worker load as a bare `error` event): fetches the
 * script and says what is wrong with it, else lists the likely causes.
 */
export async function diagnoseWorkerScript(url, fetchImpl = globalThis.fetch) {
  let response;
  try {
    response = await fetchImpl(url, { cache: "no-store", credentials: "same-origin" });
  } catch (err) {
    return `the worker script ${url} could not be fetched (${err?.message ?? err}); ` +
      "is the server up, and the URL right?";
  }
  if (!response.ok) return `the worker script: ${httpFailure(response.status, response.statusText, url)}`;
  const type = response.headers.get("content-type") ?? "";
  if (!JS_TYPES.test(type)) {
    return `the worker script ${url} is served as "${type || "no Content-Type"}": a module ` +
      "worker must be served as text/javascript (fix the server's MIME types for .js and .mjs)";
  }
  return `the worker ${url} did not start, and the browser gave no reason. Likely causes: ` +
    "one of the modules it imports is missing or served with a wrong MIME type (look for " +
    "a 404 in the network panel: all files of the runtime folder must be deployed " +
    "together); the page's Content-Security-Policy does not allow it (worker-src and " +
    "script-src need 'self'); a bundler copied worker.js without its imports (with Vite " +
    "use the plugin monty-runtime/vite)";
}

/** The console warning of a page that is not cross-origin isolated. */
export const NOT_ISOLATED_WARNING =
  "[monty-runtime] this page is not cross-origin isolated: send the headers " +
  "`Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: " +
  "require-corp` with the page (`monty-runtime headers nginx|caddy|netlify|vercel` " +
  "prints them for your server). Without them there is no SharedArrayBuffer, so: " +
  "interrupting or timing out CPU-bound code terminates the worker and loses the " +
  "runtime's state (sessionLost), and sync-style host calls need JSPI (else `await` " +
  "them).";
