/**
 * The loop driver's behaviour that only costs show: how many polls a lightly loaded
 * server makes per request (the kernel's wake parks in the same call as the poll that
 * found nothing, and right after a woken turn, once the tasks it woke have written their
 * answers; a thread's wake needs one more poll), none while idle, and an opt-in spin that
 * polls for its time and then parks. These are counts of the loop's own polls
 * (`stats().polls`) and orders of events, not timings: a driver that polls one turn more
 * per request, parks before the answers, or never stops spinning, fails here while every
 * echo still works.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { Closed, configure, connect, go, listen, stats } from "../../mod.ts";
import { driver, onNextTurn } from "../../src/core/driver.ts";
import { checkLeaks } from "../harness/leaks.ts";
import { within } from "../harness/helpers.ts";

checkLeaks("driver");

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * An echo server on zev and a client on the runtime's own sockets (which cost zev no poll);
 * `log` gets "request" as each request is sent and "write" once the server's write of its
 * answer has handed the bytes to the kernel.
 */
async function echoPair(log: string[] = []) {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const served = go(async () => {
    const stream = await listener.accept();
    const buf = new Uint8Array(64);
    for (let n; (n = await stream.read(buf)) !== null;) {
      const written = stream.write(buf.subarray(0, n));
      log.push("write"); // a 64-byte write takes the bytes at once
      await written;
    }
    await stream.close();
  });
  const socket = net.connect(listener.addr.port, "127.0.0.1");
  await new Promise((resolve) => socket.once("connect", resolve));
  const roundTrip = () =>
    new Promise((resolve) => {
      socket.once("data", resolve);
      log.push("request");
      socket.write("ping");
    });
  const close = async () => {
    socket.end();
    await served.done;
    listener.close();
  };
  return { roundTrip, close };
}

test("at light load a request costs one poll with the kernel's wake, two with a thread's, and idle costs none", async () => {
  const { roundTrip, close } = await echoPair();
  for (let i = 0; i < 20; i++) await roundTrip();
  await pause(20);
  const requests = 200;
  const before = stats().polls;
  for (let i = 0; i < requests; i++) {
    await roundTrip();
    if (i % 4 === 0) await pause(1); // some requests come to a loop parked a while
  }
  const perRequest = (stats().polls - before) / requests;
  const expected = driver.parker.kind === "io_uring" ? 1 : 2;
  assert.ok(
    perRequest >= 1 && perRequest <= expected * 1.1,
    `${perRequest.toFixed(2)} polls per request with the ${driver.parker.kind} wake, expected ${expected}`,
  );
  const idleFrom = stats().polls;
  await pause(200);
  assert.equal(stats().polls - idleFrom, 0, "a parked loop does not poll");
  await close();
});

test("a woken loop parks after the tasks it woke have written their answers", async () => {
  const log: string[] = [];
  const { roundTrip, close } = await echoPair(log);
  await roundTrip();
  // Parks that arm the wake (a poll that finds nothing parks in the same call instead).
  const parker = driver.parker;
  const park = parker.park;
  parker.park = () => {
    log.push("park");
    return park.call(parker);
  };
  log.length = 0;
  try {
    for (let i = 0; i < 50; i++) {
      await roundTrip();
      await pause(1); // the next request comes to a parked loop
    }
  } finally {
    parker.park = park;
  }
  const requests = log.join(" ").split("request ").slice(1);
  const early = requests.filter((r) => r.startsWith("park"));
  assert.equal(requests.length, 50);
  assert.ok(log.includes("park"), "no park armed the wake");
  assert.equal(early.length, 0, `${early.length} of 50 requests saw a park before their answer: ${early[0]}`);
  await close();
});

test("an opt-in spin polls for its time after the last event, then parks", async () => {
  const { roundTrip, close } = await echoPair();
  await roundTrip();
  // Long enough that a loaded machine cannot make it look over before it is measured.
  configure({ spinMicros: 200_000 });
  try {
    await roundTrip(); // the spin starts after this request's events
    const spinFrom = stats().polls;
    await pause(50);
    const spun = stats().polls - spinFrom;
    assert.ok(spun >= 3, `${spun} polls in the first 50 ms of a 200 ms spin`);
    await pause(300);
    const parkedFrom = stats().polls;
    await pause(100);
    assert.equal(stats().polls - parkedFrom, 0, "the spin ended and the loop parked");
    // An event ends the park; the next spin is timed from the last event, not the first.
    await roundTrip();
    const again = stats().polls;
    await pause(50);
    assert.ok(stats().polls - again >= 3, "a new spin after a new event");
  } finally {
    configure({ spinMicros: 0 });
  }
  await pause(250);
  const quiet = stats().polls;
  await pause(50);
  assert.equal(stats().polls - quiet, 0);
  await close();
});

test("the loop counts what is registered; a throw in deferred work is reported, not lost, and the loop goes on", async () => {
  const open = driver.open;
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  assert.equal(driver.open, open + 1);
  const [client, server] = await Promise.all([connect({ port: listener.addr.port }), listener.accept()]);
  assert.equal(driver.open, open + 3);
  await client.close();
  await client.close(); // once
  assert.equal(driver.open, open + 2);
  server.abort();
  client.abort(); // after its close: nothing more to forget
  server.abort();
  listener.close();
  assert.equal(driver.open, open);
  // Deferred work that throws: stderr says so, and the next turn runs.
  const lines: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void lines.push(args);
  const bug = new Error("a bug in deferred work");
  try {
    let after = false;
    driver.defer(() => {
      throw bug;
    });
    driver.defer(() => (after = true));
    await pause(5);
    assert.ok(after, "the work deferred after it still ran");
  } finally {
    console.error = original;
  }
  assert.deepEqual(lines, [["zev: internal error (please report it):", bug]]);
});

test("an event handler that throws is reported as zev's own bug, and the loop goes on", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const bug = new Error("a bug in an event handler");
  const onEvent = listener.onEvent;
  listener.onEvent = () => {
    throw bug;
  };
  const lines: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void lines.push(args);
  let client: net.Socket | undefined;
  const accepting = listener.accept(); // the listener hears of connections only while accepting
  try {
    client = net.connect({ port: listener.addr.port, host: "127.0.0.1" });
    await new Promise((r) => client!.once("connect", r));
    for (let i = 0; i < 100 && lines.length === 0; i++) await pause(5);
  } finally {
    console.error = original;
    listener.onEvent = onEvent;
  }
  assert.deepEqual(lines, [["zev: internal error (please report it):", bug]]);
  // The listener missed that event (a bug in zev would leave it so); the loop goes on.
  listener.close();
  await assert.rejects(accepting, Closed);
  client!.destroy();
  const other = listen({ hostname: "127.0.0.1", port: 0 });
  const [c, s] = await within(
    2000,
    "another listener",
    Promise.all([connect({ port: other.addr.port }), other.accept()]),
  );
  await Promise.all([c.close(), s.close()]);
  other.close();
});

test("every event of a crowded poll is dispatched: 64 streams made readable at once all read", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const clients: net.Socket[] = [];
  for (let i = 0; i < 64; i++) {
    const c = net.connect({ port: listener.addr.port, host: "127.0.0.1" });
    await new Promise((r) => c.once("connect", r));
    clients.push(c);
  }
  const servers = [];
  for (let i = 0; i < 64; i++) servers.push(await listener.accept());
  const reads = servers.map((s) => s.read(new Uint8Array(8)));
  await pause(10); // the loop parks with 64 reads pending
  for (const c of clients) c.write("x"); // 64 edges, for one poll or a few
  const got = await within(5000, "64 reads", Promise.all(reads));
  assert.deepEqual(got, new Array(64).fill(1));
  for (const s of servers) s.abort();
  for (const c of clients) c.destroy();
  listener.close();
});

test("onNextTurn runs its function once per turn however often it is asked", async () => {
  let runs = 0;
  const soon = onNextTurn(() => runs++);
  soon();
  soon();
  soon();
  assert.equal(runs, 0, "not before the next turn");
  await pause(5);
  assert.equal(runs, 1);
  soon();
  await pause(5);
  assert.equal(runs, 2, "asked again after it ran: runs again");
});
