/**
 * The page's check of a host call's arguments against the function's JSON Schema: the
 * same rule as the worker's (src/monty_runtime/extensions.py, `HostFunction.bind` for a
 * schema-only function and `validate`), so that a host_call forged by executed code
 * (which can post any message) is refused by the page exactly as an honest call with
 * the same arguments is refused in the worker. tests/schema_vectors.json holds shared
 * cases that both implementations must judge alike (tests/node/schema.test.mjs,
 * tests/unit/test_schema_vectors.py).
 *
 * The rule, for `parameters` = {properties, required}: at most as many positional
 * arguments as properties (bound in the properties' order), keyword arguments only for
 * properties and not twice, every required property given, and each value valid for
 * its property's schema: type (null, boolean, integer, number, string, array, object),
 * enum (Python equality, True is not 1), anyOf, items / prefixItems, properties /
 * required / additionalProperties, and x-python-type "bytes". `parameters: null` (a JS
 * function whose parameters could not be read) accepts any arguments.
 *
 * Values are the codec's decoded values (codec.js): an int is a Number or a BigInt, a
 * bytes value a Uint8Array, a tuple a PyTuple, a dict a plain object or a Map. One
 * asymmetry is inherent: JSON text does not tell 2 from 2.0 here, so an integral float
 * passes as an integer on the page (the function receives the integer 2).
 * @module schema
 */

import { PyOpaque, PyTuple } from "./codec.js";

const isPlainObject = (v) => {
  if (v === null || typeof v !== "object") return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
};
const isDict = (v) => isPlainObject(v) || v instanceof Map;
const isList = (v) => Array.isArray(v);
const isBytes = (v) => v instanceof Uint8Array;
const isInt = (v) => (typeof v === "number" && Number.isInteger(v)) || typeof v === "bigint";

const TYPES = {
  null: (v) => v === null || v === undefined,
  boolean: (v) => typeof v === "boolean",
  integer: isInt,
  number: (v) => typeof v === "number" || typeof v === "bigint",
  string: (v) => typeof v === "string",
  array: isList,
  object: isDict,
};

/** Python's type name of a decoded value (for messages). */
function typeName(v) {
  if (v === null || v === undefined) return "NoneType";
  switch (typeof v) {
    case "boolean": return "bool";
    case "bigint": return "int";
    case "number": return Number.isInteger(v) ? "int" : "float";
    case "string": return "str";
    default:
      if (v instanceof PyTuple) return "tuple";
      if (isList(v)) return "list";
      if (isBytes(v)) return "bytes";
      if (v instanceof Set) return "set";
      if (isDict(v)) return "dict";
      if (v instanceof PyOpaque) return v.type;
      return typeof v;
  }
}

const entriesOf = (v) => (v instanceof Map ? [...v.entries()] : Object.entries(v));

/** Python `a == b` for decoded values (enum membership). */
function pyEquals(a, b) {
  if (a === undefined) a = null;
  if (b === undefined) b = null;
  const numeric = (x) => typeof x === "number" || typeof x === "bigint" || typeof x === "boolean";
  if (numeric(a) && numeric(b)) {
    const x = typeof a === "boolean" ? Number(a) : a;
    const y = typeof b === "boolean" ? Number(b) : b;
    if (typeof x === "bigint" || typeof y === "bigint") {
      if (!Number.isInteger(Number(x)) || !Number.isInteger(Number(y))) return Number(x) === Number(y);
      return BigInt(x) === BigInt(y);
    }
    return x === y;
  }
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return a === b;
  if (isList(a) && isList(b)) {
    if ((a instanceof PyTuple) !== (b instanceof PyTuple) || a.length !== b.length) return false;
    return a.every((item, i) => pyEquals(item, b[i]));
  }
  if (isDict(a) && isDict(b)) {
    const ea = entriesOf(a);
    const eb = new Map(entriesOf(b));
    return ea.length === eb.size && ea.every(([k, v]) => eb.has(k) && pyEquals(v, eb.get(k)));
  }
  if (isBytes(a) && isBytes(b)) return a.length === b.length && a.every((x, i) => x === b[i]);
  return false;
}

/** A short Python-like repr, for messages only. */
function repr(v) {
  let text;
  try {
    text = typeof v === "string" ? `'${v}'` : typeof v === "bigint" ? String(v) : JSON.stringify(v) ?? String(v);
  } catch {
    text = String(v);
  }
  return text.length > 80 ? text.slice(0, 80) : text;
}

/**
 * Throw a TypeError naming `where` unless `value` is valid for `schema` (the worker's
 * `validate`).
 * @param {any} schema
 * @param {unknown} value
 * @param {string} where
 */
export function validate(schema, value, where) {
  if (schema === null || typeof schema !== "object" || Object.keys(schema).length === 0) return;
  if (Object.hasOwn(schema, "anyOf")) {
    for (const option of schema.anyOf ?? []) {
      try {
        validate(option, value, where);
        return;
      } catch (err) {
        if (!(err instanceof TypeError)) throw err;
      }
    }
    throw new TypeError(`${where}: ${typeName(value)} does not match ${repr(schema)}`);
  }
  if (Object.hasOwn(schema, "enum")) {
    const options = Array.isArray(schema.enum) ? schema.enum : [];
    const equal = options.filter((e) => pyEquals(value, e));
    if (equal.length === 0 || equal.some((e) => (typeof value === "boolean") !== (typeof e === "boolean"))) {
      throw new TypeError(`${where} must be one of ${repr(options)}, got ${repr(value)}`);
    }
    return;
  }
  const expected = schema.type;
  if (expected != null && Object.hasOwn(TYPES, expected) && !TYPES[expected](value)) {
    throw new TypeError(`${where} must be ${expected}, got ${typeName(value)}`);
  }
  if (schema["x-python-type"] === "bytes" && !isBytes(value)) {
    throw new TypeError(`${where} must be bytes, got ${typeName(value)}`);
  }
  if (isList(value)) {
    const prefix = schema.prefixItems;
    if (prefix != null) {
      if (!Array.isArray(prefix) || value.length !== prefix.length) {
        throw new TypeError(`${where} must have ${Array.isArray(prefix) ? prefix.length : 0} items, got ${value.length}`);
      }
      prefix.forEach((itemSchema, i) => validate(itemSchema, value[i], `${where}[${i}]`));
    } else if (Object.hasOwn(schema, "items")) {
      value.forEach((item, i) => validate(schema.items, item, `${where}[${i}]`));
    }
  }
  if (isDict(value)) {
    const props = isPlainObject(schema.properties) ? schema.properties : {};
    const keys = value instanceof Map ? value : new Map(Object.entries(value));
    for (const key of Array.isArray(schema.required) ? schema.required : []) {
      if (!keys.has(key)) throw new TypeError(`${where} is missing required key '${key}'`);
    }
    const extra = schema.additionalProperties;
    for (const [key, item] of keys) {
      if (typeof key === "string" && Object.hasOwn(props, key)) validate(props[key], item, `${where}['${key}']`);
      else if (isPlainObject(extra)) validate(extra, item, `${where}[${repr(key)}]`);
    }
  }
}

/**
 * Check one call of the host function `name` (its `parameters` schema, or null for any
 * arguments) with decoded `args` (an array) and `kwargs` (a dict); throw the TypeError
 * the worker would raise. Returns the keyword arguments as a plain object (a `$map`
 * decodes to a Map).
 * @param {string} name
 * @param {any} parameters
 * @param {unknown} args
 * @param {unknown} kwargs
 * @returns {Record<string, unknown>}
 */
export function checkCall(name, parameters, args, kwargs) {
  if (!Array.isArray(args) || !isDict(kwargs)) throw new TypeError("malformed arguments");
  const named = Object.create(null);
  for (const [key, value] of entriesOf(kwargs)) {
    if (typeof key !== "string") throw new TypeError(`${name}() keywords must be strings`);
    named[key] = value;
  }
  /** @type {Record<string, unknown>} */
  const plain = {};
  for (const [key, value] of Object.entries(named)) {
    Object.defineProperty(plain, key, { value, enumerable: true, writable: true, configurable: true });
  }
  if (parameters === null || parameters === undefined) return plain;
  const props = isPlainObject(parameters.properties) ? parameters.properties : {};
  const names = Object.keys(props);
  if (args.length > names.length) {
    throw new TypeError(`${name}() takes ${names.length} positional arguments but ${args.length} were given`);
  }
  const values = new Map(args.map((value, i) => [names[i], value]));
  for (const [key, value] of Object.entries(named)) {
    if (!Object.hasOwn(props, key)) throw new TypeError(`${name}() got an unexpected keyword argument '${key}'`);
    if (values.has(key)) throw new TypeError(`${name}() got multiple values for argument '${key}'`);
    values.set(key, value);
  }
  for (const key of Array.isArray(parameters.required) ? parameters.required : []) {
    if (!values.has(key)) throw new TypeError(`${name}() missing required argument: '${key}'`);
  }
  for (const [key, value] of values) validate(props[key], value, `${name}() argument '${key}'`);
  return plain;
}
