/**
 * Cancellation at every call and fairness. A zev call that could complete at once still
 * honours an aborted signal or a pending cancel of its task, before doing anything; a
 * peer that is always ready cannot keep timers and other tasks from running; a task is
 * cancelled once; a deadline fires whatever the task awaits.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { hostname } from "node:os";
import { lookup } from "node:dns/promises";
import {
  call,
  Cancelled,
  Channel,
  Closed,
  connect,
  go,
  listen,
  listenDatagram,
  select,
  sleep,
  stats,
  type Stream,
  supervise,
  type Task,
  TimedOut,
  withDeadline,
  ZevError,
} from "../../mod.ts";
import { readsToReset, tcpPair, text, within } from "../harness/helpers.ts";
import { checkLeaks } from "../harness/leaks.ts";

checkLeaks("cancel");

/** Resolves once `stream` has `n` bytes waiting (reads never block after this). */
async function buffered(stream: Stream, peer: Stream, n: number): Promise<void> {
  await peer.write(new Uint8Array(n).fill(7));
  await sleep(20);
  void stream;
}

const aborted = () => AbortSignal.abort("stop");
const isCancelled = (reason: string) => (e: unknown) =>
  e instanceof Cancelled && e instanceof ZevError && e.code === "Cancelled" && e.reason === reason;

test("an aborted signal rejects read, write, accept and connect that could complete at once", async () => {
  const { listener, client, server } = await tcpPair();
  await buffered(server, client, 10);
  await assert.rejects(server.read(new Uint8Array(4), { signal: aborted() }), isCancelled("stop"));
  // Nothing was consumed: the data is all still there.
  assert.equal(await server.read(new Uint8Array(64)), 10);
  await assert.rejects(client.write(text("x"), { signal: aborted() }), isCancelled("stop"));
  assert.equal(client.closed, false, "a write cancelled before it started leaves the stream usable");

  // A connection is waiting to be accepted; an aborted accept does not take it.
  const c2 = await connect({ port: listener.addr.port });
  await sleep(20);
  await assert.rejects(listener.accept({ signal: aborted() }), isCancelled("stop"));
  const s2 = await within(2000, "the waiting connection", listener.accept());

  // connect with an aborted signal sends no SYN: nothing reaches the listener.
  const accepted = stats().accepted;
  await assert.rejects(connect({ port: listener.addr.port, signal: aborted() }), isCancelled("stop"));
  await sleep(50);
  const late = listener.accept({ signal: AbortSignal.timeout(100) });
  await assert.rejects(late, TimedOut);
  assert.equal(stats().accepted, accepted, "no connection was made");

  for (const s of [client, server, c2, s2]) await s.close();
  listener.close();
});

test("a connect in progress (the listener's backlog is full) is cancelled by its signal and by its task", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0, backlog: 1 });
  const fill: net.Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const c = net.connect({ port: listener.addr.port, host: "127.0.0.1" });
    c.on("error", () => {});
    fill.push(c);
  }
  await sleep(100); // the queue is full: the next SYN goes unanswered
  const ac = new AbortController();
  const pending = connect({ port: listener.addr.port, signal: ac.signal });
  await sleep(50);
  ac.abort("stop");
  await within(2000, "the cancelled connect", assert.rejects(pending, isCancelled("stop")));
  const task = call(() => connect({ port: listener.addr.port }));
  await sleep(50);
  task.cancel("enough");
  await within(2000, "the cancelled task's connect", assert.rejects(task.done, isCancelled("enough")));
  for (const c of fill) c.destroy();
  listener.close();
});

test("a signal aborted while connect resolves a host name sends no SYN", async () => {
  const server = net.createServer();
  let connections = 0;
  server.on("connection", (s) => (connections++, s.destroy()));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  // A name that goes through the resolver (this machine's own name).
  const name = hostname();
  await lookup(name).catch((e) => assert.fail(`this test needs ${name} to resolve: ${e}`));
  const ac = new AbortController();
  const pending = connect({ hostname: name, port, signal: ac.signal });
  ac.abort("changed my mind");
  await assert.rejects(pending, isCancelled("changed my mind"));
  await sleep(50);
  assert.equal(connections, 0);
  server.close();
  // Not cancelled, the same name connects (to a listener on every address).
  const any = listen({ hostname: "0.0.0.0", port: 0 });
  const [client, accepted] = await within(
    5000,
    `connect to ${name}`,
    Promise.all([connect({ hostname: name, port: any.addr.port }), any.accept()]),
  );
  await Promise.all([client.close(), accepted.close()]);
  any.close();
});

test("a task cancelled while busy has its next zev call reject, once; later calls work", async () => {
  const { listener, client, server } = await tcpPair();
  await buffered(server, client, 10);
  let step = "";
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const task = call(async () => {
    // Busy elsewhere (awaiting something that is not a zev wait) when the cancel comes.
    await gate;
    try {
      await server.read(new Uint8Array(4));
      step = "read succeeded";
    } catch (error) {
      assert.ok(error instanceof Cancelled);
      step = "read cancelled";
    }
    // The cancel was delivered: cleanup runs normally.
    assert.equal(await server.read(new Uint8Array(64)), 10);
    await server.write(text("bye"));
    return "cleaned up";
  });
  task.cancel("enough");
  open();
  assert.equal(await task.done, "cleaned up");
  assert.equal(step, "read cancelled");
  for (const s of [client, server]) await s.close();
  listener.close();
});

test("cancel twice: the second does nothing, and the cleanup after the first runs", async () => {
  const ch = new Channel<number>();
  const log: string[] = [];
  const task = call(async () => {
    try {
      await ch.take();
    } catch (error) {
      log.push(`first: ${(error as Cancelled).reason}`);
    }
    await sleep(20); // cleanup that waits in zev
    log.push("cleanup done");
  });
  task.cancel("one");
  await sleep(5);
  task.cancel("two");
  await task.done;
  assert.deepEqual(log, ["first: one", "cleanup done"]);
  assert.equal(task.cancelled, true);
});

test("give, take and select that could complete at once honour an aborted signal and a pending cancel", async () => {
  const ch = new Channel<number>(2);
  await assert.rejects(ch.give(1, { signal: aborted() }), isCancelled("stop"));
  assert.equal(ch.size, 0);
  await ch.give(1);
  await assert.rejects(ch.take({ signal: aborted() }), isCancelled("stop"));
  await assert.rejects(select(ch, { signal: aborted() }), isCancelled("stop"));
  assert.equal(ch.size, 1, "nothing was taken");
  const task = call(async () => {
    await sleep(10);
    return await ch.take();
  });
  task.cancel("no");
  await assert.rejects(task.done, isCancelled("no"));
  assert.equal(await ch.take(), 1);
});

test("a peer that is always ready cannot starve timers: immediate completions are budgeted per turn", async () => {
  const { listener, client, server } = await tcpPair();
  // Several megabytes sit in the kernel's buffers: every read of 512 bytes could
  // complete at once.
  const total = 4 << 20;
  const writing = client.write(new Uint8Array(total));
  await sleep(50);
  let turns = 0, running = true;
  const turn = () => {
    turns++;
    if (running) setImmediate(turn);
  };
  setImmediate(turn);
  let got = 0, reads = 0, longest = 0, run = 0, lastTurn = turns;
  const buf = new Uint8Array(512);
  while (got < total) {
    got += (await server.read(buf))!;
    reads++;
    if (turns === lastTurn) run++;
    else (lastTurn = turns), (run = 1);
    longest = Math.max(longest, run);
  }
  running = false;
  await writing;
  assert.ok(reads > 4000, `${reads} reads`);
  // The budget is 1024 per turn, plus 2 per event dispatched in that turn.
  assert.ok(longest <= 2048, `${longest} of ${reads} reads in a row without a macrotask turn`);
  for (const s of [client, server]) await s.close();
  listener.close();
});

test("a busy channel producer and consumer let timers run", async () => {
  const ch = new Channel<number>(1 << 16);
  for (let i = 0; i < 100_000 && ch.size < ch.capacity; i++) await ch.give(i);
  let fired = false;
  setTimeout(() => (fired = true), 0);
  let taken = 0;
  while (ch.size > 0 && !fired) {
    await ch.take();
    taken++;
  }
  assert.ok(fired, `the timer never fired while ${taken} items were taken`);
  assert.ok(ch.size > 0, "the timer fired before the channel ran dry");
});

test("withDeadline around a busy read loop fires, and cancels it", async () => {
  const { listener, client, server } = await tcpPair();
  const flood = (async () => {
    const chunk = new Uint8Array(1 << 16);
    try {
      for (;;) await client.write(chunk);
    } catch {
      // closed below
    }
  })();
  const buf = new Uint8Array(512);
  let reads = 0;
  await assert.rejects(
    withDeadline(100, async () => {
      for (;;) {
        await server.read(buf);
        reads++;
      }
    }),
    TimedOut,
  );
  assert.ok(reads > 0);
  client.abort();
  await flood;
  await server.close();
  listener.close();
});

test("withDeadline in a task whose cancel is pending rejects with that cancel and never starts its function", async () => {
  let started = false;
  const task: Task<number> = go(async () => {
    task.cancel("stop"); // while running: pending until the task's next wait
    return await withDeadline(1000, () => {
      started = true;
      return 1;
    });
  });
  await assert.rejects(task.done, (e: unknown) => e instanceof Cancelled && e.reason === "stop");
  await sleep(20);
  assert.equal(started, false);
});

test("withDeadline rejects at its deadline whatever the task awaits (a plain timer here)", async () => {
  let timerFired = false;
  const started = Date.now();
  const outcome = await withDeadline(50, async () => {
    await new Promise((r) => setTimeout(r, 400)).then(() => (timerFired = true));
    return "late";
  }).catch((e) => e);
  assert.ok(outcome instanceof TimedOut, `got ${outcome}`);
  assert.equal(timerFired, false, "the deadline rejected before the task's timer fired");
  assert.ok(Date.now() - started < 400);
  await sleep(400); // let the task finish before the leak check
});

test("no error is lost: a child of a withDeadline task reports to the inherited supervisor, and so does a late failure", async () => {
  const seen: string[] = [];
  await supervise((e) => seen.push((e as Error).message), async () => {
    await withDeadline(1000, async () => {
      // deno-lint-ignore require-await
      call(async () => {
        throw new Error("child failed");
      });
      await sleep(10);
    });
    // A task that fails after its deadline passed: nobody waits for it but its supervisor.
    await withDeadline(20, async () => {
      try {
        await sleep(500);
      } catch {
        throw new Error("failed after the deadline");
      }
    }).catch(() => {});
    await sleep(30);
  }).done;
  assert.deepEqual(seen.sort(), ["child failed", "failed after the deadline"]);
});

/**
 * A signal that never aborts, with the abort listeners on it counted: those tied now
 * (`live`) and all ever tied (`tied`).
 */
function watchedSignal(): { signal: AbortSignal; live: Set<unknown>; readonly tied: number } {
  const signal = new AbortController().signal;
  const live = new Set<unknown>();
  let tied = 0;
  const add = signal.addEventListener.bind(signal), remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = ((
    ...args: Parameters<typeof add>
  ) => (args[0] === "abort" && (tied++, live.add(args[1])), add(...args))) as typeof add;
  signal.removeEventListener = ((
    ...args: Parameters<typeof remove>
  ) => (args[0] === "abort" && live.delete(args[1]), remove(...args))) as typeof remove;
  return {
    signal,
    live,
    get tied() {
      return tied;
    },
  };
}

test("a wait ended by its task's cancel lets go of its signal: no listener is left on a long-lived signal", async () => {
  // A server-wide signal outlives every wait: count the listeners zev leaves on it.
  const { signal, live } = watchedSignal();
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([connect({ port: listener.addr.port }), listener.accept()]);
  client.setWriteQueueLimit(1);
  const big = new Uint8Array(64 << 20); // more than the kernel takes: the write waits
  const tasks = [
    call(() => listener.accept({ signal })),
    call(() => sleep(10_000, { signal })),
    call(() => client.read(new Uint8Array(16), { signal })), // the server writes nothing
    call(() => client.write(big, { signal })),
    call(() => new Channel<number>().take({ signal })),
  ];
  await sleep(20);
  assert.equal(live.size, tasks.length, `${live.size} of the waits tied themselves to the signal`);
  for (const t of tasks) t.cancel();
  for (const t of tasks) await assert.rejects(t.done, Cancelled);
  assert.equal(live.size, 0, `${live.size} abort listeners left on the signal`);
  await Promise.all([client.close({ timeout: 0 }), server.close()]);
  listener.close();
});

test("a wait that completes lets go of its signal too: accept, read, write, sleep, take, give, receive, select", async () => {
  const watched = watchedSignal();
  const { signal, live } = watched;
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = listener.accept({ signal });
  const client = await connect({ port: listener.addr.port, signal });
  const server = await accepting;
  const reading = server.read(new Uint8Array(16), { signal });
  client.setWriteQueueLimit(1);
  const writing = client.write(new Uint8Array(8 << 20), { signal }); // waits for the peer
  const ch = new Channel<number>(0);
  const taking = ch.take({ signal });
  const other = new Channel<number>(0);
  const giving = other.give(7, { signal });
  const picked = new Channel<number>(0);
  const selecting = select(new Channel<number>(0), picked, { signal });
  const udp = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  const receiving = udp.receive(new Uint8Array(8), { signal });
  const sleeping = sleep(5, { signal });
  await sleep(20);
  assert.equal(
    watched.tied,
    9,
    "each of the nine waits (accept, connect, read, write, take, give, select, receive, sleep) tied itself to the signal",
  );
  // Each completes on its own.
  const sink = new Uint8Array(1 << 16);
  let got = (await reading) ?? 0;
  while (got < (8 << 20)) got += (await server.read(sink)) ?? 0;
  await Promise.all([writing, sleeping]);
  await ch.give(1);
  assert.equal(await other.take(), 7);
  await giving;
  await picked.give(3);
  await udp.send(text("x"), { port: udp.addr.port });
  await Promise.all([taking, selecting, receiving]);
  assert.equal(live.size, 0, `${live.size} abort listeners left on the signal by waits that completed`);
  udp.close();
  await Promise.all([client.close(), server.close()]);
  listener.close();
});

test("a cancel that was never delivered ends with its task: later work in its context is not cancelled", async () => {
  let later: Promise<void> | undefined;
  const t = call(async () => {
    await new Promise((resolve) => setTimeout(resolve, 20)); // not a zev wait: the cancel stays pending
    setTimeout(() => (later = sleep(1)), 30); // runs in the task's context, after it ended
    return "done";
  });
  t.cancel("too late to matter");
  assert.equal(await t.done, "done");
  await sleep(60);
  assert.ok(later, "the timer ran");
  await later; // rejected with the stale Cancelled before the fix
});

test("a connect cancelled during its host name lookup rejects with Cancelled at once, not with the lookup's result", async () => {
  const controller = new AbortController();
  const pending = connect({ hostname: "zev-cancel-test.invalid", port: 80, signal: controller.signal });
  controller.abort("changed my mind");
  await assert.rejects(pending, (e: unknown) => e instanceof Cancelled && e.reason === "changed my mind");
  const task = call(() => connect({ hostname: "zev-cancel-test.invalid", port: 80 }));
  task.cancel("stop");
  await assert.rejects(task.done, (e: unknown) => e instanceof Cancelled && e.reason === "stop");
});

test("a write cancelled after part of it was sent resets the stream (the peer must not read a cut message as whole)", async () => {
  const { listener, client, server } = await tcpPair();
  const controller = new AbortController();
  const writing = client.write(new Uint8Array(32 << 20), { signal: controller.signal });
  await sleep(20); // the peer reads nothing: part of it is in the kernel, the rest waits
  controller.abort("cut");
  await assert.rejects(writing, isCancelled("cut"));
  assert.equal(client.closed, true, "the stream was reset");
  await readsToReset(server);
  await server.close();
  listener.close();
});

test("closeWrite waiting behind writes that are then cancelled goes on (the FIN follows the bytes sent)", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([connect({ port: listener.addr.port }), listener.accept()]);
  // In one turn, more writes than the turn's budget: the rest wait for the next turn,
  // with no byte taken and nothing asked of the kernel.
  const controller = new AbortController();
  const one = new Uint8Array([7]);
  const writes = Array.from({ length: 1500 }, () => client.write(one, { signal: controller.signal }));
  const closing = client.closeWrite();
  controller.abort("never mind");
  const results = await Promise.allSettled(writes);
  const sent = results.filter((r) => r.status === "fulfilled").length;
  assert.ok(sent > 0 && sent < writes.length, `${sent} of ${writes.length} writes completed before the cancel`);
  for (const r of results.slice(sent)) assert.ok(r.status === "rejected" && r.reason instanceof Cancelled);
  await within(1000, "closeWrite after its last writers were cancelled", closing);
  // The peer gets every byte of the writes that completed, then the end of stream.
  const buf = new Uint8Array(4096);
  let got = 0;
  for (let n; (n = await within(5000, "the peer reads to the end", server.read(buf))) !== null;) got += n;
  assert.equal(got, sent);
  await Promise.all([client.close(), server.close()]);
  listener.close();
});

test("withDeadline: the caller gets its task's error and the supervisor does not; arguments and the deadline to the letter", async () => {
  const seen: unknown[] = [];
  const failure = new Error("the task's own");
  await supervise((e) => void seen.push(e), async () => {
    await assert.rejects(
      withDeadline(1000, async () => {
        await sleep(1);
        throw failure;
      }),
      (e: unknown) => e === failure,
    );
  }).done;
  await sleep(5);
  assert.deepEqual(seen, [], "the error went to the caller only");
  await assert.rejects(withDeadline(-1, () => 1), {
    name: "RangeError",
    message: "withDeadline: invalid duration -1: expected milliseconds from 0 to 2147483647",
  });
  await assert.rejects(withDeadline(5, 5 as never), {
    name: "TypeError",
    message: "withDeadline: fn must be a function",
  });
  await assert.rejects(withDeadline(10, () => sleep(1000)), (e: unknown) => {
    assert.ok(e instanceof TimedOut, String(e));
    assert.equal(e.message, "deadline of 10 ms exceeded");
    return true;
  });
  assert.equal(await withDeadline(1000, (a: number, b: number) => a + b, 2, 3), 5, "arguments are passed on");
});

test("closeWrite waiting behind writes the peer holds back is cancelled by its task and by its signal", async () => {
  const { listener, client, server } = await tcpPair();
  client.setWriteQueueLimit(1);
  // The peer reads nothing: the write waits, and closeWrite behind it.
  const writing = client.write(new Uint8Array(32 << 20)).catch((e) => e);
  await sleep(20);
  const task = call(() => client.closeWrite());
  await sleep(20);
  task.cancel("stop");
  await assert.rejects(within(1000, "closeWrite after its task's cancel", task.done), isCancelled("stop"));
  const controller = new AbortController();
  const closing = client.closeWrite({ signal: controller.signal });
  await sleep(20);
  controller.abort("enough");
  await assert.rejects(within(1000, "closeWrite after its signal aborted", closing), isCancelled("enough"));
  await assert.rejects(client.closeWrite({ signal: aborted() }), isCancelled("stop"));
  await assert.rejects(client.closeWrite(7 as never), /closeWrite: options must be an object, not 7/);
  // The write it waited behind goes on, and later writes are still refused.
  assert.equal(client.closed, false);
  await assert.rejects(client.write(text("x")), /write side is closed/);
  client.abort();
  assert.ok((await writing) instanceof ZevError);
  await server.close();
  listener.close();
});

test("close waiting for queued bytes is cancelled by its task and by its signal: the stream is reset and released at once", async () => {
  for (const how of ["task", "signal"] as const) {
    const { listener, client, server } = await tcpPair();
    client.setWriteQueueLimit(64 << 20);
    await client.write(new Uint8Array(32 << 20)); // resolves with most of it queued: the peer reads nothing
    const live = stats().liveHandles;
    const controller = new AbortController();
    const task = call(() => client.close({ timeout: 10_000, signal: controller.signal }));
    await sleep(20);
    if (how === "task") task.cancel("shutdown now");
    else controller.abort("shutdown now");
    await assert.rejects(within(1000, `close after its ${how}'s cancel`, task.done), isCancelled("shutdown now"));
    assert.equal(client.closed, true);
    assert.equal(stats().liveHandles, live - 1, "the handle was released");
    await readsToReset(server);
    await server.close();
    listener.close();
  }
});

test("readFull cancelled by its task rejects with that Cancelled, saying how many bytes it had read", async () => {
  const { listener, client, server } = await tcpPair();
  const buf = new Uint8Array(8);
  const task = call(() => server.readFull(buf));
  await client.write(text("abc"));
  await sleep(20);
  task.cancel("stop");
  await assert.rejects(task.done, (e: unknown) => {
    assert.ok(isCancelled("stop")(e), String(e));
    assert.match((e as Error).message, /^readFull from 127\.0\.0\.1:\d+: 3 of 8 bytes read, then cancelled: stop$/);
    assert.equal((e as Cancelled & { bytesRead: number }).bytesRead, 3);
    return true;
  });
  assert.equal(new TextDecoder().decode(buf.subarray(0, 3)), "abc");
  await Promise.all([client.close(), server.close()]);
  listener.close();
});

test("close waiting behind a write it did not await: the task's cancel, or an abort, rejects the close; it never resolves as if all was sent", async () => {
  for (const how of ["cancel", "abort"] as const) {
    const { listener, client, server } = await tcpPair();
    const task = call(async () => {
      client.write(new Uint8Array(32 << 20)).catch(() => {}); // not awaited; the peer reads nothing
      await client.close();
    });
    await sleep(50);
    if (how === "cancel") task.cancel("stop");
    else client.abort();
    await assert.rejects(
      within(2000, `close after ${how}`, task.done),
      how === "cancel"
        ? (e: unknown) => e instanceof Cancelled && e.reason === "stop"
        : (e: unknown) => e instanceof Closed && /: the stream was reset before its queue was sent$/.test(e.message),
    );
    assert.equal(client.closed, true);
    await server.close();
    listener.close();
  }
});

test("AbortSignal.timeout(ms) is a deadline: the wait rejects with TimedOut, the signal's reason as its cause", async () => {
  const { listener, client, server } = await tcpPair();
  const error = await server.read(new Uint8Array(8), { signal: AbortSignal.timeout(30) }).catch((e) => e);
  assert.ok(error instanceof TimedOut, String(error));
  assert.equal((error.cause as Error).name, "TimeoutError");
  // Aborted already when the call comes: the same.
  const signal = AbortSignal.timeout(1);
  await new Promise((r) => setTimeout(r, 20));
  await assert.rejects(
    sleep(1000, { signal }),
    (e: unknown) => e instanceof TimedOut && (e.cause as Error).name === "TimeoutError",
  );
  // Any other reason is a cancel.
  const controller = new AbortController();
  controller.abort("stop");
  await assert.rejects(
    server.read(new Uint8Array(8), { signal: controller.signal }),
    (e: unknown) => e instanceof Cancelled && e.reason === "stop",
  );
  await Promise.all([client.close(), server.close()]);
  listener.close();
});
