/**
 * Streams: data in order, half-close from either side, resets, and misuse. Every call on
 * a closed stream or listener, and every bad argument, gets a clear error.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { Cancelled, Closed, connect, limits, listen, stats, type Stream, TimedOut, ZevError } from "../../mod.ts";
import { openClient, readsToReset, spendTurn, tcpPair, text, within } from "../harness/helpers.ts";
import { checkLeaks } from "../harness/leaks.ts";

const decode = (b: Uint8Array) => new TextDecoder().decode(b);

/** A zev listener and one connected zev client, with the server's end accepted. */
async function pair(): Promise<{ client: Stream; server: Stream; close: () => Promise<void> }> {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([connect({ port: listener.addr.port }), listener.accept()]);
  return {
    client,
    server,
    close: async () => {
      listener.close();
      await Promise.all([client.close(), server.close()]);
    },
  };
}

checkLeaks("stream");

test("a megabyte each way arrives intact and in order", async () => {
  const { client, server, close } = await pair();
  const size = 1 << 20;
  const data = new Uint8Array(size).map((_, i) => (i * 7) % 251);
  const echo = (async () => {
    const buf = new Uint8Array(8192);
    let total = 0;
    while (total < size) {
      const n = await server.read(buf);
      assert.notEqual(n, null);
      await server.write(buf.subarray(0, n!));
      total += n!;
    }
  })();
  const writing = client.write(data);
  const back = await within(10000, "echo of 1 MiB", client.readFull(new Uint8Array(size)));
  await writing;
  await echo;
  assert.deepEqual(back, data);
  await close();
});

test("peer half-close: read returns null and the reply still gets through", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const socket = net.connect({ port: listener.addr.port, host: "127.0.0.1", allowHalfOpen: true });
  const server = await listener.accept();
  const received: Uint8Array[] = [];
  const ended = new Promise<void>((resolve) => socket.on("end", resolve));
  socket.on("data", (d: Uint8Array) => received.push(d));
  socket.end("request"); // FIN after the request
  const buf = new Uint8Array(64);
  const n = await server.read(buf);
  assert.equal(decode(buf.subarray(0, n!)), "request");
  assert.equal(await server.read(buf), null);
  assert.equal(await server.read(buf), null, "end of stream is sticky");
  await server.write(text("reply"));
  await server.close();
  await within(5000, "reply after half-close", ended);
  assert.equal(decode(Buffer.concat(received)), "reply");
  socket.destroy();
  listener.close();
});

test("closeWrite: the peer sees the end, this side still reads, later writes are refused", async () => {
  const { client, server, close } = await pair();
  await client.write(text("question"));
  await client.closeWrite();
  await client.closeWrite(); // idempotent
  await assert.rejects(
    client.write(text("more")),
    (e: unknown) => e instanceof Closed && /closeWrite/.test((e as Error).message),
  );
  const got = await server.readFull(new Uint8Array(8));
  assert.equal(decode(got), "question");
  assert.equal(await server.read(new Uint8Array(8)), null);
  await server.write(text("answer"));
  assert.equal(decode(await client.readFull(new Uint8Array(6))), "answer");
  await close();
});

test("a peer reset rejects the pending read with ConnectionReset, and the server keeps serving", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const client = await connect({ port: listener.addr.port });
  const server = await listener.accept();
  await client.write(text("half a requ"));
  const buf = new Uint8Array(64);
  assert.equal(await server.read(buf), 11);
  const pending = server.read(buf);
  client.abort(); // RST
  await assert.rejects(pending, (e: unknown) => e instanceof ZevError && e.code === "ConnectionReset");
  // Writing to a reset stream fails too, with a clear error rather than a crash.
  await assert.rejects(
    (async () => {
      for (let i = 0; i < 100; i++) await server.write(text("x"));
    })(),
    (e: unknown) => e instanceof ZevError && /write/.test((e as Error).message),
  );
  await server.close();
  // A new client is served as before.
  const again = await openClient(listener.addr.port);
  const s2 = await listener.accept();
  again.write("ok");
  assert.equal(decode((await s2.readFull(new Uint8Array(2))) as Uint8Array), "ok");
  again.destroy();
  await s2.close();
  listener.close();
});

test("misuse of a closed stream: clear errors, never a crash", async () => {
  const { client, server, close } = await pair();
  await client.close();
  await client.close(); // double close is harmless
  await assert.rejects(client.read(new Uint8Array(4)), Closed);
  await assert.rejects(client.write(text("x")), Closed);
  await assert.rejects(client.closeWrite(), Closed);
  assert.throws(() => client.localAddr, /closed|never valid/);
  client.abort(); // abort after close is harmless
  await server.close();
  await close();
});

test("misuse of arguments and listeners: clear errors", async () => {
  assert.throws(() => listen({ port: -1 }), /invalid port -1/);
  assert.throws(() => listen({ port: 70000 }), /invalid port 70000/);
  assert.throws(() => listen({ port: 1.5 }), /invalid port 1.5/);
  assert.throws(() => listen({ port: "80" as unknown as number }), /invalid port "80"/);
  assert.throws(() => listen({ hostname: "not a host", port: 0 }), /IP address/);
  // A malformed IP literal is a bad host name like any other.
  assert.throws(
    () => listen({ hostname: "999.1.1.1", port: 0 }),
    /hostname must be an IP address or "localhost", not "999.1.1.1"/,
  );
  assert.throws(() => listen(null as unknown as { port: number }), /options must be an object/);
  await assert.rejects(connect({ port: 0 }), /invalid port 0/);
  await assert.rejects(
    connect({ hostname: "no-such-host.invalid", port: 1 }),
    (e: unknown) =>
      e instanceof ZevError && e.code === "NameNotResolved" &&
      /cannot resolve hostname "no-such-host.invalid"/.test(e.message),
  );

  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  assert.throws(
    () => listen({ hostname: "127.0.0.1", port: listener.addr.port }),
    (e: unknown) => e instanceof ZevError && e.code === "AddrInUse" && e.message.includes(String(listener.addr.port)),
  );
  const { port } = listener.addr;
  const pending = listener.accept();
  listener.close();
  listener.close(); // double close is harmless
  await assert.rejects(pending, Closed);
  await assert.rejects(listener.accept(), Closed);
  await assert.rejects(
    connect({ port }),
    (e: unknown) => e instanceof ZevError && e.code === "ConnectionRefused" && e.message.includes(`127.0.0.1:${port}`),
  );

  const { client, close } = await pair();
  assert.equal(await client.read(new Uint8Array(0)), 0); // an empty buffer reads nothing
  await assert.rejects(client.read("buf" as unknown as Uint8Array), TypeError);
  await assert.rejects(client.write("text" as unknown as Uint8Array), TypeError);
  const first = client.read(new Uint8Array(4));
  await assert.rejects(
    client.read(new Uint8Array(4)),
    (e: unknown) => e instanceof ZevError && e.code === "Busy" && /already pending/.test(e.message),
  );
  await close();
  await assert.rejects(first, Closed);
});

test("IPv6 loopback works, and addresses are reported", async () => {
  const listener = listen({ hostname: "::1", port: 0 });
  assert.equal(listener.addr.hostname, "::1");
  assert.equal(listener.addr.family, 6);
  const client = await connect({ hostname: "[::1]", port: listener.addr.port });
  const server = await listener.accept();
  assert.equal(server.remoteAddr.hostname, "::1");
  assert.equal(client.remoteAddr.port, listener.addr.port);
  await client.close();
  await server.close();
  listener.close();
});

test("for await over a listener and a stream", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    for await (const stream of listener) {
      const chunks: string[] = [];
      for await (const chunk of stream) chunks.push(decode(chunk));
      await stream.write(text(chunks.join("").toUpperCase()));
      await stream.close();
    }
  })();
  const c = await openClient(listener.addr.port);
  const reply = new Promise<string>((resolve) => {
    let s = "";
    c.on("data", (d) => (s += d));
    c.on("end", () => resolve(s));
  });
  c.end("shout");
  assert.equal(await within(5000, "reply", reply), "SHOUT");
  listener.close();
  await served;
});

test("the write queue limit holds: a stream never queues more than it was allowed", async () => {
  const { client, server, close } = await pair();
  client.setWriteQueueLimit(4096);
  assert.throws(() => client.setWriteQueueLimit(0), RangeError);
  assert.throws(() => client.setWriteQueueLimit(limits().maxWriteQueueBytes + 1), RangeError);
  const before = stats().queuedBytes;
  // The peer does not read: the kernel buffers fill, then at most 4096 bytes queue.
  const writing = client.write(new Uint8Array(32 << 20));
  await new Promise((r) => setTimeout(r, 100));
  const queued = stats().queuedBytes - before;
  assert.ok(queued > 0 && queued <= 4096, `queued ${queued} bytes`);
  // Reading everything lets the write finish.
  const sink = new Uint8Array(1 << 16);
  let got = 0;
  while (got < 32 << 20) got += (await server.read(sink))!;
  assert.equal(await writing, 32 << 20);
  await close();
});

test("socket options: noDelay, keepAlive and reusePort are checked and accepted", async () => {
  assert.throws(() => listen({ port: 0, noDelay: "yes" as never }), /listen: noDelay must be a boolean, not "yes"/);
  await assert.rejects(connect({ port: 1, keepAlive: 1 as never }), /connect: keepAlive must be a boolean, not 1/);
  const a = listen({ hostname: "127.0.0.1", port: 0, reusePort: true, keepAlive: true, noDelay: false });
  // Another listener on the same port: allowed only because both asked for reusePort.
  const b = listen({ hostname: "127.0.0.1", port: a.addr.port, reusePort: true });
  assert.throws(
    () => listen({ hostname: "127.0.0.1", port: a.addr.port }),
    (e: unknown) => e instanceof ZevError && e.code === "AddrInUse",
  );
  const client = await connect({ port: a.addr.port, noDelay: false, keepAlive: true });
  await client.write(text("hi"));
  await client.close();
  a.close();
  b.close();
});

test("TCP options are taken as given: path undefined beside a port is TCP, and a listener's own option on connect is ignored", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0, path: undefined } as { hostname: string; port: number });
  assert.equal(listener.addr.family, 4, "a TCP listener");
  for (const options of [{ noDelay: false }, { keepAlive: true }, { path: undefined }, { reusePort: true }]) {
    const [client, server] = await Promise.all([
      connect({ port: listener.addr.port, ...options } as never),
      listener.accept(),
    ]);
    await client.write(text("x"));
    const buf = new Uint8Array(1);
    assert.equal(await server.read(buf), 1, JSON.stringify(options));
    await Promise.all([client.close(), server.close()]);
  }
  listener.close();
});

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test("a read's timeout ends with the read: a later read is not timed out by it", async () => {
  const { listener, client, server } = await tcpPair();
  const buf = new Uint8Array(8);
  const first = server.read(buf, { timeout: 40 });
  await client.write(text("a"));
  assert.equal(await first, 1);
  const second = server.read(buf); // no timeout: it waits past the first one's 40 ms
  await pause(80);
  await client.write(text("b"));
  assert.equal(await within(2000, "the second read", second), 1);
  await Promise.all([client.close(), server.close()]);
  listener.close();
});

test("a pending read whose buffer is transferred rejects, naming it, and the stream reads on", async () => {
  const { listener, client, server } = await tcpPair();
  const buf = new Uint8Array(8);
  const reading = server.read(buf);
  (buf.buffer as ArrayBuffer).transfer();
  await client.write(text("x"));
  await assert.rejects(within(2000, "the read", reading), (e: unknown) => {
    assert.ok(e instanceof TypeError);
    assert.equal(e.message, "read: buf's ArrayBuffer is detached (transferred): its bytes are gone");
    return true;
  });
  const fresh = new Uint8Array(8);
  assert.equal(await server.read(fresh), 1, "no byte was taken by the failed read");
  assert.equal(fresh[0], "x".charCodeAt(0));
  await Promise.all([client.close(), server.close()]);
  listener.close();
});

test("writes waiting when the peer resets all reject with the reset, naming the peer", async () => {
  const { listener, client, server } = await tcpPair();
  server.setWriteQueueLimit(1);
  const peer = `127.0.0.1:${client.localAddr.port}`;
  const writes = [server.write(new Uint8Array(32 << 20)), server.write(text("queued")), server.write(text("too"))];
  const outcomes = writes.map((w) => w.catch((e) => e));
  await pause(20);
  client.abort(); // a reset, with the server's bytes unread
  const results = await within(5000, "the waiting writes", Promise.all(outcomes));
  for (const e of results) {
    assert.ok(e instanceof ZevError && (e.code === "ConnectionReset" || e.code === "BrokenPipe"), String(e));
    assert.match(e.message, new RegExp(`^write to ${peer.replace(/\./g, "\\.")}: `));
  }
  assert.equal(results[1], results[2], "the writes behind the failed one get its error");
  await server.close();
  listener.close();
});

test("close twice is one close; close after abort resolves; closeWrite after close is refused", async () => {
  const { listener, client, server } = await tcpPair();
  const closing = client.close();
  assert.equal(client.close(), closing, "the same promise");
  await closing;
  server.abort();
  const after = server.close();
  assert.ok(after instanceof Promise);
  await after;
  assert.equal(server.close(), after);
  listener.close();
});

test("cancelling a stream's readable closes it; aborting its writable resets it", async () => {
  const { listener, client, server } = await tcpPair();
  await server.readable.cancel("done reading");
  assert.equal(server.closed, true);
  assert.equal(await client.read(new Uint8Array(8)), null, "the peer sees the end");
  const other = await tcpPair();
  await other.client.writable.abort("stop");
  assert.equal(other.client.closed, true);
  assert.equal(await other.server.read(new Uint8Array(8)).catch((e) => e.code), "ConnectionReset");
  await Promise.all([client.close(), other.server.close()]);
  listener.close();
  other.listener.close();
});

test("a stream closed before anything asked who its peer was still knows it: remoteAddr and the messages name it", async () => {
  const { listener, client, server } = await tcpPair();
  const peer = `127.0.0.1:${listener.addr.port}`;
  await client.close();
  assert.deepEqual(client.remoteAddr, { hostname: "127.0.0.1", port: listener.addr.port, family: 4 });
  await assert.rejects(client.read(new Uint8Array(4)), (e: unknown) => {
    assert.ok(e instanceof Closed);
    assert.equal(e.message, `read from ${peer}: the stream is closed`);
    return true;
  });
  await assert.rejects(client.write(text("x")), { message: `write to ${peer}: the stream is closed` });
  // The local address is known after close only if asked before.
  assert.throws(() => client.localAddr, { message: "stream.localAddr: the handle is closed or was never valid" });
  await server.close();
  listener.close();
});

test("close sends what resolved writes left in the stream's queue before it closes: the peer gets every byte", async () => {
  const { listener, client, server } = await tcpPair();
  // Writes resolve once their bytes are in the kernel or the stream's queue; the peer
  // reads nothing yet, so the last ones are still queued when close is called.
  const chunk = new Uint8Array(64 << 10).fill(7);
  let written = 0;
  for (let i = 0; i < 1024; i++) {
    const w = client.write(chunk);
    const done = await Promise.race([w.then(() => true), pause(50).then(() => false)]);
    if (!done) {
      await client.close({ timeout: 1 }).catch(() => {}); // held back: not this test's case
      assert.fail("a write was held back before the queue had bytes in it");
    }
    written += chunk.length;
    if (stats().queuedBytes > 0) break;
  }
  assert.ok(stats().queuedBytes > 0, "bytes are waiting in the stream's queue");
  const closing = client.close();
  let got = 0;
  const buf = new Uint8Array(1 << 16);
  for (let n; (n = await within(5000, "the peer reads to the end", server.read(buf))) !== null;) got += n;
  await within(5000, "close", closing);
  assert.equal(got, written);
  await server.close();
  // And a write still waiting in JavaScript (larger than the queue) when close is called.
  const other = await tcpPair();
  const big = new Uint8Array(32 << 20).fill(9);
  const writing = other.client.write(big);
  await pause(20);
  const closed = other.client.close();
  let total = 0;
  for (let n; (n = await within(10_000, "the peer reads to the end", other.server.read(buf))) !== null;) total += n;
  assert.equal(await writing, big.length);
  await within(5000, "close after the write", closed);
  assert.equal(total, big.length);
  await other.server.close();
  other.listener.close();
  listener.close();
});

test("reads and writes past the turn's budget wait a turn, then complete, in order", async () => {
  const { listener, client, server } = await tcpPair();
  await client.write(text("ready"));
  await pause(5); // "ready" waits in the server's socket
  spendTurn();
  const read = server.read(new Uint8Array(16));
  const first = client.write(text("a"));
  const second = client.write(text("b"));
  const third = client.write(text("c"), { signal: AbortSignal.timeout(5000) });
  assert.equal(await within(2000, "a read past the budget", read), 5);
  assert.deepEqual(await within(2000, "writes past the budget", Promise.all([first, second, third])), [1, 1, 1]);
  const buf = new Uint8Array(3);
  await within(2000, "the three bytes", server.readFull(buf));
  assert.equal(new TextDecoder().decode(buf), "abc");
  await Promise.all([client.close(), server.close()]);
  listener.close();
});

test("an accept past the turn's budget takes a connection already here on the next turn; for await throws what accept throws", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const client = await connect({ port: listener.addr.port });
  await pause(5); // the connection waits in the kernel's queue
  spendTurn(); // the accept cannot complete at once
  const server = await within(2000, "a deferred accept", listener.accept());
  await client.write(text("x"));
  assert.equal(await server.read(new Uint8Array(1)), 1);
  // An accept that fails (not a closed listener) ends `for await` with its error.
  const failure = new ZevError("Unexpected", "accept on the test's listener: a failure made up by the test");
  listener.accept = () => Promise.reject(failure);
  await assert.rejects(
    (async () => {
      for await (const _ of listener) assert.fail("no connection was expected");
    })(),
    (e: unknown) => e === failure,
  );
  await Promise.all([client.close(), server.close()]);
  listener.close();
});

test("readFull cut short by its timeout, its signal or the end of stream says how many bytes it had read, keeping the error's class and code", async () => {
  const { listener, client, server } = await tcpPair();
  const peer = `127\\.0\\.0\\.1:${client.localAddr.port}`;
  // The timeout: 5 of 10 bytes came, and they are taken from the stream.
  await client.write(text("HELLO"));
  const buf = new Uint8Array(10);
  await assert.rejects(server.readFull(buf, { timeout: 50 }), (e: unknown) => {
    assert.ok(e instanceof TimedOut && e instanceof ZevError, String(e));
    assert.equal(e.code, "TimedOut");
    assert.match(e.message, new RegExp(`^readFull from ${peer}: 5 of 10 bytes read, then no data within 50 ms$`));
    assert.equal((e as TimedOut & { bytesRead: number }).bytesRead, 5);
    assert.ok(e.cause instanceof TimedOut, "the read's own error is the cause");
    return true;
  });
  assert.equal(decode(buf.subarray(0, 5)), "HELLO", "the bytes read are in the buffer");
  // The signal: the stream reads on at the byte after them.
  await client.write(text("WOR"));
  const controller = new AbortController();
  const reading = server.readFull(buf, { signal: controller.signal });
  await pause(20);
  controller.abort("enough");
  await assert.rejects(reading, (e: unknown) => {
    assert.ok(e instanceof Cancelled, String(e));
    assert.equal(e.code, "Cancelled");
    assert.equal(e.reason, "enough");
    assert.match(e.message, new RegExp(`^readFull from ${peer}: 3 of 10 bytes read, then cancelled: enough$`));
    assert.equal((e as Cancelled & { bytesRead: number }).bytesRead, 3);
    return true;
  });
  assert.equal(decode(buf.subarray(0, 3)), "WOR");
  // The end of the stream.
  await client.write(text("LD"));
  await client.close();
  await assert.rejects(server.readFull(buf), (e: unknown) => {
    assert.ok(e instanceof Closed, String(e));
    assert.match(e.message, new RegExp(`^readFull from ${peer}: the stream ended after 2 of 10 bytes$`));
    assert.equal((e as Closed & { bytesRead: number }).bytesRead, 2);
    return true;
  });
  // A bad option is readFull's error, not its reads'.
  await assert.rejects(server.readFull(new Uint8Array(4), { timeout: -1 }), {
    name: "RangeError",
    message: "readFull: invalid timeout -1: expected milliseconds from 0 to 2147483647",
  });
  await assert.rejects(server.readFull(new Uint8Array(4), { signal: "no" as never }), {
    name: "TypeError",
    message: "readFull: options.signal must be an AbortSignal",
  });
  await server.close();
  listener.close();
});

test("close whose timeout passes resets the stream, releases it and rejects with TimedOut saying how many bytes were not sent", async () => {
  const { listener, client, server } = await tcpPair();
  client.setWriteQueueLimit(64 << 20);
  // The peer reads nothing: the write resolves with most of its bytes in the queue.
  assert.equal(await client.write(new Uint8Array(32 << 20)), 32 << 20);
  const queued = stats().queuedBytes;
  assert.ok(queued > 0, "bytes of the resolved write are queued");
  const live = stats().liveHandles;
  const started = Date.now();
  await assert.rejects(within(2000, "close with a timeout", client.close({ timeout: 50 })), (e: unknown) => {
    assert.ok(e instanceof TimedOut, String(e));
    const m = /^close to 127\.0\.0\.1:\d+: (\d+) bytes were still unsent after 50 ms: the stream was reset$/.exec(
      e.message,
    );
    assert.ok(m, e.message);
    assert.ok(Number(m[1]) > 0 && Number(m[1]) <= queued, `${m[1]} unsent, ${queued} queued`);
    return true;
  });
  assert.ok(Date.now() - started < 1000, "close waited its timeout, not more");
  assert.equal(client.closed, true);
  assert.equal(stats().liveHandles, live - 1, "the handle was released");
  // Same promise afterwards: still the rejection, and the peer sees the reset.
  await assert.rejects(client.close(), TimedOut);
  await readsToReset(server);
  await server.close();
  listener.close();
});

test("close waiting for queued bytes rejects with the peer's reset: the bytes it held are lost, and it says so", async () => {
  const { listener, client, server } = await tcpPair();
  client.setWriteQueueLimit(64 << 20);
  assert.equal(await client.write(new Uint8Array(32 << 20)), 32 << 20);
  const closing = client.close({ timeout: 5000 });
  server.abort(); // the peer resets: nothing queued can be sent any more
  await assert.rejects(
    within(3000, "close after the peer's reset", closing),
    (e: unknown) =>
      e instanceof ZevError && /^(ConnectionReset|BrokenPipe)$/.test(e.code) && /^close to /.test(e.message),
  );
  assert.equal(client.closed, true);
  listener.close();
});

test("closeWrite waiting behind writes rejects with Closed when the stream is reset before the end of stream is sent", async () => {
  const { listener, client, server } = await tcpPair();
  client.setWriteQueueLimit(1);
  const peer = `127\\.0\\.0\\.1:${client.remoteAddr.port}`;
  // The peer reads nothing: the write waits, and closeWrite behind it.
  const writing = client.write(new Uint8Array(32 << 20)).catch((e) => e);
  await pause(20);
  const closing = client.closeWrite();
  await pause(20);
  client.abort();
  await assert.rejects(within(2000, "closeWrite after the reset", closing), (e: unknown) => {
    assert.ok(e instanceof Closed, String(e));
    assert.match(
      e.message,
      new RegExp(`^closeWrite to ${peer}: the stream was closed before its write side was shut down$`),
    );
    return true;
  });
  assert.ok((await writing) instanceof Closed, "the pending write was refused too");
  // A closeWrite that a graceful close overtakes resolves: the close sent every byte, then the end.
  const other = await tcpPair();
  other.client.setWriteQueueLimit(1);
  const big = new Uint8Array(4 << 20);
  const wrote = other.client.write(big);
  await pause(20);
  const ending = other.client.closeWrite();
  const closed = other.client.close();
  let got = 0;
  const sink = new Uint8Array(1 << 16);
  for (let n; (n = await within(5000, "the peer reads to the end", other.server.read(sink))) !== null;) got += n;
  assert.equal(got, big.length);
  await within(2000, "the write, closeWrite and close", Promise.all([wrote, ending, closed]));
  await Promise.all([server.close(), other.server.close()]);
  listener.close();
  other.listener.close();
});

test("a write refused past the pending limit fails the write side: no later byte is sent, so the peer's stream has no hole", async () => {
  const { listener, client, server } = await tcpPair();
  const max = limits().maxPendingWrites;
  // Lines of 1 KiB fired without awaiting while the peer reads nothing: the first ones
  // fill the kernel's buffers and the queue, the rest wait, and past the limit they are
  // refused.
  const line = (i: number) => text(`${String(i).padStart(8, "0")}${".".repeat(1015)}\n`);
  const writes = Array.from({ length: max + 2000 }, (_, i) => client.write(line(i)).then(() => i, (e) => e));
  const later = await client.write(line(999_999)).catch((e) => e);
  assert.ok(later instanceof Closed, String(later));
  assert.match(later.message, /the write side failed when an earlier write was refused/);
  assert.ok(later.cause instanceof ZevError && later.cause.code === "Limit", String(later.cause));
  const ending = client.closeWrite();
  // The peer reads everything: lines 0, 1, 2... with no gap, then the end.
  let got = "";
  const buf = new Uint8Array(1 << 16);
  const decoder = new TextDecoder();
  for (let n; (n = await within(10_000, "the peer reads to the end", server.read(buf))) !== null;) {
    got += decoder.decode(buf.subarray(0, n), { stream: true });
  }
  await ending;
  const results = await Promise.all(writes);
  const sent = results.filter((r) => typeof r === "number").length;
  // One refused past the limit; every write after it refused for that one.
  const refused = results.filter((r) => r instanceof ZevError && r.code === "Limit");
  const after = results.filter((r) => r instanceof Closed && r.cause === refused[0]);
  assert.equal(refused.length, 1, "one write was refused past the limit");
  assert.equal(sent + refused.length + after.length, writes.length, "each write was sent or refused");
  assert.ok(results.slice(sent).every((r) => typeof r !== "number"), "nothing after the refused write was sent");
  const lines = got.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, sent);
  lines.forEach((l, i) => assert.equal(l.slice(0, 8), String(i).padStart(8, "0")));
  await Promise.all([client.close(), server.close()]);
  listener.close();
});

test("a reset is never read as a clean end: with a write in flight, the pending read and every later one reject with ConnectionReset", async () => {
  const { listener, client, server } = await tcpPair();
  // A large write the peer does not read, and a read waiting: then the peer resets.
  const writing = server.write(new Uint8Array(32 << 20)).catch((e) => e);
  const reading = server.read(new Uint8Array(1024)).catch((e) => e);
  await pause(20);
  client.abort();
  const [wrote, read] = await within(5000, "the write and the read after the reset", Promise.all([writing, reading]));
  for (const result of [wrote, read, await server.read(new Uint8Array(1024)).catch((e) => e)]) {
    assert.ok(result instanceof ZevError && result.code === "ConnectionReset", String(result));
  }
  await server.close().catch(() => {});
  listener.close();
});
