"""Messages between the page (``web/monty-runtime.js``) and a runtime's Web Worker
(``web/worker.js`` + :mod:`monty_runtime.worker`).

``web/shared/protocol.js`` defines the same table; ``tests/unit/test_protocol.py`` fails when
the two drift.  Every message is an object with a ``type`` and the fields listed here
(``required`` must be present; ``optional`` may be).  Page -> worker messages are plain
objects (structured clone); worker -> page messages travel as JSON text, one message or
a JSON array of messages (the worker batches what it posts in one turn).  Values
inside (``args``, ``value`` ...) are in the wire form of :mod:`monty_runtime.codec`.

page -> worker
    ``init``         once, first: boot options, host function schemas, mode, limits;
                     with ``deferConfig`` only the boot options count (a pooled worker)
                     and the rest comes with ``configure``; ``snapshot`` restores a
                     memory snapshot, ``makeSnapshot`` asks for one (web/page/snapshot.js);
                     with ``planFollows`` those three come later, with ``plan``
    ``plan``         how to boot (``snapshot``, ``makeSnapshot``, ``assets``), once the page
                     knows (a first visit downloads the snapshot meanwhile): the worker
                     fetches its lock file and loads Pyodide's scripts until then
    ``configure``    a pooled worker's host function schemas, mode, limits, shared buffer
    ``execute``      run ``code``; ``id`` is the page's request id (echoed by every reply)
    ``host_result``  the answer to a ``host_call`` (``ok`` + ``value`` or ``error``;
                     a host that holds the value as JSON text sends ``value_json``)
    ``interrupt``    raise ``KeyboardInterrupt`` in the running code (best effort); with
                     ``id``, only in that request's execution
    ``dispose``      stop; the page terminates the worker right after
    ``ping``         liveness check: the worker answers ``pong`` (from JavaScript, when
                     its event loop is free)

worker -> page
    ``ready``        booted (``version``, boot ``phases`` in ms, ``env``, ``boot``: how
                     Python came up -- cold, from a snapshot, or a fallback and why)
    ``booted``       a pooled worker booted and waits for ``configure``
    ``snapshot``     the snapshot asked for with ``makeSnapshot`` (not JSON text: an
                     object whose byte arrays are transferred), or ``ok: false``
    ``boot_error``   the boot failed at ``step`` (then nothing else is sent)
    ``event``        one event dict (``event``) of request ``id``
    ``result``       the result of request ``id`` (the request is over)
    ``rejected``     request ``id`` was refused (``error``: {name, message}), e.g. the
                     bridge's ``StateError("Bridge is already executing")``; ``id`` is
                     null for a message the worker could not attribute
    ``host_call``    call host function ``name`` for request ``execution``; ``sync`` true
                     means "answer through the shared buffer, the worker is blocked"
    ``log``          a diagnostic line for the page's console
    ``pong``         the answer to ``ping``
    ``fatal``        Pyodide failed fatally (``message``); the worker is unusable

With ``init.controlBuffer`` (cross-origin isolated pages) the page also reaches a busy
worker through shared memory and a signal: see ``CONTROL`` in ``web/shared/protocol.js`` and
:mod:`monty_runtime._control`.  ``init.lockName`` names a Web Lock the worker holds
for its whole life, so the page hears of its death even when it sends nothing.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "MESSAGES",
    "PAGE_TO_WORKER",
    "PROTOCOL_VERSION",
    "WORKER_TO_PAGE",
    "check_message",
    "fields",
]

PROTOCOL_VERSION: Final = 1

#: direction -> type -> {"required": [...], "optional": [...]}
MESSAGES: Final[dict[str, dict[str, dict[str, list[str]]]]] = {
    "page_to_worker": {
        "init": {
            "required": ["version", "functions", "sandbox", "limits", "sync"],
            "optional": ["indexURL", "lockFileURL", "packageBaseUrl", "stepTimeoutMs",
                         "syncBuffer", "requireCSP", "bootPort", "snapshot", "makeSnapshot",
                         "deferConfig", "controlBuffer", "lockName", "assets", "outPort",
                         "planFollows"],
        },
        "plan": {"required": [], "optional": ["snapshot", "makeSnapshot", "assets"]},
        "configure": {
            "required": ["functions", "sandbox", "limits", "sync"],
            "optional": ["syncBuffer", "controlBuffer", "lockName", "outPort"],
        },
        "execute": {"required": ["id", "code"], "optional": ["limits", "scriptName", "inputs"]},
        "host_result": {"required": ["id", "ok"], "optional": ["value", "value_json", "error"]},
        "interrupt": {"required": [], "optional": ["id"]},
        "dispose": {"required": [], "optional": []},
        "ping": {"required": [], "optional": []},
    },
    "worker_to_page": {
        "ready": {"required": ["version", "phases", "env"], "optional": ["boot"]},
        "booted": {"required": ["phases", "boot", "env"], "optional": []},
        "snapshot": {"required": ["ok"], "optional": ["snapshot", "reason"]},
        "boot_error": {"required": ["step", "message"], "optional": ["name"]},
        "event": {"required": ["id", "event"], "optional": []},
        "result": {
            "required": ["id", "value", "stdout", "stderr", "error", "session_lost"],
            "optional": ["execution_id", "duration_ms"],
        },
        "rejected": {"required": ["id", "error"], "optional": []},
        "host_call": {
            "required": ["id", "execution", "name", "args", "kwargs", "sync"],
            "optional": [],
        },
        "log": {"required": ["level", "message"], "optional": []},
        "pong": {"required": [], "optional": []},
        "fatal": {"required": ["message"], "optional": ["uncaught"]},
    },
}

PAGE_TO_WORKER: Final = MESSAGES["page_to_worker"]
WORKER_TO_PAGE: Final = MESSAGES["worker_to_page"]


def fields(direction: str, kind: str) -> list[str]:
    """All fields (required, then optional) of a message type."""
    spec = MESSAGES[direction][kind]
    return [*spec["required"], *spec["optional"]]


def check_message(direction: str, message: Any) -> str | None:
    """``None`` when ``message`` is a known message of ``direction`` with its required
    fields, else what is wrong (unknown extra fields are tolerated)."""
    table = MESSAGES[direction]
    if not isinstance(message, dict):
        return f"a message must be an object, got {type(message).__name__}"
    kind = message.get("type")
    spec = table.get(kind) if isinstance(kind, str) else None
    if spec is None:
        return f"unknown message type {kind!r:.60}"
    missing = [f for f in spec["required"] if f not in message]
    if missing:
        return f"{kind} message without {', '.join(missing)}"
    return None
