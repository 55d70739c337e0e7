/**
 * examples/echo.ts in a child process of the runtime running the tests, with the library
 * under test (ZEV_LIB is inherited), optionally under a descriptor limit. The child is a
 * real server with its own memory and descriptors, measured from /proc.
 */

import process from "node:process";
import { example, type Server, startServer } from "./server.ts";
import { runtime } from "./helpers.ts";

export function startEcho(options: { fdLimit?: number } = {}): Promise<Server> {
  let argv = example(runtime, "echo", [], process.execPath);
  if (options.fdLimit) argv = ["sh", "-c", `ulimit -n ${options.fdLimit} && exec "$@"`, "sh", ...argv];
  return startServer(`echo.ts (${runtime}${options.fdLimit ? `, ulimit -n ${options.fdLimit}` : ""})`, argv);
}
