/**
 * The loop's settings, limits and counters, as an application sees them.
 *
 * @module
 */

import { LIMIT } from "../ffi/mod.ts";
import { abiError } from "./errors.ts";
import { reactor, type Stats } from "./reactor.ts";

export type { Stats };

/** The bounds of the native loop (README: "Limits"). */
export interface Limits {
  /** Kernel events taken by one poll. */
  eventsPerPoll: number;
  /** Connections accepted per listener wake-up. */
  acceptBatch: number;
  /** Listeners and streams one loop holds. */
  maxHandles: number;
  /** Default write queue bytes per stream, and the most it can be set to. */
  writeQueueBytes: number;
  maxWriteQueueBytes: number;
  /** Kernel listen backlog asked for. */
  listenBacklog: number;
  /** Longest pause of a listener that ran out of descriptors. */
  acceptBackoffMaxMs: number;
}

/** The bounds of the native loop. */
export function limits(): Limits {
  const get = reactor.native.sym.zev_limit;
  return {
    eventsPerPoll: get(LIMIT.eventsPerPoll),
    acceptBatch: get(LIMIT.acceptBatch),
    maxHandles: get(LIMIT.defaultMaxHandles),
    writeQueueBytes: get(LIMIT.defaultWriteQueueBytes),
    maxWriteQueueBytes: get(LIMIT.maxWriteQueueBytes),
    listenBacklog: get(LIMIT.listenBacklog),
    acceptBackoffMaxMs: get(LIMIT.acceptBackoffMaxMs),
  };
}

/** The loop's counters: accepts, skipped and paused accepts, live handles, queued bytes. */
export function stats(): Stats {
  return reactor.stats();
}

/** Settings of the loop driver. */
export interface Settings {
  /**
   * How long, in microseconds, the driver keeps polling after the last event before it
   * parks (default 200). Longer keeps request/response latency low at a low rate;
   * 0 parks at once and saves CPU.
   */
  spinMicros?: number;
}

/** Changes the loop driver's settings; returns the settings now in effect. */
export function configure(settings: Settings = {}): Required<Settings> & { library: string; runtime: string; listenerMode: string } {
  if (settings.spinMicros !== undefined) {
    const us = settings.spinMicros;
    if (!(us >= 0 && us <= 1_000_000)) throw new RangeError(`configure: invalid spinMicros ${us}: expected 0 to 1000000`);
    reactor.spinMicros = us;
  }
  return {
    spinMicros: reactor.spinMicros,
    library: reactor.native.path,
    runtime: reactor.native.runtime,
    listenerMode: reactor.native.sym.zev_listener_mode() === 1 ? "edge-single" : "level-batch",
  };
}

/**
 * Raises this process's soft limit on open descriptors toward `want` (at most the hard
 * limit). Returns the limit now in effect. A server holding many connections wants this.
 */
export function raiseFileLimit(want: number): number {
  if (!Number.isInteger(want) || want < 1) throw new RangeError(`raiseFileLimit: invalid limit ${want}`);
  const r = reactor.native.sym.zev_raise_fd_limit(Math.min(want, 0x7fffffff));
  if (r < 0) throw abiError(r, "raiseFileLimit");
  return r;
}
