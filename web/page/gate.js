// The gate: parses a large worker message off the page's main thread (control.js Gate).
//
// A runtime's worker can post any text; parsing it is the page's work. Messages longer
// than GATE_CHARS are parsed here first: `{id, text, maxNodes}` comes in, and out goes
// `{id, message, nodes}` (the parsed value, cloned to the page) or `{id, problem}` when
// the text is not JSON or holds more than `maxNodes` values (objects, arrays, strings,
// numbers...). So a message built to be slow to parse (millions of tiny objects) costs
// this worker, not the page, and the page only ever materialises messages whose size
// is within what the runtime's limits allow. A batch longer than MAX_BATCH, or one
// with an item that is not a well-formed worker message, is refused here too, so a
// batch of millions of bogus items never reaches the page. Runs under the worker CSP.
import { MAX_BATCH, checkWorkerMessage, countNodes } from "./control.js";

self.onmessage = (event) => {
  const { id, text, maxNodes } = event.data;
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    self.postMessage({ id, problem: "a worker message is not valid JSON" });
    return;
  }
  if (Array.isArray(message)) {
    const problem = message.length > MAX_BATCH
      ? `a batch of ${message.length} messages (at most ${MAX_BATCH})`
      : message.map(checkWorkerMessage).find((p) => p !== null);
    if (problem != null) {
      self.postMessage({ id, problem });
      return;
    }
  }
  const nodes = countNodes(message, maxNodes);
  if (nodes > maxNodes) {
    self.postMessage({ id, problem: `a worker message of ${text.length} characters holds more than ${maxNodes} values` });
    return;
  }
  self.postMessage({ id, message, nodes });
};
