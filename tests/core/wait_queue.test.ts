/**
 * The waiter queue and the value deque every zev queue is built on: FIFO order through
 * wraparound and growth, O(1) removal from anywhere, and refusal of misuse.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { Deque, Waiter, WaitQueue } from "../../src/core/wait_queue.ts";

class Item extends Waiter {
  constructor(readonly id: number) {
    super();
  }
}

test("WaitQueue: FIFO, removal from the head, middle and tail, and membership", () => {
  const q = new WaitQueue<Item>();
  const items = [0, 1, 2, 3, 4].map((i) => new Item(i));
  for (const it of items) q.push(it);
  assert.equal(q.length, 5);
  assert.equal(q.peek(), items[0]);
  assert.equal(q.remove(items[2]), true);
  assert.equal(q.remove(items[2]), false, "a waiter is removed once");
  assert.equal(q.remove(items[0]), true);
  assert.equal(q.remove(items[4]), true);
  assert.equal(q.length, 2);
  assert.deepEqual(q.drain().map((i) => i.id), [1, 3]);
  assert.equal(q.length, 0);
  assert.equal(q.peek(), null);
  assert.equal(q.shift(), null);
  // Pushed again after leaving, it goes to the back.
  q.push(items[1]);
  q.push(items[0]);
  assert.deepEqual([q.shift()!.id, q.shift()!.id], [1, 0]);
  // A waiter belongs to one queue at a time; another queue cannot remove it.
  const other = new WaitQueue<Item>();
  q.push(items[3]);
  assert.throws(() => q.push(items[3]), /queued twice/);
  assert.throws(() => other.push(items[3]), /queued twice/);
  assert.equal(other.remove(items[3]), false);
  assert.equal(q.length, 1);
  assert.equal(q.shift(), items[3]);
  // After every removal the ends are right: push and shift keep working.
  const a = new Item(10), b = new Item(11);
  q.push(a);
  q.remove(a);
  q.push(b);
  assert.equal(q.peek(), b);
  assert.equal(q.shift(), b);
  assert.equal(q.length, 0);
});

test("Deque: FIFO through wraparound and growth; shift on empty is harmless", () => {
  const d = new Deque<number>();
  assert.equal(d.shift(), undefined);
  assert.equal(d.length, 0);
  let next = 0, expect = 0;
  // Keep the head moving so that growth happens while the ring is wrapped.
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < round + 3; i++) d.push(next++);
    for (let i = 0; i < round + 1; i++) assert.equal(d.shift(), expect++);
  }
  assert.equal(d.length, next - expect);
  while (d.length > 0) assert.equal(d.shift(), expect++);
  assert.equal(expect, next);
  assert.equal(d.shift(), undefined);
  d.push(7);
  assert.equal(d.length, 1);
  assert.equal(d.shift(), 7);
});
