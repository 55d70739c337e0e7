/**
 * `stream.read()` without a buffer: the read for many idle connections. Its chunks are
 * the caller's own (never a view of the buffer the thread's streams share), at their
 * size, in order; it times out, is cancelled, refuses a second read and tells a reset
 * as `read(buf)` does; `for await` and `stream.readable` use it.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { Cancelled, connect, limits, serve, stats, TimedOut, ZevError } from "../../mod.ts";
import { concat, spendTurn, tcpPair, text, within } from "../harness/helpers.ts";
import { checkLeaks } from "../harness/leaks.ts";

const decode = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

checkLeaks("read_chunk");

test("read() without a buffer: each chunk is the caller's own, at its size, even when two streams read in turn; null at the end", async () => {
  const a = await tcpPair();
  const b = await tcpPair();
  await a.client.write(text("hello"));
  await b.client.write(text("world!"));
  await pause(5);
  const fromA = await a.server.read();
  const fromB = await b.server.read();
  // Read through one shared buffer: a chunk that were a view of it would now say "world!".
  assert.equal(decode(fromA), "hello");
  assert.equal(decode(fromB), "world!");
  assert.equal(fromA!.buffer.byteLength, 5, "a copy in a buffer of its own, at its size");
  fromA!.fill(0); // the caller's to change
  // A read that waits (no byte yet) hands over its own copy too.
  const waiting = a.server.read();
  await a.client.write(text("again"));
  const later = await within(2000, "a waiting read()", waiting);
  await b.client.write(text("other"));
  assert.equal(decode(await b.server.read()), "other");
  assert.equal(decode(later), "again");
  await a.client.closeWrite();
  assert.equal(await a.server.read(), null);
  for (const p of [a, b]) {
    await Promise.all([p.client.close(), p.server.close()]);
    p.listener.close();
  }
});

test("read() takes at most limits().readChunkBytes at a time; 300 KiB arrive whole and in order, past the turn's budget too", async () => {
  const { listener, client, server } = await tcpPair();
  const max = limits().readChunkBytes;
  assert.equal(max, 64 * 1024);
  const data = new Uint8Array(300 * 1024).map((_, i) => (i * 13) % 251);
  const writing = client.write(data);
  const chunks: Uint8Array[] = [];
  let total = 0;
  await within(
    10000,
    "300 KiB through read()",
    (async () => {
      while (total < data.length) {
        if (chunks.length === 2) spendTurn(); // one read waits a turn
        const chunk = await server.read();
        assert.notEqual(chunk, null);
        assert.ok(chunk!.length >= 1 && chunk!.length <= max, `a chunk of ${chunk!.length} bytes`);
        chunks.push(chunk!);
        total += chunk!.length;
      }
    })(),
  );
  await writing;
  assert.deepEqual(concat(chunks), data);
  await Promise.all([client.close(), server.close()]);
  listener.close();
});

test("read() with options: a timeout and a cancel leave the stream usable; a second read is Busy; bad arguments are named", async () => {
  const { listener, client, server } = await tcpPair();
  await assert.rejects(
    server.read({ timeout: 30 }),
    (e: unknown) => e instanceof TimedOut && /read from/.test(e.message),
  );
  await assert.rejects(server.read(undefined as never, { timeout: 30 }), TimedOut);
  const controller = new AbortController();
  const cancelled = server.read({ signal: controller.signal });
  controller.abort("enough");
  await assert.rejects(cancelled, (e: unknown) => e instanceof Cancelled && e.reason === "enough");
  const pending = server.read();
  await assert.rejects(server.read(), (e: unknown) => e instanceof ZevError && e.code === "Busy");
  await assert.rejects(server.read(new Uint8Array(4)), (e: unknown) => e instanceof ZevError && e.code === "Busy");
  await client.write(text("x"));
  assert.equal(decode(await within(2000, "the read after a timeout and a cancel", pending)), "x");
  await assert.rejects(server.read(42 as never), /read: buf must be a Uint8Array, not 42/);
  await assert.rejects(server.read(null as never), /read: buf must be a Uint8Array, not null/);
  await assert.rejects(server.read({ timeout: -1 }), RangeError);
  await assert.rejects(server.read({ signal: "no" as never }), TypeError);
  await server.close();
  await assert.rejects(server.read(), /the stream is closed/);
  await client.close();
  listener.close();
});

test("a reset is an error to read() too, never a clean end", async () => {
  const { listener, client, server } = await tcpPair();
  const pending = server.read();
  client.abort();
  await assert.rejects(
    within(2000, "read() after a reset", pending),
    (e: unknown) => e instanceof ZevError && e.code === "ConnectionReset",
  );
  await server.close();
  listener.close();
});

test("for await and a default reader of stream.readable get chunks the caller keeps; a BYOB reader fills its own buffer", async () => {
  const { listener, client, server } = await tcpPair();
  const kept: Uint8Array[] = [];
  const iterating = (async () => {
    for await (const chunk of server) kept.push(chunk);
  })();
  for (const word of ["one", "two", "three"]) {
    await client.write(text(word));
    await pause(5);
  }
  await client.closeWrite();
  await within(2000, "for await to the end", iterating);
  assert.equal(kept.map(decode).join(""), "onetwothree");
  assert.ok(kept.length >= 1 && new Set(kept.map((c) => c.buffer)).size === kept.length, "no two chunks share memory");
  await Promise.all([client.close(), server.close()]);

  const second = await tcpPair();
  const reader = second.server.readable.getReader();
  await second.client.write(text("web"));
  const { value } = await within(2000, "a default reader", reader.read());
  assert.equal(decode(value!), "web");
  reader.releaseLock();
  const byob = second.server.readable.getReader({ mode: "byob" });
  await second.client.write(text("bytes"));
  const own = new Uint8Array(16);
  const filled = await within(2000, "a BYOB reader", byob.read(own));
  assert.equal(decode(filled.value!), "bytes");
  assert.equal(filled.value!.buffer.byteLength, 16, "read into the reader's own buffer");
  byob.releaseLock();
  await Promise.all([second.client.close(), second.server.close()]);
  listener.close();
  second.listener.close();
});

test("held idle connections cost the loop nothing: no poll while 300 handlers wait in read()", async () => {
  const server = serve({ hostname: "127.0.0.1", port: 0 }, async (stream) => {
    for (let chunk; (chunk = await stream.read()) !== null;) await stream.write(chunk);
  });
  const clients = await Promise.all(Array.from({ length: 300 }, () => connect({ port: server.addr.port })));
  // Each handler has answered once, so each now waits in read().
  await within(
    10000,
    "one echo on every connection",
    Promise.all(clients.map(async (c) => {
      await c.write(text("hi"));
      await c.readFull(new Uint8Array(2));
    })),
  );
  await pause(50);
  const before = stats();
  assert.equal(server.connections, 300);
  await pause(300);
  const after = stats();
  assert.equal(after.polls - before.polls, 0, "the loop polled while every connection was idle");
  assert.equal(after.timers, 0, "zev keeps no timer for idle connections");
  // And they are still served at once.
  await clients[7].write(text("ok"));
  assert.equal(decode(await within(2000, "an echo after the idle time", clients[7].readFull(new Uint8Array(2)))), "ok");
  await Promise.all(clients.map((c) => c.close()));
  await server.close();
});
