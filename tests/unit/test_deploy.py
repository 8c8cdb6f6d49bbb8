"""monty-runtime export: the runtime folder (runtime only, every module the entry
points import, the layout for the export), header files, refusals that name the fix."""

from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path

import pytest

from monty_runtime._deploy import DeployError, WebHost, export, find_web_host, module_graph

WEB = Path(__file__).resolve().parents[2] / "web"


def test_the_module_graph_follows_the_imports() -> None:
    names = module_graph(WEB)
    for name in ("monty-runtime.js", "tools.js", "worker.js", "layout.js", "page/runtime.js",
                 "page/worker-host.js", "page/dispatch.js", "page/host-calls.js", "worker/main.js",
                 "worker/boot.js", "worker/lockdown.js", "shared/hints.js", "shared/protocol.js",
                 "shared/codec.js", "shared/snapshot-format.js"):
        assert name in names
    assert "page/gate.js" in names  # started as a worker, never imported
    # Every module a shipped module names by URL -- imported or started as a worker -- ships.
    for name in names:
        text = (WEB / name).read_text()
        for spec in re.findall(r"""new URL\(\s*["'](\.{1,2}/[\w./-]+\.m?js)["']\s*,\s*import\.meta""", text):
            target = posixpath.normpath(posixpath.join(posixpath.dirname(name), spec))
            assert target in names, f"{name} starts {spec}, which the module graph leaves out"
    # Demo pages and their scripts are not reachable from the library.
    assert not [n for n in names if n.startswith("demos/")]
    # Each module is where it runs: page/ and worker/ never import each other.
    for name in names:
        text = (WEB / name).read_text()
        specs = re.findall(r"""from\s*["'](\.{1,2}/[\w./-]+)["']|import\(\s*["'](\.{1,2}/[\w./-]+)["']""", text)
        targets = [posixpath.normpath(posixpath.join(posixpath.dirname(name), a or b)) for a, b in specs]
        if name.startswith("page/"):
            assert not [t for t in targets if t.startswith("worker/")], name
        if name.startswith("worker/"):
            assert not [t for t in targets if t.startswith("page/")], name
        if name.startswith("shared/"):
            assert not [t for t in targets if t.startswith(("page/", "worker/"))], name


def test_the_first_visit_page_preloads_the_page_side_module_graph() -> None:
    """web/demos/first-visit.html asks for every module monty-runtime.js imports at once
    (modulepreload): its list is that static import graph, no more, no less."""
    graph: set[str] = set()
    todo = ["monty-runtime.js"]
    while todo:
        name = todo.pop()
        if name in graph:
            continue
        graph.add(name)
        text = "\n".join(
            line for line in (WEB / name).read_text().splitlines()
            if not line.lstrip().startswith(("//", "/*", "*"))
        )
        for spec in re.findall(r"""from\s*["'](\.{1,2}/[\w./-]+)["']""", text):
            todo.append(posixpath.normpath(posixpath.join(posixpath.dirname(name), spec)))
    page = (WEB / "demos" / "first-visit.html").read_text()
    listed = re.search(r"for \(const name of \[(.*?)\]\)", page, re.S)
    assert listed is not None
    assert set(re.findall(r'"([\w./-]+\.js)"', listed.group(1))) == graph


def test_export_writes_the_runtime_only(tmp_path: Path) -> None:
    result = export(tmp_path / "site", headers=["netlify", "vercel"])
    runtime = tmp_path / "site" / "monty-runtime"
    assert result.runtime == runtime
    assert (runtime / "worker.js").is_file() and (runtime / "monty-runtime.d.ts").is_file()
    assert sorted(p.name for p in (runtime / "pyodide").iterdir()) == [
        "pyodide.asm.mjs", "pyodide.asm.wasm", "pyodide.mjs", "python_stdlib.zip"]
    info = json.loads((runtime / "dist" / "build-info.json").read_text())
    assert (runtime / "dist" / info["wheel"]).is_file()
    assert not (runtime / "dist" / ".build-state.json").exists()
    assert not [p for p in runtime.rglob("*") if p.suffix in (".html", ".css")]
    assert 'new URL("./pyodide/", import.meta.url)' in (runtime / "layout.js").read_text()
    assert (tmp_path / "site" / ".nojekyll").is_file()
    assert "/monty-runtime/*\n  Content-Security-Policy:" in (tmp_path / "site" / "_headers").read_text()
    vercel = json.loads((tmp_path / "site" / "vercel.json").read_text())
    assert [h["source"] for h in vercel["headers"]] == ["/(.*)", "/monty-runtime/(.*)"]
    # Exporting again replaces the earlier export, keeps the header files unless forced.
    with pytest.raises(DeployError, match=r"_headers exists: add the lines of `monty-runtime headers netlify"):
        export(tmp_path / "site", headers=["netlify"])
    export(tmp_path / "site", headers=["netlify"], force=True)
    export(tmp_path / "site")


def test_export_refuses_a_folder_that_is_not_an_export(tmp_path: Path) -> None:
    (tmp_path / "site" / "monty-runtime").mkdir(parents=True)
    (tmp_path / "site" / "monty-runtime" / "mine.txt").write_text("keep me")
    with pytest.raises(DeployError, match="is not an earlier export: choose another --subdir"):
        export(tmp_path / "site")
    assert (tmp_path / "site" / "monty-runtime" / "mine.txt").read_text() == "keep me"
    with pytest.raises(DeployError, match="plain relative folder"):
        export(tmp_path / "site", subdir="../outside")


def test_a_missing_build_output_names_the_command(tmp_path: Path) -> None:
    real = find_web_host()
    broken = WebHost(real.modules, tmp_path / "dist", real.pyodide, installed=False)
    with pytest.raises(DeployError, match=r"build-info.json is missing .*python -m monty_dev build"):
        export(tmp_path / "site", host=broken)
    no_pyodide = WebHost(real.modules, real.dist, tmp_path / "pyodide", installed=False)
    with pytest.raises(DeployError, match=r"pyodide.mjs is missing: run `npm ci --prefix web`"):
        export(tmp_path / "site", host=no_pyodide)
