/**
 * `acceptLoop`, after Janet's `net/accept-loop`: a supervised task per connection, and
 * the graceful shutdown a server needs (stop accepting, let handlers finish within a
 * grace period, then cancel the rest).
 *
 * @module
 */

import { Listener } from "../net/listener.ts";
import type { Addr, AnyAddr } from "../net/addr.ts";
import type { Stream } from "../net/stream.ts";
import { call, currentTask, guardWait, reasonOf, report, supervise, type Supervisor } from "../tasks/task.ts";
import { sleep } from "../tasks/deadline.ts";
import { Scope } from "../tasks/scope.ts";
import { checkMs, checkOptions, checkSupervisor, show } from "../core/validate.ts";

/** Options of `acceptLoop`. */
export interface AcceptLoopOptions {
  /**
   * Receives the errors of the connection tasks, or, a channel, one event per task end
   * (default: the inherited supervisor).
   */
  supervisor?: Supervisor;
  /** @internal Called when a connection starts or ends (a Worker tells its count). */
  onConnections?: () => void;
}

/** Options of a graceful shutdown. */
export interface ShutdownOptions {
  /**
   * How long running handlers may go on after accepting stops, in milliseconds; then
   * they are cancelled and their streams reset. Default 10 000.
   */
  gracePeriod?: number;
}

const DEFAULT_GRACE_MS = 10_000;

/**
 * Accepts that fail in a row before the loop gives up. Errors a connection or a lack of
 * descriptors cause never get here (the native layer skips or retries them), so an
 * error that keeps coming back is the listener's own: the loop retries after 10, 20, 40
 * and 80 ms, reporting each failure, then ends with the fifth.
 */
const MAX_ACCEPT_FAILURES = 5;
const ACCEPT_RETRY_MS = 10;
/** How long cancelled handlers get for their cleanup before a server stops without them. */
const CLEANUP_MS = 2_000;

/** @internal The grace period `close` asks for, checked (a bad one throws, closing nothing). */
export function graceMs(options: ShutdownOptions | undefined): number {
  const grace = checkOptions(options, "close")?.gracePeriod;
  return grace === undefined ? DEFAULT_GRACE_MS : checkMs(grace, "close", "gracePeriod");
}

/** @internal The accept loop and the connection tasks it started. */
export class AcceptLoop<A extends AnyAddr = Addr> {
  readonly done: Promise<void>;
  /**
   * The connection tasks: a scope whose failures go to the supervisor (one handler's
   * error is not the server's), cancelled as one when the server stops.
   */
  readonly #handlers = new Scope("report", (task, threw) => this.#closeStream(task.resource as Stream<A>, threw));
  /** The streams of the connection tasks still running. */
  readonly #live = new Set<Stream<A>>();
  /** Ends a retry pause early once the loop is told to stop. */
  readonly #stop = new AbortController();
  #stopping: Promise<void> | undefined;
  readonly #onConnections: () => void;

  constructor(readonly listener: Listener<A>, handler: (stream: Stream<A>) => unknown, options: AcceptLoopOptions) {
    if (!(listener instanceof Listener)) {
      throw new TypeError(`acceptLoop: listener must be a Listener (from listen), not ${show(listener)}`);
    }
    if (typeof handler !== "function") {
      throw new TypeError(`acceptLoop: handler must be a function, not ${show(handler)}`);
    }
    if (options.supervisor !== undefined) checkSupervisor(options.supervisor, "acceptLoop");
    this.#onConnections = options.onConnections ?? (() => {});
    const name = handler.name || "connection handler";
    const run = async (): Promise<void> => {
      let failures = 0;
      while (!listener.closed) {
        let stream: Stream<A>;
        try {
          stream = await listener.accept();
        } catch (error) {
          if (listener.closed) return;
          // Not a closed listener: the listener's own failure. Report it and retry after
          // a pause that doubles; one that keeps coming back ends the loop (thrown, it is
          // reported and rejects the loop), closing the listener so that nobody connects
          // to a port no one serves.
          if (++failures >= MAX_ACCEPT_FAILURES) {
            listener.close();
            throw error;
          }
          const task = currentTask()!;
          report(task, { kind: "error", task, error });
          await sleep(ACCEPT_RETRY_MS * 2 ** (failures - 1), { signal: this.#stop.signal }).catch(() => {});
          continue;
        }
        failures = 0;
        this.#live.add(stream);
        this.#handlers.goWith(name, handler, stream);
        this.#onConnections();
      }
    };
    Object.defineProperty(run, "name", { value: "acceptLoop" });
    this.done = (options.supervisor ? supervise(options.supervisor, run) : call(run)).done;
  }

  /**
   * A connection's handler ended (`threw` or not): its stream is closed, as its task,
   * before the task settles (see `TaskOwner.taskEnding`: no async wrapper per connection).
   * After a throw, the handler's error stays the task's: a close that then fails too (its
   * queue could not be sent within the timeout) must not take its place. After a return,
   * a close that fails, its queue unsent, is the task's error. A stream the handler closed
   * or aborted itself is its own: so is what that close ended with.
   */
  #closeStream(stream: Stream<A>, threw: boolean): Promise<void> | undefined {
    if (stream.closed) {
      this.#forget(stream);
      return undefined;
    }
    const closing = stream.close().finally(() => this.#forget(stream));
    return threw ? closing.catch(() => {}) : closing;
  }

  /** A connection's stream is closed: it is no longer one of the server's connections. */
  #forget(stream: Stream<A>): void {
    this.#live.delete(stream);
    this.#onConnections();
  }

  /** Resolves once no connection handler is running. */
  whenIdle(): Promise<void> {
    return this.#handlers.whenIdle();
  }

  /** Connection handlers still running. */
  get connections(): number {
    return this.#live.size;
  }

  /**
   * Stops accepting (closes the listener), tells the running handlers at once (their
   * streams' pending and later reads reject with `Cancelled`, reason "the server is
   * closing"; writes go on), lets them finish within `gracePeriod`, then cancels those
   * still running and resets their streams. Resolves once the accept loop has ended and
   * every handler has settled, those cut off too.
   */
  shutdown(options?: ShutdownOptions): Promise<void> {
    let ms: number;
    try {
      ms = graceMs(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.stop(ms, "the server is shutting down");
  }

  /** The reason a closing server's handlers' reads end with (see `shutdown`). */
  static readonly CLOSING = "the server is closing";

  /**
   * `shutdown` with the grace period in milliseconds, cancelling the handlers still
   * running after it with `reason`. Once only: a second call returns the first's promise.
   * Resolves once every handler has settled, so that nothing of the loop runs after it.
   */
  stop(ms: number, reason: unknown): Promise<void> {
    return this.#stopping ??= (async () => {
      this.listener.close();
      this.#stop.abort();
      await this.done.catch(() => {});
      if (ms > 0) {
        // Told at once: a handler waiting for its client would otherwise learn nothing
        // until the grace period ends, and its client would get a reset.
        for (const stream of this.#live.values()) stream._endReads(AcceptLoop.CLOSING);
        await this.#idleWithin(ms);
      }
      this.#handlers.cancel(reason);
      for (const stream of this.#live.values()) stream.abort();
      // Cancelled handlers end at their next zev call (their streams are reset), then run
      // their cleanup: done means done. A handler that ignores its cancel (awaiting
      // something outside zev without `task.signal`) would hold the server forever: past
      // a bound it is left running, and said so.
      if (!await this.#idleWithin(CLEANUP_MS)) {
        console.error(
          `zev: ${this.#handlers.running} connection handler(s) still running ${CLEANUP_MS} ms after their cancel; the server stopped without them`,
        );
      }
    })();
  }

  /** Whether every handler settles within `ms`. */
  async #idleWithin(ms: number): Promise<boolean> {
    if (this.#handlers.running === 0) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<false>((resolve) => (timer = setTimeout(resolve, ms, false)));
    const idle = await Promise.race([this.whenIdle().then(() => true), late]);
    clearTimeout(timer);
    return idle;
  }
}

/**
 * Accepts connections until the listener closes, running `handler(stream)` as a task for
 * each (started with `go`). A handler's error goes to the supervisor and never stops
 * the loop; the stream is closed when its handler returns or throws. The returned
 * promise resolves when the listener closes; handlers still running go on (use `serve`
 * for a server that shuts its handlers down too).
 *
 * Cancelling the task that called it (`task.cancel`, a `withDeadline` that expires) ends
 * it as Janet's accept loop ends: the listener is closed, the running handlers are
 * cancelled and their streams reset, and once they have all settled the promise rejects
 * with that `Cancelled`.
 *
 * An accept that fails other than by the listener closing (the native layer already
 * skips connections that failed and retries when descriptors run out, so this is the
 * listener's own fault) is reported to the supervisor and retried after 10 ms, then 20,
 * 40 and 80 ms; the fifth failure in a row ends the loop: the listener is closed and
 * the promise rejects with that error (handlers still running go on). A bad `listener`,
 * `handler` or `supervisor` rejects at once, with a TypeError naming it.
 *
 * @example
 * ```ts
 * const listener = listen({ port: 0 });
 * acceptLoop(listener, async (stream) => {
 *   const buf = new Uint8Array(4096);
 *   for (let n; (n = await stream.read(buf)) !== null;) await stream.write(buf.subarray(0, n));
 * });
 * ```
 */
export function acceptLoop<A extends AnyAddr>(
  listener: Listener<A>,
  handler: (stream: Stream<A>) => unknown,
  options: AcceptLoopOptions = {},
): Promise<void> {
  let loop: AcceptLoop<A>;
  try {
    loop = new AcceptLoop(listener, handler, checkOptions(options, "acceptLoop") ?? {});
  } catch (error) {
    return Promise.reject(error);
  }
  return new Promise<void>((resolve, reject) => {
    let cancelled = false;
    // The caller's cancel ends the loop and its handlers; then the loop rejects with it
    // (not with the end of the loop that the cancel itself brings about).
    const release = guardWait((error) => {
      cancelled = true;
      const end = () => reject(error);
      loop.stop(0, reasonOf(error)).then(end, end);
    });
    if (release === null) return;
    loop.done.then(
      () => {
        release();
        if (!cancelled) resolve();
      },
      (error) => {
        release();
        if (!cancelled) reject(error);
      },
    );
  });
}
