/**
 * A write and a read through the whole stack (mod.ts, FFI, driver, kernel, and back),
 * over loopback within one process: 64 B and 64 KiB.
 *
 *   deno run -A bench/stream.bench.ts   |   bun bench/stream.bench.ts
 */

import { benchOptions } from "./options.ts";
import { bench, run, summary } from "mitata";
import { connect, listen } from "../mod.ts";

const listener = listen({ hostname: "127.0.0.1", port: 0 });
const [client, server] = await Promise.all([connect({ port: listener.addr.port }), listener.accept()]);

for (const size of [64, 64 * 1024]) {
  const out = new Uint8Array(size).fill(42);
  const back = new Uint8Array(size);
  const label = size === 64 ? "64 B" : "64 KiB";
  summary(() => {
    bench(`write ${label} + read ${label}`, async () => {
      const w = client.write(out);
      await server.readFull(back);
      await w;
    });
  });
}

await run(benchOptions());
await Promise.all([client.close(), server.close()]);
listener.close();
