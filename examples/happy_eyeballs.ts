/**
 * Happy eyeballs (RFC 8305) with `race`: connect to every address of a host name, each
 * attempt started 250 ms after the one before; the first to connect wins, and the others
 * are cancelled (or closed, if they connected too late to win).
 *
 *   bun examples/happy_eyeballs.ts HOST PORT
 *
 * Prints `connected to ADDRESS:PORT` and exits 0, or the errors of every attempt and
 * exits 1. `connectFast` is what examples/proxy.ts connects upstream with.
 */

import process from "node:process";
import { lookup } from "node:dns/promises";
import { connect, race, sleep, type Stream } from "../mod.ts";

/** RFC 8305's "Connection Attempt Delay". */
const ATTEMPT_DELAY_MS = 250;

/** Connects to `host` (a name or an IP literal) on `port` over whichever address answers first. */
export async function connectFast(host: string, port: number): Promise<Stream> {
  const found = await lookup(host, { all: true });
  // IPv6 and IPv4 taken in turn, IPv6 first (RFC 8305, 4).
  const v6 = found.filter((a) => a.family === 6), v4 = found.filter((a) => a.family === 4);
  const ordered = [];
  for (let i = 0; i < Math.max(v6.length, v4.length); i++) ordered.push(...[v6[i], v4[i]].filter(Boolean));
  return race(
    ...ordered.map(({ address }, i) => async () => {
      await sleep(i * ATTEMPT_DELAY_MS);
      return connect({ hostname: address, port });
    }),
  );
}

if (import.meta.main) {
  const [host, port] = process.argv.slice(2);
  if (!host || !/^\d+$/.test(port ?? "") || Number(port) > 65535) {
    console.error("usage: happy_eyeballs.ts HOST PORT");
    process.exit(2);
  }
  try {
    const stream = await connectFast(host, Number(port));
    console.log(`connected to ${stream.remoteAddr.hostname}:${stream.remoteAddr.port}`);
    stream.abort();
  } catch (error) {
    console.error(error instanceof AggregateError ? error.errors.map(String).join("\n") : error);
    process.exit(1);
  }
}
