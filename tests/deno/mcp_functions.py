"""Host functions for the MCP server tests (``--functions mcp_functions``)."""

from __future__ import annotations

import asyncio


def add(a: int, b: int) -> int:
    """Add two integers.

    Only the first line goes into the tool description."""
    return a + b


async def slow_echo(text: str, delay: float = 0.05) -> str:
    """Echo text after a delay."""
    await asyncio.sleep(delay)
    return text
