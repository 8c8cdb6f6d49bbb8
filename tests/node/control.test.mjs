// The page's end of the control buffer trusts no word the worker can write
// (web/page/control.js ControlChannel), and the per-worker cost budget (Supervisor).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ControlChannel, EVENTS_PER_EXECUTION, Supervisor, countNodes, executionBudgetFor, messageLimitFor,
  nodeLimitFor,
} from "../../web/page/control.js";
import { CONTROL } from "../../web/shared/protocol.js";

const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

test("requests land in the slot the page's own count names, and the ring fills up", () => {
  const ch = new ControlChannel();
  const i32 = new Int32Array(ch.buffer);
  for (let i = 0; i < CONTROL.SLOTS; i++) assert.equal(ch.request(CONTROL.INTERRUPT, 100 + i), true);
  assert.equal(ch.request(CONTROL.INTERRUPT, 999), false); // full: not sent, not poisoned
  assert.equal(ch.poisoned, null);
  assert.equal(i32[CONTROL.RING + 1], 100);
  Atomics.store(i32, CONTROL.READ, CONTROL.SLOTS); // the worker read them all
  assert.equal(ch.request(CONTROL.TIMEOUT, 7), true);
  assert.deepEqual([i32[CONTROL.RING], i32[CONTROL.RING + 1]], [CONTROL.TIMEOUT, 7]);
  assert.equal(i32[CONTROL.SIGNAL], CONTROL.SIGNUM);
});

for (const [what, index, value] of [
  ["a negative WRITE word", CONTROL.WRITE, -1000],
  ["a WRITE word ahead of the page", CONTROL.WRITE, 5],
  ["a negative READ word", CONTROL.READ, -2000],
  ["a READ word ahead of WRITE", CONTROL.READ, 3],
]) {
  test(`${what} poisons the buffer: requests never throw and are not sent`, async () => {
    const ch = new ControlChannel();
    const reports = [];
    ch.onPoisoned = (why) => reports.push(why);
    assert.equal(ch.request(CONTROL.INTERRUPT, 1), true);
    const i32 = new Int32Array(ch.buffer);
    Atomics.store(i32, index, value);
    const ring = [...i32.slice(CONTROL.RING, CONTROL.RING + 2 * CONTROL.SLOTS)];
    assert.equal(ch.request(CONTROL.INTERRUPT, 2), false);
    assert.equal(ch.request(CONTROL.TIMEOUT, 2), false);
    assert.equal(ch.check(), false);
    assert.deepEqual([...i32.slice(CONTROL.RING, CONTROL.RING + 2 * CONTROL.SLOTS)], ring);
    await flush();
    assert.equal(reports.length, 1);
    assert.match(reports[0], /only the page may write/);
  });
}

test("the budget grows with each posted execution and each served host call, and resets", () => {
  const host = { pending: new Map(), control: null, state: "ready" };
  const sup = new Supervisor(host);
  const limits = { max_output_bytes: 1000, max_result_bytes: 1000 };
  assert.equal(sup.charge(2 ** 20), null);
  assert.match(sup.charge(1), /over the/);
  const handle = { _timers: [], id: 1 };
  host.pending.set(1, handle);
  sup.posted(handle, limits);
  sup.stop();
  assert.equal(sup.charge(executionBudgetFor(limits) - 1), null);
  assert.match(sup.charge(10), /over the/);
  sup.served(100);
  assert.equal(sup.charge(1000), null);
  for (let i = 0; i < EVENTS_PER_EXECUTION + 2; i++) assert.equal(sup.event(), null);
  assert.match(sup.event(), /more than/);
  host.pending.clear();
  sup.settled();
  assert.equal(sup.spent, 0);
  assert.equal(sup.events, 0);
});

test("limits scale the message limit, the value limit and the budget", () => {
  assert.equal(messageLimitFor({ max_output_bytes: 10, max_result_bytes: 10 }), 2 ** 20 + 140);
  assert.ok(messageLimitFor(null) > 100_000_000);
  assert.equal(nodeLimitFor({ max_result_bytes: 100 }), 100 + 65_536);
  assert.equal(countNodes([{}, [1, "x"], { a: null }], 100), 7);
  assert.equal(countNodes(new Array(1000).fill(0), 10), 11); // stops counting early
});
