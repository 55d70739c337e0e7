/**
 * `serve({ workers: 1, startTimeout })` whose Worker takes longer than that to listen:
 * `serve` must reject with `WorkerFailed`, naming the worker and the timeout, and the
 * program must then exit (the Worker is ended). Usage: workers_slow.ts START_MS SLOW_MS.
 */
import process from "node:process";
import { serve, workerIndex, ZevError } from "../../../mod.ts";

const [startTimeout, slowMs] = process.argv.slice(2).map(Number);
// In the Worker, the program takes SLOW_MS to reach `serve`.
if (workerIndex() !== undefined) await new Promise((r) => setTimeout(r, slowMs));
const started = Date.now();
try {
  await serve({ hostname: "127.0.0.1", port: 0, workers: 1, startTimeout }, () => {});
  console.log("listening");
} catch (error) {
  if (workerIndex() !== undefined) throw error;
  const e = error as ZevError;
  console.log(`failed: ${e instanceof ZevError} ${e.code}: ${e.message}`);
  console.log(`after at least the timeout: ${Date.now() - started >= startTimeout}`);
}
