// Tests for the worker's boot-time fetch through the page (web/shared/boot-fetch.js), the
// removal of ambient APIs (web/worker/lockdown.js) and the policy check (web/worker/csp-check.js),
// outside a browser. Run with: node --test tests/node/

import assert from "node:assert/strict";
import { test } from "node:test";

import { installBootFetch, serveBootFetches } from "../../web/shared/boot-fetch.js";
import { checkWorkerPolicy, policyMissingMessage } from "../../web/worker/csp-check.js";
import {
  ALLOWED_GLOBALS, ALLOWED_NAVIGATOR, REMOVED_GLOBALS, REMOVED_NAVIGATOR, lockDownGlobals,
} from "../../web/worker/lockdown.js";

const BASE = "https://app.example/web/";

function fakeFetch(log) {
  return async (url, init) => {
    log.push({ url: String(url), init });
    if (String(url).endsWith("missing.json")) {
      return new Response("nope", { status: 404, statusText: "Not Found" });
    }
    if (String(url).endsWith("boom")) throw new TypeError("network down");
    return new Response(new TextEncoder().encode(`body of ${url}`), {
      status: 200,
      headers: { "Content-Type": url.endsWith(".wasm") ? "application/wasm" : "text/plain" },
    });
  };
}

function pair({ allowed = [BASE] } = {}) {
  const channel = new MessageChannel();
  const log = [];
  const scope = { location: { href: `${BASE}worker.js` }, fetch: () => Promise.reject(new Error("real fetch")) };
  const page = serveBootFetches(channel.port1, { allowed, fetchImpl: fakeFetch(log) });
  const worker = installBootFetch(channel.port2, { scope });
  const close = () => {
    worker.close();
    page.close();
  };
  return { scope, page, worker, log, close };
}

test("the worker's fetch is answered by the page, status and type kept", async () => {
  const { scope, log, page, close } = pair();
  try {
    const wasm = await scope.fetch(new URL("node_modules/pyodide/pyodide.asm.wasm", BASE));
    assert.equal(wasm.status, 200);
    assert.equal(wasm.headers.get("Content-Type"), "application/wasm");
    assert.match(await wasm.text(), /pyodide\.asm\.wasm$/);
    const missing = await scope.fetch("dist/missing.json", { cache: "no-cache" });
    assert.equal(missing.status, 404);
    assert.equal(missing.ok, false);
    const wheel = await scope.fetch(`${BASE}dist/x.whl`, { integrity: "sha256-abc=" });
    assert.equal(wheel.status, 200);
    assert.equal(log[1].init.cache, "no-cache");
    assert.equal(log[2].init.integrity, "sha256-abc=");
    assert.equal(log[2].init.credentials, "same-origin");
    assert.deepEqual(page.served.length, 3);
  } finally {
    close();
  }
});

test("the page refuses URLs outside the allowed prefixes, and non-GET requests", async () => {
  const { scope, log, page, close } = pair();
  try {
    await assert.rejects(scope.fetch("https://evil.example/x"), /does not fetch/);
    await assert.rejects(scope.fetch("https://app.example/other/x"), /does not fetch/);
    await assert.rejects(scope.fetch("data:text/plain,hi"), /does not fetch/);
    await assert.rejects(scope.fetch(`${BASE}x`, { method: "POST" }), /only GET/);
    await assert.rejects(scope.fetch(`${BASE}boom`), /network down/);
    assert.equal(log.filter((r) => !r.url.endsWith("boom")).length, 0);
    assert.equal(page.refused.length, 3);
  } finally {
    close();
  }
});

test("after close() the worker cannot fetch through the page any more", async () => {
  const { scope, worker, page } = pair();
  const original = scope.fetch;
  worker.close();
  page.close();
  assert.notEqual(scope.fetch, original);
  await assert.rejects(scope.fetch(`${BASE}dist/x.whl`), /real fetch/); // the original is back
  await assert.rejects(worker.fetch(`${BASE}dist/x.whl`), /not available in this worker/);
});

test("a file URL in `allowed` allows its folder", async () => {
  const { scope, close } = pair({ allowed: [`${BASE}worker.js`, "https://cdn.example/pyodide/v1/"] });
  try {
    assert.equal((await scope.fetch(`${BASE}dist/a.whl`)).status, 200);
    assert.equal((await scope.fetch("https://cdn.example/pyodide/v1/pyodide.asm.wasm")).status, 200);
    await assert.rejects(scope.fetch("https://cdn.example/pyodide/v2/x"), /does not fetch/);
  } finally {
    close();
  }
});

test("lockDownGlobals keeps the allow-list and removes everything else, prototypes included", () => {
  class Proto {}
  Object.defineProperty(Proto.prototype, "indexedDB", { get: () => ({}), configurable: true });
  Object.defineProperty(Proto.prototype, "webkitRequestFileSystem", { value() {}, configurable: true });
  Object.defineProperty(Proto.prototype, "postMessage", { value() {}, configurable: true });
  const locks = {};
  class Nav {}
  for (const name of ["locks", "storage", "gpu", "userAgent", "hardwareConcurrency"]) {
    Object.defineProperty(Nav.prototype, name, { get: () => locks, configurable: true });
  }
  const scope = new Proto();
  Object.assign(scope, {
    fetch() {},
    WebSocket() {},
    BroadcastChannel() {},
    SomeFutureApi() {},
    webkitResolveLocalFileSystemURL() {},
    setTimeout() {},
    loadPyodide() {},
    navigator: new Nav(),
  });
  Object.defineProperty(scope, "caches", { value: {}, configurable: false, writable: false });
  Object.defineProperty(scope, "TEMPORARY", { value: 0, configurable: false, writable: false });
  const out = lockDownGlobals(scope, { kept: ["loadPyodide", "fetch", "notThere"] });
  for (const name of ["fetch", "WebSocket", "BroadcastChannel", "SomeFutureApi", "indexedDB",
    "webkitRequestFileSystem", "webkitResolveLocalFileSystemURL", "navigator.locks",
    "navigator.storage", "navigator.gpu"]) {
    assert.ok(out.removed.includes(name), name);
  }
  assert.equal(scope.fetch, undefined);
  assert.equal(scope.indexedDB, undefined);
  assert.equal(scope.webkitRequestFileSystem, undefined);
  assert.equal(scope.navigator.locks, undefined);
  assert.equal(typeof scope.setTimeout, "function"); // what the runtime needs stays
  // worker.js posts through its gate's port (or the postMessage it took before): code
  // after the lock-down has no postMessage of the worker's own
  assert.equal(scope.postMessage, undefined);
  assert.ok(out.removed.includes("postMessage"));
  assert.equal(scope.navigator.userAgent, locks);
  assert.deepEqual(out.kept.global, ["loadPyodide"]); // its own, but never a forbidden name
  assert.deepEqual(out.failed, ["caches"]); // non-configurable and read-only: reported
  assert.deepEqual(out.constants, ["TEMPORARY"]); // a number grants nothing
  assert.deepEqual(out.remaining.global,
    ["TEMPORARY", "caches", "constructor", "loadPyodide", "navigator", "setTimeout"]);
  assert.deepEqual(out.remaining.navigator, ["constructor", "hardwareConcurrency", "userAgent"]);
  assert.ok(REMOVED_GLOBALS.includes("webkitRequestFileSystemSync"));
  assert.ok(ALLOWED_GLOBALS.includes("WebAssembly") && !ALLOWED_GLOBALS.includes("fetch"));
  assert.ok(ALLOWED_NAVIGATOR.every((n) => !REMOVED_NAVIGATOR.includes(n)));
});

test("checkWorkerPolicy reports what is missing", async () => {
  // Node has no CSP: string evaluation works and the fetch is not refused.
  const result = await checkWorkerPolicy({
    probeURL: "https://app.example/x",
    fetchImpl: async () => new Response("ok"),
  });
  assert.equal(result.ok, false);
  assert.equal(result.evalBlocked, false);
  assert.equal(result.connectBlocked, false);
  assert.equal(result.missing.length, 2);
  assert.match(policyMissingMessage(result), /requireCSP: false/);
  const refused = await checkWorkerPolicy({
    fetchImpl: () => Promise.reject(new TypeError("Failed to fetch")),
  });
  assert.equal(refused.connectBlocked, true);
});
