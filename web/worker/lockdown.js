// Remove the worker's ambient authority before executed code runs (worker side).
//
// Lock-down by allow-list: after the boot, the worker's global object, every prototype
// up its chain (DedicatedWorkerGlobalScope.prototype, WorkerGlobalScope.prototype,
// EventTarget.prototype) and `navigator` (WorkerNavigator.prototype and up) keep only
// what is listed below -- the JavaScript language itself and what Pyodide and worker.js
// use (timers, WebAssembly, Atomics, TextEncoder, crypto...) -- and lose
// everything else. An API nobody listed (the legacy FileSystem API
// `webkitRequestFileSystem`, an engine-specific extra, an API a browser adds next year)
// is gone by default. Names the runtime itself put on the global object during the boot
// (Pyodide's own, listed by the caller in `kept`) stay, and are reported.
//
// A deleted interface cannot be got back: a dedicated worker has no way to make a fresh
// global (no iframes; new Function and eval are refused by its Content-Security-Policy,
// and nested workers because Worker and SharedWorker are removed here). The CSP is the boundary for the network (connect-src 'none',
// worker-src 'self' keeps other-origin, blob: and data: workers out); this removes what a CSP does not govern at all: IndexedDB, Cache
// Storage, BroadcastChannel, Web Locks, the origin private file system, the legacy file
// system, storage buckets, devices. worker.js calls lockDownGlobals() once, after the
// boot and before it reports `ready`; anything it needs that is not listed here it
// captured before. `rt.info.env.lockdown` reports what was removed and what remains.
//
// The allow-list is data, in one place: ALLOWED_GLOBALS and ALLOWED_NAVIGATOR.

/** The ECMAScript language: standard built-in globals (any engine). */
const LANGUAGE = [
  "globalThis", "Infinity", "NaN", "undefined", "eval", "isFinite", "isNaN", "parseFloat",
  "parseInt", "decodeURI", "decodeURIComponent", "encodeURI", "encodeURIComponent",
  "escape", "unescape",
  "Object", "Function", "Boolean", "Symbol", "Error", "AggregateError", "EvalError",
  "RangeError", "ReferenceError", "SyntaxError", "TypeError", "URIError", "SuppressedError",
  "Number", "BigInt", "Math", "Date", "String", "RegExp", "Array", "Int8Array",
  "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array",
  "Uint32Array", "Float16Array", "Float32Array", "Float64Array", "BigInt64Array",
  "BigUint64Array", "Map", "Set", "WeakMap", "WeakSet", "ArrayBuffer", "SharedArrayBuffer",
  "DataView", "Atomics", "JSON", "WeakRef", "FinalizationRegistry", "Iterator", "Promise",
  "Proxy", "Reflect", "Intl", "WebAssembly", "DisposableStack", "AsyncDisposableStack",
  "console",
];

/** What Pyodide and worker.js use from the web platform after the boot. */
const PLATFORM = [
  // the worker itself: closing, events. Not postMessage: worker.js captured it at load
  // and speaks to the page through its gate's port (page/gate.js), so executed code
  // has no way to post to the page around the gate.
  "self", "close", "name", "addEventListener", "removeEventListener",
  "dispatchEvent", "EventTarget", "Event", "MessageEvent", "ErrorEvent", "DOMException",
  "MessagePort", // (Pyodide made its MessageChannel at load; code cannot make another)
  // scheduling (timers are guarded by worker.js) and time
  "setTimeout", "clearTimeout", "setInterval", "clearInterval", "queueMicrotask",
  "performance", "structuredClone", "reportError",
  // data: text, URLs, bytes, randomness (os.urandom)
  "TextEncoder", "TextDecoder", "URL", "URLSearchParams", "atob", "btoa", "Blob",
  "crypto", "Crypto", "AbortController", "AbortSignal",
  // facts about this context (read-only)
  "navigator", "location", "origin", "isSecureContext", "crossOriginIsolated",
];

/** Kept on the global object and its prototypes; everything else is removed. */
export const ALLOWED_GLOBALS = Object.freeze([...LANGUAGE, ...PLATFORM]);

/** Kept on `navigator` (read-only facts); everything else (storage, locks, devices,
 * permissions, GPU, service workers...) is removed. */
export const ALLOWED_NAVIGATOR = Object.freeze([
  "userAgent", "appCodeName", "appName", "appVersion", "platform", "product", "language",
  "languages", "onLine", "hardwareConcurrency",
]);

/** Removed in any case, even if a caller marks it as its own (the APIs that reach
 * beyond the worker; kept as a named list for the report and the tests). */
export const REMOVED_GLOBALS = Object.freeze([
  "fetch", "XMLHttpRequest", "WebSocket", "WebSocketStream", "EventSource", "WebTransport",
  "Worker", "SharedWorker", "importScripts", "RTCPeerConnection", "RTCDataChannel",
  "indexedDB", "caches", "cookieStore", "BroadcastChannel", "Notification",
  "webkitRequestFileSystem", "webkitRequestFileSystemSync",
  "webkitResolveLocalFileSystemURL", "webkitResolveLocalFileSystemSyncURL",
]);

/** Removed from `navigator` in any case (see REMOVED_GLOBALS). */
export const REMOVED_NAVIGATOR = Object.freeze([
  "storage", "storageBuckets", "locks", "serviceWorker", "usb", "hid", "serial", "bluetooth",
]);

/** Prototype plumbing, kept wherever it appears. */
const PLUMBING = new Set(["constructor"]);

/** The objects from `object` up its prototype chain, Object.prototype excluded. */
function chain(object) {
  const out = [];
  for (let o = object; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o)) out.push(o);
  return out;
}

/** Every string-named property reachable on `object` (own and inherited, not from
 * Object.prototype), as executed code enumerates them. */
export function reachable(object) {
  const names = new Set();
  for (const o of chain(object)) for (const name of Object.getOwnPropertyNames(o)) names.add(name);
  return [...names].sort();
}

/** Delete every definition of `name` along the prototype chain of `object`. */
function removeFrom(object, name) {
  let removed = false;
  for (const o of chain(object)) {
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
      // reported: `name` is still reachable
    }
  }
  return removed;
}

function isConstant(object, name) {
  for (const o of chain(object)) {
    const desc = Object.getOwnPropertyDescriptor(o, name);
    if (desc === undefined) continue;
    const value = desc.value;
    return !("get" in desc) && desc.writable === false && desc.configurable === false &&
      (typeof value === "number" || typeof value === "string" || typeof value === "boolean");
  }
  return false;
}

function stillThere(object, name) {
  try {
    return object[name] !== undefined && object[name] !== null;
  } catch {
    return false;
  }
}

/**
 * Remove everything not allowed from `scope` (default: the worker's global object), its
 * prototypes and its `navigator`.
 * @param {object} [scope]
 * @param {{kept?: Iterable<string>}} [options] `kept`: global names the runtime itself
 *   defined during the boot (Pyodide's own), kept unless in REMOVED_GLOBALS
 * @returns {{removed: string[], failed: string[], allowed: {global: string[], navigator: string[]},
 *   kept: {global: string[]}, constants: string[], remaining: {global: string[], navigator: string[]}}}
 *   what was removed; what is still reachable though not allowed (expected: nothing);
 *   the allow-list; the runtime's own names kept; read-only primitive constants that
 *   cannot be removed; everything reachable afterwards
 */
export function lockDownGlobals(scope = globalThis, options = {}) {
  const allowed = new Set(ALLOWED_GLOBALS);
  const forbidden = new Set(REMOVED_GLOBALS);
  const kept = [...(options.kept ?? [])].filter((n) => !allowed.has(n) && !forbidden.has(n) &&
    Object.hasOwn(scope, n));
  const keep = new Set([...allowed, ...kept, ...PLUMBING]);
  const removed = [];
  const failed = [];
  const nav = scope.navigator;
  const constants = [];
  for (const name of reachable(scope)) {
    if (keep.has(name)) continue;
    if (removeFrom(scope, name)) removed.push(name);
    if (!stillThere(scope, name)) continue;
    // A read-only, non-configurable constant (Chromium's legacy-FileSystem TEMPORARY
    // and PERSISTENT numbers) cannot be removed and grants nothing: reported apart.
    if (isConstant(scope, name)) constants.push(name);
    else failed.push(name);
  }
  if (nav) {
    const navAllowed = new Set(ALLOWED_NAVIGATOR);
    for (const name of reachable(nav)) {
      if (navAllowed.has(name) || PLUMBING.has(name)) continue;
      if (removeFrom(nav, name)) removed.push(`navigator.${name}`);
      if (stillThere(nav, name)) failed.push(`navigator.${name}`);
    }
  }
  return {
    removed,
    failed,
    allowed: { global: [...ALLOWED_GLOBALS], navigator: [...ALLOWED_NAVIGATOR] },
    kept: { global: kept.sort() },
    constants,
    remaining: { global: reachable(scope), navigator: nav ? reachable(nav) : [] },
  };
}
