"""Deploying the browser backend: the folder a site serves, and its servers' headers.

``monty-runtime export SITE`` writes ``SITE/monty-runtime/`` (``--subdir``), the runtime
and nothing else:

* the JS host and the worker: ``monty-runtime.js``, ``tools.js``, ``worker.js`` and every
  module they import (followed from their ``import`` statements), with the ``.d.ts``
  files beside them; ``layout.js`` rewritten for this layout (Pyodide in ``pyodide/``);
* ``dist/``: the worker wheel, micropip and packaging, ``pyodide-lock.json``,
  ``build-info.json``;
* ``pyodide/``: the four Pyodide files a worker loads (``PYODIDE_FILES``);

plus ``SITE/.nojekyll`` and, on request (``--headers``), the header files of static
hosts at the site's root: ``_headers`` (Netlify, Cloudflare Pages), ``vercel.json``.
``monty-runtime headers nginx|caddy`` prints a server snippet instead (``snippet``).

Where the files come from (``find_web_host``): the ``_web/`` folder of the installed
wheel (same layout as an export), else a source checkout's ``web/`` after
``python -m monty_dev build``.  A missing file is a :class:`DeployError` naming the
file, where it was looked for and the command that produces it.

Headers: the whole site gets the cross-origin isolation headers (the page that embeds
the runtime must be isolated for interrupts and sync host calls); the runtime folder
also gets the worker's Content-Security-Policy (a browser applies a script response's
policy only when the response starts a worker, so it costs the page's imports nothing).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "HEADER_KINDS",
    "PAGE_HEADERS",
    "PYODIDE_FILES",
    "RUNTIME_ENTRIES",
    "DeployError",
    "ExportResult",
    "WebHost",
    "export",
    "find_web_host",
    "module_graph",
    "snippet",
]

#: The modules a page imports (the worker is started from ``worker.js``).
RUNTIME_ENTRIES: tuple[str, ...] = ("monty-runtime.js", "tools.js", "worker.js")
#: What a worker loads from Pyodide's folder (``pyodide`` npm package, pinned).
PYODIDE_FILES: tuple[str, ...] = (
    "pyodide.mjs",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
)
WORKER_CSP = (
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; "
    "connect-src 'none'; worker-src 'self'"
)
#: Sent with every response of the site (the page included).
PAGE_HEADERS: dict[str, str] = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
#: Sent with every response of the runtime folder, on top of ``PAGE_HEADERS``.
RUNTIME_HEADERS: dict[str, str] = {"Content-Security-Policy": WORKER_CSP}
HEADER_KINDS: tuple[str, ...] = ("nginx", "caddy", "netlify", "cloudflare", "vercel")

EXPORT_LAYOUT_JS = """\
/**
 * Where the runtime's files are (written by `monty-runtime export`): this folder holds
 * the modules and `dist/`, Pyodide is in `./pyodide/`. See layout.js in the source.
 */
export const RUNTIME_DIR = new URL("./", import.meta.url).href;
export const PYODIDE_DIR = new URL("./pyodide/", import.meta.url).href;
"""

BUILD_COMMAND = "python -m monty_dev build (or scripts/dev setup) in a source checkout"

_IMPORT_RE = re.compile(
    r"""(?:^|[\s;])(?:import|export)\s*(?:[\w*{}\s,$]+\s*from\s*)?["'](\.{1,2}/[^"']+)["']"""
    r"""|import\(\s*["'](\.{1,2}/[^"']+)["']\s*\)"""
    # a module started as a worker: new Worker(new URL("./gate.js", import.meta.url))
    r"""|new\s+URL\(\s*["'](\.{1,2}/[^"']+\.m?js)["']\s*,\s*import\.meta\.url\s*\)""",
    re.MULTILINE,
)


class DeployError(RuntimeError):
    """A deployment problem, with a message that names the fix."""


@dataclass(frozen=True)
class WebHost:
    """Where the files to deploy are: the modules, ``dist/`` and Pyodide's folder."""

    modules: Path
    dist: Path
    pyodide: Path
    installed: bool  # the wheel's _web/ folder (else a source checkout's web/)


@dataclass
class ExportResult:
    site: Path
    runtime: Path
    files: list[str] = field(default_factory=list)  # relative to ``runtime``
    headers: list[Path] = field(default_factory=list)
    total_bytes: int = 0


def _installed_root() -> Path:
    return Path(__file__).resolve().parent / "_web"


def _checkout_web() -> Path | None:
    here = Path(__file__).resolve().parent
    for folder in here.parents:
        if (folder / "pyproject.toml").is_file() and (folder / "web" / "worker.js").is_file():
            return folder / "web"
    return None


def find_web_host() -> WebHost:
    """The files of the installed wheel (``monty_runtime/_web``), else of the source
    checkout this package runs from.  Raises :class:`DeployError` if neither is there."""
    installed = _installed_root()
    if (installed / "worker.js").is_file():
        host = WebHost(installed, installed / "dist", installed / "pyodide", True)
    else:
        web = _checkout_web()
        if web is None:
            raise DeployError(
                f"the web host is not in this installation ({installed} is missing) and "
                "this is not a source checkout: install the monty-runtime wheel from PyPI "
                "or built by `python -m monty_dev package`"
            )
        host = WebHost(web, web / "dist", web / "node_modules" / "pyodide", False)
    _check_host(host)
    return host


def _check_host(host: WebHost) -> None:
    fix_pyodide = (
        "reinstall the monty-runtime wheel"
        if host.installed
        else "run `npm ci --prefix web` (or scripts/dev setup)"
    )
    fix_dist = "reinstall the monty-runtime wheel" if host.installed else f"run {BUILD_COMMAND}"
    for name in RUNTIME_ENTRIES:
        if not (host.modules / name).is_file():
            raise DeployError(f"{host.modules / name} is missing")
    for name in PYODIDE_FILES:
        if not (host.pyodide / name).is_file():
            raise DeployError(f"{host.pyodide / name} is missing: {fix_pyodide}")
    info = host.dist / "build-info.json"
    if not info.is_file():
        raise DeployError(f"{info} is missing (the web build's output): {fix_dist}")
    for name in _dist_files(host.dist):
        if not (host.dist / name).is_file():
            raise DeployError(f"{host.dist / name} is missing: {fix_dist}")


def _dist_files(dist: Path) -> list[str]:
    """The build's outputs: the files build-info.json names (checked by the caller),
    plus any other file the build put in ``dist/`` (hidden files excepted)."""
    info = json.loads((dist / "build-info.json").read_text(encoding="utf-8"))
    names = [str(info["wheel"]), *map(str, info.get("extra_wheels", {}))]
    names += [str(info.get("lock_file", "pyodide-lock.json")), "build-info.json"]
    others = sorted(
        p.name for p in dist.iterdir() if p.is_file() and not p.name.startswith(".")
    )
    return [*names, *(n for n in others if n not in names)]


def _without_comment_lines(text: str) -> str:
    """The text without its comment lines (``//``, ``/*``, `` *``): an example in a doc
    comment (``import { MontyRuntime } from "./monty-runtime.js"``) is not an import."""
    return "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith(("//", "/*", "*"))
    )


def module_graph(folder: Path, entries: Iterable[str] = RUNTIME_ENTRIES) -> list[str]:
    """The modules reachable from ``entries`` through relative static or literal dynamic
    imports, or started as workers (``new URL("./x.js", import.meta.url)``), as paths
    relative to ``folder`` (sorted)."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = folder / name
        if not path.is_file():
            raise DeployError(f"{path} is missing (imported by the runtime)")
        seen.add(name)
        text = _without_comment_lines(path.read_text(encoding="utf-8"))
        for match in _IMPORT_RE.finditer(text):
            spec = match.group(1) or match.group(2) or match.group(3)
            target = (Path(name).parent / spec).as_posix()
            resolved = Path(target)
            parts: list[str] = []
            for part in resolved.parts:
                if part == "..":
                    if not parts:
                        raise DeployError(f"{name} imports {spec}, outside the runtime folder")
                    parts.pop()
                elif part != ".":
                    parts.append(part)
            todo.append("/".join(parts))
    return sorted(seen)


def stage_runtime(host: WebHost, dest: Path) -> list[str]:
    """Copy the runtime into ``dest`` in the export layout; returns the relative paths."""
    files: list[str] = []
    for name in module_graph(host.modules):
        _copy(host.modules / name, dest / name)
        files.append(name)
        types = Path(name).with_suffix(".d.ts").as_posix()
        if (host.modules / types).is_file():
            _copy(host.modules / types, dest / types)
            files.append(types)
    if "layout.js" in files:
        (dest / "layout.js").write_text(EXPORT_LAYOUT_JS, encoding="utf-8")
    for name in _dist_files(host.dist):
        _copy(host.dist / name, dest / "dist" / name)
        files.append(f"dist/{name}")
    for name in PYODIDE_FILES:
        _copy(host.pyodide / name, dest / "pyodide" / name)
        files.append(f"pyodide/{name}")
    return sorted(files)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _url_path(subdir: str) -> str:
    clean = subdir.strip("/")
    if not clean or ".." in clean.split("/") or not re.fullmatch(r"[\w.~/-]+", clean):
        raise DeployError(f"--subdir {subdir!r}: use a plain relative folder like monty-runtime")
    return f"/{clean}/"


def export(
    site: str | Path,
    *,
    subdir: str = "monty-runtime",
    headers: Iterable[str] = (),
    force: bool = False,
    host: WebHost | None = None,
) -> ExportResult:
    """Write the runtime into ``site/subdir`` (replacing an older export there) and the
    requested header files (``netlify``/``cloudflare``: ``_headers``; ``vercel``:
    ``vercel.json``) at the site's root.  An existing header file is not overwritten
    unless ``force``."""
    web = host if host is not None else find_web_host()
    if host is not None:
        _check_host(web)
    prefix = _url_path(subdir)
    site_dir = Path(site).resolve()
    runtime = site_dir / prefix.strip("/")
    kinds = list(dict.fromkeys(headers))
    for kind in kinds:
        if kind not in ("netlify", "cloudflare", "vercel"):
            raise DeployError(
                f"--headers {kind}: export writes netlify, cloudflare or vercel files; "
                f"print server snippets with `monty-runtime headers {kind}`"
                if kind in HEADER_KINDS
                else f"--headers {kind}: unknown (one of netlify, cloudflare, vercel)"
            )
    targets: dict[Path, str] = {}
    for kind in kinds:
        name = "vercel.json" if kind == "vercel" else "_headers"
        targets[site_dir / name] = snippet(kind, path=prefix)
    for target in targets:
        if target.exists() and not force:
            raise DeployError(
                f"{target} exists: add the lines of `monty-runtime headers "
                f"{'vercel' if target.name == 'vercel.json' else 'netlify'} --path {prefix}` "
                "to it by hand, or pass --force to replace it"
            )
    if runtime.exists():
        earlier = (runtime / "dist" / "build-info.json").is_file()
        if not earlier and (runtime.is_file() or any(runtime.iterdir())):
            raise DeployError(
                f"{runtime} exists and is not an earlier export: choose another --subdir"
            )
        shutil.rmtree(runtime)
    files = stage_runtime(web, runtime)
    (site_dir / ".nojekyll").touch()
    for target, text in targets.items():
        target.write_text(text, encoding="utf-8")
    total = sum((runtime / f).stat().st_size for f in files)
    return ExportResult(site_dir, runtime, files, list(targets), total)


# --------------------------------------------------------------------------- headers


def snippet(
    kind: str,
    *,
    path: str = "/monty-runtime/",
    root: str = "/srv/site",
    address: str = "example.com",
) -> str:
    """The headers for one kind of host, serving a site whose runtime is at ``path``.

    ``nginx``: directives for inside your ``server { }`` block; ``caddy``: a whole site
    block (``address``, ``root``); ``netlify``/``cloudflare``: a ``_headers`` file;
    ``vercel``: a ``vercel.json``."""
    prefix = _url_path(path)
    if kind == "nginx":
        page = "".join(f'add_header {k} "{v}" always;\n' for k, v in PAGE_HEADERS.items())
        inner = "".join(
            f'    add_header {k} "{v}" always;\n'
            for k, v in {**PAGE_HEADERS, **RUNTIME_HEADERS}.items()
        )
        return (
            "# monty-runtime: paste inside your server { } block (its root is your site).\n"
            "# The whole site is cross-origin isolated (the page embedding the runtime too).\n"
            "# nginx drops these server-level headers in any location of yours that has its\n"
            "# own add_header: repeat them there.\n"
            f"{page}\n"
            f"location ^~ {prefix} {{\n"
            "    # add_header here replaces the server-level ones: all are repeated.\n"
            f"{inner}"
            "    # MIME types of the runtime's files only (this block applies to this\n"
            "    # location alone; Debian's mime.types lacks .mjs).\n"
            "    types {\n"
            "        text/javascript js mjs;\n"
            "        application/wasm wasm;\n"
            "        application/json json;\n"
            "        application/zip zip whl;\n"
            "        text/plain ts;\n"
            "    }\n"
            "    default_type application/octet-stream;\n"
            "}\n"
        )
    if kind == "caddy":
        page = "".join(f"\t\t{k} {v}\n" for k, v in PAGE_HEADERS.items())
        return (
            "# monty-runtime: a Caddy site block; change the address and the root.\n"
            f"{address} {{\n"
            f"\troot * {root}\n"
            "\t# The whole site is cross-origin isolated (the page embedding the runtime too).\n"
            "\theader {\n"
            f"{page}"
            "\t}\n"
            "\t# The worker's policy, on the runtime's folder.\n"
            f'\theader {prefix}* Content-Security-Policy "{WORKER_CSP}"\n'
            "\tfile_server\n"
            "}\n"
        )
    if kind in ("netlify", "cloudflare"):
        page = "".join(f"  {k}: {v}\n" for k, v in PAGE_HEADERS.items())
        return (
            "# monty-runtime: the whole site is cross-origin isolated; the runtime's\n"
            "# folder also gets the worker's Content-Security-Policy.\n"
            "/*\n"
            f"{page}"
            f"{prefix}*\n"
            f"  Content-Security-Policy: {WORKER_CSP}\n"
        )
    if kind == "vercel":
        data = {
            "headers": [
                {
                    "source": "/(.*)",
                    "headers": [{"key": k, "value": v} for k, v in PAGE_HEADERS.items()],
                },
                {
                    "source": f"{prefix}(.*)",
                    "headers": [{"key": k, "value": v} for k, v in RUNTIME_HEADERS.items()],
                },
            ]
        }
        return json.dumps(data, indent=2) + "\n"
    raise DeployError(f"unknown host kind {kind!r} (one of {', '.join(HEADER_KINDS)})")
