/**
 * The one queue of pending operations that every zev wait uses (a listener's accepts, a
 * stream's writes, a channel's takes and gives): first in, first out, and a waiter that
 * is cancelled leaves it at once, in constant time, so abandoned waits never pile up.
 *
 * @module
 */

/** A queued waiter: subclass it (or use it as is) and keep it to `remove` it later. */
export class Waiter {
  /** @internal */
  prev: Waiter | null = null;
  /** @internal */
  next: Waiter | null = null;
  /** @internal The queue holding this waiter, if any. */
  queue: WaitQueue<Waiter> | null = null;
}

/** A doubly linked FIFO of waiters; every operation is O(1). */
export class WaitQueue<W extends Waiter> {
  #head: W | null = null;
  #tail: W | null = null;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  /** The oldest waiter, left in place. */
  peek(): W | null {
    return this.#head;
  }

  push(w: W): void {
    if (w.queue !== null) throw new Error("zev: internal error: a waiter is queued twice");
    w.queue = this as unknown as WaitQueue<Waiter>;
    w.prev = this.#tail;
    w.next = null;
    if (this.#tail) this.#tail.next = w;
    else this.#head = w;
    this.#tail = w;
    this.#length++;
  }

  /** Takes the oldest waiter out, or null when empty. */
  shift(): W | null {
    const w = this.#head;
    if (w) this.remove(w);
    return w;
  }

  /** Takes `w` out if it is in this queue; returns whether it was. */
  remove(w: W): boolean {
    if (w.queue !== (this as unknown as WaitQueue<Waiter>)) return false;
    if (w.prev) w.prev.next = w.next;
    else this.#head = w.next as W | null;
    if (w.next) w.next.prev = w.prev;
    else this.#tail = w.prev as W | null;
    w.prev = w.next = null;
    w.queue = null;
    this.#length--;
    return true;
  }

  /** Takes every waiter out, oldest first. */
  drain(): W[] {
    const all: W[] = [];
    for (let w = this.shift(); w; w = this.shift()) all.push(w);
    return all;
  }
}

/**
 * A FIFO of values with O(1) push and shift (`Array.prototype.shift` is O(n) in some
 * engines): a ring buffer that doubles when full, so it holds at most twice the most it
 * ever held at once (a channel's never exceeds its capacity).
 */
export class Deque<T> {
  #items: (T | undefined)[] = new Array(8);
  #head = 0;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(value: T): void {
    if (this.#length === this.#items.length) this.#grow();
    this.#items[(this.#head + this.#length) & (this.#items.length - 1)] = value;
    this.#length++;
  }

  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const value = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) & (this.#items.length - 1);
    this.#length--;
    return value;
  }

  #grow(): void {
    const old = this.#items;
    const items = new Array<T | undefined>(old.length * 2);
    for (let i = 0; i < this.#length; i++) items[i] = old[(this.#head + i) & (old.length - 1)];
    this.#items = items;
    this.#head = 0;
  }
}
