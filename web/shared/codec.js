/**
 * The value codec shared by the JavaScript and Python halves of monty-runtime.
 *
 * Mirrors `src/monty_runtime/codec.py`: "JSON plus tags for what JSON cannot
 * hold". Plain JSON stays plain JSON, and the values JSON would corrupt or
 * reject travel as one-key tag objects:
 *
 *   null/undefined, boolean, string   as is (undefined becomes null)
 *   finite number                     JSON number (-0 is sent as 0: JSON has no -0)
 *   NaN, Infinity, -Infinity          {"$float": "nan" | "inf" | "-inf"}
 *   bigint                            {"$int": "<decimal>"}
 *   Uint8Array, other typed arrays,   {"$bytes": "<standard base64, padded>"}
 *   DataView, ArrayBuffer             (the viewed bytes)
 *   Array                             JSON array
 *   PyTuple                           {"$tuple": [...]}
 *   Set / PyFrozenSet                 {"$set": [...]} / {"$frozenset": [...]}
 *   plain object, no key starting "$" JSON object
 *   plain object with a "$" key, Map  {"$map": [[key, value], ...]}
 *   anything else, a cycle, or        {"$repr": "<text, <= 1000 chars + '...'>",
 *   nesting deeper than MAX_DEPTH      "$type": "<constructor name or typeof>"}
 *
 * Decoding: $int gives a Number inside the safe-integer range and a BigInt
 * outside it, $bytes a Uint8Array, $tuple a PyTuple, $set a Set, $frozenset a
 * PyFrozenSet, $map a Map and $repr a PyOpaque.
 *
 * Known asymmetries (inherent to JavaScript, documented rather than hidden):
 * JS numbers cannot tell 2 from 2.0, so an integral Python float comes back to
 * Python as an int after a JS round trip; -0 becomes 0; plain objects put
 * integer-like keys ("1", "10") first regardless of the order they arrived in;
 * set items keep insertion order here (Python sorts them when it encodes).
 *
 * Encoding never throws; decoding is strict and throws CodecError.
 * ES module with no dependencies: works in browsers, Web Workers and Node 20.
 * @module codec
 */

/**
 * Containers nested deeper than this become `$repr` (the top level is depth 0).
 * Same value as Python's `MAX_DEPTH`, so both sides cut at the same place.
 * @type {number}
 */
export const MAX_DEPTH = 100;

const MAX_REPR = 1000;
// Deepest wire nesting an encoder produces: a container level costs at most three
// wire levels ({"$map": [[k, v]]}). Deeper input is rejected, not recursed into.
const MAX_WIRE_DEPTH = 3 * MAX_DEPTH + 8;
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);
const INT_TEXT = /^-?[0-9]+$/;
// Together with `length % 4 === 0` this accepts exactly padded standard base64,
// without a backtracking-heavy pattern on large payloads.
const B64_TEXT = /^[A-Za-z0-9+/]*={0,2}$/;
const SINGLE_TAGS = new Set(["$int", "$float", "$bytes", "$tuple", "$set", "$frozenset", "$map"]);

/**
 * Thrown by `decode`/`loads` for anything that is not exactly a wire value:
 * a malformed or unknown tag, a non-JSON value, absurd nesting, invalid JSON.
 * Strictness keeps the JS and Python implementations from drifting apart.
 */
export class CodecError extends Error {
  /**
   * @param {string} message what is wrong with the input
   * @param {ErrorOptions} [options] e.g. `{cause}`
   */
  constructor(message, options) {
    super(message, options);
    this.name = "CodecError";
  }
}

/**
 * A Python tuple. It is an Array (so all array code works on it) but a
 * distinct class, so a decoded tuple re-encodes as `$tuple` rather than as a
 * list: the round trip JS -> Python keeps tuples hashable dict keys.
 * Build one with `PyTuple.from(iterable)` or `PyTuple.of(...items)`.
 */
export class PyTuple extends Array {}

/**
 * A Python frozenset. It is a Set, but a distinct class so that it re-encodes
 * as `$frozenset` (a hashable value in Python) rather than `$set`. It is a
 * marker only: JavaScript does not stop you from mutating it.
 */
export class PyFrozenSet extends Set {}

/**
 * Stand-in for a value that cannot cross the boundary (a Python object,
 * function or module; a JS function, symbol, Date or class instance): its type
 * name and repr text. Immutable, and it encodes back to the identical `$repr`
 * tag, so such values pass through JavaScript unchanged.
 */
export class PyOpaque {
  /**
   * @param {string} type type name, e.g. "datetime.date" or "function"
   * @param {string} repr the value's repr text
   */
  constructor(type, repr) {
    /** @type {string} */
    this.type = String(type);
    /** @type {string} */
    this.repr = String(repr);
    Object.freeze(this);
  }

  /** @returns {string} `<type: repr>`, like Python's `repr(Opaque)` */
  toString() {
    return `<${this.type}: ${this.repr}>`;
  }
}

// ---------------------------------------------------------------- encoding

/**
 * Return the JSON-able wire form of `value`. Never throws: results of arbitrary
 * code must always be deliverable, so unsupported values, cycles and
 * over-deep nesting degrade to `$repr` for just the offending sub-value.
 * @param {unknown} value
 * @returns {any} a JSON-able value (JSON.stringify works on it)
 */
export function encode(value) {
  return enc(value, 0, new Set());
}

/**
 * Encode `value` and serialize it as compact JSON text.
 * @param {unknown} value
 * @returns {string}
 */
export function dumps(value) {
  return JSON.stringify(encode(value));
}

function enc(v, depth, active) {
  switch (typeof v) {
    case "string":
    case "boolean":
      return v;
    case "number":
      if (Number.isFinite(v)) return v === 0 ? 0 : v; // folds -0 into 0
      return { $float: v !== v ? "nan" : v > 0 ? "inf" : "-inf" };
    case "bigint":
      return { $int: v.toString() };
    case "undefined":
      return null;
    case "object":
      return v === null ? null : encObject(v, depth, active);
    default: // function, symbol
      return opaque(v);
  }
}

function encObject(v, depth, active) {
  let kind;
  try {
    kind = kindOf(v);
  } catch {
    return opaque(v); // e.g. a revoked Proxy
  }
  if (kind === "bytes") return { $bytes: toBase64(bytesOf(v)) };
  if (kind === "opaque") return { $repr: v.repr, $type: v.type };
  if (kind === null) return opaque(v);
  if (depth >= MAX_DEPTH || active.has(v)) return opaque(v);
  active.add(v);
  const d = depth + 1;
  let out;
  try {
    switch (kind) {
      case "array":
      case "tuple": {
        const items = [];
        // Index loop, not for-of: holes become undefined and then null.
        for (let i = 0; i < v.length; i++) items.push(enc(v[i], d, active));
        out = kind === "tuple" ? { $tuple: items } : items;
        break;
      }
      case "set":
      case "frozenset": {
        const items = [];
        for (const item of v) items.push(enc(item, d, active));
        out = kind === "set" ? { $set: items } : { $frozenset: items };
        break;
      }
      case "map": {
        const entries = [];
        for (const [key, item] of v) entries.push([enc(key, d, active), enc(item, d, active)]);
        out = { $map: entries };
        break;
      }
      default: {
        // Plain object: own enumerable string keys. A "$" key would read as a
        // tag on the other side, so such objects go as $map instead.
        const keys = Object.keys(v);
        if (keys.some((key) => key.charCodeAt(0) === 36)) {
          out = { $map: keys.map((key) => [key, enc(v[key], d, active)]) };
        } else {
          out = {};
          for (const key of keys) setOwn(out, key, enc(v[key], d, active));
        }
      }
    }
  } catch {
    out = opaque(v); // a throwing getter or iterator: describe the value instead
  } finally {
    active.delete(v);
  }
  return out;
}

function kindOf(v) {
  if (v instanceof Uint8Array || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return "bytes";
  if (typeof SharedArrayBuffer !== "undefined" && v instanceof SharedArrayBuffer) return "bytes";
  if (v instanceof PyTuple) return "tuple";
  if (Array.isArray(v)) return "array";
  if (v instanceof PyFrozenSet) return "frozenset";
  if (v instanceof Set) return "set";
  if (v instanceof Map) return "map";
  if (v instanceof PyOpaque) return "opaque";
  const proto = Object.getPrototypeOf(v);
  if (proto === Object.prototype || proto === null) return "object";
  return null;
}

function bytesOf(v) {
  if (v instanceof Uint8Array) return v;
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return new Uint8Array(v);
}

function toBase64(bytes) {
  let binary = "";
  // Chunked so String.fromCharCode never gets more arguments than the engine allows.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function opaque(v) {
  return { $repr: truncate(reprText(v)), $type: typeName(v) };
}

function typeName(v) {
  const t = typeof v;
  if (t !== "object") return t;
  try {
    const ctor = v.constructor;
    if (typeof ctor === "function" && ctor.name) return ctor.name;
  } catch {
    // fall through
  }
  return "object";
}

function reprText(v) {
  try {
    switch (typeof v) {
      case "symbol":
        return v.toString();
      case "function": {
        const name = v.name || "(anonymous)";
        return /^class\b/.test(Function.prototype.toString.call(v))
          ? `[class ${name}]`
          : `[Function: ${name}]`;
      }
      case "object":
        break;
      default:
        return String(v);
    }
    const name = typeName(v);
    if (v instanceof Date) return Number.isNaN(v.getTime()) ? "Invalid Date" : v.toISOString();
    if (Array.isArray(v)) return `${name}(${v.length}) [...]`;
    if (v instanceof Map || v instanceof Set) return `${name}(${v.size}) {...}`;
    const proto = Object.getPrototypeOf(v);
    if (proto === Object.prototype || proto === null) return "{...}";
    const text = String(v);
    return text.startsWith("[object ") ? `[object ${name}]` : text;
  } catch {
    return `[object ${typeName(v)}]`;
  }
}

function truncate(text) {
  if (text.length <= MAX_REPR) return text;
  let end = MAX_REPR;
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1; // do not split a surrogate pair
  return text.slice(0, end) + "...";
}

// Assigning obj["__proto__"] would replace the prototype instead of adding a key;
// it is the only accessor Object.prototype defines, so only it needs the slow path.
function setOwn(obj, key, value) {
  if (key === "__proto__") {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

// ---------------------------------------------------------------- decoding

/**
 * Turn a wire value (as produced by `JSON.parse`) back into JS values.
 * Strict: anything an encoder would not produce is a CodecError naming the
 * problem. Never pollutes Object.prototype: a "__proto__" key becomes an
 * ordinary own property of the decoded object.
 * @param {any} wire
 * @returns {any}
 * @throws {CodecError}
 */
export function decode(wire) {
  return dec(wire, 0);
}

/**
 * Parse JSON text and decode it; invalid JSON is reported as CodecError too.
 * @param {string} text
 * @returns {any}
 * @throws {CodecError}
 */
export function loads(text) {
  let wire;
  try {
    wire = JSON.parse(text);
  } catch (err) {
    throw new CodecError(`invalid JSON: ${err.message}`, { cause: err });
  }
  return decode(wire);
}

function dec(w, depth) {
  switch (typeof w) {
    case "string":
    case "boolean":
      return w;
    case "number":
      if (Number.isFinite(w)) return w;
      throw new CodecError(`non-finite number ${w} is not JSON; it must be sent as a $float tag`);
    case "object":
      break;
    default:
      throw new CodecError(`not a JSON value: ${typeof w}`);
  }
  if (w === null) return null;
  if (depth >= MAX_WIRE_DEPTH) {
    throw new CodecError(`value is nested more than ${MAX_WIRE_DEPTH} levels deep`);
  }
  const d = depth + 1;
  if (Array.isArray(w)) {
    const out = [];
    for (let i = 0; i < w.length; i++) out.push(dec(w[i], d));
    return out;
  }
  const proto = Object.getPrototypeOf(w);
  if (proto !== Object.prototype && proto !== null) {
    throw new CodecError(`not a JSON value: ${typeName(w)}`);
  }
  const keys = Object.keys(w);
  const out = {};
  for (const key of keys) {
    if (key.charCodeAt(0) === 36) return decTag(w, keys, d);
    setOwn(out, key, dec(w[key], d));
  }
  return out;
}

function decTag(w, keys, depth) {
  if (keys.length === 2 && keys.includes("$repr") && keys.includes("$type")) {
    if (typeof w.$repr !== "string" || typeof w.$type !== "string") {
      throw new CodecError("$repr and $type must both be strings");
    }
    return new PyOpaque(w.$type, w.$repr);
  }
  if (keys.length !== 1 || !SINGLE_TAGS.has(keys[0])) {
    throw new CodecError(
      `malformed tagged object with keys ${JSON.stringify(keys.sort())}: expected exactly one of ` +
        "$int, $float, $bytes, $tuple, $set, $frozenset, $map, or $repr with $type",
    );
  }
  const tag = keys[0];
  const body = w[tag];
  switch (tag) {
    case "$int": {
      if (typeof body !== "string" || !INT_TEXT.test(body)) {
        throw new CodecError(`$int must be a decimal integer string, got ${describe(body)}`);
      }
      const big = BigInt(body);
      return big >= -MAX_SAFE_BIG && big <= MAX_SAFE_BIG ? Number(big) : big;
    }
    case "$float":
      if (body === "nan") return NaN;
      if (body === "inf") return Infinity;
      if (body === "-inf") return -Infinity;
      throw new CodecError(`$float must be "nan", "inf" or "-inf", got ${describe(body)}`);
    case "$bytes": {
      if (typeof body !== "string" || body.length % 4 !== 0 || !B64_TEXT.test(body)) {
        throw new CodecError("$bytes must be a padded standard base64 string");
      }
      const binary = atob(body);
      const out = new Uint8Array(binary.length);
      for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
      return out;
    }
    default:
      break;
  }
  if (!Array.isArray(body)) {
    throw new CodecError(`${tag} must hold a JSON array, got ${describe(body)}`);
  }
  const d = depth + 1;
  if (tag === "$map") {
    const out = new Map();
    for (const entry of body) {
      if (!Array.isArray(entry) || entry.length !== 2) {
        throw new CodecError("$map entries must be [key, value] arrays");
      }
      out.set(dec(entry[0], d + 1), dec(entry[1], d + 1));
    }
    return out;
  }
  /** @type {any} */
  const out = tag === "$tuple" ? new PyTuple() : tag === "$set" ? new Set() : new PyFrozenSet();
  for (const item of body) {
    if (tag === "$tuple") out.push(dec(item, d));
    else out.add(dec(item, d));
  }
  return out;
}

function describe(v) {
  if (typeof v === "string") return JSON.stringify(v.length > 80 ? v.slice(0, 80) + "..." : v);
  if (Array.isArray(v)) return "an array";
  if (v === null) return "null";
  return typeof v === "object" ? "an object" : `${typeof v} ${String(v)}`;
}
