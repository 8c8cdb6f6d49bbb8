// Boot-time fetches through the page, so that the worker needs no network at all.
//
// The worker runs under `connect-src 'none'`: it cannot fetch anything, ever. Pyodide
// still has to load its lock file, pyodide.asm.wasm, python_stdlib.zip and the wheels.
// So, during the boot only:
//
//   worker: installBootFetch(port) replaces `fetch` with one that asks the page, over
//           a MessagePort given in `init`, and builds a Response from the answer
//           (WebAssembly.instantiateStreaming accepts it: the Content-Type is kept);
//   page:   serveBootFetches(port, {allowed}) fetches each URL itself (GET only,
//           under the allowed URL prefixes, with the integrity and cache mode the
//           worker asked for) and transfers the bytes back.
//
// Before the worker reports `ready` (before any executed code runs) both ends close
// the port, and the worker removes `fetch` altogether (web/lockdown.js). Scripts
// (pyodide.mjs, pyodide.asm.mjs) are imported by the worker itself: script-src 'self'
// allows that and connect-src does not govern it.
// No dependencies; imported by the page (monty-runtime.js) and by worker scripts.

const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);
const CACHE_MODES = new Set(["default", "no-store", "reload", "no-cache", "force-cache"]);

function urlOf(input) {
  if (typeof input === "string") return input;
  if (input instanceof URL) return input.href;
  if (typeof Request === "function" && input instanceof Request) return input.url;
  return String(input);
}

/**
 * Worker side: route `fetch` to the page through `port` until `close()`.
 *
 * @param {MessagePort} port
 * @param {object} [options]
 * @param {object} [options.scope] the global whose `fetch` is replaced (default globalThis)
 * @returns {{fetch: typeof fetch, close(): void, requests: string[]}}
 */
export function installBootFetch(port, { scope = globalThis } = {}) {
  const previous = Object.getOwnPropertyDescriptor(scope, "fetch");
  const waiting = new Map();
  const requests = [];
  let nextId = 1;
  let closed = false;

  port.onmessage = (event) => {
    const answer = event.data;
    const settle = answer && typeof answer === "object" ? waiting.get(answer.id) : undefined;
    if (settle === undefined) return;
    waiting.delete(answer.id);
    settle(answer);
  };

  const bootFetch = (input, init = undefined) => {
    if (closed) return Promise.reject(new TypeError("fetch is not available in this worker"));
    const method = String(init?.method ?? (input instanceof Request ? input.method : "GET"));
    if (method.toUpperCase() !== "GET") {
      return Promise.reject(new TypeError(`boot fetch: only GET is supported, not ${method}`));
    }
    let url;
    try {
      url = new URL(urlOf(input), scope.location?.href).href;
    } catch (err) {
      return Promise.reject(new TypeError(`boot fetch: bad URL ${urlOf(input)}`));
    }
    const integrity = typeof init?.integrity === "string" && init.integrity ? init.integrity : undefined;
    const cache = CACHE_MODES.has(init?.cache) ? init.cache : undefined;
    const id = nextId++;
    requests.push(url);
    return new Promise((resolve, reject) => {
      waiting.set(id, (answer) => {
        if (!answer.ok) {
          reject(new TypeError(`Failed to fetch ${url} (through the page): ${answer.error}`));
          return;
        }
        const status = Number(answer.status) || 200;
        const headers = answer.contentType ? { "Content-Type": String(answer.contentType) } : {};
        const body = NULL_BODY_STATUS.has(status) ? null : answer.body;
        resolve(new Response(body, { status, statusText: String(answer.statusText ?? ""), headers }));
      });
      port.postMessage({ id, url, integrity, cache });
    });
  };

  Object.defineProperty(scope, "fetch", {
    value: bootFetch,
    writable: true,
    configurable: true,
    enumerable: previous?.enumerable ?? true,
  });

  return {
    fetch: bootFetch,
    requests,
    /** End of the boot: refuse further fetches, drop the port, put `fetch` back. */
    close() {
      if (closed) return;
      closed = true;
      port.onmessage = null;
      port.close();
      for (const settle of waiting.values()) settle({ ok: false, error: "the boot is over" });
      waiting.clear();
      if (previous) Object.defineProperty(scope, "fetch", previous);
      else delete scope.fetch;
    },
  };
}

function prefixOf(value, base) {
  const url = new URL(String(value), base);
  url.search = "";
  url.hash = "";
  const href = url.href;
  return href.endsWith("/") ? href : href.slice(0, href.lastIndexOf("/") + 1);
}

/**
 * Page side: answer the worker's boot fetches on `port` until `close()`.
 *
 * @param {MessagePort} port
 * @param {object} options
 * @param {Array<string | URL>} options.allowed URL prefixes (folders; a file URL
 *   allows its folder) that may be fetched; anything else is refused
 * @param {typeof fetch} [options.fetchImpl] default: the page's fetch
 * @param {number} [options.maxRequests] refuse after this many (default 256)
 * @param {(url: string, status: number, statusText: string) => void} [options.onMissing]
 *   called when a file the worker needs is not there (HTTP 404 or 410): every file a
 *   boot asks for is required, so the page can fail the boot at once, naming it
 * @returns {{close(): void, served: string[], refused: string[]}}
 */
export function serveBootFetches(
  port,
  { allowed, fetchImpl = globalThis.fetch.bind(globalThis), maxRequests = 256, onMissing = undefined } = { allowed: [] },
) {
  const base = globalThis.location?.href;
  const prefixes = (allowed ?? []).filter((p) => p != null).map((p) => prefixOf(p, base));
  const served = [];
  const refused = [];
  let closed = false;
  let count = 0;

  const reply = (message, transfer = []) => {
    if (!closed) port.postMessage(message, transfer);
  };

  port.onmessage = async (event) => {
    const req = event.data;
    if (closed || !req || typeof req !== "object" || !Number.isInteger(req.id)) return;
    const { id } = req;
    let url;
    try {
      url = new URL(String(req.url));
    } catch {
      reply({ id, ok: false, error: "bad URL" });
      return;
    }
    const href = url.href;
    if ((url.protocol !== "http:" && url.protocol !== "https:") ||
        !prefixes.some((p) => href.startsWith(p)) || ++count > maxRequests) {
      refused.push(href);
      reply({ id, ok: false, error: `the page does not fetch ${href} for a worker` });
      return;
    }
    const integrity = typeof req.integrity === "string" && /^sha(256|384|512)-/.test(req.integrity)
      ? req.integrity
      : undefined;
    try {
      const response = await fetchImpl(href, {
        credentials: "same-origin",
        ...(integrity ? { integrity } : {}),
        ...(CACHE_MODES.has(req.cache) ? { cache: req.cache } : {}),
      });
      const body = await response.arrayBuffer();
      served.push(href);
      if (response.status === 404 || response.status === 410) onMissing?.(href, response.status, response.statusText);
      reply({
        id,
        ok: true,
        status: response.status,
        statusText: response.statusText,
        contentType: response.headers.get("Content-Type"),
        body,
      }, [body]);
    } catch (err) {
      reply({ id, ok: false, error: String(err?.message ?? err) });
    }
  };

  return {
    served,
    refused,
    close() {
      if (closed) return;
      closed = true;
      port.onmessage = null;
      port.close();
    },
  };
}
