/**
 * An echo server that looks for stalls while it serves: `stats()` every millisecond
 * (each call looks whether the loop is parked with work and no wake on its way). On
 * SIGTERM it prints `stats {JSON}` and exits.
 */
import process from "node:process";
import { serve, stats, type Stream } from "../../../mod.ts";

async function echo(stream: Stream): Promise<void> {
  const buf = new Uint8Array(16 * 1024);
  for (;;) {
    const n = await stream.read(buf);
    if (n === null) return;
    await stream.write(buf.subarray(0, n));
  }
}

const server = serve({ hostname: "127.0.0.1", port: 0 }, echo);
const probe = setInterval(stats, 1);
process.on("SIGTERM", async () => {
  clearInterval(probe);
  console.log(`stats ${JSON.stringify(stats())}`);
  await server.close({ gracePeriod: 1000 });
});
console.log(`listening on 127.0.0.1:${server.addr.port}`);
await server.finished;
