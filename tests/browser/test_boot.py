"""The worker boot chain (web/worker/boot.js) through web/demos/boot-check.html, in both server modes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from support.engines import EXPECTED

from monty_runtime._server import RunningServer

pytestmark = [pytest.mark.engine_paths, pytest.mark.webkit_paths]


def wait_until(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


STEPS = [
    "lockfile",
    "loadPyodide",
    "loadPackage:monty-runtime",
    "loadPackage:micropip",
    "import:monty_runtime",
]
# Generous: a cold loadPyodide takes WebKitGTK a minute and more on a busy machine (the
# boot-check page's own per-step default is 60 s, so the happy paths pass ?timeout=).
BOOT_TIMEOUT_MS = 300_000
SLOW_STEPS = "timeout=240000"


def boot_result(page: Any, timeout_ms: int = BOOT_TIMEOUT_MS) -> dict[str, Any]:
    page.wait_for_function(
        "window.bootCheck && window.bootCheck.state === 'done'", timeout=timeout_ms
    )
    result: dict[str, Any] = page.evaluate("window.bootCheck.result")
    return result


def test_boot_imports_monty_runtime_on_python_314(
    server: RunningServer, open_page: Any, web_build: Path, engine: str
) -> None:
    mark = len(server.requests())
    page = open_page(server, f"demos/boot-check.html?{SLOW_STEPS}")
    result = boot_result(page)

    assert result["ok"], result.get("error")
    assert result["version"].startswith("3.14"), result["version"]
    assert result["pyodideVersion"] == "314.0.7"
    assert list(result["phases"]) == STEPS
    assert all(ms >= 0 for ms in result["phases"].values())
    # Isolation follows the server mode, in the page and in the worker.
    assert page.evaluate("self.crossOriginIsolated") is server.isolated
    assert result["crossOriginIsolated"] is server.isolated
    expected = EXPECTED[engine]
    assert result["sharedArrayBuffer"] is (server.isolated and expected.shared_memory_when_isolated)
    # The worker's CSP is in force (no string evaluation); JSPI is on by default where
    # the engine has it.
    assert result["evalBlocked"] is True
    assert result["jspi"] is expected.jspi

    # The worker fetched Pyodide, our lock file and our wheel from our own server.
    info = json.loads((web_build / "build-info.json").read_text())
    records = server.requests()[mark:]
    served = {(r.path, r.status) for r in records}
    for path in (
        "/demos/boot-check-worker.js",
        "/worker/boot.js",
        "/node_modules/pyodide/pyodide.mjs",
        "/node_modules/pyodide/pyodide.asm.wasm",
        "/node_modules/pyodide/python_stdlib.zip",
        "/dist/pyodide-lock.json",
        f"/dist/{info['wheel']}",
        "/dist/micropip-0.11.1-py3-none-any.whl",
    ):
        assert (path, 200) in served, f"{path} not served with 200: {sorted(served)}"
    dests = {r.path: r.dest for r in records}
    assert dests["/demos/boot-check-worker.js"] == "worker"


@pytest.mark.only_engines(
    "chromium", "firefox",
    reason="WebKitGTK's WebDriver takes a proxy per session only, not per context",
)
def test_no_request_leaves_the_origin(
    server: RunningServer, logging_proxy: Any, browser: Any
) -> None:
    """Every request of the page and its worker goes through a logging proxy (a context
    proxy with loopback not bypassed); only our server may appear in it.

    A context proxy carries exactly the page's and its workers' traffic; the browser's
    own background requests (Debian's Chromium asks Google for accounts and component
    updates at start-up) use the default profile's network and are out of scope.
    """
    origin = f"127.0.0.1:{server.port}"
    proxy = logging_proxy({origin})
    context = browser.new_context(proxy=proxy.playwright_proxy())
    try:
        page = context.new_page()
        page.goto(f"{server.url}demos/boot-check.html", wait_until="load")
        result = boot_result(page)
        assert result["ok"], result.get("error")
        ran = page.evaluate("window.bootCheck.run('sum(range(10))')")
        assert ran["ok"] and ran["value"] == 45, ran
        page.evaluate("window.bootCheck.stop()")
        booted = list(proxy.hosts)

        # Control: a cross-origin request from the page does show up in the proxy log.
        page.evaluate("fetch('http://leak-check.invalid/x').catch(() => null)")
        assert wait_until(lambda: "leak-check.invalid" in proxy.requested_hosts(), 10)
    finally:
        context.close()

    targets = [target for _method, _host, target in booted]
    # The proxy saw the worker's traffic (dedicated-worker fetches included) ...
    for path in ("/node_modules/pyodide/pyodide.asm.wasm", "/dist/pyodide-lock.json"):
        assert any(t.endswith(path) for t in targets), targets
    # ... and during the boot and the run nothing went anywhere but our server.
    assert {host for _method, host, _target in booted} == {origin}, booted


def test_wrong_lock_file_url_fails_fast_naming_the_step(
    server: RunningServer, open_page: Any
) -> None:
    started = time.monotonic()
    page = open_page(server, "demos/boot-check.html?lock=dist/no-such-lock.json&timeout=10000")
    result = boot_result(page, timeout_ms=30_000)
    elapsed = time.monotonic() - started

    assert result["ok"] is False
    error = result["error"]
    assert error["name"] == "BootError"
    assert error["step"] == "lockfile"
    assert "lockfile" in error["message"] and "404" in error["message"], error
    assert elapsed < 20, f"the failure took {elapsed:.1f} s"


def test_not_a_lock_file_fails_naming_the_step(server: RunningServer, open_page: Any) -> None:
    page = open_page(server, "demos/boot-check.html?lock=dist/build-info.json&timeout=10000")
    result = boot_result(page, timeout_ms=30_000)
    assert result["ok"] is False
    assert result["error"]["step"] == "lockfile"
    assert "not a Pyodide lock file" in result["error"]["message"]


def test_wrong_package_base_url_fails_in_load_package(
    server: RunningServer, open_page: Any
) -> None:
    # Per step 120 s: a cold loadPyodide takes WebKitGTK tens of seconds on a busy machine.
    page = open_page(server, "demos/boot-check.html?base=/no-such-folder/&timeout=120000")
    result = boot_result(page, timeout_ms=BOOT_TIMEOUT_MS)
    assert result["ok"] is False
    error = result["error"]
    assert error["step"] == "loadPackage:monty-runtime", error
    assert "loadPackage:monty-runtime" in error["message"]


def test_a_stuck_step_times_out_with_a_boot_error(server: RunningServer, open_page: Any) -> None:
    page = open_page(server, "demos/boot-check.html?autostart=0")
    outcome = page.evaluate(
        """async () => {
            const m = await import("../worker/boot.js");
            const started = performance.now();
            try {
                await m.runStep("stuck", () => new Promise(() => {}), { timeoutMs: 300 });
                return { threw: false };
            } catch (e) {
                return { threw: true, name: e.name, step: e.step, message: e.message,
                         ms: performance.now() - started, isBootError: e instanceof m.BootError };
            }
        }"""
    )
    assert outcome["threw"] is True
    assert outcome["isBootError"] and outcome["name"] == "BootError"
    assert outcome["step"] == "stuck"
    assert "did not finish within 300 ms" in outcome["message"]
    assert outcome["ms"] < 5_000


def test_bare_pyodide_worker_runs_code(server: RunningServer, open_page: Any) -> None:
    page = open_page(server, f"demos/boot-check.html?mode=bare&{SLOW_STEPS}")
    result = boot_result(page)
    assert result["ok"], result.get("error")
    assert list(result["phases"]) == ["lockfile", "loadPyodide"]
    ran = page.evaluate("window.bootCheck.run('1+1')")
    assert ran["ok"] and ran["value"] == 2
    failed = page.evaluate("window.bootCheck.run('1/0')")
    assert failed["ok"] is False and "ZeroDivisionError" in failed["error"]
