/**
 * The native layer's costs: one FFI crossing, and a poll returning 0, 1 and 64 events.
 * A poll that returns events needs events to return: each iteration sends a byte on k
 * streams, polls (k READ events), and reads each stream dry again. The same work without
 * the poll is measured beside it, so the poll's own share is the difference.
 *
 *   deno run -A bench/ffi.bench.ts   |   bun bench/ffi.bench.ts
 */

import { benchOptions } from "./options.ts";
import { bench, do_not_optimize, group, run, summary } from "mitata";
import { connect, listen, type Stream } from "../mod.ts";
import { reactor } from "../src/reactor.ts";

const { sym } = reactor.native;
const loop = reactor.loop;

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

/** Sends a byte on k clients, optionally polls, and reads the k servers dry (re-arming them). */
function cycle(k: number, poll: boolean): number {
  for (let i = 0; i < k; i++) sym.zev_write(loop, pairs[i].client.handle, one, 1);
  const n = poll ? sym.zev_poll(loop, events, 256, 0) : 0;
  for (let i = 0; i < k; i++) {
    const h = pairs[i].server.handle;
    while (sym.zev_read(loop, h, sink, sink.length) > 0);
  }
  return n;
}
// Arm every server end (a read that would block asks for the next READ event).
cycle(64, true);

summary(() => {
  bench("poll, 0 events", () => do_not_optimize(sym.zev_poll(loop, events, 256, 0)));
  for (const k of [1, 64]) {
    bench(`send + poll (${k} event${k > 1 ? "s" : ""}) + read, ×${k}`, () => do_not_optimize(cycle(k, true)));
    bench(`send + read, ×${k} (no poll)`, () => do_not_optimize(cycle(k, false)));
  }
});

await run(benchOptions());
// Check the cycle really produced its events, then clean up.
let seen = 0;
for (let i = 0; i < 5 && seen === 0; i++) seen = cycle(64, true);
if (seen !== 64) console.error(`warning: a 64-stream cycle polled ${seen} events`);
for (const { client, server } of pairs) await Promise.all([client.close(), server.close()]);
listener.close();
