"""Web build: the lock file, the wheels in web/dist, incremental rebuilds, clear errors."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from monty_dev import build as _build
from monty_dev.build import BuildError, BuildResult, build, find_build_python, find_deno

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DIST = PROJECT_ROOT / "web" / "dist"
BASE_LOCK = PROJECT_ROOT / "web" / "node_modules" / "pyodide" / "pyodide-lock.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built() -> BuildResult:
    """Run the build (only what changed is redone; the first run downloads the tools)."""
    lines: list[str] = []
    try:
        return build(PROJECT_ROOT, log=lines.append)
    except BuildError as exc:
        pytest.fail(f"web build failed: {exc}\n" + "\n".join(lines), pytrace=False)


@pytest.fixture(scope="module")
def lock(built: BuildResult) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(built.lock_file.read_text())
    return data


def project_version() -> str:
    # pyproject takes the version from the package (dynamic): read it from the source.
    init = (PROJECT_ROOT / "src" / "monty_runtime" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', init, re.MULTILINE)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize(
    ("name", "version"),
    [("monty-runtime", None), ("micropip", "0.11.1"), ("packaging", "26.1")],
)
def test_lock_lists_our_wheels_with_matching_sha256(
    lock: dict[str, Any], name: str, version: str | None
) -> None:
    entry = lock["packages"][name]
    assert entry["version"] == (version or project_version())
    wheel = DIST / entry["file_name"]
    assert wheel.is_file(), wheel
    assert entry["sha256"] == sha256(wheel)
    assert entry["install_dir"] == "site"


def test_monty_runtime_entry(lock: dict[str, Any], built: BuildResult) -> None:
    entry = lock["packages"]["monty-runtime"]
    assert entry["file_name"] == built.wheel.name
    assert entry["file_name"].endswith("-py3-none-any.whl")
    assert "monty_runtime" in entry["imports"]


def test_every_file_name_resolves_against_the_page_origin(lock: dict[str, Any]) -> None:
    # Relative names are resolved against packageBaseUrl (web/dist/ on our origin).
    for name, entry in lock["packages"].items():
        file_name = entry["file_name"]
        assert "://" not in file_name and not file_name.startswith("/"), (name, file_name)
        assert ".." not in file_name.split("/"), (name, file_name)


def test_lock_keeps_pyodides_own_packages_and_info(lock: dict[str, Any]) -> None:
    base = json.loads(BASE_LOCK.read_text())
    assert lock["info"] == base["info"]
    assert lock["info"]["python"].startswith("3.14")
    assert set(base["packages"]) <= set(lock["packages"])
    # micropip and packaging come from PyPI, whose files differ from Pyodide's builds.
    for name in ("micropip", "packaging"):
        assert lock["packages"][name]["version"] == base["packages"][name]["version"]


def test_build_info(built: BuildResult) -> None:
    info = json.loads((DIST / "build-info.json").read_text())
    assert info["pyodide_version"] == "314.0.7"
    assert info["wheel"] == built.wheel.name
    assert info["wheel_sha256"] == sha256(DIST / info["wheel"])
    assert "protocol_version" in info
    for name, digest in info["extra_wheels"].items():
        assert sha256(DIST / name) == digest


def test_npm_pin() -> None:
    package = json.loads((PROJECT_ROOT / "web" / "package.json").read_text())
    assert package["dependencies"]["pyodide"] == "314.0.7"
    assert package["private"] is True and package["type"] == "module"
    lock_file = json.loads((PROJECT_ROOT / "web" / "package-lock.json").read_text())
    assert lock_file["packages"]["node_modules/pyodide"]["version"] == "314.0.7"
    installed = json.loads((BASE_LOCK.parent / "package.json").read_text())
    assert installed["version"] == "314.0.7"


def test_wheel_is_pure_python_with_the_package(built: BuildResult) -> None:
    with zipfile.ZipFile(built.wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    assert built.wheel.name.endswith("-py3-none-any.whl")
    assert "monty_runtime/py.typed" in names
    assert any(n.startswith("monty_runtime/") and n.endswith(".py") for n in names)
    assert not any(n.startswith(("tests/", "web/", "build/")) for n in names)
    assert b"Name: monty-runtime" in metadata


def test_the_worker_wheel_holds_the_runtime_only(built: BuildResult) -> None:
    with zipfile.ZipFile(built.wheel) as zf:
        names = set(zf.namelist())
    assert {"monty_runtime/worker.py", "monty_runtime/bridge.py", "monty_runtime/_snapshot.py"} <= names
    # Nothing that never runs in a worker: no dev tools, web payload, CLI, server, export.
    for left_out in ("monty_runtime/cli.py", "monty_runtime/__main__.py", "monty_runtime/_server.py",
                     "monty_runtime/_deploy.py"):
        assert left_out not in names
    assert not [n for n in names if "/_web/" in n or "conformance" in n or n.startswith("monty_dev")]


def test_rebuild_without_changes_redoes_nothing(built: BuildResult) -> None:
    lock_bytes = built.lock_file.read_bytes()
    lines: list[str] = []
    again = build(PROJECT_ROOT, log=lines.append)
    statuses = {name: status for name, status, _s in again.steps}
    for step in ("tools", "downloads", "lockfile"):
        assert statuses[step].startswith("cached"), lines
    # The wheel is cached unless src/ changed in between (others may be editing it).
    if statuses["wheel"].startswith("cached"):
        assert again.lock_file.read_bytes() == lock_bytes
    assert len(lines) == len(again.steps) + 1  # one line per step, then a summary
    assert all(line.startswith("build: ") for line in lines)


def _copy_project(dest: Path) -> Path:
    """A minimal copy of the project (sources, web/package.json, node_modules link)."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT_ROOT / name, dest / name)
    shutil.copytree(
        PROJECT_ROOT / "src",
        dest / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    (dest / "web").mkdir()
    shutil.copy2(PROJECT_ROOT / "web" / "package.json", dest / "web" / "package.json")
    (dest / "web" / "node_modules").symlink_to(PROJECT_ROOT / "web" / "node_modules")
    return dest


def test_wheel_is_rebuilt_when_src_changes(built: BuildResult, tmp_path: Path) -> None:
    project = _copy_project(tmp_path)
    venv = PROJECT_ROOT / _build.BUILD_VENV  # reuse the tools (and the download cache)
    # snapshot=False: the snapshot step has its own test below (it takes a Deno boot).
    first = build(project, log=lambda _line: None, build_venv=venv, snapshot=False)
    second = build(project, log=lambda _line: None, build_venv=venv, snapshot=False)
    assert dict((n, s) for n, s, _t in second.steps)["wheel"].startswith("cached")

    (project / "src" / "monty_runtime" / "_extra_module_for_test.py").write_text("X = 1\n")
    third = build(project, log=lambda _line: None, build_venv=venv, snapshot=False)
    steps = {n: s for n, s, _t in third.steps}
    assert steps["wheel"].startswith("built")
    assert steps["lockfile"].startswith("written")
    with zipfile.ZipFile(third.wheel) as zf:
        assert "monty_runtime/_extra_module_for_test.py" in zf.namelist()
    lock = json.loads(third.lock_file.read_text())
    assert lock["packages"]["monty-runtime"]["sha256"] == sha256(third.wheel)
    assert first.wheel.name == third.wheel.name


BROTLI_SHA256_JS = (
    "const z = require('zlib'), c = require('crypto'), fs = require('fs');"
    "const b = z.brotliDecompressSync(fs.readFileSync(process.argv[1]));"
    "console.log(c.createHash('sha256').update(b).digest('hex'));"
)


def test_build_ships_a_snapshot_of_this_build_with_compressed_copies(built: BuildResult) -> None:
    info = json.loads((DIST / "build-info.json").read_text())
    # One made as V8 and SpiderMonkey boot Pyodide, one as JavaScriptCore does (Pyodide
    # keeps those engine traits in the snapshot; the page and the worker check them).
    traits = {
        e["file"]: (e["made_in"], e["jspi"], e["table_identity"], e["trampoline"])
        for e in info["snapshots"]
    }
    assert traits == {
        "snapshot.bin": ("deno", True, True, True),
        "snapshot-jsc.bin": ("deno", False, False, True),
    }
    for entry in info["snapshots"]:
        _check_shipped_snapshot(info, entry)


def _check_shipped_snapshot(info: dict[str, Any], entry: dict[str, Any]) -> None:
    path = DIST / entry["file"]
    digest = hashlib.sha256(path.read_bytes())
    assert entry["sha256"] == digest.hexdigest() and entry["bytes"] == path.stat().st_size
    assert entry["integrity"] == "sha256-" + base64.b64encode(digest.digest()).decode()
    # The container (web/shared/snapshot-format.js): magic, then meta naming this build's
    # packages and the engine traits of the build-info entry.
    data = path.read_bytes()
    assert data[:8] == b"MONTYSN1"
    meta_len = int.from_bytes(data[8:12], "little")
    meta = json.loads(data[32 : 32 + meta_len])
    assert meta["pyodideVersion"] == "314.0.7"
    assert (meta["madeIn"], meta["jspi"], meta["tableIdentity"], meta["trampoline"]) == (
        entry["made_in"], entry["jspi"], entry["table_identity"], entry["trampoline"],
    )
    assert meta["packages"]["monty-runtime"] == info["wheel_sha256"]
    assert "monty_runtime.worker" in meta["preload"]
    # The start of its memory is a delta against Pyodide's memory as instantiated (its
    # data segments, web/worker/snapshot.js): mostly zeros, which cost nearly nothing
    # compressed.
    # Pyodide's part is stored without its zero pages (meta "pyodideRuns"): rebuilt here.
    py_offset = int.from_bytes(data[16:20], "little")
    pyodide = bytearray(meta["pyodideBytes"])
    at = py_offset
    for start, end in meta["pyodideRuns"]:
        pyodide[start:end] = data[at : at + end - start]
        at += end - start
    assert at == len(data)
    assert len(data) < 0.6 * (py_offset + len(pyodide))  # most of the memory is zeros
    memory_at = int.from_bytes(pyodide[4:8], "little")
    delta = pyodide[memory_at : memory_at + meta["memoryXor"]]
    assert meta["memoryXor"] > 1_000_000 and len(delta) == meta["memoryXor"]
    assert delta.count(0) > 0.8 * len(delta)


def test_build_ships_compressed_copies_and_rebuilds_nothing_unchanged(built: BuildResult) -> None:
    # Precompressed copies decode to the very bytes served uncompressed.
    web = PROJECT_ROOT / "web"
    for name in _build.PRECOMPRESSED:
        original = (web / name).read_bytes()
        assert gzip.decompress((web / f"{name}.gz").read_bytes()) == original, name
        decoded = subprocess.run(
            ["node", "-e", BROTLI_SHA256_JS, str(web / f"{name}.br")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert decoded == hashlib.sha256(original).hexdigest(), name
    # A second build redoes neither step.
    again = build(PROJECT_ROOT, log=lambda _line: None)
    statuses = {name: status for name, status, _s in again.steps}
    if statuses["wheel"].startswith("cached"):  # others may be editing src/ meanwhile
        assert statuses["snapshot"].startswith("cached"), statuses
        assert statuses["compress"].startswith("cached"), statuses


def test_missing_deno_is_a_clear_error_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONTY_DENO", str(tmp_path / "no-deno"))
    with pytest.raises(BuildError) as info:
        find_deno()
    message = str(info.value)
    for words in ("needs Deno", "scripts/dev setup", "monty-runtime[deno]", "MONTY_DENO",
                  "snapshot=False"):
        assert words in message, message


def test_missing_pyodide_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "package.json").write_text("{}")
    with pytest.raises(BuildError, match=r"npm ci --prefix web"):
        build(tmp_path, log=lambda _line: None, build_venv=tmp_path / "venv")


def test_build_python_from_env_must_be_312_or_newer(monkeypatch: pytest.MonkeyPatch) -> None:
    if sys.version_info < (3, 12):
        monkeypatch.setenv("MONTY_BUILD_PYTHON", sys.executable)
        with pytest.raises(BuildError, match="MONTY_BUILD_PYTHON"):
            find_build_python()
    monkeypatch.setenv("MONTY_BUILD_PYTHON", "/nonexistent/python3.13")
    with pytest.raises(BuildError, match=r"not a working Python >= 3\.12"):
        find_build_python()


def test_no_build_python_found_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MONTY_BUILD_PYTHON", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setattr(_build, "PYENV_GLOBS", ())
    with pytest.raises(BuildError) as info:
        find_build_python()
    message = str(info.value)
    assert "Python >= 3.12" in message and "MONTY_BUILD_PYTHON" in message
    assert "install" in message


def test_build_python_is_found_here() -> None:
    python, version = find_build_python()
    assert version >= (3, 12) and Path(python).exists()
