"""The JS tool bindings (web/tools.js) against the browser runtime, call for call the same
as Python's monty_runtime.tools natively; and the agent replay page (web/agent.html)
against examples/agent_replay.py, policy by policy.

Each sequence is a list of batches; the calls of a batch are made in parallel (as a
planner's parallel tool calls), the batches one after the other.  The same sequence
runs through Python's binding on the native runtime and through tools.js on the browser
runtime, and the payloads must be identical, except a busy payload's retry_after_ms (a
timing estimate) and the caret lines of tracebacks (they differ between Python versions).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from support.runtime_page import evaluate, open_runtime_page

from monty_runtime import MontyRuntime
from monty_runtime.tools import bind_tool

ROOT = Path(__file__).resolve().parents[2]
BUSY = {"type": "StateError", "message": "Bridge is already executing"}
_CARETS = re.compile(r"^[ \t]*[~^]+[ \t~^]*\n", re.MULTILINE)


async def _lookup(city: str) -> dict[str, Any]:
    await asyncio.sleep(0.02)
    return {"city": city, "temp": 21.5}


def _add(a: int, b: int) -> int:
    return a + b


_lookup.__name__ = "lookup"
_add.__name__ = "add"

JS_FUNCTIONS = """(params) => ({
  lookup: { fn: async (city) => { await new Promise((r) => setTimeout(r, 20)); return { city, temp: 21.5 }; },
            parameters: params.lookup },
  add: { fn: (a, b) => a + b, parameters: params.add },
})"""


def _slow(i: int) -> str:
    return json.dumps({"code": f"import asyncio\nawait asyncio.sleep(0.01)\nlog.append({i})\nlen(log)"})


SEQUENCES: dict[str, list[list[Any]]] = {
    "queue": [
        [{"code": "log = []"}],
        [_slow(i) for i in range(6)],
        [
            {"code": "print('before')\n1/0"},  # a failing call ...
            {"code": "'after'"},  # ... followed by good ones
            {"code": 5},
            "not json",
            '{"code": "1",}',
            {"code": "log"},
        ],
        [{"code": "w = await lookup('Paris')\nw"}, {"code": "add(2, 3)"}, {"code": "w['city']"}],
    ],
    "busy": [
        [
            {"code": "import asyncio\nawait asyncio.sleep(0.3)\n'first'"},
            {"code": "'second'"},
            {"code": "'third'"},
        ],
        [{"code": "raise ValueError('x')"}],
        [{"code": "1 + 1"}],
        [{"code": "r = await lookup('Oslo')\nprint(r)\nr['city']"}, {"code": "'rejected'"}],
        [{"code": "s = 0\nfor i in range(300_000):\n    s += i\ns"}, {"code": "'also rejected'"}],
        [{"code": "1", "x": 2}, {"code": "add(1, 'a')"}],
        [{"code": "'second'"}],
    ],
    "sandbox": [
        [{"code": f"import asyncio\nawait asyncio.sleep(0.01)\nv = {i}\nprint(v)\nv"} for i in range(6)],
        [{"code": "v"}],
        [{"code": "await lookup('Lima')"}, {"code": "1/0"}, {"code": "add(1, 2)"}],
    ],
}


def _in_thread(coro: Any) -> Any:
    # Playwright's sync API owns this thread's loop: run native asyncio in another.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=120)


async def _native(policy: str, batches: list[list[Any]]) -> dict[str, Any]:
    rt = MontyRuntime(functions=[_lookup, _add], sandbox=policy == "sandbox")
    tool = bind_tool(rt, policy)  # type: ignore[arg-type]
    try:
        out = [list(await asyncio.gather(*(tool.call(a) for a in batch))) for batch in batches]
        return {"out": out, "definition": tool.definition(), "schemas": rt.schemas}
    finally:
        rt.dispose()


def _comparable(payload: dict[str, Any]) -> dict[str, Any]:
    out = dict(payload)
    if out.get("status") == "busy":
        assert isinstance(out.pop("retry_after_ms"), int | float)
    error = out.get("error")
    if isinstance(error, dict) and isinstance(error.get("traceback"), str):
        out["error"] = {**error, "traceback": _CARETS.sub("", error["traceback"])}
    return out


@pytest.fixture
def rpage(page: Any, server: Any) -> Any:
    return open_runtime_page(page, server)


@pytest.mark.parametrize("policy", ["queue", "busy", "sandbox"])
def test_same_payloads_as_python(rpage: Any, policy: str) -> None:
    batches = SEQUENCES[policy]
    native = _in_thread(_native(policy, batches))
    params = {s["name"]: s["parameters"] for s in native["schemas"]}
    web = evaluate(rpage, """async ({ batches, policy, params }) => {
      const T = await import("../tools.js");
      const functions = (JS_FUNCTIONS)(params);
      const rt = await M.MontyRuntime.create({ functions, sandbox: policy === "sandbox", poolSize: 2 });
      try {
        const tool = T.bindTool(rt, policy);
        const out = [];
        for (const batch of batches) out.push(await Promise.all(batch.map((a) => tool.call(a))));
        return { out, definition: tool.definition() };
      } finally {
        await rt.dispose();
      }
    }""".replace("JS_FUNCTIONS", JS_FUNCTIONS), {"batches": batches, "policy": policy, "params": params}, timeout_s=180)

    assert web["definition"] == native["definition"]
    for b, (nat_batch, web_batch) in enumerate(zip(native["out"], web["out"], strict=True)):
        for c, (nat, got) in enumerate(zip(nat_batch, web_batch, strict=True)):
            assert _comparable(got) == _comparable(nat), (
                f"batch {b} call {c} ({batches[b][c]!r}):\n native  {nat}\n browser {got}"
            )
    statuses = [[p["status"] for p in batch] for batch in web["out"]]
    if policy == "queue":
        assert statuses[1] == ["ok"] * 6
        assert [p["value"] for p in web["out"][1]] == [1, 2, 3, 4, 5, 6]
        assert statuses[2] == ["error", "ok", "error", "error", "error", "ok"]
        assert web["out"][2][5]["value"] == list(range(6))
    elif policy == "busy":
        assert statuses[0] == ["ok", "busy", "busy"]
        assert all(p["error"] == BUSY for p in web["out"][0][1:])
        assert statuses[3] == ["ok", "busy"] and statuses[4] == ["ok", "busy"]
        assert statuses[6] == ["ok"]
    else:
        assert [p["value"] for p in web["out"][0]] == list(range(6))
        assert web["out"][1][0]["error"]["type"] == "NameError"


def test_bindings_in_the_page_never_reject(rpage: Any) -> None:
    out = evaluate(rpage, """async () => {
      const T = await import("../tools.js");
      const rt = await M.MontyRuntime.create();
      const q = T.queueBinding(rt);
      const b = T.busyBinding(rt);
      const bad = await Promise.all([q.call("{"), b.call([]), q.call({ code: "x".repeat(1_000_001) })]);
      let refused = null;
      try { T.sandboxBinding(rt); } catch (err) { refused = err.name; }
      await rt.dispose();
      const disposed = await Promise.all([q.call({ code: "1" }), b.call({ code: "1" })]);
      return { bad, refused, disposed };
    }""", timeout_s=120)
    assert [p["error"]["type"] for p in out["bad"]] == ["InvalidArguments"] * 3
    assert out["bad"][2]["error"]["message"] == "code is over the limit of 1000000 bytes"
    assert out["refused"] == "RangeError"
    for p in out["disposed"]:
        assert p == {"status": "error", "value": None, "stdout": "", "reason": "disposed",
                     "error": {"type": "StateError", "message": "MontyRuntime has been disposed"}}


# --------------------------------------------------------------------- agent replay


def _native_replay(policy: str) -> list[dict[str, Any]]:
    spec = importlib.util.spec_from_file_location("agent_replay", ROOT / "examples" / "agent_replay.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    transcript = json.loads((ROOT / "examples" / "transcript.json").read_text())
    messages: list[dict[str, Any]] = _in_thread(module.replay(transcript, policy, out=io.StringIO()))
    return messages


@pytest.mark.parametrize("policy", ["queue", "busy", "sandbox"])
@pytest.mark.chromium_only("selectors through Playwright")
def test_agent_page_replays_like_python(page: Any, server: Any, policy: str) -> None:
    native = {m["tool_call_id"]: json.loads(m["content"]) for m in _native_replay(policy)}
    response = page.goto(server.url + f"demos/agent.html?policy={policy}", wait_until="load")
    assert response is not None and response.ok
    page.wait_for_selector("body[data-state=done], body[data-state=failed]", timeout=180_000)
    assert page.get_attribute("body", "data-state") == "done", page.text_content("#status")
    cards = page.eval_on_selector_all(
        ".tool-call",
        "els => els.map(e => [e.dataset.callId, e.dataset.status, e.querySelector('.payload').textContent])",
    )
    shown = {call_id: json.loads(text) for call_id, _status, text in cards}
    assert list(shown) == list(native), "every tool call of the transcript is shown, in order"
    for call_id, status, _text in cards:
        assert status == shown[call_id]["status"]
        assert _comparable(shown[call_id]) == _comparable(native[call_id]), (
            f"{policy} {call_id}:\n native  {native[call_id]}\n browser {shown[call_id]}"
        )
    # what each policy means, as the model sees it
    if policy == "queue":
        assert shown["call_4"]["value"] == "Paris"
    elif policy == "busy":
        assert shown["call_3"]["status"] == "busy"
    else:
        assert shown["call_2"]["error"]["type"] == "NameError"
    assert "done" in (page.text_content("#status") or "")
    definition = json.loads(page.text_content("#definition") or "{}")
    assert definition["function"]["name"] == "run_python"
