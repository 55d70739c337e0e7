/**
 * The loop's settings, limits and counters, as an application sees them.
 *
 * @module
 */

import { type BackendChoice, LIMIT, parseBackend, tls, type TlsEngine } from "../../ffi/mod.ts";
import { abiError } from "./errors.ts";
import { type BackendLabel, driver, type Stats } from "./driver.ts";
import { show } from "./validate.ts";
import {
  ACCEPT_BATCH,
  EVENTS_PER_POLL,
  MAX_DATAGRAM_BYTES,
  MAX_PENDING_WRITES,
  MAX_UNIX_PATH,
  MAX_WRITE_QUEUE_BYTES,
  READ_CHUNK_BYTES,
} from "./limits.ts";

export type { BackendLabel, Stats, TlsEngine };

/** The bounds of the native loop (README: "Limits"). */
export interface Limits {
  /** Kernel events taken by one poll. */
  eventsPerPoll: number;
  /** Connections accepted per listener wake-up. */
  acceptBatch: number;
  /** Listeners and streams one loop holds. */
  maxHandles: number;
  /** Default write queue bytes per stream. */
  writeQueueBytes: number;
  /** The most a stream's write queue can be set to (`setWriteQueueLimit`). */
  maxWriteQueueBytes: number;
  /** Write calls one stream may have pending at once. */
  maxPendingWrites: number;
  /** Kernel listen backlog asked for. */
  listenBacklog: number;
  /** Longest pause of a listener that ran out of descriptors. */
  acceptBackoffMaxMs: number;
  /** Longest Unix socket path, in bytes (107 on Linux, 103 on macOS and the BSDs). */
  maxUnixPath: number;
  /** Most bytes one UDP datagram carries (`send` refuses more). */
  maxDatagramBytes: number;
  /** Most bytes one `stream.read()` without a buffer returns. */
  readChunkBytes: number;
}

/**
 * The bounds of the native loop (README: "Limits").
 *
 * @example
 * ```ts
 * console.log(limits().acceptBatch); // 64
 * ```
 */
export function limits(): Limits {
  const get = driver.native.sym.zev_limit;
  return {
    eventsPerPoll: EVENTS_PER_POLL,
    acceptBatch: ACCEPT_BATCH,
    maxHandles: get(LIMIT.defaultMaxHandles),
    writeQueueBytes: get(LIMIT.defaultWriteQueueBytes),
    maxWriteQueueBytes: MAX_WRITE_QUEUE_BYTES,
    listenBacklog: get(LIMIT.listenBacklog),
    acceptBackoffMaxMs: get(LIMIT.acceptBackoffMaxMs),
    maxPendingWrites: MAX_PENDING_WRITES,
    maxUnixPath: MAX_UNIX_PATH,
    maxDatagramBytes: MAX_DATAGRAM_BYTES,
    readChunkBytes: READ_CHUNK_BYTES,
  };
}

/**
 * The loop's counters: accepts, skipped and paused accepts, live handles, queued bytes.
 *
 * @example
 * ```ts
 * const { accepted, acceptPaused } = stats();
 * ```
 */
export function stats(): Stats {
  return driver.stats();
}

/** Settings of the loop driver. */
export interface Settings {
  /**
   * How long, in microseconds, the driver keeps polling after the last event before it
   * parks (default 0: park at once). Polling trades CPU for latency: 200 µs cut the
   * median round trip of a lightly loaded echo server by a few tens of microseconds, for
   * up to a whole core while requests trickle in (docs/design/WAKE.md has the figures).
   */
  spinMicros?: number;
  /**
   * The kernel interface the loop waits on: "epoll" (Linux) or "kqueue" (macOS, FreeBSD),
   * "io_uring" (Linux 6.0: streams receive through the ring; an error where the kernel
   * lacks or forbids it), or "auto" (the one zev picks: epoll for now, as io_uring is
   * not yet level with it; the reason is in `backendReason`). Default: `ZEV_BACKEND`, else "epoll"
   * (docs/design/IO_URING.md says why). It can change only before the first listener or
   * stream opens; asking for the one in effect is allowed at any time, and does nothing.
   * Not a string is a TypeError; another name, a RangeError.
   */
  backend?: "epoll" | "kqueue" | "io_uring" | "auto";
}

/** The settings in effect, and how this loop runs. */
export interface Configuration extends Required<Settings> {
  /** The native library loaded. */
  library: string;
  /** "deno" or "bun". */
  runtime: string;
  /** "level-batch", or "edge-single" in the regression build that has Janet 1.32's bug. */
  listenerMode: string;
  /**
   * How the loop parks: "io_uring" (the kernel wakes the JS thread through a socket of
   * the runtime's own) or "thread" (another thread waits, where io_uring is missing or
   * forbidden, or `ZEV_WAKE=thread`).
   */
  wake: "io_uring" | "thread";
  /** Why the wake is "thread", if it is. */
  wakeReason?: string;
  /** The kernel interface the loop waits on now (see `Settings.backend`). */
  backend: BackendLabel;
  /** Why it is not io_uring although "auto" asked for it, if so. */
  backendReason?: string;
  /**
   * The TLS engine: `{ engine: "openssl", version, library }` (the system's OpenSSL 3,
   * found at run time), or `{ engine: null, reason }` where there is none.
   */
  tls: TlsEngine;
}

/**
 * Changes the loop driver's settings; returns the settings now in effect.
 *
 * @example
 * ```ts
 * configure({ spinMicros: 100 });
 * console.log(configure().wake); // "io_uring" where the kernel allows it
 * ```
 */
export function configure(settings: Settings = {}): Configuration {
  if (typeof settings !== "object" || settings === null) {
    throw new TypeError(`configure: settings must be an object, not ${show(settings)}`);
  }
  // Everything is checked before anything changes.
  const us = settings.spinMicros;
  if (us !== undefined && (typeof us !== "number" || !(us >= 0 && us <= 1_000_000))) {
    throw new RangeError(`configure: invalid spinMicros ${show(us)}: expected 0 to 1000000`);
  }
  const backend = settings.backend === undefined ? undefined : checkBackend(settings.backend);
  // Asking for the backend in effect is no change, allowed with a listener or stream open.
  if (backend !== undefined && (driver.open === 0 || !isCurrentBackend(backend))) driver.switchBackend(backend);
  if (us !== undefined) driver.spinMicros = us;
  const parker = driver.parker;
  const backendReason = driver.backendReason;
  return {
    spinMicros: driver.spinMicros,
    library: driver.native.path,
    runtime: driver.native.runtime,
    listenerMode: driver.native.sym.zev_listener_mode() === 1 ? "edge-single" : "level-batch",
    wake: parker.kind,
    ...(parker.reason === undefined ? {} : { wakeReason: parker.reason }),
    backend: driver.backendLabel,
    ...(backendReason === undefined ? {} : { backendReason }),
    tls: tls(),
  };
}

/** `configure`'s backend, checked: a TypeError if not a string, a RangeError if unknown. */
function checkBackend(name: unknown): BackendChoice {
  if (typeof name !== "string") {
    throw new TypeError(
      `configure: backend must be a string ("epoll", "kqueue", "io_uring" or "auto"), not ${show(name)}`,
    );
  }
  try {
    return parseBackend(name, "configure: backend");
  } catch {
    throw new RangeError(`configure: invalid backend ${show(name)}: expected "epoll", "kqueue", "io_uring" or "auto"`);
  }
}

/**
 * Whether the loop runs on `choice` already: the same kernel interface, or "auto" after
 * the loop settled on io_uring or, having asked for "auto", fell back to epoll.
 */
function isCurrentBackend(choice: BackendChoice): boolean {
  if (choice === "auto") return driver.backend === "io_uring" || driver.backendReason !== undefined;
  return driver.backend === choice;
}

/**
 * Raises this process's soft limit on open descriptors toward `want` (at most the hard
 * limit). Returns the limit now in effect. A server holding many connections wants this.
 *
 * @example
 * ```ts
 * raiseFileLimit(65536);
 * ```
 */
export function raiseFileLimit(want: number): number {
  if (!Number.isInteger(want) || want < 1) throw new RangeError(`raiseFileLimit: invalid limit ${show(want)}`);
  const r = driver.native.sym.zev_raise_fd_limit(Math.min(want, 0x7fffffff));
  if (r < 0) throw abiError(r, "raiseFileLimit");
  return r;
}
