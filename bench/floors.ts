/**
 * The two floors side by side: the plainest correct echo server on epoll
 * (bench/floor.zig) and on io_uring (bench/floor_uring.zig), no JS in either, along the
 * load curve and at 1, 64 and 512 connections in a closed loop. What the io_uring floor
 * saves over the epoll floor bounds what an io_uring backend could save zev
 * (docs/design/IO_URING.md).
 *
 *   bun bench/floors.ts [--seconds 3] [--repeat 5]
 */

import process from "node:process";
import { type EchoServer, ioUringStudy, option } from "./curve.ts";
import { root } from "../tests/harness/server.ts";

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => option(args, name, fallback);
const seconds = Number(opt("seconds", "3"));
const repeat = Number(opt("repeat", "5"));

const EPOLL_FLOOR = "Zig floor (epoll, no JS)";
const URING_FLOOR = "Zig floor (io_uring, no JS)";
const servers: EchoServer[] = [
  { name: EPOLL_FLOOR, argv: [`${root}zig-out/bin/zev-floor`] },
  { name: URING_FLOOR, argv: [`${root}zig-out/bin/zev-floor-uring`], baseline: EPOLL_FLOOR },
];
await ioUringStudy("bench/floors.ts", args, servers, seconds, repeat);
