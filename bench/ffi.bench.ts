/**
 * The native layer's costs: one FFI crossing, a poll that finds nothing, and a poll that
 * returns 1 and 64 events. A poll can only return events that happened: each iteration
 * sends a byte on k streams, polls once (k READ events), and reads each stream dry
 * again, so the figure is one loop turn with k readable streams; the sends and reads are
 * real system calls and most of it.
 *
 *   deno run -A bench/ffi.bench.ts   |   bun bench/ffi.bench.ts
 */

import { benchOptions } from "./options.ts";
import { bench, do_not_optimize, group, run, summary } from "mitata";
import { connect, listen, type Stream } from "../mod.ts";
import { driver } from "../src/core/driver.ts";

const { sym } = driver.native;
const loop = driver.loop;

group("one FFI crossing", () => {
  bench("zev_abi_version()", () => do_not_optimize(sym.zev_abi_version()));
  bench("zev_status(loop, stale handle)", () => do_not_optimize(sym.zev_status(loop, 1)));
});

// k connected pairs; the server ends are driven through the raw ABI.
const listener = listen({ hostname: "127.0.0.1", port: 0 });
const pairs: { client: Stream; server: Stream }[] = [];
for (let i = 0; i < 64; i++) {
  const [client, server] = await Promise.all([connect({ port: listener.addr.port }), listener.accept()]);
  pairs.push({ client, server });
}
const events = new Uint8Array(256 * 8);
const one = new Uint8Array([1]);
const sink = new Uint8Array(64);

/** Sends a byte on k clients, polls, and reads the k servers dry (re-arming them). */
function cycle(k: number): number {
  for (let i = 0; i < k; i++) sym.zev_write(loop, pairs[i].client.handle, one, 1);
  const n = sym.zev_poll(loop, events, 256, 0);
  for (let i = 0; i < k; i++) {
    const h = pairs[i].server.handle;
    while (sym.zev_read(loop, h, sink, sink.length) > 0);
  }
  return n;
}
// Arm every server end (a read that would block asks for the next READ event).
cycle(64);

summary(() => {
  bench("poll, 0 events", () => do_not_optimize(sym.zev_poll(loop, events, 256, 0)));
  bench("1 readable stream: send + poll (1 event) + read", () => do_not_optimize(cycle(1)));
  bench("64 readable streams: 64 sends + poll (64 events) + 64 reads", () => do_not_optimize(cycle(64)));
});

await run(benchOptions());
// Check the cycle really produced its events, then clean up.
let seen = 0;
for (let i = 0; i < 5 && seen === 0; i++) seen = cycle(64);
if (seen !== 64) console.error(`warning: a 64-stream cycle polled ${seen} events`);
for (const { client, server } of pairs) await Promise.all([client.close(), server.close()]);
listener.close();
