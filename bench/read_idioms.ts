/**
 * What `read()` without a buffer costs against `read(buf)` on a busy server: zev's echo
 * with each (examples/echo.ts, bench/servers/zev_read_buf.ts), in Bun and in Deno, paired
 * rounds at 8 × 5,000 req/s and at saturation (bench/curve.ts; server on CPU 0, load on
 * CPU 1). Prints server CPU per request, p50 and p99, read() over read(buf); part of
 * `make bench`.
 *
 *   bun bench/read_idioms.ts [--seconds 3] [--repeat 5]
 */

import process from "node:process";
import { echoLevel, measureCurve, option, pairedRatio } from "./curve.ts";
import { BUN, DENO, example, root, table } from "../tests/harness/server.ts";

const args = process.argv.slice(2);
const seconds = Number(option(args, "seconds", "3"));
const repeat = Number(option(args, "repeat", "5"));
const readBuf = `${root}bench/servers/zev_read_buf.ts`;
const servers = [
  { name: "Bun read()", argv: example("bun", "echo") },
  { name: "Bun read(buf)", argv: [BUN, readBuf] },
  { name: "Deno read()", argv: example("deno", "echo") },
  { name: "Deno read(buf)", argv: [DENO, "run", "--allow-ffi", "--allow-read", "--allow-env", "--allow-net", readBuf] },
];
const levels = [echoLevel(8, 5000), echoLevel(64, 0)];
const curve = await measureCurve(servers, levels, { seconds, repeat, log: console.log });
const rows: string[][] = [];
for (const [i, level] of levels.entries()) {
  for (const rt of ["Bun", "Deno"]) {
    const ratio = (metric: (s: { cpuUs: number; p50: number; p99: number }) => number) =>
      pairedRatio(curve, `${rt} read()`, `${rt} read(buf)`, i, metric).toFixed(3);
    rows.push([level.name, rt, ratio((s) => s.cpuUs), ratio((s) => s.p50), ratio((s) => s.p99)]);
  }
}
console.log(
  `\nread() / read(buf), median of ${repeat} paired rounds of ${seconds} s (steal ${
    (curve.steal * 100).toFixed(1)
  } %):\n`,
);
console.log(table(["load", "runtime", "CPU per request", "p50", "p99"], rows));
