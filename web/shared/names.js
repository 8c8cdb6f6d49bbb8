/**
 * The names a runtime accepts from its caller: one rule, shared with
 * src/monty_runtime/_names.py (tests/name_vectors.json holds the cases both must judge
 * alike: tests/unit/test_names.py, tests/node/names.test.mjs).
 *
 * - An identifier is what Python code can write as a name: `str.isidentifier()` (PEP
 *   3131: XID_Start or "_", then XID_Continue) and not a keyword (soft keywords such as
 *   `match` are names). Host functions, their parameters and `inputs` keys are
 *   identifiers.
 * - A host function name is an identifier or `namespace.identifier`. The names of one
 *   runtime are unique, and no namespace is also a function's name.
 *
 * @module names
 */

/** Python's keywords (keyword.kwlist; a drift test compares). */
export const PY_KEYWORDS = new Set(
  ("False None True and as assert async await break class continue def del elif else except " +
    "finally for from global if import in is lambda nonlocal not or pass raise return try " +
    "while with yield").split(" "),
);

const IDENTIFIER = /^[\p{XID_Start}_]\p{XID_Continue}*$/u;

/**
 * @param {unknown} name
 * @returns {boolean} whether `name` is a string that Python code can write as a name
 */
export function isIdentifier(name) {
  return typeof name === "string" && IDENTIFIER.test(name) && !PY_KEYWORDS.has(name);
}

/**
 * What is wrong with a runtime's host function names, or null.
 * @param {Iterable<unknown>} names
 * @returns {string | null}
 */
export function functionNameProblem(names) {
  const seen = new Set();
  const spaces = new Set();
  for (const name of names) {
    const parts = typeof name === "string" ? name.split(".") : [];
    if (typeof name !== "string" || parts.length > 2 || !parts.every(isIdentifier)) {
      return `host function name ${JSON.stringify(name)} is not a Python identifier (or namespace.identifier)`;
    }
    if (seen.has(name)) return `duplicate host function name ${JSON.stringify(name)}`;
    seen.add(name);
    if (parts.length === 2) spaces.add(parts[0]);
  }
  const clash = [...seen].filter((name) => spaces.has(name)).sort();
  return clash.length ? `host function name ${JSON.stringify(clash[0])} clashes with a namespace` : null;
}
