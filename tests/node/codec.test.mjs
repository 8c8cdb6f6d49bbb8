// Tests for the JavaScript half of the value codec (web/shared/codec.js).
// Run with: node --test tests/node/
// The shared vectors in tests/codec_vectors.json are also checked by
// tests/unit/test_codec.py, which pins them to specific Python values.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  CodecError,
  MAX_DEPTH,
  PyFrozenSet,
  PyOpaque,
  PyTuple,
  decode,
  dumps,
  encode,
  loads,
} from "../../web/shared/codec.js";

const VECTORS = JSON.parse(readFileSync(new URL("../codec_vectors.json", import.meta.url), "utf8"));

// ------------------------------------------------------------ shared vectors

test("vectors: decode then re-encode gives the identical wire", () => {
  assert.ok(VECTORS.length > 40);
  for (const { name, wire } of VECTORS) {
    assert.deepStrictEqual(encode(decode(wire)), wire, name);
    assert.deepStrictEqual(JSON.parse(dumps(loads(JSON.stringify(wire)))), wire, name);
  }
});

test("vectors: decode to the expected JS types", () => {
  const v = Object.fromEntries(VECTORS.map(({ name, wire }) => [name, decode(wire)]));
  assert.equal(v.int_max_safe, Number.MAX_SAFE_INTEGER);
  assert.equal(v.int_above_safe, 2n ** 53n);
  assert.equal(v.int_below_safe, -(2n ** 53n));
  assert.equal(v.int_huge, 2n ** 200n);
  assert.ok(Number.isNaN(v.float_nan));
  assert.equal(v.float_inf, Infinity);
  assert.equal(v.float_neg_inf, -Infinity);
  assert.deepStrictEqual(v.bytes_small, new Uint8Array([104, 105]));
  assert.deepStrictEqual(v.bytes_all_values, Uint8Array.from({ length: 256 }, (_, i) => i));
  assert.ok(v.tuple_pair instanceof PyTuple && Array.isArray(v.tuple_pair));
  assert.deepStrictEqual([...v.tuple_pair], [1, "a"]);
  assert.ok(v.set_ints instanceof Set && !(v.set_ints instanceof PyFrozenSet));
  assert.ok(v.frozenset_strs instanceof PyFrozenSet);
  assert.ok(v.map_int_keys instanceof Map);
  assert.equal(v.map_int_keys.get(2), "b");
  assert.equal(v.map_dollar_key.get("$int"), "not a tag");
  assert.equal(v.map_bigint_key.get(2n ** 64n), "big");
  assert.ok(v.opaque_date instanceof PyOpaque);
  assert.equal(v.opaque_date.type, "datetime.date");
  assert.equal(String(v.opaque_date), "<datetime.date: datetime.date(2020, 1, 2)>");
  assert.equal(v.str_looks_like_tag, "$int");
});

// ---------------------------------------------------------- random round trips

// mulberry32: a tiny seeded PRNG so failures are reproducible.
function rngFrom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = (rng, items) => items[Math.floor(rng() * items.length)];
const int = (rng, n) => Math.floor(rng() * n);

function genString(rng) {
  const pool = ["a", "Z", "$", "0", " ", "é", "✓", "😀", "\u0000", "\n", '"', "\\", "\u2028"];
  let s = "";
  for (let i = int(rng, 6); i > 0; i--) s += pick(rng, pool);
  return s;
}

function genKey(rng) {
  const s = genString(rng);
  return s.startsWith("$") ? `k${s}` : s;
}

// Values whose decode(encode(v)) is deepStrictEqual to v: no -0, no undefined,
// BigInts only outside the safe range, plain-object keys never start with "$".
function genValue(rng, depth = 0) {
  const leaf = depth >= 4 || rng() < 0.45;
  if (leaf) {
    switch (int(rng, 12)) {
      case 0:
        return null;
      case 1:
        return rng() < 0.5;
      case 2:
        return int(rng, 2000) - 1000;
      case 3:
        return pick(rng, [Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2 ** 60, 1e300, 5e-324]);
      case 4:
        return (rng() - 0.5) * 10 ** int(rng, 40);
      case 5:
        return pick(rng, [NaN, Infinity, -Infinity]);
      case 6: {
        const big = BigInt(Number.MAX_SAFE_INTEGER) + 1n + BigInt(int(rng, 1e9)) * 10n ** BigInt(int(rng, 40));
        return rng() < 0.5 ? big : -big;
      }
      case 7:
        return Uint8Array.from({ length: int(rng, 9) }, () => int(rng, 256));
      default:
        return genString(rng);
    }
  }
  const size = int(rng, 5);
  const items = () => Array.from({ length: size }, () => genValue(rng, depth + 1));
  switch (int(rng, 6)) {
    case 0:
      return items();
    case 1:
      return PyTuple.from(items());
    case 2:
      return new Set(items());
    case 3:
      return new PyFrozenSet(items());
    case 4:
      return new Map(items().map((k) => [k, genValue(rng, depth + 1)]));
    default: {
      const out = {};
      for (let i = 0; i < size; i++) out[genKey(rng)] = genValue(rng, depth + 1);
      return out;
    }
  }
}

test("random values round-trip through encode/decode and JSON text", () => {
  for (let seed = 1; seed <= 500; seed++) {
    const value = genValue(rngFrom(seed));
    const wire = encode(value);
    const text = JSON.stringify(wire);
    assert.equal(typeof text, "string", `seed ${seed}`);
    assert.deepStrictEqual(decode(wire), value, `seed ${seed}`);
    assert.deepStrictEqual(loads(dumps(value)), value, `seed ${seed}`);
    assert.deepStrictEqual(encode(decode(JSON.parse(text))), wire, `seed ${seed}`);
  }
});

// ---------------------------------------------------------------- scalars

test("numbers: -0 folds to 0, non-finite numbers are tagged", () => {
  assert.ok(Object.is(encode(-0), 0));
  assert.equal(dumps(-0), "0");
  assert.deepStrictEqual(encode(NaN), { $float: "nan" });
  assert.deepStrictEqual(encode(Infinity), { $float: "inf" });
  assert.deepStrictEqual(encode(-Infinity), { $float: "-inf" });
  assert.equal(encode(0.1), 0.1);
});

test("bigint always encodes as $int; $int decodes to Number only when safe", () => {
  assert.deepStrictEqual(encode(5n), { $int: "5" });
  assert.deepStrictEqual(encode(-(2n ** 70n)), { $int: (-(2n ** 70n)).toString() });
  assert.equal(decode({ $int: "5" }), 5);
  assert.equal(decode({ $int: "-007" }), -7);
  assert.equal(decode({ $int: "9007199254740991" }), Number.MAX_SAFE_INTEGER);
  assert.equal(decode({ $int: "-9007199254740991" }), -Number.MAX_SAFE_INTEGER);
  assert.equal(decode({ $int: "9007199254740992" }), 9007199254740992n);
  assert.equal(decode({ $int: "-9007199254740992" }), -9007199254740992n);
});

test("undefined and array holes encode as null", () => {
  assert.equal(encode(undefined), null);
  // eslint-disable-next-line no-sparse-arrays
  assert.deepStrictEqual(encode([1, , undefined]), [1, null, null]);
  assert.deepStrictEqual(encode({ a: undefined }), { a: null });
});

test("binary data: typed arrays, DataView, ArrayBuffer and Buffer are $bytes", () => {
  assert.deepStrictEqual(encode(new Uint8Array([104, 105])), { $bytes: "aGk=" });
  assert.deepStrictEqual(encode(Buffer.from("hi")), { $bytes: "aGk=" });
  assert.deepStrictEqual(encode(new Uint8Array([104, 105]).buffer), { $bytes: "aGk=" });
  const words = new Uint16Array([0x0201, 0x0403]);
  const bytes = new Uint8Array(words.buffer);
  assert.deepStrictEqual(decode(encode(words)), bytes);
  const view = new DataView(bytes.buffer, 1, 2);
  assert.deepStrictEqual(decode(encode(view)), bytes.slice(1, 3));
  assert.deepStrictEqual(decode(encode(bytes.subarray(2))), bytes.slice(2));
  const large = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 7) % 256);
  assert.deepStrictEqual(decode(encode(large)), large);
  assert.deepStrictEqual(decode({ $bytes: "" }), new Uint8Array());
});

// ------------------------------------------------------------- containers

test("arrays vs PyTuple, Set vs PyFrozenSet, Map vs plain object", () => {
  assert.deepStrictEqual(encode([1, [2]]), [1, [2]]);
  assert.deepStrictEqual(encode(PyTuple.of(1, PyTuple.of())), { $tuple: [1, { $tuple: [] }] });
  assert.deepStrictEqual(encode(PyTuple.of(7)), { $tuple: [7] });
  assert.deepStrictEqual(encode(new Set([3, 1])), { $set: [3, 1] }); // insertion order
  assert.deepStrictEqual(encode(new PyFrozenSet(["a"])), { $frozenset: ["a"] });
  assert.deepStrictEqual(encode(new Map([["a", 1]])), { $map: [["a", 1]] });
  assert.deepStrictEqual(encode(new Map()), { $map: [] });
  assert.deepStrictEqual(encode({ a: 1, b: { c: 2 } }), { a: 1, b: { c: 2 } });
  const bare = Object.create(null);
  bare.x = 1;
  assert.deepStrictEqual(encode(bare), { x: 1 });
});

test("a plain object with a $ key travels as $map and decodes to a Map", () => {
  const wire = encode({ $int: "x", plain: 1 });
  assert.deepStrictEqual(wire, { $map: [["$int", "x"], ["plain", 1]] });
  assert.deepStrictEqual(decode(wire), new Map([["$int", "x"], ["plain", 1]]));
});

test("map keys of any type, including tuples and NaN", () => {
  const value = new Map([
    [PyTuple.of(1, 2), "pair"],
    [NaN, "nan"],
    [null, 0],
    [true, 1],
    [2n ** 64n, "big"],
  ]);
  assert.deepStrictEqual(decode(encode(value)), value);
});

test("symbol-keyed and non-enumerable properties are not encoded", () => {
  const obj = { a: 1, [Symbol("s")]: 2 };
  Object.defineProperty(obj, "hidden", { value: 3, enumerable: false });
  assert.deepStrictEqual(encode(obj), { a: 1 });
});

// ----------------------------------------------------------------- opaque

test("functions, symbols, dates, errors and class instances become $repr", () => {
  function named() {}
  class Widget {}
  assert.deepStrictEqual(encode(named), { $repr: "[Function: named]", $type: "function" });
  assert.deepStrictEqual(encode(Widget), { $repr: "[class Widget]", $type: "function" });
  assert.deepStrictEqual(encode(Symbol("tag")), { $repr: "Symbol(tag)", $type: "symbol" });
  assert.deepStrictEqual(encode(new Date(0)), { $repr: "1970-01-01T00:00:00.000Z", $type: "Date" });
  assert.deepStrictEqual(encode(new Date(NaN)), { $repr: "Invalid Date", $type: "Date" });
  assert.deepStrictEqual(encode(new TypeError("bad")), { $repr: "TypeError: bad", $type: "TypeError" });
  assert.deepStrictEqual(encode(new Widget()), { $repr: "[object Widget]", $type: "Widget" });
  assert.deepStrictEqual(encode(/a+/g), { $repr: "/a+/g", $type: "RegExp" });
  assert.equal(encode(Promise.resolve()).$type, "Promise");
  assert.equal(encode(new String("boxed")).$type, "String");
});

test("long repr text is truncated to 1000 characters plus ...", () => {
  class Chatty {
    toString() {
      return "x".repeat(5000);
    }
  }
  assert.equal(encode(new Chatty()).$repr, "x".repeat(1000) + "...");
  class Emoji {
    toString() {
      return "x".repeat(999) + "😀".repeat(10);
    }
  }
  const text = encode(new Emoji()).$repr;
  assert.equal(text, "x".repeat(999) + "...", "a surrogate pair is never split");
});

test("values whose inspection throws are still encoded", () => {
  class Hostile {
    toString() {
      throw new Error("no");
    }
  }
  assert.deepStrictEqual(encode(new Hostile()), { $repr: "[object Hostile]", $type: "Hostile" });
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  assert.equal(typeof encode(proxy).$repr, "string");
  const getter = {
    get boom() {
      throw new Error("getter");
    },
  };
  assert.equal(encode({ inner: getter }).inner.$type, "Object");
});

test("PyOpaque is frozen and re-encodes to the same $repr", () => {
  const wire = { $repr: "<object object at 0x1>", $type: "object" };
  const value = decode(wire);
  assert.ok(value instanceof PyOpaque);
  assert.ok(Object.isFrozen(value));
  assert.deepStrictEqual(encode(value), wire);
  assert.deepStrictEqual(encode(new PyOpaque("a.B", "B()")), { $repr: "B()", $type: "a.B" });
});

// -------------------------------------------------------- cycles and depth

function nestedArray(levels) {
  let value = [];
  for (let i = 1; i < levels; i++) value = [value];
  return value;
}

function arrayDepth(wire) {
  let depth = 0;
  while (Array.isArray(wire)) {
    depth += 1;
    wire = wire[0];
  }
  return depth;
}

test("cycles become $repr for the offending sub-value only", () => {
  const arr = [1];
  arr.push(arr);
  assert.deepStrictEqual(encode(arr), [1, { $repr: "Array(2) [...]", $type: "Array" }]);
  const obj = { name: "o" };
  obj.self = obj;
  assert.deepStrictEqual(encode(obj), { name: "o", self: { $repr: "{...}", $type: "Object" } });
  const map = new Map();
  map.set("m", map);
  assert.equal(encode(map).$map[0][1].$type, "Map");
  const set = new Set();
  set.add(set);
  assert.equal(encode(set).$set[0].$type, "Set");
});

test("a shared (non-cyclic) reference is encoded every time", () => {
  const shared = [1, 2];
  assert.deepStrictEqual(encode([shared, shared, { s: shared }]), [[1, 2], [1, 2], { s: [1, 2] }]);
});

test("nesting up to MAX_DEPTH is kept, deeper becomes $repr", () => {
  assert.equal(MAX_DEPTH, 100);
  const full = encode(nestedArray(MAX_DEPTH));
  assert.equal(arrayDepth(full), MAX_DEPTH);
  assert.ok(!JSON.stringify(full).includes("$repr"));
  const cut = encode(nestedArray(MAX_DEPTH + 1));
  assert.equal(arrayDepth(cut), MAX_DEPTH);
  assert.ok(JSON.stringify(cut).includes('"$type":"Array"'));
});

test("10,000 levels of nesting encode without throwing, and decode back", () => {
  const makers = {
    array: (v) => [v],
    object: (v) => ({ k: v }),
    tuple: (v) => PyTuple.of(v),
    map: (v) => new Map([[1, v]]),
    set: (v) => new Set([v]),
  };
  for (const [kind, wrap] of Object.entries(makers)) {
    let value = 0;
    for (let i = 0; i < 10_000; i++) value = wrap(value);
    const wire = encode(value);
    assert.ok(JSON.stringify(wire).includes("$repr"), kind);
    assert.deepStrictEqual(encode(decode(wire)), wire, kind);
  }
});

test("decode rejects absurdly deep wire values", () => {
  assert.throws(() => decode(nestedArray(10_000)), { name: "CodecError", message: /nested/ });
  assert.throws(() => loads("[".repeat(100_000) + "]".repeat(100_000)), CodecError);
});

// -------------------------------------------------------------- malformed

test("malformed tagged objects throw CodecError naming the problem", () => {
  const cases = [
    [{ $int: 5 }, /\$int/],
    [{ $int: "1.5" }, /\$int/],
    [{ $int: " 12" }, /\$int/],
    [{ $int: "" }, /\$int/],
    [{ $float: "NaN" }, /\$float/],
    [{ $float: 1 }, /\$float/],
    [{ $bytes: "!!!" }, /\$bytes/],
    [{ $bytes: "QQ" }, /\$bytes/],
    [{ $bytes: "QQ=" }, /\$bytes/],
    [{ $bytes: "Q===" }, /\$bytes/],
    [{ $bytes: "aGk=\n" }, /\$bytes/],
    [{ $bytes: "a-_=" }, /\$bytes/],
    [{ $bytes: 5 }, /\$bytes/],
    [{ $tuple: "ab" }, /\$tuple/],
    [{ $tuple: { a: 1 } }, /\$tuple/],
    [{ $set: null }, /\$set/],
    [{ $frozenset: 1 }, /\$frozenset/],
    [{ $map: {} }, /\$map/],
    [{ $map: [[1]] }, /\$map/],
    [{ $map: [[1, 2, 3]] }, /\$map/],
    [{ $map: [1] }, /\$map/],
    [{ $repr: "x" }, /\$repr/],
    [{ $type: "x" }, /\$type/],
    [{ $repr: "x", $type: 1 }, /\$repr/],
    [{ $repr: 1, $type: "x" }, /\$repr/],
    [{ $repr: "x", $type: "y", $z: 1 }, /malformed/],
    [{ $unknown: 1 }, /\$unknown/],
    [{ $: 1 }, /malformed/],
    [{ $int: "5", x: 1 }, /malformed/],
    [{ a: 1, $int: "5" }, /malformed/],
    [[1, { nested: { $tuple: 1 } }], /\$tuple/],
  ];
  for (const [wire, message] of cases) {
    assert.throws(
      () => decode(wire),
      (err) => {
        assert.ok(err instanceof CodecError, JSON.stringify(wire));
        assert.ok(err instanceof Error);
        assert.equal(err.name, "CodecError");
        assert.match(err.message, message, JSON.stringify(wire));
        return true;
      },
    );
  }
});

test("decode rejects values that are not JSON", () => {
  for (const wire of [undefined, () => 1, Symbol("s"), 1n, NaN, Infinity, new Map(), new Date(), [new Set()]]) {
    assert.throws(() => decode(wire), CodecError);
  }
});

test("loads reports invalid JSON as CodecError", () => {
  for (const text of ["NaN", "{", "", "[1,]", "'a'"]) {
    assert.throws(() => loads(text), { name: "CodecError", message: /invalid JSON/ });
  }
});

// ---------------------------------------------------- prototype pollution

test("decoding a __proto__ key makes an own property and pollutes nothing", () => {
  const decoded = loads('{"__proto__": {"polluted": 1}, "a": {"__proto__": {"polluted": 2}}}');
  assert.equal({}.polluted, undefined);
  assert.equal(Object.prototype.polluted, undefined);
  assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
  assert.ok(Object.hasOwn(decoded, "__proto__"));
  assert.equal(decoded.polluted, undefined);
  assert.deepStrictEqual(Object.keys(decoded), ["__proto__", "a"]);
  assert.equal(Object.getOwnPropertyDescriptor(decoded, "__proto__").value.polluted, 1);
  assert.ok(Object.hasOwn(decoded.a, "__proto__"));
  // ...and it survives a round trip as a key, not as a prototype.
  assert.equal(dumps(decoded), '{"__proto__":{"polluted":1},"a":{"__proto__":{"polluted":2}}}');
});

test("encoding an own __proto__ key keeps it a key", () => {
  const value = JSON.parse('{"__proto__": [1]}');
  const wire = encode(value);
  assert.ok(Object.hasOwn(wire, "__proto__"));
  assert.equal(Object.getPrototypeOf(wire), Object.prototype);
  assert.equal(JSON.stringify(wire), '{"__proto__":[1]}');
});
