"""MontyRuntime natively (monty_runtime.runtime): the public API, execute_sync and the
context manager, schemas from type hints, extensions and their lifecycle."""

from __future__ import annotations

from typing import Any

import pytest

import monty_runtime
from monty_runtime import (
    Extension,
    HostFunction,
    MontyRuntime,
    StateError,
)


def test_public_api_is_exact() -> None:
    assert sorted(monty_runtime.__all__) == sorted(
        [
            "ExecutionHandle",
            "ExecutionResult",
            "Extension",
            "HostFunction",
            "Limits",
            "MontyRuntime",
            "ScriptError",
            "StateError",
        ]
    )
    for name in monty_runtime.__all__:
        assert getattr(monty_runtime, name) is not None


def test_execute_sync_and_context_manager() -> None:
    with MontyRuntime() as rt:
        assert rt.execute_sync("1 + 1").value == 2
        assert rt.execute_sync("_ = 5\n_ * 2").value == 10


async def test_execute_sync_inside_loop_is_refused() -> None:
    async with MontyRuntime() as rt:
        with pytest.raises(RuntimeError, match="running event loop"):
            rt.execute_sync("1")


def test_execute_without_loop_is_a_clear_error() -> None:
    rt = MontyRuntime()
    with pytest.raises(StateError, match="execute_sync"):
        rt.execute("1")


async def test_schemas_from_type_hints() -> None:
    def search(query: str, limit: int = 10, tags: list[str] | None = None) -> list[str]:
        """Search the notes.

        More text."""
        return []

    rt = MontyRuntime(functions=[search])
    (schema,) = rt.schemas
    assert schema["name"] == "search"
    assert schema["description"] == "Search the notes."
    assert schema["parameters"] == {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "limit": {"type": "integer"},
            "tags": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
        },
        "required": ["query"],
    }


async def test_extension_namespace_and_lifecycle() -> None:
    log: list[str] = []

    class Weather(Extension):
        namespace = "weather"

        def functions(self) -> list[Any]:
            def forecast(city: str) -> str:
                return f"sunny in {city}"

            return [forecast]

        def on_attach(self, runtime: MontyRuntime) -> None:
            log.append("attach weather")

        async def on_dispose(self, runtime: MontyRuntime) -> None:
            log.append("dispose weather")

    class Notes(Extension):
        namespace = "notes"

        def functions(self) -> list[Any]:
            async def count() -> int:
                return 3

            return [HostFunction.from_callable(count)]

        async def on_attach(self, runtime: MontyRuntime) -> None:
            log.append("attach notes")

        def on_dispose(self, runtime: MontyRuntime) -> None:
            log.append("dispose notes")

    rt = MontyRuntime(extensions=[Weather(), Notes()])
    assert log == []  # attach happens on first use, not at construction
    assert [s["name"] for s in rt.schemas] == ["weather.forecast", "notes.count"]
    assert (await rt.run("weather.forecast('Oslo')")).value == "sunny in Oslo"
    assert (await rt.run("notes.count()")).value == 3
    assert log == ["attach weather", "attach notes"]
    await rt.dispose()
    assert log == ["attach weather", "attach notes", "dispose notes", "dispose weather"]


async def test_extension_attach_error_rejects_and_dispose_errors_collected() -> None:
    class Bad(Extension):
        namespace = "bad"

        def on_attach(self, runtime: MontyRuntime) -> None:
            raise OSError("no database")

    rt = MontyRuntime(extensions=[Bad()])
    with pytest.raises(StateError, match="failed to attach: OSError: no database"):
        await rt.run("1")

    class Fails(Extension):
        namespace = "fails"

        def on_dispose(self, runtime: MontyRuntime) -> None:
            raise RuntimeError("close failed")

    class Fine(Extension):
        namespace = "fine"
        closed = False

        def on_dispose(self, runtime: MontyRuntime) -> None:
            Fine.closed = True

    rt2 = MontyRuntime(extensions=[Fine(), Fails()])
    await rt2.run("1")
    with pytest.raises(ExceptionGroup) as info:
        rt2.dispose()
    assert "close failed" in str(info.value.exceptions[0])
    assert Fine.closed  # the others were still disposed


async def test_released_is_done_when_the_guard_is_free_and_finished_is_its_deprecated_name() -> None:
    async with MontyRuntime() as rt:
        h = rt.execute("import time\ntime.sleep(0.05)\n1")
        assert not h.released.done()
        await h.released
        assert (await rt.execute("2").result).value == 2  # the guard was free by then
        with pytest.warns(DeprecationWarning, match="released"):
            assert h.finished is h.released
