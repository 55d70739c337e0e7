/**
 * Errors that say what happened, and failures that reject the operation they belong to:
 * messages name the peer (IPv6 in brackets), values print as themselves, arguments are
 * checked like everywhere else, a transferred buffer fails its write instead of hanging.
 * Also the driver behaviours a broken build would lose: data that arrived before the
 * first read, and a listener nobody accepts from that must not keep the loop busy.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import {
  acceptLoop,
  Cancelled,
  Channel,
  Closed,
  configure,
  connect,
  listen,
  listenDatagram,
  raiseFileLimit,
  select,
  serve,
  sleep,
  stats,
  type Stream,
  TimedOut,
  ZevError,
} from "../../mod.ts";
import { abiError, isRecoverableAcceptError, setLastErrno } from "../../src/core/errors.ts";
import { ERRORS } from "../../ffi/abi.ts";
import { native } from "../../ffi/mod.ts";
import { driver } from "../../src/core/driver.ts";
import { readFileSync } from "node:fs";
import { openClient, process, readsToReset, runtime, tcpPair, text, within } from "../harness/helpers.ts";
import { checkLeaks } from "../harness/leaks.ts";

checkLeaks("errors");

test("a reset names the peer in the read error; the peer's address is known after the reset", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const socket = await openClient(listener.addr.port);
  const server = await listener.accept();
  const peerPort = socket.localPort!;
  socket.resetAndDestroy();
  await sleep(20);
  await assert.rejects(
    server.read(new Uint8Array(8)),
    (e: unknown) =>
      e instanceof ZevError && e.code === "ConnectionReset" &&
      e.message === `read from 127.0.0.1:${peerPort}: the connection was reset by the peer`,
  );
  assert.equal(server.remoteAddr.port, peerPort);
  await server.close();
  listener.close();
});

test("IPv6 addresses are bracketed in messages, IPv4-mapped ones keep their dotted form", async () => {
  const closed = listen({ hostname: "::1", port: 0 });
  const port = closed.addr.port;
  closed.close();
  await assert.rejects(
    connect({ hostname: "::1", port }),
    (e: unknown) => e instanceof ZevError && e.code === "ConnectionRefused" && e.message.includes(`[::1]:${port}`),
  );
  const dual = listen({ hostname: "::", port: 0 });
  const client = await connect({ hostname: "127.0.0.1", port: dual.addr.port });
  const server = await dual.accept();
  assert.equal(server.remoteAddr.hostname, "::ffff:127.0.0.1");
  assert.equal(server.remoteAddr.family, 6);
  await Promise.all([client.close(), server.close()]);
  dual.close();
});

test("bad values print as themselves, and every timeout is checked like sleep's", async () => {
  const { listener, client, server } = await tcpPair();
  await assert.rejects(sleep(NaN), /invalid duration NaN/);
  await assert.rejects(sleep(Infinity), /invalid duration Infinity/);
  await assert.rejects(
    server.read(new Uint8Array(4), { timeout: NaN }),
    (e: unknown) => e instanceof RangeError && /read: invalid timeout NaN/.test(e.message),
  );
  await assert.rejects(server.read(new Uint8Array(4), { timeout: -1 }), RangeError);
  await assert.rejects(
    server.close({ timeout: -5 }),
    (e: unknown) => e instanceof RangeError && /close: invalid timeout -5/.test(e.message),
  );
  assert.equal(server.closed, false, "a refused close leaves the stream open");
  await assert.rejects(server.read(new Uint8Array(4), 7 as never), /read: options must be an object, not 7/);
  await assert.rejects(
    server.read(new Uint8Array(4), { signal: "no" as never }),
    /options.signal must be an AbortSignal/,
  );
  assert.throws(() => listen({ port: NaN }), /invalid port NaN/);
  assert.throws(() => listen({ hostname: "::zz", port: 0 }), /hostname must be an IP address/);
  const e = new Cancelled("why");
  assert.ok(e instanceof ZevError && e.code === "Cancelled" && e.reason === "why");
  assert.ok(new TimedOut("t") instanceof ZevError);
  setLastErrno(() => 95);
  assert.match(abiError(ERRORS.Unexpected, "read").message, /unexpected system error \(errno 95\)/);
  setLastErrno(() => native.sym.zev_last_errno());
  await Promise.all([client.close(), server.close()]);
  listener.close();
});

test("a read timeout rejects with TimedOut naming the peer and leaves the stream usable; close({ timeout }) resets a stream whose peer never reads", async () => {
  const { listener, client, server } = await tcpPair();
  await assert.rejects(
    server.read(new Uint8Array(4), { timeout: 20 }),
    (e: unknown) => e instanceof TimedOut && /^read from 127\.0\.0\.1:\d+: no data within 20 ms$/.test(e.message),
  );
  await client.write(text("ok"));
  assert.equal(await server.read(new Uint8Array(4)), 2);
  // The client never reads: a large write fills the kernel and zev's queue.
  void server.write(new Uint8Array(16 << 20)).catch(() => {});
  await sleep(20);
  await assert.rejects(within(3000, "close with a timeout", server.close({ timeout: 50 })), TimedOut);
  // The reset reaches the client.
  await readsToReset(client, 3000);
  await client.close();
  listener.close();
});

/** Reads `stream` to its end, or to the reset of a client that aborted. */
async function readAll(stream: Stream): Promise<void> {
  const sink = new Uint8Array(1 << 16);
  try {
    while ((await stream.read(sink)) !== null);
  } catch {
    // reset by the aborted client
  }
}

test("a pending write whose buffer is transferred rejects (and closes the stream) instead of hanging", async () => {
  const { listener, client, server } = await tcpPair();
  const big = new Uint8Array(32 << 20);
  const writing = client.write(big);
  await sleep(20); // the peer does not read yet: the write waits
  (big.buffer as ArrayBuffer).transfer();
  // The peer reads: the stream is writable again and the write goes on with a detached buffer.
  const reading = readAll(server);
  await assert.rejects(
    within(5000, "the write with a transferred buffer", writing),
    (e: unknown) =>
      e instanceof TypeError && e.message === "write: data's ArrayBuffer is detached (transferred): its bytes are gone",
  );
  assert.equal(client.closed, true);
  await reading;
  await server.close();
  listener.close();
});

test("a pending write whose resizable buffer shrinks rejects, naming it, instead of resolving with bytes dropped", async () => {
  const { listener, client, server } = await tcpPair();
  const buffer = new ArrayBuffer(32 << 20, { maxByteLength: 32 << 20 });
  const writing = client.write(new Uint8Array(buffer)); // a view that tracks the length
  await sleep(20); // the peer does not read yet: the write waits
  buffer.resize(1024);
  const reading = readAll(server);
  await assert.rejects(
    within(5000, "the write with a shrunk buffer", writing),
    (e: unknown) =>
      e instanceof TypeError &&
      /^write to 127\.0\.0\.1:\d+: data's ArrayBuffer was resized \(33554432 to 1024 bytes\) while the write waited$/
        .test(e.message),
  );
  assert.equal(client.closed, true);
  await reading;
  await server.close();
  listener.close();
});

test("a second read while one is pending is a ZevError, and await using closes streams and listeners", async () => {
  let kept: Stream | undefined;
  {
    await using listener = listen({ hostname: "127.0.0.1", port: 0 });
    await using client = await connect({ port: listener.addr.port });
    await using server = await listener.accept();
    kept = client;
    const first = server.read(new Uint8Array(4));
    await assert.rejects(server.read(new Uint8Array(4)), (e: unknown) => e instanceof ZevError && e.code === "Busy");
    await client.write(text("abc"));
    assert.equal(await first, 3);
  }
  assert.equal(kept.closed, true);
  await assert.rejects(kept.read(new Uint8Array(1)), Closed);
});

test("data that arrived while nobody read is read (an edge that passed is not waited for)", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const socket = await openClient(listener.addr.port);
  socket.write("early");
  const server = await listener.accept();
  await sleep(50); // the edge came and went before anyone read
  const buf = new Uint8Array(16);
  const n = await within(2000, "reading data that arrived before the first read", server.read(buf));
  assert.equal(new TextDecoder().decode(buf.subarray(0, n!)), "early");
  // Between two reads: the last read emptied the socket, then data came while no read
  // was pending. Its edge passed; the next read must not wait for another.
  socket.write("between");
  await sleep(50);
  const m = await within(2000, "reading data that arrived between reads", server.read(buf));
  assert.equal(new TextDecoder().decode(buf.subarray(0, m!)), "between");
  socket.destroy();
  await server.close();
  listener.close();
});

test("closeWrite with bytes still queued sends them, then the end of stream", async () => {
  const { listener, client, server } = await tcpPair();
  const total = 8 << 20;
  // The peer does not read yet: the kernel's buffers fill and zev's queue takes the rest.
  const writing = client.write(new Uint8Array(total).fill(1));
  await sleep(20);
  const closing = client.closeWrite();
  const sink = new Uint8Array(1 << 16);
  let got = 0;
  await within(
    5000,
    "every byte, then the end of stream",
    (async () => {
      for (let n; (n = await server.read(sink)) !== null;) got += n;
    })(),
  );
  assert.equal(got, total);
  await writing;
  await closing;
  await Promise.all([client.close(), server.close()]);
  listener.close();
});

test("a listener nobody accepts from does not keep the loop busy", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  // Accept once and stop: the listener was armed, and now nobody asks.
  const other = await openClient(listener.addr.port);
  const first = await listener.accept();
  const socket = await openClient(listener.addr.port); // waits in the backlog, unaccepted
  await sleep(20);
  const polls = stats().polls;
  await sleep(200);
  const more = stats().polls - polls;
  assert.ok(more < 50, `${more} polls in 200 ms with one connection left in the backlog`);
  for (const s of [socket, other]) s.destroy();
  await first.close();
  listener.close();
});

test("stats count skipped and rejected accepts", async () => {
  const s = stats();
  for (const key of ["acceptSkipped", "acceptRejected", "acceptPaused", "accepted"] as const) {
    assert.equal(typeof s[key], "number");
    assert.ok(s[key] >= 0);
  }
  // A connection reset before accept is skipped or accepted, never lost silently: it
  // shows in one of the counters.
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const before = stats();
  const socket = net.connect({ port: listener.addr.port, host: "127.0.0.1" });
  await new Promise((r) => socket.once("connect", r));
  socket.resetAndDestroy();
  await sleep(20);
  const accept = listener.accept({ signal: AbortSignal.timeout(200) });
  const outcome = await accept.then(
    async (stream) => (await stream.close(), "accepted"),
    (e) => (e instanceof Cancelled ? "skipped" : String(e)),
  );
  const after = stats();
  if (outcome === "skipped") assert.equal(after.acceptSkipped - before.acceptSkipped, 1);
  else assert.equal(after.accepted - before.accepted, 1);
  listener.close();
});

test("configure: the settings in effect and how the loop parks; bad settings are refused by name", async () => {
  const now = configure();
  assert.equal(now.spinMicros, 0, "no spin by default");
  assert.equal(now.runtime, runtime);
  assert.equal(now.listenerMode, "level-batch");
  assert.match(now.library, /libzev/);
  if (process.env.ZEV_WAKE === "thread") assert.deepEqual([now.wake, now.wakeReason], ["thread", "ZEV_WAKE=thread"]);
  else if (now.wake === "thread") assert.ok(now.wakeReason, "a thread wake says why io_uring was not used");
  else assert.deepEqual([now.wake, "wakeReason" in now], ["io_uring", false]);
  // The backend is the one ZEV_BACKEND asked for, as the native loop reports it ("auto":
  // io_uring, or epoll and the reason).
  const asked = process.env.ZEV_BACKEND || "epoll";
  if (asked === "auto") assert.equal(now.backend === "io_uring", now.backendReason === undefined);
  else assert.deepEqual([now.backend, "backendReason" in now], [asked, false]);
  assert.equal(driver.native.sym.zev_backend(driver.loop), now.backend === "io_uring" ? 1 : 0);
  assert.equal(stats().backend, now.backend);
  // A spin is used, and undone: an echo still works with it.
  assert.equal(configure({ spinMicros: 50 }).spinMicros, 50);
  try {
    const listener = listen({ hostname: "127.0.0.1", port: 0 });
    const [client, server] = await Promise.all([connect({ port: listener.addr.port }), listener.accept()]);
    await client.write(text("spin"));
    const buf = new Uint8Array(4);
    await server.readFull(buf);
    assert.equal(new TextDecoder().decode(buf), "spin");
    await Promise.all([client.close(), server.close()]);
    listener.close();
  } finally {
    assert.equal(configure({ spinMicros: 0 }).spinMicros, 0);
  }
  assert.equal(configure({ spinMicros: 1_000_000 }).spinMicros, 1_000_000, "the longest spin is taken");
  assert.equal(configure({ spinMicros: 0 }).spinMicros, 0);
  assert.throws(() => configure(5 as never), {
    name: "TypeError",
    message: "configure: settings must be an object, not 5",
  });
  assert.throws(() => configure(null as never), {
    name: "TypeError",
    message: /configure: settings must be an object/,
  });
  for (const bad of [-1, Number.NaN, 1_000_001, "5"]) {
    assert.throws(() => configure({ spinMicros: bad as number }), {
      name: "RangeError",
      message: /configure: invalid spinMicros/,
    });
  }
  assert.equal(configure().spinMicros, 0, "a refused setting changes nothing");
  for (const bad of [0, 1.5, -3, Number.NaN]) {
    assert.throws(() => raiseFileLimit(bad), { name: "RangeError", message: /raiseFileLimit: invalid limit/ });
  }
  assert.ok(raiseFileLimit(64) >= 64);
  const limit = raiseFileLimit(64);
  assert.equal(raiseFileLimit(1), limit, "a limit is only ever raised, never lowered");
});

/** The table of error codes in docs/errors.md: code → the messages it lists (";"-separated). */
function readmeErrorTable(): Map<string, string[]> {
  const doc = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");
  const section = doc.slice(doc.indexOf("## Every code"), doc.indexOf("## End of stream and resets"));
  const rows = new Map<string, string[]>();
  for (const m of section.matchAll(/^\| `(\w+)` +\| (.*?) +\|$/gm)) {
    rows.set(m[1], m[2].split(";").map((s) => s.trim()));
  }
  return rows;
}

test("every error code of the library is in docs/errors.md's table, with its message and class", () => {
  const table = readmeErrorTable();
  assert.ok(table.size >= 20, `docs/errors.md's table has ${table.size} rows`);
  const codes = new Set<string>();
  try {
    setLastErrno(() => 99);
    for (const [name, value] of Object.entries(ERRORS)) {
      const error = abiError(value, "op");
      assert.ok(error instanceof ZevError, name);
      codes.add(error.code);
      const messages = table.get(error.code);
      assert.ok(messages, `${name}: code ${error.code} is not in docs/errors.md's table`);
      // The table says what follows the operation; Unexpected also carries the errno.
      const said = error.message.replace(/^op: /, "").replace(" (errno 99)", " (errno N)");
      assert.ok(
        messages.some((m) => m === said || m.startsWith(`${said} (`) || m.startsWith(`${said}:`)),
        `${name}: "${said}" is not among docs/errors.md's messages for ${error.code}: ${messages.join(" / ")}`,
      );
      assert.equal(error.message.endsWith("(errno 99)"), name === "Unexpected", `${name}: ${error.message}`);
      assert.equal(error instanceof Closed, error.code === "Closed", `${name} is a Closed exactly when its code is`);
      assert.equal(
        error instanceof TimedOut,
        error.code === "TimedOut",
        `${name} is a TimedOut exactly when its code is`,
      );
    }
  } finally {
    setLastErrno(() => native.sym.zev_last_errno());
  }
  // Distinct library errors keep distinct codes, except the three kinds of bad handle, a
  // stale socket file (AddrInUse) and a full Unix backlog (ConnectionRefused).
  assert.equal(codes.size, Object.keys(ERRORS).length - 4);
  const unknown = abiError(-12345, "op");
  assert.equal(unknown.code, "Unexpected");
  assert.equal(unknown.message, "op: unknown error code -12345");
  // Codes zev itself raises are documented too.
  for (const code of ["Busy", "NameNotResolved", "Cancelled", "PermissionDenied", "Limit"]) {
    assert.ok(table.has(code), `${code} is not in docs/errors.md's table`);
  }
  assert.ok(isRecoverableAcceptError(ERRORS.TooManyOpenFiles));
  assert.ok(isRecoverableAcceptError(ERRORS.NoMemory));
  assert.ok(isRecoverableAcceptError(ERRORS.Limit));
  for (const name of ["ConnectionReset", "PermissionDenied", "Unexpected", "BadHandle"] as const) {
    assert.ok(!isRecoverableAcceptError(ERRORS[name]), name);
  }
});

test("every argument check names the call, the argument and what is allowed, to the letter", async () => {
  const { client, server, listener } = await tcpPair();
  // deno-lint-ignore no-explicit-any
  type ErrorClass = new (...args: any[]) => Error;
  const throwsExactly = (fn: () => unknown, kind: ErrorClass, message: string) =>
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof kind, `${message}: got ${e}`);
      assert.equal((e as Error).message, message);
      return true;
    });
  const rejectsExactly = (promise: Promise<unknown>, kind: ErrorClass, message: string) =>
    assert.rejects(promise, (e: unknown) => {
      assert.ok(e instanceof kind, `${message}: got ${e}`);
      assert.equal((e as Error).message, message);
      return true;
    });
  // Each kind of value prints as itself.
  const port = (v: unknown) => () => listen({ port: v as number });
  const expected = "expected an integer from 0 to 65535";
  const shown: [unknown, string][] = [
    [1.5, "1.5"],
    [65536, "65536"],
    [-1, "-1"],
    [10n, "10"],
    ["80", '"80"'],
    [undefined, "undefined"],
    [null, "null"],
    [true, "true"],
    [() => 1, "a function"],
    [[80], "an array"],
    [new Map(), "a Map"],
    [Object.create(null), "an object"],
  ];
  for (const [value, text] of shown) {
    throwsExactly(port(value), RangeError, `listen: invalid port ${text}: ${expected}`);
  }
  await rejectsExactly(
    connect({ port: 0 }),
    RangeError,
    "connect: invalid port 0: expected an integer from 1 to 65535",
  );
  throwsExactly(() => listen(null as never), TypeError, "listen: options must be an object, not null");
  await rejectsExactly(connect(5 as never), TypeError, "connect: options must be an object, not 5");
  for (const backlog of [1.5, -1, 2 ** 31]) {
    throwsExactly(
      () => listen({ port: 0, backlog }),
      RangeError,
      `listen: invalid backlog ${backlog}: expected an integer from 0 (the default) up`,
    );
  }
  listen({ port: 0, backlog: 2 ** 31 - 1 }).close(); // the largest is taken (and capped)
  throwsExactly(
    () => listen({ port: 0, onAcceptError: 5 as never }),
    TypeError,
    "listen: onAcceptError must be a function, not 5",
  );
  throwsExactly(
    () => listen({ port: 0, noDelay: "yes" as never }),
    TypeError,
    'listen: noDelay must be a boolean, not "yes"',
  );
  throwsExactly(
    () => listen({ port: 0, reusePort: 1 as never }),
    TypeError,
    "listen: reusePort must be a boolean, not 1",
  );
  await rejectsExactly(
    connect({ port: 1, keepAlive: 1 as never }),
    TypeError,
    "connect: keepAlive must be a boolean, not 1",
  );
  for (const hostname of ["", 5]) {
    throwsExactly(
      () => listen({ hostname: hostname as string, port: 0 }),
      TypeError,
      `listen: invalid hostname ${JSON.stringify(hostname)}: expected a host name or an IP address`,
    );
  }
  // Brackets around an IPv6 literal and "localhost" need no lookup.
  const v6 = listen({ hostname: "[::1]", port: 0 });
  assert.deepEqual(v6.addr, { hostname: "::1", port: v6.addr.port, family: 6 });
  v6.close();
  const local = listen({ hostname: "localhost", port: 0 });
  assert.equal(local.addr.hostname, "127.0.0.1");
  local.close();
  // Durations: 0 to 2^31 - 1 ms, the largest accepted.
  const ms = "expected milliseconds from 0 to 2147483647";
  for (const bad of [-1, 2 ** 31, NaN]) {
    await rejectsExactly(sleep(bad), RangeError, `sleep: invalid duration ${bad}: ${ms}`);
  }
  const controller = new AbortController();
  const longest = sleep(2 ** 31 - 1, { signal: controller.signal });
  controller.abort();
  await assert.rejects(longest, Cancelled);
  await rejectsExactly(
    server.read(new Uint8Array(8), { timeout: -5 }),
    RangeError,
    `read: invalid timeout -5: ${ms}`,
  );
  // Buffers and options.
  await rejectsExactly(server.read("buf" as never), TypeError, 'read: buf must be a Uint8Array, not "buf"');
  // An empty buffer reads nothing, as readFull of one does.
  assert.equal(await server.read(new Uint8Array(0)), 0);
  assert.equal((await server.readFull(new Uint8Array(0))).length, 0);
  await rejectsExactly(server.read(new Uint8Array(8), 5 as never), TypeError, "read: options must be an object, not 5");
  await rejectsExactly(server.write([1, 2] as never), TypeError, "write: data must be a Uint8Array, not an array");
  await rejectsExactly(
    server.write(new ArrayBuffer(2) as never),
    TypeError,
    "write: data must be a Uint8Array, not an ArrayBuffer",
  );
  await server.write(new Uint8Array(0)); // an empty write is allowed
  await rejectsExactly(listener.accept(null as never), TypeError, "accept: options must be an object, not null");
  await rejectsExactly(
    listener.accept({ signal: 5 as never }),
    TypeError,
    "accept: options.signal must be an AbortSignal",
  );
  // What was closed, and by which operation, to the letter.
  const at = `127.0.0.1:${listener.addr.port}`;
  const pendingAccept = listener.accept();
  const pendingRead = client.read(new Uint8Array(8));
  listener.close();
  await rejectsExactly(pendingAccept, Closed, `accept on ${at}: the listener was closed`);
  await rejectsExactly(listener.accept(), Closed, `accept on ${at}: the listener is closed`);
  const peer = `127.0.0.1:${client.remoteAddr.port}`;
  await client.close();
  await rejectsExactly(pendingRead, Closed, `read from ${peer}: the stream was closed while reading`);
  await rejectsExactly(client.read(new Uint8Array(8)), Closed, `read from ${peer}: the stream is closed`);
  await rejectsExactly(client.write(text("x")), Closed, `write to ${peer}: the stream is closed`);
  await rejectsExactly(client.closeWrite(), Closed, `closeWrite to ${peer}: the stream is closed`);
  await server.close();
  const other = await tcpPair();
  const from = `127.0.0.1:${other.server.remoteAddr.port}`;
  const reading = other.server.read(new Uint8Array(8));
  other.server.abort();
  await rejectsExactly(reading, Closed, `read from ${from}: the stream was aborted while reading`);
  await other.client.close();
  other.listener.close();
});

test("the rest of the API names the call in its argument errors too, to the letter", async () => {
  const { client, server, listener } = await tcpPair();
  const message = async (fn: () => unknown): Promise<string> => {
    try {
      await fn();
    } catch (e) {
      return `${(e as Error).name}: ${(e as Error).message}`;
    }
    return "no error";
  };
  const bad = 5 as never;
  const badSignal = { signal: 5 as never };
  const ch = new Channel<number>(1);
  const udp = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  const running = serve({ hostname: "127.0.0.1", port: 0 }, () => {});
  const cases: [() => unknown, string][] = [
    [() => server.read(new Uint8Array(8), badSignal), "TypeError: read: options.signal must be an AbortSignal"],
    [() => server.readFull("buf" as never), 'TypeError: readFull: buf must be a Uint8Array, not "buf"'],
    [() => server.readFull(new Uint8Array(0)), "no error"], // an empty readFull is complete at once
    [() => server.write(text("x"), bad), "TypeError: write: options must be an object, not 5"],
    [() => server.write(text("x"), badSignal), "TypeError: write: options.signal must be an AbortSignal"],
    [() => server.close(bad), "TypeError: close: options must be an object, not 5"],
    [() => ch.give(1, bad), "TypeError: give: options must be an object, not 5"],
    [() => ch.give(1, badSignal), "TypeError: give: options.signal must be an AbortSignal"],
    [() => ch.take(badSignal), "TypeError: take: options.signal must be an AbortSignal"],
    [() => select(ch, badSignal), "TypeError: select: options.signal must be an AbortSignal"],
    [() => acceptLoop(listener, () => {}, bad), "TypeError: acceptLoop: options must be an object, not 5"],
    [() => running.close(bad), "TypeError: close: options must be an object, not 5"],
    [() => udp.receive(new Uint8Array(8), badSignal), "TypeError: receive: options.signal must be an AbortSignal"],
    [
      () => udp.send(text("x"), { port: 9, signal: 5 as never }),
      "TypeError: send: options.signal must be an AbortSignal",
    ],
    [
      () => udp.send(text("x"), { hostname: "", port: 9 }),
      'TypeError: send: invalid hostname "": expected a host name or an IP address',
    ],
    [
      () => listenDatagram({ port: 0, reusePort: bad }),
      "TypeError: listenDatagram: reusePort must be a boolean, not 5",
    ],
  ];
  cases.push(
    [() => listen(5 as never), "TypeError: listen: options must be an object, not 5"],
    [() => listen({ path: 5 as never }), "TypeError: listen: path must be a non-empty string, not 5"],
    [() => connect(null as never), "TypeError: connect: options must be an object, not null"],
    // Refused by the kernel at once (TCP to the broadcast address), not after a wait.
    [
      () => connect({ hostname: "255.255.255.255", port: 9 }),
      "ZevError: connect to 255.255.255.255:9: the network or host is unreachable",
    ],
  );
  cases.push(
    [() => sleep("5" as never), 'RangeError: sleep: invalid duration "5": expected milliseconds from 0 to 2147483647'],
    [() => sleep(0), "no error"],
    [() => udp.send(text("x"), { port: 65535 }), "no error"], // the highest port
    // The most one call takes: 2^31 - 1 bytes (buffers are allocated, never touched).
    [
      () => server.read(new Uint8Array(2 ** 31)),
      "RangeError: read: buf is 2147483648 bytes: at most 2147483647 per call",
    ],
  );
  for (const [fn, expected] of cases) assert.equal(await message(fn), expected);
  await client.write(text("x"));
  assert.equal(await server.read(new Uint8Array(2 ** 31 - 1)), 1, "a buffer of 2^31 - 1 bytes is taken");
  udp.close();
  await running.close();
  await client.close();
  await server.close();
  listener.close();
});

test("the error classes: names, codes, and a cancel's message from its reason", () => {
  const cases: [Error, string][] = [
    [new ZevError("Limit", "too many"), "ZevError Limit: too many"],
    [new Closed("read: the stream is closed"), "Closed Closed: read: the stream is closed"],
    [new Cancelled(), "Cancelled Cancelled: cancelled"],
    [new Cancelled("stop"), "Cancelled Cancelled: cancelled: stop"],
    [new Cancelled(new Error("boom")), "Cancelled Cancelled: cancelled: boom"],
    [new Cancelled(0), "Cancelled Cancelled: cancelled: 0"],
    [new TimedOut("read: 5 ms passed"), "TimedOut TimedOut: read: 5 ms passed"],
  ];
  for (const [error, expected] of cases) {
    assert.equal(`${error.name} ${(error as ZevError).code}: ${error.message}`, expected);
  }
});

test("a null hostname is refused by name: only a missing one means the default", async () => {
  const shown = "invalid hostname null: expected a host name or an IP address";
  assert.throws(() => listen({ hostname: null as never, port: 0 }), { name: "TypeError", message: `listen: ${shown}` });
  assert.throws(() => listenDatagram({ hostname: null as never, port: 0 }), {
    name: "TypeError",
    message: `listenDatagram: ${shown}`,
  });
  await assert.rejects(connect({ hostname: null as never, port: 9 }), {
    name: "TypeError",
    message: `connect: ${shown}`,
  });
  const udp = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  try {
    await assert.rejects(udp.send(text("x"), { hostname: null as never, port: 9 }), {
      name: "TypeError",
      message: `send: ${shown}`,
    });
  } finally {
    udp.close();
  }
  // Missing, it is the default still.
  const listener = listen({ port: 0 });
  assert.equal(listener.addr.hostname, "0.0.0.0");
  listener.close();
});

test("configure({ backend }): a non-string is a TypeError, an unknown name a RangeError; the backend in effect is no change", () => {
  assert.throws(() => configure({ backend: 5 as never }), {
    name: "TypeError",
    message: 'configure: backend must be a string ("epoll", "kqueue", "io_uring" or "auto"), not 5',
  });
  assert.throws(() => configure({ backend: "bogus" as never }), {
    name: "RangeError",
    message: 'configure: invalid backend "bogus": expected "epoll", "kqueue", "io_uring" or "auto"',
  });
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const now = configure().backend;
    assert.equal(configure({ backend: now }).backend, now, "asking for the backend in effect, with a listener open");
    const other = now === "io_uring" ? "epoll" : "io_uring";
    assert.throws(() => configure({ backend: other }), /the backend can change only before the first listener/);
  } finally {
    listener.close();
  }
});

test("a listener holds at most 1024 pending accepts: the next is refused with Limit, and closing ends them all", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const pending = Array.from({ length: 1024 }, () => listener.accept().catch((e) => e));
  await assert.rejects(
    within(2000, "the accept past the limit", listener.accept()),
    (e: unknown) =>
      e instanceof ZevError && e.code === "Limit" &&
      /^accept on 127\.0\.0\.1:\d+: 1024 accepts are already pending$/.test(e.message),
  );
  listener.close();
  const ended = await Promise.all(pending);
  assert.ok(ended.every((e) => e instanceof Closed));
});
