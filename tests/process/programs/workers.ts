/**
 * `serve({ workers: 2 })`: this module runs on the main thread and again in each Worker.
 * Each connection is answered with the Worker's index and a name it drew at start; one
 * request makes its Worker fail (an error nothing catches), which must be reported and
 * replaced while the other Worker goes on serving. Prints what it saw, one line each.
 * Usage: workers.ts N [PORT] (the Workers read them from their arguments too).
 */
import net from "node:net";
import process from "node:process";
import { ask as askOnce } from "./ask.ts";
import { serve, sleep, workerIndex } from "../../../mod.ts";

const me = crypto.randomUUID().slice(0, 8);
const [workers, port = 0] = process.argv.slice(2).map(Number);
const server = await serve({ hostname: "127.0.0.1", port, workers }, async (stream) => {
  const buf = new Uint8Array(16);
  const n = await stream.read(buf);
  if (n !== null && new TextDecoder().decode(buf.subarray(0, n)) === "crash") {
    setTimeout(() => {
      throw new Error("this worker fails on purpose");
    });
  }
  await stream.write(new TextEncoder().encode(`${workerIndex()} ${me}`));
}).catch((error) => {
  if (workerIndex() !== undefined) throw error;
  console.log(`failed: ${error.code}: ${error.message}`);
  process.exit(0);
});

/** One connection: the whole reply to `message`, or "" after 2 s. */
const ask = (port: number, message: string) => askOnce(port, message, 2000);

if (workerIndex() === undefined) {
  const port = server.addr.port;
  console.log(`listening on ${server.addr.hostname}:${port}`);
  const before = new Set<string>();
  for (let i = 0; i < 40; i++) before.add(await ask(port, "hi"));
  console.log(`before: ${[...before].sort().join(", ")}`);
  // One connection left open: the main thread's count includes it (told within 100 ms).
  const held = net.connect({ port, host: "127.0.0.1" });
  await new Promise((r) => held.once("connect", r));
  await sleep(300);
  console.log(`connections with one open: ${server.connections}`);
  held.end("bye");
  await sleep(300);
  console.log(`connections after it closed: ${server.connections}`);
  const crashed = await ask(port, "crash");
  console.log(`crashed: ${crashed}`);
  // Until the failed Worker's replacement answers (the other one serves meanwhile).
  const index = crashed.split(" ")[0];
  const deadline = Date.now() + 10_000;
  for (let r = ""; !(r.startsWith(`${index} `) && r !== crashed) && Date.now() < deadline;) r = await ask(port, "hi");
  const after = new Set<string>();
  let answered = 0;
  for (let i = 0; i < 40; i++) {
    const reply = await ask(port, "hi");
    if (reply !== "") (answered++, after.add(reply));
  }
  console.log(`after: ${answered} of 40 answered by ${[...after].sort().join(", ")}`);
  await server.close({ gracePeriod: 1000 });
  await server.finished;
  console.log("closed");
  process.exitCode = 0;
}
