"""The value codec shared by the Python and JavaScript halves of monty-runtime.

Every value that crosses a boundary (a worker ``postMessage``, a subprocess pipe, an
execution result handed to an LLM tool call) goes through this codec, and
``web/shared/codec.js`` implements the same wire format for the browser side.  The format
is "JSON plus tags for what JSON cannot hold": plain JSON stays plain JSON (so a
result is readable and cheap to produce in the common case), and the handful of
Python values JSON would silently corrupt or reject get a one-key tag object:

==========================  =================================================
Python value                wire form
==========================  =================================================
None, bool, str             as is
int, |v| <= 2**53 - 1       JSON number (the range JavaScript holds exactly)
other int                   ``{"$int": "<decimal>"}``
finite float                JSON number
nan, inf, -inf              ``{"$float": "nan" | "inf" | "-inf"}``
bytes, bytearray,           ``{"$bytes": "<standard base64, padded>"}``
memoryview
list                        JSON array
tuple                       ``{"$tuple": [...]}``
set / frozenset             ``{"$set": [...]}`` / ``{"$frozenset": [...]}``
dict, all keys str and      JSON object (key order kept)
none starting with "$"
any other dict              ``{"$map": [[key, value], ...]}`` (order kept)
anything else, a cycle,     ``{"$repr": "<repr, <= 1000 chars + '...'>",
or nesting > MAX_DEPTH       "$type": "<type name>"}``
==========================  =================================================

Because a plain object whose key starts with ``"$"`` is always sent as ``$map``,
any object on the wire with a ``"$"`` key *is* a tag, and a malformed one is an
error rather than being mistaken for data.  Set items are sorted by their JSON
text so that equal sets always encode to identical text (useful for caching,
diffing and tests); everything else keeps its order.

Encoding never raises: values it cannot represent become ``$repr`` so a result
is always deliverable.  (That includes an int too long for the interpreter's
``sys.get_int_max_str_digits()`` limit: the limit is a denial-of-service guard,
so the codec honours it in both directions instead of working around it.)
Decoding is strict and raises :class:`CodecError` for anything that is not
exactly a wire value, because a lenient decoder would let the two language
implementations drift apart silently.
"""

from __future__ import annotations

import base64
import json
import math
import re
import reprlib
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["MAX_DEPTH", "CodecError", "Opaque", "decode", "dumps", "encode", "loads"]

MAX_DEPTH: Final = 100
"""Containers nested deeper than this become ``$repr``.

The limit keeps encode/decode far below Python's default recursion limit (and
Pyodide's smaller browser stack) without an explicit stack, and keeps results a
size an LLM can actually read.  The top-level value is at depth 0, so up to
``MAX_DEPTH`` levels of containers are encoded faithfully.
"""

_SAFE_INT: Final = 2**53 - 1  # Number.MAX_SAFE_INTEGER: larger ints lose precision in JS
_MAX_REPR: Final = 1000
# Deepest wire nesting ``encode`` can produce: each container level costs at most
# three wire levels ({"$map": [[k, v]]}).  Anything deeper did not come from an
# encoder and is rejected instead of risking a RecursionError.
_MAX_WIRE_DEPTH: Final = 3 * MAX_DEPTH + 8

_isfinite = math.isfinite
_INT_TEXT = re.compile(r"-?[0-9]+")
_B64_TEXT = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_NONFINITE_TEXT: Final = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_SINGLE_TAGS: Final = frozenset(
    {"$int", "$float", "$bytes", "$tuple", "$set", "$frozenset", "$map"}
)

# reprlib keeps the repr of a cut-off container bounded in size and depth, so
# describing a 10,000-level list or a cycle cannot itself recurse too deeply.
_short_repr = reprlib.Repr()
_short_repr.maxlevel = 3
_short_repr.maxstring = 80
_short_repr.maxlong = 80
_short_repr.maxother = 80


class CodecError(ValueError):
    """A wire value is malformed (bad tag, non-JSON value, unhashable key, ...).

    It subclasses ValueError so callers that already treat bad input as a
    ValueError keep working, while still being catchable on its own.
    """


@dataclass(frozen=True, slots=True)
class Opaque:
    """Stand-in for a value the codec cannot carry: its type name and repr text.

    Functions, modules, class instances, JS symbols and the like have no
    portable value, but an LLM still benefits from seeing *what* they were.
    ``Opaque`` is what a ``$repr`` tag decodes to; it is immutable and hashable
    (so it can be a dict key or set item) and encodes back to the identical tag,
    so values pass through Python unchanged even when Python cannot use them.
    """

    type: str
    repr: str

    def __repr__(self) -> str:
        return f"<{self.type}: {self.repr}>"


# --------------------------------------------------------------------- encoding


def encode(value: object) -> Any:
    """Return the JSON-able wire form of ``value``; never raises.

    Results of arbitrary user code are encoded, so failure is not an option:
    unsupported values, cycles and over-deep nesting degrade to ``$repr`` for
    just the offending sub-value.
    """
    try:
        return _enc(value, 0, set())
    except RecursionError:
        # Only reachable when called with the stack already nearly exhausted.
        return {"$repr": _cut_repr(value), "$type": _type_name(value)}


def dumps(value: object) -> str:
    """Encode ``value`` and serialize it as compact JSON text.

    ``ensure_ascii=False`` keeps non-ASCII text readable and smaller;
    ``allow_nan=False`` guarantees strict JSON (NaN is already tagged).
    ``check_circular`` is off because ``encode`` always returns a fresh tree.
    """
    return json.dumps(
        encode(value),
        allow_nan=False,
        ensure_ascii=False,
        separators=(",", ":"),
        check_circular=False,
    )


def _enc(v: Any, depth: int, active: set[int]) -> Any:
    # Exact-type checks first: this runs for every value of every result, and
    # ``type(v) is X`` is the cheapest test Python has.
    t = type(v)
    if t is str or t is bool or v is None:
        return v
    if t is int:
        return v if -_SAFE_INT <= v <= _SAFE_INT else _enc_big_int(v)
    if t is float:
        return v if _isfinite(v) else _enc_nonfinite(v)
    if t is list or t is dict or isinstance(v, (list, dict, tuple, set, frozenset)):
        ident = id(v)
        if depth >= MAX_DEPTH or ident in active:
            return {"$repr": _cut_repr(v), "$type": _type_name(v)}
        active.add(ident)
        depth += 1
        out: Any
        try:
            if isinstance(v, list):
                out = []
                for item in v:
                    out.append(_enc(item, depth, active))
            elif isinstance(v, dict):
                out = {}
                for key, item in v.items():
                    if type(key) is not str:
                        if not isinstance(key, str):
                            out = _enc_map(v, depth, active)
                            break
                        key = str.__str__(key)  # str subclass (e.g. StrEnum) -> plain str
                    if key.startswith("$"):
                        out = _enc_map(v, depth, active)
                        break
                    out[key] = _enc(item, depth, active)
            elif isinstance(v, tuple):  # includes namedtuple
                items = []
                for item in v:
                    items.append(_enc(item, depth, active))
                out = {"$tuple": items}
            else:
                items = []
                for item in v:
                    items.append(_enc(item, depth, active))
                items.sort(key=_set_sort_key)
                out = {"$frozenset" if isinstance(v, frozenset) else "$set": items}
        except Exception:
            # A subclass whose iteration raises, or a container mutated while we
            # walk it (e.g. by a __repr__ we called): describe it rather than fail.
            out = {"$repr": _cut_repr(v), "$type": _type_name(v)}
        finally:
            active.discard(ident)
        return out
    return _enc_other(v, depth, active)


def _enc_map(v: Any, depth: int, active: set[int]) -> dict[str, Any]:
    entries = []
    for key, item in v.items():
        entries.append([_enc(key, depth, active), _enc(item, depth, active)])
    return {"$map": entries}


def _enc_other(v: Any, depth: int, active: set[int]) -> Any:
    """Scalars that are not exact builtins: subclasses, bytes, Opaque, the rest."""
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(v).decode("ascii")}
    if isinstance(v, memoryview):  # same bytes, any shape; a released view fails
        try:
            return {"$bytes": base64.b64encode(v.tobytes()).decode("ascii")}
        except ValueError:
            pass
    # Subclasses (IntEnum, StrEnum, numpy.float64, ...) travel as their base
    # value; the dunder calls return an exact builtin and skip any override.
    if isinstance(v, int):
        return _enc(int.__int__(v), depth, active)
    if isinstance(v, float):
        return _enc(float.__float__(v), depth, active)
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, Opaque):
        return {"$repr": v.repr, "$type": v.type}
    return {"$repr": _repr_text(v), "$type": _type_name(v)}


def _enc_big_int(v: int) -> Any:
    try:
        return {"$int": str(v)}
    except ValueError:
        # Beyond sys.get_int_max_str_digits(): that limit is the interpreter's
        # denial-of-service guard, so honour it rather than bypass it.
        return {
            "$repr": f"<int with {v.bit_length()} bits: exceeds sys.get_int_max_str_digits()>",
            "$type": "int",
        }


def _enc_nonfinite(v: float) -> dict[str, str]:
    if v != v:
        return {"$float": "nan"}
    return {"$float": "inf" if v > 0 else "-inf"}


def _set_sort_key(item: Any) -> str:
    return json.dumps(item, sort_keys=True)


def _type_name(v: object) -> str:
    """Builtins by bare name, everything else module-qualified (``datetime.date``)."""
    t = type(v)
    name = getattr(t, "__qualname__", None) or t.__name__
    module = getattr(t, "__module__", None)
    if not module or module == "builtins":
        return str(name)
    return f"{module}.{name}"


def _truncate(text: str) -> str:
    return text if len(text) <= _MAX_REPR else text[:_MAX_REPR] + "..."


def _repr_text(v: object) -> str:
    try:
        text = repr(v)
    except Exception as exc:  # user __repr__ may raise anything, or recurse forever
        text = f"<{_type_name(v)} object; repr() failed: {type(exc).__name__}>"
    return _truncate(text)


def _cut_repr(v: object) -> str:
    try:
        text = _short_repr.repr(v)
    except Exception as exc:
        text = f"<{_type_name(v)} object; repr() failed: {type(exc).__name__}>"
    return _truncate(text)


# --------------------------------------------------------------------- decoding


def decode(wire: Any) -> Any:
    """Turn a wire value back into Python values; raises CodecError if malformed.

    Strict on purpose: anything that is not exactly what an encoder produces
    (non-JSON types, NaN numbers, unknown or malformed tags, absurd nesting) is
    rejected with a message naming the problem, so bugs surface at the boundary.
    """
    try:
        return _dec(wire, 0)
    except RecursionError:
        raise CodecError("value is nested too deeply to decode") from None


def loads(text: str | bytes | bytearray) -> Any:
    """Parse JSON text and decode it; every failure is reported as CodecError.

    Python's json module accepts the non-standard ``NaN``/``Infinity`` literals
    by default; they are refused here because the wire format is strict JSON.
    """
    try:
        wire = json.loads(text, parse_constant=_reject_constant)
    except CodecError:
        raise
    except RecursionError:
        raise CodecError("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise CodecError(f"invalid JSON: {exc}") from exc
    return decode(wire)


def _reject_constant(name: str) -> Any:
    raise CodecError(f"invalid JSON: non-standard constant {name!r} (use the $float tag)")


def _dec(w: Any, depth: int) -> Any:
    t = type(w)
    if t is str or t is int or t is bool or w is None:
        return w
    if t is float:
        if _isfinite(w):
            return w
        raise CodecError(f"non-finite float {w!r} is not JSON; it must be sent as a $float tag")
    if depth >= _MAX_WIRE_DEPTH:
        raise CodecError(f"value is nested more than {_MAX_WIRE_DEPTH} levels deep")
    depth += 1
    if t is list:
        out_list = []
        for item in w:
            out_list.append(_dec(item, depth))
        return out_list
    if t is dict:
        out: dict[str, Any] = {}
        for key, item in w.items():
            if type(key) is not str:
                raise CodecError(f"object keys must be strings, got {type(key).__name__}")
            if key.startswith("$"):
                return _dec_tag(w, depth)
            out[key] = _dec(item, depth)
        return out
    raise CodecError(f"not a JSON value: {_type_name(w)}")


def _dec_tag(w: dict[str, Any], depth: int) -> Any:
    if len(w) == 2 and "$repr" in w and "$type" in w:
        text, type_name = w["$repr"], w["$type"]
        if type(text) is not str or type(type_name) is not str:
            raise CodecError("$repr and $type must both be strings")
        return Opaque(type=type_name, repr=text)
    if len(w) != 1 or next(iter(w)) not in _SINGLE_TAGS:
        raise CodecError(
            f"malformed tagged object with keys {sorted(w)!r}: expected exactly one of "
            "$int, $float, $bytes, $tuple, $set, $frozenset, $map, or $repr with $type"
        )
    ((tag, body),) = w.items()
    if tag == "$int":
        if type(body) is not str or not _INT_TEXT.fullmatch(body):
            raise CodecError(f"$int must be a decimal integer string, got {body!r:.80}")
        try:
            return int(body)
        except ValueError as exc:  # longer than sys.get_int_max_str_digits()
            raise CodecError(f"$int: {exc}") from None
    if tag == "$float":
        if type(body) is str and body in _NONFINITE_TEXT:
            return _NONFINITE_TEXT[body]
        raise CodecError(f'$float must be "nan", "inf" or "-inf", got {body!r:.80}')
    if tag == "$bytes":
        if type(body) is not str or len(body) % 4 or not _B64_TEXT.fullmatch(body):
            raise CodecError("$bytes must be a padded standard base64 string")
        return base64.b64decode(body)
    if type(body) is not list:
        raise CodecError(f"{tag} must hold a JSON array, got {type(body).__name__}")
    depth += 1
    if tag == "$map":
        out: dict[Any, Any] = {}
        for entry in body:
            if type(entry) is not list or len(entry) != 2:
                raise CodecError("$map entries must be [key, value] arrays")
            key = _dec(entry[0], depth + 1)
            try:
                out[key] = _dec(entry[1], depth + 1)
            except TypeError as exc:
                raise CodecError(f"$map key is unhashable after decoding: {exc}") from None
        return out
    items = []
    for item in body:
        items.append(_dec(item, depth))
    if tag == "$tuple":
        return tuple(items)
    try:
        return frozenset(items) if tag == "$frozenset" else set(items)
    except TypeError as exc:
        raise CodecError(f"{tag} item is unhashable after decoding: {exc}") from None
