"""Judging outcomes: a case's expectations against what a backend produced, and two
backends' outcomes against each other."""

from __future__ import annotations

import base64
import difflib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .backends import CaseOutcome, RunOutcome
from .corpus import Case

__all__ = [
    "check_case",
    "check_run",
    "comparable",
    "compare_outcomes",
    "json_equal",
    "normalize_events",
    "traceback_frames",
    "wire_to_plain",
]

_ERROR_FIELDS = (
    "errorContains",
    "expectedExcType",
    "expectedTracebackMinFrames",
    "expectedTracebackFrameHasFilename",
    "expectedTracebackFilename",
    "expectedErrorFilename",
)
_CALL_FIELDS = (
    "expectedFnName",
    "expectedArgs",
    "expectedKwargs",
    "expectedDistinctCallIds",
    "expectedMethodCall",
)
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]*)", line (?P<line>\d+)', re.MULTILINE)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


# -- values ----------------------------------------------------------------------------------


def _key_text(key: Any) -> str:
    return key if isinstance(key, str) else json.dumps(key, ensure_ascii=False)


def wire_to_plain(wire: Any) -> Any:
    """The plain-JSON view of a wire value, as the ladder compares it: tuples and sets
    become lists, big ints ints, ``nan``/``inf`` floats, bytes a list of byte values,
    a ``$map`` an object with JSON-text keys, a ``$repr`` its text."""
    if isinstance(wire, list):
        return [wire_to_plain(x) for x in wire]
    if isinstance(wire, dict):
        if len(wire) == 1 or (len(wire) == 2 and "$repr" in wire):
            tag = next(iter(wire))
            body = wire[tag]
            if tag == "$int":
                return int(body)
            if tag == "$float":
                return float(body)
            if tag == "$bytes":
                return list(base64.b64decode(body))
            if tag in ("$tuple", "$set", "$frozenset"):
                return [wire_to_plain(x) for x in body]
            if tag == "$map":
                return {_key_text(wire_to_plain(k)): wire_to_plain(v) for k, v in body}
            if tag == "$repr":
                return str(body)
        return {k: wire_to_plain(v) for k, v in wire.items()}
    return wire


def json_equal(a: Any, b: Any, *, strict_numbers: bool = False) -> bool:
    """Equality of JSON values: ``true`` is not ``1``; ``1 == 1.0`` unless
    ``strict_numbers``; ``nan`` equals ``nan``; object key order does not matter."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        if strict_numbers and type(a) is not type(b):
            return False
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(
            json_equal(x, y, strict_numbers=strict_numbers) for x, y in zip(a, b, strict=True)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(
            json_equal(a[k], b[k], strict_numbers=strict_numbers) for k in a
        )
    return type(a) is type(b) and bool(a == b)


def _show(value: Any, limit: int = 300) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sort_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=repr)


def traceback_frames(traceback: str) -> list[tuple[str, int]]:
    """``(filename, line)`` of each ``File "...", line N`` of a traceback text."""
    return [(m.group("file"), int(m.group("line"))) for m in _FRAME.finditer(traceback)]


# -- one execution ---------------------------------------------------------------------------


def check_run(expect: Mapping[str, Any], run: RunOutcome) -> list[str]:
    """Mismatches between the expectation fields of a step (or a plain case) and one
    execution's outcome; empty when it conforms."""
    out: list[str] = list(run.problems)
    if "expectRejected" in expect:
        want = expect["expectRejected"]
        if run.rejected is None:
            got = f"value {_show(run.value_wire)}"
            if run.error:
                got = f"error {run.error.get('type')}"
            out.append(f"execute() should have been rejected ({want!r}) but ran: {got}")
        else:
            text = f"{run.rejected['type']}: {run.rejected['message']}"
            if want not in text:
                out.append(f"rejected with {text!r}, which does not contain {want!r}")
        return out
    if run.rejected is not None:
        out.append(f"execute() was rejected: {run.rejected['type']}: {run.rejected['message']}")
        return out
    wants_error = bool(expect.get("expectError")) or any(k in expect for k in _ERROR_FIELDS)
    error = run.error
    if wants_error:
        if error is None:
            out.append(f"expected an error, got value {_show(run.value_wire)}")
        else:
            out.extend(_check_error(expect, error))
    elif error is not None:
        out.append(
            f"unexpected error {error.get('type')}: {error.get('message')}"
            + (" (session lost)" if run.session_lost else "")
        )
    else:
        out.extend(_check_value(expect, run))
    out.extend(_check_output(expect, run))
    out.extend(_check_calls(expect, run))
    return out


def _check_value(expect: Mapping[str, Any], run: RunOutcome) -> list[str]:
    out: list[str] = []
    if "expectedContains" in expect:
        try:
            text = str(run.value)
        except Exception as exc:  # a malformed wire value from a backend
            text = f"<undecodable value: {exc}>"
        if expect["expectedContains"] not in text:
            out.append(f"value {text[:300]!r} does not contain {expect['expectedContains']!r}")
    elif "expected" in expect:
        got = wire_to_plain(run.value_wire)
        want = expect["expected"]
        if expect.get("expectedSorted") and isinstance(got, list) and isinstance(want, list):
            got = sorted(got, key=_sort_key)
            want = sorted(want, key=_sort_key)
        if not json_equal(got, want):
            out.append(f"value: expected {_show(want)}, got {_show(got)}")
    if "expectedWire" in expect and not json_equal(
        run.value_wire, expect["expectedWire"], strict_numbers=True
    ):
        out.append(
            f"wire value: expected {_show(expect['expectedWire'])}, got {_show(run.value_wire)}"
        )
    return out


def _check_error(expect: Mapping[str, Any], error: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    etype = str(error.get("type", ""))
    message = str(error.get("message", ""))
    tb = str(error.get("traceback") or "")
    headline = f"{etype}: {message}" if message else etype
    if "errorContains" in expect:
        want = expect["errorContains"]
        if want not in headline and want not in tb:
            out.append(f"error {headline[:300]!r} does not contain {want!r}")
    if "expectedExcType" in expect and etype != expect["expectedExcType"]:
        out.append(f"error type: expected {expect['expectedExcType']}, got {headline[:200]}")
    frames = traceback_frames(tb)
    if (
        "expectedTracebackMinFrames" in expect
        and len(frames) < expect["expectedTracebackMinFrames"]
    ):
        out.append(
            f"traceback has {len(frames)} frame(s), expected at least "
            f"{expect['expectedTracebackMinFrames']}"
        )
    if expect.get("expectedTracebackFrameHasFilename") and not (frames and frames[0][0]):
        out.append("traceback's first frame names no file")
    if "expectedTracebackFilename" in expect:
        want = expect["expectedTracebackFilename"]
        if not any(f == want for f, _ in frames):
            out.append(f"no traceback frame in {want!r} (frames: {[f for f, _ in frames]})")
    if "expectedErrorFilename" in expect:
        filename = error.get("filename") or (frames[-1][0] if frames else None)
        if filename != expect["expectedErrorFilename"]:
            out.append(
                f"error filename: expected {expect['expectedErrorFilename']!r}, got {filename!r}"
            )
    return out


def _merged_prints(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for ev in events:
        if (
            ev.get("type") == "print"
            and out
            and out[-1].get("type") == "print"
            and out[-1].get("stream") == ev.get("stream")
        ):
            out[-1] = {**out[-1], "text": str(out[-1].get("text", "")) + str(ev.get("text", ""))}
        else:
            out.append(dict(ev))
    return out


def _check_output(expect: Mapping[str, Any], run: RunOutcome) -> list[str]:
    out: list[str] = []
    if "expectedStdout" in expect and run.stdout != expect["expectedStdout"]:
        out.append(f"stdout: expected {expect['expectedStdout']!r}, got {run.stdout[:300]!r}")
    if "expectedStderr" in expect and run.stderr != expect["expectedStderr"]:
        out.append(f"stderr: expected {expect['expectedStderr']!r}, got {run.stderr[:300]!r}")
    if "expectedEventTypes" in expect:
        got = [str(e.get("type")) for e in _merged_prints(run.events)]
        if got != list(expect["expectedEventTypes"]):
            out.append(f"event types: expected {expect['expectedEventTypes']}, got {got}")
    return out


def _check_calls(expect: Mapping[str, Any], run: RunOutcome) -> list[str]:
    out: list[str] = []
    calls = run.calls
    if any(k in expect for k in _CALL_FIELDS):
        if not calls:
            return [*out, "expected a host call, but none was made"]
        first = calls[0]
        if "expectedFnName" in expect and first["name"] != expect["expectedFnName"]:
            out.append(
                f"first host call: expected {expect['expectedFnName']}(), got {first['name']}()"
            )
        if "expectedArgs" in expect:
            got = wire_to_plain(first["args"])
            if not json_equal(got, expect["expectedArgs"]):
                out.append(
                    f"first host call args: expected {_show(expect['expectedArgs'])}, "
                    f"got {_show(got)}"
                )
        if "expectedKwargs" in expect:
            got = wire_to_plain(first["kwargs"]) or {}
            want = expect["expectedKwargs"] or {}
            if not json_equal(got, want):
                out.append(f"first host call kwargs: expected {_show(want)}, got {_show(got)}")
        if expect.get("expectedDistinctCallIds"):
            ids = [c.get("call_id") for c in calls]
            if len(set(ids)) != len(ids) or any(not i for i in ids):
                out.append(f"host call ids are not distinct: {ids}")
        if "expectedMethodCall" in expect:
            is_method = "." in str(first["name"])
            if is_method != expect["expectedMethodCall"]:
                out.append(f"first host call {first['name']}(): method call is {is_method}")
    if "expectedCalls" in expect:
        want_calls = expect["expectedCalls"]
        got_calls = [
            {
                "name": c["name"],
                "args": wire_to_plain(c["args"]),
                "kwargs": wire_to_plain(c["kwargs"]),
            }
            for c in calls
        ]
        shown = [{k: v for k, v in c.items() if v or k == "name"} for c in got_calls]
        ok = len(want_calls) == len(got_calls) and all(
            w["name"] == g["name"]
            and ("args" not in w or json_equal(g["args"], w["args"]))
            and ("kwargs" not in w or json_equal(g["kwargs"] or {}, w["kwargs"]))
            for w, g in zip(want_calls, got_calls, strict=False)
        )
        if not ok:
            out.append(f"host calls: expected {_show(want_calls)}, got {_show(shown)}")
    return out


# -- a whole case ------------------------------------------------------------------------------


def check_case(case: Case, outcome: CaseOutcome) -> list[str]:
    """Every mismatch of the case on this outcome, each prefixed by its step's label."""
    flat = case.flat_steps()
    out: list[str] = []
    if len(outcome.runs) != len(flat):
        out.append(f"the backend ran {len(outcome.runs)} execution(s), the case has {len(flat)}")
    for (label, step), run in zip(flat, outcome.runs, strict=False):
        prefix = f"{label}: " if label else ""
        out.extend(prefix + m for m in check_run(step.expect, run))
    return out


# -- two backends ----------------------------------------------------------------------------


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _ADDRESS.sub(" at 0x...", value)
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    return value


def normalize_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as two backends must agree on them: ids and durations dropped, adjacent
    prints of one stream merged, errors reduced to their type, addresses scrubbed, and
    adjacent ``call_finished`` events in a canonical order.

    The last: host calls in flight together (``asyncio.gather(a(), b())``) finish in the
    order their answers reach the interpreter, which is the host's timing, not the
    contract (natively the caller's loop answers them; in a browser each answer is a
    message). Events between them (a print, a new call) still fix their order."""
    out: list[dict[str, Any]] = []
    for ev in _merged_prints(events):
        item = {k: v for k, v in ev.items() if k not in ("execution_id", "call_id", "duration_ms")}
        err = item.get("error")
        if isinstance(err, dict):
            item["error"] = {"type": err.get("type")}
        out.append(_scrub(item))
    return _canonical_finishes(out)


def _canonical_finishes(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []
    for ev in [*events, None]:
        if ev is not None and ev.get("type") == "call_finished":
            run.append(ev)
            continue
        out.extend(sorted(run, key=lambda e: json.dumps(e, sort_keys=True, default=repr)))
        run = []
        if ev is not None:
            out.append(ev)
    return out


def comparable(outcome: CaseOutcome) -> list[dict[str, Any]]:
    """The parts of an outcome that every backend must reproduce exactly."""
    return [
        {
            "label": run.label,
            "value": _scrub(run.value_wire),
            "error": None if run.error is None else run.error.get("type"),
            "rejected": None if run.rejected is None else run.rejected.get("type"),
            "stdout": run.stdout,
            "events": normalize_events(run.events),
        }
        for run in outcome.runs
    ]


def compare_outcomes(a: CaseOutcome, b: CaseOutcome) -> str:
    """A unified diff between two backends' outcomes of one case ("" when they agree)."""
    left, right = comparable(a), comparable(b)
    if left == right:
        return ""
    lt = json.dumps(left, indent=1, ensure_ascii=False, sort_keys=True).splitlines()
    rt = json.dumps(right, indent=1, ensure_ascii=False, sort_keys=True).splitlines()
    return "\n".join(
        difflib.unified_diff(lt, rt, fromfile=a.backend, tofile=b.backend, lineterm="", n=2)
    )
