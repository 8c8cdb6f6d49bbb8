"""The worker's Content-Security-Policy is written in three places that must agree:
the dev server, the deployment snippets (export / headers) and the Vite plugin."""

from __future__ import annotations

from pathlib import Path

from monty_runtime import _deploy, _server

ROOT = Path(__file__).resolve().parents[2]


def test_the_worker_policy_is_the_same_in_the_server_the_snippets_and_the_vite_plugin() -> None:
    assert _deploy.WORKER_CSP == _server.WORKER_CSP
    assert f'"{_server.WORKER_CSP}"' in (ROOT / "web" / "npm" / "vite.js").read_text()
    assert "worker-src 'self'" in _server.WORKER_CSP
