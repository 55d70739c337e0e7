/**
 * `serve({ workers: 1 })` whose Worker keeps failing soon after it listens, run as a
 * program (this module runs again in the Worker). The main thread closes the server just
 * after the third failure, while the next replacement waits a 2 s pause, and prints when
 * `finished` resolved and when the process exited: a pending replacement must not keep
 * the process alive after `finished`.
 */
import process from "node:process";
import { serve, workerIndex } from "../../../mod.ts";

const server = await serve({ hostname: "127.0.0.1", port: 0, workers: 1, startTimeout: 10_000 }, () => {});
if (workerIndex() !== undefined) {
  setTimeout(() => {
    throw new Error("this worker fails on purpose");
  }, 50);
} else {
  let failures = 0;
  let finishedAt = 0;
  const print = console.error;
  console.error = (...args: unknown[]) => {
    if (!String(args[0]).startsWith("zev: serve worker 0 failed, replacing it")) return print(...args);
    if (++failures !== 3) return;
    // A moment later, while the replacement waits out its pause.
    setTimeout(async () => {
      await server.close({ gracePeriod: 0 });
      await server.finished;
      finishedAt = Date.now();
      console.log(`finished after ${failures} failures`);
    }, 200);
  };
  process.on("exit", () => console.log(`exit after finished: ${Date.now() - finishedAt} ms`));
}
