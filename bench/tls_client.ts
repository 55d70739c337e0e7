/**
 * The TLS echo load for `bench/tls.ts`: N connections (zev's own TLS client, in Bun),
 * each writing 16 KiB messages and reading them back, with at most 4 in flight, for a
 * number of seconds; prints `{"bytes": N, "seconds": S}` (bytes echoed back). The same
 * client against every server, so the servers' CPU per MB compares fairly.
 *
 *   bun bench/tls_client.ts --port P --ca FILE [--connections 1] [--seconds 5]
 */

import process from "node:process";
import { readFileSync } from "node:fs";
import { connect, type Stream } from "../mod.ts";

const args = process.argv.slice(2);
const get = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const port = Number(get("port", "0"));
const connections = Number(get("connections", "1"));
const seconds = Number(get("seconds", "5"));
const ca = readFileSync(get("ca", ""), "utf8");
const MESSAGE = 16 * 1024, IN_FLIGHT = 4;

let echoed = 0;
const deadline = Date.now() + seconds * 1000;
async function one(s: Stream): Promise<void> {
  const out = new Uint8Array(MESSAGE).fill(0x61);
  const back = new Uint8Array(MESSAGE * IN_FLIGHT);
  let sent = 0, got = 0;
  let room: (() => void) | undefined;
  const writer = (async () => {
    while (Date.now() < deadline) {
      // At most IN_FLIGHT messages ahead of what came back.
      if (sent - got >= MESSAGE * IN_FLIGHT) await new Promise<void>((r) => (room = r));
      await s.write(out);
      sent += MESSAGE;
    }
  })();
  while (Date.now() < deadline || got < sent) {
    const n = await s.read(back);
    if (n === null) break;
    got += n;
    echoed += n;
    room?.();
    room = undefined;
    if (Date.now() >= deadline && got >= sent) break;
  }
  await writer;
  await s.close();
}
const started = Date.now();
const streams = await Promise.all(
  Array.from({ length: connections }, () => connect({ hostname: "localhost", port, tls: { ca } })),
);
await Promise.all(streams.map(one));
console.log(JSON.stringify({ bytes: echoed, seconds: (Date.now() - started) / 1000 }));
