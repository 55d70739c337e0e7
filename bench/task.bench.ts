/**
 * What a supervised task costs over a bare async call: `go` (next turn), `call` (at
 * once), and an async function awaited directly.
 *
 *   deno run -A bench/task.bench.ts   |   bun bench/task.bench.ts
 */

import { benchOptions } from "./options.ts";
import { bench, run, summary } from "mitata";
import { call, go } from "../mod.ts";

// deno-lint-ignore require-await
async function work(x: number): Promise<number> {
  return x + 1;
}

summary(() => {
  bench("await work() (bare async call)", async () => await work(1));
  bench("await call(work).done", async () => await call(work, 1).done);
  bench("await go(work).done", async () => await go(work, 1).done);
});

await run(benchOptions());
