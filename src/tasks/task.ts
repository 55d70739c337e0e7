/**
 * Supervised tasks, after Janet's `ev/go` and `ev/call`.
 *
 * A task runs an async function. Its result is `task.done`; an error it throws is never
 * lost: it goes to the task's supervisor (inherited from the task that started it; the
 * default one reports on stderr), and `done` rejects with it too, without ever becoming
 * an unhandled rejection. `task.cancel(reason)` rejects the task's current zev wait
 * (`read`, `write`, `accept`, `sleep`, a channel's `give`/`take`...) with `Cancelled`, or
 * its next one if it is not waiting in zev at that moment: the cancel is delivered where
 * the task suspends, as in Janet. `task.signal` aborts at the same time, for APIs
 * outside zev.
 *
 * @module
 */

import type { AsyncLocalStorage } from "node:async_hooks";
import { live, outsideTasks, running } from "../core/context.ts";
import { Cancelled, TimedOut } from "../core/errors.ts";
import { checkOptions, checkSignal, checkSupervisor, show } from "../core/validate.ts";

/** Receives the errors of the tasks it supervises. */
export type Supervisor = ((error: unknown, task: Task<unknown>) => void) | TaskEventSink;

/** How a task ended, as a channel supervisor receives it (Janet's supervisor events). */
export interface TaskEvent {
  /** "ok": it returned; "error": it threw; "cancelled": it ended on its cancel. */
  kind: "ok" | "error" | "cancelled";
  /** The task. */
  task: Task<unknown>;
  /** What it returned ("ok"). */
  value?: unknown;
  /** What it threw ("error", "cancelled"). */
  error?: unknown;
}

/** A supervisor that receives one event per task end: a `Channel<TaskEvent>`. */
export interface TaskEventSink {
  /** Receives an event (a channel's `give`). */
  give(event: TaskEvent): Promise<void>;
}

/**
 * Events a supervisor channel may have waiting for room (no task waits behind them, so
 * nothing else bounds them). Past it, an event goes to stderr instead.
 */
export const MAX_PENDING_EVENTS = 1024;
const pendingEvents = new WeakMap<TaskEventSink, number>();

/**
 * Tells `task`'s supervisor how it ended: a function supervisor gets errors other than a
 * cancel; a channel supervisor gets every end. A supervisor that fails, or a channel
 * with `MAX_PENDING_EVENTS` events already waiting, is reported on stderr with the event,
 * so nothing is lost without a word.
 */
export function report(task: Task<unknown>, event: TaskEvent): void {
  const supervisor = task.supervisor;
  try {
    if (typeof supervisor === "function") {
      if (event.kind === "error") supervisor(event.error, task);
    } else {
      const waiting = pendingEvents.get(supervisor) ?? 0;
      if (waiting >= MAX_PENDING_EVENTS) {
        console.error(
          `zev: the supervisor channel of task ${task.name} has ${waiting} events waiting for room; its ${event.kind} event:`,
          event.error ?? event.value,
        );
        return;
      }
      // Outside every task: the give must not take the cancel of whichever task's
      // context this runs in (the caller of `call`, say). A give that throws at once is
      // reported below and counts for nothing.
      const given = Promise.resolve(outsideTasks(() => supervisor.give(event)));
      pendingEvents.set(supervisor, waiting + 1);
      const settled = () => pendingEvents.set(supervisor, pendingEvents.get(supervisor)! - 1);
      given.then(settled, (inner) => {
        settled();
        console.error(
          `zev: the supervisor channel of task ${task.name} refused its ${event.kind} event:`,
          inner,
          event.error ?? "",
        );
      });
    }
  } catch (inner) {
    console.error(`zev: the supervisor of task ${task.name} threw:`, inner, event.error ?? "");
  }
}

/** Errors that are routine for a server (a peer went away): one line, no stack. */
const ROUTINE = new Set(["ConnectionReset", "BrokenPipe", "TimedOut", "TlsTruncated"]);

/** @internal The default supervisor: logs to stderr. */
export const stderrSupervisor: Supervisor = (error: unknown, task: Task<unknown>) => {
  const code = (error as { code?: unknown } | null)?.code;
  if (error instanceof Error && typeof code === "string" && ROUTINE.has(code)) {
    console.error(`zev: task ${task.name}: ${error.message}`);
  } else {
    console.error(`zev: task ${task.name} failed:`, error);
  }
};

let defaultSupervisor: Supervisor = stderrSupervisor;

/** Sets the supervisor of tasks that have no other (the default logs to stderr). */
export function setDefaultSupervisor(supervisor: Supervisor): void {
  checkSupervisor(supervisor, "setDefaultSupervisor");
  defaultSupervisor = supervisor;
}

/** The task whose code is running, across awaits. */
const current = running as AsyncLocalStorage<Task<unknown>>;

/** Tasks with a cancel not yet delivered (so that most zev calls need not look one up). */
let pendingCancels = 0;

/** @internal Cancels not yet delivered, in every task (tests check none outlives its task). */
export function pendingCancelCount(): number {
  return pendingCancels;
}

/**
 * A pending wait's way to be cancelled: a function, or an object whose `_cancelWait` it
 * is (a stream's read: one closure fewer for every connection waiting for its client).
 */
export type CancelWait = ((error: Cancelled | TimedOut) => void) | { _cancelWait(error: Cancelled | TimedOut): void };

function fire(wait: CancelWait, error: Cancelled | TimedOut): void {
  if (typeof wait === "function") wait(error);
  else wait._cancelWait(error);
}

const REPORTS_ERRORS = 1, CANCELLED = 2, REPORTED = 4, RETURNED = 8, THREW = 16;

/** What few tasks need (see `Task`). */
class RareTaskState {
  controller: AbortController | undefined = undefined;
  moreWaits: Set<CancelWait> | undefined = undefined;
  pendingCancel: Cancelled | undefined = undefined;
  watchers: Set<CancelWait> | undefined = undefined;
}

/** @internal What a task tells of its end (a scope): whether it threw, and what. */
export interface TaskOwner {
  /**
   * Runs as the task once its function has ended, before it settles: the task settles
   * when the promise returned settles (acceptLoop closes a connection's stream here,
   * with no async wrapper per connection). A rejection is the task's error if its
   * function had returned; after a throw, the throw stays the task's error.
   */
  readonly taskEnding?: (task: Task<unknown>, threw: boolean) => PromiseLike<void> | undefined;
  taskEnded(task: Task<unknown>, threw: boolean, error: unknown): void;
}

/** A running async function, its result, and a handle to cancel it. */
export class Task<T> {
  /** The function's name, for messages ("anonymous" if it has none). */
  readonly name: string;
  /** Receives the task's error (inherited from the task that started it). */
  readonly supervisor: Supervisor;
  // A server holds a task per connection, most of them waiting: the flags share one
  // number and what few tasks use (a signal, more waits, a cancel not yet delivered,
  // watchers) lives in an object made on first use, behind private accessors.
  #bits = REPORTS_ERRORS;
  #rare: RareTaskState | undefined;
  /** The task's pending wait: nearly always one, so one slot here and a set for the rest. */
  #wait: CancelWait | undefined;
  #outcome: unknown;
  /**
   * @internal Told when the task ends, in the same turn (its scope): a field rather than
   * a callback on `done`, which would cost every connection task a promise chain.
   */
  owner: TaskOwner | undefined;
  /** @internal What the task's owner gave it to work on (a connection task's stream). */
  resource: unknown;
  // `done` is made on first use: a server's connection tasks are rarely awaited, and a
  // promise plus the handler that keeps it from counting as unhandled is two per task.
  #done: Promise<T> | undefined;
  #resolvers: [resolve: (value: T) => void, reject: (error: unknown) => void] | undefined;

  /**
   * @internal Whether the task's own error goes to its supervisor. `withDeadline` hands
   * its task's error to its caller instead, until the deadline has passed.
   */
  get reportsErrors(): boolean {
    return (this.#bits & REPORTS_ERRORS) !== 0;
  }
  set reportsErrors(on: boolean) {
    this.#bits = on ? this.#bits | REPORTS_ERRORS : this.#bits & ~REPORTS_ERRORS;
  }
  get #cancelled(): boolean {
    return (this.#bits & CANCELLED) !== 0;
  }
  set #cancelled(_: true) {
    this.#bits |= CANCELLED;
  }
  /** Whether its end went to the supervisor. */
  get #reported(): boolean {
    return (this.#bits & REPORTED) !== 0;
  }
  set #reported(_: true) {
    this.#bits |= REPORTED;
  }
  /** 0 running, 1 returned, 2 threw. */
  get #state(): 0 | 1 | 2 {
    return (this.#bits & RETURNED) !== 0 ? 1 : (this.#bits & THREW) !== 0 ? 2 : 0;
  }
  set #state(state: 1 | 2) {
    this.#bits |= state === 1 ? RETURNED : THREW;
  }
  get #controller(): AbortController | undefined {
    return this.#rare?.controller;
  }
  set #controller(controller: AbortController) {
    this.#setRare("controller", controller);
  }
  get #moreWaits(): Set<CancelWait> | undefined {
    return this.#rare?.moreWaits;
  }
  set #moreWaits(waits: Set<CancelWait>) {
    this.#setRare("moreWaits", waits);
  }
  get #pendingCancel(): Cancelled | undefined {
    return this.#rare?.pendingCancel;
  }
  set #pendingCancel(error: Cancelled | undefined) {
    this.#setRare("pendingCancel", error);
  }
  /** Told of the cancel without taking it (an open scope's tasks): it still reaches a wait. */
  get #watchers(): Set<CancelWait> | undefined {
    return this.#rare?.watchers;
  }
  set #watchers(watchers: Set<CancelWait> | undefined) {
    this.#setRare("watchers", watchers);
  }
  /** Stores rare state; storing `undefined` where none was made makes none. */
  #setRare<K extends keyof RareTaskState>(key: K, value: RareTaskState[K]): void {
    if (value !== undefined || this.#rare) (this.#rare ??= new RareTaskState())[key] = value;
  }

  /** @internal Tasks come from `go`, `call`, `supervise`, `acceptLoop` and `withDeadline`. */
  constructor(name: string, supervisor: Supervisor | undefined) {
    this.name = name || "anonymous";
    this.supervisor = supervisor ?? current.getStore()?.supervisor ?? defaultSupervisor;
  }

  /** Settles with the function's result or error. Awaiting it is optional. */
  get done(): Promise<T> {
    if (this.#done) return this.#done;
    if (this.#state === 1) return (this.#done = Promise.resolve(this.#outcome as T));
    this.#done = this.#state === 2
      ? Promise.reject(this.#outcome)
      : new Promise<T>((resolve, reject) => (this.#resolvers = [resolve, reject]));
    // The error goes to the supervisor; an unobserved `done` must not crash the process.
    this.#done.catch(() => {});
    return this.#done;
  }

  /** Aborts when the task is cancelled. (Made on first use: most tasks never need one.) */
  get signal(): AbortSignal {
    return (this.#controller ??= new AbortController()).signal;
  }

  /** Whether the function has returned or thrown. */
  get settled(): boolean {
    return this.#state !== 0;
  }

  /** Whether `cancel` has been called. */
  get cancelled(): boolean {
    return this.#cancelled;
  }

  /**
   * Cancels the task: its current zev wait (or its next zev call) rejects with
   * `Cancelled` carrying `reason`, and `signal` aborts. A task is cancelled once: later
   * calls do nothing, so the cleanup a task runs after catching `Cancelled` is not
   * cancelled in turn. Does nothing once the task has settled.
   */
  cancel(reason?: unknown): void {
    if (this.#state !== 0 || this.#cancelled) return;
    const error = new Cancelled(reason ?? `task ${this.name} was cancelled`);
    this.#cancelled = true;
    const signal = this.signal;
    if (!signal.aborted) this.#controller!.abort(error);
    const waits = [...(this.#wait ? [this.#wait] : []), ...(this.#moreWaits ?? [])];
    this.#wait = undefined;
    this.#moreWaits?.clear();
    if (waits.length === 0) {
      this.#pendingCancel = error;
      pendingCancels++;
    }
    for (const cancel of waits) fire(cancel, error);
    for (const watch of this.#watchers ?? []) fire(watch, error);
    this.#watchers = undefined;
  }

  /**
   * @internal Calls `watch` when the task is cancelled, without taking the cancel from
   * the task's own waits. Returns the function that stops watching.
   */
  watchCancel(watch: CancelWait): () => void {
    if (this.#state !== 0 || this.#cancelled) return () => {};
    (this.#watchers ??= new Set()).add(watch);
    return () => void this.#watchers?.delete(watch);
  }

  /** @internal Runs `fn` as this task. */
  run<A extends unknown[]>(fn: (...args: A) => T | PromiseLike<T>, args: A): void {
    live.tasks++;
    let result: T | PromiseLike<T>;
    try {
      result = current.run(this as Task<unknown>, fn, ...args);
    } catch (error) {
      this.#end(true, error);
      return;
    }
    if (result instanceof Promise) result.then((value) => this.#end(false, value), (error) => this.#end(true, error));
    else Promise.resolve(result).then((value) => this.#end(false, value), (error) => this.#end(true, error));
  }

  /** The function ended (`threw` or not, with `outcome`): the owner's ending, then settle. */
  #end(threw: boolean, outcome: unknown): void {
    const ending = this.owner?.taskEnding;
    let after: PromiseLike<void> | undefined;
    if (ending) {
      try {
        after = current.run(this as Task<unknown>, ending, this as Task<unknown>, threw);
      } catch (error) {
        if (!threw) [threw, outcome] = [true, error];
      }
    }
    if (after === undefined) {
      if (threw) this.#fail(outcome);
      else this.#succeed(outcome as T);
      return;
    }
    after.then(
      () => threw ? this.#fail(outcome) : this.#succeed(outcome as T),
      (error) => this.#fail(threw ? outcome : error),
    );
  }

  #succeed(value: T): void {
    live.tasks--;
    this.#state = 1;
    this.#outcome = value;
    this.#dropPendingCancel();
    this.#resolvers?.[0](value);
    if (typeof this.supervisor !== "function") {
      report(this as Task<unknown>, { kind: "ok", task: this as Task<unknown>, value });
    }
    this.owner?.taskEnded(this as Task<unknown>, false, undefined);
  }

  #fail(error: unknown): void {
    live.tasks--;
    this.#state = 2;
    this.#outcome = error;
    this.#dropPendingCancel();
    this.#resolvers?.[1](error);
    // A function supervisor is not told an error the caller of withDeadline or gather
    // gets; a channel supervisor is told every end, as it promises.
    if (this.reportsErrors || typeof this.supervisor !== "function") this.reportError();
    this.owner?.taskEnded(this as Task<unknown>, true, error);
  }

  /** @internal Whether the function threw (known at once, before `done` settles). */
  get threw(): boolean {
    return this.#state === 2;
  }

  /**
   * @internal Tells the supervisor the error this task threw, unless it was told: for
   * an error held back (`reportsErrors` false) that nobody else received after all.
   */
  reportError(): void {
    if (this.#state !== 2 || this.#reported) return;
    this.#reported = true;
    const error = this.#outcome;
    report(this as Task<unknown>, {
      kind: error instanceof Cancelled ? "cancelled" : "error",
      task: this as Task<unknown>,
      error,
    });
  }

  /** A cancel that was never delivered ends with its task (and nobody watches for one). */
  #dropPendingCancel(): void {
    this.#watchers = undefined;
    if (this.#pendingCancel === undefined) return;
    this.#pendingCancel = undefined;
    pendingCancels--;
  }

  /** @internal Takes the cancel not yet delivered, if any (a zev call delivers it). */
  takePendingCancel(): Cancelled | undefined {
    const pending = this.#pendingCancel;
    if (pending === undefined) return undefined;
    this.#pendingCancel = undefined;
    pendingCancels--;
    return pending;
  }

  /** @internal Registers a wait of this task; returns false if a cancel was pending. */
  addWait(cancel: CancelWait): boolean {
    const pending = this.takePendingCancel();
    if (pending) {
      fire(cancel, pending);
      return false;
    }
    if (this.#wait === undefined) this.#wait = cancel;
    else (this.#moreWaits ??= new Set()).add(cancel);
    return true;
  }

  /** @internal */
  removeWait(cancel: CancelWait): void {
    if (this.#wait === cancel) this.#wait = undefined;
    else this.#moreWaits?.delete(cancel);
  }
}

/** The running task, if the caller runs inside one. */
export function currentTask(): Task<unknown> | undefined {
  return current.getStore();
}

/**
 * What a wait ends with when `signal` aborts: `TimedOut` when its reason is a
 * `TimeoutError` (`AbortSignal.timeout(ms)`: a deadline), with that reason as `cause`;
 * else `Cancelled` carrying the reason.
 */
export function abortedBy(signal: AbortSignal): Cancelled | TimedOut {
  const reason = signal.reason;
  if (reason instanceof Error && reason.name === "TimeoutError") {
    const error = new TimedOut(`timed out: ${reason.message} (the signal's deadline passed)`);
    error.cause = reason;
    return error;
  }
  return new Cancelled(reason);
}

/** The reason a wait's end carries on: a cancel's reason, or the error itself (a deadline). */
export function reasonOf(error: Cancelled | TimedOut): unknown {
  return error instanceof Cancelled ? error.reason : error;
}

/**
 * The prologue of every call that may wait: its options checked (an object or undefined,
 * with an AbortSignal or none), then an aborted signal or a pending cancel of the calling
 * task honoured. Returns the signal; throws what the call must reject with. (Checks of
 * the call's other arguments come first, in the caller.)
 */
export function enter(options: { signal?: AbortSignal } | undefined, what: string): AbortSignal | undefined {
  const signal = checkOptions(options, what)?.signal;
  const cancelled = cancelledOnEntry(signal, what);
  if (cancelled) throw cancelled;
  return signal;
}

/**
 * What every zev call checks before it does anything: an aborted `signal`, or a cancel
 * of the calling task not yet delivered. Returns the `Cancelled` to reject with (the
 * task's cancel is delivered, and so consumed, here), or undefined to go on.
 */
export function cancelledOnEntry(signal: AbortSignal | undefined, what: string): Cancelled | TimedOut | undefined {
  if (checkSignal(signal, what)?.aborted) return abortedBy(signal!);
  // Most calls come with no cancel pending anywhere: skip looking up the task.
  return pendingCancels === 0 ? undefined : current.getStore()?.takePendingCancel();
}

/**
 * A wait tied to a signal (and maybe a task): whichever of the two fires first lets go
 * of the other before the wait is cancelled, so no abort listener outlives its wait.
 */
class SignalGuard {
  constructor(readonly task: Task<unknown> | undefined, readonly signal: AbortSignal, readonly cancel: CancelWait) {}
  onAbort = (): void => {
    this.task?.removeWait(this.onCancel);
    fire(this.cancel, abortedBy(this.signal));
  };
  onCancel = (error: Cancelled | TimedOut): void => {
    this.signal.removeEventListener("abort", this.onAbort);
    fire(this.cancel, error);
  };
}

/** What ties a pending wait to its task and signal; `undefined` when nothing does. */
export type Guard = Task<unknown> | SignalGuard | undefined;

/**
 * Ties a pending wait to the current task's cancellation and to `signal`: `cancel` is
 * called with a `Cancelled` error if either fires first. Returns the guard to hand to
 * `untieWait` when the wait ends, or null when `cancel` was called at once. Without a
 * signal this allocates nothing: it is on the path of every read that has to wait.
 */
export function tieWait(cancel: CancelWait, signal?: AbortSignal): Guard | null {
  const task = current.getStore();
  if (signal === undefined) {
    if (task === undefined) return undefined;
    return task.addWait(cancel) ? task : null;
  }
  if (signal.aborted) {
    fire(cancel, abortedBy(signal));
    return null;
  }
  const guard = new SignalGuard(task, signal, cancel);
  // The listener first: a signal that is not an AbortSignal throws here, before the
  // task holds a wait that nothing would ever untie.
  signal.addEventListener("abort", guard.onAbort, { once: true });
  if (task && !task.addWait(guard.onCancel)) return null;
  return guard;
}

/** Unties a wait that ended by itself (see `tieWait`). */
export function untieWait(guard: Guard | null, cancel: CancelWait): void {
  if (guard === undefined || guard === null) return;
  if (guard instanceof Task) return guard.removeWait(cancel);
  guard.task?.removeWait(guard.onCancel);
  guard.signal.removeEventListener("abort", guard.onAbort);
}

/**
 * `tieWait` for waits off the hot path: returns the function that unties the wait, or
 * null when `cancel` was called at once.
 */
export function guardWait(cancel: CancelWait, signal?: AbortSignal): (() => void) | null {
  const guard = tieWait(cancel, signal);
  return guard === null ? null : () => untieWait(guard, cancel);
}

/** A task's function: checked when the task is made, not when it would run. */
export function checkFn(fn: unknown, what: string): void {
  if (typeof fn !== "function") throw new TypeError(`${what}: fn must be a function, not ${show(fn)}`);
}

// Tasks started by `go` wait for the loop's next turn, all in one macrotask.
let runQueue: { task: Task<unknown>; fn: (...args: never[]) => unknown; args: unknown[] }[] = [];

function flushRunQueue(): void {
  const queue = runQueue;
  runQueue = [];
  for (const { task, fn, args } of queue) task.run(fn as (...args: unknown[]) => unknown, args);
}

/**
 * Starts `fn(...args)` as a supervised task on the loop's next turn (Janet's `ev/go`).
 *
 * @example
 * ```ts
 * const task = go(async (ms: number) => { await sleep(ms); return "done"; }, 10);
 * console.log(await task.done);
 * ```
 */
export function go<A extends unknown[], T>(fn: (...args: A) => T | PromiseLike<T>, ...args: A): Task<T> {
  checkFn(fn, "go");
  const task = new Task<T>(fn.name, undefined);
  runNextTurn(task, fn, args);
  return task;
}

/** @internal Runs `task` as `fn(...args)` on the loop's next turn (as `go` does). */
export function runNextTurn<A extends unknown[], T>(
  task: Task<T>,
  fn: (...args: A) => T | PromiseLike<T>,
  args: A,
): void {
  runQueue.push({ task: task as Task<unknown>, fn: fn as (...args: never[]) => unknown, args });
  if (runQueue.length === 1) setImmediate(flushRunQueue);
}

/**
 * Runs `fn(...args)` as a supervised task that starts at once, in the caller's turn
 * (Janet's `ev/call`): its code up to its first await has run when `call` returns.
 *
 * @example
 * ```ts
 * const task = call(async () => { throw new Error("boom"); }); // reported to the supervisor
 * await task.done.catch((e) => console.log(e.message));
 * ```
 */
export function call<A extends unknown[], T>(fn: (...args: A) => T | PromiseLike<T>, ...args: A): Task<T> {
  checkFn(fn, "call");
  const task = new Task<T>(fn.name, undefined);
  task.run(fn, args);
  return task;
}

/**
 * Like `call`, but the task, and every task it starts, report their errors to
 * `supervisor` instead of the inherited one.
 *
 * @example
 * ```ts
 * const errors: unknown[] = [];
 * supervise((e) => errors.push(e), async () => { go(async () => { throw new Error("x"); }); });
 * ```
 */
export function supervise<A extends unknown[], T>(
  supervisor: Supervisor,
  fn: (...args: A) => T | PromiseLike<T>,
  ...args: A
): Task<T> {
  checkSupervisor(supervisor, "supervise");
  checkFn(fn, "supervise");
  const task = new Task<T>(fn.name, supervisor);
  task.run(fn, args);
  return task;
}
