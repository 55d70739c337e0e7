/**
 * How `serve({ workers })` scales on this machine: examples/echo.ts in Deno and in Bun with
 * one loop on the main thread, 1 Worker and 2 Workers, at saturation (64 connections,
 * closed loop). Nothing is pinned: the Workers and the load generator share the
 * machine's cores, as they would on a real host. Part of `make bench`; alone:
 *
 *   bun bench/workers.ts [--seconds 3] [--repeat 3]
 *
 * @module
 */

import process from "node:process";
import { example, load, startServer, table } from "../tests/harness/server.ts";

interface Row {
  name: string;
  workers: string;
  rate: number;
  cpuUs: number;
  p99: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Measures every configuration `repeat` times (round robin) and returns the table. */
export async function measureWorkers(seconds: number, repeat: number, log: (s: string) => void): Promise<string> {
  const configs = (["deno", "bun"] as const).flatMap((runtime) =>
    [0, 1, 2].map((workers) => ({
      name: `zev (${runtime === "deno" ? "Deno" : "Bun"})`,
      workers,
      argv: example(runtime, "echo", workers > 0 ? ["--workers", String(workers)] : []),
    }))
  );
  const samples = configs.map(() => ({ rate: [] as number[], cpuUs: [] as number[], p99: [] as number[] }));
  for (let round = 0; round < repeat; round++) {
    for (const [i, config] of configs.entries()) {
      const server = await startServer(`${config.name}, ${config.workers} workers`, config.argv);
      try {
        const args = ["echo", "--connections", "64", "--port", String(server.port)];
        await load([...args, "--duration", "1"]); // warm-up
        const cpu0 = server.cpuSeconds();
        const r = await load([...args, "--duration", String(seconds)]);
        const answered = Number(r.round_trips);
        samples[i].rate.push(Number(r.rtps));
        samples[i].cpuUs.push(((server.cpuSeconds() - cpu0) / answered) * 1e6);
        samples[i].p99.push(Number(r.p99_us));
        log(
          `workers ${config.name} × ${config.workers}: ${Math.round(Number(r.rtps))} req/s, ${
            (((server.cpuSeconds() - cpu0) / answered) * 1e6).toFixed(1)
          } µs CPU/req`,
        );
      } finally {
        await server.stop();
      }
    }
  }
  const rows: Row[] = configs.map((c, i) => ({
    name: c.name,
    workers: c.workers === 0 ? "none (main thread)" : String(c.workers),
    rate: median(samples[i].rate),
    cpuUs: median(samples[i].cpuUs),
    p99: median(samples[i].p99),
  }));
  return table(
    ["server", "workers", "answered/s", "CPU µs / request", "p99 µs"],
    rows.map((r) => [r.name, r.workers, Math.round(r.rate).toLocaleString("en-US"), r.cpuUs.toFixed(1), r.p99]),
  );
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const seconds = Number(args[args.indexOf("--seconds") + 1] || 3);
  const repeat = Number(args[args.indexOf("--repeat") + 1] || 3);
  console.log(await measureWorkers(seconds, repeat, console.log));
}
