/**
 * What keeps a program alive, counted in the process: every pending accept, read, write,
 * drain (close, closeWrite), receive and connect on a referenced handle is one hold on the loop;
 * `unref` lets go, `ref` takes it back, the end of the wait and `close` release it, and a
 * closed handle never holds again. The program tests (tests/programs/unref.ts) show the
 * same from outside, by whether a process exits; these show each count exactly. Also the
 * bound on writes that are not awaited, and the messages of a stream's ends, to the letter.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { Closed, connect, limits, listen, listenDatagram, sleep, type Stream, ZevError } from "../../mod.ts";
import { driver } from "../../src/core/driver.ts";
import { tcpPair, text, within } from "../harness/helpers.ts";
import { checkLeaks } from "../harness/leaks.ts";

checkLeaks("hold");

/** Reads from `stream` until `bytes` have come, in 64 KiB reads. */
async function drain(stream: Stream, bytes: number): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  for (let got = 0; got < bytes;) {
    const n = await stream.read(buf);
    if (n === null) throw new Error(`the stream ended after ${got} of ${bytes} bytes`);
    got += n;
  }
}

test("a pending accept holds the loop while the listener is referenced", async () => {
  const base = driver.holds;
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  assert.equal(driver.holds, base, "a listener nobody accepts from holds nothing");
  const accepted = listener.accept();
  assert.equal(driver.holds, base + 1, "a pending accept holds");
  listener.unref();
  listener.unref();
  assert.equal(driver.holds, base, "unref lets go, once");
  listener.ref();
  listener.ref();
  assert.equal(driver.holds, base + 1, "ref takes it back, once");
  const client = await connect({ port: listener.addr.port });
  const server = await within(2000, "accept", accepted);
  assert.equal(driver.holds, base, "the accept is over");
  // An unreferenced listener's accept waits without holding, until ref.
  listener.unref();
  const second = listener.accept();
  assert.equal(driver.holds, base);
  listener.ref();
  assert.equal(driver.holds, base + 1);
  listener.close();
  await assert.rejects(second, Closed);
  assert.equal(driver.holds, base, "close releases the pending accept");
  listener.ref();
  assert.equal(driver.holds, base, "a closed listener never holds again");
  await client.close();
  await server.close();
  assert.equal(driver.holds, base);
});

test("a connect in progress holds the loop until it ends", async () => {
  // A listener that accepts nothing, its backlog of 1 full: the next SYN goes unanswered.
  const listener = listen({ hostname: "127.0.0.1", port: 0, backlog: 1 });
  const fill: net.Socket[] = [];
  for (let i = 0; i < 4; i++) {
    fill.push(net.connect({ port: listener.addr.port, host: "127.0.0.1" }).on("error", () => {}));
  }
  await sleep(100);
  const base = driver.holds;
  const ac = new AbortController();
  const pending = connect({ hostname: "127.0.0.1", port: listener.addr.port, signal: ac.signal });
  await sleep(50);
  assert.equal(driver.holds, base + 1, "a connect under way holds");
  ac.abort("enough");
  await assert.rejects(pending);
  assert.equal(driver.holds, base, "the connect is over");
  for (const c of fill) c.destroy();
  listener.close();
});

test("a pending read holds the loop while the stream is referenced; close and abort release it", async () => {
  const { listener, client, server } = await tcpPair();
  const base = driver.holds;
  const reading = server.read(new Uint8Array(16));
  assert.equal(driver.holds, base + 1, "a pending read holds");
  server.unref();
  assert.equal(driver.holds, base, "unref lets go");
  server.ref();
  assert.equal(driver.holds, base + 1, "ref takes it back");
  await client.write(text("hi"));
  assert.equal(await within(2000, "read", reading), 2);
  assert.equal(driver.holds, base, "the read is over");
  // A read that waits on an unreferenced stream does not hold until ref.
  server.unref();
  const second = server.read(new Uint8Array(16));
  assert.equal(driver.holds, base);
  server.ref();
  assert.equal(driver.holds, base + 1);
  await server.close();
  await assert.rejects(second, Closed);
  assert.equal(driver.holds, base, "close releases the pending read");
  server.ref();
  assert.equal(driver.holds, base, "a closed stream never holds again");
  const third = client.read(new Uint8Array(16));
  assert.equal(await third, null, "the peer's close is the end of the stream");
  const fourth = client.read(new Uint8Array(16));
  assert.equal(await fourth, null);
  client.abort();
  client.ref();
  assert.equal(driver.holds, base, "an aborted stream never holds again");
  listener.close();
});

test("a pending write and a close that drains hold the loop until the peer takes the bytes", async () => {
  const { listener, client, server } = await tcpPair();
  const base = driver.holds;
  client.setWriteQueueLimit(1);
  // More than the kernel's buffers take: the write waits for the peer to read.
  const size = 16 * 1024 * 1024;
  const writing = client.write(new Uint8Array(size));
  assert.equal(driver.holds, base + 1, "a pending write holds");
  client.unref();
  assert.equal(driver.holds, base, "unref lets go");
  client.ref();
  assert.equal(driver.holds, base + 1, "ref takes it back");
  const later = client.write(text("end"));
  assert.equal(driver.holds, base + 1, "one hold per stream, whatever waits on it");
  const closing = client.close();
  assert.equal(driver.holds, base + 1, "a close that waits for the queue holds");
  await Promise.all([drain(server, size + 3), writing, later, closing]);
  assert.equal(driver.holds, base, "all of it is over");
  assert.equal(await server.read(new Uint8Array(8)), null);
  await server.close();
  listener.close();
});

test(`at most limits().maxPendingWrites writes wait on a stream; the next is refused by name, and close rejects the rest`, async () => {
  const { listener, client, server } = await tcpPair();
  const base = driver.holds;
  const max = limits().maxPendingWrites;
  assert.ok(max >= 1, `maxPendingWrites is ${max}`);
  client.setWriteQueueLimit(1);
  const chunk = new Uint8Array(8 * 1024 * 1024);
  const pending: Promise<number>[] = [];
  const outcomes: Promise<unknown>[] = [];
  // The first one fills the kernel's buffers and waits; every one after it queues.
  for (let i = 0; i < max; i++) {
    const p = client.write(i === 0 ? chunk : text("x"));
    pending.push(p);
    outcomes.push(p.catch((e) => e));
  }
  const peer = `127.0.0.1:${listener.addr.port}`;
  await assert.rejects(client.write(text("one too many")), (e: unknown) => {
    assert.ok(e instanceof ZevError && e.code === "Limit", String(e));
    assert.equal(
      e.message,
      `write to ${peer}: ${max} writes are already pending on this stream; await them ` +
        "(the write side fails: later writes are refused too)",
    );
    return true;
  });
  assert.equal(driver.holds, base + 1);
  client.abort();
  const results = await within(2000, "the pending writes to end", Promise.all(outcomes));
  assert.equal(results.length, max);
  for (const r of results.slice(1)) {
    assert.ok(r instanceof Closed, String(r));
    assert.equal(r.message, `write to ${peer}: the stream was closed before the data was sent`);
  }
  assert.equal(driver.holds, base, "abort releases every pending write");
  await server.close();
  listener.close();
});

test("the ends of a stream say what ended, to the letter", async () => {
  const { listener, client, server } = await tcpPair();
  const peer = `127.0.0.1:${listener.addr.port}`;
  await client.write(text("abc"));
  await client.closeWrite();
  await assert.rejects(client.write(text("x")), (e: unknown) => {
    assert.ok(e instanceof Closed, String(e));
    assert.equal(e.message, `write to ${peer}: the stream's write side is closed (closeWrite)`);
    return true;
  });
  await client.closeWrite(); // again: nothing more to do
  const from = `127.0.0.1:${client.localAddr.port}`;
  await assert.rejects(server.readFull(new Uint8Array(10)), (e: unknown) => {
    assert.ok(e instanceof Closed, String(e));
    assert.equal(e.message, `readFull from ${from}: the stream ended after 3 of 10 bytes`);
    return true;
  });
  const max = limits().maxWriteQueueBytes;
  assert.throws(() => server.setWriteQueueLimit(max + 1), (e: unknown) => {
    assert.ok(e instanceof RangeError);
    assert.equal(e.message, `setWriteQueueLimit: invalid limit ${max + 1}: expected 1 to ${max} bytes`);
    return true;
  });
  server.setWriteQueueLimit(max); // the largest is taken
  await server.close();
  assert.throws(() => server.setWriteQueueLimit(1), (e: unknown) => {
    assert.ok(e instanceof Closed, String(e));
    assert.equal(e.message, `setWriteQueueLimit to ${from}: the stream is closed`);
    return true;
  });
  await client.close();
  listener.close();
});

test("a pending receive holds the loop while the datagram socket is referenced", async () => {
  const base = driver.holds;
  const socket = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  assert.equal(driver.holds, base);
  const receiving = socket.receive(new Uint8Array(16));
  assert.equal(driver.holds, base + 1, "a pending receive holds");
  socket.unref();
  assert.equal(driver.holds, base);
  socket.ref();
  assert.equal(driver.holds, base + 1);
  await socket.send(text("ping"), { hostname: "127.0.0.1", port: socket.addr.port });
  const got = await within(2000, "receive", receiving);
  assert.equal(got.bytes, 4);
  assert.equal(driver.holds, base, "the receive is over");
  const second = socket.receive(new Uint8Array(16));
  assert.equal(driver.holds, base + 1);
  socket.close();
  await assert.rejects(second, Closed);
  socket.ref();
  assert.equal(driver.holds, base, "a closed socket never holds again");
});

/** Lets the driver finish its turns and park (nothing is coming). */
const parked = () => new Promise((resolve) => setTimeout(resolve, 30));

test("a parked loop keeps the process alive exactly while a wait is held or bytes are queued", async () => {
  const { listener, client, server } = await tcpPair();
  const parker = driver.parker;
  await parked();
  assert.equal(parker.keepingAlive, false, "open streams and a listener nobody waits on keep nothing alive");
  const accepting = listener.accept();
  assert.equal(parker.keepingAlive, true, "a wait that begins while parked keeps it alive at once");
  listener.unref();
  assert.equal(parker.keepingAlive, false, "unref while parked lets go at once");
  listener.ref();
  assert.equal(parker.keepingAlive, true);
  listener.close();
  await assert.rejects(accepting, Closed);
  assert.equal(parker.keepingAlive, false, "the wait ended while parked");
  // Bytes the kernel has not taken yet keep it alive with no wait held (a write that
  // resolved into the queue, as a program that ends right after writing does).
  server.setWriteQueueLimit(limits().maxWriteQueueBytes);
  const size = 8 * 1024 * 1024;
  await server.write(new Uint8Array(size));
  assert.equal(driver.holds, 0);
  await parked();
  assert.equal(parker.keepingAlive, true, "queued bytes keep it alive");
  await drain(client, size);
  await parked();
  assert.equal(parker.keepingAlive, false, "the queue is empty");
  await Promise.all([client.close(), server.close()]);
});
