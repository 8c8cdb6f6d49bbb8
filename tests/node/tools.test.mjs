// Tests for the JavaScript tool bindings (web/tools.js) against a fake runtime.
// Run with: node --test tests/node/
// Where the project's Python (.venv) is available, the payloads, the tool definition
// and the argument errors are also compared with monty_runtime.tools, call for call.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

import { PyTuple } from "../../web/shared/codec.js";
import { StateError, WorkerCrashed } from "../../web/monty-runtime.js";
import {
  BusyBinding,
  POLICIES,
  QueueBinding,
  SandboxBinding,
  bindTool,
  busyBinding,
  parseArguments,
  pyJSONLoads,
  queueBinding,
  sandboxBinding,
} from "../../web/tools.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BUSY = "Bridge is already executing";
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ------------------------------------------------------------------ a fake runtime

/**
 * Behaves like MontyRuntime from monty-runtime.js where the bindings can tell: the busy
 * check happens "in the worker" (the result rejects after a hop, execute() does not
 * throw), a sandbox runs calls in parallel with fresh state, dispose rejects.
 *
 * The code is a tiny line language:
 *   sleep MS | print TEXT | set NAME JSON | get NAME | append NAME JSON (value: new length)
 *   value JSON | tuple | raise TYPE MESSAGE | crash | hang (until interrupted)
 */
class FakeRuntime {
  constructor({ sandbox = false, functions = [], schemas = null } = {}) {
    this.sandbox = sandbox;
    this.schemas = schemas ?? functions.map((name) => ({ name, description: "", parameters: null }));
    this.disposed = false;
    this.running = 0;
    this.maxRunning = 0;
    this.started = [];
    this.state = {};
    this._pending = new Set();
  }

  execute(code) {
    if (typeof code !== "string") throw new TypeError("code must be a str, got " + typeof code);
    if (this.disposed) throw new StateError("MontyRuntime has been disposed", "disposed");
    let interrupted = null;
    const interruption = new Promise((resolve) => {
      interrupted = resolve;
    });
    const result = (async () => {
      await sleep(1); // the round trip to the worker
      if (this.disposed) throw new StateError("MontyRuntime has been disposed", "disposed");
      if (!this.sandbox && this.running > 0) throw new StateError(BUSY, "busy");
      this.running++;
      this.maxRunning = Math.max(this.maxRunning, this.running);
      this.started.push(code);
      try {
        return await this._interpret(code, this.sandbox ? {} : this.state, interruption);
      } finally {
        this.running--;
      }
    })();
    result.catch(() => {});
    return { result, events: [], interrupt: () => interrupted(), executionId: null };
  }

  async _interpret(code, scope, interruption) {
    let stdout = "";
    let value = null;
    const fail = (type, message) => ({
      value: null,
      stdout,
      stderr: "",
      error: { type, message, traceback: `Traceback (most recent call last):\n${type}: ${message}\n`, lineno: 1 },
      sessionLost: false,
      session_lost: false,
    });
    for (const line of code.split("\n")) {
      const [op, ...rest] = line.split(" ");
      const arg = rest.join(" ");
      value = null;
      if (op === "sleep") await sleep(Number(arg));
      else if (op === "print") stdout += arg + "\n";
      else if (op === "set") scope[rest[0]] = JSON.parse(rest.slice(1).join(" "));
      else if (op === "get") {
        if (!Object.hasOwn(scope, arg)) return fail("NameError", `name '${arg}' is not defined`);
        value = scope[arg];
      } else if (op === "append") {
        scope[rest[0]].push(JSON.parse(rest.slice(1).join(" ")));
        value = scope[rest[0]].length;
      } else if (op === "value") value = JSON.parse(arg);
      else if (op === "tuple") value = PyTuple.of(1, 2n ** 70n, "x");
      else if (op === "raise") return fail(rest[0], rest.slice(1).join(" "));
      else if (op === "crash") throw new WorkerCrashed("the worker died");
      else if (op === "hang") {
        await interruption;
        return fail("KeyboardInterrupt", "");
      } else if (op !== "") throw new Error(`fake runtime: unknown op ${op}`);
    }
    return { value, stdout, stderr: "", error: null, sessionLost: false, session_lost: false };
  }

  async dispose() {
    this.disposed = true;
  }
}

const call = (code) => ({ code });

// -------------------------------------------------------------------- definition

test("definition: OpenAI-style, naming the host functions, JSON-able", () => {
  const d = queueBinding(new FakeRuntime({ functions: ["get_weather", "convert"] })).definition();
  assert.equal(d.type, "function");
  assert.equal(d.function.name, "run_python");
  assert.match(d.function.description, /persistent interpreter.*:\n- get_weather\(\.\.\.\)\n- convert\(\.\.\.\)$/s);
  assert.deepEqual(d.function.parameters, {
    type: "object",
    properties: { code: { type: "string", description: "The Python code to run." } },
    required: ["code"],
    additionalProperties: false,
  });
  assert.deepEqual(JSON.parse(JSON.stringify(d)), d);
  const s = sandboxBinding(new FakeRuntime({ sandbox: true })).definition();
  assert.match(s.function.description, /^Run Python code in a fresh interpreter.*await them\): none\.$/s);
  const custom = busyBinding(new FakeRuntime(), { name: "py", description: "Mine." }).definition();
  assert.equal(custom.function.name, "py");
  assert.equal(custom.function.description, "Mine.");
});

// ------------------------------------------------------------------------- queue

test("queue: parallel calls run one at a time, in order, with state kept", async () => {
  const rt = new FakeRuntime();
  const tool = queueBinding(rt);
  assert.equal(tool.policy, "queue");
  assert.equal((await tool.call(call("set log []"))).status, "ok");
  const results = await Promise.all(
    Array.from({ length: 10 }, (_, i) => tool.call(JSON.stringify(call(`sleep ${10 - i}\nappend log ${i}`)))),
  );
  assert.deepEqual(results.map((r) => r.status), Array(10).fill("ok"));
  assert.deepEqual(results.map((r) => r.value), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual((await tool.call(call("get log"))).value, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(rt.maxRunning, 1);
});

test("queue: a failing call, bad arguments or a crash never block the next", async () => {
  const tool = queueBinding(new FakeRuntime());
  const results = await Promise.all([
    tool.call(call("sleep 5\nprint before\nraise ZeroDivisionError division by zero")),
    tool.call(call("value \"after\"")),
    tool.call({ code: 5 }),
    tool.call(call("crash")),
    tool.call(call("value \"last\"")),
  ]);
  assert.equal(results[0].status, "error");
  assert.equal(results[0].stdout, "before\n");
  assert.equal(results[0].error.type, "ZeroDivisionError");
  assert.match(results[0].error.traceback, /^Traceback/);
  assert.deepEqual(results[1], { status: "ok", value: "after", stdout: "", error: null });
  assert.deepEqual(results[2].error, { type: "InvalidArguments", message: "argument 'code' must be a string" });
  assert.deepEqual(results[3], {
    status: "error", value: null, stdout: "", error: { type: "WorkerCrashed", message: "the worker died" },
  });
  assert.equal(results[4].value, "last");
});

test("queue: a call cancelled while waiting keeps the chain whole", async () => {
  const rt = new FakeRuntime();
  const tool = queueBinding(rt);
  const first = tool.call(call("sleep 40\nvalue 1"));
  const abort = new AbortController();
  const second = tool.call(call("value 2"), { signal: abort.signal });
  await sleep(5);
  abort.abort();
  const third = tool.call(call("value 3"));
  const out = await Promise.all([first, second, third]);
  assert.equal(out[0].value, 1);
  assert.equal(out[1].status, "error");
  assert.equal(out[1].error.type, "CancelledError");
  assert.equal(out[2].value, 3, "the third call met no busy runtime");
  assert.deepEqual(rt.started, ["sleep 40\nvalue 1", "value 3"]);
});

test("queue: a call cancelled while running is interrupted, and the next waits for it", async () => {
  const tool = queueBinding(new FakeRuntime());
  const abort = new AbortController();
  const hanging = tool.call(call("hang"), { signal: abort.signal });
  const next = tool.call(call("value \"next\""));
  await sleep(5);
  abort.abort();
  assert.equal((await hanging).error.type, "KeyboardInterrupt");
  assert.equal((await next).value, "next");
  const pre = new AbortController();
  pre.abort();
  assert.equal((await tool.call(call("value 1"), { signal: pre.signal })).error.type, "CancelledError");
  assert.equal((await tool.call(call("value 4"))).value, 4);
});

// -------------------------------------------------------------------------- busy

test("busy: a parallel call while busy gets the structured busy payload", async () => {
  const rt = new FakeRuntime();
  const tool = busyBinding(rt, { minRetryMs: 25 });
  assert.equal(tool.policy, "busy");
  const results = await Promise.all([
    tool.call(call("sleep 30\nvalue \"first\"")),
    tool.call(call("value \"second\"")),
    tool.call(call("value \"third\"")),
  ]);
  assert.deepEqual(results[0], { status: "ok", value: "first", stdout: "", error: null });
  for (const r of results.slice(1)) {
    assert.deepEqual(Object.keys(r), ["status", "retry_after_ms", "value", "stdout", "error"]);
    assert.equal(r.status, "busy");
    assert.equal(r.retry_after_ms, 25, "no duration known yet: the minimum");
    assert.deepEqual({ ...r, retry_after_ms: 0 }, {
      status: "busy", retry_after_ms: 0, value: null, stdout: "", error: { type: "StateError", message: BUSY },
    });
  }
  // the model retries: now it runs
  assert.equal((await tool.call(call("value \"second\""))).value, "second");
  assert.equal(rt.maxRunning, 1);
  // busy at once: the parallel calls never reached the runtime
  assert.deepEqual(rt.started, ["sleep 30\nvalue \"first\"", "value \"second\""]);
});

test("busy: an execution started by someone else meets the runtime's own guard", async () => {
  const rt = new FakeRuntime();
  const tool = busyBinding(rt);
  const other = rt.execute("sleep 30\nvalue 1");
  await sleep(5);
  const out = await tool.call(call("value 2"));
  assert.equal(out.status, "busy");
  assert.deepEqual(out.error, { type: "StateError", message: BUSY });
  assert.equal((await other.result).value, 1);
  assert.equal((await tool.call(call("value 2"))).value, 2);
});

test("busy: a sandbox runtime is never busy", async () => {
  const rt = new FakeRuntime({ sandbox: true });
  const results = await Promise.all([0, 1, 2].map((i) => busyBinding(rt).call(call(`sleep 5\nvalue ${i}`))));
  const tool = busyBinding(rt);
  const same = await Promise.all([0, 1, 2].map((i) => tool.call(call(`sleep 5\nvalue ${i}`))));
  assert.deepEqual([...results, ...same].map((r) => r.value), [0, 1, 2, 0, 1, 2]);
});

test("busy: retry_after_ms estimates the rest of the running call from recent durations", async () => {
  const tool = busyBinding(new FakeRuntime(), { minRetryMs: 1 });
  for (let i = 0; i < 3; i++) await tool.call(call("sleep 120"));
  const running = tool.call(call("sleep 120"));
  await sleep(10);
  const busy = await tool.call(call("value 1"));
  assert.equal(busy.status, "busy");
  assert.ok(busy.retry_after_ms > 40 && busy.retry_after_ms < 125, `retry_after_ms=${busy.retry_after_ms}`);
  await running;
  assert.deepEqual(busyBinding(new FakeRuntime()).minRetryMs, 50);
});

test("busy: a failing call followed by good ones", async () => {
  const tool = busyBinding(new FakeRuntime());
  assert.equal((await tool.call(call("raise ValueError x"))).error.type, "ValueError");
  assert.equal((await tool.call(call("crash"))).error.type, "WorkerCrashed");
  assert.equal((await tool.call(call("value 2"))).value, 2);
  assert.deepEqual((await tool.call(call("tuple"))).value, { $tuple: [1, { $int: String(2n ** 70n) }, "x"] });
});

// ----------------------------------------------------------------------- sandbox

test("sandbox: parallel calls all run, each with fresh state", async () => {
  const rt = new FakeRuntime({ sandbox: true });
  const tool = sandboxBinding(rt);
  assert.equal(tool.policy, "sandbox");
  const results = await Promise.all(
    Array.from({ length: 12 }, (_, i) => tool.call(call(`sleep 10\nset v ${i}\nprint ${i}\nget v`))),
  );
  assert.deepEqual(results.map((r) => r.value), [...Array(12).keys()]);
  assert.deepEqual(results.map((r) => r.stdout), [...Array(12).keys()].map((i) => `${i}\n`));
  assert.ok(rt.maxRunning > 1, "calls overlapped");
  const leaked = await tool.call(call("get v"));
  assert.equal(leaked.status, "error");
  assert.equal(leaked.error.type, "NameError");
});

// ------------------------------------------------------------------------ errors

test("policy errors are thrown at construction, not at call", () => {
  assert.throws(() => sandboxBinding(new FakeRuntime()), { name: "RangeError", message: /sandbox: true/ });
  assert.throws(() => bindTool(new FakeRuntime(), "lifo"), {
    name: "RangeError", message: "unknown policy 'lifo'; choose one of queue, busy, sandbox",
  });
  assert.throws(() => queueBinding("not a runtime"), { name: "TypeError", message: /must be a MontyRuntime/ });
  assert.throws(() => queueBinding(new FakeRuntime(), { name: "bad name" }), {
    name: "RangeError", message: "tool name must match ^[A-Za-z0-9_-]{1,64}$, got 'bad name'",
  });
  assert.deepEqual(POLICIES, ["queue", "busy", "sandbox"]);
  assert.ok(bindTool(new FakeRuntime(), "queue") instanceof QueueBinding);
  assert.ok(bindTool(new FakeRuntime(), "busy") instanceof BusyBinding);
  assert.ok(bindTool(new FakeRuntime({ sandbox: true }), "sandbox") instanceof SandboxBinding);
});

const BAD_ARGUMENTS = [
  "not json", "[]", { cod: "1" }, { code: null }, { code: "1", x: 2 }, 7, null,
  '{"code": "1",}', '{"code": "\\x"}', '{"code": "1"} extra', "", '{"code": NaN}',
  '{"b": 1, "code": "1", "a": NaN, "é": 2}', '{"code": "a\tb"}', "\ufeff{}",
];

test("bad arguments never reject and carry Python's messages", async () => {
  const tool = busyBinding(new FakeRuntime());
  for (const bad of BAD_ARGUMENTS) {
    const out = await tool.call(bad);
    assert.equal(out.status, "error", JSON.stringify(bad));
    assert.equal(out.error.type, "InvalidArguments");
  }
  assert.equal(
    parseArguments("not json").error.message,
    "arguments are not valid JSON: Expecting value: line 1 column 1 (char 0)",
  );
  assert.equal(parseArguments("[]").error.message, "arguments must be an object with a 'code' string");
  assert.equal(parseArguments({ code: "1", z: 1, a: 2 }).error.message, "unknown argument(s): a, z");
  assert.equal(parseArguments('{"code": "x = 1\\nx"}'), "x = 1\nx");
  assert.equal(parseArguments(new TextEncoder().encode('{"code": "1"}')), "1");
});

test("a disposed runtime is reported, not thrown", async () => {
  const rt = new FakeRuntime();
  await rt.dispose();
  for (const policy of ["queue", "busy"]) {
    assert.deepEqual(await bindTool(rt, policy).call(call("value 1")), {
      status: "error",
      value: null,
      stdout: "",
      error: { type: "StateError", message: "MontyRuntime has been disposed" },
      reason: "disposed",
    });
  }
});

test("pyJSONLoads accepts what Python's json.loads accepts", () => {
  assert.deepEqual(pyJSONLoads('{"a": [1, 2.5, null, true]}'), Object.assign(Object.create(null), { a: [1, 2.5, null, true] }));
  assert.ok(Number.isNaN(pyJSONLoads("NaN")));
  assert.equal(pyJSONLoads(" -Infinity "), -Infinity);
  assert.equal(pyJSONLoads('"\\ud83d\\ude00"'), "\u{1F600}");
  assert.throws(() => pyJSONLoads('{"a": 1,}'), {
    message: "Expecting property name enclosed in double quotes: line 1 column 9 (char 8)",
  });
  assert.throws(() => pyJSONLoads('"\u{1F600}" 1'), { message: "Extra data: line 1 column 5 (char 4)" });
});

// ----------------------------------------------------------------- the transcript

test("web/demos/examples/transcript.json is a copy of examples/transcript.json", () => {
  const served = readFileSync(new URL("web/demos/examples/transcript.json", `file://${ROOT}`), "utf8");
  const source = readFileSync(new URL("examples/transcript.json", `file://${ROOT}`), "utf8");
  assert.equal(served, source, "copy examples/transcript.json to web/demos/examples/transcript.json");
});

// --------------------------------------------------------- parity with Python

const PYTHON = [`${ROOT}.venv/bin/python`, `${ROOT}.venv/Scripts/python.exe`].find((p) => existsSync(p));

function python(script, input) {
  return JSON.parse(execFileSync(PYTHON, ["-c", script], { input: JSON.stringify(input), encoding: "utf8" }));
}

test("same definitions as Python for the same host functions", { skip: !PYTHON && "no .venv" }, () => {
  const script = `
import json, sys
from monty_runtime import MontyRuntime
from monty_runtime.tools import bind_tool
def get_weather(city: str, units: str = "C") -> dict:
    """The weather in a city.

    More text that stays out of the description."""
def convert(amount: float | None, currency: str) -> float: ...
out = {"schemas": MontyRuntime(functions=[get_weather, convert]).schemas}
for policy in ("queue", "busy", "sandbox"):
    rt = MontyRuntime(functions=[get_weather, convert], sandbox=policy == "sandbox")
    out[policy] = bind_tool(rt, policy).definition()
out["bare"] = bind_tool(MontyRuntime(), "queue", name="py").definition()
print(json.dumps(out))
`;
  const expected = python(script, null);
  for (const policy of POLICIES) {
    const rt = new FakeRuntime({ sandbox: policy === "sandbox", schemas: expected.schemas });
    assert.deepEqual(bindTool(rt, policy).definition(), expected[policy], policy);
    assert.match(expected[policy].function.description,
      /\n- get_weather\(city: str, units: str = \.\.\.\) -- The weather in a city\.\n- convert\(amount: float \| None, currency: str\)$/);
  }
  assert.deepEqual(bindTool(new FakeRuntime(), "queue", { name: "py" }).definition(), expected.bare);
});

test("same argument errors as Python, message for message", { skip: !PYTHON && "no .venv" }, () => {
  const script = `
import json, random, sys
from monty_runtime.tools import ToolBinding
cases = json.load(sys.stdin)
random.seed(7)
base = ['{"code": "1"}', '{"code": "a\\\\u00e9\\\\ud83d\\\\ude00b", "x": [1, 2.5e3, -0, null, true, false]}']
alphabet = '{}[]",:\\\\u0123456789abefnrtlsNaIy-+.eE \\n\\t\\x01\\u00e9\\U0001F600'
for _ in range(1500):
    s = list(random.choice(base))
    for _ in range(random.randint(1, 3)):
        pos = random.randint(0, len(s))
        if random.random() < 0.4 and s:
            del s[min(pos, len(s) - 1)]
        else:
            s.insert(pos, random.choice(alphabet))
    cases.append("".join(s))
out = []
for c in cases:
    r = ToolBinding.parse_arguments(c)
    out.append([c, r])
print(json.dumps(out))
`;
  const texts = BAD_ARGUMENTS.filter((a) => typeof a === "string");
  texts.push("9".repeat(5000), '{"code": "1", "n": -' + "9".repeat(4301) + "}", '"\\ud800\\u0041"', "[1 2]");
  const cases = python(script, texts);
  assert.ok(cases.length > 1500);
  let compared = 0;
  for (const [text, expected] of cases) {
    assert.deepEqual(parseArguments(text), expected, JSON.stringify(text));
    compared++;
  }
  assert.equal(compared, cases.length);
});
