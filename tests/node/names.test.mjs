// web/shared/names.js against the vectors src/monty_runtime/_names.py runs too
// (tests/name_vectors.json). Run with: node --test tests/node/
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { functionNameProblem, isIdentifier } from "../../web/shared/names.js";

const VECTORS = JSON.parse(readFileSync(new URL("../name_vectors.json", import.meta.url), "utf8"));
const WORDS = ["not a Python identifier", "duplicate", "clashes"];

test("identifiers are judged by the shared vectors", () => {
  for (const [name, expected] of VECTORS.identifiers) {
    assert.equal(isIdentifier(name), expected, JSON.stringify(name));
  }
});

test("function names are judged by the shared vectors", () => {
  for (const [names, expected] of VECTORS.function_names) {
    const problem = functionNameProblem(names);
    const kind = problem === null ? null : WORDS.find((w) => problem.includes(w));
    assert.equal(kind, expected, JSON.stringify(names));
  }
});

test("what is not a string is not a name", () => {
  for (const value of [null, undefined, 1, {}, ["a"]]) assert.equal(isIdentifier(value), false);
  assert.match(functionNameProblem([1]), /not a Python identifier/);
});
