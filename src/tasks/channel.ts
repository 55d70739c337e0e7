/**
 * Bounded channels between tasks (Janet's `ev/chan`, `ev/give`, `ev/take`,
 * `ev/select`). A channel holds at most `capacity` items; `give` waits while it is
 * full, `take` while it is empty. Every operation is O(1): items sit in a ring buffer,
 * and waiters in a queue they leave at once when cancelled. Waits are cancellable like
 * every zev wait, and a give or take that could complete at once still rejects if its
 * signal is aborted or its task cancelled.
 *
 * @module
 */

import { Closed } from "../core/errors.ts";
import { driver, onNextTurn } from "../core/driver.ts";
import { cancelledOnEntry, enter, type Guard, tieWait, untieWait } from "./task.ts";
import { show } from "../core/validate.ts";
import { Deque, Waiter, WaitQueue } from "../core/wait_queue.ts";

/** Options of `give`, `take` and `select`. */
export interface ChannelWaitOptions {
  /** Reject with `Cancelled` when this signal aborts. */
  signal?: AbortSignal;
}

/** A pending take: a plain `take`, or one arm of a `select`. */
abstract class Taker<T> extends Waiter {
  /** The `select` this is an arm of, if any: never paired with a giver of the same. */
  get selection(): object | undefined {
    return undefined;
  }
  /** Hands the taker a value (it has been taken out of its queue). */
  abstract deliver(value: T): void;
  /** The channel closed while the taker waited (it has been taken out of its queue). */
  abstract closed(channel: Channel<T>): void;
}

/** A pending give: a plain `give`, or one arm of a `select`. */
abstract class Giver<T> extends Waiter {
  /** The `select` this is an arm of, if any: never paired with a taker of the same. */
  get selection(): object | undefined {
    return undefined;
  }
  abstract readonly value: T;
  /** The value was taken (the giver has been taken out of its queue). */
  abstract delivered(): void;
  abstract closed(channel: Channel<T>): void;
}

/** Settles a promise once, tied to its task's cancel and its signal while it waits. */
class Pending<T> {
  #resolve: (value: T) => void;
  #reject: (error: unknown) => void;
  #guard: Guard | null = undefined;
  settled = false;

  constructor(resolve: (value: T) => void, reject: (error: unknown) => void) {
    this.#resolve = resolve;
    this.#reject = reject;
  }

  /** Ties the wait to the task and `signal`; false if it was cancelled at once. */
  tie(signal: AbortSignal | undefined, onCancel: () => void): boolean {
    this.#guard = tieWait(this.#cancel, signal);
    this.#onCancel = onCancel;
    return this.#guard !== null;
  }

  #onCancel: () => void = () => {};
  #cancel = (error: unknown): void => {
    if (this.settled) return;
    this.#onCancel();
    this.reject(error);
  };

  resolve(value: T): void {
    if (this.settled) return;
    this.settled = true;
    untieWait(this.#guard, this.#cancel);
    this.#resolve(value);
  }

  reject(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    untieWait(this.#guard, this.#cancel);
    this.#reject(error);
  }
}

class TakeWait<T> extends Taker<T> {
  constructor(readonly pending: Pending<T>) {
    super();
  }
  deliver(value: T): void {
    this.pending.resolve(value);
  }
  closed(): void {
    this.pending.reject(new Closed("take: the channel was closed"));
  }
}

class GiveWait<T> extends Giver<T> {
  constructor(readonly value: T, readonly pending: Pending<void>) {
    super();
  }
  delivered(): void {
    this.pending.resolve();
  }
  closed(): void {
    this.pending.reject(new Closed("give: the channel was closed"));
  }
}

/**
 * A bounded FIFO channel.
 *
 * @example
 * ```ts
 * const ch = new Channel<number>(1);
 * go(async () => { await ch.give(42); });
 * console.log(await ch.take()); // 42
 * ```
 */
export class Channel<T> {
  /** How many items it holds at most (0: a rendezvous channel). */
  readonly capacity: number;
  #items = new Deque<T>();
  #takers = new WaitQueue<Taker<T>>();
  #givers = new WaitQueue<Giver<T>>();
  #closed = false;

  /** `capacity` 0 makes a rendezvous channel: `give` waits for a `take`. */
  constructor(capacity = 0) {
    if (!Number.isInteger(capacity) || capacity < 0 || capacity > 2 ** 32) {
      throw new RangeError(`Channel: invalid capacity ${show(capacity)}: expected an integer from 0 to 2^32`);
    }
    this.capacity = capacity;
  }

  /** Items waiting to be taken. */
  get size(): number {
    return this.#items.length;
  }

  /** Whether `close` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Takes (and select take clauses) waiting on this channel now. */
  get takers(): number {
    return this.#takers.length;
  }

  /** Gives (and select give clauses) waiting on this channel now. */
  get givers(): number {
    return this.#givers.length;
  }

  /** Puts `value` in the channel, waiting while it is full. Rejects with `Closed` once closed. */
  give(value: T, options?: ChannelWaitOptions): Promise<void> {
    let signal: AbortSignal | undefined;
    try {
      signal = enter(options, "give");
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#closed) return Promise.reject(new Closed("give: the channel is closed"));
    if (this.#givers.length === 0 && this.#canTakeGive() && driver.spend()) {
      this.#giveNow(value);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const pending = new Pending<void>(resolve, reject);
      const giver = new GiveWait(value, pending);
      if (!pending.tie(signal, () => this.#givers.remove(giver))) return;
      this.#givers.push(giver);
      this.#serviceSoon();
    });
  }

  /** Takes the oldest item, waiting while the channel is empty. Rejects once closed and empty. */
  take(options?: ChannelWaitOptions): Promise<T> {
    let signal: AbortSignal | undefined;
    try {
      signal = enter(options, "take");
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#takers.length === 0 && this.#hasValue() && driver.spend()) return Promise.resolve(this.#takeNow());
    if (this.#closed && !this.#hasValue()) return Promise.reject(new Closed("take: the channel is closed"));
    return new Promise<T>((resolve, reject) => {
      const pending = new Pending<T>(resolve, reject);
      const taker = new TakeWait(pending);
      if (!pending.tie(signal, () => this.#takers.remove(taker))) return;
      this.#takers.push(taker);
      this.#serviceSoon();
    });
  }

  /**
   * Closes the channel: givers still waiting for room and takers waiting for an item
   * reject with `Closed`; queued items can still be taken.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Gives and takes that waited only for the turn's budget complete first: a give that
    // found room, a take that found an item, are not refused by a close after them.
    this.#service();
    for (const t of this.#takers.drain()) t.closed(this);
    for (const g of this.#givers.drain()) g.closed(this);
  }

  /** `for await (const item of channel)` takes items until the channel is closed and empty. */
  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      try {
        yield await this.take();
      } catch (error) {
        if (error instanceof Closed && this.#closed) return;
        throw error;
      }
    }
  }

  /** Whether a take would complete at once: an item buffered, or a giver waiting. */
  #hasValue(): boolean {
    return this.#items.length > 0 || this.#givers.length > 0;
  }

  /** Whether a give would complete at once: a taker waiting, or room in the buffer. */
  #canTakeGive(): boolean {
    return this.#takers.length > 0 || this.#items.length < this.capacity;
  }

  /** Takes the next value (there is one): the oldest item, then a waiting giver's. */
  #takeNow(): T {
    if (this.#items.length > 0) {
      const value = this.#items.shift()!;
      const giver = this.#givers.shift();
      if (giver) {
        this.#items.push(giver.value);
        giver.delivered();
      }
      return value;
    }
    const giver = this.#givers.shift()!;
    giver.delivered();
    return giver.value;
  }

  /** Gives `value` (there is room or a taker). */
  #giveNow(value: T): void {
    const taker = this.#takers.shift();
    if (taker) taker.deliver(value);
    else this.#items.push(value);
  }

  /** `#service`, next turn. */
  #serviceSoon = onNextTurn(() => this.#service());

  /**
   * Matches waiting takers with values and waiting givers with room. A taker and a giver
   * that are arms of one `select` are never matched: that select would give to itself.
   */
  #service(): void {
    for (;;) {
      if (this.#takers.length === 0) break;
      if (this.#items.length > 0) {
        // The oldest item first; a waiting giver's value then takes its place below. (The
        // taker's select, if it is one, withdraws its other arms, gives included, here.)
        this.#takers.shift()!.deliver(this.#items.shift()!);
        this.#refill();
        continue;
      }
      const pair = this.#pair();
      if (pair === undefined) break;
      const [taker, giver] = pair;
      this.#takers.remove(taker);
      this.#givers.remove(giver);
      giver.delivered();
      taker.deliver(giver.value);
    }
    this.#refill();
  }

  /**
   * With no item buffered: the oldest taker and the oldest giver that are not arms of
   * one select, or undefined when every waiting taker and giver belong to one select.
   */
  #pair(): [Taker<T>, Giver<T>] | undefined {
    const taker = this.#takers.peek(), giver = this.#givers.peek();
    if (taker === null || giver === null) return undefined;
    const own = taker.selection;
    if (own === undefined || giver.selection !== own) return [taker, giver];
    // The oldest taker's own select holds the oldest giver: the oldest giver of another,
    // else the oldest giver goes to the oldest taker of another select.
    for (let g = giver.next as Giver<T> | null; g !== null; g = g.next as Giver<T> | null) {
      if (g.selection !== own) return [taker, g];
    }
    for (let t = taker.next as Taker<T> | null; t !== null; t = t.next as Taker<T> | null) {
      if (t.selection !== own) return [t, giver];
    }
    return undefined;
  }

  /** Moves waiting givers' values into the buffer while it has room. */
  #refill(): void {
    while (this.#givers.length > 0 && this.#items.length < this.capacity) {
      const giver = this.#givers.shift()!;
      this.#items.push(giver.value);
      giver.delivered();
    }
  }

  /** @internal For `select`: completes a take or give at once if it can. */
  static tryNow<T>(ch: Channel<T>, give: boolean, value: T | undefined): { value: T | undefined } | undefined {
    if (give) {
      if (ch.#closed || !ch.#canTakeGive()) return undefined;
      ch.#giveNow(value as T);
      return { value: undefined };
    }
    return ch.#hasValue() ? { value: ch.#takeNow() } : undefined;
  }

  /** @internal For `select`. */
  static enqueue<T>(ch: Channel<T>, waiter: Taker<T> | Giver<T>): void {
    if (waiter instanceof Taker) ch.#takers.push(waiter);
    else ch.#givers.push(waiter);
    ch.#serviceSoon();
  }

  /** @internal For `select`. */
  static dequeue<T>(ch: Channel<T>, waiter: Taker<T> | Giver<T>): void {
    if (waiter instanceof Taker) ch.#takers.remove(waiter);
    else ch.#givers.remove(waiter);
  }
}

/** A `select` clause: a channel to take from, or `[channel, value]` to give to. */
export type SelectClause = Channel<any> | readonly [Channel<any>, unknown];

/** The value type a clause takes (nothing, for a give). */
export type ClauseValue<C> = C extends Channel<infer T> ? T : undefined;

/**
 * What `select` completed: the clause's `index`, its `channel`, `op` ("take" or "give")
 * and, for a take, the `value`. It destructures as `[channel, value]`.
 */
export class SelectResult<C extends SelectClause> {
  /**
   * The outcome of a select.
   *
   * @param index which clause completed, counting from 0
   * @param channel its channel
   * @param op whether it took or gave
   * @param value what it took (undefined for a give)
   */
  constructor(
    readonly index: number,
    readonly channel: C extends readonly [infer Ch, unknown] ? Ch : C,
    readonly op: "take" | "give",
    readonly value: ClauseValue<C>,
  ) {}

  /** `const [channel, value] = await select(...)`. */
  *[Symbol.iterator](): Generator<unknown> {
    yield this.channel;
    yield this.value;
  }
}

/** One select in progress: its arms in each channel's queue, settled by the first. */
class Selection<C extends SelectClause> {
  readonly arms: (Taker<any> | Giver<any>)[] = [];
  open: number;

  constructor(readonly clauses: readonly C[], readonly pending: Pending<SelectResult<C>>) {
    this.open = clauses.length;
  }

  /** Takes every arm out of its queue (the select is settled or cancelled). */
  withdraw(): void {
    this.arms.forEach((arm, i) => Channel.dequeue(channelOf(this.clauses[i]), arm));
  }

  win(index: number, op: "take" | "give", value: unknown): void {
    this.withdraw();
    this.pending.resolve(new SelectResult(index, channelOf(this.clauses[index]) as never, op, value as never));
  }

  /** A channel closed: the select fails only when every channel has. */
  lose(): void {
    if (--this.open > 0) return;
    this.withdraw();
    this.pending.reject(new Closed("select: every channel is closed"));
  }
}

class SelectTaker<T> extends Taker<T> {
  constructor(readonly owner: Selection<any>, readonly index: number) {
    super();
  }
  override get selection(): Selection<any> {
    return this.owner;
  }
  deliver(value: T): void {
    this.owner.win(this.index, "take", value);
  }
  closed(): void {
    this.owner.lose();
  }
}

class SelectGiver<T> extends Giver<T> {
  constructor(readonly owner: Selection<any>, readonly index: number, readonly value: T) {
    super();
  }
  override get selection(): Selection<any> {
    return this.owner;
  }
  delivered(): void {
    this.owner.win(this.index, "give", undefined);
  }
  closed(): void {
    this.owner.lose();
  }
}

function channelOf(clause: SelectClause): Channel<any> {
  return clause instanceof Channel ? clause : clause[0];
}

function isGive(clause: SelectClause): clause is readonly [Channel<any>, unknown] {
  return !(clause instanceof Channel);
}

/**
 * Waits until one clause can complete and completes that one only (Janet's `ev/select`):
 * a channel clause takes an item, a `[channel, value]` clause gives `value`. Clauses that
 * can complete at once are tried in order. Rejects with `Closed` only once every channel
 * is closed (a take clause still completes while its channel has items). A last argument
 * `{ signal }` cancels it like any wait.
 *
 * @example
 * ```ts
 * const [from, value] = await select(requests, shutdown);
 * const r = await select(jobs, [results, 42]); // r.op is "take" or "give"
 * ```
 */
export function select<const C extends readonly SelectClause[]>(
  ...args: [...C] | [...C, ChannelWaitOptions]
): Promise<SelectResult<C[number]>> {
  const last = args[args.length - 1];
  const hasOptions = typeof last === "object" && last !== null && !(last instanceof Channel) && !Array.isArray(last);
  const clauses = (hasOptions ? args.slice(0, -1) : args) as unknown as C;
  if (clauses.length === 0) {
    return Promise.reject(new TypeError("select: expected at least one channel or [channel, value] clause"));
  }
  for (const [i, c] of clauses.entries()) {
    const ok = c instanceof Channel || (Array.isArray(c) && c.length === 2 && c[0] instanceof Channel);
    if (!ok) {
      return Promise.reject(new TypeError(`select: clause ${i} must be a Channel or [channel, value], not ${show(c)}`));
    }
  }
  try {
    const signal = hasOptions ? (last as ChannelWaitOptions).signal : undefined;
    const cancelled = cancelledOnEntry(signal, "select");
    if (cancelled) return Promise.reject(cancelled);
    return selectNow(clauses, signal);
  } catch (error) {
    return Promise.reject(error);
  }
}

function selectNow<const C extends readonly SelectClause[]>(
  clauses: C,
  signal: AbortSignal | undefined,
): Promise<SelectResult<C[number]>> {
  if (driver.spend()) {
    for (const [i, c] of clauses.entries()) {
      const done = Channel.tryNow(channelOf(c), isGive(c), isGive(c) ? c[1] : undefined);
      if (done) {
        return Promise.resolve(
          new SelectResult(i, channelOf(c) as never, isGive(c) ? "give" : "take", done.value as never),
        );
      }
    }
  }
  // A take from a closed, empty channel can never complete, nor can a give to a closed one.
  const live = (c: SelectClause) => !channelOf(c).closed || (!isGive(c) && channelOf(c).size > 0);
  if (!clauses.some(live)) return Promise.reject(new Closed("select: every channel is closed"));
  return new Promise((resolve, reject) => {
    const pending = new Pending<SelectResult<C[number]>>(resolve, reject);
    const selection = new Selection<C[number]>(clauses, pending);
    if (!pending.tie(signal, () => selection.withdraw())) return;
    for (const [i, c] of clauses.entries()) {
      const arm = isGive(c) ? new SelectGiver(selection, i, c[1]) : new SelectTaker(selection, i);
      selection.arms.push(arm);
      if (live(c)) Channel.enqueue(channelOf(c), arm);
      else selection.open--;
    }
  });
}
