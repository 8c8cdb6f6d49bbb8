"""Browser settings shared by the browser tests and the browser benchmarks.

A plain module (not a package): load it with ``load_config()`` from
``tests/browser/conftest.py`` or ``benchmarks/``, since the name ``playwright.config``
cannot be imported normally.

Playwright cannot download browsers here; the tests drive Debian's Chromium
(``/usr/bin/chromium``) or the one named by ``MONTY_CHROMIUM``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent
WEB_ROOT = PROJECT_ROOT / "web"

CHROMIUM_PATH = os.environ.get("MONTY_CHROMIUM") or "/usr/bin/chromium"

# No sandbox (we run as root in containers), no GPU, and no background traffic of the
# browser's own (updates, sync, QUIC probes): the only requests are the page's.
# JSPI (WebAssembly.Suspending / WebAssembly.promising) is on by default in this
# Chromium, in pages and workers, so no --enable-features flag is needed.
LAUNCH_ARGS: list[str] = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Every browser test runs against both: name -> cross-origin isolated?
SERVER_MODES: dict[str, bool] = {"isolated": True, "not_isolated": False}

# Milliseconds.
DEFAULT_TIMEOUT_MS = 30_000
BOOT_TIMEOUT_MS = 120_000


def chromium_missing_message() -> str | None:
    """None when Chromium is usable, else a message saying what to do."""
    if os.path.isfile(CHROMIUM_PATH) and os.access(CHROMIUM_PATH, os.X_OK):
        return None
    return (
        f"Chromium not found at {CHROMIUM_PATH}; install Debian's chromium "
        "(apt-get install chromium) or set MONTY_CHROMIUM"
    )


def launch_browser(
    playwright: Any,
    *,
    extra_args: list[str] | None = None,
    headless: bool = True,
    **kwargs: Any,
) -> Any:
    """Launch Chromium with our flags (``playwright`` is the sync or async entry object).

    With the async API, await the result.
    """
    message = chromium_missing_message()
    if message is not None:
        raise FileNotFoundError(message)
    return playwright.chromium.launch(
        executable_path=CHROMIUM_PATH,
        args=[*LAUNCH_ARGS, *(extra_args or [])],
        headless=headless,
        **kwargs,
    )
