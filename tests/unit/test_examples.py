"""The replayed agent example runs and shows what each policy gives the model."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("agent_replay", ROOT / "examples" / "agent_replay.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _replay(policy: str) -> dict[str, dict[str, Any]]:
    mod = _load()
    transcript = json.loads((ROOT / "examples" / "transcript.json").read_text())
    out = io.StringIO()
    messages = await mod.replay(transcript, policy, out=out)
    assert "tool call(s) in parallel" in out.getvalue()
    return {m["tool_call_id"]: json.loads(m["content"]) for m in messages}


async def test_queue_policy_replay_completes_every_call_with_state() -> None:
    r = await _replay("queue")
    assert len(r) == 6
    assert r["call_3"]["value"] == {"city": "Oslo", "temp_c": 3, "sky": "clear"}
    assert r["call_4"]["value"] == "Paris"  # state from earlier calls persisted
    assert r["call_5"]["value"] == 1404.0
    assert r["call_6"]["error"]["type"] == "TypeError"  # schema check reached the model


async def test_busy_policy_replay_surfaces_busy_to_the_model() -> None:
    r = await _replay("busy")
    assert r["call_2"]["status"] == "ok"
    assert r["call_3"]["status"] == "busy" and r["call_3"]["retry_after_ms"] > 0


async def test_sandbox_policy_replay_runs_parallel_without_state() -> None:
    r = await _replay("sandbox")
    assert r["call_2"]["error"]["type"] == "NameError"  # nothing persists
    assert r["call_5"]["value"] == 1404.0
