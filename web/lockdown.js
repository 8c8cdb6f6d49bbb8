// Remove the worker's ambient authority before executed code runs (worker side).
//
// After the boot the worker needs, from its global scope, only what Pyodide and
// worker.js use (timers, postMessage, WebAssembly, Atomics, TextEncoder, crypto...).
// Every API that reaches beyond the worker -- the network, the origin's storage, other
// same-origin contexts, devices -- is deleted here from the global object, its
// prototypes and `navigator`. A deleted interface cannot be got back: a dedicated
// worker has no way to make a fresh global (no iframes; new Function, eval and nested
// workers are refused by its Content-Security-Policy).
//
// The Content-Security-Policy is the boundary for the network (connect-src 'none';
// worker-src 'self' keeps other-origin, blob: and data: workers out); this removes what a CSP does not govern at all: IndexedDB, Cache
// Storage, BroadcastChannel, Web Locks, the origin private file system, storage
// buckets, devices. worker.js calls lockDownGlobals() once, after the boot and before
// it reports `ready`; anything it still needs it captured before.

/** Removed from the worker's global object (and its prototype chain). */
export const REMOVED_GLOBALS = Object.freeze([
  // network (also refused by connect-src 'none'); Worker/SharedWorker: the CSP's
  // worker-src 'self' still allows same-origin workers (Firefox needs it for a module
  // worker's own imports), so removing them is what makes nested workers impossible
  "fetch",
  "XMLHttpRequest",
  "WebSocket",
  "WebSocketStream",
  "EventSource",
  "WebTransport",
  "Worker",
  "SharedWorker",
  "importScripts",
  "RTCPeerConnection",
  "RTCDataChannel",
  // the origin's storage, shared with the page and every same-origin context
  "indexedDB",
  "caches",
  "cookieStore",
  // channels to other same-origin contexts
  "BroadcastChannel",
  // user-visible side effects
  "Notification",
]);

/** Removed from `navigator` (WorkerNavigator.prototype and up). */
export const REMOVED_NAVIGATOR = Object.freeze([
  "storage", // origin private file system, persist(), estimate()
  "storageBuckets", // IndexedDB / Cache Storage through buckets
  "locks", // Web Locks: shared with the page and other same-origin contexts
  "serviceWorker",
  "usb",
  "hid",
  "serial",
  "bluetooth",
]);

function removeFrom(object, name) {
  // Delete every definition of `name` along the prototype chain of `object`.
  let removed = false;
  for (let o = object; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    const desc = Object.getOwnPropertyDescriptor(o, name);
    if (desc === undefined) continue;
    if (desc.configurable && delete o[name]) {
      removed = true;
      continue;
    }
    try {
      Object.defineProperty(o, name, { value: undefined, writable: false, configurable: false });
      removed = true;
    } catch {
      // reported below: `name` is still reachable
    }
  }
  return removed;
}

function stillThere(object, name) {
  try {
    return object[name] !== undefined && object[name] !== null;
  } catch {
    return false;
  }
}

/**
 * Delete the APIs above from `scope` (default: the worker's global object).
 * @returns {{removed: string[], failed: string[]}} what was removed, and what is
 *   still reachable afterwards (expected: nothing)
 */
export function lockDownGlobals(scope = globalThis) {
  const removed = [];
  const failed = [];
  for (const name of REMOVED_GLOBALS) {
    if (removeFrom(scope, name)) removed.push(name);
    if (stillThere(scope, name)) failed.push(name);
  }
  const nav = scope.navigator;
  if (nav) {
    for (const name of REMOVED_NAVIGATOR) {
      if (removeFrom(nav, name)) removed.push(`navigator.${name}`);
      if (stillThere(nav, name)) failed.push(`navigator.${name}`);
    }
  }
  return { removed, failed };
}
