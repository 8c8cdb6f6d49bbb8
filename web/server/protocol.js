/**
 * Messages between a Python process (src/monty_runtime/_deno.py) and the JS host
 * process (web/server/host.js) that runs its runtimes in locked-down Deno workers.
 *
 * Newline-delimited JSON over the host's stdin (Python -> host) and stdout (host ->
 * Python), one message per line. `rid` names a runtime (chosen by Python), `id` an
 * execution request of that runtime, `call` a host-function call (numbered by the
 * host). Values are in the codec's wire form; `raw` is the worker's own JSON text of
 * the message that carried a result or a host call, so Python reads those values
 * exactly as the worker's Python wrote them (JavaScript numbers cannot tell 2 from 2.0).
 *
 * The same table lives in src/monty_runtime/_deno_protocol.py; a test compares the
 * JSON between the MESSAGES markers, so keep that block plain JSON.
 * @module server/protocol
 */

/** Bumped whenever a message or field changes meaning. */
export const HOST_PROTOCOL_VERSION = 1;

export const MESSAGES = Object.freeze(
  /* BEGIN MESSAGES */
  {
    "python_to_host": {
      "create": { "required": ["rid", "functions", "sandbox", "limits"], "optional": ["poolSize", "snapshot", "prewarm"] },
      "execute": { "required": ["rid", "id", "code"], "optional": ["limits", "scriptName", "inputs"] },
      "host_result": { "required": ["call", "ok"], "optional": ["value", "value_json", "error"] },
      "interrupt": { "required": ["rid"], "optional": ["id"] },
      "dispose": { "required": ["rid"], "optional": [] },
      "stats": { "required": ["id"], "optional": [] }
    },
    "host_to_python": {
      "hello": { "required": ["version", "deno", "v8"], "optional": [] },
      "created": { "required": ["rid", "info"], "optional": [] },
      "create_failed": { "required": ["rid", "error"], "optional": [] },
      "event": { "required": ["rid", "id", "event"], "optional": [] },
      "result": { "required": ["rid", "id", "result"], "optional": ["raw", "index"] },
      "rejected": { "required": ["rid", "id", "error"], "optional": [] },
      "host_call": { "required": ["rid", "call", "raw"], "optional": ["index"] },
      "stats": { "required": ["id", "stats"], "optional": [] },
      "log": { "required": ["level", "message"], "optional": [] }
    }
  }
  /* END MESSAGES */
);
