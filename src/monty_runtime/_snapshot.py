"""Python-side steps around a memory snapshot of the browser worker (``web/page/snapshot.js``).

A worker that boots cold imports :mod:`monty_runtime.worker` and this module, then
(when asked) the page-independent interpreter is snapshotted; later workers restore that
memory instead of booting.  Everything page-specific (the session, host functions, the
hooks into JavaScript, the import guard) is set up by ``monty_runtime.worker.start()``,
after the snapshot point, on both paths.

Two things in a restored memory are not right as they are, and :func:`after_restore`
fixes them before anything else runs:

* every restored worker would share the snapshot's ``random`` state (the same
  "random" numbers in every runtime): the module-level generator is reseeded from the
  operating system;
* Pyodide's Python-side table of installed packages points at an empty JavaScript
  object of the snapshot; it is pointed at the live ``pyodide.loadedPackages`` again
  and refilled from site-packages (whose files the worker wrote back), so that
  ``loadPackage``/micropip see what is installed, as after a cold boot.

What cannot be changed after start-up is shared by all workers restored from one
snapshot: the ``str`` hash seed (``PYTHONHASHSEED``), so set iteration order is the
same in each of them.
"""

from __future__ import annotations

import sys

__all__ = ["after_restore", "check_clean"]


def check_clean() -> str | None:
    """Why this interpreter must not be snapshotted now (page-specific state exists),
    or ``None``."""
    worker = sys.modules.get("monty_runtime.worker")
    if worker is None:
        return "monty_runtime.worker is not imported"
    if getattr(worker, "_session", None) is not None:
        return "a worker session already exists"
    return None


def _reseed() -> None:
    random = sys.modules.get("random")
    if random is not None:
        random.seed()


def _relink_packages() -> None:
    if sys.platform != "emscripten":
        return
    loader = sys.modules.get("pyodide._package_loader")
    if loader is None:
        return
    try:
        import pyodide_js  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - always there in Pyodide
        return
    loader.loadedPackages = pyodide_js.loadedPackages
    loader.init_loaded_packages()


def after_restore() -> str | None:
    """Run right after a restore, before the session starts.  Returns why the restored
    interpreter is unusable (the worker then boots cold), or ``None``."""
    if "monty_runtime.worker" not in sys.modules:
        return "the snapshot does not hold monty_runtime.worker"
    problem = check_clean()
    if problem is not None:
        return problem
    _reseed()
    try:
        _relink_packages()
    except Exception as exc:  # a stale package table is not fatal
        print(f"monty_runtime: could not relink Pyodide's package table: {exc}",
              file=sys.stderr)
    return None
