/**
 * Opening TCP listeners and connections (Janet's `net/listen`, `net/connect`).
 *
 * @module
 */

import { abiError, WOULD_BLOCK, type ZevError } from "./errors.ts";
import { reactor } from "./reactor.ts";
import { Listener } from "./listener.ts";
import { Stream } from "./stream.ts";
import { checkPort, literalHost, resolveHost } from "./addr.ts";

const sym = reactor.native.sym;
const loop = reactor.loop;
const encoder = new TextEncoder();

/** Options of `listen`. */
export interface ListenOptions {
  /** An IP address or "localhost". Default "0.0.0.0" (every IPv4 interface). */
  hostname?: string;
  /** 0 picks a free port; `listener.addr.port` tells which. */
  port: number;
  /** Kernel backlog of completed connections (capped; see the README's limits). */
  backlog?: number;
  /**
   * Told when accepting fails in a way zev recovers from by itself: the process ran out
   * of descriptors (EMFILE, ENFILE), so the listener is paused and retried shortly and
   * as soon as a descriptor is closed. For logging; `stats().acceptPaused` counts them.
   */
  onAcceptError?: (error: ZevError) => void;
}

/**
 * Listens for TCP connections.
 *
 * @example
 * ```ts
 * const listener = listen({ hostname: "127.0.0.1", port: 0 });
 * console.log(`listening on ${listener.addr.hostname}:${listener.addr.port}`);
 * ```
 */
export function listen(options: ListenOptions): Listener {
  const what = "listen";
  if (typeof options !== "object" || options === null) throw new TypeError(`${what}: options must be an object`);
  const port = checkPort(options.port, what, true);
  const host = literalHost(options.hostname ?? "0.0.0.0", what);
  if (host === undefined) {
    throw new TypeError(`${what}: hostname must be an IP address or "localhost", not ${JSON.stringify(options.hostname)}`);
  }
  const bytes = encoder.encode(host);
  const backlog = options.backlog ?? 0;
  if (!Number.isInteger(backlog) || backlog < 0) throw new RangeError(`${what}: invalid backlog ${backlog}`);
  const h = sym.zev_listen(loop, bytes, bytes.length, port, backlog);
  if (h < 0) throw abiError(h, `${what} on ${host}:${port}`);
  return new Listener(h, options.onAcceptError);
}

/** Options of `connect`. */
export interface ConnectOptions {
  /** Host name or IP address. Default "127.0.0.1". */
  hostname?: string;
  port: number;
  /** Reject with `Cancelled` when this signal aborts. */
  signal?: AbortSignal;
}

/**
 * Opens a TCP connection.
 *
 * @example
 * ```ts
 * const stream = await connect({ hostname: "127.0.0.1", port: 8080 });
 * ```
 */
export async function connect(options: ConnectOptions): Promise<Stream> {
  const what = "connect";
  if (typeof options !== "object" || options === null) throw new TypeError(`${what}: options must be an object`);
  const port = checkPort(options.port, what, false);
  const host = await resolveHost(options.hostname ?? "127.0.0.1", what);
  const bytes = encoder.encode(host);
  const h = sym.zev_connect(loop, bytes, bytes.length, port);
  if (h < 0) throw abiError(h, `${what} to ${host}:${port}`);
  const stream = new Stream(h);
  const status = sym.zev_status(loop, h);
  try {
    if (status === WOULD_BLOCK) await stream.whenConnected(`${what} to ${host}:${port}`, options.signal);
    else if (status < 0) throw abiError(status, `${what} to ${host}:${port}`);
  } catch (error) {
    stream.abort();
    throw error;
  }
  return stream;
}
