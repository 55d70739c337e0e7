/**
 * Which task's code is running, across awaits (`AsyncLocalStorage`, in both runtimes):
 * the store src/tasks/task.ts keeps its tasks in, kept here so that the driver below it
 * can run outside every task without knowing what a task is.
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";

/**
 * What runs and waits on this thread, above the loop (`stats()` tells it): tasks
 * started and not yet settled, zev's timers (`sleep`, `withDeadline`) still pending, and
 * TLS handshakes of listeners that failed (never handed to an accept).
 */
export const live = { tasks: 0, timers: 0, tlsHandshakesFailed: 0 };

/** The running task (src/tasks/task.ts); typed there. */
export const running: AsyncLocalStorage<unknown> = new AsyncLocalStorage<unknown>();

/**
 * Calls `fn(...args)` outside every task, so that what it schedules (the driver's turns
 * and timers) belongs to no task and keeps none alive.
 */
export function outsideTasks<A extends unknown[], R>(fn: (...args: A) => R, ...args: A): R {
  return running.getStore() === undefined ? fn(...args) : running.exit(fn, ...args);
}

/** Reports a failure inside zev itself (a bug): never silent, never thrown at a caller. */
export function reportInternal(error: unknown): void {
  console.error("zev: internal error (please report it):", error);
}
