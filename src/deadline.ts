/**
 * Time: `sleep` and `withDeadline` (Janet's `ev/sleep`, `ev/with-deadline`).
 *
 * @module
 */

import { Cancelled, TimedOut } from "./errors.ts";
import { guardWait, Task } from "./task.ts";

/** Options of `sleep`. */
export interface SleepOptions {
  /** Reject with `Cancelled` when this signal aborts. */
  signal?: AbortSignal;
}

function checkMs(ms: unknown, what: string): number {
  if (typeof ms !== "number" || !(ms >= 0) || ms > 2 ** 31 - 1) {
    throw new RangeError(`${what}: invalid duration ${JSON.stringify(ms)}: expected milliseconds from 0 to 2^31-1`);
  }
  return ms;
}

/**
 * Resolves after `ms` milliseconds. Cancelling the task that sleeps rejects it with
 * `Cancelled`.
 *
 * @example
 * ```ts
 * await sleep(100);
 * ```
 */
export function sleep(ms: number, options?: SleepOptions): Promise<void> {
  try {
    checkMs(ms, "sleep");
  } catch (error) {
    return Promise.reject(error);
  }
  return new Promise((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const release = guardWait((error) => {
      clearTimeout(timer);
      reject(error);
    }, options?.signal);
    if (release === null) return;
    timer = setTimeout(() => {
      release();
      resolve();
    }, ms);
  });
}

/**
 * Runs `fn(...args)` as a task and cancels it if it has not finished within `ms`: its
 * pending zev wait rejects, and the returned promise rejects with `TimedOut`. Errors of
 * `fn` reject the returned promise (they are not also sent to a supervisor).
 *
 * @example
 * ```ts
 * const n = await withDeadline(5000, () => stream.read(buf)); // TimedOut after 5 s
 * ```
 */
export function withDeadline<A extends unknown[], T>(
  ms: number,
  fn: (...args: A) => T | PromiseLike<T>,
  ...args: A
): Promise<T> {
  try {
    checkMs(ms, "withDeadline");
  } catch (error) {
    return Promise.reject(error);
  }
  const deadline = new TimedOut(`deadline of ${ms} ms exceeded`);
  const task = new Task<T>(fn.name, () => {});
  const timer = setTimeout(() => task.cancel(deadline), ms);
  task.run(fn, args);
  return task.done.then(
    (value) => {
      clearTimeout(timer);
      return value;
    },
    (error) => {
      clearTimeout(timer);
      throw error instanceof Cancelled && error.reason === deadline ? deadline : error;
    },
  );
}
