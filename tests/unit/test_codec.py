"""Tests for the Python half of the value codec (``monty_runtime.codec``).

Round-trip properties run over hypothesis-generated nested values; the shared
vectors in ``tests/codec_vectors.json`` pin the wire format so the JavaScript
half (``web/shared/codec.js``, tested by ``tests/node/codec.test.mjs``) cannot drift; and
when Node is available, random values are also sent through the JS codec.
"""

from __future__ import annotations

import collections
import datetime
import enum
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monty_runtime.codec import MAX_DEPTH, CodecError, Opaque, decode, dumps, encode, loads

ROOT = Path(__file__).resolve().parents[2]
VECTORS_PATH = ROOT / "tests" / "codec_vectors.json"
CODEC_JS = ROOT / "web" / "shared" / "codec.js"
SAFE = 2**53 - 1


# ------------------------------------------------------------------ helpers


def same(a: Any, b: Any) -> bool:
    """Structural equality that is strict about types, order, NaN and -0.0.

    ``==`` is too forgiving for a codec test: it equates 1, 1.0 and True,
    tuples never equal lists, and NaN never equals itself.
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, (set, frozenset)):
        return len(a) == len(b) and all(any(same(x, y) for y in b) for x in a)
    return bool(a == b)


def wire_text(wire: Any) -> str:
    """Exact text of a wire value: key order and 2 vs 2.0 both matter."""
    return json.dumps(wire, allow_nan=False, ensure_ascii=False)


def nested_list(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def wire_depth_of_lists(wire: Any) -> int:
    depth = 0
    while isinstance(wire, list):
        depth += 1
        wire = wire[0] if wire else None
    return depth


# --------------------------------------------------------------- strategies

ints = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**300), max_value=2**300),
    st.sampled_from([0, SAFE, SAFE + 1, -SAFE, -SAFE - 1, 2**64, -(2**63)]),
)
str_keys = st.one_of(st.text(max_size=6), st.text(max_size=6).map(lambda s: "$" + s))
# NaN is excluded from hashables: Python compares set items and dict keys by
# identity-then-equality, so two distinct NaN objects never match each other.
hashable_leaves = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(allow_nan=False),
    str_keys,
    st.binary(max_size=8),
)
hashables = st.recursive(
    hashable_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(tuple),
        st.frozensets(inner, max_size=3),
    ),
    max_leaves=6,
)
nonfinite = st.sampled_from([math.nan, math.inf, -math.inf, -0.0])
leaves = st.one_of(
    st.none(), st.booleans(), ints, st.floats(), nonfinite, st.text(), st.binary(max_size=16)
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(str_keys, inner, max_size=4),
        st.dictionaries(hashables, inner, max_size=4),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
    ),
    max_leaves=24,
)


# --------------------------------------------------------------- properties


@given(values)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_roundtrip_python_values(value: Any) -> None:
    wire = encode(value)
    json.dumps(wire, allow_nan=False)  # strict JSON, always
    assert same(decode(wire), value)


@given(values)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_roundtrip_through_json_text(value: Any) -> None:
    text = dumps(value)
    assert same(loads(text), value)
    assert same(loads(text.encode("utf-8")), value)


@given(values)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_reencoding_a_decoded_wire_is_identical(value: Any) -> None:
    wire = encode(value)
    assert wire_text(encode(decode(wire))) == wire_text(wire)


@given(st.lists(hashables, max_size=8))
def test_set_encoding_does_not_depend_on_insertion_order(items: list[Any]) -> None:
    # Same element objects (not merely equal ones: 0 == False), inserted in the
    # opposite order into a table that has seen other keys, so iteration differs.
    forward = set(items)
    sentinels = [object() for _ in range(40)]
    backward: set[Any] = set(sentinels)
    backward.update(reversed(list(forward)))
    backward.difference_update(sentinels)
    assert backward == forward
    assert wire_text(encode(forward)) == wire_text(encode(backward))
    assert wire_text(encode(frozenset(forward))) == wire_text(encode(frozenset(backward)))


# ------------------------------------------------------------ scalar edges


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (SAFE, SAFE),
        (-SAFE, -SAFE),
        (SAFE + 1, {"$int": str(SAFE + 1)}),
        (-SAFE - 1, {"$int": str(-SAFE - 1)}),
        (10**30, {"$int": "1" + "0" * 30}),
    ],
)
def test_int_safe_range_boundary(value: int, wire: Any) -> None:
    assert encode(value) == wire
    assert same(decode(wire), value)


def test_bool_is_not_an_int() -> None:
    assert encode(True) is True
    assert encode(False) is False
    assert same(decode(encode([True, 1, False, 0])), [True, 1, False, 0])


def test_floats() -> None:
    assert encode(0.5) == 0.5
    assert encode(float("nan")) == {"$float": "nan"}
    assert encode(float("inf")) == {"$float": "inf"}
    assert encode(float("-inf")) == {"$float": "-inf"}
    assert math.isnan(decode({"$float": "nan"}))
    assert same(decode(encode(-0.0)), -0.0)
    assert dumps(2.0) == "2.0"  # Python keeps float-ness in its own JSON text
    assert same(loads("2.0"), 2.0)


def test_bytes_and_bytes_like() -> None:
    assert encode(b"hi") == {"$bytes": "aGk="}
    assert encode(bytearray(b"hi")) == {"$bytes": "aGk="}
    assert encode(memoryview(b"hi")) == {"$bytes": "aGk="}
    assert same(decode({"$bytes": "aGk="}), b"hi")
    assert same(decode({"$bytes": ""}), b"")
    every_byte = bytes(range(256))
    assert same(decode(encode(every_byte)), every_byte)


def test_dumps_is_compact_and_keeps_non_ascii() -> None:
    assert dumps({"a": [1, 2.5, "é"], "b": None}) == '{"a":[1,2.5,"é"],"b":null}'


# ------------------------------------------------------------ containers


def test_dict_key_rules() -> None:
    assert encode({"a": 1, "b": 2}) == {"a": 1, "b": 2}
    assert encode({"$a": 1}) == {"$map": [["$a", 1]]}
    assert encode({"a": 1, 2: "b"}) == {"$map": [["a", 1], [2, "b"]]}
    assert encode({(1, 2): None}) == {"$map": [[{"$tuple": [1, 2]}, None]]}
    # Key order is part of the value and is kept in both forms.
    assert list(encode({"z": 1, "a": 2})) == ["z", "a"]
    assert same(decode(encode({3: "x", 1: "y", "$": "z"})), {3: "x", 1: "y", "$": "z"})


def test_set_items_sorted_by_json_text() -> None:
    assert encode({3, 1, 2}) == {"$set": [1, 2, 3]}
    # '"b"' < '1' < 'null' < '{...}' as text
    assert encode({(1, 2), None, 1, "b"}) == {"$set": ["b", 1, None, {"$tuple": [1, 2]}]}
    assert encode(frozenset()) == {"$frozenset": []}


def test_empty_containers() -> None:
    assert encode([]) == []
    assert encode(()) == {"$tuple": []}
    assert encode({}) == {}
    assert encode(set()) == {"$set": []}
    assert same(decode({"$map": []}), {})


class Color(enum.IntEnum):
    RED = 1


class Mode(enum.StrEnum):
    FAST = "fast"


class Point(NamedTuple):
    x: int
    y: int


class MyFloat(float):
    def __repr__(self) -> str:
        return "MyFloat!"


class MyList(list[Any]):
    pass


def test_builtin_subclasses_encode_as_their_base() -> None:
    assert same(encode(Color.RED), 1)
    assert same(encode(Mode.FAST), "fast")
    assert same(encode(MyFloat(1.5)), 1.5)
    assert same(encode(MyFloat("nan")), {"$float": "nan"})
    assert encode(Point(1, 2)) == {"$tuple": [1, 2]}
    assert same(decode(encode(Point(1, 2))), (1, 2))
    assert same(encode(MyList([1, (2,)])), [1, {"$tuple": [2]}])
    ordered = collections.OrderedDict([("b", 1), ("a", 2)])
    ordered.move_to_end("b")
    assert list(encode(ordered)) == ["a", "b"]
    assert encode(collections.defaultdict(list, {"k": [1]})) == {"k": [1]}
    assert encode(collections.Counter("aab")) == {"a": 2, "b": 1}
    assert encode({Mode.FAST: Color.RED}) == {"fast": 1}
    assert encode([Color.RED, Mode.FAST]) == [1, "fast"]


# --------------------------------------------------------------- opaque


class Thing:
    def __repr__(self) -> str:
        return "Thing()"


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("boom")


class LongRepr:
    def __repr__(self) -> str:
        return "x" * 5000


def test_unsupported_values_become_repr() -> None:
    assert encode(datetime.date(2020, 1, 2)) == {
        "$repr": "datetime.date(2020, 1, 2)",
        "$type": "datetime.date",
    }
    assert encode(Thing()) == {"$repr": "Thing()", "$type": f"{__name__}.Thing"}
    assert encode(len)["$type"] == "builtin_function_or_method"
    assert encode(json)["$type"] == "module"
    assert encode(Thing)["$type"] == "type"
    assert encode(1 + 2j) == {"$repr": "(1+2j)", "$type": "complex"}
    assert encode(lambda: 0)["$type"] == "function"


def test_repr_is_truncated_and_failures_are_contained() -> None:
    text = encode(LongRepr())["$repr"]
    assert text == "x" * 1000 + "..."
    bad = encode(BadRepr())
    assert bad["$type"] == f"{__name__}.BadRepr"
    assert "RuntimeError" in bad["$repr"]


class BrokenList(list[Any]):
    def __iter__(self) -> Any:
        raise RuntimeError("no iteration today")


def test_containers_that_fail_while_encoding_become_repr() -> None:
    wire = encode({"ok": [1], "broken": BrokenList([1, 2])})
    assert wire["ok"] == [1]
    assert wire["broken"]["$type"] == f"{__name__}.BrokenList"

    target: dict[str, Any] = {}

    class Mutator:
        def __repr__(self) -> str:
            target["added"] = 1  # mutates the dict encode is iterating over
            return "Mutator()"

    target["m"] = Mutator()
    target["n"] = 2
    assert encode([target])[0]["$type"] == "dict"


def test_opaque_roundtrip_and_repr() -> None:
    wire = {"$repr": "datetime.date(2020, 1, 2)", "$type": "datetime.date"}
    value = decode(wire)
    assert value == Opaque(type="datetime.date", repr="datetime.date(2020, 1, 2)")
    assert encode(value) == wire
    assert repr(value) == "<datetime.date: datetime.date(2020, 1, 2)>"
    assert hash(value) == hash(decode(wire))  # usable as a key / set item
    with pytest.raises(AttributeError):
        value.type = "other"


# ------------------------------------------------------- cycles and depth


def test_self_referencing_list() -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    wire = encode(cyclic)
    assert wire[0] == 1
    assert wire[1]["$type"] == "list"
    json.dumps(wire, allow_nan=False)


def test_self_referencing_dict_and_mutual_cycle() -> None:
    d: dict[str, Any] = {}
    d["self"] = d
    assert encode(d)["self"]["$type"] == "dict"
    a: list[Any] = []
    b: dict[int, Any] = {1: a}
    a.append(b)
    wire = encode(a)
    assert wire[0]["$map"][0][1]["$type"] == "list"


def test_shared_reference_is_not_a_cycle() -> None:
    shared = [1, 2]
    assert encode([shared, shared, (shared,)]) == [[1, 2], [1, 2], {"$tuple": [[1, 2]]}]


def test_nesting_up_to_max_depth_is_kept() -> None:
    wire = encode(nested_list(MAX_DEPTH))
    assert wire_depth_of_lists(wire) == MAX_DEPTH
    assert "$repr" not in json.dumps(wire)


def test_nesting_beyond_max_depth_becomes_repr() -> None:
    wire = encode(nested_list(MAX_DEPTH + 1))
    assert wire_depth_of_lists(wire) == MAX_DEPTH
    inner = wire
    for _ in range(MAX_DEPTH - 1):
        inner = inner[0]
    assert inner[0]["$type"] == "list"


@pytest.mark.parametrize("kind", ["list", "dict", "tuple", "map"])
def test_very_deep_nesting_does_not_raise(kind: str) -> None:
    value: Any = 0
    for _ in range(10_000):
        if kind == "list":
            value = [value]
        elif kind == "dict":
            value = {"k": value}
        elif kind == "tuple":
            value = (value,)
        else:
            value = {1: value}
    wire = encode(value)
    text = dumps(value)
    assert "$repr" in text
    decoded = decode(wire)  # the deepest wire an encoder makes must decode
    assert encode(decoded) == wire


def test_decode_rejects_absurd_nesting() -> None:
    with pytest.raises(CodecError, match="nested"):
        decode(nested_list(10_000))
    with pytest.raises(CodecError, match="nested"):
        loads("[" * 100_000 + "]" * 100_000)


def test_huge_int_beyond_str_digit_limit() -> None:
    # Pin the interpreter's default limit, whatever PYTHONINTMAXSTRDIGITS says.
    saved = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(4300)
    try:
        limit = sys.get_int_max_str_digits()
        wire = encode(10 ** (limit + 10))
        assert wire["$type"] == "int"
        json.dumps(wire, allow_nan=False)
        with pytest.raises(CodecError, match=r"\$int"):
            decode({"$int": "9" * (limit + 10)})
    finally:
        sys.set_int_max_str_digits(saved)


# -------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ({"$int": 5}, r"\$int"),
        ({"$int": "1.5"}, r"\$int"),
        ({"$int": " 12"}, r"\$int"),
        ({"$int": "1_000"}, r"\$int"),
        ({"$int": ""}, r"\$int"),
        ({"$float": "NaN"}, r"\$float"),
        ({"$float": 1.0}, r"\$float"),
        ({"$float": "1.5"}, r"\$float"),
        ({"$bytes": "!!!"}, r"\$bytes"),
        ({"$bytes": "QQ"}, r"\$bytes"),
        ({"$bytes": "QQ="}, r"\$bytes"),
        ({"$bytes": "Q==="}, r"\$bytes"),
        ({"$bytes": "aGk=\n"}, r"\$bytes"),
        ({"$bytes": "a-_="}, r"\$bytes"),
        ({"$bytes": 5}, r"\$bytes"),
        ({"$tuple": "ab"}, r"\$tuple"),
        ({"$tuple": {"a": 1}}, r"\$tuple"),
        ({"$set": None}, r"\$set"),
        ({"$set": [[1]]}, r"\$set.*unhashable"),
        ({"$frozenset": [{"a": 1}]}, r"\$frozenset.*unhashable"),
        ({"$map": {}}, r"\$map"),
        ({"$map": [[1]]}, r"\$map"),
        ({"$map": [[1, 2, 3]]}, r"\$map"),
        ({"$map": [1]}, r"\$map"),
        ({"$map": [[[1], 2]]}, r"\$map.*unhashable"),
        ({"$repr": "x"}, r"\$repr"),
        ({"$type": "x"}, r"\$type"),
        ({"$repr": "x", "$type": 1}, r"\$repr"),
        ({"$repr": 1, "$type": "x"}, r"\$repr"),
        ({"$repr": "x", "$type": "y", "$z": 1}, "malformed"),
        ({"$unknown": 1}, r"\$unknown"),
        ({"$": 1}, "malformed"),
        ({"$int": "5", "x": 1}, "malformed"),
        ({"a": 1, "$int": "5"}, "malformed"),
        ([1, {"nested": {"$tuple": 1}}], r"\$tuple"),
    ],
)
def test_malformed_tags_raise(wire: Any, message: str) -> None:
    with pytest.raises(CodecError, match=message) as info:
        decode(wire)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "wire",
    [(1, 2), {1, 2}, b"x", float("nan"), float("inf"), {1: 2}, object(), [1, (2,)]],
)
def test_decode_rejects_non_json_values(wire: Any) -> None:
    with pytest.raises(CodecError):
        decode(wire)


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", "-Infinity", "{", "", "[1,]", "'a'"])
def test_loads_rejects_invalid_json(text: str) -> None:
    with pytest.raises(CodecError, match="invalid JSON"):
        loads(text)


def test_non_canonical_but_valid_tags_decode() -> None:
    assert same(decode({"$int": "5"}), 5)
    assert same(decode({"$int": "-007"}), -7)
    assert same(decode({"$map": [["a", 1], ["a", 2]]}), {"a": 2})
    assert same(decode({"$set": [1, 1]}), {1})


# ---------------------------------------------------- shared vectors


# Python values whose encodings the shared vectors must be exactly.  Every
# vector in tests/codec_vectors.json appears here, so the file cannot gain an
# entry that Python has not vouched for.
PYTHON_VECTORS: dict[str, Any] = {
    "null": None,
    "true": True,
    "false": False,
    "int_zero": 0,
    "int_small": 42,
    "int_negative": -7,
    "int_max_safe": SAFE,
    "int_min_safe": -SAFE,
    "int_above_safe": SAFE + 1,
    "int_below_safe": -SAFE - 1,
    "int_huge": 2**200,
    "int_huge_negative": -(10**40),
    "float_half": 0.5,
    "float_negative": -1.25,
    "float_min_subnormal": 5e-324,
    "float_large": 1.5e300,
    "float_nan": float("nan"),
    "float_inf": float("inf"),
    "float_neg_inf": float("-inf"),
    "str_empty": "",
    "str_ascii": "hello",
    "str_unicode": "héllo ✓ 😀 \u2028 \x00",
    "str_escapes": 'tab\tnewline\n"quote"\\',
    "str_looks_like_tag": "$int",
    "bytes_empty": b"",
    "bytes_small": b"hi",
    "bytes_no_padding": b"abc",
    "bytes_all_values": bytes(range(256)),
    "list_empty": [],
    "list_mixed": [1, "a", None, True, 0.5],
    "list_nested": [[1, [2, [3]]], []],
    "tuple_empty": (),
    "tuple_single": (1,),
    "tuple_pair": (1, "a"),
    "tuple_nested": ((1, 2), [3]),
    "set_empty": set(),
    "set_ints": {3, 1, 2},
    "set_mixed": {"b", 1, (1, 2), None},
    "set_nan": {float("nan")},
    "set_of_frozensets": {frozenset({1, 2}), frozenset()},
    "frozenset_strs": frozenset({"y", "x"}),
    "dict_empty": {},
    "dict_plain": {"a": 1, "b": [True]},
    "dict_nested": {"outer": {"inner": {"x": None}}},
    "dict_digit_keys": {"b": 1, "10": 2, "2": 3},
    "dict_proto_key": {"__proto__": {"polluted": 1}},
    "map_int_keys": {1: "a", 2: "b"},
    "map_dollar_key": {"$int": "not a tag", "plain": 1},
    "map_tuple_key": {(1, 2): "pair"},
    "map_mixed_keys": {None: 0, True: 1, 2.5: "f", "s": b"x"},
    "map_bigint_key": {2**64: "big"},
    "map_nan_key": {float("nan"): 1},
    "map_frozenset_key": {frozenset({1}): 1},
    "map_in_object": {"outer": {1: 2}},
    "opaque_date": datetime.date(2020, 1, 2),
    "opaque_unicode": Opaque(type="mod.Thing", repr="<Thing ✓>"),
    "mixed_document": {
        "ok": True,
        "data": [(1, 2.5), {"k": {1, 2}}],
        "blob": b"\x00\xff",
        "n": 2**64,
    },
}


def load_vectors() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return vectors


def test_vectors_file_is_well_formed() -> None:
    vectors = load_vectors()
    names = [v["name"] for v in vectors]
    assert len(names) == len(set(names)), "duplicate vector names"
    assert all(set(v) == {"name", "wire"} for v in vectors)
    assert set(names) == set(PYTHON_VECTORS)


@pytest.mark.parametrize("vector", load_vectors(), ids=lambda v: str(v["name"]))
def test_vector_reencodes_identically(vector: dict[str, Any]) -> None:
    wire = vector["wire"]
    assert wire_text(encode(decode(wire))) == wire_text(wire)
    assert wire_text(encode(loads(json.dumps(wire)))) == wire_text(wire)


@pytest.mark.parametrize("name", sorted(PYTHON_VECTORS))
def test_python_value_encodes_to_vector(name: str) -> None:
    wire = {v["name"]: v["wire"] for v in load_vectors()}[name]
    assert wire_text(encode(PYTHON_VECTORS[name])) == wire_text(wire)


# ---------------------------------------------------- through the JS codec

NODE = shutil.which("node")
NODE_ROUNDTRIP = f"""
import {{ dumps, loads }} from {json.dumps(CODEC_JS.as_uri())};
let text = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) text += chunk;
process.stdout.write(dumps(loads(text)));
"""


def same_wire_across_languages(a: Any, b: Any) -> bool:
    """Wire equality up to what JavaScript numbers cannot preserve.

    JS has one number type, so 2.0 comes back as 2 and -0.0 as 0, and an
    integral float may be printed as integer digits (and so read back by Python
    as an int, possibly a $int); comparing numbers as floats absorbs exactly that.
    Object key order is not compared because JS objects list integer-like keys first,
    nor set item order, which follows the items' JSON text.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    # An integral float of 2**53 or more is printed by JS as integer digits, which
    # Python then reads as an int and sends as $int: the same number either way.
    if isinstance(a, dict) and list(a) == ["$int"] and isinstance(b, (int, float)):
        return float(int(a["$int"])) == float(b)
    if isinstance(b, dict) and list(b) == ["$int"] and isinstance(a, (int, float)):
        return same_wire_across_languages(b, a)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(
            same_wire_across_languages(x, y) for x, y in zip(a, b, strict=True)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() == b.keys() and len(a) == 1 and next(iter(a)) in ("$set", "$frozenset"):
            # A number changing form changes its JSON text, hence Python's sort order.
            (x,), (y,) = a.values(), b.values()
            return len(x) == len(y) and all(
                any(same_wire_across_languages(i, j) for j in y) for i in x
            )
        return a.keys() == b.keys() and all(same_wire_across_languages(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


@given(st.lists(values, max_size=25))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_javascript_reencodes_python_wire(batch: list[Any]) -> None:
    assert NODE is not None
    text = dumps(batch)
    result = subprocess.run(
        [NODE, "--input-type=module", "-e", NODE_ROUNDTRIP],
        input=text.encode("utf-8"),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    js_wire = json.loads(result.stdout.decode("utf-8"))
    assert same_wire_across_languages(js_wire, encode(batch))
    # And Python accepts what JS produced, getting the same values back
    # (modulo JS's single number type, checked at the wire level above).
    assert same_wire_across_languages(encode(loads(result.stdout)), encode(batch))
