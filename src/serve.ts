/**
 * `serve`, after Janet's `net/server`: listen and run an accept loop in one call, with a
 * graceful shutdown.
 *
 * @module
 */

import type { Addr, AnyAddr, UnixAddr } from "./addr.ts";
import { AcceptLoop, type AcceptLoopOptions, type ShutdownOptions } from "./accept_loop.ts";
import { listen, type ListenOptions, type UnixListenOptions } from "./net.ts";
import type { Stream } from "./stream.ts";
import type { Listener } from "./listener.ts";
import { show } from "./validate.ts";

/** Options of `serve`: those of `listen` and of `acceptLoop`. */
export interface ServeOptions extends ListenOptions, AcceptLoopOptions {}

/** Options of `serve` on a Unix socket: those of `listen({ path })` and of `acceptLoop`. */
export interface UnixServeOptions extends UnixListenOptions, AcceptLoopOptions {}

/** A running server, from `serve`. */
export interface Server<A extends AnyAddr = Addr> {
  /** The address it listens on. */
  readonly addr: A;
  /** Connection handlers still running. */
  readonly connections: number;
  /**
   * Resolves when the server has stopped: after `close`, or once its listener was closed
   * otherwise and the last handler has finished.
   */
  readonly finished: Promise<void>;
  /**
   * Stops accepting, lets running handlers finish within `gracePeriod` (default 10 s),
   * then cancels the rest and resets their streams. Calling it again returns the same
   * promise.
   */
  close(options?: ShutdownOptions): Promise<void>;
  /** `await using server = serve(...)` closes it (with the default grace period). */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Listens on a Unix socket (see `listen({ path })`) and runs `handler(stream)` as a
 * supervised task for each connection.
 *
 * @example
 * ```ts
 * const server = serve({ path: "/tmp/app.sock" }, async (stream) => {
 *   await stream.write(new TextEncoder().encode("hello\n"));
 * });
 * ```
 */
export function serve(options: UnixServeOptions, handler: (stream: Stream<UnixAddr>) => unknown): Server<UnixAddr>;
/**
 * Listens and runs `handler(stream)` as a supervised task for each connection.
 *
 * @example
 * ```ts
 * const server = serve({ hostname: "127.0.0.1", port: 8080 }, async (stream) => {
 *   const buf = new Uint8Array(4096);
 *   for (let n; (n = await stream.read(buf)) !== null;) await stream.write(buf.subarray(0, n));
 * });
 * process.on("SIGINT", () => server.close({ gracePeriod: 5000 }));
 * await server.finished;
 * ```
 */
export function serve(options: ServeOptions, handler: (stream: Stream) => unknown): Server;
export function serve<A extends AnyAddr>(
  options: ServeOptions | UnixServeOptions,
  handler: (stream: Stream<A>) => unknown,
): Server<A> {
  if (typeof handler !== "function") throw new TypeError(`serve: handler must be a function, not ${show(handler)}`);
  const listener = listen(options as ServeOptions) as unknown as Listener<A>;
  const loop = new AcceptLoop<A>(listener, handler, { supervisor: options?.supervisor });
  let closing: Promise<void> | undefined;
  let finish: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  loop.done.then(() => loop.whenIdle()).then(() => finish());
  const close = (shutdown?: ShutdownOptions): Promise<void> => {
    closing ??= loop.shutdown(shutdown).then(() => finish());
    return closing;
  };
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
