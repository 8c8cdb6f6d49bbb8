// The agent replay page (agent.html): replays examples/transcript.json, a recorded
// conversation with an OpenAI-style planner whose turns may hold several run_python
// tool calls issued in parallel, against the browser runtime through one of the three
// tool-binding policies, and shows every tool result. The browser twin of
// examples/agent_replay.py: the same host functions, the same tool messages.
//
//   agent.html?policy=queue|busy|sandbox   (&autorun=0: wait for the button; &pool=N)
//
// For tests: window.agent.replay(policy) -> the tool messages; <body data-state> is
// "idle" | "running" | "done" | "failed".

import { MontyRuntime } from "../monty-runtime.js";
import { POLICIES, bindTool } from "../tools.js";

const TRANSCRIPT_URL = "examples/transcript.json";
const RATES = { NOK: 11.7, USD: 1.08, EUR: 1.0 };
const TEMPS = { Paris: 14, Oslo: 3 };
const POLICY_NOTES = {
  queue: "each call waits for the one before it; state is kept",
  busy: "a call while another runs gets {status: \"busy\", retry_after_ms}",
  sandbox: "parallel calls all run, each in a fresh interpreter; nothing persists",
};

const $ = (sel) => document.querySelector(sel);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The host functions of examples/agent_replay.py, with the transcript's schemas. */
export function hostFunctions(specs) {
  return {
    get_weather: {
      ...specs.get_weather,
      fn: async (city) => {
        await sleep(50);
        return { city, temp_c: TEMPS[city] ?? 10, sky: "clear" };
      },
    },
    convert: {
      ...specs.convert,
      fn: (amount, currency) => {
        if (!Object.hasOwn(RATES, currency)) {
          const err = new Error(`'${currency}'`);
          err.name = "KeyError";
          throw err;
        }
        return Math.round(amount * RATES[currency] * 100) / 100;
      },
    },
  };
}

/** json.dumps(value) with Python's default separators and ensure_ascii. */
export function pyDumps(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "number") {
    if (Number.isNaN(value)) return "NaN";
    if (!Number.isFinite(value)) return value > 0 ? "Infinity" : "-Infinity";
    return String(value);
  }
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "string") {
    return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  }
  if (Array.isArray(value)) return `[${value.map(pyDumps).join(", ")}]`;
  return `{${Object.entries(value).map(([k, v]) => `${pyDumps(k)}: ${pyDumps(v)}`).join(", ")}}`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child != null) node.append(child);
  }
  return node;
}

function setStatus(text, kind = "") {
  const status = $("#status");
  status.textContent = text;
  status.className = `status ${kind}`;
}

let transcript = null;
let running = false;

async function loadTranscript() {
  if (transcript === null) {
    const response = await fetch(TRANSCRIPT_URL);
    if (!response.ok) throw new Error(`GET ${TRANSCRIPT_URL}: ${response.status}`);
    transcript = await response.json();
  }
  return transcript;
}

function firstLine(code) {
  const lines = code.split("\n");
  return lines.length > 1 ? `${lines[0]} …` : lines[0];
}

/** Render one assistant turn's tool calls as pending cards; returns the cards by id. */
function renderTurn(conversation, calls) {
  const grid = el("div", { class: "calls" });
  const cards = new Map();
  for (const call of calls) {
    let code = "";
    try {
      code = JSON.parse(call.function.arguments).code;
    } catch {
      code = call.function.arguments;
    }
    const badge = el("span", { class: "badge pending" }, "running");
    const time = el("span", { class: "muted" });
    const payload = el("pre", { class: "payload", "data-call-id": call.id });
    const card = el(
      "article",
      { class: "tool-call", "data-call-id": call.id, "data-status": "pending" },
      el("header", {}, el("code", { class: "call-id" }, call.id), badge, time),
      el("pre", { class: "code", title: code }, code),
      payload,
    );
    grid.append(card);
    cards.set(call.id, { card, badge, time, payload, summary: firstLine(code) });
  }
  conversation.append(
    el(
      "section",
      { class: "turn assistant" },
      el("div", { class: "who" }, "assistant"),
      el("p", { class: "muted" }, calls.length > 1 ? `${calls.length} tool calls in parallel` : "1 tool call"),
      grid,
    ),
  );
  return cards;
}

function showResult(entry, result, ms) {
  entry.card.dataset.status = result.status;
  entry.badge.className = `badge ${result.status}`;
  entry.badge.textContent = result.status;
  entry.time.textContent = `${Math.round(ms)} ms`;
  entry.payload.textContent = pyDumps(result);
}

/**
 * Replay the transcript with `policy`; renders as it goes and resolves to the tool
 * messages ({role: "tool", tool_call_id, content}), like agent_replay.replay().
 */
async function replay(policy, { poolSize = 2 } = {}) {
  if (!POLICIES.includes(policy)) throw new RangeError(`unknown policy ${policy}`);
  if (running) throw new Error("a replay is already running");
  running = true;
  document.body.dataset.state = "running";
  for (const button of document.querySelectorAll("button, input")) button.disabled = true;
  const conversation = $("#conversation");
  conversation.replaceChildren();
  $("#definition").textContent = "";
  const messages = [];
  const counts = { ok: 0, error: 0, busy: 0 };
  let runtime = null;
  try {
    const data = await loadTranscript();
    setStatus(`booting a ${policy === "sandbox" ? "sandbox " : ""}runtime…`);
    const t0 = performance.now();
    runtime = await MontyRuntime.create({
      functions: hostFunctions(data.host_functions),
      sandbox: policy === "sandbox",
      poolSize,
    });
    const tool = bindTool(runtime, policy);
    $("#definition").textContent = JSON.stringify(tool.definition(), null, 2);
    setStatus(`runtime ready in ${((performance.now() - t0) / 1000).toFixed(1)} s; replaying with the ${policy} policy…`);
    for (const message of data.messages) {
      if (message.role === "user") {
        conversation.append(
          el("section", { class: "turn user" }, el("div", { class: "who" }, "user"), el("p", {}, message.content)),
        );
      } else if (message.tool_calls?.length) {
        const calls = message.tool_calls;
        const cards = renderTurn(conversation, calls);
        const results = await Promise.all(
          calls.map(async (call) => {
            const started = performance.now();
            const result = await tool.call(call.function.arguments);
            showResult(cards.get(call.id), result, performance.now() - started);
            return result;
          }),
        );
        calls.forEach((call, i) => {
          counts[results[i].status] = (counts[results[i].status] ?? 0) + 1;
          messages.push({ role: "tool", tool_call_id: call.id, content: pyDumps(results[i]) });
        });
      } else {
        conversation.append(
          el(
            "section",
            { class: "turn assistant" },
            el("div", { class: "who" }, "assistant"),
            el("p", {}, message.content ?? ""),
          ),
        );
      }
    }
    setStatus(
      `done (${policy}): ${counts.ok} ok, ${counts.error} error, ${counts.busy} busy, ` +
        `in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      "ok",
    );
    document.body.dataset.state = "done";
    return messages;
  } catch (err) {
    setStatus(`${err.name}: ${err.message}`, "error");
    document.body.dataset.state = "failed";
    throw err;
  } finally {
    await runtime?.dispose();
    running = false;
    for (const button of document.querySelectorAll("button, input")) button.disabled = false;
  }
}

function selectedPolicy() {
  return document.querySelector("input[name=policy]:checked")?.value ?? "queue";
}

function init() {
  const params = new URLSearchParams(location.search);
  const policy = POLICIES.includes(params.get("policy")) ? params.get("policy") : "queue";
  const poolSize = Math.max(1, Number(params.get("pool")) || 2);
  const choices = $("#policies");
  for (const name of POLICIES) {
    const input = el("input", { type: "radio", name: "policy", value: name, checked: name === policy });
    choices.append(el("label", { class: "choice" }, input, el("b", {}, name), el("span", { class: "muted" }, POLICY_NOTES[name])));
  }
  $("#replay").addEventListener("click", () => {
    const chosen = selectedPolicy();
    const url = new URL(location.href);
    url.searchParams.set("policy", chosen);
    history.replaceState(null, "", url);
    replay(chosen, { poolSize }).catch((err) => console.error(err));
  });
  document.body.dataset.state = "idle";
  window.agent = { replay: (p, opts) => replay(p, { poolSize, ...opts }), pyDumps };
  if (params.get("autorun") !== "0") $("#replay").click();
}

init();
