// Errors that name the fix: hints.js (missing files, a worker that does not start).
import assert from "node:assert/strict";
import { test } from "node:test";

import { NOT_ISOLATED_WARNING, diagnoseWorkerScript, fileHint, httpFailure } from "../../web/shared/hints.js";

test("a missing lock file names the file, the URL and the commands that produce it", () => {
  const text = httpFailure(404, "Not Found", "https://app.example/rt/dist/pyodide-lock.json");
  assert.match(text, /^HTTP 404 Not Found for https:\/\/app\.example\/rt\/dist\/pyodide-lock\.json: /);
  assert.match(text, /pyodide-lock\.json is an output of the web build/);
  assert.match(text, /monty-runtime export SITE/);
  assert.match(text, /python -m monty_dev build/);
  assert.match(text, /lockFileURL/);
});

test("a missing Pyodide file says where Pyodide comes from and the option", () => {
  for (const name of ["pyodide.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide.asm.mjs"]) {
    const text = fileHint(`/x/pyodide/${name}`);
    assert.match(text, new RegExp(`^${name.replaceAll(".", "\\.")} is a Pyodide file`));
    assert.match(text, /npm ci --prefix web/);
    assert.match(text, /indexURL/);
  }
  assert.match(fileHint("/x/dist/monty_runtime-0.1.0-py3-none-any.whl?v=1"), /\.whl is an output of the web build/);
});

test("other HTTP failures are reported as they are", () => {
  assert.equal(httpFailure(500, "Server Error", "/x/dist/build-info.json"), "HTTP 500 Server Error for /x/dist/build-info.json");
});

const response = (status, type) => ({ ok: status < 400, status, statusText: status === 404 ? "Not Found" : "OK",
  headers: { get: (k) => (k.toLowerCase() === "content-type" ? type : null) } });

test("a worker script that is not there is named with the fix", async () => {
  const text = await diagnoseWorkerScript("/rt/worker.js", async () => response(404, "text/html"));
  assert.match(text, /HTTP 404 Not Found for \/rt\/worker\.js: worker\.js is a module of the runtime/);
});

test("a worker script with a wrong MIME type says so", async () => {
  const text = await diagnoseWorkerScript("/rt/worker.js", async () => response(200, "text/plain"));
  assert.match(text, /is served as "text\/plain": a module worker must be served as text\/javascript/);
});

test("a worker that loads but does not start lists the likely causes", async () => {
  const text = await diagnoseWorkerScript("/rt/worker.js", async () => response(200, "text/javascript; charset=utf-8"));
  assert.match(text, /Likely causes/);
  for (const cause of [/MIME type/, /Content-Security-Policy/, /missing/, /monty-runtime\/vite/]) assert.match(text, cause);
  const down = await diagnoseWorkerScript("/rt/worker.js", async () => { throw new TypeError("Failed to fetch"); });
  assert.match(down, /could not be fetched \(Failed to fetch\)/);
});

test("the isolation warning names the headers and what is lost", () => {
  assert.match(NOT_ISOLATED_WARNING, /Cross-Origin-Opener-Policy: same-origin/);
  assert.match(NOT_ISOLATED_WARNING, /Cross-Origin-Embedder-Policy: require-corp/);
  assert.match(NOT_ISOLATED_WARNING, /sessionLost/);
});
