"""Replay a recorded agent transcript against a runtime, natively.

The transcript (``transcript.json``) holds the assistant turns of an OpenAI-style
planner; some turns issue several ``run_python`` tool calls in parallel.  The replay
runs each turn's calls concurrently through a tool binding and prints every tool
result, so you can see what each consumer policy gives the model::

    python examples/agent_replay.py --policy queue     # state kept, calls wait in turn
    python examples/agent_replay.py --policy busy      # parallel calls get "busy"
    python examples/agent_replay.py --policy sandbox   # parallel, nothing persists

The browser version of the same replay is ``web/agent.html`` (served by
``scripts/dev serve``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from monty_runtime import MontyRuntime
from monty_runtime.tools import bind_tool

HERE = Path(__file__).resolve().parent

RATES = {"NOK": 11.7, "USD": 1.08, "EUR": 1.0}


async def get_weather(city: str) -> dict[str, Any]:
    """Current weather for a city (a stand-in that answers after a short delay)."""
    await asyncio.sleep(0.05)
    temps = {"Paris": 14, "Oslo": 3}
    return {"city": city, "temp_c": temps.get(city, 10), "sky": "clear"}


def convert(amount: float, currency: str) -> float:
    """Convert an amount of EUR to another currency."""
    return round(amount * RATES[currency], 2)


async def replay(
    transcript: dict[str, Any], policy: str, out: Any = sys.stdout
) -> list[dict[str, Any]]:
    """Run every tool call of the transcript; returns the tool messages in order."""
    runtime = MontyRuntime(functions=[get_weather, convert], sandbox=policy == "sandbox")
    tool = bind_tool(runtime, policy)  # type: ignore[arg-type]
    tool_messages: list[dict[str, Any]] = []
    try:
        print(f"tool definition: {json.dumps(tool.definition()['function']['name'])} "
              f"(policy: {policy})", file=out)
        for message in transcript["messages"]:
            if message["role"] == "user":
                print(f"\nuser: {message['content']}", file=out)
            elif message.get("tool_calls"):
                calls = message["tool_calls"]
                print(f"\nassistant: {len(calls)} tool call(s) in parallel", file=out)
                results = await asyncio.gather(
                    *(tool.call(call["function"]["arguments"]) for call in calls)
                )
                for call, result in zip(calls, results, strict=True):
                    tool_messages.append(
                        {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)}
                    )
                    code = json.loads(call["function"]["arguments"])["code"]
                    first = code.splitlines()[0]
                    print(f"  {call['id']}: {first!r}...", file=out)
                    print(f"    -> {json.dumps(result)}", file=out)
            else:
                print(f"\nassistant: {message['content']}", file=out)
    finally:
        runtime.dispose()
    return tool_messages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--policy", choices=["queue", "busy", "sandbox"], default="queue")
    ap.add_argument("--transcript", type=Path, default=HERE / "transcript.json")
    args = ap.parse_args(argv)
    transcript = json.loads(args.transcript.read_text())
    asyncio.run(replay(transcript, args.policy))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
