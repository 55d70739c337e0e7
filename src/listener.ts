/**
 * A listening TCP socket. Accepting happens in batches: one native call takes up to
 * `acceptBatch` connections (see the README's limits), and the listener is
 * level-triggered, so whatever a batch leaves behind is reported again by the next poll.
 * A burst of connections can neither be lost nor starve the connections already open.
 *
 * @module
 */

import { ACCEPT, LIMIT } from "../ffi/mod.ts";
import { abiError, Closed, TOO_MANY_OPEN_FILES, WOULD_BLOCK, type ZevError } from "./errors.ts";
import { reactor, type Target } from "./reactor.ts";
import { Stream } from "./stream.ts";
import { guardWait } from "./task.ts";
import { type Addr, readAddr } from "./addr.ts";

const sym = reactor.native.sym;
const loop = reactor.loop;
const ACCEPT_BATCH = sym.zev_limit(LIMIT.acceptBatch);

/** Options of `accept`. */
export interface AcceptOptions {
  /** Reject with `Cancelled` when this signal aborts. */
  signal?: AbortSignal;
}

interface Waiter {
  resolve: (stream: Stream) => void;
  reject: (error: unknown) => void;
  release: (() => void) | null;
}

/**
 * A TCP listener, from `listen`.
 *
 * @example
 * ```ts
 * await using listener = listen({ port: 0 });
 * console.log(listener.addr.port);
 * const stream = await listener.accept();
 * ```
 */
export class Listener implements Target {
  readonly handle: number;
  /** The address it listens on (with the real port when 0 was asked). */
  readonly addr: Addr;
  /** Accepted connections not yet handed out: at most one batch. */
  #ready: number[] = [];
  #waiters: Waiter[] = [];
  #batch = new Uint32Array(ACCEPT_BATCH);
  #batchBytes = new Uint8Array(this.#batch.buffer);
  #closed = false;
  #onClose: (() => void)[] = [];

  #onAcceptError: ((error: ZevError) => void) | undefined;

  /** @internal Listeners come from `listen`. */
  constructor(handle: number, onAcceptError?: (error: ZevError) => void) {
    this.handle = handle;
    this.#onAcceptError = onAcceptError;
    this.addr = readAddr(handle, false, "listen");
    reactor.register(this);
  }

  /** Whether `close` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Resolves with the next connection. Rejects with `Closed` once the listener closes. */
  accept(options?: AcceptOptions): Promise<Stream> {
    if (this.#closed) return Promise.reject(new Closed("accept: the listener is closed"));
    if (this.#ready.length === 0 && this.#waiters.length === 0) {
      const error = this.#pull();
      if (error) return Promise.reject(error);
    }
    if (this.#ready.length > 0 && this.#waiters.length === 0) {
      return Promise.resolve(new Stream(this.#ready.shift()!));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve: (s) => (reactor.release(), resolve(s)),
        reject: (e) => (reactor.release(), reject(e)),
        release: null,
      };
      reactor.hold();
      this.#waiters.push(waiter);
      waiter.release = guardWait((error) => {
        const i = this.#waiters.indexOf(waiter);
        if (i < 0) return;
        this.#waiters.splice(i, 1);
        waiter.reject(error);
      }, options?.signal);
      reactor.kick();
    });
  }

  /** Takes a batch of connections from the native listener. Returns an error to report. */
  #pull(): Error | undefined {
    const r = sym.zev_accept(loop, this.handle, this.#batchBytes, ACCEPT_BATCH);
    // Any accept may have paused the listener (no descriptors, a full handle table).
    reactor.pausesChanged();
    if (r > 0) {
      for (let i = 0; i < r; i++) this.#ready.push(this.#batch[i]);
      return undefined;
    }
    // Nothing pending, or no descriptors (the loop paused the listener and retries):
    // an ACCEPT event follows either way.
    if (r === WOULD_BLOCK) return undefined;
    if (r === TOO_MANY_OPEN_FILES) {
      this.#onAcceptError?.(abiError(r, `accept on port ${this.addr.port} (paused, will retry)`));
      return undefined;
    }
    return abiError(r, "accept");
  }

  /** @internal */
  onEvent(flags: number): void {
    if (!(flags & ACCEPT) || this.#waiters.length === 0) return;
    while (this.#waiters.length > 0) {
      if (this.#ready.length === 0) {
        const error = this.#pull();
        if (error) {
          for (const w of this.#waiters.splice(0)) {
            w.release?.();
            w.reject(error);
          }
          return;
        }
        if (this.#ready.length === 0) return;
      }
      const w = this.#waiters.shift()!;
      w.release?.();
      w.resolve(new Stream(this.#ready.shift()!));
    }
  }

  /**
   * Stops listening. Pending `accept` calls reject with `Closed`; connections already
   * handed out are not affected.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    reactor.unregister(this);
    sym.zev_close(loop, this.handle, 0);
    // Accepted in the last batch but never asked for: nobody will serve them.
    for (const h of this.#ready.splice(0)) sym.zev_close(loop, h, 0);
    for (const w of this.#waiters.splice(0)) {
      w.release?.();
      w.reject(new Closed("accept: the listener was closed"));
    }
    for (const f of this.#onClose.splice(0)) f();
  }

  /** @internal Resolves when the listener closes (for acceptLoop). */
  whenClosed(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#onClose.push(resolve));
  }

  /** Yields connections until the listener closes. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Stream> {
    while (!this.#closed) {
      try {
        yield await this.accept();
      } catch (error) {
        if (this.#closed) return;
        throw error;
      }
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}
