/**
 * `serve`, after Janet's `net/server`: listen and run an accept loop in one call, with a
 * graceful shutdown; on one thread (src/server/server.ts) or in n Workers
 * (src/server/workers.ts).
 *
 * @module
 */

import type { UnixAddr } from "../net/addr.ts";
import type { Stream } from "../net/stream.ts";
import { show } from "../core/validate.ts";
import {
  type ServeOptions,
  type Server,
  startServer,
  type UnixServeOptions,
  type WorkersServeOptions,
} from "./server.ts";
import { serveWorkers } from "./workers.ts";

export type { ServeOptions, Server, UnixServeOptions, WorkersServeOptions } from "./server.ts";

/**
 * Listens and runs `handler(stream)` in n Workers (`workers: n`), each with an event
 * loop of its own on the same port (SO_REUSEPORT). Resolves once every Worker listens;
 * a Worker that fails is reported on stderr and replaced; `close` shuts them all down.
 *
 * @example
 * ```ts
 * const server = await serve({ port: 8080, workers: 2 }, async (stream) => {
 *   await stream.write(new TextEncoder().encode("hello\n"));
 * });
 * if (workerIndex() === undefined) console.log(`listening on ${server.addr.port}`);
 * ```
 */
export function serve(options: WorkersServeOptions, handler: (stream: Stream) => unknown): Promise<Server>;
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
export function serve(
  options: ServeOptions | UnixServeOptions | WorkersServeOptions,
  handler: ((stream: Stream) => unknown) | ((stream: Stream<UnixAddr>) => unknown),
): Server | Server<UnixAddr> | Promise<Server> {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`serve: options must be an object, not ${show(options)}`);
  }
  if (typeof handler !== "function") throw new TypeError(`serve: handler must be a function, not ${show(handler)}`);
  if ((options as Partial<WorkersServeOptions>).workers !== undefined) {
    return serveWorkers(options as WorkersServeOptions, handler as (stream: Stream) => unknown);
  }
  return startServer(options as ServeOptions, handler as (stream: Stream) => unknown);
}
