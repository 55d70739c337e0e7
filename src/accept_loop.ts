/**
 * `acceptLoop`, after Janet's `net/accept-loop`: a supervised task per connection, and
 * the graceful shutdown a server needs (stop accepting, let handlers finish within a
 * grace period, then cancel the rest).
 *
 * @module
 */

import type { Listener } from "./listener.ts";
import type { Addr, AnyAddr } from "./addr.ts";
import type { Stream } from "./stream.ts";
import { call, currentTask, go, report, supervise, type Supervisor, type Task } from "./task.ts";
import { sleep } from "./deadline.ts";
import { checkMs, checkOptions, show } from "./validate.ts";

/** Options of `acceptLoop`. */
export interface AcceptLoopOptions {
  /**
   * Receives the errors of the connection tasks, or, a channel, one event per task end
   * (default: the inherited supervisor).
   */
  supervisor?: Supervisor;
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

/** @internal The grace period `close` asks for, checked (a bad one throws, closing nothing). */
export function graceMs(options: ShutdownOptions | undefined): number {
  const grace = checkOptions(options, "close")?.gracePeriod;
  return grace === undefined ? DEFAULT_GRACE_MS : checkMs(grace, "close", "gracePeriod");
}

/** @internal The accept loop and the connection tasks it started. */
export class AcceptLoop<A extends AnyAddr = Addr> {
  readonly done: Promise<void>;
  /** Connection tasks still running, with their streams. */
  readonly #live = new Map<Task<void>, Stream<A>>();
  #idle: (() => void)[] = [];

  constructor(readonly listener: Listener<A>, handler: (stream: Stream<A>) => unknown, options: AcceptLoopOptions) {
    if (typeof handler !== "function") {
      throw new TypeError(`acceptLoop: handler must be a function, not ${show(handler)}`);
    }
    const serve = async (stream: Stream<A>): Promise<void> => {
      try {
        await handler(stream);
      } finally {
        await stream.close(); // (a stream closed or aborted already returns its first close)
      }
    };
    Object.defineProperty(serve, "name", { value: handler.name || "connection handler" });
    const run = async (): Promise<void> => {
      while (!listener.closed) {
        let stream: Stream<A>;
        try {
          stream = await listener.accept();
        } catch (error) {
          if (listener.closed) return;
          // Not a closed listener: report it, and do not spin on a persistent failure.
          const task = currentTask()!;
          report(task, { kind: "error", task, error });
          await sleep(10);
          continue;
        }
        const task = go(serve, stream);
        this.#live.set(task, stream);
        task.done.then(this.#forget(task), this.#forget(task));
      }
    };
    Object.defineProperty(run, "name", { value: "acceptLoop" });
    this.done = (options.supervisor ? supervise(options.supervisor, run) : call(run)).done;
  }

  #forget = (task: Task<void>) => (): void => {
    this.#live.delete(task);
    if (this.#live.size === 0) { for (const resolve of this.#idle.splice(0)) resolve(); }
  };

  /** Resolves once no connection handler is running. */
  whenIdle(): Promise<void> {
    if (this.#live.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Connection handlers still running. */
  get connections(): number {
    return this.#live.size;
  }

  /**
   * Stops accepting (closes the listener), lets the running handlers finish within
   * `gracePeriod`, then cancels those still running and resets their streams. Resolves
   * once the accept loop has ended and every handler has settled or been cut off.
   */
  async shutdown(options?: ShutdownOptions): Promise<void> {
    const ms = graceMs(options);
    this.listener.close();
    await this.done.catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.whenIdle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
    for (const [task, stream] of this.#live) {
      task.cancel("the server is shutting down");
      stream.abort();
    }
    // Cancelled handlers finish at their next zev call; one turn lets them run.
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * Accepts connections until the listener closes, running `handler(stream)` as a task for
 * each (started with `go`). A handler's error goes to the supervisor and never stops
 * the loop; the stream is closed when its handler returns or throws. The returned
 * promise resolves when the listener closes; handlers still running go on (use `serve`
 * for a server that shuts its handlers down too).
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
  try {
    return new AcceptLoop(listener, handler, checkOptions(options, "acceptLoop") ?? {}).done;
  } catch (error) {
    return Promise.reject(error);
  }
}
