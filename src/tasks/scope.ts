/**
 * Structured concurrency: scopes whose tasks cannot outlive them, as Trio's nurseries,
 * Kotlin's `coroutineScope` and Java's `StructuredTaskScope`, for plain async functions.
 *
 * A scope settles only once every task started in it has ended. The first task that
 * fails cancels the others (their zev waits reject with `Cancelled`, `s.signal` aborts),
 * and the scope rejects with that error; errors of tasks that fail after it are attached
 * to it (`error.suppressed`), so none is lost and none is reported twice. Cancelling the
 * task that waits for a scope cancels every task in it, waits for them, and rejects with
 * that `Cancelled`.
 *
 * `go` (Janet's `ev/go`) stays what it is: a detached task, watched by a supervisor. Use
 * a scope when tasks belong to one piece of work (the two pumps of a proxy, the requests
 * of a fan-out, the attempts of a connect) and must not outlive it.
 *
 * @module
 */

import { Cancelled, type TimedOut } from "../core/errors.ts";
import { checkFn, currentTask, enter, guardWait, reasonOf, report, runNextTurn, Task, type TaskOwner } from "./task.ts";
import { show } from "../core/validate.ts";

/** Options of `scope` and `openScope`. */
export interface ScopeOptions {
  /** Cancels the scope (every task in it) when it aborts. */
  signal?: AbortSignal;
}

/**
 * Errors attached to a scope's first failure (`error.suppressed`); past it, a later
 * failure goes to its task's supervisor instead, so that a scope that keeps starting
 * failing tasks holds no unbounded list.
 */
export const MAX_SUPPRESSED = 64;

/** The `suppressed` lists this module attached (so that one a user set is left alone). */
const ours = new WeakSet<unknown[]>();

/** Attaches `later` to `first` as Java's `addSuppressed` does; false if it cannot. */
function attach(first: unknown, later: unknown): boolean {
  if (typeof first !== "object" || first === null || !Object.isExtensible(first)) return false;
  const own = Object.getOwnPropertyDescriptor(first, "suppressed");
  if (own === undefined) {
    const list = [later];
    ours.add(list);
    Object.defineProperty(first, "suppressed", { value: list, writable: true, configurable: true });
    return true;
  }
  if (!Array.isArray(own.value) || !ours.has(own.value) || own.value.length >= MAX_SUPPRESSED) return false;
  own.value.push(later);
  return true;
}

/** What a failed task does to its scope: cancels it ("fail"), or only goes to its supervisor ("report"). */
type Policy = "fail" | "report";

/**
 * The tasks of one piece of work. Made by `scope` (which passes it to its function),
 * `openScope`, `gather`, `race`, and `acceptLoop` (for its handlers).
 */
export class Scope implements TaskOwner {
  readonly #policy: Policy;
  /** Tasks running. */
  readonly #tasks = new Set<Task<unknown>>();
  /** The first failure (a task's error, or the cancel of the scope). */
  #failure: { error: unknown } | undefined;
  /** The reason the scope's tasks are cancelled with, once it is cancelled. */
  #reason: { reason: unknown } | undefined;
  #controller: AbortController | undefined;
  /** Ended: no task can start in it any more. */
  #ended = false;
  #idle: (() => void)[] = [];

  /** @internal See `TaskOwner.taskEnding`. */
  readonly taskEnding: TaskOwner["taskEnding"];

  /** @internal */
  constructor(policy: Policy = "fail", ending?: TaskOwner["taskEnding"]) {
    this.#policy = policy;
    this.taskEnding = ending;
  }

  /** Aborts when the scope is cancelled (a task failed, or the scope's waiter was cancelled). */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#reason) this.#controller.abort(new Cancelled(this.#reason.reason));
    }
    return this.#controller.signal;
  }

  /** Tasks of the scope still running. */
  get running(): number {
    return this.#tasks.size;
  }

  /** Whether the scope was cancelled (by a failure, its waiter's cancel or `cancel`). */
  get cancelled(): boolean {
    return this.#reason !== undefined;
  }

  /** Whether the scope has ended: every task in it ended, and none can start. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Starts `fn(...args)` as a task of the scope on the loop's next turn (as `go`). A
   * `TypeError` once the scope has ended; in a scope being cancelled, the task starts
   * cancelled (its first zev wait rejects).
   */
  go<A extends unknown[], T>(fn: (...args: A) => T | PromiseLike<T>, ...args: A): Task<T> {
    checkFn(fn, "scope.go");
    const task = this.#adopt<T>(fn.name, "go");
    runNextTurn(task, fn, args);
    return task;
  }

  /**
   * @internal `go(fn, resource)` as a task named `name` that holds `resource` (see
   * `Task.resource`): acceptLoop's connection tasks.
   */
  goWith<R>(name: string, fn: (resource: R) => unknown, resource: R): Task<unknown> {
    const task = this.#adopt<unknown>(name, "go");
    task.resource = resource;
    runNextTurn(task, fn, [resource]);
    return task;
  }

  /** Runs `fn(...args)` as a task of the scope that starts at once (as `call`). */
  call<A extends unknown[], T>(fn: (...args: A) => T | PromiseLike<T>, ...args: A): Task<T> {
    checkFn(fn, "scope.call");
    const task = this.#adopt<T>(fn.name, "call");
    task.run(fn, args);
    return task;
  }

  /** Cancels every task of the scope; the scope then rejects with `Cancelled` carrying `reason`. */
  cancel(reason?: unknown): void {
    if (this.#failure === undefined) this.#fail(new Cancelled(reason ?? "the scope was cancelled"), reason);
  }

  #adopt<T>(name: string, what: string): Task<T> {
    if (this.#ended) {
      throw new TypeError(`scope.${what}: the scope has ended; a task started in it now would outlive it`);
    }
    const task = new Task<T>(name, undefined);
    // The scope's waiter gets the first error, attached errors the later ones.
    if (this.#policy === "fail") task.reportsErrors = false;
    this.#tasks.add(task as Task<unknown>);
    if (this.#reason) task.cancel(this.#reason.reason);
    task.owner = this;
    return task;
  }

  /** @internal A task of the scope ended (Task calls it, as it settles). */
  taskEnded(task: Task<unknown>, threw: boolean, error: unknown): void {
    if (threw) this.#failed(task, error);
    this.#forget(task);
  }

  #failed(task: Task<unknown>, error: unknown): void {
    // Its own cancel (the scope's, or one by hand on that task) is no failure.
    if (error instanceof Cancelled && task.cancelled) return;
    if (this.#policy === "report") return; // the task told its supervisor
    if (this.#failure === undefined) return this.#fail(error, error);
    if (error !== this.#failure.error && !attach(this.#failure.error, error)) task.reportError();
  }

  #fail(error: unknown, reason: unknown): void {
    this.#failure = { error };
    this.#reason = { reason };
    this.#controller?.abort(new Cancelled(reason));
    for (const task of this.#tasks) task.cancel(reason);
  }

  #forget(task: Task<unknown>): void {
    this.#tasks.delete(task);
    if (this.#tasks.size === 0) { for (const resolve of this.#idle.splice(0)) resolve(); }
  }

  /** @internal Cancels the scope for its waiter's cancel (or deadline), unless it failed already. */
  cancelFromOutside(error: Cancelled | TimedOut): void {
    if (this.#failure === undefined) this.#fail(error, reasonOf(error));
  }

  /** @internal Resolves once no task of the scope runs (at once if none does). */
  whenIdle(): Promise<void> {
    if (this.#tasks.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /**
   * @internal Waits until no task of the scope runs, then ends it (no task can start in
   * it any more). Resolves with its first failure, if any.
   */
  async settle(): Promise<{ error: unknown } | undefined> {
    while (this.#tasks.size > 0) await this.whenIdle();
    this.#ended = true;
    return this.#failure;
  }
}

/**
 * Runs `fn(s)` as a task, with `s` a scope that the tasks it starts (`s.go`, `s.call`)
 * cannot outlive. Resolves with what `fn` returns, once `fn` and every task of the scope
 * have ended; never before, whatever happens.
 *
 * - The first failure (of `fn` or of a task) cancels `fn` and every other task, with
 *   that error as the reason, and the scope rejects with it. Errors that tasks throw after
 *   it are attached to it as `error.suppressed` (an array), or, when it cannot hold them
 *   (a primitive, a frozen object, `MAX_SUPPRESSED` reached), go to their supervisor.
 * - Cancelling the task that awaits the scope (`task.cancel`, `options.signal`, a
 *   `withDeadline` around it) cancels every task; the scope waits for them, then rejects
 *   with that `Cancelled`. A task cancelled by hand (`s.go(...).cancel()`) just ends.
 * - `s.go` after the scope has ended throws a `TypeError`. Scopes nest: cancelling a task
 *   cancels the scopes it waits for, and theirs.
 *
 * @example
 * ```ts
 * // Two pumps of a proxy: when either ends or fails, the other is cancelled.
 * await scope(async (s) => {
 *   s.go(pump, client, upstream);
 *   s.go(pump, upstream, client);
 * });
 * ```
 */
export function scope<T>(fn: (s: Scope) => T | PromiseLike<T>, options?: ScopeOptions): Promise<T> {
  let signal: AbortSignal | undefined;
  try {
    checkFn(fn, "scope");
    signal = enter(options, "scope");
  } catch (error) {
    return Promise.reject(error);
  }
  const s = new Scope();
  const release = guardWait((error) => s.cancelFromOutside(error), signal);
  const body = s.call(fn, s);
  return s.settle().then((failure) => {
    release?.();
    if (failure) throw failure.error;
    return body.done;
  });
}

/** A scope for `await using`: see `openScope`. */
export interface OpenScope extends Scope, AsyncDisposable {}

class DisposableScope extends Scope implements AsyncDisposable {
  readonly #release: () => void;
  /** The cancel of the task that opened the scope: the block's own code gets it, not the end. */
  #ownersCancel: unknown;

  constructor(signal: AbortSignal | undefined) {
    super("fail");
    // The task that opened it: its cancel reaches the scope's tasks, and still reaches
    // the block's own waits (watched, not taken).
    const task = currentTask();
    const unwatch = task?.watchCancel((error) => {
      this.#ownersCancel = error;
      this.cancelFromOutside(error);
    }) ?? (() => {});
    const onAbort = () => this.cancelFromOutside(new Cancelled(signal!.reason));
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#release = () => {
      unwatch();
      signal?.removeEventListener("abort", onAbort);
    };
  }

  /** Waits for every task of the scope, then ends it; throws its first failure. */
  async [Symbol.asyncDispose](): Promise<void> {
    // Cancelled while it waits here: the scope's tasks are cancelled, and it throws that.
    const release = guardWait((error) => this.cancelFromOutside(error));
    try {
      const failure = await this.settle();
      // (The owner's cancel is thrown by the block's own wait, or its next one.)
      if (failure && failure.error !== this.#ownersCancel) throw failure.error;
    } finally {
      release?.();
      this.#release();
    }
  }
}

/**
 * A scope for `await using`: the tasks started in it (`s.go`, `s.call`) are waited for
 * at the block's end, and the first failure is thrown there (the others attached to it,
 * as with `scope`). A task that fails cancels the others and aborts `s.signal`; the
 * block's own code is the caller's, not a task of the scope, so it learns of it through
 * `s.signal` or at the block's end. Cancelling the task that opened the scope cancels
 * every task in it. A block that may throw while tasks run should use `scope(fn)`, which
 * cancels them when `fn` throws, or call `s.cancel()` itself: `await using` cannot tell
 * the scope that the block threw.
 *
 * @example
 * ```ts
 * {
 *   await using s = openScope();
 *   const a = s.go(fetchPart, 1);
 *   const b = s.go(fetchPart, 2);
 * } // both have ended here; the first failure is thrown
 * ```
 */
export function openScope(options?: ScopeOptions): OpenScope {
  return new DisposableScope(enter(options, "openScope"));
}

/** Disposes of a value nobody will use (a second winner of a race), reporting a failure. */
async function discard(value: unknown): Promise<void> {
  try {
    const v = value as Partial<AsyncDisposable & Disposable> | null;
    if (typeof v?.[Symbol.asyncDispose] === "function") await v[Symbol.asyncDispose]!();
    else if (typeof v?.[Symbol.dispose] === "function") v[Symbol.dispose]!();
  } catch (error) {
    const task = currentTask();
    if (task) report(task, { kind: "error", task, error });
    else console.error("zev: race: disposing of a result nobody took failed:", error);
  }
}

/**
 * Runs each function as a task of one scope and resolves with the first result: the
 * others are then cancelled, and awaited before it resolves. A function that fails does
 * not end the race; when every one has failed, it rejects with an `AggregateError` of
 * their errors, in order. A result that comes second (or after the race was cancelled)
 * is disposed of if it can be (`Symbol.asyncDispose` or `Symbol.dispose`, as a `Stream`),
 * so that a connect that won too late leaves nothing open. Cancelling the task that
 * awaits it cancels every function and rejects with that `Cancelled`.
 *
 * @example
 * ```ts
 * // Happy eyeballs: the first connect to succeed wins, the others are cancelled.
 * const stream = await race(
 *   () => connect({ hostname: "::1", port }),
 *   async () => (await sleep(250), connect({ hostname: "127.0.0.1", port })),
 * );
 * ```
 */
export function race<const F extends readonly (() => unknown)[]>(...fns: F): Promise<Awaited<ReturnType<F[number]>>> {
  for (const [i, fn] of fns.entries()) {
    if (typeof fn !== "function") {
      return Promise.reject(new TypeError(`race: argument ${i} must be a function, not ${show(fn)}`));
    }
  }
  if (fns.length === 0) return Promise.reject(new TypeError("race: needs at least one function"));
  type R = Awaited<ReturnType<F[number]>>;
  const s = new Scope();
  const release = guardWait((error) => s.cancelFromOutside(error));
  let won: { value: R } | undefined;
  const errors: unknown[] = new Array(fns.length);
  const tasks: Task<void>[] = [];
  for (const [i, fn] of fns.entries()) {
    if (s.cancelled) break;
    const entry = async (): Promise<void> => {
      let value: R;
      try {
        value = await fn() as R;
      } catch (error) {
        errors[i] = error;
        return;
      }
      if (won !== undefined || s.cancelled) return discard(value);
      won = { value };
      tasks.forEach((other, j) => j !== i && other.cancel("another function of the race won"));
    };
    Object.defineProperty(entry, "name", { value: fn.name });
    tasks.push(s.call(entry));
  }
  return s.settle().then(async (failure): Promise<R> => {
    release?.();
    if (failure) {
      if (won) await discard(won.value);
      throw failure.error;
    }
    if (won) return won.value;
    throw new AggregateError(errors, `race: all ${fns.length} functions failed`);
  });
}
