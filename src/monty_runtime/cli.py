"""Command line: ``python -m monty_runtime {build,serve,conformance,run}`` (also
``monty-runtime``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monty_runtime",
        description="monty-runtime: web build, development server, conformance runner.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_build = sub.add_parser("build", help="build web/dist (wheel, micropip, lock file)")
    p_build.add_argument("--project", type=Path, default=None, help="project folder")
    p_build.add_argument("--force", action="store_true", help="redo every step")

    p_serve = sub.add_parser("serve", help="build, then serve the web folder")
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
    p_serve.add_argument("--root", type=Path, default=None, help="web root (default: web/)")
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


def _build(project: Path | None, force: bool) -> int:
    from monty_runtime._build import BuildError, build

    try:
        build(project, force=force)
    except BuildError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _serve(args: argparse.Namespace) -> int:
    from monty_runtime._build import BuildError, find_project_root
    from monty_runtime._server import ServerError, serve_forever

    root: Path | None = args.root
    if not args.no_build or root is None:
        try:
            project = find_project_root(args.project)
        except BuildError as exc:
            if root is None:
                print(f"serve: {exc}", file=sys.stderr)
                return 1
            project = None
        if not args.no_build and project is not None:
            code = _build(project, False)
            if code:
                return code
        if root is None and project is not None:
            root = project / "web"
    assert root is not None
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
        from monty_runtime.conformance import main as conformance_main

        return conformance_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "build":
        return _build(args.project, args.force)
    if args.command == "serve":
        return _serve(args)
    if args.command == "mcp":
        from ._mcp import main as mcp_main

        return mcp_main(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
