/**
 * A server on this thread: a listener and its accept loop, with a graceful shutdown
 * (what `serve` runs, and what each Worker of `serve({ workers })` runs).
 *
 * @module
 */

import type { Addr, AnyAddr } from "../net/addr.ts";
import { AcceptLoop, type AcceptLoopOptions, graceMs, type ShutdownOptions } from "./accept_loop.ts";
import { listen, type ListenOptions, type UnixListenOptions } from "../net/open.ts";
import type { Stream } from "../net/stream.ts";
import type { Listener } from "../net/listener.ts";
import { checkSupervisor } from "../core/validate.ts";

/** Options of `serve`: those of `listen` and of `acceptLoop`. */
export interface ServeOptions extends ListenOptions, AcceptLoopOptions {}

/** Options of `serve` with `workers`: n event loops in n Workers sharing the port. */
export interface WorkersServeOptions extends ServeOptions {
  /**
   * How many Workers serve, each with an event loop of its own, the kernel spreading
   * the connections over them (SO_REUSEPORT). The program's main module runs again in
   * each Worker, where this same call serves (as with Node's cluster: guard what only
   * the main thread should do with `workerIndex() === undefined`). 1 to 63.
   */
  workers: number;
  /**
   * Milliseconds each Worker may take to load the program and listen; one that has not
   * by then counts as failed (at start, `serve` rejects with `WorkerFailed`; later, it is
   * replaced). 30,000 by default.
   */
  startTimeout?: number;
}

/** Options of `serve` on a Unix socket: those of `listen({ path })` and of `acceptLoop`. */
export interface UnixServeOptions extends UnixListenOptions, AcceptLoopOptions {}

/** A running server, from `serve`. */
export interface Server<A extends AnyAddr = Addr> {
  /** The address it listens on. */
  readonly addr: A;
  /** Connection handlers still running. */
  readonly connections: number;
  /**
   * Resolves when the server has stopped: once `close` (or `await using`) has closed its
   * listener and its last handler has settled, one cut off by the grace period too. (Its
   * listener is its own: nothing else closes it; an accept error that keeps coming back
   * ends it as `close` does, see `acceptLoop`.)
   */
  readonly finished: Promise<void>;
  /**
   * Stops accepting and tells the running handlers at once: the pending and later reads
   * of their streams reject with `Cancelled` (reason "the server is closing"), while
   * writes go on, so a handler can send a goodbye and return, and its client gets a clean
   * end. Handlers finish within `gracePeriod` (default 10 s); the rest are then cancelled
   * and their streams reset. Resolves once every handler has settled, a cancelled one
   * after its cleanup (given 2 s after its cancel: a handler that ignores its cancel is
   * then left running, and said so on stderr). Calling it again returns the same promise.
   */
  close(options?: ShutdownOptions): Promise<void>;
  /** `await using server = serve(...)` closes it (with the default grace period). */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * @internal `serve` on this thread. `beforeFinish` runs once the server has stopped,
 * before `finished` resolves (a Worker reports it while it still can); `onConnections`
 * when a connection starts or ends.
 */
export function startServer<A extends AnyAddr>(
  options: ServeOptions | UnixServeOptions,
  handler: (stream: Stream<A>) => unknown,
  beforeFinish: () => void = () => {},
  onConnections?: () => void,
): Server<A> {
  // Checked before the listener opens: a bad supervisor must not leave it open.
  if (options?.supervisor !== undefined) checkSupervisor(options.supervisor, "serve");
  const listener = listen(options as ServeOptions) as unknown as Listener<A>;
  let loop: AcceptLoop<A>;
  try {
    loop = new AcceptLoop<A>(listener, handler, { supervisor: options?.supervisor, onConnections });
  } catch (error) {
    listener.close(); // refused: nothing it opened stays open
    throw error;
  }
  let closing: Promise<void> | undefined;
  let finish: () => void;
  const finished = new Promise<void>((resolve) =>
    finish = () => {
      beforeFinish();
      resolve();
    }
  );
  const close = (shutdown?: ShutdownOptions): Promise<void> => {
    if (closing === undefined) {
      // A bad argument rejects this call only: the server stays open, and closable.
      try {
        graceMs(shutdown);
      } catch (error) {
        return Promise.reject(error);
      }
      closing = loop.shutdown(shutdown).then(() => finish());
    }
    return closing;
  };
  // An accept loop that ended on an error (reported to the supervisor, the listener
  // closed) stops the server as `close` would, so that `finished` still comes.
  loop.done.catch(() => close());
  return {
    addr: listener.addr,
    get connections() {
      return loop.connections;
    },
    finished,
    close,
    [Symbol.asyncDispose]: () => close(),
  };
}
