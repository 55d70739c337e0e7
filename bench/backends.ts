/**
 * zev on its two Linux backends side by side: epoll (the default) and io_uring
 * (`ZEV_BACKEND=io_uring`), in Bun and in Deno, along the load curve and at 1, 64 and 512
 * connections in a closed loop. The goal of the io_uring issue: at 64 and 512
 * connections, io_uring at most 0.85× the CPU per round trip of epoll (docs/design/IO_URING.md).
 *
 *   bun bench/backends.ts [--runtime bun|deno|both] [--seconds 3] [--repeat 3] [--unpinned]
 */

import process from "node:process";
import { type EchoServer, ioUringStudy, option } from "./curve.ts";
import { example } from "../tests/harness/server.ts";

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => option(args, name, fallback);
const seconds = Number(opt("seconds", "3"));
const repeat = Number(opt("repeat", "3"));
const runtimes = opt("runtime", "both") === "both"
  ? ["bun", "deno"] as const
  : [opt("runtime", "bun") as "bun" | "deno"];

const servers: EchoServer[] = [];
for (const rt of runtimes) {
  const label = rt === "bun" ? "Bun" : "Deno";
  const epoll = `zev (${label}), epoll`;
  servers.push({ name: epoll, argv: example(rt, "echo"), env: { ZEV_BACKEND: "epoll" } });
  servers.push({
    name: `zev (${label}), io_uring`,
    argv: example(rt, "echo"),
    env: { ZEV_BACKEND: "io_uring" },
    baseline: epoll,
  });
}
await ioUringStudy("bench/backends.ts", args, servers, seconds, repeat);
