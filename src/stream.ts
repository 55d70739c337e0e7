/**
 * A TCP connection: `read` into the caller's buffer, `write` with backpressure, half
 * close, close.
 *
 * Reads and writes go straight to the native loop in the caller's turn: a read finds
 * buffered data or a write fits in the kernel's buffer without waiting for any event.
 * Only when the socket would block does the stream wait, for the one event it asked for.
 *
 * @module
 */

import { LIMIT, READ, WRITE } from "../ffi/mod.ts";
import { abiError, Closed, TimedOut, WOULD_BLOCK } from "./errors.ts";
import { reactor, type Target } from "./reactor.ts";
import { type Guard, guardWait, tieWait, untieWait } from "./task.ts";
import { type Addr, readAddr } from "./addr.ts";

const sym = reactor.native.sym;
const loop = reactor.loop;

/** Options of a single read. */
export interface ReadOptions {
  /** Reject with `TimedOut` if no byte arrives within this many milliseconds. */
  timeout?: number;
  /** Reject with `Cancelled` when this signal aborts. */
  signal?: AbortSignal;
}

/** Options of a single write. */
export interface WriteOptions {
  /** Reject with `Cancelled` when this signal aborts (the stream is then closed). */
  signal?: AbortSignal;
}

/** Options of `close`. */
export interface CloseOptions {
  /**
   * How long to wait for queued bytes to reach the kernel before closing anyway with
   * a reset. Default 10 000 ms.
   */
  timeout?: number;
}

interface PendingConnect {
  what: string;
  resolve: () => void;
  reject: (error: unknown) => void;
  release: (() => void) | null;
}

interface PendingWrite {
  data: Uint8Array;
  offset: number;
  resolve: (n: number) => void;
  reject: (error: unknown) => void;
  release: (() => void) | null;
}

const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
const EMPTY = new Uint8Array(0);
function noop(): void {}

/**
 * A connected TCP stream, from `connect` or `Listener.accept`.
 *
 * @example
 * ```ts
 * const stream = await connect({ port: 8080 });
 * await stream.write(new TextEncoder().encode("ping"));
 * const buf = new Uint8Array(4);
 * const n = await stream.read(buf); // null at end of stream
 * await stream.close();
 * ```
 */
export class Stream implements Target {
  readonly handle: number;
  #connecting: PendingConnect | undefined;
  // The pending read, in fields rather than an object: one read waits at a time, and
  // this is the path every request of a busy server takes.
  #reading = false;
  #readBuf: Uint8Array = EMPTY;
  #readResolve: (n: number | null) => void = noop;
  #readReject: (error: unknown) => void = noop;
  #readGuard: Guard | null = undefined;
  #readTimer: ReturnType<typeof setTimeout> | undefined;
  #cancelRead = (error: unknown): void => this.#endRead(error);
  #writers: PendingWrite[] = [];
  /** Waiting for the write queue to drain (close, closeWrite). */
  #drainers: (() => void)[] = [];
  #writeClosed = false;
  #closed = false;
  #closing: Promise<void> | undefined;

  /** @internal Streams come from `connect` and `Listener.accept`. */
  constructor(handle: number) {
    this.handle = handle;
    reactor.register(this);
  }

  /** Whether `close` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sets how many bytes this stream may queue once the kernel's send buffer is full
   * (default and most: `limits().writeQueueBytes`, `limits().maxWriteQueueBytes`). A
   * write that does not fit waits until the queue drains.
   */
  setWriteQueueLimit(bytes: number): void {
    const max = sym.zev_limit(LIMIT.maxWriteQueueBytes);
    if (!Number.isInteger(bytes) || bytes < 1 || bytes > max) {
      throw new RangeError(`setWriteQueueLimit: invalid limit ${bytes}: expected 1 to ${max} bytes`);
    }
    const r = sym.zev_set_queue_limit(loop, this.handle, bytes);
    if (r < 0) throw abiError(r, "setWriteQueueLimit");
  }

  /** The local address. */
  get localAddr(): Addr {
    return readAddr(this.handle, false, "stream.localAddr");
  }

  /** The peer's address. */
  get remoteAddr(): Addr {
    return readAddr(this.handle, true, "stream.remoteAddr");
  }

  /**
   * Reads into `buf`. Resolves with the number of bytes read (at least 1), or null at the
   * end of the stream. One read may be pending at a time. A timeout or a cancellation
   * leaves the stream usable: no byte is consumed by a read that did not resolve.
   */
  read(buf: Uint8Array, options?: ReadOptions): Promise<number | null> {
    if (this.#closed) return Promise.reject(new Closed("read: the stream is closed"));
    if (this.#reading) return Promise.reject(new Error("read: another read is already pending on this stream"));
    if (!(buf instanceof Uint8Array) || buf.length === 0) {
      return Promise.reject(new TypeError("read: buf must be a non-empty Uint8Array"));
    }
    const r = sym.zev_read(loop, this.handle, buf, buf.length);
    if (r > 0) return Promise.resolve(r);
    if (r === 0) return Promise.resolve(null);
    if (r !== WOULD_BLOCK) return Promise.reject(abiError(r, "read"));
    return new Promise((resolve, reject) => {
      this.#reading = true;
      reactor.hold();
      this.#readBuf = buf;
      this.#readResolve = resolve;
      this.#readReject = reject;
      this.#readGuard = tieWait(this.#cancelRead, options?.signal);
      if (this.#readGuard === null) return; // cancelled at once
      const timeout = options?.timeout;
      if (timeout !== undefined) {
        this.#readTimer = setTimeout(() => this.#endRead(new TimedOut(`read: no data within ${timeout} ms`)), timeout);
      }
      reactor.kick();
    });
  }

  /** Reads until `buf` is full. Rejects if the stream ends first. */
  async readFull(buf: Uint8Array, options?: ReadOptions): Promise<Uint8Array> {
    let got = 0;
    while (got < buf.length) {
      const n = await this.read(buf.subarray(got), options);
      if (n === null) throw new Closed(`readFull: the stream ended after ${got} of ${buf.length} bytes`);
      got += n;
    }
    return buf;
  }

  /** Ends the pending read with an error (cancelled, timed out, closed). */
  #endRead(error: unknown): void {
    if (!this.#reading) return;
    const reject = this.#readReject;
    this.#clearRead();
    reject(error);
  }

  #clearRead(): void {
    this.#reading = false;
    reactor.release();
    this.#readBuf = EMPTY;
    this.#readResolve = this.#readReject = noop;
    untieWait(this.#readGuard, this.#cancelRead);
    this.#readGuard = undefined;
    if (this.#readTimer !== undefined) {
      clearTimeout(this.#readTimer);
      this.#readTimer = undefined;
    }
  }

  #onReadable(): void {
    if (!this.#reading) return;
    const buf = this.#readBuf;
    const r = sym.zev_read(loop, this.handle, buf, buf.length);
    if (r === WOULD_BLOCK) return; // spurious; the loop re-armed the interest
    const resolve = this.#readResolve, reject = this.#readReject;
    this.#clearRead();
    if (r > 0) resolve(r);
    else if (r === 0) resolve(null);
    else reject(abiError(r, "read"));
  }

  /**
   * Writes all of `data`. Resolves with `data.length` once every byte is in the kernel
   * or in the stream's write queue (bounded: see `Limits` in the README); until then the
   * caller is held back, which is the backpressure. Writes are sent in call order.
   */
  write(data: Uint8Array, options?: WriteOptions): Promise<number> {
    if (this.#closed) return Promise.reject(new Closed("write: the stream is closed"));
    if (this.#writeClosed) return Promise.reject(new Closed("write: the stream's write side is closed (closeWrite)"));
    if (!(data instanceof Uint8Array)) return Promise.reject(new TypeError("write: data must be a Uint8Array"));
    if (this.#writers.length === 0) {
      const r = data.length === 0 ? 0 : sym.zev_write(loop, this.handle, data, data.length);
      if (r === data.length) return Promise.resolve(r);
      if (r < 0) return Promise.reject(abiError(r, "write"));
      return this.#queueWrite(data, r, options);
    }
    return this.#queueWrite(data, 0, options);
  }

  #queueWrite(data: Uint8Array, offset: number, options: WriteOptions | undefined): Promise<number> {
    return new Promise((resolve, reject) => {
      const pending: PendingWrite = {
        data,
        offset,
        resolve: (n) => (reactor.release(), resolve(n)),
        reject: (e) => (reactor.release(), reject(e)),
        release: null,
      };
      reactor.hold();
      this.#writers.push(pending);
      pending.release = guardWait((error) => {
        // Part of the data may be sent already: the byte stream is broken, so close it.
        const i = this.#writers.indexOf(pending);
        if (i < 0) return;
        this.#writers.splice(i, 1);
        pending.reject(error);
        this.abort();
      }, options?.signal);
      reactor.kick();
    });
  }

  #onWritable(): void {
    while (this.#writers.length > 0) {
      const w = this.#writers[0];
      const rest = w.data.subarray(w.offset);
      const r = sym.zev_write(loop, this.handle, rest, rest.length);
      if (r < 0) {
        if (r === WOULD_BLOCK) return;
        const error = abiError(r, "write");
        for (const pending of this.#writers.splice(0)) {
          pending.release?.();
          pending.reject(error);
        }
        break;
      }
      w.offset += r;
      if (w.offset < w.data.length) return; // the queue is full again: wait for WRITE
      this.#writers.shift();
      w.release?.();
      w.resolve(w.data.length);
    }
    this.#checkDrained();
  }

  /** Resolves when every write has been handed over and the queue is empty. */
  #drained(): Promise<void> {
    return new Promise((resolve) => {
      reactor.hold();
      this.#drainers.push(() => (reactor.release(), resolve()));
      this.#checkDrained();
    });
  }

  #checkDrained(): void {
    if (this.#drainers.length === 0 || this.#writers.length > 0) return;
    const left = sym.zev_flush(loop, this.handle);
    if (left > 0) {
      reactor.kick();
      return; // a WRITE event follows when the queue is empty
    }
    for (const resolve of this.#drainers.splice(0)) resolve();
  }

  /**
   * Shuts down the write side once everything written so far is sent: the peer reads
   * the end of stream, and this side can still read. Later writes reject with `Closed`.
   */
  async closeWrite(): Promise<void> {
    if (this.#closed) throw new Closed("closeWrite: the stream is closed");
    if (this.#writeClosed) return;
    this.#writeClosed = true;
    // Pending writes finish first; the loop sends the FIN after the queued bytes.
    if (this.#writers.length > 0) await this.#drained();
    const r = sym.zev_shutdown(loop, this.handle);
    if (r < 0 && !this.#closed) throw abiError(r, "closeWrite");
  }

  /**
   * Sends what is queued (waiting at most `timeout`), then closes the stream. A pending
   * read rejects with `Closed`. Calling it again returns the same promise.
   */
  close(options?: CloseOptions): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    this.#closing = this.#close(options?.timeout ?? DEFAULT_CLOSE_TIMEOUT_MS);
    return this.#closing;
  }

  async #close(timeoutMs: number): Promise<void> {
    if (this.#reading) this.#endRead(new Closed("read: the stream was closed while reading"));
    let reset = false;
    if (this.#writers.length > 0 || sym.zev_flush(loop, this.handle) > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const expired = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs)));
      reset = await Promise.race([this.#drained().then(() => false), expired]);
      clearTimeout(timer);
    }
    this.#release(reset);
  }

  /** Closes at once with a reset (RST), dropping whatever is queued. */
  abort(): void {
    this.#closed = true;
    this.#closing ??= Promise.resolve();
    if (this.#reading) this.#endRead(new Closed("read: the stream was aborted while reading"));
    this.#release(true);
  }

  #release(reset: boolean): void {
    if (reactor.unregister(this)) {
      for (const pending of this.#writers.splice(0)) {
        pending.release?.();
        pending.reject(new Closed("write: the stream was closed before the data was sent"));
      }
      for (const resolve of this.#drainers.splice(0)) resolve();
      sym.zev_close(loop, this.handle, reset ? 1 : 0);
    }
  }

  /** @internal Waits for the connect under way; rejects with its error. */
  whenConnected(what: string, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const pending: PendingConnect = {
        what,
        resolve: () => (reactor.release(), resolve()),
        reject: (e) => (reactor.release(), reject(e)),
        release: null,
      };
      reactor.hold();
      this.#connecting = pending;
      pending.release = guardWait((error) => {
        if (this.#connecting !== pending) return;
        this.#connecting = undefined;
        pending.reject(error);
      }, signal);
      reactor.kick();
    });
  }

  #onConnected(): void {
    const pending = this.#connecting!;
    const status = sym.zev_status(loop, this.handle);
    if (status === WOULD_BLOCK) return;
    this.#connecting = undefined;
    pending.release?.();
    if (status === 0) pending.resolve();
    else pending.reject(abiError(status, pending.what));
  }

  /** @internal */
  onEvent(flags: number): void {
    if (this.#connecting) {
      if (flags & WRITE) this.#onConnected();
      return;
    }
    if (flags & READ) this.#onReadable();
    if (flags & WRITE) {
      if (this.#writers.length > 0) this.#onWritable();
      else this.#checkDrained();
    }
  }

  /** Reads chunks until the end of the stream; each chunk is a fresh copy. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await this.read(buf);
      if (n === null) return;
      yield buf.slice(0, n);
    }
  }

  /** `await using stream = await connect(...)` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
