/**
 * `serve({ workers })`, run as a program (its main module runs again in each Worker):
 * both Workers answer, a failing Worker is reported once and replaced while the other
 * serves on, every connection after it is answered, close ends them all and the program
 * exits; close lets a request in flight finish; a Worker that keeps failing at start is
 * replaced after pauses that double; one slower to listen than `startTimeout` fails
 * `serve`; bad `workers` and `startTimeout` values are refused by name.
 */

import { test } from "node:test";
import net from "node:net";
import process from "node:process";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { serve } from "../../mod.ts";
import { runProgram, within } from "../harness/helpers.ts";
import { checkLeaks } from "../harness/leaks.ts";

checkLeaks("workers");

test("serve with 2 workers: both answer; one that fails is reported and replaced; close ends them all", async () => {
  const run = await runProgram("workers", { args: ["2"], timeoutMs: 60_000 });
  assert.equal(run.code, 0, `exit ${run.code}\n${run.stdout}\n${run.stderr}`);
  const line = (name: string) => run.stdout.split("\n").find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
  const before = line("before")!.split(", ");
  assert.deepEqual(before.map((w) => w.split(" ")[0]), ["0", "1"], `both workers answered: ${before}`);
  assert.equal(line("connections with one open"), "1", "the main thread counts the Workers' connections");
  assert.equal(line("connections after it closed"), "0");
  const crashed = line("crashed")!;
  assert.ok(before.includes(crashed), `the crash request was answered by a worker: ${crashed}`);
  const after = /^(\d+) of 40 answered by (.*)$/.exec(line("after")!)!;
  assert.equal(after[1], "40", "every connection after the failure was answered");
  const workers = after[2].split(", ");
  assert.deepEqual(workers.map((w) => w.split(" ")[0]), ["0", "1"], `both workers again: ${workers}`);
  assert.ok(!workers.includes(crashed), `the failed worker was replaced by a new one: ${workers} (failed: ${crashed})`);
  const reports = run.stderr.split("\n").filter((l) => l.startsWith("zev: serve worker"));
  assert.equal(reports.length, 1, run.stderr);
  assert.match(
    reports[0],
    new RegExp(`^zev: serve worker ${crashed.split(" ")[0]} failed, replacing it: .*this worker fails on purpose`),
  );
  assert.match(run.stdout, /^closed$/m);
});

test("closing serve with workers lets a request in flight finish, then refuses connections", async () => {
  const run = await runProgram("workers_close", { args: ["graceful", "/nonexistent/zev-marker"], timeoutMs: 60_000 });
  assert.equal(run.code, 0, `exit ${run.code}\n${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /^reply: [01] slow$/m, "the handler in flight answered");
  assert.match(run.stdout, /^close waited for the handler: true$/m);
  assert.match(run.stdout, /^close took under 3 s: true$/m, "close did not wait out the 5 s grace period");
  assert.match(run.stdout, /^after close: ""$/m, "no Worker answers after close");
  assert.match(run.stdout, /^closed$/m);
});

test("a Worker that keeps failing at start is replaced further and further apart, while the other serves", async () => {
  const marker = join(tmpdir(), `zev-workers-${process.pid}-${Date.now()}`);
  try {
    const run = await runProgram("workers_close", { args: ["backoff", marker], timeoutMs: 60_000 });
    assert.equal(run.code, 0, `exit ${run.code}\n${run.stdout}\n${run.stderr}`);
    const at = /^reports at: (.*)$/m.exec(run.stdout)![1].split(", ").map(Number);
    // The failure, then replacements that refuse to start: at once, after 1 s, after 2 s
    // (then 4 s, past the 4.5 s watched). Without the back-off there would be dozens.
    assert.ok(at.length >= 3 && at.length <= 5, `reports at ${at} ms`);
    assert.ok(at[2] - at[1] >= 900, `the second replacement waited a pause: ${at}`);
    assert.ok(at.length < 4 || at[3] - at[2] >= 1800, `the pause doubled: ${at}`);
    assert.match(run.stdout, /^served by worker 0 meanwhile: 10 of 10$/m);
    assert.match(run.stdout, /^closed$/m);
  } finally {
    rmSync(marker, { force: true });
  }
});

test("serve with workers on a port taken by another listener rejects with the listen error, naming the worker", async () => {
  const taken = net.createServer();
  await new Promise<void>((r) => taken.listen(0, "127.0.0.1", () => r()));
  try {
    const port = (taken.address() as net.AddressInfo).port;
    const run = await runProgram("workers", { args: ["2", String(port)], timeoutMs: 60_000 });
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.match(
      run.stdout,
      new RegExp(
        `^failed: AddrInUse: serve: worker 0: listen on 127\\.0\\.0\\.1:${port}: the address is already in use$`,
        "m",
      ),
    );
  } finally {
    taken.close();
  }
});

test("a Worker that does not listen within startTimeout fails serve with WorkerFailed, and the program exits", async () => {
  const run = await runProgram("workers_slow", { args: ["500", "20000"], timeoutMs: 15_000 });
  assert.equal(run.code, 0, `exit ${run.code}\n${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /^failed: true WorkerFailed: serve: worker 0: did not listen within 500 ms$/m);
  assert.match(run.stdout, /^after at least the timeout: true$/m);
  assert.doesNotMatch(run.stdout, /^listening$/m);
});

test("bad workers values are refused by name", async () => {
  for (const workers of [0, 1.5, 64, "2"]) {
    await assert.rejects(
      serve({ port: 0, workers: workers as number }, () => {}),
      (e: unknown) =>
        e instanceof RangeError &&
        e.message.startsWith(`serve: invalid workers ${JSON.stringify(workers)}: expected an integer from 1 to 63`),
    );
  }
  await assert.rejects(
    serve({ path: "/tmp/x.sock", workers: 2 } as never, () => {}),
    /serve: workers is for TCP \(SO_REUSEPORT\), not for a Unix socket/,
  );
  for (const startTimeout of [-1, Number.NaN, "5"]) {
    await assert.rejects(
      serve({ port: 0, workers: 1, startTimeout: startTimeout as number }, () => {}),
      (e: unknown) =>
        e instanceof RangeError && e.message.startsWith(
          `serve: invalid startTimeout ${
            typeof startTimeout === "string" ? `"${startTimeout}"` : startTimeout
          }: expected milliseconds`,
        ),
    );
  }
});

test("a replacement waiting out its pause does not keep the program alive after close", async () => {
  const run = await runProgram("workers_restart", { timeoutMs: 30_000 });
  assert.equal(run.code, 0, `exit ${run.code}\n${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /^finished after 3 failures$/m, run.stdout);
  const ms = Number(/^exit after finished: (\d+) ms$/m.exec(run.stdout)?.[1]);
  // The pause before the next replacement was 2 s: the program must not wait it out.
  assert.ok(ms < 1000, `the program exited ${ms} ms after finished\n${run.stdout}`);
});

test("serve with workers checks the port and the listen options on the main thread, before any Worker starts", async () => {
  const port = "invalid port";
  const cases: [Record<string, unknown>, string, string][] = [
    [{}, "RangeError", `serve: ${port} undefined: expected an integer from 0 to 65535`],
    [{ port: -1 }, "RangeError", `serve: ${port} -1: expected an integer from 0 to 65535`],
    [{ port: "8089" }, "RangeError", `serve: ${port} "8089": expected an integer from 0 to 65535`],
    [{ port: 0, hostname: null }, "TypeError", "serve: invalid hostname null: expected a host name or an IP address"],
    [
      { port: 0, hostname: "example.com" },
      "TypeError",
      'serve: hostname must be an IP address or "localhost", not "example.com"',
    ],
    [{ port: 0, backlog: -1 }, "RangeError", "serve: invalid backlog -1: expected an integer from 0 (the default) up"],
    [{ port: 0, noDelay: "yes" }, "TypeError", 'serve: noDelay must be a boolean, not "yes"'],
    [
      { port: 0, supervisor: "x" },
      "TypeError",
      'serve: supervisor must be a function or a Channel (an object with give), not "x"',
    ],
  ];
  for (const [options, name, message] of cases) {
    await assert.rejects(
      within(
        5000,
        `serve ${JSON.stringify(options)}`,
        serve({ workers: 1, startTimeout: 2000, ...options } as never, () => {}),
      ),
      { name, message },
    );
  }
});
