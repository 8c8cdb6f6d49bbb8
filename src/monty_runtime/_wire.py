"""Compact JSON text for worker -> page messages, on the hot path of every execute.

``json.dumps``/``JSONEncoder.encode`` build a new C encoder object on every call; for
the small messages of a round trip (an event, a result) that set-up is a large part of
the cost.  :func:`dumps` keeps one C encoder (``json.encoder.c_make_encoder``, there in
CPython and in Pyodide) and falls back to ``JSONEncoder.encode`` where it is missing.
The output is byte for byte that of ``json.dumps(obj, separators=(",", ":"))``
(ASCII, NaN allowed, no circular-reference check: messages are built from plain data).
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any

__all__ = ["dumps"]


def _default(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _make() -> Callable[[Any], str]:
    fallback: Callable[[Any], str] = json.JSONEncoder(separators=(",", ":")).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - a Python without the _json accelerator
        return fallback
    encoder = make(None, _default, json.encoder.encode_basestring_ascii, None, ":", ",",
                   False, False, True)
    encode_str = json.encoder.encode_basestring_ascii
    join = "".join

    def dumps(obj: Any) -> str:
        if isinstance(obj, str):
            return encode_str(obj)
        return join(encoder(obj, 0))

    return dumps


dumps: Callable[[Any], str] = _make()
