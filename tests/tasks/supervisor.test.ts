/**
 * What a task's end tells, and to whom, to the letter: the default supervisor's stderr
 * (a peer that went away is one line with no stack, anything else is logged whole),
 * `setDefaultSupervisor`, a supervisor function that throws, a supervisor channel that
 * refuses an event, the events a channel supervisor gets for every end, and a task's
 * name, state and cancel reason. Nothing a task ends with is lost without a word.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  acceptLoop,
  Cancelled,
  Channel,
  gather,
  go,
  listen,
  serve,
  setDefaultSupervisor,
  sleep,
  stats,
  supervise,
  type Supervisor,
  type TaskEvent,
  TimedOut,
  withDeadline,
  ZevError,
} from "../../mod.ts";
import { stderrSupervisor } from "../../src/tasks/task.ts";
import { reportInternal } from "../../src/core/context.ts";
import { checkLeaks } from "../harness/leaks.ts";
import { eventually, openClient, within } from "../harness/helpers.ts";

checkLeaks("supervisor");

/** What `fn` wrote with console.error, each call's arguments. */
async function stderrOf(fn: () => Promise<void>): Promise<unknown[][]> {
  const calls: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void calls.push(args);
  try {
    await fn();
  } finally {
    console.error = original;
  }
  return calls;
}

/** Lets a task end and its supervisor be told (a task reports on the turn it settles). */
const settle = () => sleep(5);

/** What the default supervisor writes for a task named `name` that throws `error` after a turn. */
function stderrOfFailing(name: string, error: unknown): Promise<unknown[][]> {
  const failing = async () => {
    await sleep(0);
    throw error;
  };
  Object.defineProperty(failing, "name", { value: name });
  return stderrOf(async () => {
    go(failing);
    await settle();
  });
}

test("the default supervisor: a peer that went away is one line with no stack; anything else is logged whole", async () => {
  const routine = [
    new ZevError("ConnectionReset", "read from 10.0.0.1:5000: the peer reset the connection"),
    new ZevError("BrokenPipe", "write to 10.0.0.1:5000: the peer closed the connection"),
    new TimedOut("read from 10.0.0.1:5000: no data within 50 ms"),
  ];
  for (const error of routine) {
    const lines = await stderrOfFailing("handler", error);
    assert.deepEqual(lines, [[`zev: task handler: ${error.message}`]], error.code);
  }
  // Not routine: other codes, other errors, things that only look like a routine error.
  const whole: unknown[] = [
    new ZevError("Unexpected", "accept on 127.0.0.1:80: unexpected error (errno 5)"),
    new TypeError("boom"),
    { code: "ConnectionReset", message: "not an Error" },
    Object.assign(new Error("a number for a code"), { code: 104 }),
    null,
    "a string",
  ];
  for (const error of whole) {
    const lines = await stderrOfFailing("worker", error);
    assert.deepEqual(lines, [["zev: task worker failed:", error]], String(error));
  }
  // A cancelled task is no failure: a function supervisor hears nothing of it.
  const quiet = await stderrOf(async () => {
    const task = go(() => sleep(10_000));
    await sleep(0);
    task.cancel();
    await assert.rejects(task.done, Cancelled);
    await settle();
  });
  assert.deepEqual(quiet, []);
});

test("setDefaultSupervisor replaces the default for tasks with no other; a supervisor that throws is reported with the task's error", async () => {
  const seen: [unknown, string][] = [];
  const mine: Supervisor = (error, task) => void seen.push([error, task.name]);
  setDefaultSupervisor(mine);
  const failure = new Error("to the new default");
  try {
    const lines = await stderrOf(async () => {
      go(function named() {
        throw failure;
      });
      await settle();
    });
    assert.deepEqual(lines, []);
    assert.deepEqual(seen, [[failure, "named"]]);
  } finally {
    setDefaultSupervisor(stderrSupervisor);
  }
  const thrown = new Error("the supervisor's own bug");
  const original = new Error("what the task threw");
  const lines = await stderrOf(async () => {
    supervise(() => {
      throw thrown;
    }, function failing() {
      throw original;
    });
    await settle();
  });
  assert.deepEqual(lines, [["zev: the supervisor of task failing threw:", thrown, original]]);
});

test("a channel supervisor gets every end, ok, error and cancelled; a closed one is reported with the event", async () => {
  const events = new Channel<TaskEvent>(8);
  const failure = new Error("bad");
  const ok = supervise(events, function good() {
    return 7;
  });
  const bad = supervise(events, function bad() {
    throw failure;
  });
  const cancelled = supervise(events, function slow() {
    return sleep(10_000);
  });
  cancelled.cancel("enough");
  await Promise.allSettled([ok.done, bad.done, cancelled.done]);
  const got = [await events.take(), await events.take(), await events.take()];
  const byName = new Map(got.map((e) => [e.task.name, e]));
  assert.deepEqual({ ...byName.get("good"), task: undefined }, { kind: "ok", task: undefined, value: 7 });
  assert.deepEqual({ ...byName.get("bad"), task: undefined }, { kind: "error", task: undefined, error: failure });
  const end = byName.get("slow")!;
  assert.equal(end.kind, "cancelled");
  assert.ok(end.error instanceof Cancelled && end.error.reason === "enough", String(end.error));
  // A channel that refuses the event (closed): stderr says which task, which event, and what it threw.
  events.close();
  const lines = await stderrOf(async () => {
    supervise(events, function late() {
      throw failure;
    });
    await settle();
  });
  assert.equal(lines.length, 1);
  assert.equal(lines[0][0], "zev: the supervisor channel of task late refused its error event:");
  assert.ok(lines[0][1] instanceof Error && /closed/.test((lines[0][1] as Error).message), String(lines[0][1]));
  assert.equal(lines[0][2], failure);
  const okLines = await stderrOf(async () => {
    supervise(events, function fine() {
      return 1;
    });
    await settle();
  });
  assert.deepEqual(okLines.map((l) => [l[0], l[2]]), [[
    "zev: the supervisor channel of task fine refused its ok event:",
    "",
  ]]);
});

test("a channel supervisor is told every end of the tasks that withDeadline and gather run, errors too", async () => {
  const events = new Channel<TaskEvent>(8);
  const failure = new Error("inner");
  const outer = supervise(events, async function outer() {
    await withDeadline(1000, function underDeadline() {
      throw failure;
    }).catch(() => {});
    await gather(function gathered() {
      throw failure;
    }).catch(() => {});
    return "done";
  });
  await outer.done;
  await settle();
  const take = () => within(2000, "a supervisor event", events.take());
  const got = [await take(), await take(), await take()];
  // The callers of withDeadline and gather got the error, and the channel hears it too.
  assert.deepEqual(got.map((e) => [e.task.name, e.kind, e.kind === "ok" ? e.value : e.error]), [
    ["underDeadline", "error", failure],
    ["gathered", "error", failure],
    ["outer", "ok", "done"],
  ]);
});

test("a task's name, state and default cancel reason", async () => {
  const anonymous = go(() => sleep(10_000));
  assert.equal(anonymous.name, "anonymous");
  assert.equal(anonymous.settled, false);
  assert.equal(anonymous.cancelled, false);
  anonymous.cancel();
  assert.equal(anonymous.cancelled, true);
  await assert.rejects(anonymous.done, (e: unknown) => {
    assert.ok(e instanceof Cancelled);
    assert.equal(e.reason, "task anonymous was cancelled");
    assert.equal(e.message, "cancelled: task anonymous was cancelled");
    return true;
  });
  assert.equal(anonymous.settled, true);
  anonymous.cancel("again"); // settled: nothing happens
  const named = go(async function fetchAll() {
    await sleep(0);
    return "done";
  });
  assert.equal(named.name, "fetchAll");
  assert.equal(await named.done, "done");
  assert.equal(named.settled, true);
  assert.equal(await named.done, "done", "done is the same settled promise");
  const lines = await stderrOf(() => Promise.resolve(reportInternal(new Error("x"))));
  assert.deepEqual(lines.map((l) => l[0]), ["zev: internal error (please report it):"]);
});

test("cancelling the task that awaits acceptLoop closes the listener, cancels its handlers, then rejects; so does a deadline", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const l2 = listen({ hostname: "127.0.0.1", port: 0 });
  const client = await openClient(listener.addr.port);
  try {
    const log: string[] = [];
    let entered!: () => void;
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    const task = go(async () => {
      await acceptLoop(listener, async (stream) => {
        entered();
        try {
          await stream.read(new Uint8Array(8));
        } catch (error) {
          log.push(`handler: ${(error as Error).name}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 30)); // its cleanup
        log.push("handler cleanup finished");
      });
    });
    await within(2000, "the handler runs", inHandler);
    task.cancel("stop serving");
    assert.equal(listener.closed, true, "the listener is closed at once");
    await assert.rejects(
      within(2000, "the cancelled acceptLoop", task.done),
      (e: unknown) => e instanceof Cancelled && e.reason === "stop serving",
    );
    assert.deepEqual(log, ["handler: Cancelled", "handler cleanup finished"], "it ended after its handler");

    await assert.rejects(withDeadline(50, () => acceptLoop(l2, () => {})), TimedOut);
    assert.equal(l2.closed, true, "the deadline closed the listener");
  } finally {
    client.destroy();
    listener.close();
    l2.close();
  }
});

test("acceptLoop and serve refuse a non-listener and a bad supervisor at once, by name, opening nothing", async () => {
  let reports = 0;
  const noListener = acceptLoop({} as never, () => {}, { supervisor: () => reports++ });
  await assert.rejects(within(1000, "acceptLoop({})", noListener), {
    name: "TypeError",
    message: "acceptLoop: listener must be a Listener (from listen), not an object",
  });
  assert.equal(reports, 0);
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  try {
    for (const [bad, shown] of [["oops", '"oops"'], [5, "5"], [{ give: 1 }, "an object"], [null, "null"]]) {
      await assert.rejects(acceptLoop(listener, () => {}, { supervisor: bad as never }), {
        name: "TypeError",
        message: `acceptLoop: supervisor must be a function or a Channel (an object with give), not ${shown}`,
      });
    }
    assert.equal(listener.closed, false, "a refused call leaves the listener alone");
  } finally {
    listener.close();
  }
  const handles = stats().liveHandles;
  assert.throws(() => serve({ hostname: "127.0.0.1", port: 0, supervisor: "x" as never }, () => {}), {
    name: "TypeError",
    message: 'serve: supervisor must be a function or a Channel (an object with give), not "x"',
  });
  assert.equal(stats().liveHandles, handles, "no listener was left open");
});

test("an accept error that keeps coming back is reported, retried after longer pauses, then ends the loop with it", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const broken = new ZevError("InvalidArgument", "accept: broken on purpose");
  let calls = 0;
  listener.accept = () => (calls++, Promise.reject(broken));
  const reported: unknown[] = [];
  const start = Date.now();
  try {
    const loop = acceptLoop(listener, () => {}, { supervisor: (error) => void reported.push(error) });
    await assert.rejects(within(3000, "the accept loop with a broken listener", loop), (e: unknown) => e === broken);
    // Retried after 10, 20, 40 and 80 ms; the fifth failure ends it.
    assert.equal(calls, 5);
    assert.ok(Date.now() - start >= 140, `pauses between retries: ${Date.now() - start} ms`);
    await eventually(1000, "the last failure is reported too", () => reported.length === 5);
    assert.ok(reported.every((e) => e === broken));
    assert.equal(listener.closed, true, "nobody is left connecting to a port that nobody serves");
  } finally {
    listener.close();
  }
});

test("a handler that ignores its cancel holds close for 2 s at most, and is named on stderr", async () => {
  let release!: () => void;
  const stuck = new Promise<void>((resolve) => (release = resolve));
  const server = serve({ hostname: "127.0.0.1", port: 0 }, async () => {
    try {
      await sleep(60_000);
    } catch {
      await stuck; // ignores its cancel: awaits something outside zev
    }
  });
  const client = await openClient(server.addr.port);
  const printed: string[] = [];
  const error = console.error;
  console.error = (...args: unknown[]) => void printed.push(args.map(String).join(" "));
  try {
    await eventually(2000, "the handler runs", () => server.connections === 1);
    const started = Date.now();
    await within(4000, "close", server.close({ gracePeriod: 0 }));
    await server.finished;
    assert.ok(Date.now() - started >= 1900, "close waited for the handler's cleanup");
    assert.equal(server.connections, 1);
    assert.equal(printed.length, 1);
    assert.match(printed[0], /^zev: 1 connection handler\(s\) still running 2000 ms after their cancel/);
  } finally {
    console.error = error;
    release();
    client.destroy();
  }
  await eventually(2000, "the handler ends once released", () => server.connections === 0);
});

test("server.close and server.finished wait for cancelled handlers to finish their cleanup", async () => {
  const log: string[] = [];
  const server = serve({ hostname: "127.0.0.1", port: 0 }, async () => {
    try {
      await sleep(60_000);
    } catch (error) {
      log.push(`handler: ${(error as Error).name}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100)); // its cleanup
    log.push("handler cleanup finished");
  });
  const client = await openClient(server.addr.port);
  try {
    await eventually(2000, "the handler runs", () => server.connections === 1);
    await within(3000, "close", server.close({ gracePeriod: 20 }));
    log.push("close resolved");
    await server.finished;
    log.push(`finished; connections=${server.connections}`);
    assert.deepEqual(log, [
      "handler: Cancelled",
      "handler cleanup finished",
      "close resolved",
      "finished; connections=0",
    ]);
  } finally {
    client.destroy();
  }
});

test("a handler that closes its stream itself and handles that close's error ends without one", async () => {
  const reported: unknown[] = [];
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  let handled: unknown;
  const done = acceptLoop(listener, async (stream) => {
    stream.write(new Uint8Array(32 << 20)).catch(() => {}); // the peer reads nothing
    try {
      await stream.close({ timeout: 50 });
    } catch (error) {
      handled = error;
    }
  }, { supervisor: (e) => void reported.push(e) });
  const client = await openClient(listener.addr.port);
  try {
    await eventually(3000, "the handler handled its close's error", () => handled !== undefined);
    await sleep(50);
    assert.ok(handled instanceof TimedOut, String(handled));
    assert.deepEqual(reported, []);
  } finally {
    client.destroy();
    listener.close();
    await done;
  }
});
