/**
 * Leak check for a test file: the open descriptors of the process and the live handles
 * of the loop must be the same after the file's tests as before them, and zev must have
 * reported no internal error (a bug in zev, printed instead of thrown at a caller) while
 * they ran.
 */

import { after, before } from "node:test";
import assert from "node:assert/strict";
import { listen, sleep, stats } from "../../mod.ts";
import { openDescriptors, within } from "./helpers.ts";

const INTERNAL = "zev: internal error (please report it):";

export function checkLeaks(suite: string): void {
  let fds = 0;
  let handles = 0;
  const internal: unknown[] = [];
  const print = console.error;
  before(async () => {
    // Tests that capture stderr themselves replace this for a while, and see their own.
    console.error = (...args: unknown[]) => {
      if (args[0] === INTERNAL) internal.push(args[1]);
      print(...args);
    };
    // Let the loop park once first, so that whatever the runtime opens lazily for its own
    // sockets (the wake socket zev hands it) is in the count before. That is not a leak.
    const warmup = listen({ hostname: "127.0.0.1", port: 0 });
    await sleep(10);
    warmup.close();
    fds = openDescriptors();
    handles = stats().liveHandles;
  });
  after(async () => {
    // Peers close asynchronously: give the loop a moment to see the last ends.
    await within(
      5000,
      `${suite}: descriptors and handles back to where they were`,
      (async () => {
        while (openDescriptors() > fds || stats().liveHandles > handles) await new Promise((r) => setTimeout(r, 20));
      })(),
    ).catch(() => {});
    // Fewer is not a leak: something an earlier file opened may have closed meanwhile.
    const liveAfter = stats().liveHandles, fdsAfter = openDescriptors();
    assert.ok(liveAfter <= handles, `${suite}: ${liveAfter} live zev handles after, ${handles} before`);
    assert.ok(fdsAfter <= fds, `${suite}: ${fdsAfter} open descriptors after, ${fds} before`);
    console.error = print;
    assert.deepEqual(internal, [], `${suite}: zev reported internal errors`);
  });
}
