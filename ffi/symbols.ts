/**
 * What the loaders give the rest of zev: the C ABI (generated from the Zig source into
 * ffi/abi.ts, re-exported here), and the runtime services each loader implements its
 * own way. Both loaders expose the same functions under the same names, so nothing
 * outside ffi/ knows which runtime it runs on.
 *
 * @module
 */

import type { Symbols } from "./abi.ts";

export * from "./abi.ts";

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
  /** What `keepAlive` last set: whether a park keeps the process alive now. */
  readonly keepingAlive: boolean;
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
  /** The same for a Unix socket's path (Deno asks for read and write access to it). */
  pathPermission(path: string): string | undefined;
  /** Workers that run the program's main module again (`serve({ workers })`). */
  workers: Workers;
  /** A parker that waits on another thread (the fallback where io_uring is missing). */
  threadParker(loop: number, onWake: () => void, reason: string): Promise<Parker>;
  /**
   * Opens the first of `libraries` the system's dynamic loader finds (with its own
   * dependencies bound before the process's symbols, where the loader can: a runtime
   * that carries a TLS library of its own must not lend it to this one) and resolves
   * `names` in it: their addresses as 8 bytes each, little-endian, or why not.
   */
  resolve(libraries: readonly string[], names: readonly string[]): { table: Uint8Array } | { error: string };
}

/** dlopen's flags: every symbol now, kept local; and on glibc, the library's own first. */
export const RTLD_NOW = 2;
export const RTLD_DEEPBIND = 8;

/** A socket of the runtime's own watching a descriptor for zev (see `Native.watch`). */
export interface Watch {
  /** Whether the socket keeps the process alive. */
  keepAlive(on: boolean): void;
  close(): void;
}

/** Starting the program's main module in Workers, and telling such a Worker it is one. */
export interface Workers {
  /** The URL of the program's main module (on the main thread). */
  mainModule(): string;
  /** Starts `url` in a module Worker that `tag()` will tell `tag` to. */
  start(url: string, tag: string): Worker;
  /** In a Worker from `start`, its tag; undefined anywhere else. */
  tag(): string | undefined;
}
