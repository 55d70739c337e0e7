/**
 * The loop driver: one reactor loop per JS thread, polled from JS without ever blocking
 * the JS thread.
 *
 * - While events keep coming, it polls with timeout 0 from a macrotask (`setImmediate`),
 *   so a busy server never pays for a cross-thread wake, and timers and the runtime's own
 *   I/O run between polls.
 * - When polls come back empty for `spinMicros`, it parks: another thread waits for the
 *   loop's readiness (ffi/ gives each runtime's way) and the JS thread is free and idle.
 *   The short spin means one connection's next request, arriving a round trip later,
 *   finds the loop still polling instead of behind a cross-thread wake.
 * - With nothing open it stops, so the process can exit.
 *
 * @module
 */

import { LIMIT, native, type Native } from "../ffi/mod.ts";
import { abiError } from "./errors.ts";

/** Something with a handle that the reactor delivers events to. */
export interface Target {
  readonly handle: number;
  onEvent(flags: number): void;
}

const INDEX_MASK = (1 << 18) - 1;

/** Reactor counters, from the native loop (zig/loop.zig `Stats`). */
export interface Stats {
  /** Connections accepted. */
  accepted: number;
  /** Connections that died between handshake and accept (ECONNABORTED...) and were skipped. */
  acceptSkipped: number;
  /** Times a listener was paused because the process ran out of descriptors (EMFILE). */
  acceptPaused: number;
  /** Connections closed at once because the handle table was full. */
  acceptRejected: number;
  /** Native polls, and the kernel events they returned. */
  polls: number;
  events: number;
  /** Listeners and streams open in the loop. */
  liveHandles: number;
  /** Bytes held in write queues, waiting for the kernel. */
  queuedBytes: number;
}

const STAT_KEYS: (keyof Stats)[] = [
  "accepted",
  "acceptSkipped",
  "acceptPaused",
  "acceptRejected",
  "polls",
  "events",
  "liveHandles",
  "queuedBytes",
];

export class Reactor {
  readonly native: Native = native;
  readonly loop: number;
  readonly eventsPerPoll: number;
  /** How long empty polls continue before parking. */
  spinMicros = 200;
  #events: Uint8Array;
  #ev32: Uint32Array;
  #targets: (Target | undefined)[] = [];
  #open = 0;
  #scheduled = false;
  #parked = false;
  #idleSince = -1;

  constructor() {
    const loop = native.sym.zev_loop_open(0);
    if (loop < 0) throw abiError(loop, "opening the event loop");
    this.loop = loop;
    this.eventsPerPoll = native.sym.zev_limit(LIMIT.eventsPerPoll);
    this.#events = new Uint8Array(this.eventsPerPoll * 8);
    this.#ev32 = new Uint32Array(this.#events.buffer);
  }

  /** Listeners and streams open; while there are any, the driver keeps the process alive. */
  get open(): number {
    return this.#open;
  }

  register(target: Target): void {
    this.#targets[target.handle & INDEX_MASK] = target;
    this.#open++;
    this.kick();
  }

  /** Forgets a target; false if it was not registered (already closed). */
  unregister(target: Target): boolean {
    const i = target.handle & INDEX_MASK;
    if (this.#targets[i] !== target) return false;
    this.#targets[i] = undefined;
    this.#open--;
    // A parked wait would hold the process open with nothing left to wait for.
    if (this.#open === 0 && this.#parked) native.parker.wake(this.loop);
    return true;
  }

  /** Makes sure a poll is coming (a parked driver polls as soon as events arrive). */
  kick(): void {
    if (this.#scheduled || this.#parked) return;
    this.#scheduled = true;
    setImmediate(this.#tick);
  }

  #tick = (): void => {
    this.#scheduled = false;
    const n = native.sym.zev_poll(this.loop, this.#events, this.eventsPerPoll, 0);
    if (n > 0) {
      this.#idleSince = -1;
      this.#dispatch(n);
    } else if (n < 0) {
      console.error(abiError(n, "zev: polling the event loop"));
    }
    if (this.#open === 0) return;
    if (n > 0) return this.kick();
    const now = performance.now();
    if (this.#idleSince < 0) this.#idleSince = now;
    if ((now - this.#idleSince) * 1000 < this.spinMicros) return this.kick();
    this.#park();
  };

  #dispatch(n: number): void {
    const ev = this.#ev32;
    const targets = this.#targets;
    for (let i = 0; i < n; i++) {
      const handle = ev[2 * i];
      const target = targets[handle & INDEX_MASK];
      // A handle closed earlier in this batch is gone, and its slot may hold a new one.
      if (target === undefined || target.handle !== handle) continue;
      try {
        target.onEvent(ev[2 * i + 1]);
      } catch (err) {
        console.error("zev: internal error while dispatching an event:", err);
      }
    }
  }

  #park(): void {
    this.#parked = true;
    native.parker.park(this.loop, -1).then(this.#unpark, this.#unpark);
  }

  #unpark = (): void => {
    this.#parked = false;
    this.#idleSince = -1;
    this.#tick();
  };

  stats(): Stats {
    const out = new Float64Array(STAT_KEYS.length);
    native.sym.zev_stats(this.loop, new Uint8Array(out.buffer), out.length);
    const stats = {} as Stats;
    STAT_KEYS.forEach((key, i) => (stats[key] = out[i]));
    return stats;
  }
}

/** This thread's reactor. */
export const reactor: Reactor = new Reactor();
