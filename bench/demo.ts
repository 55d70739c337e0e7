/**
 * `make demo`: the seed scenario as a story. Janet 1.32's `net/accept-loop` answered a
 * first load test of about 20 concurrent clients and hung on the second. Here the same
 * load, 20 clients connecting at once, round after round, goes to examples/echo.ts under
 * Deno and Bun, with the glibc and the musl library; then to the same server built with
 * Janet's listener behaviour (`-Dlistener-mode=edge-single`), where it stalls.
 */

import { example, load, root, startServer, table } from "../tests/harness/server.ts";

const ROUNDS = 200;
const CLIENTS = 20;
const DEADLINE_MS = 1000;
const libs = [
  { libc: "glibc", mode: "level-batch", path: `${root}zig-out/lib/libzev-linux-x86_64-gnu.so` },
  { libc: "musl", mode: "level-batch", path: `${root}zig-out/lib/libzev-linux-x86_64-musl.so` },
  { libc: "glibc", mode: "edge-single", path: `${root}zig-out-edge/lib/libzev-linux-x86_64-gnu.so` },
  { libc: "musl", mode: "edge-single", path: `${root}zig-out-edge/lib/libzev-linux-x86_64-musl.so` },
];

console.log(`${CLIENTS} clients connect at once, each sends a request and reads the echo; ${ROUNDS} rounds;`);
console.log(`a round with no reply within ${DEADLINE_MS} ms is a stall (edge-single runs stop after 3 stalls).\n`);
const rows: (string | number)[][] = [];
for (const lib of libs) {
  for (const runtime of ["deno", "bun"] as const) {
    const server = await startServer(`echo.ts (${runtime}, ${lib.libc}, ${lib.mode})`, example(runtime, "echo"), {
      ZEV_LIB: lib.path,
    });
    const r = await load([
      "rounds",
      "--port",
      String(server.port),
      "--clients",
      String(CLIENTS),
      "--rounds",
      String(ROUNDS),
      "--deadline-ms",
      String(DEADLINE_MS),
      ...(lib.mode === "edge-single" ? ["--max-stalls", "3"] : []),
    ]);
    const code = await server.stop();
    rows.push([
      runtime,
      lib.libc,
      lib.mode,
      `${r.rounds_run}/${ROUNDS}`,
      Number(r.requests),
      Number(r.stalls),
      `${Number(r.p99_us).toFixed(0)} µs`,
      code === 0 ? "0" : String(code),
    ]);
    console.log(`  ${runtime} ${lib.libc} ${lib.mode}: ${r.requests} requests, ${r.stalls} stalls`);
  }
}
console.log(`\n${table(["runtime", "libc", "listener", "rounds", "requests", "stalls", "p99", "exit"], rows)}\n`);
const healthy = rows.filter((r) => r[2] === "level-batch");
const broken = rows.filter((r) => r[2] === "edge-single");
console.log(
  healthy.every((r) => r[5] === 0) && broken.every((r) => Number(r[5]) > 0)
    ? "zev served every round; the edge-single build, like Janet 1.32, stalled."
    : "UNEXPECTED: see the table above.",
);
