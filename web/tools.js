/**
 * LLM tool bindings for the browser runtime (queue, busy and sandbox policies): the
 * public entry; the code and its contract are in page/tools.js.
 * @module tools
 */

export * from "./page/tools.js";
