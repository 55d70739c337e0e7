/**
 * Tasks, supervisors, cancellation, deadlines and channels. A cancelled wait rejects
 * with `Cancelled` naming the reason; what it leaves behind (a usable stream, a usable
 * listener, a closed stream after a partial write) is what the docs say.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  acceptLoop,
  call,
  Cancelled,
  Channel,
  Closed,
  connect,
  go,
  listen,
  select,
  setDefaultSupervisor,
  sleep,
  stats,
  type Stream,
  supervise,
  type Task,
  TimedOut,
  withDeadline,
} from "../../mod.ts";
import { requestOnce, tcpPair, text, within } from "../harness/helpers.ts";
import { pendingCancelCount } from "../../src/tasks/task.ts";
import { checkLeaks } from "../harness/leaks.ts";

const decode = (b: Uint8Array) => new TextDecoder().decode(b);

checkLeaks("task");

test("go starts on a later turn, call at once, and both report results", async () => {
  const order: string[] = [];
  const a = go((x: number) => (order.push("go"), x * 2), 21);
  // deno-lint-ignore require-await
  const b = call(async (s: string) => (order.push("call"), s), "ok");
  order.push("caller");
  assert.deepEqual(await Promise.all([a.done, b.done]), [42, "ok"]);
  assert.deepEqual(order, ["call", "caller", "go"]);
});

test("an error in a task goes to its supervisor, inherited by the tasks it starts", async () => {
  const seen: string[] = [];
  const parent = supervise((error) => seen.push((error as Error).message), async () => {
    const child = go(async () => {
      await sleep(1);
      throw new Error("child failed");
    });
    await child.done.catch(() => {});
    throw new Error("parent failed");
  });
  await assert.rejects(parent.done, /parent failed/);
  assert.deepEqual(seen, ["child failed", "parent failed"]);
  // An unobserved failing task does not become an unhandled rejection.
  supervise(() => {}, () => Promise.reject(new Error("ignored")));
  await sleep(5);
});

test("cancel while waiting in read: Cancelled with the reason; the stream stays usable", async () => {
  const { listener, client, server } = await tcpPair();
  const buf = new Uint8Array(16);
  const task = go(() => server.read(buf));
  await sleep(10);
  task.cancel("shutting down");
  await assert.rejects(
    task.done,
    (e: unknown) =>
      e instanceof Cancelled && e.reason === "shutting down" && /shutting down/.test((e as Error).message),
  );
  assert.ok(task.signal.aborted);
  await client.write(text("after"));
  assert.equal(decode(await server.readFull(new Uint8Array(5))), "after", "no byte was lost to the cancelled read");
  await Promise.all([client.close(), server.close()]);
  listener.close();
});

test("cancel while waiting in write: Cancelled; the stream is closed (its byte stream was cut)", async () => {
  const { listener, client, server } = await tcpPair();
  const big = new Uint8Array(64 << 20);
  const task = go(() => client.write(big)); // the peer never reads: this write waits
  await sleep(50);
  task.cancel(new Error("too slow"));
  await assert.rejects(task.done, (e: unknown) => e instanceof Cancelled && /too slow/.test((e as Error).message));
  assert.ok(client.closed);
  await assert.rejects(client.write(text("x")), Closed);
  await server.close();
  listener.close();
});

test("cancel while waiting in accept and in sleep; a cancel before the wait lands at the wait", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const acceptTask = go(() => listener.accept());
  const sleepTask = go(() => sleep(60_000));
  await sleep(10);
  acceptTask.cancel("stop accepting");
  sleepTask.cancel("wake up");
  await assert.rejects(acceptTask.done, /stop accepting/);
  await assert.rejects(sleepTask.done, /wake up/);
  // The listener is still usable.
  const c = connect({ port: listener.addr.port });
  const s = await listener.accept();
  await (await c).close();
  await s.close();
  // Cancelled before it waits (busy in non-zev code): the next wait rejects.
  const late = call(async () => {
    for (let i = 0; i < 1e5; i++);
    await Promise.resolve();
    await sleep(60_000);
  });
  late.cancel("early");
  await assert.rejects(late.done, /early/);
  listener.close();
});

test("AbortSignal cancels read, accept, sleep and connect the same way", async () => {
  const { listener, client, server } = await tcpPair();
  // A listener that accepts nothing with a backlog of 1: once it holds two connections,
  // the kernel drops further SYNs, and a connect waits.
  const full = listen({ hostname: "127.0.0.1", port: 0, backlog: 1 });
  const held = [await connect({ port: full.addr.port }), await connect({ port: full.addr.port })];
  const ac = new AbortController();
  const connecting = connect({ port: full.addr.port, signal: ac.signal });
  await sleep(20);
  const waits = [
    server.read(new Uint8Array(4), { signal: ac.signal }),
    listener.accept({ signal: ac.signal }),
    sleep(60_000, { signal: ac.signal }),
    connecting,
  ];
  ac.abort("enough");
  for (const w of waits) await assert.rejects(w, (e: unknown) => e instanceof Cancelled && e.reason === "enough");
  await assert.rejects(sleep(1, { signal: ac.signal }), Cancelled, "an aborted signal rejects at once");
  await client.write(text("still"));
  assert.equal(decode(await server.readFull(new Uint8Array(5))), "still");
  await Promise.all([client.close(), server.close(), ...held.map((s) => s.close())]);
  listener.close();
  full.close();
});

test("a read timeout rejects with TimedOut and leaves the stream usable", async () => {
  const { listener, client, server } = await tcpPair();
  await assert.rejects(
    server.read(new Uint8Array(4), { timeout: 20 }),
    (e: unknown) => e instanceof TimedOut && /20 ms/.test((e as Error).message),
  );
  await client.write(text("late"));
  assert.equal(decode(await server.readFull(new Uint8Array(4))), "late");
  await Promise.all([client.close(), server.close()]);
  listener.close();
});

test("withDeadline cancels a slow task with TimedOut and passes a fast one through", async () => {
  const { listener, client, server } = await tcpPair();
  await assert.rejects(
    withDeadline(30, () => server.read(new Uint8Array(4))),
    (e: unknown) => e instanceof TimedOut && /30 ms/.test((e as Error).message),
  );
  assert.equal(await withDeadline(1000, async (x: number) => (await sleep(1), x + 1), 1), 2);
  await assert.rejects(withDeadline(1000, () => Promise.reject(new Error("own error"))), /own error/);
  await assert.rejects(withDeadline(-5, () => 1), /invalid duration -5/);
  await Promise.all([client.close(), server.close()]);
  listener.close();
});

test("channels: bounded give and take, select, close, cancellation", async () => {
  const ch = new Channel<number>(2);
  await ch.give(1);
  await ch.give(2);
  assert.equal(ch.size, 2);
  const third = ch.give(3); // full: waits
  assert.equal(await ch.take(), 1);
  await third;
  assert.deepEqual([await ch.take(), await ch.take()], [2, 3]);

  const a = new Channel<string>(), b = new Channel<string>();
  const picked = select(a, b);
  await b.give("from b");
  const [from, value] = await picked;
  assert.equal(from, b);
  assert.equal(value, "from b");
  assert.equal(a.size, 0);

  const t = go(() => a.take());
  await sleep(5);
  t.cancel("no more");
  await assert.rejects(t.done, /no more/);
  const waiting = a.take();
  a.close();
  await assert.rejects(waiting, Closed);
  await assert.rejects(a.give("x"), Closed);
  assert.throws(() => new Channel(-1), /invalid capacity/);
});

test("timers keep running while the loop is busy", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const loop = acceptLoop(listener, async (stream: Stream) => {
    const buf = new Uint8Array(1024);
    for (let n; (n = await stream.read(buf)) !== null;) await stream.write(buf.subarray(0, n));
  });
  let ticks = 0, last = Date.now(), longestGap = 0;
  const timer = setInterval(() => {
    ticks++;
    longestGap = Math.max(longestGap, Date.now() - last);
    last = Date.now();
  }, 10);
  const started = Date.now();
  let requests = 0;
  while (Date.now() - started < 500) {
    await Promise.all(Array.from({ length: 20 }, () => requestOnce(listener.addr.port, text("load"))));
    requests += 20;
  }
  clearInterval(timer);
  // Starvation shows as a gap as long as the load; a 10 ms timer under load on a shared
  // machine may slip, but not by hundreds of milliseconds.
  assert.ok(
    ticks > 0 && longestGap < 250,
    `timer: ${ticks} ticks, longest gap ${longestGap} ms during ${requests} requests`,
  );
  listener.close();
  await loop;
});

test("no cancel outlives its task: delivered, dropped with a task that ends, or met on entry by withDeadline", async () => {
  const before = pendingCancelCount();
  // Delivered at the task's next wait.
  const delivered: Task<void> = go(async () => {
    delivered.cancel("stop");
    assert.equal(pendingCancelCount(), before + 1, "a cancel of a busy task waits for its next wait");
    await sleep(1);
  });
  await assert.rejects(delivered.done, Cancelled);
  // Dropped: the task ends without waiting again.
  const dropped: Task<void> = go(() => {
    dropped.cancel("stop");
  });
  await dropped.done;
  // Met on entry by withDeadline, whose own task never starts.
  const deadline: Task<number> = go(async () => {
    deadline.cancel("stop");
    return await withDeadline(1000, () => 1);
  });
  await assert.rejects(deadline.done, Cancelled);
  // A task that has finished takes no cancel at all.
  const finished = go(() => 1);
  await finished.done;
  finished.cancel("too late");
  dropped.cancel("too late");
  assert.equal(pendingCancelCount(), before);
});

test("done is one promise per task; a thenable that rejects fails its task", async () => {
  const task = go(async () => {
    await sleep(1);
    return 5;
  });
  const first = task.done;
  assert.equal(task.done, first, "the same promise every time");
  assert.equal(await within(2000, "the first done", first), 5);
  // A PromiseLike that is not a Promise (as some libraries return).
  const rejecting = {
    then: (_: unknown, reject: (e: unknown) => void) => reject(new Error("a thenable that rejects")),
  };
  const thenable = supervise(() => {}, () => rejecting as unknown as PromiseLike<never>);
  await assert.rejects(thenable.done, /a thenable that rejects/);
});

test("a task waiting on two things at once is cancelled out of the one still pending, after the other ended", async () => {
  const a = await tcpPair(), b = await tcpPair();
  const task = call(() => Promise.all([a.server.read(new Uint8Array(8)), b.server.read(new Uint8Array(8))]));
  await sleep(10);
  await b.client.write(text("x")); // the second wait ends; the first still waits
  await sleep(10);
  task.cancel("stop");
  await within(2000, "the cancel reaches the wait still pending", assert.rejects(task.done, Cancelled));
  for (const p of [a, b]) {
    await Promise.all([p.client.close(), p.server.close()]);
    p.listener.close();
  }
});

test("a cancel pending in one task is not taken by calls from outside tasks or from another task", async () => {
  const ch = new Channel<number>(4);
  await ch.give(1);
  await ch.give(2);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const cancelled: Task<number> = go(async () => {
    cancelled.cancel("stop"); // pending: this task is running
    await gate.then(() => {}); // not a zev wait: the cancel stays pending
    return await ch.take(); // could complete at once: the pending cancel must win
  });
  await sleep(5);
  await ch.give(3); // a zev call outside every task (it looks for a pending cancel)
  await call(() => ch.give(4)).done; // and one in another task
  release();
  await within(2000, "the pending cancel lands", assert.rejects(cancelled.done, Cancelled));
  assert.equal(ch.size, 4, "the cancelled take took nothing");
});

test("go, call, supervise and setDefaultSupervisor check their arguments by name, before any task exists", () => {
  assert.throws(() => go(undefined as never), /^TypeError: go: fn must be a function, not undefined$/);
  assert.throws(() => call(123 as never), /^TypeError: call: fn must be a function, not 123$/);
  assert.throws(
    () => supervise("x" as never, () => 1),
    /^TypeError: supervise: supervisor must be a function or a Channel \(an object with give\), not "x"$/,
  );
  assert.throws(() => supervise(null as never, () => 1), /supervise: supervisor must be .*, not null$/);
  assert.throws(() => supervise(() => {}, {} as never), /^TypeError: supervise: fn must be a function, not an object$/);
  assert.throws(() => setDefaultSupervisor(5 as never), /setDefaultSupervisor: supervisor must be .*, not 5$/);
  assert.equal(pendingCancelCount(), 0);
});

test("sleep checks its options; a bad signal leaves no wait behind, so the task's cancel still lands", async () => {
  await assert.rejects(sleep(10, "fast" as never), /^TypeError: sleep: options must be an object, not "fast"$/);
  await assert.rejects(
    sleep(10, { signal: { aborted: true } as never }),
    /^TypeError: sleep: options.signal must be an AbortSignal$/,
  );
  const task = go(async () => {
    await assert.rejects(sleep(10, { signal: {} as never }), TypeError);
    await sleep(10_000); // the cancel below must reach this wait
  });
  await sleep(5);
  task.cancel("stop");
  await assert.rejects(
    within(2000, "the cancelled sleep", task.done),
    (e: unknown) => e instanceof Cancelled && e.reason === "stop",
  );
});

test("a reason with no string form still cancels: the wait rejects, and the task's cancel is not lost", async () => {
  const odd = Object.create(null);
  const controller = new AbortController();
  const sleeping = sleep(10_000, { signal: controller.signal });
  controller.abort(odd);
  await assert.rejects(
    within(2000, "the aborted sleep", sleeping),
    (e: unknown) => e instanceof Cancelled && e.reason === odd,
  );
  const task = go(() => sleep(10_000));
  await sleep(5);
  task.cancel(odd);
  await assert.rejects(
    within(2000, "the cancelled task", task.done),
    (e: unknown) => e instanceof Cancelled && /^cancelled: \[object Object\]$/.test(e.message),
  );
});

test("stats() counts tasks and zev's timers while they run, and none once they ended, however they ended", async () => {
  const before = stats();
  const check = (what: string, tasks: number, timers: number) => {
    const now = stats();
    assert.equal(now.tasks - before.tasks, tasks, `${what}: tasks`);
    assert.equal(now.timers - before.timers, timers, `${what}: timers`);
  };
  // A sleep that ends, one cancelled, one whose signal aborts.
  const slept = go(() => sleep(5));
  const cancelled = go(() => sleep(60_000));
  const controller = new AbortController();
  const aborted = sleep(60_000, { signal: controller.signal });
  await sleep(1);
  check("three sleeps (the test's own has ended)", 2, 3);
  cancelled.cancel();
  controller.abort();
  await assert.rejects(aborted);
  await assert.rejects(cancelled.done);
  await slept.done;
  check("all ended", 0, 0);
  // withDeadline: done in time, past its deadline, cancelled by its caller.
  assert.equal(await withDeadline(1000, () => 1), 1);
  await assert.rejects(withDeadline(5, () => sleep(60_000)), TimedOut);
  const caller = go(() => withDeadline(60_000, () => sleep(60_000)));
  await sleep(1);
  check("a deadline and its sleep", 2, 2);
  caller.cancel();
  await assert.rejects(caller.done);
  await sleep(1);
  check("deadlines ended", 0, 0);
});
