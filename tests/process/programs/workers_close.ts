/**
 * `serve({ workers: 2 })` shutting down and restarting, run as a program (this module runs
 * again in each Worker). Usage: workers_close.ts MODE MARKER
 *
 * - `graceful`: a request whose handler takes 600 ms is in flight when the main thread
 *   closes the server with a 5 s grace period; prints the reply, whether close waited for
 *   the handler (and not for the grace period), and whether a connection after the close
 *   was refused.
 * - `backoff`: once MARKER exists, a Worker throws before it serves; the main thread
 *   creates it and makes Worker 1 fail (only Worker 1 fails on "crash"), then prints, for 4.5 s, the times of the
 *   supervisor's "replacing it" reports: replacements that keep failing at start must
 *   come further and further apart, while Worker 0 serves on.
 */
import process from "node:process";
import { ask as askOnce } from "./ask.ts";
import { existsSync, writeFileSync } from "node:fs";
import { serve, sleep, workerIndex } from "../../../mod.ts";

const [mode, marker] = process.argv.slice(2);
if (workerIndex() !== undefined && existsSync(marker)) throw new Error("this replacement refuses to start");

const reports: number[] = [];
if (workerIndex() === undefined) {
  const report = console.error;
  console.error = (...args: unknown[]) => {
    if (String(args[0]).startsWith("zev: serve worker 1 failed")) reports.push(Date.now());
    report(...args);
  };
}

const server = await serve({ hostname: "127.0.0.1", port: 0, workers: 2 }, async (stream) => {
  const buf = new Uint8Array(16);
  const n = await stream.read(buf);
  const request = n === null ? "" : new TextDecoder().decode(buf.subarray(0, n));
  if (request === "crash" && workerIndex() === 1) {
    setTimeout(() => Promise.reject(new Error("this worker fails on purpose")));
  }
  if (request === "slow") await sleep(600);
  await stream.write(new TextEncoder().encode(`${workerIndex()} ${request}`));
});

/** One connection: the whole reply to `message`, or "" if refused or after 3 s. */
const ask = (port: number, message: string) => askOnce(port, message, 3000);

if (workerIndex() === undefined) {
  const port = server.addr.port;
  const t0 = Date.now();
  if (mode === "graceful") {
    const slow = ask(port, "slow");
    await sleep(200);
    await server.close({ gracePeriod: 5000 });
    const closedAt = Date.now() - t0;
    console.log(`reply: ${await slow}`);
    // The handler sleeps 600 ms from the request; close was called 200 ms after it.
    console.log(`close waited for the handler: ${closedAt >= 550}`);
    console.log(`close took under 3 s: ${closedAt < 3000}`);
    console.log(`after close: ${JSON.stringify(await ask(port, "hi"))}`);
  } else {
    writeFileSync(marker, "");
    // Worker 1 fails; its replacements refuse to start; Worker 0 serves on.
    for (let i = 0; i < 50 && !(await ask(port, "crash")).startsWith("1 "); i++);
    await sleep(4500);
    console.log(`reports at: ${reports.map((t) => t - reports[0]).join(", ")}`);
    let served = 0;
    for (let i = 0; i < 10; i++) if ((await ask(port, "hi")).startsWith("0 ")) served++;
    console.log(`served by worker 0 meanwhile: ${served} of 10`);
    await server.close({ gracePeriod: 1000 });
  }
  console.log("closed");
}
