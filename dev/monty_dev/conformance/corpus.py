"""Loading and validating conformance corpora and the expectations file.

A *corpus* is a directory of ``*.json`` files, each holding a JSON array of cases in the
schema of the python ladder (``shared/fixtures/README.md``), extended with the fields
documented in ``docs/conformance.md`` (``steps``, ``concurrent``, ``sandbox``,
``limits``, ``hostSchemas``, ``expectedStdout``, ...).  Every case is validated when it
is loaded: an unknown field, a missing ``code``, a value of the wrong type or a
duplicate ``id`` raises :class:`CorpusError` naming the file and the case.

The *expectations file* lists the cases whose result is expected to differ from the
corpus's expectation (per backend or for all), each with its reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BACKEND_NAMES",
    "CASE_FIELDS",
    "EXPECTATION_FIELDS",
    "LADDER_ENV",
    "STEP_FIELDS",
    "Case",
    "CorpusError",
    "CorpusSpec",
    "Expectations",
    "ExpectedDifference",
    "Step",
    "default_corpora",
    "find_ladder",
    "find_repo_root",
    "load_corpus",
    "load_expectations",
    "parse_case",
]

#: Environment variable naming the python ladder directory.
LADDER_ENV = "MONTY_LADDER"
#: The backends a case may be run on (and an expectation may name), plus ``"all"``.
#: In the expectations file an engine (``chromium``, ``firefox``, ``webkit``) stands for
#: both of its columns (the cross-origin isolated page, and ``<engine>-noniso``, the page
#: without isolation); ``<engine>-noniso`` for that column only.
BACKEND_NAMES = (
    "native",
    *(f"{engine}{suffix}" for engine in ("chromium", "firefox", "webkit")
      for suffix in ("", "-noniso")),
)
#: Name of the project's own corpus.
PROJECT_CORPUS = "project"
#: Name of the python ladder corpus.
LADDER_CORPUS = "python_ladder"

_EVENT_TYPES = frozenset(
    {"run_started", "print", "call_started", "call_finished", "run_finished", "run_error"}
)
_JSON_TYPES = frozenset({"null", "boolean", "integer", "number", "string", "array", "object"})
_LIMIT_FIELDS = frozenset(
    {"timeout", "max_output_bytes", "max_result_bytes", "max_recursion_depth", "grace"}
)


class CorpusError(ValueError):
    """A corpus or expectations file is malformed.  ``problems`` lists every problem
    found (each naming the file and, where there is one, the case)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        head = (
            self.problems[0]
            if len(self.problems) == 1
            else (f"{len(self.problems)} problems:\n  " + "\n  ".join(self.problems))
        )
        super().__init__(head)


# -- field checks ------------------------------------------------------------------------

Check = Callable[[Any], str | None]  # returns a problem description, or None if fine


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _any(_: Any) -> str | None:
    return None


def _int(v: Any) -> str | None:
    return None if _is_int(v) else "must be an integer"


def _nonneg_int(v: Any) -> str | None:
    return None if _is_int(v) and v >= 0 else "must be a non-negative integer"


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) else "must be a string"


def _nonempty_str(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "must be a non-empty string"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _list(v: Any) -> str | None:
    return None if isinstance(v, list) else "must be a list"


def _dict(v: Any) -> str | None:
    return None if isinstance(v, dict) else "must be an object"


def _identifier_list(v: Any) -> str | None:
    if not isinstance(v, list) or not all(isinstance(x, str) and x.isidentifier() for x in v):
        return "must be a list of function names (Python identifiers)"
    if len(set(v)) != len(v):
        return "names a function twice"
    return None


def _error_spec(v: Any) -> str | None:
    if isinstance(v, str):
        return None
    if (
        isinstance(v, dict)
        and set(v) <= {"type", "message"}
        and isinstance(v.get("type"), str)
        and v["type"].isidentifier()
        and isinstance(v.get("message", ""), str)
    ):
        return None
    return 'must be a message string or {"type": "<ExceptionName>", "message": "..."}'


def _resume_errors(v: Any) -> str | None:
    if not isinstance(v, list):
        return "must be a list"
    for i, item in enumerate(v):
        if item is None:
            continue
        problem = _error_spec(item)
        if problem:
            return f"item {i} {problem}"
    return None


def _index_map(values: Check | None) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, dict):
            return "must be an object keyed by call index"
        for key, item in v.items():
            if not (key.isdigit() and str(int(key)) == key):
                return f"key {key!r} is not a call index (a non-negative integer as a string)"
            if values is not None:
                problem = values(item)
                if problem:
                    return f"[{key}] {problem}"
        return None

    return check


def _host_schemas(v: Any) -> str | None:
    if not isinstance(v, dict):
        return "must be an object: function name -> parameters"
    for fname, params in v.items():
        if not isinstance(params, dict):
            return f"[{fname!r}] must be an object"
        if "properties" in params:
            if params.get("type", "object") != "object" or not isinstance(
                params["properties"], dict
            ):
                return f"[{fname!r}] must be a JSON Schema object with properties"
            continue
        for pname, spec in params.items():
            if not isinstance(pname, str) or not pname.isidentifier():
                return f"[{fname!r}] parameter {pname!r} is not an identifier"
            if isinstance(spec, str):
                if spec not in _JSON_TYPES:
                    return (
                        f"[{fname!r}][{pname!r}] type {spec!r} is not one of {sorted(_JSON_TYPES)}"
                    )
            elif not isinstance(spec, dict):
                return f"[{fname!r}][{pname!r}] must be a JSON type name or a JSON Schema"
    return None


def _host_delays(v: Any) -> str | None:
    if not isinstance(v, dict) or not all(_is_number(d) and 0 <= d <= 60 for d in v.values()):
        return "must be an object: function name -> seconds (0..60)"
    return None


def _limits(v: Any) -> str | None:
    if not isinstance(v, dict):
        return "must be an object"
    unknown = set(v) - _LIMIT_FIELDS
    if unknown:
        return f"has unknown limit(s) {sorted(unknown)}; known: {sorted(_LIMIT_FIELDS)}"
    for key, value in v.items():
        if key == "timeout" and value is None:
            continue
        if not _is_number(value) or value <= 0:
            return f"{key} must be a positive number"
        if key in ("max_output_bytes", "max_result_bytes", "max_recursion_depth") and not (
            _is_int(value)
        ):
            return f"{key} must be an integer"
    return None


def _inputs(v: Any) -> str | None:
    if not isinstance(v, dict) or not all(isinstance(k, str) and k.isidentifier() for k in v):
        return "must be an object whose keys are Python identifiers"
    return None


def _event_types(v: Any) -> str | None:
    if not isinstance(v, list) or not all(isinstance(t, str) and t in _EVENT_TYPES for t in v):
        return f"must be a list of event types among {sorted(_EVENT_TYPES)}"
    return None


def _expected_calls(v: Any) -> str | None:
    if not isinstance(v, list):
        return "must be a list of {name, args?, kwargs?}"
    for i, call in enumerate(v):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            return f"item {i} must be an object with a name"
        unknown = set(call) - {"name", "args", "kwargs"}
        if unknown:
            return f"item {i} has unknown field(s) {sorted(unknown)}"
        if "args" in call and not isinstance(call["args"], list):
            return f"item {i}: args must be a list"
        if "kwargs" in call and not isinstance(call["kwargs"], dict):
            return f"item {i}: kwargs must be an object"
    return None


@dataclass(frozen=True, slots=True)
class FieldSpec:
    check: Check
    doc: str
    #: ``null`` is a value of its own (not "absent") for this field.
    null_is_value: bool = False


#: Fields of one execution: what to run.
_RUN_FIELDS: dict[str, FieldSpec] = {
    "code": FieldSpec(_str, "the program, executed as one execute() call"),
    "scriptName": FieldSpec(_nonempty_str, "the script_name given to execute()"),
    "inputs": FieldSpec(_inputs, "inputs= given to execute() (names bound before the code)"),
}

#: Fields that state what one execution must produce.
EXPECTATION_FIELDS: dict[str, FieldSpec] = {
    "expected": FieldSpec(
        _any, "the value of the last expression, compared as JSON", null_is_value=True
    ),
    "expectedContains": FieldSpec(_str, "a substring that str(value) must contain"),
    "expectedSorted": FieldSpec(_bool, "sort a list value (and expected) before comparing"),
    "expectedWire": FieldSpec(_any, "the exact wire form (codec) of the value", null_is_value=True),
    "expectError": FieldSpec(_bool, "the run must end in a Python error"),
    "errorContains": FieldSpec(_str, 'substring of "type: message" or of the traceback'),
    "expectedExcType": FieldSpec(_str, "the error's type name"),
    "expectedTracebackMinFrames": FieldSpec(_nonneg_int, "minimum number of frames"),
    "expectedTracebackFrameHasFilename": FieldSpec(_bool, "the first frame names a file"),
    "expectedTracebackFilename": FieldSpec(_str, "some frame has this file name"),
    "expectedErrorFilename": FieldSpec(_str, "the error's file name"),
    "expectedFnName": FieldSpec(_str, "name of the first host call"),
    "expectedArgs": FieldSpec(_list, "positional arguments of the first host call"),
    "expectedKwargs": FieldSpec(
        _dict, "keyword arguments of the first host call (null: none)", null_is_value=True
    ),
    "expectedDistinctCallIds": FieldSpec(_bool, "every host call has its own call id"),
    "expectedMethodCall": FieldSpec(_bool, "the first host call is a namespaced call"),
    "expectedCalls": FieldSpec(_expected_calls, "every host call, in order"),
    "expectedStdout": FieldSpec(_str, "the exact captured stdout"),
    "expectedStderr": FieldSpec(_str, "the exact captured stderr"),
    "expectedEventTypes": FieldSpec(_event_types, "the event types, in order"),
    "expectRejected": FieldSpec(_str, "execute() must be rejected; substring of the error"),
}

#: Fields of a step (an item of ``steps`` or of ``concurrent``).
STEP_FIELDS: dict[str, FieldSpec] = {
    **_RUN_FIELDS,
    "limits": FieldSpec(_limits, "per-call limits for this execute() (replace the case's)"),
    "note": FieldSpec(_str, "free text"),
    **EXPECTATION_FIELDS,
}

#: Fields of a case (top level).  A case without ``steps``/``concurrent`` also takes
#: the run and expectation fields at its top level.
CASE_FIELDS: dict[str, FieldSpec] = {
    "id": FieldSpec(_int, "unique within the corpus"),
    "tier": FieldSpec(_int, "group number"),
    "name": FieldSpec(_str, "short description"),
    "description": FieldSpec(_str, "longer description"),
    "nativeOnly": FieldSpec(_bool, "the original project ran it natively only"),
    "xfail": FieldSpec(_str, "the original project's reason for an expected failure in Monty"),
    "externalFunctions": FieldSpec(_identifier_list, "host functions to register"),
    "resumeValues": FieldSpec(_list, "values returned by the k-th host call"),
    "resumeErrors": FieldSpec(_resume_errors, "errors raised by the k-th host call"),
    "asyncResumeMap": FieldSpec(_index_map(None), "call index -> value (awaitable host call)"),
    "asyncErrorMap": FieldSpec(_index_map(_error_spec), "call index -> error (awaitable)"),
    "hostSchemas": FieldSpec(_host_schemas, "typed parameters of host functions"),
    "hostDelays": FieldSpec(_host_delays, "seconds a host function takes to answer"),
    "sandbox": FieldSpec(_bool, "MontyRuntime(sandbox=True)"),
    "limits": FieldSpec(_limits, "MontyRuntime(limits=...)"),
    "steps": FieldSpec(_list, "executions in order on one runtime"),
    "concurrent": FieldSpec(_list, "two executions, the second started while the first waits"),
    **_RUN_FIELDS,
    **EXPECTATION_FIELDS,
}


# -- the model ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One ``execute()`` of a case, or (``concurrent`` set) two overlapping ones."""

    index: int
    code: str = ""
    script_name: str | None = None
    inputs: Mapping[str, Any] | None = None
    limits: Mapping[str, Any] | None = None
    expect: Mapping[str, Any] = field(default_factory=dict)
    concurrent: tuple[Step, Step] | None = None

    @property
    def label(self) -> str:
        return f"step {self.index + 1}"


@dataclass(frozen=True, slots=True)
class Case:
    """A validated case.  ``raw`` is the JSON object exactly as loaded (a backend that
    runs cases elsewhere, e.g. in a browser, may ship it as is)."""

    corpus: str
    id: int
    name: str
    source: str
    raw: Mapping[str, Any]
    steps: tuple[Step, ...]
    tier: int | None = None
    external_functions: tuple[str, ...] = ()
    resume_values: tuple[Any, ...] = ()
    resume_errors: tuple[Any, ...] = ()
    async_resume_map: Mapping[str, Any] = field(default_factory=dict)
    async_error_map: Mapping[str, Any] = field(default_factory=dict)
    host_schemas: Mapping[str, Any] = field(default_factory=dict)
    host_delays: Mapping[str, float] = field(default_factory=dict)
    sandbox: bool = False
    limits: Mapping[str, Any] | None = None
    xfail: str | None = None
    native_only: bool = False
    #: True when the case was written with ``steps``/``concurrent`` (not one ``code``).
    multi_step: bool = False

    @property
    def key(self) -> str:
        """``corpus#id``: unique across the corpora of a run."""
        return f"{self.corpus}#{self.id}"

    @property
    def title(self) -> str:
        return f"{self.key} {self.name}"

    def flat_steps(self) -> list[tuple[str, Step]]:
        """Every single execution, in run order, with a label for reports."""
        out: list[tuple[str, Step]] = []
        for step in self.steps:
            if step.concurrent is not None:
                a, b = step.concurrent
                out.append((f"{step.label}a (concurrent, first)", a))
                out.append((f"{step.label}b (concurrent, second)", b))
            else:
                out.append((step.label if self.multi_step else "", step))
        return out


# -- parsing -----------------------------------------------------------------------------


def _present(obj: Mapping[str, Any], specs: Mapping[str, FieldSpec]) -> dict[str, Any]:
    """The fields of ``obj`` that count as given: ``null`` means absent unless the field
    gives ``null`` a meaning of its own."""
    return {
        k: v for k, v in obj.items() if v is not None or (k in specs and specs[k].null_is_value)
    }


def _check_fields(
    obj: Mapping[str, Any], specs: Mapping[str, FieldSpec], where: str, problems: list[str]
) -> None:
    for key, value in obj.items():
        spec = specs.get(key)
        if spec is None:
            problems.append(f"{where}: unknown field {key!r}")
            continue
        if value is None:
            continue
        problem = spec.check(value)
        if problem:
            problems.append(f"{where}: field {key!r} {problem}")


def _parse_step(
    obj: Any, index: int, where: str, problems: list[str], allow_concurrent: bool
) -> Step | None:
    if isinstance(obj, str):
        obj = {"code": obj}
    if not isinstance(obj, dict):
        problems.append(f"{where}: must be an object (or a code string)")
        return None
    if "concurrent" in obj:
        if not allow_concurrent:
            problems.append(f"{where}: concurrent steps cannot be nested")
            return None
        extra = set(obj) - {"concurrent", "note"}
        if extra:
            problems.append(
                f"{where}: a concurrent step holds only 'concurrent' (and 'note'), "
                f"not {sorted(extra)}"
            )
            return None
        pair = _parse_concurrent(obj["concurrent"], where, problems)
        return None if pair is None else Step(index=index, concurrent=pair)
    _check_fields(obj, STEP_FIELDS, where, problems)
    given = _present(obj, STEP_FIELDS)
    code = given.get("code")
    if not isinstance(code, str):
        problems.append(f"{where}: missing code")
        return None
    return Step(
        index=index,
        code=code,
        script_name=given.get("scriptName"),
        inputs=given.get("inputs"),
        limits=given.get("limits"),
        expect={k: v for k, v in given.items() if k in EXPECTATION_FIELDS},
    )


def _parse_concurrent(value: Any, where: str, problems: list[str]) -> tuple[Step, Step] | None:
    if not isinstance(value, list) or len(value) != 2:
        problems.append(f"{where}: 'concurrent' must be a list of exactly two steps")
        return None
    a = _parse_step(value[0], 0, f"{where}: concurrent[0]", problems, False)
    b = _parse_step(value[1], 1, f"{where}: concurrent[1]", problems, False)
    if a is None or b is None:
        return None
    return (a, b)


def parse_case(obj: Any, corpus: str, source: str, position: int) -> Case:
    """Validate one case object; raises :class:`CorpusError` naming ``source`` and the
    case."""
    problems: list[str] = []
    if not isinstance(obj, dict):
        raise CorpusError([f"{source}: item {position} is not a JSON object"])
    ident = obj.get("id")
    label = f"case id={ident!r}" if ident is not None else f"item {position}"
    if obj.get("name"):
        label += f" ({obj['name']!r})"
    where = f"{source}: {label}"
    _check_fields(obj, CASE_FIELDS, where, problems)
    if not _is_int(ident):
        problems.append(f"{where}: missing or non-integer id")
    given = _present(obj, CASE_FIELDS)
    steps: list[Step] = []
    multi = "steps" in given or "concurrent" in given
    if multi:
        # Run/expectation fields belong in the steps: refuse them at the top level
        # (ladder-style defaults -- null, false -- are tolerated).
        misplaced = sorted(
            k
            for k, v in given.items()
            if (k in _RUN_FIELDS or k in EXPECTATION_FIELDS) and v is not False
        )
        if misplaced:
            problems.append(
                f"{where}: field(s) {misplaced} belong in the steps when 'steps' or "
                f"'concurrent' is used"
            )
        if "steps" in given and "concurrent" in given:
            problems.append(
                f"{where}: use either 'steps' or 'concurrent' (a {{\"concurrent\": [...]}} "
                f"item may appear inside steps)"
            )
        elif "steps" in given and isinstance(given["steps"], list):
            if not given["steps"]:
                problems.append(f"{where}: 'steps' is empty")
            for i, item in enumerate(given["steps"]):
                step = _parse_step(item, i, f"{where}: steps[{i}]", problems, True)
                if step is not None:
                    steps.append(step)
        elif "concurrent" in given:
            pair = _parse_concurrent(given["concurrent"], where, problems)
            if pair is not None:
                steps.append(Step(index=0, concurrent=pair))
    else:
        code = given.get("code")
        if not isinstance(code, str):
            problems.append(f"{where}: missing code")
        else:
            steps.append(
                Step(
                    index=0,
                    code=code,
                    script_name=given.get("scriptName"),
                    inputs=given.get("inputs"),
                    expect={k: v for k, v in given.items() if k in EXPECTATION_FIELDS},
                )
            )
    names = set(given.get("externalFunctions") or ())
    for fld in ("hostSchemas", "hostDelays"):
        value = given.get(fld)
        if isinstance(value, dict):
            unknown = sorted(set(value) - names)
            if unknown:
                problems.append(
                    f"{where}: {fld} names {unknown}, which are not in externalFunctions"
                )
    if problems:
        raise CorpusError(problems)
    return Case(
        corpus=corpus,
        id=int(ident),  # type: ignore[arg-type]
        name=str(given.get("name") or f"case {ident}"),
        source=source,
        raw=obj,
        steps=tuple(steps),
        tier=given.get("tier"),
        external_functions=tuple(given.get("externalFunctions") or ()),
        resume_values=tuple(given.get("resumeValues") or ()),
        resume_errors=tuple(given.get("resumeErrors") or ()),
        async_resume_map=dict(given.get("asyncResumeMap") or {}),
        async_error_map=dict(given.get("asyncErrorMap") or {}),
        host_schemas=dict(given.get("hostSchemas") or {}),
        host_delays=dict(given.get("hostDelays") or {}),
        sandbox=bool(given.get("sandbox", False)),
        limits=given.get("limits"),
        xfail=given.get("xfail"),
        native_only=bool(given.get("nativeOnly", False)),
        multi_step=multi,
    )


def _reject_constants(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def load_corpus(path: str | os.PathLike[str], name: str | None = None) -> list[Case]:
    """Load and validate every ``*.json`` file of the directory ``path`` (or one file).

    Raises :class:`CorpusError` listing every problem (bad JSON, unknown field, missing
    code, duplicate id within the corpus, ...), each naming its file and case.
    """
    root = Path(path)
    corpus = name or _corpus_name(root)
    if root.is_dir():
        files = sorted(p for p in root.glob("*.json") if p.is_file())
        if not files:
            raise CorpusError([f"{root}: no *.json case files in this directory"])
    elif root.is_file():
        files = [root]
    else:
        raise CorpusError([f"{root}: corpus directory not found"])
    problems: list[str] = []
    cases: list[Case] = []
    seen: dict[int, str] = {}
    for file in files:
        source = str(file)
        try:
            data = json.loads(file.read_text(encoding="utf-8"), parse_constant=_reject_constants)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problems.append(f"{source}: not valid JSON: {exc}")
            continue
        if not isinstance(data, list):
            problems.append(f"{source}: must hold a JSON array of cases")
            continue
        for position, obj in enumerate(data):
            try:
                case = parse_case(obj, corpus, source, position)
            except CorpusError as exc:
                problems.extend(exc.problems)
                continue
            if case.id in seen:
                problems.append(
                    f"{source}: case id={case.id} ({case.name!r}): duplicate id in corpus "
                    f"{corpus!r} (also in {seen[case.id]})"
                )
                continue
            seen[case.id] = source
            cases.append(case)
    if problems:
        raise CorpusError(problems)
    return cases


def _corpus_name(root: Path) -> str:
    resolved = root.resolve()
    if resolved.name == "cases" and resolved.parent.name == "conformance":
        return PROJECT_CORPUS
    return resolved.stem if resolved.is_file() else resolved.name


# -- locating the corpora ------------------------------------------------------------------


def find_repo_root(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The project's root: the nearest directory (upward from ``start``, else from the
    current directory, then from this package) holding ``tests/conformance``."""
    starts: list[Path] = []
    if start is not None:
        starts.append(Path(start).resolve())
    else:
        starts.append(Path.cwd().resolve())
        starts.append(Path(__file__).resolve().parent)
    for base in starts:
        for d in (base, *base.parents):
            if (d / "tests" / "conformance").is_dir() and (d / "pyproject.toml").is_file():
                return d
    return None


def find_ladder(repo_root: str | os.PathLike[str] | None = None) -> Path | None:
    """The python ladder, an external corpus: ``$MONTY_LADDER`` when it is set, else
    None.  It is never looked for on disk: the project's tests pass from its own tree,
    and an external corpus is an input the caller names (``--corpus`` or
    ``$MONTY_LADDER``; ``.ci/run`` sets ``$MONTY_LADDER`` when
    ``../shared/fixtures/python_ladder`` exists beside the checkout).  ``repo_root`` is
    accepted for compatibility and ignored."""
    del repo_root
    env = os.environ.get(LADDER_ENV)
    return Path(env) if env else None


@dataclass(frozen=True, slots=True)
class CorpusSpec:
    """A corpus to load: its name and directory."""

    name: str
    path: Path

    @classmethod
    def parse(cls, text: str) -> CorpusSpec:
        """``DIR`` or ``NAME=DIR``."""
        name, sep, path = text.partition("=")
        if sep and name.isidentifier() and path:
            return cls(name, Path(path))
        p = Path(text)
        return cls(_corpus_name(p), p)


def default_corpora(repo_root: str | os.PathLike[str] | None = None) -> list[CorpusSpec]:
    """The project's corpus (``tests/conformance/cases``), plus the python ladder when
    ``$MONTY_LADDER`` names it.  Raises :class:`CorpusError` when the project's corpus
    cannot be found, or ``$MONTY_LADDER`` is set to a missing directory (never runs a
    partial corpus silently)."""
    root = Path(repo_root).resolve() if repo_root is not None else find_repo_root()
    problems: list[str] = []
    out: list[CorpusSpec] = []
    if root is None:
        problems.append(
            "project corpus not found: no tests/conformance above the current "
            "directory; pass --corpus DIR"
        )
    else:
        out.append(CorpusSpec(PROJECT_CORPUS, root / "tests" / "conformance" / "cases"))
    ladder = find_ladder()
    if ladder is not None:
        if ladder.is_dir():
            out.append(CorpusSpec(LADDER_CORPUS, ladder))
        else:
            problems.append(f"${LADDER_ENV}={ladder}: no such directory")
    if problems:
        raise CorpusError(problems)
    return out


# -- expectations ----------------------------------------------------------------------------


def _covers(entry: str, backend: str) -> bool:
    """Whether an expectation naming ``entry`` applies to the column ``backend``
    (``chromium`` covers ``chromium-noniso`` too)."""
    return entry in ("all", backend) or backend.startswith(entry + "-")


@dataclass(frozen=True, slots=True)
class ExpectedDifference:
    """A case whose result is expected to differ from its corpus's expectation."""

    corpus: str
    id: int
    backends: frozenset[str]  # names, or {"all"}
    reason: str

    def applies_to(self, backend: str) -> bool:
        return "all" in self.backends or any(_covers(b, backend) for b in self.backends)


@dataclass(frozen=True, slots=True)
class Expectations:
    """The expectations file: expected differences by ``(corpus, id)``."""

    entries: tuple[ExpectedDifference, ...] = ()
    source: str = ""

    def lookup(self, case: Case, backend: str) -> ExpectedDifference | None:
        for entry in self.entries:
            if entry.corpus == case.corpus and entry.id == case.id and entry.applies_to(backend):
                return entry
        return None

    def check_against(self, cases: Iterable[Case]) -> None:
        """Every entry whose corpus was loaded must name an existing case."""
        loaded = {(c.corpus, c.id) for c in cases}
        corpora = {c for c, _ in loaded}
        problems = [
            f"{self.source}: expected difference {e.corpus}#{e.id} names no case of the "
            f"corpus {e.corpus!r}"
            for e in self.entries
            if e.corpus in corpora and (e.corpus, e.id) not in loaded
        ]
        if problems:
            raise CorpusError(problems)


def load_expectations(path: str | os.PathLike[str] | None) -> Expectations:
    """Load the expectations file (JSON): ``{"differences": [{"corpus", "id",
    "backend": "all" | "native" | "chromium" | [...], "reason"}]}``.  ``None`` or a
    missing default file gives no expected differences."""
    if path is None:
        return Expectations()
    file = Path(path)
    source = str(file)
    try:
        data = json.loads(file.read_text(encoding="utf-8"), parse_constant=_reject_constants)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CorpusError([f"{source}: cannot read expectations: {exc}"]) from None
    problems: list[str] = []
    if not isinstance(data, dict) or not isinstance(data.get("differences"), list):
        raise CorpusError([f'{source}: must be an object with a "differences" list'])
    unknown_top = set(data) - {"differences", "note", "version"}
    if unknown_top:
        problems.append(f"{source}: unknown field(s) {sorted(unknown_top)}")
    entries: list[ExpectedDifference] = []
    seen: set[tuple[str, int, str]] = set()
    for i, item in enumerate(data["differences"]):
        where = f"{source}: differences[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be an object")
            continue
        unknown = set(item) - {"corpus", "id", "backend", "reason"}
        if unknown:
            problems.append(f"{where}: unknown field(s) {sorted(unknown)}")
        corpus, raw_id, reason = item.get("corpus"), item.get("id"), item.get("reason")
        backend = item.get("backend", "all")
        backends = [backend] if isinstance(backend, str) else backend
        if not isinstance(corpus, str) or not corpus:
            problems.append(f"{where}: missing corpus")
            continue
        if not _is_int(raw_id):
            problems.append(f"{where}: missing or non-integer id")
            continue
        ident = int(raw_id)  # type: ignore[arg-type]
        if not isinstance(reason, str) or not reason.strip():
            problems.append(f"{where} ({corpus}#{ident}): a reason is required")
        if (
            not isinstance(backends, list)
            or not backends
            or not all(b in (*BACKEND_NAMES, "all") for b in backends)
        ):
            problems.append(
                f"{where} ({corpus}#{ident}): backend must be 'all' or among {list(BACKEND_NAMES)}"
            )
            continue
        for b in backends:
            clash = [
                k
                for k in seen
                if k[:2] == (corpus, ident) and (_covers(b, k[2]) or _covers(k[2], b))
            ]
            if (corpus, ident, b) in seen or clash:
                problems.append(f"{where}: {corpus}#{ident} is listed twice for {b!r}")
            seen.add((corpus, ident, b))
        entries.append(ExpectedDifference(corpus, ident, frozenset(backends), str(reason or "")))
    if problems:
        raise CorpusError(problems)
    return Expectations(tuple(entries), source)
