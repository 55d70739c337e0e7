/**
 * Bounded channels between tasks (Janet's `ev/chan`, `ev/give`, `ev/take`,
 * `ev/select`). A channel holds at most `capacity` items; `give` waits while it is
 * full, `take` while it is empty. Waits are cancellable like every zev wait.
 *
 * @module
 */

import { Closed } from "./errors.ts";
import { guardWait } from "./task.ts";

/** A waiting take. `active` turns false once it is served or abandoned (select). */
interface Taker<T> {
  active: boolean;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

interface Giver<T> {
  value: T;
  resolve: () => void;
  reject: (error: unknown) => void;
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
  readonly capacity: number;
  #items: T[] = [];
  #takers: Taker<T>[] = [];
  #givers: Giver<T>[] = [];
  #closed = false;

  /** `capacity` 0 makes a rendezvous channel: `give` waits for a `take`. */
  constructor(capacity = 0) {
    if (!Number.isInteger(capacity) || capacity < 0) {
      throw new RangeError(`Channel: invalid capacity ${capacity}: expected an integer >= 0`);
    }
    this.capacity = capacity;
  }

  /** Items waiting to be taken. */
  get size(): number {
    return this.#items.length;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Puts `value` in the channel, waiting while it is full. */
  give(value: T, options?: { signal?: AbortSignal }): Promise<void> {
    if (this.#closed) return Promise.reject(new Closed("give: the channel is closed"));
    for (let taker = this.#takers.shift(); taker; taker = this.#takers.shift()) {
      if (!taker.active) continue;
      taker.active = false;
      taker.resolve(value);
      return Promise.resolve();
    }
    if (this.#items.length < this.capacity) {
      this.#items.push(value);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      let release: (() => void) | null = null;
      const giver: Giver<T> = {
        value,
        resolve: () => (release?.(), resolve()),
        reject: (e) => (release?.(), reject(e)),
      };
      this.#givers.push(giver);
      release = guardWait((error) => {
        const i = this.#givers.indexOf(giver);
        if (i >= 0) this.#givers.splice(i, 1), reject(error);
      }, options?.signal);
    });
  }

  /** Takes the oldest item, waiting while the channel is empty. Rejects once closed and empty. */
  take(options?: { signal?: AbortSignal }): Promise<T> {
    const ready = this.#takeNow();
    if (ready) return Promise.resolve(ready.value);
    if (this.#closed) return Promise.reject(new Closed("take: the channel is closed"));
    return new Promise((resolve, reject) => {
      let release: (() => void) | null = null;
      const taker: Taker<T> = {
        active: true,
        resolve: (v) => (release?.(), resolve(v)),
        reject: (e) => (release?.(), reject(e)),
      };
      this.#takers.push(taker);
      release = guardWait((error) => {
        if (taker.active) (taker.active = false), reject(error);
      }, options?.signal);
    });
  }

  /** Closes the channel: waiting givers and takers reject; queued items can still be taken. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#takers.splice(0)) {
      if (t.active) (t.active = false), t.reject(new Closed("take: the channel was closed"));
    }
    for (const g of this.#givers.splice(0)) g.reject(new Closed("give: the channel was closed"));
  }

  /** Takes an item if one is ready, moving a waiting giver's item into the buffer. */
  #takeNow(): { value: T } | undefined {
    if (this.#items.length > 0) {
      const value = this.#items.shift()!;
      const giver = this.#givers.shift();
      if (giver) {
        this.#items.push(giver.value);
        giver.resolve();
      }
      return { value };
    }
    const giver = this.#givers.shift();
    if (giver) {
      giver.resolve();
      return { value: giver.value };
    }
    return undefined;
  }

  /** @internal For `select`. */
  static takeNow<T>(ch: Channel<T>): { value: T } | undefined {
    return ch.#takeNow();
  }

  /** @internal For `select`. */
  static addTaker<T>(ch: Channel<T>, taker: Taker<T>): void {
    ch.#takers.push(taker);
  }
}

/**
 * Waits until one of `channels` has an item and takes it from that one only. Resolves
 * with the channel and the item. Rejects if every channel is closed and empty.
 *
 * @example
 * ```ts
 * const [from, value] = await select(requests, shutdown);
 * ```
 */
export function select<T>(...channels: Channel<T>[]): Promise<[Channel<T>, T]> {
  for (const ch of channels) {
    const ready = Channel.takeNow(ch);
    if (ready) return Promise.resolve([ch, ready.value]);
  }
  if (channels.every((ch) => ch.closed)) return Promise.reject(new Closed("select: every channel is closed"));
  return new Promise((resolve, reject) => {
    const takers: Taker<T>[] = [];
    let release: (() => void) | null = null;
    const settle = () => {
      for (const t of takers) t.active = false;
      release?.();
    };
    for (const ch of channels) {
      const taker: Taker<T> = {
        active: true,
        resolve: (value) => (settle(), resolve([ch, value])),
        reject: (error) => (settle(), reject(error)),
      };
      takers.push(taker);
      Channel.addTaker(ch, taker);
    }
    release = guardWait((error) => {
      if (takers[0].active) settle(), reject(error);
    }, undefined);
  });
}
