"""Host functions and extensions.

A *host function* is a function of the application that executed code may call.  Its
parameters are described by a JSON Schema derived from the type hints, exposed as
``MontyRuntime.schemas`` (so the same description can be given to the model) and
checked at every call: a bad call is a ``TypeError`` inside the executed code, never a
crash of the host.

An *extension* bundles host functions under a namespace (``weather.forecast(...)`` in
executed code) with a lifecycle: ``on_attach`` runs once before the first execution,
``on_dispose`` at ``dispose()``, in reverse order of attachment.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from ._names import is_identifier

if TYPE_CHECKING:
    from .runtime import MontyRuntime

__all__ = ["Extension", "HostFunction", "schema_for_annotation", "validate"]

JsonSchema = dict[str, Any]


def schema_for_annotation(annotation: Any) -> JsonSchema:
    """JSON Schema for a type hint.  Unknown or missing hints give ``{}`` (anything):
    the schema is a contract for the model and a guard for the host, not a type system.
    """
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is object:
        return {}
    if annotation is None or annotation is type(None):
        return {"type": "null"}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    if annotation is str:
        return {"type": "string"}
    if annotation is bytes:
        return {"x-python-type": "bytes"}
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Literal:
        return {"enum": list(args)}
    if origin is Union or origin is types.UnionType:
        return {"anyOf": [schema_for_annotation(a) for a in args]}
    if annotation in (list, tuple, set, frozenset) or origin in (
        list,
        set,
        frozenset,
        Sequence,
        typing.Sequence,
    ):
        schema: JsonSchema = {"type": "array"}
        if args:
            schema["items"] = schema_for_annotation(args[0])
        return schema
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": schema_for_annotation(args[0])}
        return {
            "type": "array",
            "prefixItems": [schema_for_annotation(a) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    if annotation is dict or origin in (dict, Mapping, typing.Mapping):
        schema = {"type": "object"}
        if len(args) == 2:
            schema["additionalProperties"] = schema_for_annotation(args[1])
        return schema
    return {}


_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list | tuple),
    "object": lambda v: isinstance(v, dict),
}


def _type_name(value: Any) -> str:
    return type(value).__name__


def validate(schema: JsonSchema, value: Any, where: str) -> None:
    """Check ``value`` against the subset of JSON Schema that :func:`schema_for_annotation`
    produces (type, enum, anyOf, items, prefixItems, additionalProperties, properties,
    required).  Raises ``TypeError`` naming ``where`` and what was expected."""
    if not schema:
        return
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            try:
                validate(option, value, where)
                return
            except TypeError:
                continue
        raise TypeError(f"{where}: {_type_name(value)} does not match {schema}")
    if "enum" in schema:
        if value not in schema["enum"] or any(
            isinstance(value, bool) != isinstance(e, bool) for e in schema["enum"] if e == value
        ):
            raise TypeError(f"{where} must be one of {schema['enum']!r}, got {value!r:.80}")
        return
    expected = schema.get("type")
    if expected is not None:
        check = _JSON_TYPES.get(expected)
        if check is not None and not check(value):
            raise TypeError(f"{where} must be {expected}, got {_type_name(value)}")
    if schema.get("x-python-type") == "bytes" and not isinstance(value, bytes | bytearray):
        raise TypeError(f"{where} must be bytes, got {_type_name(value)}")
    if isinstance(value, list | tuple):
        prefix = schema.get("prefixItems")
        if prefix is not None:
            if len(value) != len(prefix):
                raise TypeError(f"{where} must have {len(prefix)} items, got {len(value)}")
            for i, (item_schema, item) in enumerate(zip(prefix, value, strict=True)):
                validate(item_schema, item, f"{where}[{i}]")
        elif "items" in schema:
            for i, item in enumerate(value):
                validate(schema["items"], item, f"{where}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                raise TypeError(f"{where} is missing required key {key!r}")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                validate(props[key], item, f"{where}[{key!r}]")
            elif isinstance(extra, dict):
                validate(extra, item, f"{where}[{key!r}]")


@dataclass(frozen=True, slots=True)
class HostFunction:
    """A function of the host application that executed code may call.

    Build one with :meth:`from_callable` (schema from type hints) or directly with an
    explicit JSON Schema ``parameters`` object.  ``fn`` may be sync or ``async``.
    """

    name: str
    fn: Callable[..., Any]
    description: str = ""
    parameters: JsonSchema = field(default_factory=lambda: {"type": "object", "properties": {}})
    signature: inspect.Signature | None = field(default=None, compare=False, repr=False)
    is_async: bool = False

    @classmethod
    def from_callable(
        cls,
        fn: Callable[..., Any] | HostFunction,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> HostFunction:
        """Describe ``fn``: its name, its docstring's first paragraph as description, and
        a JSON Schema of its parameters from its type hints."""
        if isinstance(fn, HostFunction):
            return fn if name is None else cls._renamed(fn, name)
        if not callable(fn):
            raise TypeError(f"host function must be callable, got {type(fn).__name__}")
        fname = name if name is not None else getattr(fn, "__name__", None)
        if not isinstance(fname, str) or not fname:
            raise TypeError(f"cannot name host function {fn!r}; pass name=")
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            sig = None
        try:
            hints = typing.get_type_hints(fn)
        except Exception:
            hints = {}
        properties: dict[str, JsonSchema] = {}
        required: list[str] = []
        if sig is not None:
            for pname, param in sig.parameters.items():
                if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                    continue
                properties[pname] = schema_for_annotation(hints.get(pname, param.annotation))
                if param.default is param.empty:
                    required.append(pname)
        params: JsonSchema = {"type": "object", "properties": properties}
        if required:
            params["required"] = required
        doc = description if description is not None else inspect.getdoc(fn) or ""
        return cls(
            name=fname,
            fn=fn,
            description=doc.split("\n\n")[0].strip(),
            parameters=params,
            signature=sig,
            is_async=inspect.iscoroutinefunction(fn)
            or inspect.iscoroutinefunction(type(fn).__call__),
        )

    @classmethod
    def _renamed(cls, hf: HostFunction, name: str) -> HostFunction:
        return cls(hf.name if name is None else name, hf.fn, hf.description, hf.parameters,
                   hf.signature, hf.is_async)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Check a call's arguments against the signature and the schema.  Raises
        ``TypeError`` with a message fit for the executed code (and the model) to read."""
        props: dict[str, JsonSchema] = self.parameters.get("properties", {})
        if self.signature is not None:
            try:
                bound = self.signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"{self.name}(): {exc}") from None
            for pname, value in bound.arguments.items():
                if pname in props:
                    validate(props[pname], value, f"{self.name}() argument {pname!r}")
            return
        # No Python signature (a schema-only function, e.g. from JS): bind by schema.
        names = list(props)
        if len(args) > len(names):
            raise TypeError(
                f"{self.name}() takes {len(names)} positional arguments but {len(args)} were given"
            )
        values = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in props:
                raise TypeError(f"{self.name}() got an unexpected keyword argument {key!r}")
            if key in values:
                raise TypeError(f"{self.name}() got multiple values for argument {key!r}")
            values[key] = value
        for key in self.parameters.get("required", []):
            if key not in values:
                raise TypeError(f"{self.name}() missing required argument: {key!r}")
        for key, value in values.items():
            validate(props[key], value, f"{self.name}() argument {key!r}")

    def to_schema(self) -> dict[str, Any]:
        """OpenAI-style function description: ``{name, description, parameters}``."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


class Extension:
    """A bundle of host functions under one namespace, with a lifecycle.

    Subclass it, set ``namespace`` and override :meth:`functions`; executed code calls
    ``<namespace>.<function>(...)``.  ``on_attach`` runs once, before the first execution
    (so constructing a runtime stays cheap); ``on_dispose`` runs at ``dispose()``, in the
    reverse order of attachment.  Both may be sync or async.  Errors from either are
    collected and reported (``on_attach``: the first execution fails with ``StateError``;
    ``on_dispose``: ``dispose()`` raises an ``ExceptionGroup`` after disposing the rest).
    """

    namespace: str = ""

    def functions(self) -> Sequence[HostFunction | Callable[..., Any]]:
        """The host functions of this extension (plain callables are described with
        :meth:`HostFunction.from_callable`)."""
        return ()

    def on_attach(self, runtime: MontyRuntime) -> Any:
        """Called once before the runtime's first execution."""
        return None

    def on_dispose(self, runtime: MontyRuntime) -> Any:
        """Called at ``dispose()``."""
        return None

    def host_functions(self) -> list[HostFunction]:
        """The functions, described and named ``<namespace>.<name>``; checks the
        namespace and that no function claims another namespace."""
        ns = self.namespace
        if not isinstance(ns, str) or not is_identifier(ns):
            raise ValueError(
                f"{type(self).__name__}.namespace must be a Python identifier, got {ns!r}"
            )
        out: list[HostFunction] = []
        for item in self.functions():
            hf = HostFunction.from_callable(item)
            short = hf.name
            if "." in short:
                prefix, _, short = short.rpartition(".")
                if prefix != ns:
                    raise ValueError(
                        f"function {hf.name!r} of extension {type(self).__name__} is not in "
                        f"its namespace {ns!r}"
                    )
            if not is_identifier(short):
                raise ValueError(f"host function name {short!r} is not a Python identifier")
            out.append(HostFunction._renamed(hf, f"{ns}.{short}"))
        return out
