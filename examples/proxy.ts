/**
 * A TCP proxy: every connection is a scope with two pumps, client to upstream and back.
 * A pump that reaches the end of its stream passes it on (half-close) and ends; the
 * connection closes once both have. A pump that fails (a reset, a write refused) fails
 * the scope: the other pump is cancelled wherever it waits, both streams are reset, and
 * nothing of the connection is left open.
 *
 *   deno run --allow-ffi --allow-read --allow-env --allow-net examples/proxy.ts --upstream HOST:PORT [--host 127.0.0.1] [--port 0]
 *   bun examples/proxy.ts --upstream HOST:PORT [--host 127.0.0.1] [--port 0]
 *
 * Prints `listening on HOST:PORT` once ready; exits 0 on SIGINT or SIGTERM. The upstream
 * is connected with happy eyeballs (examples/happy_eyeballs.ts).
 */

import process from "node:process";
import { scope, serve, type Stream, ZevError } from "../mod.ts";
import { parseFlags } from "./flags.ts";
import { connectFast } from "./happy_eyeballs.ts";

const flags = parseFlags(process.argv.slice(2), ["upstream"]);
const match = /^(.+):(\d+)$/.exec(flags.upstream ?? "");
if (!match || Number(match[2]) > 65535) {
  console.error(`proxy: --upstream HOST:PORT is required (got ${JSON.stringify(flags.upstream ?? null)})`);
  process.exit(2);
}
const [upstreamHost, upstreamPort] = [match[1].replace(/^\[(.*)\]$/, "$1"), Number(match[2])];

/** Copies `from` to `to` until `from` ends, then passes the end on. */
async function pump(from: Stream, to: Stream): Promise<void> {
  const buf = new Uint8Array(16 * 1024);
  for (let n; (n = await from.read(buf)) !== null;) await to.write(buf.subarray(0, n));
  await to.closeWrite();
}

/** A peer that went away is routine for a proxy, not an error to report. */
const routine = (error: unknown) =>
  error instanceof ZevError && ["ConnectionReset", "BrokenPipe", "ConnectionRefused", "Closed"].includes(error.code);

async function proxy(client: Stream): Promise<void> {
  let upstream: Stream;
  try {
    upstream = await connectFast(upstreamHost, upstreamPort);
  } catch (error) {
    // Every address refused or failed (an AggregateError of them): the client is reset.
    const why = error instanceof AggregateError ? error.errors.map((e) => e.message).join("; ") : String(error);
    console.error(`proxy: cannot reach ${upstreamHost}:${upstreamPort}: ${why}`);
    client.abort();
    return;
  }
  try {
    await scope((s) => {
      s.go(pump, client, upstream);
      s.go(pump, upstream, client);
    });
    await upstream.close();
  } catch (error) {
    // One side failed and the other pump was cancelled: reset both, so that each peer
    // learns the connection is gone rather than wait for bytes that will not come.
    upstream.abort();
    client.abort();
    if (!routine(error)) throw error;
  }
}

const server = serve({ hostname: flags.host, port: flags.port }, proxy);
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => server.close({ gracePeriod: 5000 }));
console.log(`listening on ${server.addr.hostname}:${server.addr.port}`);
await server.finished;
process.exit(0);
