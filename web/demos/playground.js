// The playground (index.html): create and dispose runtimes, run code on one, on all, or
// N times in parallel, and watch the concurrency contract on a timeline: one lane per
// worker, one bar per execution (serial within a shared runtime's lane, parallel across
// lanes), a red tick where an execution was refused with "Bridge is already executing".
//
// No framework, no external resources: this module, monty-runtime.js, tools.js and
// codec.js, all from this origin. ?autostart=0 loads the page without a runtime (the
// browser tests use the page as a bare host for monty-runtime.js).

import { encode } from "../shared/codec.js";
import { MontyRuntime } from "../monty-runtime.js";
import { bindTool } from "../tools.js";

// ------------------------------------------------------------------------ fixtures

const SNIPPETS = {
  hello: {
    label: "hello",
    code: `import asyncio
print("hello from", "Python")
w = get_weather("Paris")              # a host function, called sync-style
t = await asyncio.gather(*[get_weather(c) for c in ("Rome", "Oslo")])
{"paris": w, "others": t}`,
  },
  cpu: {
    label: "CPU-bound loop",
    code: `# Pure Python arithmetic, no awaits: the worker is busy until it ends.
total = 0
for i in range(2_000_000):
    total += i * i % 7
total`,
  },
  async: {
    label: "async host calls",
    code: `# Host calls run in the page; the code awaits them concurrently.
import asyncio
cities = ["Paris", "Oslo", "Lima"]
reports = await asyncio.gather(*(get_weather(c) for c in cities))
warmest = max(reports, key=lambda r: r["temp_c"])
total = await add(reports[0]["temp_c"], reports[1]["temp_c"])
print("warmest:", warmest["city"])
{"warmest": warmest["city"], "paris_plus_oslo": total}`,
  },
  flood: {
    label: "print flood",
    code: `# Thousands of prints stream out as events while the code runs.
for i in range(3000):
    print(f"line {i:>4}: " + "#" * (i % 40))
"printed 3000 lines"`,
  },
  error: {
    label: "an error",
    code: `# A Python exception is data: the result carries it, the REPL survives.
def ratio(a, b):
    return a / b

data = {"a": 1, "b": 0}
ratio(data["a"], data["b"])`,
  },
};

const TEMPS = { Paris: 14, Oslo: 3, Lima: 19, Rome: 17, Tokyo: 12 };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const FUNCTIONS = {
  get_weather: {
    description: "Current weather for a city (answers after 600 ms).",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    fn: async (city) => {
      await sleep(600);
      return { city, temp_c: TEMPS[city] ?? 10, sky: "clear" };
    },
  },
  add: {
    description: "Add two numbers.",
    parameters: {
      type: "object",
      properties: { a: { type: "number" }, b: { type: "number" } },
      required: ["a", "b"],
    },
    fn: (a, b) => a + b,
  },
};

const PHASE_COLORS = ["#6366f1", "#0ea5e9", "#14b8a6", "#22c55e", "#eab308", "#f97316", "#ec4899", "#8b5cf6", "#64748b"];
const MAX_LOG_LINES = 600;
const SVG_NS = "http://www.w3.org/2000/svg";

// --------------------------------------------------------------------------- state

const T0 = performance.now();
const now = () => performance.now();

const state = {
  runtimes: [], // entries, in creation order
  selected: null,
  runs: [], // one record per execution attempt
  lanes: new Map(), // "rt-1/monty-1" -> {key, entry, worker, order}
  origin: null, // time of the first run: x = 0 on the timeline
  seq: 0,
  picked: null,
  eventCount: 0,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key === "title" || key === "role") node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

const fmtMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(ms >= 10_000 ? 1 : 2)} s` : `${Math.round(ms)} ms`);
const clip = (s, n = 90) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** A decoded value as JSON text (the codec's wire form: tuples, big ints... tagged). */
function show(value, indent = 0) {
  return JSON.stringify(encode(value), null, indent);
}

// ------------------------------------------------------------------------ runtimes

function setStatus(text, kind = "") {
  $("status").textContent = text;
  $("status").className = `status ${kind}`;
}

function runtimeState(entry) {
  if (entry.state === "ready" && entry.inflight > 0) return "running";
  return entry.state;
}

async function createRuntime({ sandbox = false, poolSize = 2 } = {}) {
  const n = state.runtimes.length + 1;
  const entry = {
    id: `rt-${n}`,
    n,
    sandbox,
    poolSize,
    state: "booting",
    rt: null,
    created: now(),
    bootMs: null,
    info: null,
    boot: null,
    runs: 0,
    busy: 0,
    inflight: 0,
    tools: {},
    waiting: [], // tool-call runs not yet attached to an execution
    lastWorker: null,
  };
  state.runtimes.push(entry);
  select(entry);
  setStatus(`booting ${entry.id}…`);
  logLine(entry.id, "runtime", `booting (${sandbox ? `sandbox, pool of ${poolSize}` : "shared"})`);
  const ticker = setInterval(renderRuntimes, 250);
  try {
    const rt = await MontyRuntime.create({
      functions: FUNCTIONS,
      sandbox,
      poolSize: sandbox ? poolSize : undefined,
    });
    if (entry.state === "disposed") {
      await rt.dispose();
      return entry;
    }
    entry.rt = rt;
    entry.state = "ready";
    entry.bootMs = now() - entry.created;
    entry.info = rt.info;
    entry.boot = rt.boot ?? rt.info?.boot ?? null;
    window.runtime ??= rt;
    setStatus(`ready: ${entry.id} booted in ${fmtMs(entry.bootMs)}`, "ok");
    logLine(entry.id, "runtime", `ready in ${fmtMs(entry.bootMs)}`);
    renderEnv(entry.info?.env);
  } catch (err) {
    entry.state = "failed";
    setStatus(`${entry.id} failed to boot: ${err.name}: ${err.message}`, "error");
    logLine(entry.id, "rejected", `boot failed: ${err.name}: ${err.message}`);
  } finally {
    clearInterval(ticker);
    renderRuntimes();
    updateControls();
  }
  return entry;
}

async function disposeRuntime(entry) {
  if (entry.state === "disposed") return;
  entry.state = "disposed";
  logLine(entry.id, "runtime", "disposed");
  await entry.rt?.dispose();
  if (state.selected === entry) {
    select(state.runtimes.find((e) => e.state === "ready" || e.state === "booting") ?? null);
  }
  renderRuntimes();
  updateControls();
  scheduleRender();
}

function select(entry) {
  state.selected = entry;
  renderRuntimes();
  updateControls();
}

function renderEnv(env) {
  const chips = [];
  const yesNo = (label, on, title) => el("span", { class: `chip ${on ? "yes" : "no"}`, title }, label);
  chips.push(yesNo("cross-origin isolated", self.crossOriginIsolated === true,
    "SharedArrayBuffer: interrupts and Atomics-based sync host calls"));
  if (env) {
    chips.push(yesNo("JSPI", env.jspi, "sync-style host calls suspend the worker with JSPI"));
    chips.push(el("span", { class: "chip" }, `Pyodide ${env.pyodideVersion}`));
  }
  $("env").replaceChildren(...chips);
}

/** The boot phases of a runtime's first worker: rt.boot (a boot report) when the host
 * gives one, else the phases of the ready handshake (rt.info.phases). */
function bootPhases(entry) {
  const report = entry.boot;
  if (Array.isArray(report?.phases) && report.phases.length) {
    return report.phases.map((p) => ({ name: String(p.name), ms: Number(p.ms) || 0, where: p.where, background: Boolean(p.background) }));
  }
  return Object.entries(entry.info?.phases ?? {}).map(([name, ms]) => ({ name, ms: Number(ms) || 0, where: "worker", background: false }));
}

function phasesPanel(entry) {
  const phases = bootPhases(entry);
  if (phases.length === 0) return null;
  const total = phases.reduce((sum, p) => sum + p.ms, 0) || 1;
  const bar = svg("svg", { viewBox: "0 0 100 10", preserveAspectRatio: "none", "aria-hidden": "true" });
  let x = 0;
  const rows = [];
  phases.forEach((p, i) => {
    const color = PHASE_COLORS[i % PHASE_COLORS.length];
    const w = (p.ms / total) * 100;
    bar.append(svg("rect", { x, y: 0, width: Math.max(w, 0.4), height: 10, fill: color }, svg("title", {}, `${p.name}: ${fmtMs(p.ms)}`)));
    x += w;
    const dot = el("span", { class: "dot" });
    dot.style.background = color;
    const where = p.where && p.where !== "worker" ? el("span", { class: "where" }, ` ${p.where}`) : null;
    const bg = p.background ? el("span", { class: "where", title: "before create(), in a pre-started worker" }, " bg") : null;
    rows.push(el("tr", { "data-phase": p.name }, el("td", {}, dot, p.name, where, bg), el("td", { class: "ms" }, fmtMs(p.ms))));
  });
  rows.push(el("tr", {}, el("td", { class: "total" }, "create() to ready"), el("td", { class: "ms total" }, fmtMs(entry.bootMs ?? total))));
  const report = entry.boot;
  let how = null;
  if (report) {
    how = report.mode === "snapshot"
      ? `from snapshot${report.snapshotFrom ? ` (${report.snapshotFrom})` : ""}`
      : `cold${report.snapshot && report.snapshot !== "none" ? `, snapshot ${report.snapshot}` : ""}`;
    if (report.pooled) how += ", pre-started";
  }
  return el(
    "details",
    { class: "phases", open: true },
    el("summary", {}, "boot phases", how ? el("span", { class: "how" }, ` · ${how}`) : null),
    bar,
    el("table", {}, el("tbody", {}, ...rows)),
  );
}

function renderRuntimes() {
  const list = $("runtimes");
  const items = state.runtimes.map((entry) => {
    const st = runtimeState(entry);
    const workers = entry.rt && !entry.rt.disposed ? entry.rt.workerCount : 0;
    const meta = entry.state === "booting"
      ? `booting… ${fmtMs(now() - entry.created)}`
      : `${workers} worker${workers === 1 ? "" : "s"}${entry.sandbox ? ` (pool ${entry.poolSize})` : ""}` +
        ` · ${entry.runs} run${entry.runs === 1 ? "" : "s"}` + (entry.busy ? ` · ${entry.busy} busy` : "");
    const dispose = el("button", {
      class: "ghost",
      type: "button",
      title: `Dispose ${entry.id}`,
      disabled: entry.state === "disposed",
      "data-action": "dispose",
    }, "dispose");
    dispose.addEventListener("click", (ev) => {
      ev.stopPropagation();
      disposeRuntime(entry);
    });
    const item = el(
      "li",
      {
        class: `runtime${state.selected === entry ? " selected" : ""}`,
        "data-runtime": entry.id,
        "data-state": st,
        title: entry.state === "disposed" ? "disposed" : `Select ${entry.id}`,
      },
      el("div", { class: "row" },
        el("span", { class: "name" }, entry.id),
        el("span", { class: "mode" }, entry.sandbox ? "sandbox" : "shared"),
        el("span", { class: `badge ${st}` }, st),
        dispose),
      el("div", { class: "meta" }, meta),
      entry.state === "disposed" ? null : phasesPanel(entry),
    );
    // Keep a user's open/closed choice of the phases panel across re-renders.
    const old = list.querySelector(`[data-runtime="${entry.id}"] details`);
    const details = item.querySelector("details");
    if (old && details) details.open = old.open;
    item.addEventListener("click", (ev) => {
      // Opening or closing the phases panel is not a selection (and a re-render now
      // would swallow the toggle).
      if (ev.target.closest("summary")) return;
      if (entry.state !== "disposed" && state.selected !== entry) select(entry);
    });
    return item;
  });
  list.replaceChildren(...items);
}

function updateControls() {
  const entry = state.selected;
  const ready = entry?.state === "ready";
  for (const id of ["run", "run-parallel", "interrupt"]) $(id).disabled = !ready;
  $("run-all").disabled = !state.runtimes.some((e) => e.state === "ready");
  $("target").replaceChildren(
    ...(entry ? ["on ", el("b", {}, entry.id), ` (${entry.sandbox ? "sandbox" : "shared"})`] : ["no runtime selected"]),
  );
}

// -------------------------------------------------------------------------- runs

function laneFor(entry, worker) {
  const key = `${entry.id}/${worker}`;
  let lane = state.lanes.get(key);
  if (!lane) {
    lane = { key, entry, worker, order: state.lanes.size };
    state.lanes.set(key, lane);
  }
  entry.lastWorker = worker;
  return lane;
}

function newRun(entry, via, code) {
  entry.runs++;
  const run = {
    id: ++state.seq,
    entry,
    via,
    code,
    label: `${entry.id} #${entry.runs}`,
    submit: now(),
    start: null,
    end: null,
    outcome: "waiting",
    lane: null,
    row: 0,
    handle: null,
    pump: null,
    durationMs: null,
    detail: "",
    resultText: "",
  };
  state.origin ??= run.submit;
  state.runs.push(run);
  entry.inflight++;
  $("timeline").dataset.active = "1"; // at once: "idle" must never be read before the run shows
  renderRuntimes();
  scheduleRender();
  return run;
}

/** Follow an execution's events (log, start time, lane). */
function attach(run, handle) {
  run.handle = handle;
  // A refused execution never reaches a worker: it is drawn in the lane of the worker
  // that was busy (finish()).
  run.lane = handle._host ? laneFor(run.entry, handle._host.label) : null;
  run.pump = (async () => {
    for await (const ev of handle.events) onEvent(run, ev);
  })();
}

function onEvent(run, ev) {
  if (ev.type === "run_started" && run.start === null) {
    run.start = now();
    run.outcome = "running";
    // A lane has one row per execution running at the same time (sandbox workers
    // interleave executions that await; a shared runtime never needs a second row).
    const busyRows = new Set(
      state.runs.filter((r) => r !== run && r.lane === run.lane && r.start !== null && r.end === null).map((r) => r.row),
    );
    while (busyRows.has(run.row)) run.row++;
    scheduleRender();
  }
  state.eventCount++;
  logLine(run.label, ev.type, describeEvent(ev));
}

function describeEvent(ev) {
  switch (ev.type) {
    case "run_started":
      return "run_started";
    case "print":
      return `print ${ev.stream === "stderr" ? "[stderr] " : ""}${clip(JSON.stringify(ev.text))}`;
    case "call_started": {
      const args = (ev.args ?? []).map((a) => show(a));
      for (const [k, v] of Object.entries(ev.kwargs ?? {})) args.push(`${k}=${show(v)}`);
      return `call_started ${ev.name}(${clip(args.join(", "), 60)})`;
    }
    case "call_finished":
      return `call_finished ${ev.name} → ${ev.error ? `${ev.error.type}: ${ev.error.message}` : clip(show(ev.result), 60)} (${fmtMs(ev.duration_ms ?? 0)})`;
    case "run_finished":
      return `run_finished value=${clip(show(ev.value), 60)} (${fmtMs(ev.duration_ms ?? 0)})`;
    case "run_error":
      return `run_error ${ev.error?.type}: ${clip(ev.error?.message ?? "", 70)}`;
    default:
      return ev.type;
  }
}

function outcomeOfError(type) {
  if (type === "KeyboardInterrupt" || type === "TimeoutError") return "interrupted";
  return "error";
}

/** A run is over: record the outcome and show it. */
async function finish(run, outcome, resultText, { isError = false, detail = "" } = {}) {
  run.end = now();
  if (run.pump) await run.pump;
  if (run.start !== null && run.start > run.end) run.start = run.end;
  if (outcome === "busy") {
    run.entry.busy++;
    run.lane ??= laneFor(run.entry, run.entry.lastWorker ?? "worker");
  } else if (run.start === null && outcome !== "rejected") {
    run.start = run.end; // settled before its run_started was seen
  }
  run.lane ??= laneFor(run.entry, run.entry.lastWorker ?? "worker");
  run.outcome = outcome;
  run.detail = detail;
  run.resultText = resultText;
  run.isError = isError;
  run.entry.inflight--;
  showRun(run);
  renderRuntimes();
  scheduleRender();
}

function resultText(res) {
  let text = res.stdout ?? "";
  if (res.stderr) text += res.stderr;
  if (res.error) return text + (res.error.traceback || `${res.error.type}: ${res.error.message}\n`);
  return text + show(res.value, 2);
}

async function runExecute(entry, code) {
  const run = newRun(entry, "execute", code);
  let handle;
  try {
    handle = entry.rt.execute(code);
  } catch (err) {
    logLine(run.label, "rejected", `${err.name}: ${err.message}`);
    await finish(run, "rejected", `${err.name}: ${err.message}`, { isError: true });
    return;
  }
  attach(run, handle);
  try {
    const res = await handle.result;
    run.durationMs = res.durationMs;
    const outcome = res.error ? outcomeOfError(res.error.type) : "ok";
    await finish(run, outcome, resultText(res), {
      isError: Boolean(res.error),
      detail: res.error ? `${res.error.type}: ${res.error.message}` : clip(show(res.value), 80),
    });
  } catch (err) {
    const busy = err.name === "StateError" && err.reason === "busy";
    logLine(run.label, busy ? "rejected" : "error", `rejected: ${err.name}: ${err.message}`);
    const outcome = busy ? "busy" : err.name === "StateError" ? "disposed" : "crashed";
    await finish(run, outcome, `${err.name}: ${err.message}`, { isError: true, detail: err.message });
  }
}

/** The runtime seen through a tool binding: every execute() is followed on the page. */
function tracked(entry) {
  return {
    get sandbox() {
      return entry.rt.sandbox;
    },
    get schemas() {
      return entry.rt.schemas;
    },
    execute(code, options) {
      const handle = entry.rt.execute(code, options);
      const run = entry.waiting.shift();
      if (run) attach(run, handle);
      return handle;
    },
  };
}

async function runTool(entry, policy, code) {
  entry.tools[policy] ??= bindTool(tracked(entry), policy);
  const run = newRun(entry, `${policy} tool`, code);
  entry.waiting.push(run);
  const pending = entry.tools[policy].call({ code });
  if (policy === "busy" && run.handle === null) {
    // The busy binding executes at once or not at all.
    entry.waiting.splice(entry.waiting.indexOf(run), 1);
  }
  const payload = await pending;
  const i = entry.waiting.indexOf(run);
  if (i >= 0) entry.waiting.splice(i, 1);
  const text = JSON.stringify(payload, null, 2);
  if (payload.status === "busy") {
    logLine(run.label, "busy", `tool answered busy, retry_after_ms=${payload.retry_after_ms}`);
    await finish(run, "busy", text, { isError: true, detail: payload.error.message });
  } else if (payload.status === "error") {
    const outcome = run.handle ? outcomeOfError(payload.error.type) : "rejected";
    await finish(run, outcome, text, { isError: true, detail: `${payload.error.type}: ${payload.error.message}` });
  } else {
    await finish(run, "ok", text, { detail: clip(JSON.stringify(payload.value), 80) });
  }
}

function runOn(entry, code) {
  const via = $("via").value;
  return via === "execute" ? runExecute(entry, code) : runTool(entry, via, code);
}

function showRun(run) {
  state.picked = run;
  const head = $("result-head");
  const ms = run.durationMs ?? (run.start !== null && run.end !== null ? run.end - run.start : null);
  head.replaceChildren(el("b", {}, run.label), ` · ${run.via} · ${run.outcome}` + (ms === null ? "" : ` · ${fmtMs(ms)}`));
  $("result").textContent = run.resultText;
  $("result").className = `out${run.isError ? " error" : ""}`;
  scheduleRender();
}

// ---------------------------------------------------------------------------- log

const pendingLines = [];
let logScheduled = false;

function logLine(who, type, text) {
  pendingLines.push({ t: now() - T0, who, type, text });
  if (!logScheduled) {
    logScheduled = true;
    requestAnimationFrame(flushLog);
  }
}

function flushLog() {
  logScheduled = false;
  const box = $("events");
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
  const lines = pendingLines.splice(0).slice(-MAX_LOG_LINES);
  const frag = document.createDocumentFragment();
  for (const line of lines) {
    frag.append(
      el("div", { class: `ev-${line.type}` },
        el("span", { class: "t" }, `${(line.t / 1000).toFixed(3).padStart(8)}  `),
        el("span", { class: "who" }, line.who.padEnd(9)),
        ` ${line.text}`),
    );
  }
  box.append(frag);
  while (box.childElementCount > MAX_LOG_LINES) box.firstElementChild.remove();
  if (atBottom) box.scrollTop = box.scrollHeight;
  $("event-count").textContent = `${state.eventCount} events`;
}

// ----------------------------------------------------------------------- timeline

let renderScheduled = false;

function scheduleRender() {
  if (!renderScheduled) {
    renderScheduled = true;
    requestAnimationFrame(renderTimeline);
  }
}

function niceStep(spanMs, px) {
  const target = spanMs / Math.max(2, px / 90);
  for (const step of [50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000]) {
    if (step >= target) return step;
  }
  return 600_000;
}

function renderTimeline() {
  renderScheduled = false;
  const box = $("timeline");
  const lanes = [...state.lanes.values()].sort((a, b) => a.entry.n - b.entry.n ||
    a.worker.localeCompare(b.worker, "en", { numeric: true }));
  $("timeline-empty").hidden = lanes.length > 0;
  const W = Math.max(320, box.clientWidth || box.parentElement.clientWidth || 800);
  const GUTTER = 118;
  const RIGHT = 16;
  const AXIS = 22;
  const ROW = 18;
  const TOP = 14; // room for "busy ×N" above the bars
  const laneHeight = (lane) => TOP + rowsOf.get(lane) * ROW + 4;
  const t = now();
  const active = state.runs.some((r) => r.end === null);
  let last = state.origin ?? t;
  for (const r of state.runs) last = Math.max(last, r.end ?? t, r.submit);
  if (active) last = t;
  const origin = state.origin ?? t;
  const span = Math.max(1000, (last - origin) * 1.04);
  const x = (time) => GUTTER + ((time - origin) / span) * (W - GUTTER - RIGHT);

  const rowsOf = new Map(lanes.map((lane) => [lane, 1]));
  for (const r of state.runs) if (r.lane) rowsOf.set(r.lane, Math.max(rowsOf.get(r.lane) ?? 1, r.row + 1));
  const laneY = new Map();
  let y = AXIS;
  for (const lane of lanes) {
    laneY.set(lane, y);
    y += laneHeight(lane);
  }
  const H = lanes.length ? y + 6 : 90;

  const root = [];
  // axis
  const axis = svg("g", { class: "axis" });
  const step = niceStep(span, W - GUTTER - RIGHT);
  for (let ms = 0; ms <= span; ms += step) {
    const px = x(origin + ms);
    axis.append(svg("line", { x1: px, x2: px, y1: AXIS - 4, y2: H }));
    axis.append(svg("text", { x: px + 3, y: 12 }, ms >= 1000 ? `${(ms / 1000).toFixed(step < 1000 ? 1 : 0)} s` : `${ms} ms`));
  }
  // lanes
  const laneGroup = svg("g", { class: "lanes" });
  lanes.forEach((lane, i) => {
    const ly = laneY.get(lane);
    const lh = laneHeight(lane);
    const disposed = lane.entry.state === "disposed";
    laneGroup.append(
      svg("g", { class: `lane${disposed ? " disposed" : ""}`, "data-lane": lane.key, "data-runtime": lane.entry.id },
        svg("rect", { class: `lane-bg${i % 2 ? " odd" : ""}`, x: 0, y: ly, width: W, height: lh }),
        svg("text", { class: "lane-name", x: 10, y: ly + 16 }, lane.entry.id),
        svg("text", { class: "lane-worker", x: 10, y: ly + 29 },
          `${lane.worker} · ${lane.entry.sandbox ? "sandbox" : "shared"}${disposed ? " · disposed" : ""}`)),
    );
  });
  root.push(laneGroup, axis);
  // executions: waiting lines under the bars, busy ticks on top
  const waits = svg("g", { class: "waits" });
  const marks = svg("g", { class: "marks" });
  const ticks = svg("g", { class: "ticks" });
  const clusters = new Map(); // lane -> [{x, n}] busy ticks close together
  for (const r of state.runs) {
    if (!r.lane) continue;
    const ly = laneY.get(r.lane);
    const lh = laneHeight(r.lane);
    const by = ly + TOP + r.row * ROW;
    const cy = by + (ROW - 2) / 2;
    if (r.outcome === "busy") {
      const tx = x(r.end);
      ticks.append(svg("line", {
        class: "busy-tick", x1: tx, x2: tx, y1: ly + 3, y2: ly + lh - 3,
        "data-lane": r.lane.key, "data-runtime": r.entry.id, "data-run": r.label,
        "data-t": (r.end - origin).toFixed(1),
      }, svg("title", {}, `${r.label} rejected at ${fmtMs(r.end - origin)}: ${r.detail}`)));
      const list = clusters.get(r.lane) ?? [];
      const near = list.find((c) => Math.abs(c.x - tx) < 8);
      if (near) near.n++;
      else list.push({ x: tx, n: 1, y: ly });
      clusters.set(r.lane, list);
      continue;
    }
    const startedAt = r.start ?? (r.end === null ? null : r.end);
    const waitEnd = startedAt ?? t;
    if (waitEnd - r.submit > 8) {
      waits.append(svg("line", { class: "wait", x1: x(r.submit), x2: x(waitEnd), y1: cy, y2: cy }));
    }
    if (startedAt === null || r.outcome === "rejected") continue;
    const end = r.end ?? t;
    const x1 = x(startedAt);
    const bar = svg("rect", {
      class: `bar ${r.end === null ? "running" : r.outcome}${state.picked === r ? " picked" : ""}`,
      x: x1, y: by, width: Math.max(4, x(end) - x1), height: ROW - 2, rx: 3,
      "data-lane": r.lane.key, "data-runtime": r.entry.id, "data-row": r.row, "data-run": r.label,
      "data-outcome": r.end === null ? "running" : r.outcome,
      "data-submit": (r.submit - origin).toFixed(1),
      "data-start": (startedAt - origin).toFixed(1),
      "data-end": r.end === null ? "" : (r.end - origin).toFixed(1),
    }, svg("title", {}, `${r.label} · ${r.via} · ${r.end === null ? "running" : r.outcome} · ` +
      `${fmtMs(r.durationMs ?? end - startedAt)}${r.detail ? `\n${r.detail}` : ""}`));
    bar.addEventListener("click", () => showRun(r));
    marks.append(bar);
    if (x(end) - x1 > 34) {
      marks.append(svg("text", { class: "bar-label", x: x1 + 5, y: by + 12 }, `#${r.label.split("#")[1]}`));
    }
  }
  for (const list of clusters.values()) {
    for (const c of list) {
      ticks.append(svg("text", { class: "busy-label", x: c.x + 4, y: c.y + 11 },
        c.n > 1 ? `busy ×${c.n}` : "busy"));
    }
  }
  root.push(waits, marks, ticks);
  if (active) {
    const nx = x(t);
    root.push(svg("line", { class: "now", x1: nx, x2: nx, y1: AXIS - 4, y2: H }));
  }
  box.setAttribute("viewBox", `0 0 ${W} ${H}`);
  box.setAttribute("height", String(H));
  box.dataset.active = active ? "1" : "0";
  box.replaceChildren(...root);
  if (active) setTimeout(scheduleRender, 33);
}

// ---------------------------------------------------------------------- controls

function selectedReady() {
  const entry = state.selected;
  return entry?.state === "ready" ? entry : null;
}

function loadSnippet(name) {
  $("code").value = SNIPPETS[name].code;
  for (const b of $("snippets").querySelectorAll("button")) b.classList.toggle("active", b.dataset.snippet === name);
}

function init() {
  for (const [name, { label }] of Object.entries(SNIPPETS)) {
    const b = el("button", { type: "button", "data-snippet": name }, label);
    b.addEventListener("click", () => loadSnippet(name));
    $("snippets").append(b);
  }
  loadSnippet("hello");
  $("code").addEventListener("input", () => {
    for (const b of $("snippets").querySelectorAll("button")) b.classList.remove("active");
  });
  $("code").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      $("run").click();
    } else if (e.key === "Tab" && !e.shiftKey) {
      e.preventDefault();
      e.target.setRangeText("    ", e.target.selectionStart, e.target.selectionEnd, "end");
    }
  });
  $("new-runtime").addEventListener("click", () => {
    createRuntime({ sandbox: $("sandbox").checked, poolSize: Math.max(1, Math.min(8, Number($("pool").value) || 2)) });
  });
  $("run").addEventListener("click", () => {
    const entry = selectedReady();
    if (entry) runOn(entry, $("code").value);
  });
  $("run-all").addEventListener("click", () => {
    const code = $("code").value;
    for (const entry of state.runtimes) if (entry.state === "ready") runOn(entry, code);
  });
  $("run-parallel").addEventListener("click", () => {
    const entry = selectedReady();
    const n = Math.max(1, Math.min(16, Number($("parallel-n").value) || 1));
    const code = $("code").value;
    if (entry) for (let i = 0; i < n; i++) runOn(entry, code);
  });
  $("interrupt").addEventListener("click", () => {
    const entry = selectedReady();
    if (!entry) return;
    entry.rt.interrupt();
    logLine(entry.id, "runtime", "interrupt requested");
  });
  $("clear").addEventListener("click", () => {
    state.runs = state.runs.filter((r) => r.end === null);
    state.lanes = new Map([...state.lanes].filter(([, lane]) => state.runs.some((r) => r.lane === lane)));
    state.origin = state.runs.length ? Math.min(...state.runs.map((r) => r.submit)) : null;
    $("events").replaceChildren();
    scheduleRender();
  });
  new ResizeObserver(() => scheduleRender()).observe($("timeline").parentElement);
  renderEnv(null);
  renderRuntimes();
  updateControls();
  scheduleRender();
  window.playground = { state, createRuntime, disposeRuntime, select };
  if (new URLSearchParams(location.search).get("autostart") !== "0") {
    createRuntime({ sandbox: false });
  } else {
    setStatus("no runtime yet: create one");
  }
}

init();
