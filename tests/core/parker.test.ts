/**
 * The fallback parker (another thread waits: a Worker in Bun, Deno's blocking pool), on a
 * loop of its own: it wakes the driver once per park that ends, and only when the loop
 * has something. In Bun, a waitAsync that resolves with the worker still parked (Bun does
 * that now and then) must not count as a wake.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { native } from "../../ffi/mod.ts";
import { runtime, within } from "../harness/helpers.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("a thread parker wakes once per park, only when the loop has events, and ignores a spurious notify", async () => {
  const loop = native.sym.zev_loop_open(0);
  assert.ok(loop >= 0, `zev_loop_open: ${loop}`);
  let wakes = 0;
  let woken = () => {};
  const parker = await native.threadParker(loop, () => (wakes++, woken()), "test");
  const nextWake = () => new Promise<void>((r) => (woken = r));
  try {
    assert.equal(parker.kind, "thread");
    // Parks that keep the process alive: in Deno an unreferenced park polls on a timer.
    parker.keepAlive(true);
    assert.equal(parker.park(), 0);
    await sleep(50);
    assert.equal(wakes, 0, "woke with nothing in the loop");

    if (runtime === "bun") {
      // What Bun's waitAsync does now and then: resolve with the worker still parked.
      const { CTL } = await import(["../../ffi", "bun.ts"].join("/"));
      const ctl = (parker as unknown as { ctl: Int32Array }).ctl;
      assert.ok(ctl instanceof Int32Array, "the Bun parker shares its control array");
      Atomics.notify(ctl, CTL.done);
      await sleep(50);
      assert.equal(wakes, 0, "a notify without an answer from the worker woke the driver");
    }

    let wake = nextWake();
    assert.equal(native.sym.zev_wake(loop), 0);
    await within(2000, "the parker's wake after zev_wake", wake);
    assert.equal(wakes, 1);
    // The wake is taken by a poll (it yields no event), and the next park waits again.
    const events = new Uint8Array(64 * 8);
    assert.equal(native.sym.zev_poll(loop, events, 64, 0), 0);
    assert.equal(parker.park(), 0);
    await sleep(50);
    assert.equal(wakes, 1, "the second park ended with nothing in the loop");
    wake = nextWake();
    native.sym.zev_wake(loop);
    await within(2000, "the parker's second wake", wake);
    assert.equal(wakes, 2);
  } finally {
    parker.keepAlive(false);
    parker.close();
    assert.equal(native.sym.zev_loop_close(loop), 0);
  }
});
