"""Messages between this Python process (:mod:`monty_runtime._deno`) and the JS host
process (``web/server/host.js``) that runs the Deno backend's runtimes.

Newline-delimited JSON: Python writes to the host's stdin, the host to its stdout.
``rid`` names a runtime (chosen here), ``id`` an execution request of that runtime,
``call`` a host-function call (numbered by the host).  ``raw`` is the worker's own JSON
text of the message that carried a result or a host call (``index``: its place in a
batch, ``-1`` for a lone message), so values are read exactly as the worker wrote them.

``web/server/protocol.js`` defines the same table; ``tests/unit/test_deno_backend.py``
fails when the two drift.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HOST_PROTOCOL_VERSION", "MESSAGES", "check_message"]

HOST_PROTOCOL_VERSION = 1

MESSAGES: dict[str, dict[str, dict[str, list[str]]]] = {
    "python_to_host": {
        "create": {
            "required": ["rid", "functions", "sandbox", "limits"],
            "optional": ["poolSize", "snapshot", "prewarm"],
        },
        "execute": {
            "required": ["rid", "id", "code"],
            "optional": ["limits", "scriptName", "inputs"],
        },
        "host_result": {"required": ["call", "ok"], "optional": ["value", "value_json", "error"]},
        "interrupt": {"required": ["rid"], "optional": ["id"]},
        "dispose": {"required": ["rid"], "optional": []},
        "stats": {"required": ["id"], "optional": []},
    },
    "host_to_python": {
        "hello": {"required": ["version", "deno", "v8"], "optional": []},
        "created": {"required": ["rid", "info"], "optional": []},
        "create_failed": {"required": ["rid", "error"], "optional": []},
        "event": {"required": ["rid", "id", "event"], "optional": []},
        "result": {"required": ["rid", "id", "result"], "optional": ["raw", "index"]},
        "rejected": {"required": ["rid", "id", "error"], "optional": []},
        "host_call": {"required": ["rid", "call", "raw"], "optional": ["index"]},
        "stats": {"required": ["id", "stats"], "optional": []},
        "log": {"required": ["level", "message"], "optional": []},
    },
}


def check_message(direction: str, message: Any) -> str | None:
    """``None`` when ``message`` is a known message of ``direction`` with its required
    fields, else what is wrong."""
    if not isinstance(message, dict):
        return f"a message must be an object, got {type(message).__name__}"
    spec = MESSAGES[direction].get(message.get("type"))  # type: ignore[arg-type]
    if spec is None:
        return f"unknown message type {str(message.get('type'))[:60]!r}"
    missing = [f for f in spec["required"] if f not in message]
    return f"{message['type']} message without {', '.join(missing)}" if missing else None
