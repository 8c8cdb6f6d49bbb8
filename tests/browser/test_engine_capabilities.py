"""What each engine offers the runtime, detected and reported, and what the runtime does
with it: in every engine and server mode, against the table of tests/browser/engines.py
(EXPECTED, the README's browser support table).

* ``rt.info.env.capabilities`` reports JSPI, SharedArrayBuffer and cross-origin isolation
  as detected in the worker;
* a top-level sync-style host call (``x = add(2, 3)``) works in every engine: blocking
  with JSPI or Atomics, else awaited by the REPL;
* a sync-style call inside a function needs JSPI or shared memory; without both it fails
  with a TypeError that says which is missing and why;
* an interrupt of a tight loop keeps the state where there is shared memory, else takes
  the hard path (``sessionLost``).
"""

from __future__ import annotations

from typing import Any

import pytest
from support.engines import EXPECTED
from support.runtime_page import evaluate, open_runtime_page

pytestmark = [pytest.mark.engine_paths, pytest.mark.webkit_paths]

CAPS_JS = """async () => {
  const rt = await M.MontyRuntime.create({ functions: { add: (a, b) => a + b } });
  const env = rt.info.env;
  const top = await H.run(rt, "x = add(2, 3)\\ny = add(x, 1) * 2\\n[x, y]");
  const nested = await H.run(rt, "def g():\\n    return add(1, 2)\\ng()");
  const gathered = await H.run(rt,
    "import asyncio\\nawait asyncio.gather(add(1, 1), add(2, 2))");
  await rt.dispose();
  return { env, top, nested, gathered };
}"""


def test_capabilities_are_detected_and_sync_style_calls_work_where_they_can(
    page: Any, server: Any, engine: str
) -> None:
    open_runtime_page(page, server)
    out = evaluate(page, CAPS_JS, timeout_s=400)
    expected = EXPECTED[engine]
    shared = server.isolated and expected.shared_memory_when_isolated
    caps = out["env"]["capabilities"]
    assert caps["crossOriginIsolated"] is server.isolated
    assert caps["jspi"] is expected.jspi
    assert caps["sharedArrayBuffer"] is shared
    assert out["env"]["syncBuffer"] is shared
    # Top level: in every engine.
    assert out["top"]["result"]["value"] == [5, 12], out["top"]
    assert out["gathered"]["result"]["value"] == [2, 4], out["gathered"]
    nested = out["nested"]["result"]
    if expected.jspi or shared:
        assert nested["value"] == 3, nested
    else:
        error = nested["error"]
        assert error["type"] == "TypeError", nested
        assert "add() cannot be called synchronously here" in error["message"]
        assert "no JSPI in this browser" in error["message"]
        if server.isolated:
            # WebKitGTK: isolated, yet no SharedArrayBuffer; the message says so.
            assert "no SharedArrayBuffer, although the page is cross-origin isolated" in (
                error["message"]
            )
        else:
            assert "not cross-origin isolated" in error["message"]
        assert "await add(...)" in error["message"]


def test_interrupt_keeps_state_with_shared_memory_else_takes_the_hard_path(
    page: Any, server: Any, engine: str
) -> None:
    open_runtime_page(page, server)
    out = evaluate(page, """async () => {
      const rt = await M.MontyRuntime.create();
      await rt.execute("kept = 41").result;
      const h = rt.execute("n = 0\\nwhile True:\\n    n += 1");
      await H.waitEvent(h, (ev) => ev.type === "run_started");
      await new Promise((r) => setTimeout(r, 200));
      rt.interrupt();
      const res = await H.settle(h.result);
      const kept = await H.settle(rt.execute("kept + 1").result);
      await rt.dispose();
      return { res, kept };
    }""", timeout_s=600)
    res = out["res"]["result"]
    assert res["error"]["type"] == "KeyboardInterrupt"
    if server.isolated and EXPECTED[engine].shared_memory_when_isolated:
        assert res["sessionLost"] is False
        assert out["kept"]["result"]["value"] == 42
    else:
        assert res["sessionLost"] is True
        reason = "not cross-origin isolated" if not server.isolated else "no SharedArrayBuffer"
        assert reason in res["error"]["message"], res["error"]
        assert out["kept"]["result"]["error"]["type"] == "NameError"
