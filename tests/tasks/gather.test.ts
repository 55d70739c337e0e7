/**
 * `gather` (Janet's `ev/gather`) and channels as supervisors (Janet's supervisor
 * channels): results in order, the first failure cancels the rest, and every task end
 * reaches a channel supervisor as one event.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  acceptLoop,
  call,
  Cancelled,
  Channel,
  connect,
  currentTask,
  gather,
  go,
  listen,
  sleep,
  supervise,
  type Task,
  type TaskEvent,
  withDeadline,
} from "../../mod.ts";
import { checkLeaks } from "../harness/leaks.ts";

checkLeaks("gather");

test("gather resolves with every result in order; gather() is []", async () => {
  assert.deepEqual(await gather(), []);
  const [a, b, c] = await gather(
    async () => (await sleep(20), "slow"),
    () => "at once",
    async () => (await sleep(5), 3),
  );
  assert.deepEqual([a, b, c], ["slow", "at once", 3]);
  await assert.rejects(gather((() => 1) as never, 5 as never), /gather: argument 1 must be a function, not 5/);
});

test("gather: the first failure cancels the others and, once they have ended, rejects with it; a later error is attached to it", async () => {
  const cancelled: string[] = [];
  const reported: unknown[] = [];
  let caught: unknown;
  await supervise((e) => reported.push(e), async () => {
    caught = await gather(
      async () => {
        await sleep(10);
        throw new Error("first");
      },
      async () => {
        try {
          await sleep(10_000);
        } catch (error) {
          cancelled.push((error as Cancelled).message);
          throw new Error("failed while cancelled");
        }
      },
      async () => {
        try {
          await sleep(10_000);
        } catch (error) {
          if (error instanceof Cancelled) cancelled.push("third");
          throw error;
        }
      },
    ).catch((e) => e);
    await sleep(10);
  }).done;
  assert.match(String(caught), /first/);
  // Both others had ended before it rejected: the gather left nothing running.
  assert.equal(cancelled.length, 2);
  assert.match(cancelled[0], /cancelled: first/);
  assert.deepEqual((caught as { suppressed: Error[] }).suppressed.map((e) => e.message), ["failed while cancelled"]);
  assert.deepEqual(reported, []);
});

test("a channel supervisor receives one event per task end: ok, error, cancelled", async () => {
  const events = new Channel<TaskEvent>(16);
  const parent = supervise(events, async () => {
    go(function fine() {
      return 42;
    });
    go(async function broken() {
      await sleep(1);
      throw new Error("bad");
    });
    const stuck = go(async function stuck() {
      await sleep(10_000);
    });
    await sleep(10);
    stuck.cancel("stop");
    return "parent";
  });
  await parent.done;
  const seen = new Map<string, TaskEvent>();
  for (let i = 0; i < 4; i++) {
    const e = await events.take();
    seen.set(e.task.name, e);
  }
  assert.equal(seen.get("fine")?.kind, "ok");
  assert.equal(seen.get("fine")?.value, 42);
  assert.equal(seen.get("broken")?.kind, "error");
  assert.equal((seen.get("broken")?.error as Error).message, "bad");
  assert.equal(seen.get("stuck")?.kind, "cancelled");
  assert.ok(seen.get("stuck")?.error instanceof Cancelled);
  assert.equal(seen.get("")?.kind ?? seen.get("anonymous")?.kind, "ok");
});

test("acceptLoop with a channel supervisor: one event per connection handler", async () => {
  const events = new Channel<TaskEvent>(8);
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const loop = acceptLoop(listener, async function handler(stream) {
    const n = await stream.read(new Uint8Array(8));
    if (n === 1) throw new Error("one byte is not enough");
    return n;
  }, { supervisor: events });
  for (const payload of ["x", "xyz"]) {
    const c = await connect({ port: listener.addr.port });
    await c.write(new TextEncoder().encode(payload));
    await c.close();
  }
  const kinds = [(await events.take()).kind, (await events.take()).kind].sort();
  assert.deepEqual(kinds, ["error", "ok"]);
  listener.close();
  await loop;
});

test("cancelling the task that awaits gather or withDeadline cancels their tasks", async () => {
  const ended: string[] = [];
  const work = (name: string) => async () => {
    try {
      await sleep(10_000);
    } catch (error) {
      ended.push(`${name}: ${error instanceof Cancelled ? `cancelled (${error.reason})` : String(error)}`);
      throw error;
    }
  };
  const gathering = go(() => gather(work("a"), work("b")));
  const deadline = go(() => withDeadline(10_000, work("c")));
  await sleep(20);
  gathering.cancel("stop");
  deadline.cancel("stop");
  await assert.rejects(gathering.done, Cancelled);
  await assert.rejects(deadline.done, Cancelled);
  await sleep(0);
  assert.deepEqual(ended.sort(), [
    "a: cancelled (stop)",
    "b: cancelled (stop)",
    "c: cancelled (stop)",
  ]);
});

test("gather in a task whose cancel is pending rejects with that cancel and starts nothing", async () => {
  let started = 0;
  const task: Task<[number, number]> = go(async () => {
    task.cancel("stop"); // while running: pending until the task's next wait
    return await gather(() => started++, () => started++);
  });
  await assert.rejects(task.done, (e: unknown) => e instanceof Cancelled && e.reason === "stop");
  await sleep(20);
  assert.equal(started, 0);
});

test("a channel supervisor gets the ok events of gather's and withDeadline's tasks too", async () => {
  const events = new Channel<TaskEvent>(16);
  const t = supervise(events, async () => {
    await gather(() => 1, async () => (await sleep(1), 2));
    await withDeadline(1000, () => 3);
  });
  await t.done;
  const got: string[] = [];
  while (events.size > 0) {
    const e = await events.take();
    got.push(`${e.kind}:${String(e.value)}`);
  }
  assert.deepEqual(got.sort(), ["ok:1", "ok:2", "ok:3", "ok:undefined"]);
});

test("a supervisor channel nobody drains holds at most 1024 events; the rest go to stderr, none silently", async () => {
  const events = new Channel<TaskEvent>(0);
  const printed: string[] = [];
  const error = console.error;
  console.error = (...args: unknown[]) => void printed.push(args.map(String).join(" "));
  try {
    const tasks = Array.from({ length: 1030 }, (_, i) => supervise(events, () => i));
    await Promise.all(tasks.map((t) => t.done));
    await sleep(10);
    assert.equal(printed.length, 6, printed.slice(0, 3).join("\n"));
    assert.match(
      printed[0],
      /^zev: the supervisor channel of task .* has 1024 events waiting for room; its ok event: \d+$/,
    );
    // The 1024 that waited are all delivered, in order, once someone takes.
    const first = await events.take();
    assert.equal(first.kind, "ok");
    assert.equal(first.value, 0);
    for (let i = 1; i < 1024; i++) assert.equal((await events.take()).value, i);
    // Room again: the next event waits instead of going to stderr.
    await supervise(events, () => "after").done;
    await sleep(10);
    assert.equal(printed.length, 6);
    assert.equal((await events.take()).value, "after");
  } finally {
    console.error = error;
  }
});

test("gather: tasks that fail in the same turn as the first lose no error; a function that throws at once starts no other", async () => {
  const reported: string[] = [];
  let ranAfterThrow = false;
  await supervise((e) => reported.push((e as Error).message), async () => {
    const a = await gather(() => Promise.reject(new Error("A")), () => Promise.reject(new Error("B"))).catch((e) => e);
    assert.equal(a.message, "A");
    assert.deepEqual(a.suppressed.map((e: Error) => e.message), ["B"]);
    await assert.rejects(
      gather(() => {
        throw new Error("C");
      }, () => {
        ranAfterThrow = true;
        throw new Error("D");
      }),
      /^Error: C$/,
    );
    await sleep(5);
  }).done;
  // The caller got A (with B attached) and C; D's function never ran; no supervisor heard.
  assert.deepEqual(reported, []);
  assert.equal(ranAfterThrow, false);
});

test("a supervisor channel whose give throws at once is reported each time and never counted as full", async () => {
  let calls = 0, delivered = 0;
  const sink = {
    give(_event: TaskEvent): Promise<void> {
      if (++calls <= 1024) throw new Error("not yet");
      delivered++;
      return Promise.resolve();
    },
  };
  const printed: string[] = [];
  const error = console.error;
  console.error = (...args: unknown[]) => void printed.push(args.map(String).join(" "));
  try {
    const tasks = Array.from({ length: 1030 }, (_, i) => supervise(sink, () => i));
    await Promise.all(tasks.map((t) => t.done));
    await sleep(10);
  } finally {
    console.error = error;
  }
  assert.equal(calls, 1030);
  assert.equal(delivered, 6);
  assert.equal(printed.length, 1024);
  assert.match(printed[0], /^zev: the supervisor of task .* threw: Error: not yet/);
});

test("a gather that failed while it was starting its functions starts no more of them", async () => {
  let thirdStarted = false;
  const task = call(async () => {
    await sleep(1);
    const me = currentTask()!;
    await gather(
      () => sleep(1000),
      () => me.cancel("from inside"), // the gather's caller, cancelled as the second starts
      () => {
        thirdStarted = true;
      },
    );
  });
  await assert.rejects(task.done, (e: unknown) => e instanceof Cancelled && e.reason === "from inside");
  assert.equal(thirdStarted, false);
});
