/**
 * A wake that comes late is a bug, seen without timing: the server below looks for stalls
 * (`stats().stalls`: a parked loop with work waiting and no wake on its way) every
 * millisecond while the load generator drives thousands of round trips at one and at
 * eight connections. Run on each backend and wake by `make test` (ZEV_BACKEND, ZEV_WAKE).
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { load } from "../harness/server.ts";
import { eventually, startProgram } from "../harness/helpers.ts";

test("no stall: thousands of echo round trips at 1 and 8 connections, each woken at once", async () => {
  const server = startProgram("stall_server", { timeoutMs: 60_000 });
  await eventually(15_000, "the server's ready line", () => /listening on/.test(server.stdout()));
  const port = /listening on \S+:(\d+)/.exec(server.stdout())![1];
  const runs = [];
  try {
    for (const connections of [1, 8]) {
      runs.push(await load(["echo", "--port", port, "--connections", String(connections), "--duration", "1.5"]));
    }
  } finally {
    server.signal("SIGTERM");
  }
  const { code, stdout, stderr } = await server.done;
  assert.equal(code, 0, stderr);
  const stats = JSON.parse(/^stats (.*)$/m.exec(stdout)![1]);
  assert.equal(stats.stalls, 0, `${stats.stalls} parks found with data waiting and no wake sent (${stats.backend})`);
  // The load ran (how fast is for the benchmark to say).
  for (const run of runs) assert.ok(Number(run.round_trips) > 100 && !run.errors, JSON.stringify(run));
});
