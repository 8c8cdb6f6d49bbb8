"""Lockdown of the worker: the CSP check at boot, the import guard, and the escape
probes (tests/browser/escape_probes.py), in both server modes.

Executed code must reach nothing but its host functions. The probe table is printed
(``pytest -s`` shows it); every probe is blocked in the deployed runtime except the
residual risks the README names, and this module asserts exactly that set. For
comparison the same probes run under the CSP alone (boot-check's bare worker: no
import guard, no API removal) and in the runtime without the CSP.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import config, forward_console
from support.engines import EXPECTED
from support.escape_probes import (
    CSP_ONLY_ALLOWED,
    GUARD_PROBES,
    JS_PROBES,
    NO_CSP_ALLOWED,
    PAGE_PROBES,
    RESIDUAL_RISKS,
    Column,
    Sink,
    format_table,
    run_column,
    run_page_probes,
)
from support.runtime_page import HELPERS_JS, evaluate, open_runtime_page

from monty_runtime._server import RunningServer, start_server

# The probe table boots nine workers per server mode in one fixture: more than the
# default per-test timeout on a busy machine (scaled per engine in conftest.py).
pytestmark = [pytest.mark.engine_paths, pytest.mark.timeout(360)]

MODES = list(config.SERVER_MODES)


@pytest.fixture(scope="module")
def no_csp_servers() -> Iterator[dict[str, RunningServer]]:
    """Servers that send no Content-Security-Policy, one per isolation mode."""
    servers: dict[str, RunningServer] = {}
    yield servers
    for srv in servers.values():
        srv.stop()


def _server(servers: dict[str, RunningServer], mode: str, *, csp: bool = True) -> RunningServer:
    if mode not in servers:
        servers[mode] = start_server(config.WEB_ROOT, port=0,
                                     isolated=config.SERVER_MODES[mode], csp=csp)
    return servers[mode]


def _runtime_page(context: Any, srv: RunningServer, label: str) -> Any:
    page = context.new_page()
    forward_console(page, label)
    return open_runtime_page(page, srv)


# ------------------------------------------------------------------ the CSP check at boot


def test_worker_without_csp_refuses_to_boot_unless_the_page_opts_out(
    server: RunningServer, no_csp_servers: dict[str, RunningServer], context: Any
) -> None:
    mode = "isolated" if server.isolated else "not_isolated"
    bare = _server(no_csp_servers, mode, csp=False)
    page = _runtime_page(context, bare, "no-csp")
    out = evaluate(page, """async () => {
      const refused = await M.MontyRuntime.create().then(() => null, H.errorOf);
      const rt = await M.MontyRuntime.create({ requireCSP: false });
      const env = rt.info.env;
      const ran = await H.run(rt, "1 + 1");
      await rt.dispose();
      const badOptionAsync = await M.MontyRuntime.create({ requireCSP: "no" })
        .then(() => null, H.errorOf);
      return { refused, env, ran, badOptionAsync };
    }""", timeout_s=180)
    refused = out["refused"]
    assert refused is not None and refused["isBootError"], refused
    assert refused["step"] == "csp"
    assert "Content-Security-Policy" in refused["message"]
    assert "requireCSP" in refused["message"]
    # Opted out: it boots, says so, and runs code.
    csp = out["env"]["csp"]
    assert csp == {"enforced": False, "required": False, "evalBlocked": False,
                   "connectBlocked": False}
    assert out["ran"]["result"]["value"] == 2
    # The other layers are on regardless.
    assert out["env"]["importGuard"] is True
    assert out["env"]["lockdown"]["failed"] == []
    assert out["badOptionAsync"]["name"] == "TypeError"


def test_deployed_worker_reports_policy_guard_and_lockdown(
    server: RunningServer, page: Any, engine: str
) -> None:
    open_runtime_page(page, server)
    out = evaluate(page, """async () => {
      const rt = await M.MontyRuntime.create();
      const env = rt.info.env;
      const ran = await H.run(rt, "import json\\njson.dumps({'a': 1})");
      const imp = await H.run(rt, "import js");
      await rt.dispose();
      return { env, ran, imp };
    }""", timeout_s=180)
    env = out["env"]
    assert env["csp"] == {"enforced": True, "required": True, "evalBlocked": True,
                          "connectBlocked": True}
    assert env["importGuard"] is True
    assert env["lockdown"]["failed"] == []
    apis = ["fetch", "XMLHttpRequest", "WebSocket", "EventSource", "Worker", "indexedDB",
            "caches", "BroadcastChannel", "navigator.storage", "navigator.locks"]
    if not EXPECTED[engine].worker_storage:  # nothing to remove: it is not there
        apis.remove("navigator.storage")
        assert "storage" not in env["lockdown"]["remaining"]["navigator"]
    for name in apis:
        assert name in env["lockdown"]["removed"], name
    assert out["ran"]["result"]["value"] == '{"a": 1}'
    error = out["imp"]["result"]["error"]
    assert error["type"] == "ImportError" and "'js'" in error["message"]
    assert error["lineno"] == 1


def test_the_worker_fetches_nothing_after_boot(server: RunningServer, page: Any) -> None:
    """The worker's own boot requests go through the page; once ready, the worker has no
    fetch at all, and nothing it runs reaches the server."""
    open_runtime_page(page, server)
    # Who asked is read from the server's log (the Referer: the page or the worker's
    # script): a dedicated worker's requests do not show in every engine's request events.
    mark = len(server.requests())
    out = evaluate(page, """async () => {
      const rt = await M.MontyRuntime.create();
      await H.run(rt, "x = 1");
      const marker = await H.run(rt, [
        "import json",
        "js = vars(json)['__builtins__']['__import__']('js')",
        "try:\\n    js.fetch('/after-boot-marker')\\n    r = 'fetched'",
        "except Exception as e:\\n    r = type(e).__name__",
        "r",
      ].join("\\n"));
      await rt.dispose();
      return { marker };
    }""", timeout_s=180)
    assert out["marker"]["result"]["value"] == "AttributeError", out
    records = server.requests()[mark:]
    assert not any("after-boot-marker" in r.path for r in records)

    def by_page(record: Any) -> bool:
        return "index.html" in record.referrer

    # The boot's files were fetched by the page (for the worker, through boot-fetch.js):
    # the worker itself loads only its module scripts ("worker", "script"); every other
    # request, the lock file and Pyodide's files included, comes from the page.
    shown = [(r.path, r.dest, r.referrer) for r in records]
    assert records, "the runtime's boot reached the server"
    for r in records:
        if r.dest not in ("worker", "script"):
            assert by_page(r), (r.path, shown)


# ------------------------------------------------------------------------ the probe table


@pytest.fixture(scope="module", params=MODES, ids=MODES)
def probe_report(
    request: pytest.FixtureRequest,
    _servers: dict[str, RunningServer],
    no_csp_servers: dict[str, RunningServer],
    browser: Any,
) -> Iterator[dict[str, Any]]:
    """Run every probe once per server mode, in the three configurations."""
    mode: str = request.param
    deployed = _server(_servers, mode)
    bare = _server(no_csp_servers, mode, csp=False)
    ctx = browser.new_context()
    ctx.set_default_timeout(config.DEFAULT_TIMEOUT_MS)
    try:
        with Sink() as sink:
            page = _runtime_page(ctx, deployed, f"probes-{mode}")
            runtime = run_column(page, deployed, sink, "runtime", evaluate=evaluate)
            page_col, page_out = run_page_probes(page, evaluate)

            check = ctx.new_page()
            forward_console(check, f"probes-csp-only-{mode}")
            check.goto(deployed.url + "demos/boot-check.html?autostart=0", wait_until="load")
            assert check.evaluate(HELPERS_JS) is True
            csp_only = run_column(check, deployed, sink, "csp only", csp_only=True,
                                  evaluate=evaluate)

            nocsp_page = _runtime_page(ctx, bare, f"probes-no-csp-{mode}")
            no_csp = run_column(nocsp_page, bare, sink, "no csp", require_csp=False,
                                evaluate=evaluate)
            table = format_table([runtime, csp_only, no_csp], page_col)
            print(f"\nescape probes, server {mode}:\n{table}\n")
            yield {"mode": mode, "runtime": runtime, "page": page_col, "page_out": page_out,
                   "csp_only": csp_only, "no_csp": no_csp, "table": table,
                   "details": format_table([runtime, csp_only, no_csp], page_col, True)}
    finally:
        ctx.close()


def _allowed(column: Column, probes: tuple[str, ...]) -> set[str]:
    missing = [p for p in probes if p not in column.results]
    assert not missing, f"{column.name}: probes without an outcome: {missing}"
    return {p for p in probes if column.results[p]["outcome"] == "allowed"}


@pytest.mark.timeout(900)  # the first one runs the module's probe fixture
def test_every_probe_is_blocked_but_the_named_residual_risks(probe_report: dict[str, Any]) -> None:
    runtime: Column = probe_report["runtime"]
    page_col: Column = probe_report["page"]
    allowed = _allowed(runtime, (*GUARD_PROBES, *JS_PROBES)) | _allowed(page_col, PAGE_PROBES)
    unexpected = sorted(set(runtime.results) - {*GUARD_PROBES, *JS_PROBES})
    assert not unexpected, f"unexpected outcomes (requests nobody asked for?): {unexpected}"
    assert allowed == RESIDUAL_RISKS, probe_report["details"]


@pytest.mark.timeout(900)  # the first one runs the module's probe fixture
def test_the_import_guard_refuses_every_normal_route(probe_report: dict[str, Any]) -> None:
    runtime: Column = probe_report["runtime"]
    for probe in GUARD_PROBES[:-1]:
        result = runtime.results[probe]
        assert result["outcome"] == "blocked", (probe, result)
        assert "ImportError" in result["detail"], (probe, result)


@pytest.mark.timeout(900)  # the first one runs the module's probe fixture
def test_the_csp_alone_holds_the_network_and_string_evaluation(
    probe_report: dict[str, Any], engine: str
) -> None:
    """No import guard, no API removal: the CSP by itself blocks every connection, every
    string evaluation and every nested worker but a same-origin one (worker-src 'self';
    the lock-down removes Worker); storage is not its business."""
    csp_only: Column = probe_report["csp_only"]
    expected = set(CSP_ONLY_ALLOWED)
    if not EXPECTED[engine].worker_storage:  # no navigator.storage in the engine's workers
        expected.discard("origin private file system")
    assert _allowed(csp_only, (*GUARD_PROBES, *JS_PROBES)) == expected, probe_report["details"]


@pytest.mark.timeout(900)  # the first one runs the module's probe fixture
def test_without_the_csp_string_evaluation_gets_out(probe_report: dict[str, Any]) -> None:
    """Why requireCSP defaults to true: the other layers do not stop eval, and eval's
    import() reaches any origin."""
    no_csp: Column = probe_report["no_csp"]
    assert _allowed(no_csp, (*GUARD_PROBES, *JS_PROBES)) == NO_CSP_ALLOWED, (
        probe_report["details"]
    )


@pytest.mark.timeout(900)  # the first one runs the module's probe fixture
def test_forged_messages_change_nothing_on_the_page(probe_report: dict[str, Any]) -> None:
    page_col: Column = probe_report["page"]
    for probe in PAGE_PROBES[:6]:
        assert page_col.results[probe]["outcome"] == "blocked", (probe, page_col.results[probe])
    out = probe_report["page_out"]
    assert out["hits"] == 0
    assert out["afterOwn"]["result"]["value"] == 4


@pytest.mark.timeout(900)  # the first one runs the module's probe fixture
def test_runtimes_do_not_share_state(probe_report: dict[str, Any]) -> None:
    page_col: Column = probe_report["page"]
    result = page_col.results[PAGE_PROBES[7]]
    assert result["outcome"] == "blocked", result
