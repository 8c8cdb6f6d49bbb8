"""Web build: ``python -m monty_dev build`` (also ``python -m monty_runtime build`` in a
checkout).

Writes ``web/dist/``:

* ``monty_runtime-<version>-py3-none-any.whl`` - the wheel the worker installs: the
  runtime package without what never runs in a worker (``WORKER_WHEEL_EXCLUDES``: the
  web host payload, the command line, the dev server, the export);
* ``micropip-0.11.1-py3-none-any.whl`` and ``packaging-26.1-py3-none-any.whl`` - from
  PyPI (the versions Pyodide 314.0.7 expects), kept in a download cache so a rebuild
  works offline;
* ``pyodide-lock.json`` - Pyodide's own lock file (``web/node_modules/pyodide``) plus
  the three wheels above, written by ``pyodide lockfile add-wheels`` (pyodide-build).
  Every ``file_name`` in it is relative: the worker passes the lock file's directory
  as ``packageBaseUrl``, so packages resolve from the page's own origin;
* ``snapshot.bin`` and ``snapshot-jsc.bin`` - memory snapshots of a booted worker
  (Pyodide with monty_runtime imported), made in Deno from the files above by
  ``scripts/make-snapshot.mjs``: the first as V8 and SpiderMonkey boot Pyodide (JSPI on),
  the second as JavaScriptCore does (JSPI off, and its WebAssembly table's own function
  objects). A first visit restores the one whose engine traits are this engine's
  instead of booting cold (``web/page/snapshot.js``, ``engineTraits``);
* ``.gz``/``.br`` next to the snapshots, ``pyodide-lock.json`` and Pyodide's
  ``pyodide.asm.wasm``/``pyodide.asm.mjs`` (``scripts/precompress.mjs``), for servers
  that serve precompressed files (docs/first-visit.md);
* ``build-info.json`` - versions and hashes, for the page and the tests.

pyodide-build needs Python >= 3.12; it lives in a separate venv (``.venv-build``),
which also holds ``build``/``setuptools`` for the wheel, so that a rebuild needs no
network once that venv and the download cache exist.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EXTRA_WHEELS",
    "PYODIDE_VERSION",
    "BuildError",
    "BuildResult",
    "build",
    "find_build_python",
    "find_deno",
    "find_project_root",
]

PYODIDE_VERSION = "314.0.7"

# Wheels Pyodide 314.0.7 ships in its own lock file, taken from PyPI instead (PyPI's
# files differ from Pyodide's, so our lock file records these hashes).
EXTRA_WHEELS: dict[str, tuple[str, str]] = {
    # name: (version, sha256 of the PyPI wheel)
    "micropip": ("0.11.1", "768de165adb8e66906039d8fec4127a57f522dfdf8e6fbff877a4616941ecfd3"),
    "packaging": ("26.1", "5d9c0669c6285e491e0ced2eee587eaf67b670d94a19e94e3984a481aba6802f"),
}
DOWNLOAD_PYTHON_VERSION = "3.13"

# Tools installed into the build venv. pyodide-build < 0.30 (what pip picks on
# Python 3.11) has no working `pyodide lockfile add-wheels`; these are tested.
BUILD_REQUIREMENTS: tuple[str, ...] = (
    "pyodide-build==0.39.2",
    "pyodide-lock==0.2.1",
    "pyodide-cli==0.5.0",
    "pkginfo>=1.10",
    "build>=1.2",
    "setuptools>=68",
    "wheel>=0.42",
)
MIN_BUILD_PYTHON = (3, 12)
# Where find_build_python() looks after $MONTY_BUILD_PYTHON (and $PYENV_ROOT/versions).
PATH_PYTHONS: tuple[str, ...] = ("python3.13", "python3.12")
PYENV_GLOBS: tuple[str, ...] = ("/root/.pyenv/versions/3.1[2-9]*",)
BUILD_VENV = ".venv-build"
SNAPSHOT_FILE = "snapshot.bin"
#: The shipped snapshots: file name and make-snapshot.mjs's flags. Each is restored where
#: the engine's traits are those it was made with (web/shared/snapshot-format.js).
SNAPSHOTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (SNAPSHOT_FILE, ()),  # Chromium, Firefox (V8, SpiderMonkey: JSPI)
    ("snapshot-jsc.bin", ("--no-jspi", "--as-jsc")),  # WebKit (JavaScriptCore)
)
# Made by the snapshot step; a change to any of these makes a new snapshot.
SNAPSHOT_INPUTS: tuple[str, ...] = (
    "scripts/make-snapshot.mjs",
    "web/shared/snapshot-format.js",
    "web/worker/snapshot.js",
    "web/worker/boot.js",
    "web/shared/errors.js",
    "web/shared/hints.js",
    "web/layout.js",
    "web/node_modules/pyodide/pyodide.mjs",
    "web/node_modules/pyodide/pyodide.asm.mjs",
    "web/node_modules/pyodide/pyodide.asm.wasm",
    "web/node_modules/pyodide/python_stdlib.zip",
)
# Served precompressed (relative to web/); python_stdlib.zip is compressed already.
PRECOMPRESSED: tuple[str, ...] = (
    *(f"dist/{name}" for name, _flags in SNAPSHOTS),
    "dist/pyodide-lock.json",
    "node_modules/pyodide/pyodide.asm.wasm",
    "node_modules/pyodide/pyodide.asm.mjs",
)
STATE_FILE = ".build-state.json"

Log = Callable[[str], None]


class BuildError(RuntimeError):
    """A build failure with a message meant for the person running the build."""


@dataclass
class BuildResult:
    dist: Path
    wheel: Path
    lock_file: Path
    build_info: dict[str, Any]
    steps: list[tuple[str, str, float]] = field(default_factory=list)  # (name, status, s)


# --------------------------------------------------------------------------- helpers


def find_project_root(start: Path | None = None) -> Path:
    """The folder with pyproject.toml and web/package.json (from start, cwd, or here)."""
    candidates: list[Path] = []
    if start is not None:
        candidates.append(Path(start).resolve())
    candidates.append(Path.cwd().resolve())
    candidates.append(Path(__file__).resolve().parent)
    for base in candidates:
        for folder in (base, *base.parents):
            if (folder / "pyproject.toml").is_file() and (
                folder / "web" / "package.json"
            ).is_file():
                return folder
    raise BuildError(
        "cannot find the project folder (pyproject.toml next to web/package.json); "
        "run from inside the project or pass --project"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tree_digest(root: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(_sha256(path).encode())
        digest.update(b"\n")
    return digest.hexdigest()


#: Left out of the wheel the worker installs inside Pyodide: the web host it is served
#: by (``_web/``, only in the wheel users install), the command line, the dev server and
#: the export; none of them runs in a worker.
WORKER_WHEEL_EXCLUDES: tuple[str, ...] = (
    "src/monty_runtime/_web",
    "src/monty_runtime/__main__.py",
    "src/monty_runtime/cli.py",
    "src/monty_runtime/_server.py",
    "src/monty_runtime/_deploy.py",
)


def _wheel_inputs(project: Path) -> list[Path]:
    files = [project / "pyproject.toml"]
    for name in ("README.md", "setup.cfg", "setup.py", "MANIFEST.in", "LICENSE"):
        if (project / name).is_file():
            files.append(project / name)
    for path in (project / "src").rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(project).parts
        if any(p == "__pycache__" or p.endswith(".egg-info") for p in rel):
            continue
        posix = "/".join(rel)
        if any(posix == x or posix.startswith(x + "/") for x in WORKER_WHEEL_EXCLUDES):
            continue
        if path.suffix in (".pyc", ".pyo"):
            continue
        files.append(path)
    return files


def _run(
    cmd: list[str], *, cwd: Path | None = None, what: str, env: dict[str, str] | None = None
) -> str:
    env = {**os.environ, **(env or {})}
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    env.pop("PYTHONPATH", None)
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise BuildError(f"{what}: cannot run {cmd[0]}: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-25:])
        raise BuildError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc.stdout


DENO_MISSING = (
    "the snapshot step needs Deno (it makes the snapshot with JSPI on, as Chromium and "
    "Firefox run it): `scripts/dev setup` installs it (the deno package from PyPI, in the "
    "dev extra), or pip install 'monty-runtime[deno]', put deno on PATH, or set "
    "MONTY_DENO=/path/to/deno; `build(snapshot=False)` builds without the snapshot"
)


def find_deno() -> str:
    """The deno binary, found as the Deno backend finds it (``monty_runtime._deno``:
    ``$MONTY_DENO``, the ``deno`` package from PyPI, ``deno`` on ``PATH``)."""
    try:
        from monty_runtime._deno import deno_executable
        from monty_runtime.errors import StateError
    except ImportError:
        found = os.environ.get("MONTY_DENO") or shutil.which("deno")
        if found and os.access(found, os.X_OK):
            return found
        raise BuildError(DENO_MISSING) from None
    try:
        return deno_executable()
    except StateError as exc:
        raise BuildError(f"{DENO_MISSING} ({exc})") from None


def _python_version(python: str) -> tuple[int, int] | None:
    """(major, minor) of a Python executable, or None if it does not run."""
    try:
        proc = subprocess.run(
            [python, "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        major, minor = (int(x) for x in proc.stdout.split())
    except ValueError:
        return None
    return (major, minor)


def find_build_python() -> tuple[str, tuple[int, int]]:
    """First Python >= 3.12: $MONTY_BUILD_PYTHON, python3.13/3.12 on PATH, pyenv versions."""
    tried: list[str] = []
    env_python = os.environ.get("MONTY_BUILD_PYTHON")
    if env_python:
        version = _python_version(env_python)
        if version is None or version < MIN_BUILD_PYTHON:
            raise BuildError(
                f"MONTY_BUILD_PYTHON={env_python} is not a working Python >= 3.12 (found {version})"
            )
        return env_python, version
    candidates: list[str] = []
    for name in PATH_PYTHONS:
        found = shutil.which(name)
        if found:
            candidates.append(found)
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    patterns = (f"{pyenv_root}/versions/3.1[2-9]*", *PYENV_GLOBS)
    pattern_dirs = sorted(
        {found for pattern in patterns for found in glob.glob(pattern)},
        key=_version_sort_key,
        reverse=True,
    )
    candidates.extend(f"{d}/bin/python" for d in pattern_dirs)
    for python in candidates:
        version = _python_version(python)
        tried.append(f"{python} ({'.'.join(map(str, version)) if version else 'does not run'})")
        if version is not None and version >= MIN_BUILD_PYTHON:
            return python, version
    raise BuildError(
        "the web build needs Python >= 3.12 for pyodide-build, and none was found"
        + (f" (tried: {', '.join(tried)})" if tried else "")
        + ". Install one (e.g. `apt-get install python3.13` on Debian 13, "
        "`pyenv install 3.13`, or `uv python install 3.13`) and/or set "
        "MONTY_BUILD_PYTHON=/path/to/python3.13"
    )


def _version_sort_key(path: str) -> tuple[int, ...]:
    name = Path(path).name
    parts: list[int] = []
    for piece in name.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def _is_relative_file_name(name: str) -> bool:
    return (
        bool(name)
        and "://" not in name
        and not name.startswith(("/", "\\", "data:", "blob:"))
        and ".." not in name.replace("\\", "/").split("/")
    )


# --------------------------------------------------------------------------- steps


class _Builder:
    def __init__(
        self, project: Path, *, force: bool, log: Log, venv: Path | None, snapshot: bool = True
    ) -> None:
        self.with_snapshot = snapshot
        self.project = project
        self.web = project / "web"
        self.dist = self.web / "dist"
        self.pyodide_dir = self.web / "node_modules" / "pyodide"
        self.venv = venv if venv is not None else project / BUILD_VENV
        self.downloads = self.venv / "downloads"
        self.force = force
        self.log = log
        self.steps: list[tuple[str, str, float]] = []
        self.state: dict[str, Any] = {}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        status = ["done"]
        start = time.perf_counter()
        try:
            yield status
        except BaseException:
            elapsed = time.perf_counter() - start
            self.log(f"build: {name:<10} {elapsed:6.2f} s  FAILED")
            raise
        elapsed = time.perf_counter() - start
        self.steps.append((name, status[0], elapsed))
        self.log(f"build: {name:<10} {elapsed:6.2f} s  {status[0]}")

    @property
    def venv_python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self) -> BuildResult:
        total = time.perf_counter()
        self.dist.mkdir(parents=True, exist_ok=True)
        self.state = {} if self.force else _read_json(self.dist / STATE_FILE)
        with self.step("pyodide") as status:
            status[0] = self.check_pyodide()
        with self.step("tools") as status:
            status[0] = self.ensure_build_venv()
        with self.step("wheel") as status:
            wheel, status[0] = self.build_wheel()
        with self.step("downloads") as status:
            extra, status[0] = self.fetch_extra_wheels()
        with self.step("lockfile") as status:
            lock_file, status[0] = self.write_lock_file([wheel, *extra])
        snapshots: list[dict[str, Any]] | None = None
        if self.with_snapshot:
            with self.step("snapshot") as status:
                snapshots, status[0] = self.make_snapshots(lock_file)
            with self.step("compress") as status:
                status[0] = self.precompress()
        with self.step("info") as status:
            info = self.write_build_info(wheel, extra, snapshots)
            status[0] = "written (build-info.json)"
        _write_json(self.dist / STATE_FILE, self.state)
        self.log(f"build: finished in {time.perf_counter() - total:.2f} s -> {self.dist}")
        return BuildResult(self.dist, wheel, lock_file, info, self.steps)

    # 1. Pyodide from npm
    def check_pyodide(self) -> str:
        package = self.pyodide_dir / "package.json"
        if not package.is_file():
            raise BuildError(
                f"{self.pyodide_dir} is missing: run `npm ci --prefix web` (or `scripts/dev setup`)"
            )
        version = _read_json(package).get("version")
        if version != PYODIDE_VERSION:
            raise BuildError(
                f"web/node_modules/pyodide is version {version}, expected {PYODIDE_VERSION}: "
                "run `npm ci --prefix web`"
            )
        for name in ("pyodide.mjs", "pyodide.asm.wasm", "pyodide-lock.json", "python_stdlib.zip"):
            if not (self.pyodide_dir / name).is_file():
                raise BuildError(f"{self.pyodide_dir / name} is missing: run `npm ci --prefix web`")
        return f"ok, pyodide {PYODIDE_VERSION}"

    # 2. build venv with pyodide-build, build, setuptools
    def ensure_build_venv(self) -> str:
        marker = self.venv / ".monty-build-requirements.json"
        wanted = {"requirements": list(BUILD_REQUIREMENTS)}
        if (
            not self.force
            and self.venv_python.exists()
            and _read_json(marker) == wanted
            and (_python_version(str(self.venv_python)) or (0, 0)) >= MIN_BUILD_PYTHON
            and (self.venv / "bin" / "pyodide").exists()
        ):
            return f"cached ({BUILD_VENV})"
        python, version = find_build_python()
        if not self.venv_python.exists() or (
            (_python_version(str(self.venv_python)) or (0, 0)) < MIN_BUILD_PYTHON
        ):
            if self.venv.exists():
                shutil.rmtree(self.venv)
            _run([python, "-m", "venv", str(self.venv)], what="creating the build venv")
        _run(
            [str(self.venv_python), "-m", "pip", "install", "--quiet", *BUILD_REQUIREMENTS],
            what="installing pyodide-build into the build venv",
        )
        out = _run(
            [str(self.venv / "bin" / "pyodide"), "lockfile", "add-wheels", "--help"],
            what="checking `pyodide lockfile add-wheels`",
        )
        if "--base-path" not in out:
            raise BuildError("the installed pyodide-build has no usable `lockfile add-wheels`")
        _write_json(marker, wanted)
        return f"installed (Python {version[0]}.{version[1]}, {BUILD_VENV})"

    # 3. our wheel
    def build_wheel(self) -> tuple[Path, str]:
        digest = _tree_digest(self.project, _wheel_inputs(self.project))
        previous = self.state.get("wheel", {})
        old = self.dist / str(previous.get("file", ""))
        if (
            previous.get("inputs") == digest
            and previous.get("file")
            and old.is_file()
            and _sha256(old) == previous.get("sha256")
        ):
            return old, f"cached ({old.name})"
        inputs = _wheel_inputs(self.project)
        with tempfile.TemporaryDirectory(prefix="monty-wheel-") as tmp:
            # Build from a clean copy of the inputs: no stale build/ or egg-info files end
            # up in the wheel, and the project tree is left alone.
            source = Path(tmp) / "source"
            for path in inputs:
                target = source / path.relative_to(self.project)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            # The worker never reads the long description: keep METADATA small.
            (source / "README.md").write_text(
                "monty-runtime, the wheel a browser worker installs inside Pyodide.\n"
            )
            out_dir = Path(tmp) / "out"
            _run(
                [
                    str(self.venv_python),
                    "-m",
                    "build",
                    "--wheel",
                    "--no-isolation",
                    "--outdir",
                    str(out_dir),
                    str(source),
                ],
                cwd=source,
                what="building the monty-runtime wheel",
            )
            built = sorted(out_dir.glob("monty_runtime-*-py3-none-any.whl"))
            if len(built) != 1:
                raise BuildError(f"expected one pure-Python wheel, got {[p.name for p in built]}")
            for stale in self.dist.glob("monty_runtime-*.whl"):
                stale.unlink()
            wheel = self.dist / built[0].name
            shutil.move(str(built[0]), wheel)
        self.state["wheel"] = {"inputs": digest, "file": wheel.name, "sha256": _sha256(wheel)}
        return wheel, f"built ({wheel.name})"

    # 4. micropip + packaging from PyPI (cached)
    def fetch_extra_wheels(self) -> tuple[list[Path], str]:
        self.downloads.mkdir(parents=True, exist_ok=True)
        paths: list[Path] = []
        missing: list[str] = []
        for name, (version, _sha) in EXTRA_WHEELS.items():
            cached = self.downloads / f"{name}-{version}-py3-none-any.whl"
            if not cached.is_file() or _sha256(cached) != _sha:
                missing.append(f"{name}=={version}")
        if missing:
            _run(
                [
                    str(self.venv_python),
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--python-version",
                    DOWNLOAD_PYTHON_VERSION,
                    "--only-binary=:all:",
                    "--no-deps",
                    "-d",
                    str(self.downloads),
                    *missing,
                ],
                what=f"downloading {', '.join(missing)}",
            )
        for name, (version, sha) in EXTRA_WHEELS.items():
            cached = self.downloads / f"{name}-{version}-py3-none-any.whl"
            if not cached.is_file():
                raise BuildError(f"pip did not produce {cached.name}")
            actual = _sha256(cached)
            if actual != sha:
                raise BuildError(
                    f"{cached.name} has sha256 {actual}, expected {sha} "
                    "(delete it to download it again)"
                )
            target = self.dist / cached.name
            if not target.is_file() or _sha256(target) != sha:
                shutil.copy2(cached, target)
            paths.append(target)
        status = "downloaded" if missing else "cached"
        return paths, f"{status} ({', '.join(p.name for p in paths)})"

    # 5. pyodide-lock.json
    def write_lock_file(self, wheels: list[Path]) -> tuple[Path, str]:
        base_lock = self.pyodide_dir / "pyodide-lock.json"
        out = self.dist / "pyodide-lock.json"
        inputs = {
            "base": _sha256(base_lock),
            "wheels": {w.name: _sha256(w) for w in wheels},
            "requirements": list(BUILD_REQUIREMENTS),
        }
        previous = self.state.get("lockfile", {})
        if (
            previous.get("inputs") == inputs
            and out.is_file()
            and _sha256(out) == previous.get("sha256")
        ):
            self._check_lock_file(out, wheels)
            return out, "cached (pyodide-lock.json)"
        tmp_out = self.dist / "pyodide-lock.json.new"
        _run(
            [
                str(self.venv / "bin" / "pyodide"),
                "lockfile",
                "add-wheels",
                "--input",
                str(base_lock),
                "--output",
                str(tmp_out),
                "--base-path",
                str(self.dist),
                *[str(w) for w in wheels],
            ],
            cwd=self.dist,
            what="pyodide lockfile add-wheels",
        )
        self._check_lock_file(tmp_out, wheels)
        tmp_out.replace(out)
        self.state["lockfile"] = {"inputs": inputs, "sha256": _sha256(out)}
        return out, f"written ({len(_read_json(out).get('packages', {}))} packages)"

    def _check_lock_file(self, lock_file: Path, wheels: list[Path]) -> None:
        data = _read_json(lock_file)
        packages = data.get("packages")
        if not isinstance(packages, dict):
            raise BuildError(f"{lock_file} has no packages")
        # Every entry must resolve against packageBaseUrl (our origin), never elsewhere.
        absolute = [
            name
            for name, entry in packages.items()
            if not _is_relative_file_name(str(entry.get("file_name", "")))
        ]
        if absolute:
            raise BuildError(
                f"{lock_file}: file_name of {', '.join(sorted(absolute)[:5])} is not a relative "
                "path; packages must load from the page's origin"
            )
        by_file = {str(e.get("file_name")): e for e in packages.values()}
        for wheel in wheels:
            entry = by_file.get(wheel.name)
            if entry is None:
                raise BuildError(f"{lock_file} does not list {wheel.name}")
            if entry.get("sha256") != _sha256(wheel):
                raise BuildError(f"{lock_file}: sha256 of {wheel.name} does not match the file")

    # 6. the shipped memory snapshots (Deno boots Pyodide as a worker does, and snapshots)
    def make_snapshots(self, lock_file: Path) -> tuple[list[dict[str, Any]], str]:
        entries: list[dict[str, Any]] = []
        notes: list[str] = []
        for name, flags in SNAPSHOTS:
            entry, note = self.make_snapshot(lock_file, name, flags)
            entries.append(entry)
            notes.append(note)
        verdict = "cached" if all(n.startswith("cached") for n in notes) else "made"
        return entries, f"{verdict} ({'; '.join(n.split(' ', 1)[1].strip('()') for n in notes)})"

    def make_snapshot(
        self, lock_file: Path, name: str = SNAPSHOT_FILE, flags: tuple[str, ...] = ()
    ) -> tuple[dict[str, Any], str]:
        out = self.dist / name
        inputs = {
            "lock": _sha256(lock_file),
            "files": {n: _sha256(self.project / n) for n in SNAPSHOT_INPUTS},
            "maker": "deno",  # a snapshot made in Node (no JSPI) before is made again
            "flags": list(flags),
        }
        previous = self.state.get("snapshots", {}).get(name, {})
        if (
            previous.get("inputs") == inputs
            and out.is_file()
            and _sha256(out) == previous.get("sha256")
        ):
            return previous["entry"], f"cached ({name})"
        deno = find_deno()
        # Read: the project and Pyodide's folder (web/node_modules may be a link);
        # write: web/dist only.
        readable = sorted({str(self.project), str(self.pyodide_dir.resolve()), str(self.dist)})
        line = (
            _run(
                [
                    deno,
                    "run",
                    "--no-prompt",
                    "--no-config",
                    "--no-lock",
                    f"--allow-read={','.join(readable)}",
                    f"--allow-write={self.dist}",
                    str(self.project / "scripts" / "make-snapshot.mjs"),
                    str(self.dist),
                    str(out),
                    *flags,
                ],
                cwd=self.project,
                what=f"making the memory snapshot {name} in Deno (scripts/make-snapshot.mjs)",
                env={"DENO_NO_UPDATE_CHECK": "1", "NO_COLOR": "1"},
            )
            .strip()
            .splitlines()[-1]
        )
        made = json.loads(line)
        as_jsc = "--as-jsc" in flags
        wanted = {"madeIn": "deno", "jspi": not as_jsc, "tableIdentity": not as_jsc}
        if any(made.get(key) != value for key, value in wanted.items()):
            raise BuildError(
                f"{deno} made {name} with other engine traits than asked for ({line}, wanted "
                f"{json.dumps(wanted)}); use a Deno with JSPI (2.4 or newer)"
            )
        digest = hashlib.sha256(out.read_bytes())
        entry = {
            "file": name,
            "sha256": digest.hexdigest(),
            "integrity": "sha256-" + base64.b64encode(digest.digest()).decode("ascii"),
            "bytes": out.stat().st_size,
            "made_in": made["madeIn"],
            # The engine traits Pyodide's boot left in the snapshot's memory: the page
            # restores it only where they are the same (web/shared/snapshot-format.js,
            # engineTraits).
            "jspi": made["jspi"],
            "table_identity": made["tableIdentity"],
            "trampoline": made["trampoline"],
        }
        self.state.setdefault("snapshots", {})[name] = {
            "inputs": inputs, "sha256": entry["sha256"], "entry": entry,
        }
        size = out.stat().st_size / 1e6
        return entry, (
            f"made ({name}, {size:.1f} MB in {float(made['ms']) / 1000:.1f} s, "
            f"{made['madeIn']}, JSPI {'on' if made['jspi'] else 'off'}"
            f"{', as JavaScriptCore' if as_jsc else ''})"
        )

    # 7. .gz/.br next to the big files
    def precompress(self) -> str:
        # The script's own hash is part of the key: new settings compress again.
        script = _sha256(self.project / "scripts" / "precompress.mjs")
        wanted = {name: f"{_sha256(self.web / name)}:{script}" for name in PRECOMPRESSED}
        previous = self.state.get("compress", {})
        todo = [
            name
            for name, sha in wanted.items()
            if previous.get(name, {}).get("sha256") != sha
            or not all((self.web / f"{name}{ext}").is_file() for ext in (".gz", ".br"))
        ]
        if todo:
            node = shutil.which("node")
            if node is None:
                raise BuildError("the compress step needs Node.js (`node` on PATH)")
            out = _run(
                [node, str(self.project / "scripts" / "precompress.mjs"), *todo],
                cwd=self.web,
                what="precompressing (scripts/precompress.mjs)",
            )
            for line in out.strip().splitlines():
                row = json.loads(line)
                previous[row["file"]] = {
                    "sha256": wanted[row["file"]],
                    "bytes": row["bytes"],
                    "gzip": row["gzip"],
                    "br": row["br"],
                }
        self.state["compress"] = {name: previous[name] for name in wanted}
        if not todo:
            return f"cached ({len(wanted)} files, .gz/.br)"
        return f"written ({len(todo)} of {len(wanted)} files, .gz/.br)"

    # 8. build-info.json
    def write_build_info(
        self, wheel: Path, extra: list[Path], snapshots: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        info: dict[str, Any] = {
            "pyodide_version": PYODIDE_VERSION,
            "wheel": wheel.name,
            "wheel_sha256": _sha256(wheel),
            "protocol_version": _protocol_version(self.project),
            "lock_file": "pyodide-lock.json",
            "extra_wheels": {p.name: _sha256(p) for p in extra},
        }
        if snapshots:
            info["snapshots"] = snapshots
        _write_json(self.dist / "build-info.json", info)
        return info


def _protocol_version(project: Path) -> Any:
    """PROTOCOL_VERSION from the project's monty_runtime.protocol, if it imports."""
    code = (
        "import json, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "try:\n"
        "    import monty_runtime.protocol as p\n"
        "    v = getattr(p, 'PROTOCOL_VERSION', None)\n"
        "except Exception:\n"
        "    v = None\n"
        "print(json.dumps(v if isinstance(v, (int, str)) else None))\n"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(project / "src")],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None


def build(
    project: Path | None = None,
    *,
    force: bool = False,
    log: Log | None = None,
    build_venv: Path | None = None,
    snapshot: bool = True,
) -> BuildResult:
    """Build web/dist (see the module docstring). Raises BuildError with a clear message.

    ``build_venv`` defaults to ``<project>/.venv-build`` (it also holds the download cache).
    ``snapshot=False`` leaves out the shipped snapshot and the precompressed files (a
    first visit then boots cold and makes the page's own snapshot).
    """
    root = find_project_root(project)
    printer: Log = log if log is not None else (lambda line: print(line, flush=True))
    venv = Path(build_venv).resolve() if build_venv is not None else None
    return _Builder(root, force=force, log=printer, venv=venv, snapshot=snapshot).run()
