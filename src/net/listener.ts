/**
 * A listening TCP socket. Accepting happens in batches: one native call takes up to
 * `acceptBatch` connections (see the README's limits), and the listener is
 * level-triggered, so whatever a batch leaves behind is reported again by the next poll.
 * A burst of connections can neither be lost nor starve the connections already open.
 *
 * @module
 */

import { ACCEPT, PAUSED } from "../../ffi/mod.ts";
import { abiError, Closed, isRecoverableAcceptError, WOULD_BLOCK, ZevError } from "../core/errors.ts";
import { Handle } from "../core/handle.ts";
import { driver, onNextTurn } from "../core/driver.ts";
import { Stream } from "./stream.ts";
import { ACCEPT_BATCH, MAX_PENDING_ACCEPTS } from "../core/limits.ts";
import { enter, type Guard, tieWait, untieWait } from "../tasks/task.ts";
import { type Addr, type AnyAddr, formatAddr, readAddr, type UnixAddr } from "./addr.ts";
import { Deque, Waiter, WaitQueue } from "../core/wait_queue.ts";

const sym = driver.native.sym;
const loop = driver.loop;

/** Options of `accept`. */
export interface AcceptOptions {
  /** Reject with `Cancelled` when this signal aborts. */
  signal?: AbortSignal;
}

/** A pending accept, queued until a connection comes or it is cancelled. */
class AcceptWait<A extends AnyAddr> extends Waiter {
  guard: Guard | null = undefined;
  constructor(
    readonly listener: Listener<A>,
    readonly resolve: (stream: Stream<A>) => void,
    readonly reject: (error: unknown) => void,
  ) {
    super();
  }
  cancel = (error: unknown): void => this.listener._cancelWait(this, error);
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
export class Listener<A extends AnyAddr = Addr> extends Handle {
  /** The listener's handle in the native loop (for diagnostics). */
  readonly handle: number;
  /** The address it listens on (with the real port when 0 was asked). */
  readonly addr: A;
  /** What accepted Unix streams are told of their ends. */
  #unix: readonly [UnixAddr, UnixAddr] | undefined;
  /** Accepted connections not yet handed out: at most one batch. */
  #ready = new Deque<number>();
  #waiters = new WaitQueue<AcceptWait<A>>();
  #batch = new Uint32Array(ACCEPT_BATCH);
  #batchBytes = new Uint8Array(this.#batch.buffer);
  #closed = false;
  /** Serves the waiting accepts on the next turn (once however often asked). */
  #serveSoon = onNextTurn(() => {
    if (!this.#closed) this.#serve();
  });
  #onAcceptError: ((error: ZevError) => void) | undefined;

  /** @internal Listeners come from `listen`. */
  constructor(handle: number, onAcceptError?: (error: ZevError) => void, path?: string) {
    super();
    this.handle = handle;
    this.#onAcceptError = onAcceptError;
    if (path === undefined) this.addr = readAddr(handle, false, "listen") as A;
    else {
      const addr: UnixAddr = { path, family: "unix" };
      this.addr = addr as A;
      this.#unix = [addr, { path: "", family: "unix" }];
    }
    driver.register(this);
  }

  /** Whether `close` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Resolves with the next connection. Rejects with `Closed` once the listener closes. */
  accept(options?: AcceptOptions): Promise<Stream<A>> {
    let signal: AbortSignal | undefined;
    try {
      signal = enter(options, "accept");
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#closed) return Promise.reject(new Closed(`accept on ${formatAddr(this.addr)}: the listener is closed`));
    if (this.#waiters.length >= MAX_PENDING_ACCEPTS) {
      return Promise.reject(
        new ZevError("Limit", `accept on ${formatAddr(this.addr)}: ${MAX_PENDING_ACCEPTS} accepts are already pending`),
      );
    }
    if (this.#waiters.length === 0) {
      if (this.#ready.length === 0) {
        const error = this.#pull();
        if (error) return Promise.reject(error);
      }
      if (this.#ready.length > 0 && driver.spend()) {
        return Promise.resolve(new Stream<A>(this.#ready.shift()!, this.#unix));
      }
    }
    return new Promise((resolve, reject) => {
      const wait = new AcceptWait(this, resolve, reject);
      wait.guard = tieWait(wait.cancel, signal);
      if (wait.guard === null) return; // cancelled at once
      this.#waiters.push(wait);
      this.updateHold();
      // Connections already here wait for the next turn (the budget is spent); otherwise
      // an ACCEPT event says when they come.
      if (this.#ready.length > 0) this.#serveSoon();
      else driver.kick();
    });
  }

  /** @internal A pending accept was cancelled: it leaves the queue at once. */
  _cancelWait(wait: AcceptWait<A>, error: unknown): void {
    if (!this.#waiters.remove(wait)) return;
    this.updateHold();
    wait.reject(error);
  }

  #settle(wait: AcceptWait<A>): void {
    untieWait(wait.guard, wait.cancel);
  }

  /** Takes a batch of connections from the native listener. Returns an error to report. */
  #pull(): ZevError | undefined {
    const r = sym.zev_accept(loop, this.handle, this.#batchBytes, ACCEPT_BATCH);
    // Any accept may have paused the listener (no descriptors, a full handle table).
    driver.pausesChanged();
    if (r > 0) {
      for (let i = 0; i < r; i++) this.#ready.push(this.#batch[i]);
      return undefined;
    }
    // Nothing pending, or paused (the loop retries, and a PAUSED notice tells why): an
    // ACCEPT event follows either way.
    if (r === WOULD_BLOCK || isRecoverableAcceptError(r)) return undefined;
    return abiError(r, `accept on ${formatAddr(this.addr)}`);
  }

  /** Hands connections to waiting accepts, pulling batches as needed. */
  #serve(): void {
    while (this.#waiters.length > 0) {
      if (this.#ready.length === 0) {
        const error = this.#pull();
        if (error) {
          // Not a transient failure: every waiter learns it (the listener stays open).
          for (const w of this.#waiters.drain()) {
            this.#settle(w);
            w.reject(error);
          }
          this.updateHold();
          return;
        }
        if (this.#ready.length === 0) break;
      }
      const w = this.#waiters.shift()!;
      this.#settle(w);
      w.resolve(new Stream(this.#ready.shift()!, this.#unix));
    }
    this.updateHold();
  }

  /** @internal */
  onEvent(flags: number): void {
    if (flags & PAUSED) this.#onPaused();
    if (flags & ACCEPT && this.#waiters.length > 0) this.#serve();
  }

  /** One call of `onAcceptError` per pause of the native listener, with its reason. */
  #onPaused(): void {
    const pauses = sym.zev_pauses(loop, this.handle);
    const r = sym.zev_status(loop, this.handle);
    if (pauses <= 0 || r >= 0 || this.#onAcceptError === undefined) return;
    const error = abiError(
      r,
      `accept on ${formatAddr(this.addr)} (paused, retrying shortly and as soon as a descriptor is closed)`,
    );
    for (let i = 0; i < pauses; i++) {
      try {
        this.#onAcceptError(error);
      } catch (thrown) {
        // As a string, without the stack: this runs while descriptors are exhausted, and
        // Deno 2.9 panicked formatting this stack then (a stack probe of its hit EMFILE).
        console.error(`zev: the onAcceptError callback of the listener on ${formatAddr(this.addr)} threw: ${thrown}`);
      }
    }
  }

  /** An accept is pending. */
  protected get waiting(): boolean {
    return this.#waiters.length > 0;
  }

  /**
   * Stops listening. Pending `accept` calls reject with `Closed`; connections already
   * handed out are not affected.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    driver.unregister(this);
    sym.zev_close(loop, this.handle, 0);
    // Accepted in the last batch but never asked for: nobody will serve them.
    for (let h = this.#ready.shift(); h !== undefined; h = this.#ready.shift()) sym.zev_close(loop, h, 0);
    for (const w of this.#waiters.drain()) {
      this.#settle(w);
      w.reject(new Closed(`accept on ${formatAddr(this.addr)}: the listener was closed`));
    }
    this.updateHold();
  }

  /** Yields connections until the listener closes. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Stream<A>> {
    while (!this.#closed) {
      try {
        yield await this.accept();
      } catch (error) {
        if (this.#closed) return;
        throw error;
      }
    }
  }

  /** `await using listener = listen(...)` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}
