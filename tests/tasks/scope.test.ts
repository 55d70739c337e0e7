/**
 * Scopes (structured concurrency): no task outlives its scope, whatever ends it; the
 * first failure cancels the rest and every later one is attached to it; a cancel reaches
 * every task, wherever it waits (a read, an accept, a sleep, a channel, a foreign promise
 * watched through its signal); `race` keeps the first result and leaves nothing open.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  Cancelled,
  Channel,
  connect,
  currentTask,
  go,
  listen,
  openScope,
  race,
  type Scope,
  scope,
  sleep,
  stats,
  type Stream,
  supervise,
  type Task,
  TimedOut,
  withDeadline,
} from "../../mod.ts";
import { MAX_SUPPRESSED } from "../../src/tasks/scope.ts";
import { pendingCancelCount } from "../../src/tasks/task.ts";
import { eventually, tcpPair, within } from "../harness/helpers.ts";
import { checkLeaks } from "../harness/leaks.ts";

checkLeaks("scope");

const boom = (message: string, ms = 0) => async () => {
  if (ms > 0) await sleep(ms);
  throw new Error(message);
};

/** Sleeps until cancelled, recording how it ended. */
const sleeper = (name: string, ended: string[]) => async () => {
  try {
    await sleep(60_000);
  } catch (error) {
    ended.push(`${name}: ${error instanceof Cancelled ? "cancelled" : String(error)}`);
    throw error;
  }
};

test("scope resolves with fn's result only once every task has ended, those still running after fn returned too", async () => {
  const order: string[] = [];
  const result = await scope((s) => {
    s.go(async () => {
      await sleep(30);
      order.push("child");
    });
    s.call(async () => {
      await sleep(10);
      order.push("called");
    });
    order.push("fn");
    return "value";
  });
  order.push("scope");
  assert.equal(result, "value");
  assert.deepEqual(order, ["fn", "called", "child", "scope"]);
});

test("scope: the first failure cancels fn and the other tasks, and rejects with it once they have all ended", async () => {
  const ended: string[] = [];
  let fnCancelled = false;
  const first = new Error("first");
  const started = Date.now();
  await assert.rejects(
    scope(async (s) => {
      s.go(sleeper("a", ended));
      s.go(sleeper("b", ended));
      s.go(async () => {
        await sleep(10);
        throw first;
      });
      try {
        await sleep(60_000);
      } catch (error) {
        fnCancelled = error instanceof Cancelled && (error as Cancelled).reason === first;
        // Cleanup that takes time: the scope still waits for it.
        await new Promise((r) => setTimeout(r, 40));
        ended.push("fn");
        throw error;
      }
    }),
    (e) => e === first,
  );
  assert.ok(Date.now() - started >= 45, "the scope waited for fn's cleanup");
  assert.ok(fnCancelled, "fn was cancelled with the failure as the reason");
  assert.deepEqual(ended.sort(), ["a: cancelled", "b: cancelled", "fn"]);
  assert.equal(pendingCancelCount(), 0);
});

test("scope: later failures are attached to the first as error.suppressed, and no supervisor hears of any", async () => {
  const reported: unknown[] = [];
  const first = new Error("first");
  let caught: unknown;
  await supervise((e) => reported.push(e), async () => {
    caught = await scope(async (s) => {
      s.go(async () => {
        await sleep(5);
        throw first;
      });
      for (const name of ["x", "y"]) {
        s.go(async () => {
          try {
            await sleep(60_000);
          } catch {
            throw new Error(`${name} failed while cancelled`);
          }
        });
      }
      await sleep(60_000);
    }).catch((e) => e);
    await sleep(10);
  }).done;
  assert.equal(caught, first);
  const suppressed = (caught as { suppressed?: Error[] }).suppressed;
  assert.deepEqual(suppressed?.map((e) => e.message).sort(), ["x failed while cancelled", "y failed while cancelled"]);
  assert.deepEqual(reported, []);
  // Not enumerable: logging the error shows it as it was thrown.
  assert.deepEqual(Object.keys(first), []);
});

test("scope: a failure that cannot hold others (a primitive) sends them to the supervisor; past MAX_SUPPRESSED too", async () => {
  const reported: string[] = [];
  await supervise((e) => reported.push((e as Error).message), async () => {
    const primitive = await scope(async (s) => {
      s.go(async () => {
        try {
          await sleep(60_000);
        } catch {
          throw new Error("later");
        }
      });
      await sleep(5);
      throw "a string";
    }).catch((e) => e);
    assert.equal(primitive, "a string");
    const first = new Error("first");
    const many = MAX_SUPPRESSED + 3;
    const caught = await scope(async (s) => {
      for (let i = 0; i < many; i++) {
        s.go(async () => {
          try {
            await sleep(60_000);
          } catch {
            throw new Error(`late ${i}`);
          }
        });
      }
      await sleep(5);
      throw first;
    }).catch((e) => e);
    assert.equal(caught, first);
    assert.equal((first as unknown as { suppressed: unknown[] }).suppressed.length, MAX_SUPPRESSED);
    await sleep(5);
  }).done;
  assert.equal(reported.length, 1 + 3);
  assert.equal(reported[0], "later");
});

test("scope: a task blocked in read, accept, sleep, a channel's take or a foreign promise ends when its sibling fails", async () => {
  const { listener: pairListener, client, server } = await tcpPair();
  pairListener.close();
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const channel = new Channel<number>(0);
  const ended: string[] = [];
  let foreignResolved = false;
  const note = (name: string) => (error: unknown) => {
    ended.push(`${name}: ${error instanceof Cancelled ? "cancelled" : String(error)}`);
    throw error;
  };
  await within(
    5000,
    "every blocked task ended",
    assert.rejects(
      scope((s) => {
        s.go(() => server.read(new Uint8Array(8)).catch(note("read")));
        s.go(() => listener.accept().catch(note("accept")));
        s.go(() => sleep(60_000).catch(note("sleep")));
        s.go(() => channel.take().catch(note("take")));
        // A promise zev cannot reject: the task watches its signal, as the docs say to.
        s.go(() =>
          new Promise<void>((_resolve, reject) => {
            const signal = currentTask()!.signal;
            signal.addEventListener("abort", () => {
              // Its cleanup takes a while: the scope waits for it.
              setTimeout(() => {
                foreignResolved = true;
                reject(signal.reason);
              }, 30);
            });
          }).catch(note("foreign"))
        );
        s.go(boom("sibling", 20));
      }),
      /sibling/,
    ),
  );
  assert.ok(foreignResolved, "the scope settled after the foreign wait ended");
  assert.deepEqual(ended.sort(), [
    "accept: cancelled",
    "foreign: cancelled",
    "read: cancelled",
    "sleep: cancelled",
    "take: cancelled",
  ]);
  // What the cancelled calls leave behind still works.
  await client.write(new Uint8Array([7]));
  const buf = new Uint8Array(8);
  assert.equal(await server.read(buf), 1);
  const c = await connect({ port: listener.addr.port });
  (await listener.accept()).abort();
  c.abort();
  listener.close();
  client.abort();
  server.abort();
});

test("scope: cancelling the task that awaits it cancels every task, waits for them, and rejects with that Cancelled", async () => {
  const ended: string[] = [];
  let scopeSettled = false;
  const outer = go(async () => {
    try {
      return await scope(async (s) => {
        s.go(sleeper("a", ended));
        s.go(async () => {
          try {
            await sleep(60_000);
          } finally {
            await new Promise((r) => setTimeout(r, 30)); // a slow cleanup
            ended.push("slow");
          }
        });
        await sleeper("fn", ended)();
      });
    } finally {
      scopeSettled = true;
    }
  });
  await sleep(20);
  outer.cancel("stop");
  await assert.rejects(outer.done, (e) => e instanceof Cancelled && e.reason === "stop");
  assert.ok(scopeSettled);
  assert.deepEqual(ended.sort(), ["a: cancelled", "fn: cancelled", "slow"]);
});

test("scope: options.signal and a withDeadline around it cancel it the same way", async () => {
  const ended: string[] = [];
  const controller = new AbortController();
  const pending = scope(async (s) => {
    s.go(sleeper("signal", ended));
    await sleep(60_000);
  }, { signal: controller.signal });
  await sleep(10);
  controller.abort("enough");
  await assert.rejects(pending, (e) => e instanceof Cancelled && e.reason === "enough");
  await assert.rejects(
    withDeadline(20, () =>
      scope(async (s) => {
        s.go(sleeper("deadline", ended));
        await sleep(60_000);
      })),
    TimedOut,
  );
  await eventually(1000, "the deadline's scope task ended", () => ended.length === 2);
  assert.deepEqual(ended.sort(), ["deadline: cancelled", "signal: cancelled"]);
});

test("scope: a cancel on entry runs nothing; a cancel during its start reaches the tasks already started", async () => {
  let ran = false;
  const controller = new AbortController();
  controller.abort("before");
  await assert.rejects(scope(() => void (ran = true), { signal: controller.signal }), Cancelled);
  const pending: Task<void> = go(async () => {
    pending.cancel("pending"); // delivered at its next zev call: the scope
    await scope(() => void (ran = true));
  });
  await assert.rejects(pending.done, (e) => e instanceof Cancelled && e.reason === "pending");
  assert.equal(ran, false);
  // fn cancels its own waiter while it starts its tasks: they are cancelled, and so is
  // every task it starts after that.
  const ended: string[] = [];
  const waiter: Task<void> = go(async () => {
    await scope((s) => {
      s.go(sleeper("before", ended));
      waiter.cancel("during start");
      s.go(sleeper("after", ended));
      assert.ok(s.cancelled);
    });
  });
  await assert.rejects(waiter.done, (e) => e instanceof Cancelled && e.reason === "during start");
  assert.deepEqual(ended.sort(), ["after: cancelled", "before: cancelled"]);
});

test("scope: s.go after the scope has ended is a TypeError saying so; a task cancelled by hand just ends", async () => {
  let kept: Scope | undefined;
  const value = await scope(async (s) => {
    kept = s;
    const t = s.go(() => sleep(60_000));
    await sleep(5);
    t.cancel("not needed");
    return 1;
  });
  assert.equal(value, 1);
  assert.ok(kept!.ended);
  assert.throws(() => kept!.go(() => 1), {
    name: "TypeError",
    message: /scope\.go: the scope has ended; a task started in it now would outlive it/,
  });
  assert.throws(() => kept!.call(() => 1), TypeError);
  assert.throws(() => kept!.go(5 as never), /scope\.go: fn must be a function, not 5/);
  // A Cancelled the task did not get from a cancel of its own (its signal's) is a failure.
  const controller = new AbortController();
  const failing = scope(async (s) => {
    s.go(() => sleep(60_000, { signal: controller.signal }));
    await sleep(60_000);
  });
  await sleep(5);
  controller.abort("its own signal");
  await assert.rejects(failing, (e) => e instanceof Cancelled && e.reason === "its own signal");
  await assert.rejects(scope(5 as never), /scope: fn must be a function/);
  await assert.rejects(scope(() => 1, 5 as never), TypeError);
});

test("scope: s.cancel(reason) cancels every task and fn, and the scope rejects with that Cancelled; s.signal tells it", async () => {
  const ended: string[] = [];
  let signalReason: unknown;
  let running = -1;
  await assert.rejects(
    scope(async (s) => {
      s.go(sleeper("a", ended));
      s.go(sleeper("b", ended));
      await sleep(5);
      running = s.running;
      s.signal.addEventListener("abort", () => (signalReason = (s.signal.reason as Cancelled).reason));
      s.cancel("enough");
      s.cancel("twice"); // once only
      await sleeper("fn", ended)();
    }),
    (e) => e instanceof Cancelled && e.reason === "enough",
  );
  assert.equal(running, 3, "two tasks and fn");
  assert.equal(signalReason, "enough");
  assert.deepEqual(ended.sort(), ["a: cancelled", "b: cancelled", "fn: cancelled"]);
  // With no reason, it says which; a signal first asked for after the cancel is aborted already.
  let late: AbortSignal | undefined;
  await assert.rejects(
    scope((s) => {
      s.cancel();
      late = s.signal;
    }),
    (e) => e instanceof Cancelled && /the scope was cancelled/.test(e.message),
  );
  assert.ok(late!.aborted);
});

test("scope: a first failure that cannot carry others (frozen, or with a suppressed of its own) leaves them to the supervisor", async () => {
  const reported: string[] = [];
  for (const first of [Object.freeze(new Error("frozen")), Object.assign(new Error("own"), { suppressed: "mine" })]) {
    await supervise((e) => reported.push((e as Error).message), async () => {
      const caught = await scope(async (s) => {
        s.go(async () => {
          try {
            await sleep(60_000);
          } catch {
            throw new Error(`after ${first.message}`);
          }
        });
        await sleep(5);
        throw first;
      }).catch((e) => e);
      assert.equal(caught, first);
      await sleep(5);
    }).done;
  }
  assert.deepEqual(reported, ["after frozen", "after own"]);
});

test("scope: nested scopes cancel inward", async () => {
  const ended: string[] = [];
  await assert.rejects(
    scope(async (outer) => {
      outer.go(() =>
        scope(async (inner) => {
          inner.go(sleeper("inner task", ended));
          await scope(async (innermost) => {
            innermost.go(sleeper("innermost task", ended));
            await sleeper("innermost fn", ended)();
          });
        })
      );
      await sleep(10);
      throw new Error("outer fails");
    }),
    /outer fails/,
  );
  assert.deepEqual(ended.sort(), ["inner task: cancelled", "innermost fn: cancelled", "innermost task: cancelled"]);
});

test("openScope with await using: the block's end waits for its tasks and throws the first failure", async () => {
  const order: string[] = [];
  {
    await using s = openScope();
    s.go(async () => {
      await sleep(20);
      order.push("task");
    });
    order.push("block");
  }
  order.push("after");
  assert.deepEqual(order, ["block", "task", "after"]);

  const ended: string[] = [];
  let signalAborted = false;
  await assert.rejects(
    (async () => {
      await using s = openScope();
      s.go(sleeper("sibling", ended));
      s.go(boom("in the block's scope", 5));
      await sleep(30);
      signalAborted = s.signal.aborted;
    })(),
    /in the block's scope/,
  );
  assert.ok(signalAborted);
  assert.deepEqual(ended, ["sibling: cancelled"]);
});

test("openScope: cancelling the task that opened it cancels its tasks, and still reaches the block's own wait", async () => {
  const ended: string[] = [];
  let blockCancelled = false;
  const owner = supervise(() => {}, async () => {
    await using s = openScope();
    s.go(sleeper("task", ended));
    try {
      await sleep(60_000);
    } catch (error) {
      blockCancelled = error instanceof Cancelled;
      throw error;
    }
  });
  await sleep(10);
  owner.cancel("stop");
  // The block's own wait threw the cancel; the block's end adds nothing to it.
  const error = await owner.done.catch((e) => e);
  assert.ok(error instanceof Cancelled && error.reason === "stop", String(error));
  assert.ok(blockCancelled);
  assert.deepEqual(ended, ["task: cancelled"]);
  await assert.rejects(Promise.resolve().then(() => openScope({ signal: 5 as never })), TypeError);
});

test("openScope({ signal }): the signal cancels its tasks, and the block's end throws that Cancelled", async () => {
  const ended: string[] = [];
  const controller = new AbortController();
  await assert.rejects(
    (async () => {
      await using s = openScope({ signal: controller.signal });
      s.go(sleeper("task", ended));
      await sleep(5);
      controller.abort("stop it");
    })(),
    (e) => e instanceof Cancelled && e.reason === "stop it",
  );
  assert.deepEqual(ended, ["task: cancelled"]);
  const aborted = new AbortController();
  aborted.abort("before");
  assert.throws(() => openScope({ signal: aborted.signal }), Cancelled);
});

test("race: a second result is disposed of (Symbol.dispose too), and a disposal that fails is reported", async () => {
  const disposed: string[] = [];
  const reported: string[] = [];
  const value = (name: string, fail = false) => ({
    name,
    [Symbol.dispose]() {
      disposed.push(name);
      if (fail) throw new Error(`disposing ${name}`);
    },
  });
  await supervise((e) => reported.push((e as Error).message), async () => {
    // The second waits on a plain timer, which a cancel does not reach: it still returns.
    const won = await race(
      async () => (await sleep(1), value("first")),
      () => new Promise<ReturnType<typeof value>>((r) => setTimeout(() => r(value("second", true)), 10)),
    );
    assert.equal(won.name, "first");
    await sleep(5);
  }).done;
  assert.deepEqual(disposed, ["second"]);
  assert.deepEqual(reported, ["disposing second"]);
});

test("race: the first result wins, the others are cancelled and awaited; all failing rejects with every error", async () => {
  const ended: string[] = [];
  const value = await race(
    async () => {
      await sleep(60_000).catch((e) => {
        ended.push("slow: cancelled");
        throw e;
      });
      return "slow";
    },
    async () => (await sleep(5), "fast"),
    boom("fails", 1),
  );
  assert.equal(value, "fast");
  assert.deepEqual(ended, ["slow: cancelled"]);
  const error = await race(boom("a"), boom("b", 5)).catch((e) => e);
  assert.ok(error instanceof AggregateError);
  assert.deepEqual(error.errors.map((e: Error) => e.message), ["a", "b"]);
  await assert.rejects(race(), /race: needs at least one function/);
  await assert.rejects(race(() => 1, 2 as never), /race: argument 1 must be a function, not 2/);
  // Cancelled from outside: every function is cancelled, and the race rejects with it.
  const outer = go(() => race(sleeper("x", ended), sleeper("y", ended)));
  await sleep(5);
  outer.cancel("stop");
  await assert.rejects(outer.done, Cancelled);
  assert.deepEqual(ended.slice(1).sort(), ["x: cancelled", "y: cancelled"]);
});

test("race over connects to several addresses: the losers are cancelled and a second success is closed", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const before = stats().liveHandles;
  let lateCancelled = false;
  // Happy eyeballs: a refused address, the live one, and one tried after a delay.
  const stream: Stream = await race(
    () => connect({ hostname: "127.0.0.1", port: 1 }),
    () => connect({ hostname: "127.0.0.1", port }),
    async () => {
      await sleep(250).catch((e) => {
        lateCancelled = true;
        throw e;
      });
      return connect({ hostname: "127.0.0.1", port });
    },
  );
  assert.ok(lateCancelled, "the delayed attempt was cancelled");
  assert.equal(stats().liveHandles, before + 1, "only the winner is open");
  stream.abort();
  // Two that succeed together: the second is closed, not leaked.
  const winner: Stream = await race(
    () => connect({ hostname: "127.0.0.1", port }),
    () => connect({ hostname: "127.0.0.1", port }),
  );
  await eventually(1000, "the second connection closed", () => stats().liveHandles === before + 1);
  winner.abort();
  listener.close();
});

test("thousands of scopes with failing tasks under load leave no task, timer, cancel or handle behind", async () => {
  const before = stats();
  const { listener, client, server } = await tcpPair();
  listener.close();
  const echo = go(async () => {
    const buf = new Uint8Array(64);
    for (let n; (n = await server.read(buf)) !== null;) await server.write(buf.subarray(0, n));
  });
  let failures = 0;
  const rounds = 2000;
  const work = Array.from({ length: 8 }, () =>
    (async () => {
      for (let i = 0; i < rounds / 8; i++) {
        await scope(async (s) => {
          s.go(() => sleep(60_000));
          s.go(() => new Channel<number>(0).take());
          s.go(boom(`round ${i}`, i % 3));
          await sleep(60_000);
        }).catch(() => failures++);
      }
    })());
  const pinger = (async () => {
    const buf = new Uint8Array(4);
    for (let i = 0; i < 200; i++) {
      await client.write(new Uint8Array([1, 2, 3, 4]));
      let got = 0;
      while (got < 4) got += (await client.read(buf.subarray(got)))!;
    }
  })();
  await within(60_000, "the scopes and the echo finished", Promise.all([...work, pinger]));
  assert.equal(failures, rounds);
  await client.close();
  await echo.done;
  server.abort();
  await eventually(2000, "nothing left", () => {
    const after = stats();
    return after.tasks === before.tasks && after.timers === before.timers && pendingCancelCount() === 0 &&
      after.liveHandles === before.liveHandles;
  });
});
