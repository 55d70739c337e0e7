/**
 * The park and wake path under random timing: examples/echo.ts (in its own process, with
 * each way of parking) is made to park and wake thousands of times by a client that
 * sends at random moments around the park. A lost wake is a stall of the client, which
 * fails the test, never hangs it.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { runProgram, runtime } from "../harness/helpers.ts";
import { example, startServer } from "../harness/server.ts";
import process from "node:process";

const ROUNDS = 4000;

for (const wake of ["auto", "thread"]) {
  test(`${ROUNDS} parks and wakes at random moments, none lost (${wake} wake)`, async () => {
    const server = await startServer(
      `echo.ts (${runtime}, ZEV_WAKE=${wake})`,
      example(runtime, "echo", [], process.execPath),
      { ZEV_WAKE: wake },
    );
    try {
      const run = await runProgram("wake_client", {
        args: [String(server.port), String(ROUNDS), String(Date.now() % 1e6)],
        timeoutMs: 120_000,
      });
      assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
      assert.match(run.stdout, new RegExp(`^${ROUNDS} round trips`, "m"));
    } finally {
      assert.equal(await server.stop(), 0, `the server did not exit cleanly:\n${server.stderr()}`);
    }
  });
}
