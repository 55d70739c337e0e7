/**
 * Bun's fallback parking thread. It blocks in `zev_park` when the JS thread asks, then
 * wakes it through shared memory. Nothing else runs here; the loop's events stay for the
 * JS thread's next poll.
 *
 * @module
 */

import { dlopen } from "bun:ffi";
import { bunSymbols, CTL } from "./bun.ts";

declare const self: { onmessage: ((e: MessageEvent) => void) | null };

// Loaded only as the Worker's entry point (ffi/bun.ts starts it).
self.onmessage = (e: MessageEvent) => {
  const lib = dlopen(e.data.path, bunSymbols(["zev_park"]));
  const ctl = new Int32Array(e.data.ctl);
  Atomics.store(ctl, CTL.ready, 1);
  Atomics.notify(ctl, CTL.ready);
  let seen = 0;
  for (;;) {
    Atomics.wait(ctl, CTL.request, seen);
    seen = Atomics.load(ctl, CTL.request);
    lib.symbols.zev_park(ctl[CTL.loop], -1);
    Atomics.store(ctl, CTL.done, seen);
    Atomics.notify(ctl, CTL.done);
  }
};
