"""The worker wheel's size and what it costs a cold boot, against another wheel in the
same run (the anchor): ``loadPackage:monty-runtime`` (fetch through the page, unpack)
and ``import:monty_runtime``, medians over alternating cold boots (``snapshot: false``,
no pool, a fresh browser context each).

    python benchmarks/worker_wheel.py --anchor OLD.whl [--runs 5]

``OLD.whl`` is a monty_runtime wheel of the same version built from another tree (e.g.
before the development tools left the package); it is served with the current JS host
from a copy of ``web/dist`` whose lock file lists it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

from _common import PROJECT_ROOT, summarize  # type: ignore[import-not-found]
from _common import load_module as _load

PHASES = ("loadPackage:monty-runtime", "import:monty_runtime")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _anchor_dist(anchor: Path) -> Path:
    """web/dist/anchor/: the current dist with the anchor wheel in place of ours."""
    dist = PROJECT_ROOT / "web" / "dist"
    info = json.loads((dist / "build-info.json").read_text())
    out = dist / "anchor"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    for name in [*info["extra_wheels"], "pyodide-lock.json", "build-info.json"]:
        shutil.copyfile(dist / name, out / name)
    shutil.copyfile(anchor, out / info["wheel"])
    lock = json.loads((out / "pyodide-lock.json").read_text())
    lock["packages"]["monty-runtime"]["sha256"] = _sha(anchor)
    (out / "pyodide-lock.json").write_text(json.dumps(lock))
    info["wheel_sha256"] = _sha(anchor)
    (out / "build-info.json").write_text(json.dumps(info))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--anchor", type=Path, required=True, help="the wheel to compare with")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from monty_dev.build import build
    from monty_runtime._server import start_server

    config = _load("monty_playwright_config", PROJECT_ROOT / "playwright.config.py")
    current = build(log=lambda line: None).wheel
    _anchor_dist(args.anchor)
    wheels = {"anchor": args.anchor, "current": current}
    lock_urls = {"anchor": "../dist/anchor/pyodide-lock.json", "current": "../dist/pyodide-lock.json"}
    samples: dict[str, dict[str, list[float]]] = {k: {p: [] for p in PHASES} for k in wheels}
    from playwright.sync_api import sync_playwright

    with start_server(PROJECT_ROOT / "web") as server, sync_playwright() as pw:
        browser = config.launch_browser(pw)
        for _ in range(args.runs):
            for name in ("anchor", "current"):
                context = browser.new_context()
                page = context.new_page()
                page.goto(server.url + "demos/index.html?autostart=0")
                phases: Any = page.evaluate(
                    """async (lockFileURL) => {
                      const M = await import("../monty-runtime.js");
                      const rt = await M.MontyRuntime.create({ lockFileURL, snapshot: false, pool: false });
                      const out = Object.fromEntries(rt.boot.phases.map((p) => [p.name, p.ms]));
                      await rt.dispose();
                      return out;
                    }""",
                    lock_urls[name],
                )
                for phase in PHASES:
                    samples[name][phase].append(float(phases[phase]))
                context.close()
        browser.close()
    shutil.rmtree(PROJECT_ROOT / "web" / "dist" / "anchor", ignore_errors=True)
    for name, wheel in wheels.items():
        with zipfile.ZipFile(wheel) as zf:
            unpacked = sum(i.file_size for i in zf.infolist())
            count = len(zf.infolist())
        print(f"{name:8} wheel {wheel.stat().st_size:>8} bytes ({unpacked} unpacked, {count} files)")
    base = {p: summarize(samples["anchor"][p])["median"] for p in PHASES}
    for phase in PHASES:
        for name in wheels:
            med = summarize(samples[name][phase])["median"]
            print(f"{phase:28} {name:8} median {med:7.1f} ms  ({med / base[phase]:.2f}x anchor; n={args.runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
