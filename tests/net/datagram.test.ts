/**
 * UDP: `listenDatagram`, `send` and `receive` with the runtime's own UDP socket
 * (node:dgram) on the other end; a datagram longer than the buffer reported as truncated,
 * never cut silently; receives that wait, in order, cancelled at once and by close; and
 * bad arguments refused by name.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { Cancelled, Closed, go, limits, listenDatagram, sleep, ZevError } from "../../mod.ts";
import { spendTurn, text, within } from "../harness/helpers.ts";
import { driver } from "../../src/core/driver.ts";
import { checkLeaks } from "../harness/leaks.ts";

checkLeaks("datagram");

const decode = (b: Uint8Array) => new TextDecoder().decode(b);

/** A node:dgram socket on 127.0.0.1 and the datagrams it receives. */
async function nodeSocket(): Promise<
  { port: number; got: Promise<Uint8Array>[]; send(b: Uint8Array, port: number): void; close(): void }
> {
  const socket = dgram.createSocket("udp4");
  const waiting: ((b: Uint8Array) => void)[] = [];
  const arrived: Uint8Array[] = [];
  socket.on("message", (m: Uint8Array) => {
    const w = waiting.shift();
    if (w) w(new Uint8Array(m));
    else arrived.push(new Uint8Array(m));
  });
  await new Promise<void>((r) => socket.bind(0, "127.0.0.1", () => r()));
  const next = () =>
    arrived.length > 0 ? Promise.resolve(arrived.shift()!) : new Promise<Uint8Array>((r) => waiting.push(r));
  return {
    port: socket.address().port,
    get got() {
      return [next()];
    },
    send: (b, port) => socket.send(b, port, "127.0.0.1"),
    close: () => socket.close(),
  };
}

test("send and receive: datagrams both ways with the runtime's own UDP socket, and the sender's address", async () => {
  const peer = await nodeSocket();
  const socket = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  try {
    assert.equal(socket.addr.hostname, "127.0.0.1");
    assert.ok(socket.addr.port > 0);
    const [arrival] = peer.got;
    await socket.send(text("ping"), { hostname: "127.0.0.1", port: peer.port });
    assert.equal(decode(await within(2000, "node:dgram receives zev's datagram", arrival)), "ping");
    peer.send(text("pong"), socket.addr.port);
    const buf = new Uint8Array(64);
    const d = await within(2000, "zev receives node:dgram's datagram", socket.receive(buf));
    assert.deepEqual(d, { bytes: 4, addr: { hostname: "127.0.0.1", port: peer.port, family: 4 }, truncated: false });
    assert.equal(decode(buf.subarray(0, d.bytes)), "pong");
    // "localhost" and a name that needs the resolver are both accepted as destinations.
    const [second] = peer.got;
    await socket.send(text("by name"), { hostname: "localhost", port: peer.port });
    assert.equal(decode(await within(2000, "a datagram sent to localhost", second)), "by name");
  } finally {
    socket.close();
    peer.close();
  }
});

test("a datagram longer than the buffer is reported truncated; an empty one is a datagram; the largest is sent whole", async () => {
  const a = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  const b = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  try {
    const to = { hostname: "127.0.0.1", port: b.addr.port };
    await a.send(new Uint8Array(100).fill(7), to);
    const small = new Uint8Array(10);
    const cut = await within(2000, "the long datagram", b.receive(small));
    assert.equal(cut.bytes, 10);
    assert.equal(cut.truncated, true);
    assert.deepEqual(small, new Uint8Array(10).fill(7));
    await a.send(new Uint8Array(0), to);
    assert.deepEqual(
      await within(2000, "the empty datagram", b.receive(small)),
      { bytes: 0, addr: a.addr, truncated: false },
    );
    const max = limits().maxDatagramBytes;
    assert.equal(max, 65507);
    const largest = new Uint8Array(max).map((_, i) => i % 251);
    await a.send(largest, to);
    const buf = new Uint8Array(max + 1);
    const whole = await within(2000, "the largest datagram", b.receive(buf));
    assert.equal(whole.bytes, max);
    assert.equal(whole.truncated, false);
    assert.deepEqual(buf.subarray(0, max), largest);
    await assert.rejects(
      a.send(new Uint8Array(max + 1), to),
      (e: unknown) =>
        e instanceof RangeError &&
        e.message === `send: data is ${max + 1} bytes: a UDP datagram carries at most ${max}`,
    );
  } finally {
    a.close();
    b.close();
  }
});

test("receives that wait are served in order, each cancelled at once, and all rejected by close", async () => {
  const a = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  const b = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  const to = { hostname: "127.0.0.1", port: b.addr.port };
  const bufs = [1, 2, 3].map(() => new Uint8Array(8));
  const first = b.receive(bufs[0]);
  const controller = new AbortController();
  const cancelled = b.receive(bufs[1], { signal: controller.signal });
  const third = b.receive(bufs[2]);
  controller.abort("not this one");
  await assert.rejects(cancelled, (e: unknown) => e instanceof Cancelled && e.reason === "not this one");
  await a.send(text("one"), to);
  await a.send(text("two"), to);
  assert.equal((await within(2000, "the first receive", first)).bytes, 3);
  assert.equal(decode(bufs[0].subarray(0, 3)), "one");
  assert.equal((await within(2000, "the third receive", third)).bytes, 3);
  assert.equal(decode(bufs[2].subarray(0, 3)), "two");
  assert.deepEqual(bufs[1], new Uint8Array(8), "the cancelled receive took nothing");
  // A task cancelled while it waits in receive leaves no datagram taken.
  const task = go(() => b.receive(new Uint8Array(8)));
  await sleep(10);
  task.cancel("enough");
  await assert.rejects(task.done, Cancelled);
  await a.send(text("three"), to);
  const later = new Uint8Array(8);
  assert.equal((await within(2000, "the datagram after the cancel", b.receive(later))).bytes, 5);
  // At most 1024 receives wait; the next is refused. Close rejects every one still
  // waiting, and everything after.
  const pending = Array.from({ length: 1024 }, () => b.receive(new Uint8Array(8)));
  await assert.rejects(
    b.receive(new Uint8Array(8)),
    (e: unknown) => e instanceof ZevError && e.code === "Limit" && /1024 receives are already pending/.test(e.message),
  );
  b.close();
  for (const p of pending) {
    await assert.rejects(p, (e: unknown) => e instanceof Closed && /the socket was closed/.test(e.message));
  }
  await assert.rejects(b.receive(new Uint8Array(8)), Closed);
  await assert.rejects(b.send(text("x"), to), Closed);
  a.close();
});

test("a receive never jumps the queue, even when a datagram is already there", async () => {
  const a = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  const b = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  const to = { hostname: "127.0.0.1", port: b.addr.port };
  const bufs = [new Uint8Array(8), new Uint8Array(8)];
  await a.send(text("one"), to);
  await sleep(5); // "one" waits in b's queue
  // Past the turn's budget, the first receive waits a turn without trying; the second,
  // asked for with a datagram there, still queues behind it.
  spendTurn();
  const first = b.receive(bufs[0]);
  const second = b.receive(bufs[1]);
  assert.equal((await within(2000, "the first receive", first)).bytes, 3);
  await a.send(text("two"), to);
  assert.equal((await within(2000, "the second receive", second)).bytes, 3);
  assert.deepEqual([decode(bufs[0].subarray(0, 3)), decode(bufs[1].subarray(0, 3))], ["one", "two"]);
  a.close();
  b.close();
});

test('a socket bound to "::" reaches IPv4 peers too (through mapped addresses)', async () => {
  const peer = await nodeSocket();
  const socket = listenDatagram({ hostname: "::", port: 0 });
  try {
    assert.equal(socket.addr.family, 6);
    const [arrival] = peer.got;
    await socket.send(text("over v6"), { hostname: "127.0.0.1", port: peer.port });
    assert.equal(decode(await within(2000, "an IPv4 peer receives", arrival)), "over v6");
    peer.send(text("back"), socket.addr.port);
    const d = await within(2000, "the reply from IPv4", socket.receive(new Uint8Array(16)));
    assert.deepEqual(d.addr, { hostname: "::ffff:127.0.0.1", port: peer.port, family: 6 });
  } finally {
    socket.close();
    peer.close();
  }
});

test("bad UDP arguments are refused by name", async () => {
  assert.throws(() => listenDatagram(null as never), /listenDatagram: options must be an object, not null/);
  assert.throws(() => listenDatagram({ port: -1 }), /listenDatagram: invalid port -1/);
  assert.throws(() => listenDatagram({ hostname: "example.com", port: 0 }), /hostname must be an IP address/);
  assert.throws(() => listenDatagram({ port: 0, reusePort: 1 as never }), /reusePort must be a boolean, not 1/);
  assert.throws(() => listenDatagram(5 as never), /^TypeError: listenDatagram: options must be an object, not 5$/);
  // Two sockets on one port with reusePort (the kernel spreads datagrams over them).
  const shared = listenDatagram({ hostname: "127.0.0.1", port: 0, reusePort: true });
  listenDatagram({ hostname: "127.0.0.1", port: shared.addr.port, reusePort: true }).close();
  shared.close();
  using socket = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  assert.throws(
    () => listenDatagram({ hostname: "127.0.0.1", port: socket.addr.port }),
    (e: unknown) =>
      e instanceof ZevError && e.code === "AddrInUse" &&
      e.message.startsWith(`listenDatagram on 127.0.0.1:${socket.addr.port}:`),
  );
  await assert.rejects(
    socket.send(text("x"), { port: 0 }),
    /send: invalid port 0: expected an integer from 1 to 65535/,
  );
  await assert.rejects(socket.send(text("x"), 5 as never), /send: options must be an object with a port, not 5/);
  await assert.rejects(
    socket.send(text("x"), null as never),
    /^TypeError: send: options must be an object with a port, not null$/,
  );
  await assert.rejects(socket.send("x" as never, { port: 9 }), /send: data must be a Uint8Array, not "x"/);
  await assert.rejects(socket.receive(new Uint8Array(0)), /receive: buf must be a non-empty Uint8Array/);
  await assert.rejects(socket.receive(new Uint8Array(8), 3 as never), /receive: options must be an object, not 3/);
  // An IPv4 socket cannot send to an IPv6 address: the error says why and what to do.
  await assert.rejects(
    socket.send(text("x"), { hostname: "::1", port: 9 }),
    (e: unknown) =>
      e instanceof ZevError && e.code === "InvalidArgument" &&
      e.message ===
        `send to [::1]:9: the socket on 127.0.0.1:${socket.addr.port} is IPv4 and cannot reach an IPv6 address (bind it to "::" for both)`,
  );
  const aborted = AbortSignal.abort("no");
  await assert.rejects(socket.send(text("x"), { port: 9, signal: aborted }), Cancelled);
  await assert.rejects(socket.receive(new Uint8Array(8), { signal: aborted }), Cancelled);
});

test("sends past the turn's budget wait in order: at most 1024, the next refused by name, cancelled or closed ones never sent", async () => {
  const a = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  const b = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  const target = `send to 127.0.0.1:${b.addr.port}`;
  const max = limits().maxPendingWrites;
  const base = driver.holds;
  // Three that wait for the next turn: the first, one cancelled, the third.
  spendTurn();
  const controller = new AbortController();
  const first = a.send(text("first"), { port: b.addr.port });
  const cancelled = a.send(text("cancelled"), { port: b.addr.port, signal: controller.signal });
  const third = a.send(text("third"), { hostname: "localhost", port: b.addr.port });
  assert.equal(driver.holds, base + 1, "sends that wait hold the loop");
  controller.abort("not this one");
  await assert.rejects(cancelled, (e: unknown) => e instanceof Cancelled && e.reason === "not this one");
  await within(2000, "the waiting sends", Promise.all([first, third]));
  assert.equal(driver.holds, base);
  const buf = new Uint8Array(16);
  const got: string[] = [];
  for (let i = 0; i < 2; i++) {
    const d = await within(2000, "a datagram", b.receive(buf));
    assert.deepEqual(d.addr, a.addr);
    got.push(decode(buf.subarray(0, d.bytes)));
  }
  assert.deepEqual(got, ["first", "third"], "in order, and the cancelled one never sent");
  // The bound: `max` wait, the next is refused; close rejects every one still waiting.
  spendTurn();
  const waiting = Array.from({ length: max }, () => a.send(text("x"), { port: b.addr.port }).catch((e) => e));
  await assert.rejects(a.send(text("one too many"), { port: b.addr.port }), (e: unknown) => {
    assert.ok(e instanceof ZevError && e.code === "Limit", String(e));
    assert.equal(e.message, `${target}: ${max} sends are already pending on this socket; await them`);
    return true;
  });
  a.close();
  for (const outcome of await Promise.all(waiting)) {
    assert.ok(outcome instanceof Closed, String(outcome));
    assert.equal(outcome.message, `${target}: the socket was closed before the datagram was sent`);
  }
  assert.equal(driver.holds, base, "close released the waiting sends");
  await assert.rejects(a.send(text("x"), { port: b.addr.port }), (e: unknown) => {
    assert.ok(e instanceof Closed);
    assert.equal(e.message, `${target}: the socket is closed`);
    return true;
  });
  b.close();
});

test("receives past the turn's budget wait for the next turn; closed sockets say so, to the letter", async () => {
  const a = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  const b = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  await a.send(text("ready"), { port: b.addr.port });
  await sleep(5); // the datagram is in b's queue
  spendTurn();
  const buf = new Uint8Array(16);
  const d = await within(2000, "a receive deferred a turn", b.receive(buf));
  assert.equal(decode(buf.subarray(0, d.bytes)), "ready");
  const on = `receive on 127.0.0.1:${b.addr.port}`;
  const pending = b.receive(new Uint8Array(8));
  b.close();
  await assert.rejects(pending, (e: unknown) => {
    assert.ok(e instanceof Closed);
    assert.equal(e.message, `${on}: the socket was closed`);
    return true;
  });
  await assert.rejects(b.receive(new Uint8Array(8)), (e: unknown) => {
    assert.ok(e instanceof Closed);
    assert.equal(e.message, `${on}: the socket is closed`);
    return true;
  });
  assert.equal(b.closed, true);
  assert.equal(a.closed, false);
  b.close(); // again: nothing
  // A name that does not resolve: NameNotResolved naming send and the name.
  await assert.rejects(a.send(text("x"), { hostname: "zev-udp-test.invalid", port: 9 }), (e: unknown) => {
    assert.ok(e instanceof ZevError && e.code === "NameNotResolved", String(e));
    assert.match(e.message, /^send: cannot resolve hostname "zev-udp-test\.invalid" \(E[A-Z_]+\)$/);
    return true;
  });
  a.close();
});

test("UDP refusals to the letter: a broadcast without permission, a bad host, a bad signal; IPv6 to IPv6", async () => {
  const socket = listenDatagram({ hostname: "0.0.0.0", port: 0 });
  // The kernel refuses a broadcast from a socket that did not ask for it (SO_BROADCAST).
  await assert.rejects(socket.send(text("x"), { hostname: "255.255.255.255", port: 9 }), (e: unknown) => {
    assert.ok(e instanceof ZevError && e.code === "PermissionDenied", String(e));
    assert.equal(e.message, "send to 255.255.255.255:9: permission denied");
    return true;
  });
  await assert.rejects(socket.send(text("x"), { hostname: "", port: 9 }), {
    name: "TypeError",
    message: 'send: invalid hostname "": expected a host name or an IP address',
  });
  await assert.rejects(socket.send(text("x"), { port: 9, signal: 5 as never }), {
    name: "TypeError",
    message: "send: options.signal must be an AbortSignal",
  });
  await assert.rejects(socket.receive(new Uint8Array(8), { signal: 5 as never }), {
    name: "TypeError",
    message: "receive: options.signal must be an AbortSignal",
  });
  // The receive bound, to the letter.
  const on = `receive on 0.0.0.0:${socket.addr.port}`;
  const max = limits().maxPendingWrites;
  const waiting = Array.from({ length: max }, () => socket.receive(new Uint8Array(8)).catch((e) => e));
  await assert.rejects(socket.receive(new Uint8Array(8)), (e: unknown) => {
    assert.ok(e instanceof ZevError && e.code === "Limit", String(e));
    assert.equal(e.message, `${on}: ${max} receives are already pending`);
    return true;
  });
  socket.close();
  await Promise.all(waiting);
  // An IPv6 socket reaches an IPv6 peer as it is.
  const a = listenDatagram({ hostname: "::", port: 0 });
  const b = listenDatagram({ hostname: "::1", port: 0 });
  await a.send(text("v6"), { hostname: "::1", port: b.addr.port });
  const d = await within(2000, "an IPv6 datagram", b.receive(new Uint8Array(8)));
  assert.deepEqual(d.addr, { hostname: "::1", port: a.addr.port, family: 6 });
  a.close();
  b.close();
});

test("a receive whose buffer is transferred while it waits fails naming it; the datagram stays for the next", async () => {
  const a = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  const b = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  try {
    const buf = new Uint8Array(64);
    const pending = b.receive(buf);
    await sleep(10); // it waits
    (buf.buffer as ArrayBuffer).transfer();
    await a.send(text("hello"), { hostname: "127.0.0.1", port: b.addr.port });
    await assert.rejects(within(2000, "the receive with a transferred buffer", pending), {
      name: "TypeError",
      message: "receive: buf's ArrayBuffer is detached (transferred): its bytes are gone",
    });
    const next = new Uint8Array(64);
    const got = await within(2000, "the next receive", b.receive(next));
    assert.equal(new TextDecoder().decode(next.subarray(0, got.bytes)), "hello");
  } finally {
    a.close();
    b.close();
  }
});
