/**
 * Bun's parking thread. It blocks in `zev_park` when the JS thread asks, then wakes it
 * through shared memory. Nothing else runs here; the loop's events stay for the JS
 * thread's next poll.
 *
 * @module
 */

/** Slots of the shared control array. */
export const CTL = { request: 0, done: 1, loop: 2, timeout: 3 } as const;
export const CTL_LENGTH = 4;

import { isMainThread } from "node:worker_threads";

declare const self: { onmessage: ((e: MessageEvent) => void) | null };

if (!isMainThread) {
  self.onmessage = async (e: MessageEvent) => {
    const { dlopen, FFIType } = await import("bun:ffi");
    const lib = dlopen(e.data.path, { zev_park: { args: [FFIType.u32, FFIType.i32], returns: FFIType.i32 } });
    const ctl = new Int32Array(e.data.ctl);
    let seen = 0;
    for (;;) {
      Atomics.wait(ctl, CTL.request, seen);
      seen = Atomics.load(ctl, CTL.request);
      lib.symbols.zev_park(ctl[CTL.loop], ctl[CTL.timeout]);
      Atomics.store(ctl, CTL.done, seen);
      Atomics.notify(ctl, CTL.done);
    }
  };
}
