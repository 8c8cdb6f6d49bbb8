"""Backends: where a case runs.

A backend turns a :class:`~monty_dev.conformance.corpus.Case` into a
:class:`CaseOutcome` -- what each ``execute()`` of the case produced, as plain data
(values in the codec's wire form, errors and events as the dicts of
:meth:`Event.to_dict`).  The runner judges outcomes; a backend never does.

* :class:`NativeBackend` runs cases in this process with :class:`MontyRuntime`.
* The browser backends (``chromium``: a cross-origin isolated page, and
  ``chromium-noniso``: the same without isolation) run the same cases in the Pyodide
  workers of ``web/`` (module ``monty_dev.conformance.chromium``, whose
  ``create_backend(mode)`` returns an object of the :class:`Backend` protocol).  Other
  backends plug in with :func:`register_backend`.

How a backend must run a case (both backends must do the same):

1. A fresh runtime per case: ``MontyRuntime(functions=..., sandbox=case.sandbox,
   limits=case.limits)``; the host functions are ``case.external_functions``.
2. Host calls are numbered in call order across all functions and steps of the case
   (0, 1, ...).  Call ``k`` answers, in this order of precedence:
   ``asyncErrorMap[k]`` (raise), ``asyncResumeMap[k]`` (return), ``resumeErrors[k]``
   (raise), ``resumeValues[k]`` (return), else ``None``.  An error is a string (the
   message of a ``RuntimeError``) or ``{"type", "message"}`` (an exception of that type
   name).  A call answered from an async map, or of a function listed in
   ``hostDelays``, answers asynchronously (after the delay); others answer at once.
   ``hostSchemas`` gives a function typed parameters (a bad call is a ``TypeError`` in
   the executed code).  :class:`HostScript` implements these rules for any backend.
3. Steps run in order on the one runtime.  A ``concurrent`` step starts its first
   execution, waits until that execution has made a host call (held unanswered), then
   starts the second one; once the second has finished (or was rejected), the held
   call is answered and the first finishes.
4. Every ``execute()`` gives a :class:`RunOutcome`: the events of its handle, and
   ``rejected`` when ``execute()`` or its ``result`` raised (e.g. ``StateError``).
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import importlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from monty_runtime import codec
from monty_runtime.extensions import HostFunction
from monty_runtime.runtime import ExecutionHandle, MontyRuntime

from .corpus import Case, Step

__all__ = [
    "BROWSER_BACKENDS",
    "Backend",
    "BackendUnavailable",
    "CaseOutcome",
    "DenoConformanceBackend",
    "HostAnswer",
    "HostScript",
    "NativeBackend",
    "RunOutcome",
    "available_backends",
    "calls_from_events",
    "create_backend",
    "error_info",
    "make_exception",
    "register_backend",
]


# -- outcomes ------------------------------------------------------------------------------


def calls_from_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The host calls of one execution, from its events: ``name``, ``args``, ``kwargs``
    (wire form), ``call_id``, and ``result`` or ``error`` once finished."""
    calls: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for ev in events:
        if ev.get("type") == "call_started":
            call = {
                "name": ev.get("name"),
                "args": ev.get("args", []),
                "kwargs": ev.get("kwargs", {}),
                "call_id": ev.get("call_id"),
            }
            calls.append(call)
            by_id[str(ev.get("call_id"))] = call
        elif ev.get("type") == "call_finished":
            call = by_id.get(str(ev.get("call_id")), {})
            if "error" in ev:
                call["error"] = ev["error"]
            else:
                call["result"] = ev.get("result")
    return calls


@dataclass(slots=True)
class RunOutcome:
    """What one ``execute()`` produced, as plain data."""

    label: str = ""
    #: The value of the last expression, in the codec's wire form.
    value_wire: Any = None
    #: ``{type, message, traceback, lineno, filename}`` when the code raised.
    error: dict[str, Any] | None = None
    stdout: str = ""
    stderr: str = ""
    #: Host calls: ``{name, args, kwargs, call_id, result | error}`` (wire form).
    calls: list[dict[str, Any]] = field(default_factory=list)
    #: The handle's events, as ``Event.to_dict()`` dicts.
    events: list[dict[str, Any]] = field(default_factory=list)
    #: ``{type, message}`` when ``execute()`` (or awaiting its result) raised.
    rejected: dict[str, str] | None = None
    session_lost: bool = False
    duration_ms: float = 0.0
    #: Inconsistencies the backend saw (e.g. the result disagreeing with the events).
    problems: list[str] = field(default_factory=list)

    @property
    def value(self) -> Any:
        """The value, decoded (tuples, sets, big ints, ... as Python values)."""
        return codec.decode(self.value_wire)

    @classmethod
    def from_events(
        cls, label: str, events: list[dict[str, Any]], rejected: dict[str, str] | None = None
    ) -> RunOutcome:
        """Build an outcome from an execution's event dicts (what any backend sees)."""
        out = cls(label=label, events=list(events), rejected=rejected)
        out.calls = calls_from_events(events)
        out.stderr = "".join(
            str(e.get("text", ""))
            for e in events
            if e.get("type") == "print" and e.get("stream") == "stderr"
        )
        for ev in events:
            if ev.get("type") == "run_finished":
                out.value_wire = ev.get("value")
                out.stdout = str(ev.get("stdout", ""))
                out.duration_ms = float(ev.get("duration_ms", 0.0))
            elif ev.get("type") == "run_error":
                err = ev.get("error")
                out.error = dict(err) if isinstance(err, dict) else {"type": str(err)}
                out.stdout = str(ev.get("stdout", ""))
                out.duration_ms = float(ev.get("duration_ms", 0.0))
                out.session_lost = bool(ev.get("session_lost", False))
        if rejected is None:
            ends = [e for e in events if e.get("type") in ("run_finished", "run_error")]
            if len(ends) != 1:
                out.problems.append(
                    f"expected exactly one run_finished/run_error event, got {len(ends)}"
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "value": self.value_wire,
            "error": self.error,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "calls": self.calls,
            "events": self.events,
            "rejected": self.rejected,
            "session_lost": self.session_lost,
            "duration_ms": self.duration_ms,
            "problems": self.problems,
        }


@dataclass(slots=True)
class CaseOutcome:
    """What a case produced on one backend: one :class:`RunOutcome` per ``execute()``
    (steps in order; a concurrent step gives two).  ``value``, ``error``, ``stdout``,
    ``calls`` and ``events`` are those of the last execution (the only one of a plain
    case)."""

    backend: str
    case_key: str
    runs: list[RunOutcome] = field(default_factory=list)
    duration_ms: float = 0.0

    def _last(self) -> RunOutcome:
        return self.runs[-1] if self.runs else RunOutcome()

    @property
    def value(self) -> Any:
        return self._last().value

    @property
    def error(self) -> dict[str, Any] | None:
        return self._last().error

    @property
    def stdout(self) -> str:
        return self._last().stdout

    @property
    def calls(self) -> list[dict[str, Any]]:
        return self._last().calls

    @property
    def events(self) -> list[dict[str, Any]]:
        return self._last().events

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "case": self.case_key,
            "duration_ms": self.duration_ms,
            "runs": [r.to_dict() for r in self.runs],
        }


# -- the interface -------------------------------------------------------------------------


@runtime_checkable
class Backend(Protocol):
    """Runs cases.  ``start`` is awaited once before the first case (boot a browser,
    load Pyodide, ...), ``close`` once after the last.  ``run_case`` must not raise for
    anything the executed code does; an exception from it means the backend itself
    failed on that case (reported as an error of the case).

    Optionally, a backend also has ``async def prepare(cases, *, case_timeout)``: the
    runner calls it after ``start`` with every case it is about to run, in order (the
    browser backend boots runtimes ahead)."""

    name: str

    async def start(self) -> None: ...

    async def run_case(self, case: Case) -> CaseOutcome: ...

    async def close(self) -> None: ...


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (not implemented, browser missing, ...)."""


BackendFactory = Callable[[], Backend]
_registry: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``create_backend(name)`` call ``factory`` (replacing any earlier one)."""
    _registry[name] = factory


#: The browser engines (``monty_dev.conformance.chromium`` drives each).
BROWSER_ENGINES = ("chromium", "firefox", "webkit")
#: The browser backends: name -> server mode; the engine is the name's first part.
BROWSER_BACKENDS = {
    name: mode
    for engine in BROWSER_ENGINES
    for name, mode in ((engine, "isolated"), (f"{engine}-noniso", "not_isolated"))
}


def available_backends() -> list[str]:
    """Names ``--backend`` accepts (besides ``all``)."""
    return sorted({"native", "deno", *BROWSER_BACKENDS, *_registry})


def create_backend(name: str, **options: Any) -> Backend:
    """A backend by name.  Raises :class:`BackendUnavailable` (with the reason) when it
    cannot run here, ``ValueError`` for an unknown name.  ``options`` go to the browser
    backends (e.g. ``fresh_runtimes=True``)."""
    factory = _registry.get(name)
    if factory is not None:
        return factory()
    if name == "native":
        return NativeBackend()
    if name == "deno":
        return DenoConformanceBackend()
    if name in BROWSER_BACKENDS:
        try:
            module = importlib.import_module(f"{__package__}.chromium")
        except ImportError as exc:
            raise BackendUnavailable(
                f"chromium backend not available: {__package__}.chromium cannot be "
                f"imported ({exc}); run with --backend native"
            ) from None
        create = getattr(module, "create_backend", None)
        if not callable(create):
            raise BackendUnavailable(
                f"chromium backend not available: {module.__name__} has no create_backend()"
            )
        backend = create(BROWSER_BACKENDS[name], engine=name.split("-")[0], **options)
        if not isinstance(backend, Backend):
            raise BackendUnavailable(
                "chromium backend not available: create_backend() did not return a Backend"
            )
        return backend
    raise ValueError(f"unknown backend {name!r}; known: {', '.join(available_backends())}")


# -- the native backend ------------------------------------------------------------------------


def _exc_dict(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc)}


_BUILTIN_EXCEPTIONS = {
    name: obj
    for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, Exception)
}
_custom_exceptions: dict[str, type[Exception]] = {}


def error_info(spec: Any) -> dict[str, str]:
    """``{"type", "message"}`` of an error spec of a case: a message string (a
    ``RuntimeError``) or ``{"type", "message"}``."""
    if isinstance(spec, Mapping):
        return {
            "type": str(spec.get("type", "RuntimeError")),
            "message": str(spec.get("message", "")),
        }
    return {"type": "RuntimeError", "message": str(spec)}


def make_exception(info: Mapping[str, str]) -> Exception:
    """A Python exception for ``{"type", "message"}``: the builtin type of that name, else
    an ``Exception`` subclass of that name."""
    tname, message = info["type"], info["message"]
    cls = _BUILTIN_EXCEPTIONS.get(tname)
    if cls is None:
        cls = _custom_exceptions.get(tname)
        if cls is None:
            cls = _custom_exceptions[tname] = type(tname, (Exception,), {})
    return cls(message)


@dataclass(frozen=True, slots=True)
class HostAnswer:
    """How the host answers one call of a case."""

    #: The call's index in the case (0, 1, ... in call order).
    index: int
    value: Any = None
    #: ``{"type", "message"}`` when the call must raise.
    error: dict[str, str] | None = None
    #: Answer asynchronously (a pending promise / coroutine) rather than at once.
    asynchronous: bool = False
    #: Seconds to wait before answering (implies ``asynchronous``).
    delay: float = 0.0


class HostScript:
    """The scripted host of one case, independent of the platform: numbers the calls
    (thread-safe) and says how each is answered.  A browser backend can answer its JS
    host calls from it too (e.g. through a function exposed to the page)."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self._lock = threading.Lock()
        self._next = 0

    def answer(self, name: str) -> HostAnswer:
        """Take the next call index and answer it (see the module doc for the rules)."""
        with self._lock:
            k = self._next
            self._next += 1
        case, key = self.case, str(k)
        delay = float(case.host_delays.get(name, 0.0))
        late = bool(delay) or key in case.async_resume_map or key in case.async_error_map
        if key in case.async_error_map:
            error: dict[str, str] | None = error_info(case.async_error_map[key])
            value = None
        elif key in case.async_resume_map:
            error, value = None, case.async_resume_map[key]
        elif k < len(case.resume_errors) and case.resume_errors[k] is not None:
            error, value = error_info(case.resume_errors[k]), None
        elif k < len(case.resume_values):
            error, value = None, case.resume_values[k]
        else:
            error, value = None, None
        return HostAnswer(k, copy.deepcopy(value), error, late, delay)

    def parameters(self, name: str) -> dict[str, Any] | None:
        """The JSON Schema ``parameters`` object of a typed host function (from
        ``hostSchemas``), or ``None`` for an untyped one (any arguments)."""
        spec = self.case.host_schemas.get(name)
        if spec is None:
            return None
        if "properties" in spec:
            return dict(spec)
        return {
            "type": "object",
            "properties": {
                p: ({"type": t} if isinstance(t, str) else dict(t)) for p, t in spec.items()
            },
            "required": list(spec),
        }


class _NativeHost(HostScript):
    """:class:`HostScript` as native host functions, plus the hold used by concurrent
    steps."""

    def __init__(self, case: Case) -> None:
        super().__init__(case)
        self.hold = False  # hold calls unanswered (first execution of a concurrent step)
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    def call(self, name: str) -> Any:
        hold = self.hold
        answer = self.answer(name)
        if not (hold or answer.asynchronous):
            if answer.error is not None:
                raise make_exception(answer.error)
            return answer.value
        return self._later(answer, hold)

    async def _later(self, answer: HostAnswer, hold: bool) -> Any:
        if hold:
            self.held.set()
            await self.release.wait()
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.error is not None:
            raise make_exception(answer.error)
        return answer.value

    def functions(self) -> list[HostFunction]:
        out: list[HostFunction] = []
        for name in self.case.external_functions:
            stub = _Stub(self, name)
            params = self.parameters(name)
            if params is None:
                out.append(HostFunction.from_callable(stub, name=name))
            else:
                out.append(HostFunction(name=name, fn=stub, parameters=params))
        return out


class _Stub:
    """A host function of a case (sync; returns a coroutine when it answers later)."""

    def __init__(self, host: _NativeHost, name: str) -> None:
        self._host = host
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._host.call(self.__name__)


class NativeBackend:
    """Runs cases in this process with :class:`~monty_runtime.MontyRuntime`."""

    name = "native"
    #: ``MontyRuntime(backend=...)`` of the runtimes it makes.
    runtime_backend = "native"

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def run_case(self, case: Case) -> CaseOutcome:
        started = time.perf_counter()
        script = _NativeHost(case)
        runtime = MontyRuntime(
            functions=script.functions(),
            sandbox=case.sandbox,
            limits=dict(case.limits) if case.limits is not None else None,
            backend=self.runtime_backend,
        )
        outcome = CaseOutcome(self.name, case.key)
        try:
            for step in case.steps:
                if step.concurrent is not None:
                    outcome.runs.extend(await self._run_concurrent(runtime, step, script))
                else:
                    label = step.label if case.multi_step else ""
                    outcome.runs.append(await self._run_step(runtime, step, label))
        finally:
            runtime.dispose()
        outcome.duration_ms = round((time.perf_counter() - started) * 1000.0, 3)
        return outcome

    @staticmethod
    def _start(runtime: MontyRuntime, step: Step) -> ExecutionHandle:
        options: dict[str, Any] = {}
        if step.script_name is not None:
            options["script_name"] = step.script_name
        if step.inputs is not None:
            options["inputs"] = copy.deepcopy(dict(step.inputs))
        if step.limits is not None:
            options["limits"] = dict(step.limits)
        return runtime.execute(step.code, **options)

    async def _run_step(self, runtime: MontyRuntime, step: Step, label: str) -> RunOutcome:
        try:
            handle = self._start(runtime, step)
        except Exception as exc:
            return RunOutcome(label=label, rejected=_exc_dict(exc))
        return await self._finish(label, handle)

    async def _finish(self, label: str, handle: ExecutionHandle) -> RunOutcome:
        events: list[dict[str, Any]] = []

        async def collect() -> None:
            async for event in handle.events:
                events.append(event.to_dict())

        collector = asyncio.ensure_future(collect())
        rejected: dict[str, str] | None = None
        result = None
        try:
            result = await handle.result
        except Exception as exc:
            rejected = _exc_dict(exc)
        await collector
        out = RunOutcome.from_events(label, events, rejected)
        if result is not None:
            # The result and the events describe the same run: they must agree.
            err = None if result.error is None else result.error.to_dict()
            if err != out.error:
                out.problems.append(f"result.error {err!r} != run_error event {out.error!r}")
            if result.stdout != out.stdout:
                out.problems.append("result.stdout differs from the final event's stdout")
            if result.stderr != out.stderr:
                out.problems.append("result.stderr differs from the stderr print events")
            if result.session_lost != out.session_lost:
                out.problems.append("result.session_lost differs from the run_error event")
            if err is None and codec.encode(result.value) != out.value_wire:
                out.problems.append("result.value differs from the run_finished value")
        return out

    async def _run_concurrent(
        self, runtime: MontyRuntime, step: Step, script: _NativeHost
    ) -> list[RunOutcome]:
        assert step.concurrent is not None
        first, second = step.concurrent
        label_a = f"{step.label}a (concurrent, first)"
        label_b = f"{step.label}b (concurrent, second)"
        script.held.clear()
        script.release.clear()
        script.hold = True
        try:
            handle = self._start(runtime, first)
        except Exception as exc:
            script.hold = False
            out_a = RunOutcome(label=label_a, rejected=_exc_dict(exc))
            return [out_a, await self._run_step(runtime, second, label_b)]
        finishing = asyncio.ensure_future(self._finish(label_a, handle))
        waiting = asyncio.ensure_future(script.held.wait())
        try:
            await asyncio.wait({finishing, waiting}, return_when=asyncio.FIRST_COMPLETED)
            script.hold = False
            out_b = await self._run_step(runtime, second, label_b)
        finally:
            script.hold = False
            script.release.set()
            waiting.cancel()
        out_a = await finishing
        return [out_a, out_b]


class DenoConformanceBackend(NativeBackend):
    """The same cases through ``MontyRuntime(..., backend="deno")``: a locked-down Deno
    worker driven from Python (set ``MONTY_DENO_PREWARM`` to keep workers booted)."""

    name = "deno"
    runtime_backend = "deno"

    def __init__(self) -> None:
        self._keeper: MontyRuntime | None = None

    async def start(self) -> None:
        # One runtime lives for the whole run, so the JS host process (and its
        # pre-warmed workers) stays up between the cases' runtimes.
        self._keeper = MontyRuntime(backend="deno")
        await self._keeper.execute("None").result

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.dispose()
            self._keeper = None
