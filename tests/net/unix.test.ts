/**
 * Unix domain stream sockets: `listen({ path })`, `connect({ path })` and `serve`, with
 * the runtime's own client (node:net) on the other end; the socket file removed when the
 * listener closes (and only if it is still its own); a stale file reported, replaced
 * only when asked, and never a live listener's or a file that is not a socket; a full
 * backlog and a missing file as errors that say so; bad arguments refused by name.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { connect, limits, listen, serve, type Stream, type UnixAddr, ZevError } from "../../mod.ts";
import { concat, process, text, within } from "../harness/helpers.ts";
import { checkLeaks } from "../harness/leaks.ts";

checkLeaks("unix");

let serial = 0;
/** A fresh socket path under /tmp. */
const socketPath = () => `/tmp/zev-unix-${process.pid}-${serial++}.sock`;

/** A node:net client on `path`: sends `payload`, resolves with what came back before EOF. */
function nodeExchange(path: string, payload: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    const socket = net.connect({ path }, () => socket.end(payload));
    socket.on("data", (d: Uint8Array) => chunks.push(new Uint8Array(d)));
    socket.on("end", () => resolve(concat(chunks)));
    socket.on("error", reject);
  });
}

async function echo(stream: Stream<UnixAddr>): Promise<void> {
  const buf = new Uint8Array(4096);
  for (let n; (n = await stream.read(buf)) !== null;) await stream.write(buf.subarray(0, n));
}

test("listen and connect on a Unix socket: bytes both ways, the addresses, and the file goes with the listener", async () => {
  const path = socketPath();
  const listener = listen({ path });
  assert.deepEqual(listener.addr, { path, family: "unix" });
  assert.ok(existsSync(path), "the socket file exists while listening");
  const [client, server] = await within(
    2000,
    "connect and accept",
    Promise.all([connect({ path }), listener.accept()]),
  );
  assert.deepEqual(client.remoteAddr, { path, family: "unix" });
  assert.deepEqual(client.localAddr, { path: "", family: "unix" });
  assert.deepEqual(server.localAddr, { path, family: "unix" });
  assert.deepEqual(server.remoteAddr, { path: "", family: "unix" });
  const payload = new Uint8Array(1 << 20).map((_, i) => i * 7);
  const got = new Uint8Array(payload.length);
  await within(5000, "a MiB each way", Promise.all([client.write(payload), server.readFull(got)]));
  assert.deepEqual(got, payload);
  await server.write(text("back"));
  const back = new Uint8Array(4);
  await client.readFull(back);
  assert.deepEqual(back, text("back"));
  await client.close();
  assert.equal(await server.read(new Uint8Array(8)), null);
  await server.close();
  listener.close();
  assert.ok(!existsSync(path), "the socket file is removed when the listener closes");
});

test("serve on a Unix socket answers the runtime's own client, and close removes the file", async () => {
  const path = socketPath();
  const server = serve({ path }, echo);
  assert.deepEqual(server.addr, { path, family: "unix" });
  const replies = await within(
    5000,
    "four node:net clients",
    Promise.all([1, 2, 3, 4].map((i) => nodeExchange(path, text(`hello ${i}`)))),
  );
  assert.deepEqual(replies.map((r) => new TextDecoder().decode(r)), ["hello 1", "hello 2", "hello 3", "hello 4"]);
  await server.close();
  assert.ok(!existsSync(path));
});

test("a stale socket file is reported and replaced only when asked; a live listener's file or another file never", async () => {
  // A stale file: a listener whose file was moved away closes without finding it, and
  // the moved file is left with nobody listening, as after a process that was killed.
  const path = socketPath();
  const moved = socketPath();
  const first = listen({ path: moved });
  renameSync(moved, path);
  first.close();
  assert.ok(existsSync(path), "the moved file is not the closed listener's to remove");
  assert.throws(() => listen({ path }), (e: unknown) => {
    assert.ok(e instanceof ZevError && e.code === "AddrInUse", String(e));
    assert.match(e.message, new RegExp(`^listen on ${path}: .*no process listens.*replaceStale: true`));
    return true;
  });
  assert.ok(existsSync(path), "a stale file is not removed unless asked");

  const live = listen({ path, replaceStale: true });
  // A live listener is not stale, whatever the caller asks.
  assert.throws(() => listen({ path, replaceStale: true }), /already in use/);
  const [client, server] = await within(
    2000,
    "the live listener still answers",
    Promise.all([connect({ path }), live.accept()]),
  );
  await Promise.all([client.close(), server.close()]);

  // A listener does not remove a file that is no longer its own.
  rmSync(path);
  const second = listen({ path });
  live.close();
  assert.ok(existsSync(path), "closing the first listener left the second one's file");
  second.close();
  assert.ok(!existsSync(path));

  // A file that is not a socket is never replaced.
  writeFileSync(path, "precious");
  try {
    assert.throws(
      () => listen({ path, replaceStale: true }),
      (e: unknown) => e instanceof ZevError && e.code === "AddrInUse",
    );
    assert.equal(readFileSync(path, "utf8"), "precious");
  } finally {
    rmSync(path);
  }
});

test("connecting to no file, or to a full backlog, fails with an error that says so", async () => {
  const path = socketPath();
  await assert.rejects(connect({ path }), (e: unknown) => {
    assert.ok(e instanceof ZevError && e.code === "NotFound", String(e));
    assert.equal(e.message, `connect to ${path}: no such file or directory`);
    return true;
  });
  const listener = listen({ path, backlog: 1 });
  const streams: Stream<UnixAddr>[] = [];
  let refused: unknown;
  for (let i = 0; i < 64 && refused === undefined; i++) {
    try {
      streams.push(await connect({ path }));
    } catch (error) {
      refused = error;
    }
  }
  assert.ok(refused instanceof ZevError, `64 connections queued on a backlog of 1: ${refused}`);
  assert.equal(refused.code, "ConnectionRefused");
  assert.equal(refused.message, `connect to ${path}: the listener's backlog is full`);
  await Promise.all(streams.map((s) => s.close()));
  listener.close();
});

test("an aborted connect is refused before anything is done; a reset names the listener's path", async () => {
  const path = socketPath();
  const listener = listen({ path });
  const controller = new AbortController();
  controller.abort("no");
  await assert.rejects(connect({ path, signal: controller.signal }), { code: "Cancelled" });
  const [client, server] = await Promise.all([connect({ path }), listener.accept()]);
  client.abort();
  await assert.rejects(
    (async () => {
      // A reset peer's read, or a write to it, fails naming the listener's socket.
      await server.write(text("x"));
      await server.write(new Uint8Array(1 << 20));
      await server.read(new Uint8Array(8));
    })(),
    (e: unknown) => e instanceof ZevError && new RegExp(`(to|from) a client of ${path}:`).test(e.message),
  );
  await server.close();
  listener.close();
});

test("bad Unix socket arguments are refused by name, before anything is created", async () => {
  const path = socketPath();
  assert.throws(() => listen({ path: "" }), /listen: path must be a non-empty string, not ""/);
  assert.throws(() => listen({ path: "/tmp/a\0b" }), /listen: path must not contain a NUL character/);
  assert.equal(limits().maxUnixPath, 107, "Linux's sockaddr_un holds 107 bytes and a NUL");
  assert.throws(
    () => listen({ path: `/tmp/${"x".repeat(103)}` }),
    (e: unknown) =>
      e instanceof RangeError && /path is 108 bytes, too long for a Unix socket \(at most 107\)/.test(e.message),
  );
  // The longest path that fits is taken (and its file removed on close).
  const longest = `/tmp/${"y".repeat(102 - String(process.pid).length)}${process.pid}`;
  assert.equal(longest.length, 107);
  listen({ path: longest }).close();
  assert.ok(!existsSync(longest));
  assert.throws(() => listen({ path, port: 80 } as never), /listen: port is for TCP, not for a Unix socket/);
  assert.throws(() => listen({ path, replaceStale: "yes" } as never), /listen: replaceStale must be a boolean/);
  assert.throws(() => listen({ path, backlog: -1 }), /listen: invalid backlog -1/);
  await assert.rejects(connect({ path, noDelay: true } as never), /connect: noDelay is for TCP/);
  assert.ok(!existsSync(path), "nothing was created");
});

test("a Unix stream's messages name its peer: the listener's path from the client, 'a client of' it from the server", async () => {
  const path = socketPath();
  const listener = listen({ path });
  const [client, server] = await Promise.all([connect({ path }), listener.accept()]);
  await client.close();
  await server.close();
  const closed = (s: Stream<UnixAddr>, message: string) =>
    assert.rejects(s.read(new Uint8Array(8)), (e: unknown) => {
      assert.ok(e instanceof ZevError && e.code === "Closed", String(e));
      assert.equal(e.message, message);
      return true;
    });
  await closed(client, `read from ${path}: the stream is closed`);
  await closed(server, `read from a client of ${path}: the stream is closed`);
  await assert.rejects(server.write(text("x")), { message: `write to a client of ${path}: the stream is closed` });
  assert.deepEqual(server.remoteAddr, { path: "", family: "unix" }, "a connecting end has no name");
  assert.deepEqual(client.remoteAddr, { path, family: "unix" });
  listener.close();
});
