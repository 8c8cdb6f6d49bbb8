"""Print the escape-probe table: what executed code in a browser worker can reach.

Runs the probes of ``tests/browser/support/escape_probes.py`` (executed code trying the network,
string evaluation, nested workers, the origin's storage, forged messages, another
runtime) in three configurations -- the runtime as deployed, the CSP alone (a bare
Pyodide worker), the runtime without the CSP -- and prints, probe by probe, whether it
was blocked and by what, or allowed.  Not a test: the assertions live in
``tests/browser/test_escape_probes.py``.

    .venv/bin/python benchmarks/escape_probes.py [--no-isolation] [--details]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import load_module as _load  # type: ignore[import-not-found]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BROWSER_TESTS = PROJECT_ROOT / "tests" / "browser" / "support"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-isolation", action="store_true",
                        help="serve without cross-origin isolation")
    parser.add_argument("--details", action="store_true", help="show each outcome's detail")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(PROJECT_ROOT / "src"))
    from monty_dev.build import build
    from monty_runtime._server import start_server

    config = _load("monty_playwright_config", PROJECT_ROOT / "playwright.config.py")
    probes = _load("escape_probes", BROWSER_TESTS / "escape_probes.py")
    page_helpers = _load("runtime_page", BROWSER_TESTS / "runtime_page.py")
    build(PROJECT_ROOT, log=lambda _line: None)
    isolated = not args.no_isolation
    deployed = start_server(config.WEB_ROOT, isolated=isolated)
    bare = start_server(config.WEB_ROOT, isolated=isolated, csp=False)
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as pw, probes.Sink() as sink:
            browser = config.launch_browser(pw)
            try:
                context = browser.new_context()
                evaluate = page_helpers.evaluate
                page = page_helpers.open_runtime_page(context.new_page(), deployed)
                runtime = probes.run_column(page, deployed, sink, "runtime", evaluate=evaluate)
                page_col, _out = probes.run_page_probes(page, evaluate)
                check = context.new_page()
                check.goto(deployed.url + "demos/boot-check.html?autostart=0", wait_until="load")
                check.evaluate(page_helpers.HELPERS_JS)
                csp_only = probes.run_column(check, deployed, sink, "csp only", csp_only=True,
                                             evaluate=evaluate)
                page2 = page_helpers.open_runtime_page(context.new_page(), bare)
                no_csp = probes.run_column(page2, bare, sink, "no csp", require_csp=False,
                                           evaluate=evaluate)
            finally:
                browser.close()
    finally:
        deployed.stop()
        bare.stop()

    mode = "cross-origin isolated" if isolated else "not cross-origin isolated"
    print(f"escape probes ({mode}, Chromium, Pyodide worker)")
    print(probes.format_table([runtime, csp_only, no_csp], page_col, details=args.details))
    allowed = (runtime.allowed() | page_col.allowed())
    unexpected = allowed - probes.RESIDUAL_RISKS
    print(f"allowed in the runtime: {len(allowed)} (residual risks named in the README: "
          f"{len(allowed & probes.RESIDUAL_RISKS)}, unexpected: {len(unexpected)})")
    for name in sorted(unexpected):
        print(f"  UNEXPECTED: {name}")
    return 1 if unexpected else 0


if __name__ == "__main__":
    raise SystemExit(main())
