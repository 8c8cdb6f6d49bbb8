"""Release artifacts: ``python -m monty_dev package`` writes ``dist/`` at the project root.

* ``monty_runtime-<version>-py3-none-any.whl`` - the wheel users ``pip install``: the
  runtime package plus ``monty_runtime/_web/``, the web host in the export layout (the
  JS modules, ``dist/`` with the worker wheel and lock file, the four Pyodide files), so
  ``monty-runtime export`` and ``serve`` work from the installed package.  The worker
  wheel inside it (``_web/dist/``) is the small one ``python -m monty_dev build``
  writes, without ``_web/`` (two artifacts from one source).
* ``monty-runtime-<version>.tgz`` - the npm package (``npm pack`` of a staged folder):
  the same modules and ``dist/``, ``layout.js`` pointing at Pyodide beside the package
  (``../pyodide/``, the pinned dependency), the Vite plugin (``monty-runtime/vite``) and
  the ``monty-runtime`` command (``npx monty-runtime export DIR``), with package.json
  ``exports`` and types.

Both carry the version of ``monty_runtime.__version__`` (checked equal to
``web/package.json``'s by the tests).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monty_dev.build import BUILD_VENV, BuildError, _run, build, find_project_root
from monty_runtime._deploy import (
    EXPORT_LAYOUT_JS,
    HEADER_KINDS,
    PYODIDE_FILES,
    WebHost,
    _dist_files,
    module_graph,
    snippet,
    stage_runtime,
)

__all__ = ["NPM_LAYOUT_JS", "Packages", "package"]

NPM_LAYOUT_JS = """\
/**
 * Where the runtime's files are (the npm package): this folder holds the modules and
 * `dist/`; Pyodide is the pinned `pyodide` package beside this one. See layout.js in the
 * source.
 */
export const RUNTIME_DIR = new URL("./", import.meta.url).href;
export const PYODIDE_DIR = new URL("../pyodide/", import.meta.url).href;
"""


@dataclass
class Packages:
    wheel: Path
    npm: Path


def _checkout_host(project: Path) -> WebHost:
    web = project / "web"
    return WebHost(web, web / "dist", web / "node_modules" / "pyodide", False)


def _python_wheel(project: Path, out: Path) -> Path:
    host = _checkout_host(project)
    venv_python = project / BUILD_VENV / "bin" / "python"
    with tempfile.TemporaryDirectory(prefix="monty-package-") as tmp:
        source = Path(tmp) / "source"
        for name in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md"):
            if (project / name).is_file():
                source.mkdir(parents=True, exist_ok=True)
                shutil.copy2(project / name, source / name)
        shutil.copytree(
            project / "src",
            source / "src",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "_web"),
        )
        stage_runtime(host, source / "src" / "monty_runtime" / "_web")
        built = Path(tmp) / "out"
        _run(
            [str(venv_python), "-m", "build", "--wheel", "--no-isolation", "--outdir",
             str(built), str(source)],
            cwd=source,
            what="building the monty-runtime wheel (with the web host)",
        )
        wheels = sorted(built.glob("monty_runtime-*.whl"))
        if len(wheels) != 1:
            raise BuildError(f"expected one wheel, got {[w.name for w in wheels]}")
        out.mkdir(parents=True, exist_ok=True)
        target = out / wheels[0].name
        shutil.copyfile(wheels[0], target)
        return target


def _npm_package_json(project: Path, version: str) -> dict[str, Any]:
    web = json.loads((project / "web" / "package.json").read_text())
    pyodide = web["dependencies"]["pyodide"]
    return {
        "name": web["name"],
        "version": version,
        "description": web.get("description", ""),
        "license": web["license"],
        "type": "module",
        "main": "./monty-runtime.js",
        "types": "./monty-runtime.d.ts",
        "exports": {
            ".": {"types": "./monty-runtime.d.ts", "default": "./monty-runtime.js"},
            "./tools": {"types": "./tools.d.ts", "default": "./tools.js"},
            "./vite": {"types": "./vite.d.ts", "default": "./vite.js"},
            "./package.json": "./package.json",
        },
        "bin": {"monty-runtime": "./bin/monty-runtime.mjs"},
        "dependencies": {"pyodide": pyodide},
        "engines": {"node": ">=18"},
        "sideEffects": False,
    }


def _npm_package(project: Path, out: Path, version: str) -> Path:
    host = _checkout_host(project)
    npm_src = project / "web" / "npm"
    with tempfile.TemporaryDirectory(prefix="monty-npm-") as tmp:
        stage = Path(tmp) / "monty-runtime"
        for name in module_graph(host.modules):
            for rel in (name, str(Path(name).with_suffix(".d.ts"))):
                if (host.modules / rel).is_file():
                    (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(host.modules / rel, stage / rel)
        runtime_files = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
        (stage / "layout.js").write_text(NPM_LAYOUT_JS)
        for name in _dist_files(host.dist):
            (stage / "dist").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(host.dist / name, stage / "dist" / name)
            runtime_files.append(f"dist/{name}")
        # What `npx monty-runtime export` copies, and the header texts of the Python
        # package (placeholders for the parts a user chooses).
        holders = {"path": "/__MONTY_PATH__/", "root": "__MONTY_ROOT__",
                   "address": "__MONTY_ADDRESS__"}
        deploy = {
            "files": sorted(f for f in runtime_files if f != "layout.js"),
            "pyodideFiles": list(PYODIDE_FILES),
            "exportLayout": EXPORT_LAYOUT_JS,
            "placeholders": holders,
            "headers": {
                kind: snippet(kind, path=holders["path"], root=holders["root"],
                              address=holders["address"])
                for kind in HEADER_KINDS
            },
        }
        (stage / "deploy.json").write_text(json.dumps(deploy, indent=1) + "\n")
        for path in npm_src.rglob("*"):
            if path.is_file():
                target = stage / path.relative_to(npm_src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        (stage / "bin" / "monty-runtime.mjs").chmod(0o755)
        for name in ("LICENSE", "CHANGELOG.md"):
            shutil.copyfile(project / name, stage / name)
        (stage / "package.json").write_text(
            json.dumps(_npm_package_json(project, version), indent=2) + "\n"
        )
        out.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["npm", "pack", "--silent", "--pack-destination", str(out.resolve())],
            cwd=stage, capture_output=True, text=True, check=False,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise BuildError(f"npm pack failed: {proc.stderr.strip()[-2000:]}")
        name = proc.stdout.strip().splitlines()[-1]
        return out / name


def package(project: Path | None = None, *, out: Path | None = None) -> Packages:
    """Build web/dist, then the wheel users install and the npm package into ``out``
    (default ``<project>/dist``)."""
    root = find_project_root(project)
    build(root, log=lambda line: None)
    from monty_runtime import __version__

    target = out if out is not None else root / "dist"
    wheel = _python_wheel(root, target)
    npm = _npm_package(root, target, __version__)
    return Packages(wheel, npm)
