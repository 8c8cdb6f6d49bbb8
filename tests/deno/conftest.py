"""Tests of the Deno backend (``MontyRuntime(..., backend="deno")``) and the MCP server.

They need the deno binary (the ``deno`` package from PyPI, in the dev extra) and the
web build (``scripts/dev setup``); without them they fail loudly, never skip.  One
runtime lives for the whole session so that the JS host process (and the stored
snapshot) stays warm between tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monty_runtime import MontyRuntime
from monty_runtime._deno import deno_executable, web_root


@pytest.fixture(autouse=True, scope="session")
def deno_host() -> Iterator[MontyRuntime]:
    deno_executable()  # raises StateError naming the fix
    web_root()
    keeper = MontyRuntime(backend="deno")
    keeper.execute_sync("1 + 1")  # the host is up and the snapshot made
    yield keeper
    keeper.dispose()
