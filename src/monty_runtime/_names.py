"""The names a runtime accepts from its caller: one rule, shared with ``web/shared/names.js``.

* An **identifier** is what code can write as a name: ``str.isidentifier()`` and not a
  keyword (``keyword.kwlist``; soft keywords such as ``match`` are names). Host
  functions, their parameters, extension namespaces and ``inputs`` keys are identifiers.
* A **host function name** is an identifier or ``namespace.identifier``. The names of
  one runtime are unique, and no namespace is also a function's name (``math`` and
  ``math.add`` cannot both be registered: the first would hide the second).

``tests/name_vectors.json`` holds the cases both implementations must judge alike
(``tests/unit/test_names.py``, ``tests/node/names.test.mjs``).
"""

from __future__ import annotations

import keyword
from collections.abc import Iterable

__all__ = ["KEYWORDS", "check_function_names", "function_name_problem", "is_identifier"]

#: Python's keywords: not names, though ``str.isidentifier()`` accepts them.
KEYWORDS: frozenset[str] = frozenset(keyword.kwlist)


def is_identifier(name: object) -> bool:
    """Whether ``name`` is a str that code can write as a name."""
    return isinstance(name, str) and name.isidentifier() and name not in KEYWORDS


def function_name_problem(names: Iterable[object]) -> str | None:
    """What is wrong with a runtime's host function names, or ``None``."""
    seen: set[str] = set()
    spaces: set[str] = set()
    for name in names:
        parts = name.split(".") if isinstance(name, str) else []
        if not isinstance(name, str) or len(parts) > 2 or not all(map(is_identifier, parts)):
            return (f"host function name {name!r} is not a Python identifier "
                    f"(or namespace.identifier)")
        if name in seen:
            return f"duplicate host function name {name!r}"
        seen.add(name)
        if len(parts) == 2:
            spaces.add(parts[0])
    clash = sorted(seen & spaces)
    if clash:
        return f"host function name {clash[0]!r} clashes with a namespace"
    return None


def check_function_names(names: Iterable[object]) -> None:
    """Raise ``ValueError`` (see :func:`function_name_problem`) unless the names are good."""
    problem = function_name_problem(names)
    if problem is not None:
        raise ValueError(problem)
