"""Command line: ``monty-runtime`` (``python -m monty_runtime``).

For users: ``export`` (the browser runtime into a site folder), ``headers`` (server
snippets), ``serve`` (a folder with the runtime's headers), ``run`` (code, natively),
``--version``.  In a source checkout also ``build`` and ``conformance``, forwarded to
the development tools (package ``monty_dev``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO


def _version_text() -> str:
    from monty_runtime import __version__
    from monty_runtime.protocol import PROTOCOL_VERSION

    python = sys.version.split()[0]
    return f"monty-runtime {__version__} (protocol {PROTOCOL_VERSION}, Python {python})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monty_runtime",
        description="monty-runtime: a stateful Python runtime for LLM tool calls.",
    )
    parser.add_argument("--version", action="version", version=_version_text())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_build = sub.add_parser("build", help="build web/dist (wheel, micropip, lock file)")
    p_build.add_argument("--project", type=Path, default=None, help="project folder")
    p_build.add_argument("--force", action="store_true", help="redo every step")

    p_export = sub.add_parser(
        "export", help="copy the browser runtime into a site folder (SITE/monty-runtime/)"
    )
    p_export.add_argument("site", type=Path, help="the site's folder (created if missing)")
    p_export.add_argument(
        "--subdir", default="monty-runtime", help="folder inside SITE (default monty-runtime)"
    )
    p_export.add_argument(
        "--headers",
        action="append",
        default=[],
        choices=["netlify", "cloudflare", "vercel"],
        help="also write the host's header file at SITE's root (_headers, vercel.json)",
    )
    p_export.add_argument("--force", action="store_true", help="replace existing header files")

    p_headers = sub.add_parser("headers", help="print the headers for a web server or host")
    p_headers.add_argument("kind", choices=["nginx", "caddy", "netlify", "cloudflare", "vercel"])
    p_headers.add_argument(
        "--path", default="/monty-runtime/", help="URL path of the runtime folder"
    )
    p_headers.add_argument("--root", default="/srv/site", help="caddy: the site's folder")
    p_headers.add_argument("--address", default="example.com", help="caddy: the site address")

    p_serve = sub.add_parser(
        "serve",
        help="serve a folder with the runtime's headers (in a checkout: build, then web/)",
    )
    p_serve.add_argument("--port", type=int, default=8000, help="port (0: a free one)")
    p_serve.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    p_serve.add_argument(
        "--no-isolation",
        action="store_true",
        help="do not send COOP/COEP/CORP (the page is then not cross-origin isolated)",
    )
    p_serve.add_argument(
        "--no-csp",
        action="store_true",
        help="serve scripts without the worker's Content-Security-Policy (testing only: "
        "the runtime then refuses to boot unless the page passes requireCSP: false)",
    )
    p_serve.add_argument(
        "--root",
        type=Path,
        default=None,
        help="folder to serve (default: web/ in a checkout, else the current directory)",
    )
    p_serve.add_argument("--log", type=Path, default=None, help="append request lines here")
    p_serve.add_argument("--no-build", action="store_true", help="skip the build")
    p_serve.add_argument("--project", type=Path, default=None, help="project folder")

    sub.add_parser(
        "conformance",
        help="run the conformance corpus on the native and/or browser backend",
        add_help=False,
    )
    p_run = sub.add_parser("run", help="run Python code (a file, or stdin) on the native backend")
    p_run.add_argument("file", nargs="?", type=Path, help="a .py file (default: stdin)")
    p_run.add_argument("--timeout", type=float, default=None, help="seconds (default: none)")
    p_run.add_argument("--json", action="store_true", help="print the result as JSON")
    from ._mcp import add_parser as add_mcp_parser

    add_mcp_parser(sub)
    return parser


def _run(args: argparse.Namespace) -> int:
    import json

    from monty_runtime import Limits, MontyRuntime

    if args.file is None:
        code, name = sys.stdin.read(), "<stdin>"
    else:
        try:
            code, name = args.file.read_text(encoding="utf-8"), args.file.name
        except OSError as exc:
            print(f"error: cannot read {args.file}: {exc}", file=sys.stderr)
            return 2
    with MontyRuntime(limits=Limits(timeout=args.timeout)) as rt:
        result = rt.execute_sync(code, script_name=name)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        if result.error is not None:
            sys.stderr.write(result.error.traceback or f"{result.error}\n")
        elif result.value is not None:
            print(repr(result.value))
    return 0 if result.error is None else 1


def _dev_tools_missing(command: str) -> int:
    print(
        f"{command}: a development command of a source checkout (package monty_dev, "
        "installed by scripts/dev setup); a pip install has export, headers, serve, run",
        file=sys.stderr,
    )
    return 2


def _build(project: Path | None, force: bool) -> int:
    try:
        from monty_dev.build import BuildError, build
    except ImportError:
        return _dev_tools_missing("build")
    try:
        build(project, force=force)
    except BuildError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _export(args: argparse.Namespace) -> int:
    from monty_runtime._deploy import DeployError, export

    try:
        result = export(args.site, subdir=args.subdir, headers=args.headers, force=args.force)
    except (DeployError, OSError) as exc:
        print(f"export: {exc}", file=sys.stderr)
        return 1
    print(
        f"export: {len(result.files)} files, {result.total_bytes / 1e6:.1f} MB -> {result.runtime}"
    )
    for path in result.headers:
        print(f"export: headers -> {path}")
    rel = result.runtime.relative_to(result.site).as_posix()
    print(
        f'export: in your page: import {{ MontyRuntime }} from "./{rel}/monty-runtime.js";\n'
        f"export: serve it with the headers: monty-runtime headers nginx|caddy|netlify|"
        f"vercel --path /{rel}/ (or try it: monty-runtime serve --root {result.site})"
    )
    return 0


def _headers(args: argparse.Namespace) -> int:
    from monty_runtime._deploy import DeployError, snippet

    try:
        text = snippet(args.kind, path=args.path, root=args.root, address=args.address)
    except DeployError as exc:
        print(f"headers: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from monty_runtime._deploy import _checkout_web
    from monty_runtime._server import ServerError, serve_forever

    root: Path | None = args.root
    if root is None:
        web = _checkout_web()
        try:
            import monty_dev  # noqa: F401  (a source checkout with its dev tools)
        except ImportError:
            web = None
        if web is not None:
            if not args.no_build:
                code = _build(args.project or web.parent, False)
                if code:
                    return code
            root = web
        else:
            root = Path.cwd()
            print(
                f"serve: serving {root} (put the runtime in it with "
                "`monty-runtime export .`; --root DIR serves another folder)",
                file=sys.stderr,
            )
    log_stream: IO[str] | None = None
    try:
        log_stream = args.log.open("a", buffering=1) if args.log else sys.stderr
        return serve_forever(
            root,
            host=args.host,
            port=args.port,
            isolated=not args.no_isolation,
            log_stream=log_stream,
            csp=not args.no_csp,
        )
    except ServerError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.log and log_stream is not None:
            log_stream.close()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "conformance":
        try:
            from monty_dev.conformance import main as conformance_main
        except ImportError:
            return _dev_tools_missing("conformance")
        return conformance_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "build":
        return _build(args.project, args.force)
    if args.command == "serve":
        return _serve(args)
    if args.command == "export":
        return _export(args)
    if args.command == "headers":
        return _headers(args)
    if args.command == "mcp":
        from ._mcp import main as mcp_main

        return mcp_main(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
