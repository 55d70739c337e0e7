/**
 * A server that shuts down gracefully on SIGTERM: accepting stops, a handler that is
 * finishing its reply gets to finish, an idle one is cancelled after the grace period,
 * and the process exits by itself. Prints what happened.
 */
import process from "node:process";
import { Cancelled, serve, sleep } from "../../../mod.ts";

const server = serve({ hostname: "127.0.0.1", port: 0 }, async function handler(stream) {
  const buf = new Uint8Array(64);
  try {
    const n = await stream.read(buf);
    if (n === null) return;
    await sleep(100); // a slow reply: still within the grace period
    await stream.write(buf.subarray(0, n));
    console.log("replied");
  } catch (error) {
    if (error instanceof Cancelled) console.log("cancelled an idle handler");
    else throw error;
  }
});
process.on("SIGTERM", async () => {
  console.log("closing");
  await server.close({ gracePeriod: 300 });
  console.log(`closed; handlers left: ${server.connections}`);
});
console.log(`listening on 127.0.0.1:${server.addr.port}`);
await server.finished;
console.log("finished");
