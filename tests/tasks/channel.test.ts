/**
 * Channels and select: waiters that are cancelled or abandoned leave at once (nothing
 * piles up for a later give to walk over), select fails only when every channel is
 * closed, takes gives and a signal, and its types accept channels of different types.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { call, Cancelled, Channel, Closed, go, select, type SelectResult, sleep } from "../../mod.ts";
import { spendTurn, within } from "../harness/helpers.ts";
import { checkLeaks } from "../harness/leaks.ts";

checkLeaks("channel");

test("bounded give and take, in order, across tasks", async () => {
  const ch = new Channel<number>(2);
  assert.throws(() => new Channel(-1), RangeError);
  assert.throws(() => new Channel(1.5), RangeError);
  const producer = go(async () => {
    for (let i = 0; i < 10; i++) await ch.give(i);
    ch.close();
  });
  const got: number[] = [];
  for await (const v of ch) got.push(v);
  await producer.done;
  assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  await assert.rejects(ch.give(1), Closed);
  await assert.rejects(ch.take(), Closed);
});

test("cancelled takes and abandoned selects leave their channels at once", async () => {
  const a = new Channel<number>(), b = new Channel<number>();
  for (let i = 0; i < 2000; i++) {
    const ac = new AbortController();
    const take = a.take({ signal: ac.signal });
    const sel = select(a, b, { signal: ac.signal });
    ac.abort("abandoned");
    await assert.rejects(take, Cancelled);
    await assert.rejects(sel, Cancelled);
  }
  assert.equal(a.takers, 0);
  assert.equal(b.takers, 0);
  // A task cancelled while it takes leaves too.
  const task = call(() => a.take());
  task.cancel();
  await assert.rejects(task.done, Cancelled);
  assert.equal(a.takers, 0);
  // And the next give finds nobody to walk over: it waits for a real taker.
  const give = a.give(7);
  assert.equal(a.givers, 1);
  assert.equal(await a.take(), 7);
  await give;
  assert.equal(a.givers, 0);
  // Cancelled gives, and the give clauses of a select another clause completed, leave too.
  const full = new Channel<number>();
  for (let i = 0; i < 100; i++) {
    const ac = new AbortController();
    const giving = full.give(i, { signal: ac.signal });
    ac.abort("abandoned");
    await assert.rejects(giving, Cancelled);
  }
  assert.equal(full.givers, 0);
  const other = new Channel<number>();
  const sel = select([full, 1] as const, other);
  await sleep(1);
  assert.deepEqual([full.givers, other.takers], [1, 1]);
  void other.give(2);
  assert.equal((await sel).value, 2);
  assert.deepEqual([full.givers, other.takers], [0, 0], "the give clause was withdrawn");
});

test("for await over a channel ends when it is closed and empty, and throws anything else (a cancel)", async () => {
  const ch = new Channel<number>(2);
  await ch.give(1);
  const seen: number[] = [];
  const task = call(async () => {
    for await (const item of ch) seen.push(item);
  });
  await sleep(5);
  task.cancel("stop");
  await assert.rejects(task.done, (e: unknown) => e instanceof Cancelled && e.reason === "stop");
  assert.deepEqual(seen, [1]);
});

test("a select completes one clause only; the others' waiters are withdrawn", async () => {
  const a = new Channel<string>(), b = new Channel<string>();
  const sel = select(a, b);
  await sleep(1);
  assert.equal(a.takers + b.takers, 2);
  void b.give("from b");
  const r = await sel;
  assert.equal(r.channel, b);
  assert.equal(r.value, "from b");
  assert.equal(r.index, 1);
  assert.equal(r.op, "take");
  assert.equal(a.takers, 0);
  const [from, value] = r; // destructures as [channel, value]
  assert.equal(from, b);
  assert.equal(value, "from b");
});

test("select rejects only when every channel is closed", async () => {
  const a = new Channel<number>(), b = new Channel<number>();
  const sel = select(a, b);
  a.close();
  await sleep(5);
  go(async () => await b.give(42));
  const r = await within(2000, "select after one channel closed", sel);
  assert.equal(r.value, 42);
  // One channel closed already and one open: select waits for the open one.
  const open = new Channel<number>();
  const waiting = select(a, open);
  go(async () => await open.give(43));
  assert.equal((await within(2000, "select with a closed channel and an open one", waiting)).value, 43);
  const both = select(a, b);
  b.close();
  await assert.rejects(both, Closed);
  // A closed channel that still holds items can be selected from.
  const c = new Channel<number>(1);
  await c.give(5);
  c.close();
  assert.equal((await select(c)).value, 5);
  await assert.rejects(select(c), Closed);
});

test("select with gives, with a signal, and bad clauses", async () => {
  const jobs = new Channel<string>(), results = new Channel<number>(1);
  const r = await select(jobs, [results, 42] as const);
  assert.equal(r.op, "give");
  assert.equal(r.channel, results);
  assert.equal(r.index, 1);
  assert.equal(await results.take(), 42);
  // A give clause waits for room like give does.
  await results.give(1);
  const pending = select([results, 2] as const);
  await sleep(1);
  assert.equal(results.givers, 1);
  assert.equal(await results.take(), 1);
  assert.equal((await pending).op, "give");
  assert.equal(await results.take(), 2);

  const ac = new AbortController();
  const waiting = select(jobs, { signal: ac.signal });
  ac.abort("bye");
  await assert.rejects(waiting, (e: unknown) => e instanceof Cancelled && e.reason === "bye");
  assert.equal(jobs.takers, 0);

  await assert.rejects((select as (...a: unknown[]) => Promise<unknown>)(), TypeError);
  await assert.rejects((select as (...a: unknown[]) => Promise<unknown>)(jobs, 5), /clause 1 must be a Channel/);
  await assert.rejects(
    (select as (...a: unknown[]) => Promise<unknown>)(jobs, null),
    (e: unknown) =>
      e instanceof TypeError && e.message === "select: clause 1 must be a Channel or [channel, value], not null",
  );
});

test("select's types accept channels of different types (checked by the type checker)", async () => {
  const requests = new Channel<string>(1), shutdown = new Channel<number>(1);
  await shutdown.give(1);
  const r: SelectResult<Channel<string> | Channel<number>> = await select(requests, shutdown);
  const v: string | number | undefined = r.value;
  assert.equal(v, 1);
  const [from] = await Promise.all([
    select(requests, shutdown, { signal: AbortSignal.timeout(1000) }),
    requests.give("x"),
  ]);
  assert.equal(from.value, "x");
});

test("many items through a large buffered channel (every operation O(1))", async () => {
  const n = 200_000;
  const ch = new Channel<number>(n);
  for (let i = 0; i < n; i++) await ch.give(i);
  assert.equal(ch.size, n);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += await ch.take();
  assert.equal(sum, (n * (n - 1)) / 2);
  assert.equal(ch.size, 0);
});

test("close() refuses no give that found room and no take that found an item, though the turn's budget deferred them", () => {
  const ch = new Channel<number>(4096);
  // More immediate completions than one turn allows: the rest wait for the next turn.
  const gives = Array.from({ length: 2048 }, (_, i) => ch.give(i));
  const take = ch.take();
  ch.close();
  return Promise.all([...gives, take]).then((results) => {
    assert.equal(results.at(-1), 0, "the take got the first item");
    assert.equal(ch.size, 2047);
  });
});

test("gives, takes and selects that can complete do so at once within the turn's budget, and a turn later past it", async () => {
  await sleep(1); // a fresh turn, its budget whole
  const ch = new Channel<number>(2);
  const give = ch.give(1);
  assert.equal(ch.size, 1, "a give that found room put its item in at once");
  const take = ch.take();
  assert.equal(ch.size, 0, "a take that found an item took it at once");
  assert.equal(await take, 1);
  await give;
  const unbuffered = new Channel<number>();
  const taker = unbuffered.take();
  await sleep(1);
  const handed = unbuffered.give(7);
  assert.equal(unbuffered.takers, 0, "a give handed its value to the waiting taker at once");
  assert.equal(await taker, 7);
  await handed;
  const selected = select([ch, 3] as const);
  assert.equal(ch.size, 1, "a select whose give found room gave at once");
  await selected;

  // Past the turn's budget, each waits for the next turn, and then completes.
  spendTurn();
  const lateTake = ch.take();
  assert.equal(ch.size, 1, "past the budget, the take waits a turn");
  assert.equal(await lateTake, 3);
  await ch.give(3);
  spendTurn();
  const late = ch.give(4);
  assert.equal(ch.size, 1, "past the budget, the give waits a turn");
  const lateSelect = select(ch);
  assert.deepEqual([ch.size, ch.givers], [1, 1], "past the budget, the select waits a turn (the give still waits)");
  assert.equal((await lateSelect).value, 3);
  await late;
  assert.equal(ch.size, 1);
  // A closed channel still holding an item is live for select, even a turn later.
  ch.close();
  spendTurn();
  assert.equal((await within(2000, "select from a closed channel with an item", select(ch))).value, 4);
  await assert.rejects(select(ch), Closed);
});

test("every refusal says what was refused and why, to the letter", async () => {
  const exactly = (kind: new (...a: any[]) => Error, message: string) => (e: unknown) => {
    assert.ok(e instanceof kind, `${message}: got ${e}`);
    assert.equal((e as Error).message, message);
    return true;
  };
  for (const bad of [-1, 1.5, 2 ** 32 + 1, Number.NaN, "2"]) {
    const shown = typeof bad === "string" ? `"${bad}"` : String(bad);
    assert.throws(
      () => new Channel(bad as number),
      exactly(RangeError, `Channel: invalid capacity ${shown}: expected an integer from 0 to 2^32`),
    );
  }
  assert.equal(new Channel(2 ** 32).capacity, 2 ** 32, "the largest capacity is taken");
  assert.equal(new Channel().capacity, 0, "a rendezvous channel by default");
  // Waiting when the channel closes, and calling after it closed.
  const ch = new Channel<number>(0);
  const taking = ch.take();
  const other = new Channel<number>(0);
  const giving = other.give(1);
  ch.close();
  other.close();
  await assert.rejects(taking, exactly(Closed, "take: the channel was closed"));
  await assert.rejects(giving, exactly(Closed, "give: the channel was closed"));
  await assert.rejects(ch.take(), exactly(Closed, "take: the channel is closed"));
  await assert.rejects(ch.give(2), exactly(Closed, "give: the channel is closed"));
  await assert.rejects(select(ch, [other, 1]), exactly(Closed, "select: every channel is closed"));
  // A select waiting on channels that close one by one fails with the last.
  const a = new Channel<number>(0), b = new Channel<number>(0);
  const selecting = select(a, [b, 5]);
  a.close();
  await sleep(1);
  b.close();
  await assert.rejects(selecting, exactly(Closed, "select: every channel is closed"));
  // Arguments.
  await assert.rejects(
    select(),
    exactly(TypeError, "select: expected at least one channel or [channel, value] clause"),
  );
  await assert.rejects(
    select({ signal: new AbortController().signal } as never),
    exactly(TypeError, "select: expected at least one channel or [channel, value] clause"),
  );
  const open = new Channel<number>(1);
  for (const [clause, shown] of [[5, "5"], [[open], "an array"], [[open, 1, 2], "an array"], [["x", 1], "an array"]]) {
    await assert.rejects(
      select(open, clause as never),
      exactly(TypeError, `select: clause 1 must be a Channel or [channel, value], not ${shown}`),
    );
  }
  await assert.rejects(
    open.give(1, { signal: 5 as never }),
    exactly(TypeError, "give: options.signal must be an AbortSignal"),
  );
  await assert.rejects(open.take(null as never), exactly(TypeError, "take: options must be an object, not null"));
  const aborted = AbortSignal.abort("stop");
  await assert.rejects(open.give(1, { signal: aborted }), exactly(Cancelled, "cancelled: stop"));
  await assert.rejects(open.take({ signal: aborted }), exactly(Cancelled, "cancelled: stop"));
  await assert.rejects(select(open, { signal: aborted }), exactly(Cancelled, "cancelled: stop"));
  // A take clause of a closed channel that still holds items completes.
  await open.give(9);
  open.close();
  const r = await select(open);
  assert.deepEqual([r.index, r.op, r.value], [0, "take", 9]);
});

test("a select never gives to its own take: another task's take or give completes it, and nothing is lost", async () => {
  // Rendezvous: its take arm and its give arm wait, unmatched, until someone else comes.
  const ch = new Channel<number>(0);
  let settled = false;
  const own = select(ch, [ch, 42]);
  own.then(() => (settled = true), () => (settled = true));
  await sleep(20);
  assert.equal(settled, false, "the select did not complete with itself");
  assert.deepEqual([ch.takers, ch.givers], [1, 1]);
  assert.equal(await within(2000, "a take from another task", ch.take()), 42);
  const gave = await own;
  assert.deepEqual([gave.op, gave.index, gave.value], ["give", 1, undefined]);
  assert.deepEqual([ch.takers, ch.givers, ch.size], [0, 0, 0], "its take arm was withdrawn");
  const again = select(ch, [ch, 7]);
  await sleep(5);
  await within(2000, "a give from another task", ch.give(5));
  const took = await again;
  assert.deepEqual([took.op, took.index, took.value], ["take", 0, 5]);
  assert.deepEqual([ch.takers, ch.givers], [0, 0]);
  // A plain take behind the select's own take arm gets the select's value.
  const first = select(ch, [ch, 9]);
  await sleep(5);
  const plain = ch.take();
  assert.equal(await within(2000, "the plain take", plain), 9);
  assert.equal((await first).op, "give");

  // Buffered, both arms queued past the turn's budget: the give fills the buffer; its
  // own take arm does not also take that value (which would report a give nobody got).
  const buffered = new Channel<number>(1);
  spendTurn();
  const queued = select(buffered, [buffered, 2]);
  const result = await within(2000, "the buffered select", queued);
  assert.deepEqual([result.op, result.index], ["give", 1]);
  assert.equal(buffered.size, 1, "the value given is in the buffer");
  assert.equal(await buffered.take(), 2);
  assert.deepEqual([buffered.takers, buffered.givers], [0, 0]);
});
