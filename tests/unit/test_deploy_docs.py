"""docs/deploy.md shows exactly what `monty-runtime headers KIND` prints."""

from __future__ import annotations

import re
from pathlib import Path

from monty_runtime._deploy import snippet

DOC = (Path(__file__).resolve().parents[2] / "docs" / "deploy.md").read_text()


def _block(after: str, lang: str = "") -> str:
    start = DOC.index(after)
    match = re.compile(r"```" + lang + r"\n(.*?)```", re.S).search(DOC, start)
    assert match is not None
    return match.group(1)


def test_the_documented_snippets_are_the_printed_ones() -> None:
    assert _block("### nginx", "nginx") == snippet("nginx")
    assert _block("### Caddy", "caddy") == snippet("caddy")
    assert _block("### Netlify and Cloudflare Pages") == snippet("netlify")


def test_no_types_block_outside_the_runtime_location() -> None:
    text = snippet("nginx")
    before_location = text.split("location ^~ /monty-runtime/ {")[0]
    assert "types" not in before_location.replace("Content-Type", "")
