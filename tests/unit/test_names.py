"""One rule for names (``_names.py`` and ``web/shared/names.js``): identifiers, host function
names, namespaces. Both implementations run ``tests/name_vectors.json``; every place
that takes a name from the caller goes through the rule."""

from __future__ import annotations

import json
import keyword
import re
from pathlib import Path

import pytest

from monty_runtime import Extension, MontyRuntime
from monty_runtime._names import KEYWORDS, function_name_problem, is_identifier

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "tests" / "name_vectors.json").read_text(encoding="utf-8"))
WORDS = ("not a Python identifier", "duplicate", "clashes")


def _kind(problem: str | None) -> str | None:
    return None if problem is None else next(w for w in WORDS if w in problem)


@pytest.mark.parametrize(("name", "expected"), VECTORS["identifiers"])
def test_identifiers_are_judged_by_the_shared_vectors(name: str, expected: bool) -> None:
    assert is_identifier(name) is expected


@pytest.mark.parametrize(("names", "expected"), VECTORS["function_names"])
def test_function_names_are_judged_by_the_shared_vectors(names: list[str], expected: str) -> None:
    assert _kind(function_name_problem(names)) == expected


def test_the_js_keyword_list_is_pythons() -> None:
    text = (ROOT / "web" / "shared" / "names.js").read_text(encoding="utf-8")
    block = re.search(r"PY_KEYWORDS = new Set\(\s*\((.*?)\)\.split", text, re.DOTALL)
    assert block, "web/shared/names.js lost its PY_KEYWORDS list"
    words = "".join(re.findall(r'"([^"]*)"', block.group(1))).split()
    assert set(words) == KEYWORDS == set(keyword.kwlist)


def test_no_other_module_keeps_its_own_identifier_rule() -> None:
    pattern = re.compile(r"isidentifier\(|iskeyword\(|XID_Start|PY_KEYWORDS = ")
    allowed = {"src/monty_runtime/_names.py", "web/shared/names.js"}
    found = [str(p.relative_to(ROOT)) for p in [*(ROOT / "src").rglob("*.py"), *(ROOT / "web").glob("*.js")]
             if pattern.search(p.read_text(encoding="utf-8")) and str(p.relative_to(ROOT)) not in allowed]
    assert found == []


def _f() -> int:
    return 1


async def test_native_runtime_applies_the_rule_to_inputs_functions_and_namespaces() -> None:
    async with MontyRuntime() as rt:
        with pytest.raises(TypeError, match="identifiers"):
            rt.execute("1", inputs={"class": 1})
        assert (await rt.execute("match", inputs={"match": 1}).result).value == 1

    class Math(Extension):
        namespace = "math"

        def functions(self) -> list:
            return [_f]

    def math() -> int:
        return 0

    with pytest.raises(ValueError, match="clashes"):
        MontyRuntime([math], extensions=[Math()])
    with pytest.raises(ValueError, match="duplicate"):
        MontyRuntime([_f, _f])
