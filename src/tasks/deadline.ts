/**
 * Time: `sleep` and `withDeadline` (Janet's `ev/sleep`, `ev/with-deadline`).
 *
 * @module
 */

import { TimedOut } from "../core/errors.ts";
import { live } from "../core/context.ts";
import { enter, guardWait, reasonOf, Task } from "./task.ts";
import { checkMs } from "../core/validate.ts";

/** Options of `sleep`. */
export interface SleepOptions {
  /** Reject with `Cancelled` when this signal aborts. */
  signal?: AbortSignal;
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
    enter(options, "sleep");
  } catch (error) {
    return Promise.reject(error);
  }
  return new Promise((resolve, reject) => {
    // Assigned once the wait is tied (the cancel may come first and find none).
    // deno-lint-ignore prefer-const
    let timer: ReturnType<typeof setTimeout> | undefined;
    const release = guardWait((error) => {
      if (timer !== undefined) live.timers--;
      clearTimeout(timer);
      reject(error);
    }, options?.signal);
    if (release === null) return;
    live.timers++;
    timer = setTimeout(() => {
      live.timers--;
      release();
      resolve();
    }, ms);
  });
}

/**
 * Runs `fn(...args)` as a task and, if it has not finished within `ms`, cancels it (its
 * pending zev wait rejects with `Cancelled`) and rejects with `TimedOut` at that moment,
 * whatever the task awaits: a zev wait, a timer, a `fetch`. Errors of `fn` reject the
 * returned promise; an error the task throws after its deadline has passed goes to its
 * supervisor. The task, and the tasks it starts, inherit the caller's supervisor.
 * Cancelling the caller's task cancels it too, and rejects with that `Cancelled`.
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
    if (typeof fn !== "function") throw new TypeError("withDeadline: fn must be a function");
  } catch (error) {
    return Promise.reject(error);
  }
  const deadline = new TimedOut(`deadline of ${ms} ms exceeded`);
  const task = new Task<T>(fn.name, undefined);
  // The caller gets the task's error; once the deadline has passed, nobody waits for it.
  task.reportsErrors = false;
  return new Promise<T>((resolve, reject) => {
    // Both are set before the task starts; a cancel on entry finds neither and starts nothing.
    let timer: ReturnType<typeof setTimeout> | undefined;
    // deno-lint-ignore prefer-const
    let release: (() => void) | null | undefined;
    /** The timer stopped (once: the deadline, the caller's cancel or the task's end). */
    const clear = () => {
      if (timer === undefined) return;
      clearTimeout(timer);
      timer = undefined;
      live.timers--;
    };
    /** Ends the wait with `error`, the task cancelled with `reason` (deadline or caller). */
    const stop = (error: unknown, reason: unknown) => {
      clear();
      release?.();
      if (release !== undefined) {
        task.reportsErrors = true;
        task.cancel(reason);
      }
      reject(error);
    };
    // The caller's cancel reaches the task (it is the caller's work, under a deadline).
    release = guardWait((error) => stop(error, reasonOf(error)));
    if (release === null) return;
    live.timers++;
    timer = setTimeout(() => stop(deadline, deadline), ms);
    task.run(fn, args);
    task.done.then(
      (value) => {
        clear();
        release!();
        resolve(value);
      },
      (error) => {
        // (Cut off at the deadline, the promise was rejected with it already, by `stop`.)
        clear();
        release!();
        reject(error);
      },
    );
  });
}
