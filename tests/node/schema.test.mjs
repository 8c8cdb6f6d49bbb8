// The page's host-call argument check (web/shared/schema.js) judges the shared vectors in
// tests/schema_vectors.json exactly as the worker's Python checker does
// (tests/unit/test_schema_vectors.py runs the same file).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { decode } from "../../web/shared/codec.js";
import { checkCall } from "../../web/shared/schema.js";

const VECTORS = JSON.parse(readFileSync(new URL("../schema_vectors.json", import.meta.url), "utf8"));

function verdict(vector) {
  try {
    checkCall("f", vector.parameters, decode(vector.args), decode(vector.kwargs));
  } catch (err) {
    assert.ok(err instanceof TypeError, `${vector.name}: ${err}`);
    return false;
  }
  return true;
}

for (const vector of VECTORS) {
  test(`the page judges ${vector.name} as the worker does`, () => {
    assert.equal(verdict(vector), vector.ok);
  });
}

test("a refused call names the function and the argument", () => {
  const parameters = VECTORS.find((v) => v.name === "transfer_ok").parameters;
  assert.throws(() => checkCall("transfer", parameters, ["mallory", 1], {}),
    /transfer\(\) argument 'to' must be one of/);
  assert.throws(() => checkCall("transfer", parameters, ["alice"], {}),
    /transfer\(\) missing required argument: 'amount'/);
});

test("keyword arguments come back as a plain object, __proto__ as an own key", () => {
  const named = checkCall("f", null, [], decode({ $map: [["__proto__", 1], ["a", 2]] }));
  assert.equal(Object.getPrototypeOf(named), Object.prototype);
  assert.deepEqual(Object.keys(named), ["__proto__", "a"]);
  assert.equal(({}).a, undefined);
});
