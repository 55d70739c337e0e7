/**
 * The one symbol table of the C ABI (zig/abi.zig, zig/zev.h), written in Deno's
 * vocabulary; ffi/bun.ts translates it for bun:ffi. Both loaders expose the same
 * functions under the same names, so nothing outside ffi/ knows which runtime it runs on.
 *
 * @module
 */

export const symbols = {
  zev_abi_version: { parameters: [], result: "u32" },
  zev_listener_mode: { parameters: [], result: "u32" },
  zev_limit: { parameters: ["u32"], result: "i32" },
  zev_loop_open: { parameters: ["u32"], result: "i32" },
  zev_loop_close: { parameters: ["u32"], result: "i32" },
  zev_poll: { parameters: ["u32", "buffer", "u32", "i32"], result: "i32" },
  zev_poll_park: { parameters: ["u32", "buffer", "u32"], result: "i32" },
  zev_park: { parameters: ["u32", "i32"], result: "i32" },
  zev_park_fd: { parameters: ["u32"], result: "i32" },
  zev_park_timeout: { parameters: ["u32", "i32"], result: "i32" },
  zev_wake: { parameters: ["u32"], result: "i32" },
  zev_wake_fd: { parameters: ["u32"], result: "i32" },
  zev_wake_arm: { parameters: ["u32"], result: "i32" },
  zev_listen: { parameters: ["u32", "buffer", "u32", "u32", "u32"], result: "i32" },
  zev_accept: { parameters: ["u32", "u32", "buffer", "u32"], result: "i32" },
  zev_connect: { parameters: ["u32", "buffer", "u32", "u32"], result: "i32" },
  zev_status: { parameters: ["u32", "u32"], result: "i32" },
  zev_read: { parameters: ["u32", "u32", "buffer", "u32"], result: "i32" },
  zev_write: { parameters: ["u32", "u32", "buffer", "u32"], result: "i32" },
  zev_pauses: { parameters: ["u32", "u32"], result: "i32" },
  zev_flush: { parameters: ["u32", "u32"], result: "i32" },
  zev_shutdown: { parameters: ["u32", "u32"], result: "i32" },
  zev_close: { parameters: ["u32", "u32", "u32"], result: "i32" },
  zev_address: { parameters: ["u32", "u32", "u32", "buffer"], result: "i32" },
  zev_set_queue_limit: { parameters: ["u32", "u32", "u32"], result: "i32" },
  zev_stats: { parameters: ["u32", "buffer", "u32"], result: "i32" },
  zev_queued: { parameters: ["u32"], result: "i32" },
  zev_raise_fd_limit: { parameters: ["u32"], result: "i32" },
  zev_last_errno: { parameters: [], result: "i32" },
} as const;

/** The ABI version this binding speaks; a library reporting another is refused. */
export const ABI_VERSION = 2;

/** Event flags of `zev_poll` (zig/loop.zig `Flag`). */
export const READ = 1;
export const WRITE = 2;
export const ACCEPT = 4;
export const PAUSED = 8;

/** `zev_limit` selectors (zig/abi.zig). */
export const LIMIT = {
  eventsPerPoll: 0,
  acceptBatch: 1,
  defaultMaxHandles: 2,
  maxHandles: 3,
  defaultWriteQueueBytes: 4,
  maxWriteQueueBytes: 5,
  listenBacklog: 6,
  acceptBackoffMaxMs: 7,
  maxLoops: 8,
  maxPendingWrites: 9,
} as const;

/** A buffer argument: both runtimes pass a Uint8Array's memory without copying. */
type Buf = Uint8Array;

/** The functions both loaders provide, typed once. */
export interface Symbols {
  zev_abi_version(): number;
  zev_listener_mode(): number;
  zev_limit(which: number): number;
  zev_loop_open(maxHandles: number): number;
  zev_loop_close(loop: number): number;
  zev_poll(loop: number, out: Buf, cap: number, timeoutMs: number): number;
  zev_poll_park(loop: number, out: Buf, cap: number): number;
  zev_park(loop: number, timeoutMs: number): number;
  zev_park_fd(loop: number): number;
  zev_park_timeout(loop: number, timeoutMs: number): number;
  zev_wake(loop: number): number;
  zev_wake_fd(loop: number): number;
  zev_wake_arm(loop: number): number;
  zev_listen(loop: number, host: Buf, hostLen: number, port: number, backlog: number): number;
  zev_accept(loop: number, listener: number, out: Buf, max: number): number;
  zev_connect(loop: number, host: Buf, hostLen: number, port: number): number;
  zev_status(loop: number, h: number): number;
  zev_read(loop: number, h: number, buf: Buf, len: number): number;
  zev_write(loop: number, h: number, buf: Buf, len: number): number;
  zev_pauses(loop: number, h: number): number;
  zev_flush(loop: number, h: number): number;
  zev_shutdown(loop: number, h: number): number;
  zev_close(loop: number, h: number, reset: number): number;
  zev_address(loop: number, h: number, peer: number, out: Buf): number;
  zev_set_queue_limit(loop: number, h: number, bytes: number): number;
  zev_stats(loop: number, out: Buf, n: number): number;
  zev_queued(loop: number): number;
  zev_raise_fd_limit(want: number): number;
  zev_last_errno(): number;
}

/**
 * How the loop driver waits for the loop's events without blocking the JS thread
 * (ffi/parker.ts chooses one when the loop opens).
 */
export interface Parker {
  /**
   * "io_uring": the kernel itself wakes the JS thread, through a socket of the runtime's
   * own (zig/ring_wake.zig). "thread": another thread waits and wakes the JS thread.
   */
  readonly kind: "io_uring" | "thread";
  /** Why the kernel wake is not used, when `kind` is "thread". */
  readonly reason?: string;
  /**
   * Parks: the parker's `onWake` runs once the loop has events (soon, if it has some
   * now). Returns 0, or a negative ABI code when the park could not be made.
   */
  park(): number;
  /** Whether a park keeps the process alive (by default it does not). */
  keepAlive(on: boolean): void;
  /** Releases what the parker holds (the loop is closing). */
  close(): void;
}

/** What a runtime loader gives the rest of zev. */
export interface Native {
  runtime: "deno" | "bun";
  path: string;
  sym: Symbols;
  /**
   * Adopts `fd`, a stream socket, as a socket of the runtime's own: `onData` runs, on the
   * JS thread, each time bytes arrive. Takes ownership of `fd`. Unreferenced at first.
   */
  watch(fd: number, onData: () => void): Promise<Watch>;
  /**
   * Whether the runtime lets this program reach `host:port` over the network (Deno's
   * `--allow-net`; Bun has no permissions): undefined if so, else what to run instead.
   */
  netPermission(host: string, port: number): string | undefined;
  /** A parker that waits on another thread (the fallback where io_uring is missing). */
  threadParker(loop: number, onWake: () => void, reason: string): Promise<Parker>;
}

/** A socket of the runtime's own watching a descriptor for zev (see `Native.watch`). */
export interface Watch {
  /** Whether the socket keeps the process alive. */
  keepAlive(on: boolean): void;
  close(): void;
}
