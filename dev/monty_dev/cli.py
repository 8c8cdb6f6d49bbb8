"""``python -m monty_dev {build,package,conformance}``: the development commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "conformance":
        from monty_dev.conformance import main as conformance_main

        return conformance_main(args_list[1:])
    parser = argparse.ArgumentParser(
        prog="python -m monty_dev",
        description="monty-runtime development tools (conformance: see `conformance --help`)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_build = sub.add_parser("build", help="build web/dist (worker wheel, micropip, lock file)")
    p_build.add_argument("--project", type=Path, default=None, help="project folder")
    p_build.add_argument("--force", action="store_true", help="redo every step")
    p_pkg = sub.add_parser(
        "package", help="build the wheel users install and the npm package into dist/"
    )
    p_pkg.add_argument("--project", type=Path, default=None, help="project folder")
    p_pkg.add_argument("--out", type=Path, default=None, help="output folder (default dist/)")
    sub.add_parser("conformance", help="run the conformance corpus", add_help=False)
    args = parser.parse_args(args_list)
    from monty_dev.build import BuildError, build

    try:
        if args.command == "build":
            build(args.project, force=args.force)
            return 0
        if args.command == "package":
            from monty_dev.package import package

            result = package(args.project, out=args.out)
            for path in (result.wheel, result.npm):
                print(f"package: {path} ({path.stat().st_size / 1e6:.1f} MB)")
            return 0
    except BuildError as exc:
        print(f"{args.command} failed: {exc}", file=sys.stderr)
        return 1
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
