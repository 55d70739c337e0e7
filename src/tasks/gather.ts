/**
 * `gather`, after Janet's `ev/gather`: run functions as tasks, all or nothing, in one
 * scope (src/tasks/scope.ts), so that none outlives it.
 *
 * @module
 */

import type { Task } from "./task.ts";
import { Scope } from "./scope.ts";
import { guardWait } from "./task.ts";
import { show } from "../core/validate.ts";

/** The results of `gather`, in the order of its functions. */
export type Gathered<F extends readonly (() => unknown)[]> = { -readonly [K in keyof F]: Awaited<ReturnType<F[K]>> };

/**
 * Runs each function as a task of one scope (started at once, as `call`), and resolves
 * with their results in order. If one fails, the others are cancelled (with that error as
 * the reason), and once they have all ended the returned promise rejects with that
 * error; errors the others throw after it (other than their cancel) are attached to it
 * as `error.suppressed`, as `scope` does. A function that throws at once starts no other.
 * Cancelling the task that awaits the gather cancels every task of it and, once they
 * have ended, rejects with `Cancelled`. `gather()` resolves to `[]`.
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
  const s = new Scope();
  // The caller's cancel reaches the gathered tasks, as Janet's ev/gather cancels its fibers.
  const release = guardWait((error) => s.cancelFromOutside(error));
  const tasks: Task<unknown>[] = [];
  for (const fn of fns) {
    // Cancelled already (on entry, or by a function that cancelled the caller): start no more.
    if (s.cancelled) break;
    const task = s.call(fn as () => unknown);
    tasks.push(task);
    // A function that threw at once fails the gather before the rest are started.
    if (task.threw) break;
  }
  return s.settle().then((failure) => {
    release?.();
    if (failure) throw failure.error;
    return Promise.all(tasks.map((t) => t.done)) as Promise<Gathered<F>>;
  });
}
