// Tests for the worker's boot-time fetch through the page (web/boot-fetch.js), the
// removal of ambient APIs (web/lockdown.js) and the policy check (web/csp-check.js),
// outside a browser. Run with: node --test tests/js/

import assert from "node:assert/strict";
import { test } from "node:test";

import { installBootFetch, serveBootFetches } from "../../web/boot-fetch.js";
import { checkWorkerPolicy, policyMissingMessage } from "../../web/csp-check.js";
import { REMOVED_GLOBALS, lockDownGlobals } from "../../web/lockdown.js";

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

test("lockDownGlobals deletes the APIs from the object and its prototypes", () => {
  class Proto {}
  Object.defineProperty(Proto.prototype, "indexedDB", { get: () => ({}), configurable: true });
  const locks = {};
  class Nav {}
  Object.defineProperty(Nav.prototype, "locks", { get: () => locks, configurable: true });
  Object.defineProperty(Nav.prototype, "storage", { get: () => ({}), configurable: true });
  const scope = new Proto();
  Object.assign(scope, {
    fetch() {},
    WebSocket() {},
    BroadcastChannel() {},
    setTimeout() {},
    navigator: new Nav(),
  });
  Object.defineProperty(scope, "caches", { value: {}, configurable: false, writable: false });
  const { removed, failed } = lockDownGlobals(scope);
  for (const name of ["fetch", "WebSocket", "BroadcastChannel", "indexedDB", "navigator.locks", "navigator.storage"]) {
    assert.ok(removed.includes(name), name);
  }
  assert.equal(scope.fetch, undefined);
  assert.equal(scope.indexedDB, undefined);
  assert.equal(scope.navigator.locks, undefined);
  assert.equal(typeof scope.setTimeout, "function"); // what the runtime needs stays
  assert.deepEqual(failed, ["caches"]); // non-configurable and read-only: reported
  assert.ok(REMOVED_GLOBALS.includes("XMLHttpRequest"));
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
