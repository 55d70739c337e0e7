/**
 * Lifecycle, seen from outside, each program in its own process: what keeps a program
 * alive, graceful shutdown, running out of descriptors at any moment, Deno's
 * permissions, and how routine errors are reported.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { openClient, runProgram, runtime, startProgram } from "../harness/helpers.ts";

/** A node:net server for the programs to connect to: it writes `reply` (if any) and ends, or stays silent. */
async function peer(reply?: string): Promise<{ port: number; close: () => void }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    if (reply !== undefined) s.end(reply);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => (sockets.forEach((s) => s.destroy()), server.close()),
  };
}

test("a client that read to the end and never closed exits, as with the runtimes' own sockets", async () => {
  const p = await peer("hello");
  const run = await runProgram("read_to_end", { args: [String(p.port)], timeoutMs: 10_000 });
  p.close();
  assert.equal(run.code, 0, `exit code ${run.code} (null: still alive after 10 s)\n${run.stderr}`);
  assert.match(run.stdout, /read 5 bytes to the end/);
});

test("bytes a write left queued reach the peer before a program that ends without close exits", async () => {
  const bytes = 32 << 20; // far more than loopback's buffers take while the peer waits
  let received = 0;
  let ended!: () => void;
  const done = new Promise<void>((resolve) => (ended = resolve));
  const server = net.createServer((s) => {
    s.pause(); // read nothing until the write has resolved and the program has ended
    setTimeout(() => s.resume(), 500);
    s.on("data", (chunk: Uint8Array) => (received += chunk.length));
    s.on("close", ended);
    s.on("error", ended);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const run = await runProgram("write_and_exit", { args: [String(port), String(bytes)], timeoutMs: 20_000 });
  await done;
  server.close();
  assert.equal(run.code, 0, `exit code ${run.code}\n${run.stderr}`);
  assert.match(run.stdout, /wrote \d+ bytes/);
  assert.equal(received, bytes, `the peer got ${received} of ${bytes} bytes`);
});

test("unref: a listener waiting in accept, a stream waiting in read and a UDP socket in receive do not keep the process alive", async () => {
  const p = await peer();
  const run = await runProgram("unref", { args: [String(p.port)], timeoutMs: 10_000 });
  p.close();
  assert.equal(run.code, 0, `exit code ${run.code} (null: still alive after 10 s)\n${run.stderr}`);
  assert.match(run.stdout, /exited with an accept, a read and a receive pending/);
});

for (const wake of ["auto", "thread"]) {
  test(`EMFILE while parked (${wake} wake): an accept from a timer completes once descriptors free up, every pause is told, outside any task`, async () => {
    const run = await runProgram("emfile_parked", { nofile: 64, env: { ZEV_WAKE: wake } });
    assert.equal(run.code, 0, `exit code ${run.code}\n${run.stdout}\n${run.stderr}`);
    const report = JSON.parse(run.stdout.trim().split("\n").pop()!);
    assert.equal(report.accepted, true, `the accept never completed: ${run.stdout}`);
    assert.ok(report.paused >= 1, `no pause counted: ${run.stdout}`);
    assert.equal(report.told, report.paused, `onAcceptError told ${report.told} of ${report.paused} pauses`);
    assert.equal(report.taskSeen, null, `onAcceptError ran inside task ${report.taskSeen}`);
    const at = `127.0.0.1:${report.port}`;
    assert.equal(
      report.firstError,
      `TooManyOpenFiles: accept on ${at} (paused, retrying shortly and as soon as a descriptor is closed): the process has no free file descriptors`,
    );
    const thrown = run.stderr.split("\n").filter((l) => l.includes("onAcceptError callback"));
    assert.equal(thrown.length, report.told, run.stderr);
    for (const line of thrown) {
      assert.ok(line.startsWith(`zev: the onAcceptError callback of the listener on ${at} threw:`), line);
    }
  });

  test(`descriptors exhausted before the loop ever parked (${wake} wake): TooManyOpenFiles errors, no crash, and recovery`, async () => {
    const run = await runProgram("emfile_early", { nofile: 64, env: { ZEV_WAKE: wake } });
    assert.equal(run.code, 0, `exit code ${run.code}\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /while exhausted: TooManyOpenFiles, TooManyOpenFiles/);
    assert.match(run.stdout, /^ok$/m);
    assert.equal(run.stderr, "", "a listener without onAcceptError is paused silently");
  });
}

test("graceful shutdown: accepting stops, a reply in progress finishes, an idle handler is cancelled, the process exits", async () => {
  const program = startProgram("shutdown", { timeoutMs: 15_000 });
  const port = await new Promise<number>((resolve, reject) => {
    const deadline = Date.now() + 10_000;
    const poll = () => {
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(program.stdout());
      if (m) return resolve(Number(m[1]));
      if (Date.now() > deadline) return reject(new Error("no ready line"));
      setTimeout(poll, 20);
    };
    poll();
  });
  const idle = await openClient(port);
  const busy = await openClient(port);
  const reply = new Promise<string>((resolve) => busy.once("data", (d) => resolve(String(d))));
  busy.write("ping");
  await new Promise((r) => setTimeout(r, 30));
  program.signal("SIGTERM");
  assert.equal(await reply, "ping", "the reply in progress finished");
  const run = await program.done;
  idle.destroy();
  busy.destroy();
  assert.equal(run.code, 0, `exit code ${run.code}\n${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /replied/);
  assert.match(run.stdout, /cancelled an idle handler/);
  assert.match(run.stdout, /closed; handlers left: 0/);
  assert.match(run.stdout, /finished/);
});

test("a ZEV_BACKEND that names no backend is refused by name, before anything runs", async () => {
  const run = await runProgram("unref", { args: ["1"], env: { ZEV_BACKEND: "uring" } });
  assert.notEqual(run.code, 0, run.stdout);
  assert.match(run.stderr, /zev: ZEV_BACKEND must be "epoll", "kqueue", "io_uring" or "auto", not "uring"/);
});

/** The backend program's lines, by what each starts with. */
async function backendRun(options: Parameters<typeof runProgram>[1]): Promise<Map<string, string>> {
  const run = await runProgram("backend", options);
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stdout.trim().split("\n");
  assert.equal(lines.length, 8, run.stdout);
  return new Map(lines.map((line, i) => [i >= 2 && i <= 5 ? `${i - 2}` : line.split(":")[0], line]));
}

/** Why "auto" runs epoll, though this kernel allows io_uring. */
const NOT_LEVEL =
  "auto picks epoll: io_uring is not yet level with it (its bulk reads are slower; docs/design/IO_URING.md)";

test("configure({ backend }) moves an empty loop between backends, each echoes; never while anything is open", async () => {
  for (const env of ["", "auto"]) {
    const lines = await backendRun({ env: { ZEV_BACKEND: env } });
    // Unset, the default is epoll; "auto" is epoll too, saying why.
    const reason = env === "auto" ? NOT_LEVEL : "none";
    assert.equal(lines.get("start"), `start: epoll reason=${reason} stats=epoll`);
    assert.deepEqual([0, 1, 2, 3].map((i) => lines.get(`${i}`)), [
      `auto: epoll reason=${NOT_LEVEL} stats=epoll echo=ping`,
      "epoll: epoll reason=none stats=epoll echo=ping",
      "io_uring: io_uring reason=none stats=io_uring echo=ping",
      "epoll: epoll reason=none stats=epoll echo=ping",
    ]);
    assert.equal(
      lines.get("while open"),
      "while open: zev: the backend can change only before the first listener or stream (1 open now); " +
        "set ZEV_BACKEND, or call configure({ backend }) first now=epoll",
    );
    assert.equal(
      lines.get("bad name"),
      'bad name: configure: invalid backend "uring": expected "epoll", "kqueue", "io_uring" or "auto" spin=0',
    );
  }
});

test("where io_uring is forbidden (seccomp, as in many containers): auto runs epoll, the wake a thread, and io_uring by name is refused, each saying why", async () => {
  const forbidden =
    "io_uring is forbidden here (EPERM: a seccomp filter, as in many containers, or kernel.io_uring_disabled)";
  // The wake as it would be chosen, whatever ZEV_WAKE this suite runs with.
  const lines = await backendRun({ env: { ZEV_BACKEND: "auto", ZEV_WAKE: "" }, noIoUring: true });
  assert.equal(lines.get("start"), `start: epoll reason=${NOT_LEVEL} stats=epoll`);
  assert.match(lines.get("wake")!, /^wake: thread reason=.*io_uring/);
  assert.deepEqual([0, 1, 3].map((i) => lines.get(`${i}`)), [
    `auto: epoll reason=${NOT_LEVEL} stats=epoll echo=ping`,
    "epoll: epoll reason=none stats=epoll echo=ping",
    "epoll: epoll reason=none stats=epoll echo=ping",
  ]);
  // By name, it is refused, naming why; the loop stays on epoll and works.
  assert.equal(
    lines.get("2"),
    `io_uring: epoll reason=none stats=epoll echo=ping error=moving the event loop to io_uring, because ${forbidden}: ` +
      "the kernel lacks the feature or forbids it",
  );
  // And at start, by ZEV_BACKEND, the program fails saying why.
  const run = await runProgram("backend", { env: { ZEV_BACKEND: "io_uring" }, noIoUring: true });
  assert.notEqual(run.code, 0, run.stdout);
  assert.ok(run.stderr.includes(`opening the event loop on io_uring, because ${forbidden}: `), run.stderr);
});

test("Deno's --allow-net keeps its meaning for zev's sockets (Bun has no permissions)", async () => {
  if (runtime === "bun") {
    const run = await runProgram("permissions");
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /listen: allowed/);
    assert.match(run.stdout, /connect: NameNotResolved/);
    assert.match(run.stdout, /connect literal: ConnectionRefused: connect to 127\.0\.0\.1:9: /);
    assert.match(run.stdout, /listen unix: allowed/);
    assert.match(run.stdout, /listenDatagram: allowed/);
    assert.match(run.stdout, /connect unix: NotFound/);
    assert.match(run.stdout, /send to 127\.0\.0\.3: allowed/);
    assert.match(run.stdout, /send to localhost: allowed/);
    assert.match(run.stdout, /send to no-such-host\.invalid: NameNotResolved/);
  }
  // In Deno, from either runtime's test run.
  const run = await runProgram("permissions", {
    inDeno: true,
    denoFlags: ["--allow-ffi", "--allow-read", "--allow-env", "--allow-net=127.0.0.1:1,127.0.0.2"],
  });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /listen: PermissionDenied: listen on 127\.0\.0\.1:0: .*--allow-net=127\.0\.0\.1:0/);
  assert.match(
    run.stdout,
    /connect: PermissionDenied: connect to no-such-host\.invalid:80: .*--allow-net=no-such-host\.invalid:80/,
  );
  // "localhost" is asked about, and named, as the address it stands for.
  assert.match(
    run.stdout,
    /connect literal: PermissionDenied: connect to 127\.0\.0\.1:9: .*--allow-net=127\.0\.0\.1:9/,
  );
  assert.match(
    run.stdout,
    /listen unix: PermissionDenied: listen on \/tmp\/zev-permissions-\d+\.sock: .*write access .*--allow-write=/,
  );
  assert.match(
    run.stdout,
    /listenDatagram: PermissionDenied: listenDatagram on 127\.0\.0\.1:0: .*--allow-net=127\.0\.0\.1:0/,
  );
  assert.match(
    run.stdout,
    /connect unix: PermissionDenied: connect to \/tmp\/zev-permissions-\d+-none\.sock: .*write access .*--allow-write=/,
  );
  assert.match(
    run.stdout,
    /send to 127\.0\.0\.3: PermissionDenied: send to 127\.0\.0\.3:9: .*--allow-net=127\.0\.0\.3:9/,
  );
  // "localhost" is asked about, and named, as the address it stands for.
  assert.match(
    run.stdout,
    /send to localhost: PermissionDenied: send to 127\.0\.0\.1:9: .*--allow-net=127\.0\.0\.1:9/,
  );
  assert.match(
    run.stdout,
    /send to no-such-host\.invalid: PermissionDenied: send to no-such-host\.invalid:9: .*--allow-net=no-such-host\.invalid:9/,
  );
});

test("a peer reset in a handler is reported by the default supervisor in one line, with no stack", async () => {
  const run = await runProgram("reset_log");
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stderr.trim().split("\n").filter((l) => l.length > 0);
  assert.equal(lines.length, 1, `stderr:\n${run.stderr}`);
  assert.match(lines[0], /^zev: task handler: read from 127\.0\.0\.1:\d+: the connection was reset by the peer$/);
});
