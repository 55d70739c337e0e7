/**
 * `gather`, after Janet's `ev/gather`: run functions as tasks, all or nothing.
 *
 * @module
 */

import { guardWait, Task } from "./task.ts";
import { show } from "../core/validate.ts";

/** The results of `gather`, in the order of its functions. */
export type Gathered<F extends readonly (() => unknown)[]> = { -readonly [K in keyof F]: Awaited<ReturnType<F[K]>> };

/**
 * Runs each function as a task (started at once, as `call`), and resolves with their
 * results in order. If one fails, the others are cancelled and the returned promise
 * rejects with that error; an error another task throws after that (other than its
 * cancel) goes to its supervisor, so none is lost. Cancelling the task that awaits the
 * gather cancels every task of it and rejects with `Cancelled`. `gather()` resolves to
 * `[]`.
 *
 * @example
 * ```ts
 * const [a, b] = await gather(() => fetchPart(1), () => fetchPart(2));
 * ```
 */
export function gather<const F extends readonly (() => unknown)[]>(...fns: F): Promise<Gathered<F>> {
  for (const [i, fn] of fns.entries()) {
    if (typeof fn !== "function") {
      return Promise.reject(new TypeError(`gather: argument ${i} must be a function, not ${show(fn)}`));
    }
  }
  if (fns.length === 0) return Promise.resolve([] as unknown as Gathered<F>);
  return new Promise((resolve, reject) => {
    const results = new Array(fns.length);
    let left = fns.length, failed = false;
    /** The tasks started so far. */
    const tasks: Task<unknown>[] = [];
    // deno-lint-ignore prefer-const
    let release: (() => void) | null | undefined; // set before any task runs
    /** Ends the gather with `error`: the tasks still running are cancelled. */
    const fail = (error: unknown, cause: Task<unknown> | undefined, why: string) => {
      if (failed) return;
      failed = true;
      release?.();
      for (const other of tasks) {
        other.reportsErrors = true;
        if (other !== cause) other.cancel(why);
      }
      reject(error);
    };
    // The caller's cancel reaches the gathered tasks, as Janet's ev/gather cancels its fibers.
    release = guardWait((error) => fail(error, undefined, "the task that gathered it was cancelled"));
    if (release === null) return; // cancelled on entry: no task was started
    for (const [i, fn] of fns.entries()) {
      // Failed already (a function cancelled the gather's caller, say): start no more.
      if (failed) break;
      const task = new Task<unknown>(fn.name, undefined);
      // The caller gets the first error; the tasks report to their supervisor only once
      // the gather has failed (an error after that would otherwise be lost).
      task.reportsErrors = false;
      tasks.push(task);
      task.run(fn as () => unknown, []);
      task.done.then(
        (value) => {
          results[i] = value;
          if (--left === 0 && !failed) {
            release!();
            resolve(results as Gathered<F>);
          }
        },
        // A task that failed before the gather's failure reached it (in the same turn)
        // held its error back: the caller has the first error, the supervisor this one.
        (error) => failed ? task.reportError() : fail(error, task, "another task of the gather failed"),
      );
      // A function that threw at once fails the gather before the rest are started.
      if (task.threw) break;
    }
  });
}
