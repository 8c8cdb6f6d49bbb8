"""The import guard: executed code cannot import the JavaScript bridge modules.

In the browser worker, Pyodide's ``js`` (the worker's global object), ``pyodide_js``
(Pyodide's API), ``pyodide.ffi``/``pyodide.code``/``pyodide.http``, ``_pyodide``,
``micropip`` and the runtime's own ``monty_runtime`` (whose worker module holds the
page channel) are one ``import`` away from executed code.  This module refuses them:

* every REPL gets its own ``__builtins__`` (a copy of :mod:`builtins` as a module)
  whose ``__import__`` refuses the denied names, so the ``import`` statement (and
  ``__import__``, ``exec``/``eval`` of source, functions defined by the code) refuses
  them even though they are already in ``sys.modules``;
* ``importlib.import_module`` and ``importlib.__import__`` refuse them when called
  directly from executed code;
* ``import builtins`` gives executed code its own guarded builtins module.

The runtime itself and the libraries it calls keep using these modules: they run with
the real builtins, and the guard looks only at the frame that asks for the import.

**This is defence in depth, not a boundary.**  Python code can walk the object graph
(``sys.modules["js"]``, ``gc.get_objects()``, a module's ``__builtins__``, the
attributes of the host function objects...) and reach the same objects without an
``import``.  In the browser the boundary is the worker's Content-Security-Policy, the
JavaScript APIs removed from the worker after boot (``web/worker/lockdown.js``) and a page
that trusts no worker message.  Natively the guard is off (executed code is trusted
there); :func:`enable` turns it on for every REPL created afterwards in the process.
"""

from __future__ import annotations

import builtins
import importlib
import sys
import types
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "DENIED_MODULES",
    "disable",
    "enable",
    "enabled",
    "guarded_builtins",
    "is_denied",
]

#: Top-level names refused to executed code, with all their submodules.
DENIED_MODULES: tuple[str, ...] = (
    "js",
    "pyodide_js",
    "pyodide",
    "_pyodide",
    "_pyodide_core",
    "micropip",
    "monty_runtime",
)

_real_import: Callable[..., Any] = builtins.__import__
_enabled = False
_patched: dict[str, Callable[..., Any]] = {}
# id(namespace) -> the guarded builtins module owning it: code run by exec() with
# fresh globals sees the namespace (a dict) as its ``__builtins__``, not the module.
_modules: weakref.WeakValueDictionary[int, types.ModuleType] = weakref.WeakValueDictionary()


def is_denied(name: str, denied: Sequence[str] = DENIED_MODULES) -> bool:
    """Whether the absolute module name ``name`` is, or is inside, a denied module."""
    return any(name == root or name.startswith(root + ".") for root in denied)


def _absolute(name: str, globals: Mapping[str, Any] | None, level: int) -> str:
    """The absolute name an ``import`` asks for (resolving ``from . import x``)."""
    if level <= 0:
        return name
    package = None
    if globals is not None:
        package = globals.get("__package__")
        if package is None:
            spec = globals.get("__spec__")
            package = getattr(spec, "parent", None)
    if not isinstance(package, str) or not package:
        return name  # the real import raises "no known parent package"
    bits = package.rsplit(".", level - 1)
    base = bits[0] if len(bits) >= level else package
    return f"{base}.{name}" if name else base


def _refuse(name: str) -> ImportError:
    return ImportError(
        f"import of {name!r} is not allowed in this runtime "
        "(executed code reaches the page only through its host functions)",
        name=name,
    )


def _guarded_import(
    name: str,
    globals: Mapping[str, Any] | None = None,
    locals: Mapping[str, Any] | None = None,
    fromlist: Sequence[str] | None = (),
    level: int = 0,
) -> Any:
    """``__import__`` of executed code: the real one, minus the denied modules."""
    target = _absolute(name, globals, level)
    if is_denied(target):
        raise _refuse(target)
    if target == "builtins" and globals is not None:
        # ``import builtins`` gives the code its own guarded builtins, not the real
        # module (whose ``__import__`` is unguarded).
        own = _own_builtins(globals.get("__builtins__"))
        if own is not None:
            return own
    if fromlist and target:
        for item in fromlist:
            if isinstance(item, str) and item != "*" and is_denied(f"{target}.{item}"):
                raise _refuse(f"{target}.{item}")
    return _real_import(name, globals, locals, fromlist or (), level)


def _own_builtins(value: Any) -> types.ModuleType | None:
    """The guarded builtins module that ``value`` (a globals' ``__builtins__``) is, or
    whose namespace it is; None for anything else."""
    if isinstance(value, types.ModuleType):
        return value if value.__dict__.get("__import__") is _guarded_import else None
    if isinstance(value, dict) and value.get("__import__") is _guarded_import:
        module = _modules.get(id(value))
        if module is None or module.__dict__ is not value:
            module = types.ModuleType("builtins", builtins.__doc__)
            module.__dict__.update(value)
        return module
    return None


def guarded_builtins() -> types.ModuleType:
    """A fresh ``__builtins__`` for one REPL: a module holding a copy of the builtins,
    with the guarded ``__import__`` (a per-REPL copy, so what one session does to its
    builtins does not reach another's)."""
    module = types.ModuleType("builtins", builtins.__doc__)
    namespace = dict(vars(builtins))
    for key in ("__loader__", "__spec__"):
        namespace.pop(key, None)
    namespace["__import__"] = _guarded_import
    module.__dict__.update(namespace)
    _modules[id(module.__dict__)] = module
    return module


def _is_user_frame(frame: types.FrameType | None) -> bool:
    """A frame of executed code: it runs with a guarded ``__builtins__``."""
    if frame is None:
        return False
    return frame.f_builtins.get("__import__") is _guarded_import


def _guard_importlib() -> None:
    """Make ``importlib.import_module``/``importlib.__import__`` refuse the denied
    modules when executed code calls them itself (other callers are unaffected)."""
    original_import_module = importlib.import_module
    original_dunder_import = importlib.__import__

    def import_module(name: str, package: str | None = None) -> types.ModuleType:
        caller = sys._getframe(1)
        if _is_user_frame(caller):
            target = name
            if name.startswith("."):
                level = len(name) - len(name.lstrip("."))
                target = _absolute(name[level:], {"__package__": package}, level)
            if is_denied(target):
                raise _refuse(target)
            if target == "builtins":
                return _guarded_import(target, caller.f_globals)  # type: ignore[no-any-return]
        return original_import_module(name, package)

    def dunder_import(
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> Any:
        if _is_user_frame(sys._getframe(1)):
            return _guarded_import(name, globals, locals, fromlist, level)
        return original_dunder_import(name, globals, locals, fromlist or (), level)

    import_module.__doc__ = original_import_module.__doc__
    import_module.__wrapped__ = original_import_module  # type: ignore[attr-defined]
    dunder_import.__doc__ = original_dunder_import.__doc__
    _patched["import_module"] = original_import_module
    _patched["__import__"] = original_dunder_import
    importlib.import_module = import_module
    importlib.__import__ = dunder_import


def _unguard_importlib() -> None:
    if "import_module" in _patched:
        importlib.import_module = _patched.pop("import_module")  # type: ignore[assignment]
    if "__import__" in _patched:
        importlib.__import__ = _patched.pop("__import__")


def enable() -> None:
    """Turn the guard on for every REPL created from now on (idempotent).  The
    browser worker calls this before its first REPL exists."""
    global _enabled
    from . import repl

    if _enabled:
        return
    _enabled = True
    repl.new_builtins = guarded_builtins
    _guard_importlib()


def disable() -> None:
    """Undo :func:`enable` (REPLs created meanwhile keep their guarded builtins)."""
    global _enabled
    from . import repl

    if not _enabled:
        return
    _enabled = False
    repl.new_builtins = repl.default_builtins
    _unguard_importlib()


def enabled() -> bool:
    return _enabled
