/**
 * A TCP connection: `read` into the caller's buffer, `write` with backpressure, half
 * close, close.
 *
 * Reads and writes go straight to the native loop in the caller's turn: a read finds
 * buffered data or a write fits in the kernel's buffer without waiting for any event,
 * within the turn's budget (src/driver.ts), so a peer that is always ready cannot starve
 * timers and other tasks. Only when the socket would block does the stream wait, for the
 * one event it asked for. Every call first honours an aborted signal or a pending cancel
 * of its task.
 *
 * @module
 */

import { READ, TLS_INFO, WRITE } from "../../ffi/mod.ts";
import { MAX_PENDING_WRITES, MAX_WRITE_QUEUE_BYTES, READ_CHUNK_BYTES } from "../core/limits.ts";
import { abiError, Cancelled, Closed, TimedOut, WOULD_BLOCK, ZevError } from "../core/errors.ts";
import { Handle } from "../core/handle.ts";
import { driver } from "../core/driver.ts";
import { enter, type Guard, guardWait, tieWait, untieWait } from "../tasks/task.ts";
import { type Addr, type AnyAddr, formatAddr, readAddr, type UnixAddr } from "./addr.ts";
import { checkBytes, checkMs, checkOptions, checkSignal } from "../core/validate.ts";
import { Waiter, WaitQueue } from "../core/wait_queue.ts";

const sym = driver.native.sym;
const loop = driver.loop;

/** Options of a single read. */
export interface ReadOptions {
  /** Reject with `TimedOut` if no byte arrives within this many milliseconds. */
  timeout?: number;
  /** Reject with `Cancelled` when this signal aborts. */
  signal?: AbortSignal;
}

/** Options of a single write. */
export interface WriteOptions {
  /**
   * Reject with `Cancelled` when this signal aborts. If part of the data had been sent,
   * the stream is closed too (its byte stream was cut).
   */
  signal?: AbortSignal;
}

/** Options of `close`. */
export interface CloseOptions {
  /**
   * How long to wait for queued bytes to reach the kernel before closing anyway with
   * a reset (and rejecting with `TimedOut`). Default 10 000 ms.
   */
  timeout?: number;
  /**
   * When this signal aborts while close waits for queued bytes, reset the stream at once
   * and reject with `Cancelled` (as a cancel of the calling task does).
   */
  signal?: AbortSignal;
}

/** A write waiting for room in the stream's queue. */
class WriteWait extends Waiter {
  guard: Guard | null = undefined;
  /** The length when written: a resizable ArrayBuffer may shrink under a waiting write. */
  readonly length: number;
  constructor(
    readonly stream: Stream<AnyAddr>,
    readonly data: Uint8Array,
    public offset: number,
    readonly resolve: (n: number) => void,
    readonly reject: (error: unknown) => void,
  ) {
    super();
    this.length = data.length;
  }
  cancel = (error: unknown): void => this.stream._cancelWrite(this, error);
}

interface PendingConnect {
  what: string;
  resolve: () => void;
  reject: (error: unknown) => void;
  guard: Guard | null;
  cancel: (error: unknown) => void;
}

/** What a TLS stream agreed with its peer (`stream.tls`). */
export interface TlsInfo {
  /** "TLSv1.3" or "TLSv1.2". */
  protocol: string;
  /** The cipher suite, as OpenSSL names it ("TLS_AES_256_GCM_SHA384"). */
  cipher: string;
  /** The ALPN protocol agreed, if any. */
  alpn: string | undefined;
  /** The server name the client asked for (SNI), if any. */
  servername: string | undefined;
  /** The peer's certificate (DER), if it sent one. */
  peerCertificate: Uint8Array | undefined;
  /** Whether the session was resumed from an earlier one. */
  resumed: boolean;
}

/** A `close` waiting for the write queue to drain, and the calls tied to it. */
interface CloseWait {
  /** Ends the close: released gracefully without an error, reset with one. */
  finish: (error?: unknown) => void;
  /** Unties each caller's task and signal from the wait. */
  unties: (() => void)[];
}

/** What a drain (close, closeWrite) ended with: drained, or the stream was released. */
const DRAINED = 0, RELEASED = 1;

const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
const EMPTY = new Uint8Array(0);
function noop(): void {}

/**
 * What `read()` without a buffer reads into, shared by every stream of the thread: a read
 * is synchronous, and its bytes are copied out at once, so no two reads can meet in it.
 */
const scratch = new Uint8Array(READ_CHUNK_BYTES);

/** The pending read has no buffer of its own (`read()`). */
const CHUNK = new Uint8Array(0);
/** The write queue and the drainers of a stream that never needed them (never added to). */
const NO_WRITERS = new WaitQueue<WriteWait>();
const NO_DRAINERS: ((status: number) => void)[] = [];

/** The flags of a stream (see `Stream`). */
const READING = 1, WRITE_CLOSED = 2, SHUT_DOWN = 4, CLOSED = 8, TLS = 16, RELEASED_SHIFT = 5;

/** What an idle stream does not need (see `Stream`). */
class ColdStreamState {
  connecting: PendingConnect | undefined = undefined;
  readTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  retryRead: (() => void) | undefined = undefined;
  retryWrite: (() => void) | undefined = undefined;
  writeRefused: ZevError | undefined = undefined;
  readsEnded: unknown = undefined;
  closing: Promise<void> | undefined = undefined;
  closeWait: CloseWait | undefined = undefined;
  peer: string | undefined = undefined;
  local: Addr | undefined = undefined;
  remote: Addr | undefined = undefined;
  unix: readonly [UnixAddr, UnixAddr] | undefined = undefined;
  handshaking: PendingConnect | undefined = undefined;
  readable: ReadableStream<Uint8Array> | undefined = undefined;
  writable: WritableStream<Uint8Array> | undefined = undefined;
}

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
export class Stream<A extends AnyAddr = Addr> extends Handle {
  /** The stream's handle in the native loop (for diagnostics). */
  readonly handle: number;
  // The pending read, in fields rather than an object: one read waits at a time, and
  // this is the path every request of a busy server takes.
  #readBuf: Uint8Array = EMPTY;
  #readResolve: (n: number | Uint8Array | null) => void = noop;
  #readReject: (error: unknown) => void = noop;
  #readGuard: Guard | null = undefined;
  #writers: WaitQueue<WriteWait> = NO_WRITERS;
  /**
   * Waiting for the write queue to drain (close, closeWrite): called with `DRAINED`, the
   * negative code of the stream's failure, or `RELEASED`.
   */
  #drainers: ((status: number) => void)[] = NO_DRAINERS;

  // What every stream needs is in fields; the rest, which an idle connection never
  // touches (a connect, a timeout, a close, addresses, TLS, Web Streams), in an object
  // made on first use; the flags share one number. Private accessors keep the code as
  // if each were a field: a server holds one stream per connection.
  #bits = 0;
  #cold: ColdStreamState | undefined;
  #flag(bit: number): boolean {
    return (this.#bits & bit) !== 0;
  }
  #setFlag(bit: number, on: boolean): void {
    this.#bits = on ? this.#bits | bit : this.#bits & ~bit;
  }
  /** Stores cold state; storing `undefined` where none was made makes none. */
  #setCold<K extends keyof ColdStreamState>(key: K, value: ColdStreamState[K]): void {
    if (value !== undefined || this.#cold) (this.#cold ??= new ColdStreamState())[key] = value;
  }
  get #reading(): boolean {
    return this.#flag(READING);
  }
  set #reading(on: boolean) {
    this.#setFlag(READING, on);
  }
  /** closeWrite was called: writes are refused. */
  get #writeClosed(): boolean {
    return this.#flag(WRITE_CLOSED);
  }
  set #writeClosed(on: boolean) {
    this.#setFlag(WRITE_CLOSED, on);
  }
  /** closeWrite shut the write side down (the loop sends the FIN after the queue). */
  get #shutDown(): boolean {
    return this.#flag(SHUT_DOWN);
  }
  set #shutDown(on: boolean) {
    this.#setFlag(SHUT_DOWN, on);
  }
  get #closed(): boolean {
    return this.#flag(CLOSED);
  }
  set #closed(on: boolean) {
    this.#setFlag(CLOSED, on);
  }
  /** A TLS session was started on it (`startTls`). */
  get #tls(): boolean {
    return this.#flag(TLS);
  }
  set #tls(on: boolean) {
    this.#setFlag(TLS, on);
  }
  /** The handle was released: 1 gracefully, 2 with a reset. */
  get #released(): 0 | 1 | 2 {
    return ((this.#bits >> RELEASED_SHIFT) & 3) as 0 | 1 | 2;
  }
  set #released(how: 1 | 2) {
    this.#bits |= how << RELEASED_SHIFT;
  }
  /** The connect under way (`connect`). */
  get #connecting(): PendingConnect | undefined {
    return this.#cold?.connecting;
  }
  set #connecting(value: PendingConnect | undefined) {
    this.#setCold("connecting", value);
  }
  /** The pending read's timeout. */
  get #readTimer(): ReturnType<typeof setTimeout> | undefined {
    return this.#cold?.readTimer;
  }
  set #readTimer(value: ReturnType<typeof setTimeout> | undefined) {
    this.#setCold("readTimer", value);
  }
  get #retryRead(): (() => void) | undefined {
    return this.#cold?.retryRead;
  }
  set #retryRead(value: (() => void) | undefined) {
    this.#setCold("retryRead", value);
  }
  get #retryWrite(): (() => void) | undefined {
    return this.#cold?.retryWrite;
  }
  set #retryWrite(value: (() => void) | undefined) {
    this.#setCold("retryWrite", value);
  }
  /** A write was refused (too many pending): later ones are too, so none follows a hole. */
  get #writeRefused(): ZevError | undefined {
    return this.#cold?.writeRefused;
  }
  set #writeRefused(value: ZevError | undefined) {
    this.#setCold("writeRefused", value);
  }
  /** Why reads end (a server closing: `_endReads`): each read rejects with it. */
  get #readsEnded(): unknown {
    return this.#cold?.readsEnded;
  }
  set #readsEnded(value: unknown) {
    this.#setCold("readsEnded", value);
  }
  get #closing(): Promise<void> | undefined {
    return this.#cold?.closing;
  }
  set #closing(value: Promise<void> | undefined) {
    this.#setCold("closing", value);
  }
  get #closeWait(): CloseWait | undefined {
    return this.#cold?.closeWait;
  }
  set #closeWait(value: CloseWait | undefined) {
    this.#setCold("closeWait", value);
  }
  get #peer(): string | undefined {
    return this.#cold?.peer;
  }
  set #peer(value: string | undefined) {
    this.#setCold("peer", value);
  }
  /** The addresses once read (the remote one is read before the handle is released). */
  get #local(): Addr | undefined {
    return this.#cold?.local;
  }
  set #local(value: Addr | undefined) {
    this.#setCold("local", value);
  }
  get #remote(): Addr | undefined {
    return this.#cold?.remote;
  }
  set #remote(value: Addr | undefined) {
    this.#setCold("remote", value);
  }
  /** A Unix stream's local and remote addresses (the kernel keeps no path for us). */
  get #unix(): readonly [UnixAddr, UnixAddr] | undefined {
    return this.#cold?.unix;
  }
  set #unix(value: readonly [UnixAddr, UnixAddr] | undefined) {
    this.#setCold("unix", value);
  }
  /** The TLS handshake under way. */
  get #handshaking(): PendingConnect | undefined {
    return this.#cold?.handshaking;
  }
  set #handshaking(value: PendingConnect | undefined) {
    this.#setCold("handshaking", value);
  }
  get #readable(): ReadableStream<Uint8Array> | undefined {
    return this.#cold?.readable;
  }
  set #readable(value: ReadableStream<Uint8Array> | undefined) {
    this.#setCold("readable", value);
  }
  get #writable(): WritableStream<Uint8Array> | undefined {
    return this.#cold?.writable;
  }
  set #writable(value: WritableStream<Uint8Array> | undefined) {
    this.#setCold("writable", value);
  }

  /** @internal Streams come from `connect` and `Listener.accept`. */
  constructor(handle: number, unix?: readonly [local: UnixAddr, remote: UnixAddr]) {
    super();
    this.handle = handle;
    this.#unix = unix;
    driver.register(this);
  }

  /** Whether `close` (or `abort`) has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sets how many bytes this stream may queue once the kernel's send buffer is full
   * (default and most: `limits().writeQueueBytes`, `limits().maxWriteQueueBytes`). A
   * write that does not fit waits until the queue drains.
   */
  setWriteQueueLimit(bytes: number): void {
    const max = MAX_WRITE_QUEUE_BYTES;
    if (!Number.isInteger(bytes) || bytes < 1 || bytes > max) {
      throw new RangeError(`setWriteQueueLimit: invalid limit ${bytes}: expected 1 to ${max} bytes`);
    }
    if (this.#closed) throw new Closed(`${this.#what("setWriteQueueLimit")}: the stream is closed`);
    const r = sym.zev_set_queue_limit(loop, this.handle, bytes);
    if (r < 0) throw abiError(r, this.#what("setWriteQueueLimit"));
  }

  /** The local address (a Unix stream's connecting end has the path ""). */
  get localAddr(): A {
    return (this.#unix?.[0] ?? (this.#local ??= readAddr(this.handle, false, "stream.localAddr"))) as A;
  }

  /**
   * The peer's address (known even after the peer reset the connection, and after the
   * stream is closed).
   */
  get remoteAddr(): A {
    return (this.#unix?.[1] ?? (this.#remote ??= readAddr(this.handle, true, "stream.remoteAddr"))) as A;
  }

  /** `read from 10.0.0.1:5000`: an operation and the peer, for messages. */
  #what(op: string): string {
    if (this.#peer === undefined) {
      try {
        const unix = this.#unix;
        // An accepted Unix connection's peer has no name: say whose client it is.
        this.#peer = unix && unix[1].path === "" ? `a client of ${unix[0].path}` : formatAddr(this.remoteAddr);
      } catch {
        // Closed before anything asked who the peer was: the kernel no longer says.
        return op;
      }
    }
    return `${op} ${op === "read" || op === "readFull" ? "from" : "to"} ${this.#peer}`;
  }

  /**
   * Reads without a buffer: resolves with the bytes that arrived (a new `Uint8Array` of
   * 1 to `limits().readChunkBytes` (64 KiB) bytes, the caller's to keep), or null at the end of the
   * stream. While it waits it holds no buffer at all: this is the read for a server that
   * keeps many connections open and mostly idle (each waiting `read(buf)` holds its own
   * `buf`). The bytes are read into one buffer that every stream of the thread shares,
   * and copied out at their size. Otherwise as `read(buf)`.
   *
   * @example
   * ```ts
   * for (let chunk; (chunk = await stream.read()) !== null;) await stream.write(chunk);
   * ```
   */
  read(options?: ReadOptions): Promise<Uint8Array | null>;
  /**
   * Reads into `buf`. Resolves with the number of bytes read (at least 1; 0 at once for an
   * empty `buf`, which reads nothing), or null at the end of the stream. One read may be pending at a time. A timeout or a cancellation
   * leaves the stream usable: no byte is consumed by a read that did not resolve.
   */
  read(buf: Uint8Array, options?: ReadOptions): Promise<number | null>;
  read(bufOrOptions?: Uint8Array | ReadOptions, more?: ReadOptions): Promise<number | Uint8Array | null> {
    // No buffer: the first argument is absent, or the options (anything else is a buffer,
    // so that a wrong one is named as such).
    const chunk = bufOrOptions === undefined ||
      (typeof bufOrOptions === "object" && bufOrOptions !== null && !ArrayBuffer.isView(bufOrOptions) &&
        !(bufOrOptions instanceof ArrayBuffer));
    const buf = chunk ? CHUNK : bufOrOptions as Uint8Array;
    const options = chunk && bufOrOptions !== undefined ? bufOrOptions as ReadOptions : more;
    let signal: AbortSignal | undefined, timeout: number | undefined;
    try {
      if (!chunk) checkBytes(buf, "read", "buf", true);
      timeout = options?.timeout;
      if (timeout !== undefined) checkMs(timeout, "read", "timeout");
      signal = enter(options, "read");
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#closed) return Promise.reject(new Closed(`${this.#what("read")}: the stream is closed`));
    if (this.#readsEnded !== undefined) return Promise.reject(new Cancelled(this.#readsEnded));
    if (buf.length === 0 && !chunk) return Promise.resolve(0); // reads nothing, as read(2) and readFull do
    if (this.#reading) {
      return Promise.reject(
        new ZevError("Busy", `${this.#what("read")}: another read is already pending on this stream`),
      );
    }
    const now = driver.spend();
    if (now) {
      const into = chunk ? scratch : buf;
      const r = sym.zev_read(loop, this.handle, into, into.length);
      if (r > 0) return Promise.resolve(chunk ? scratch.slice(0, r) : r);
      if (r === 0) return Promise.resolve(null);
      if (r !== WOULD_BLOCK) return Promise.reject(abiError(r, this.#what("read")));
    }
    return new Promise((resolve, reject) => {
      this.#reading = true;
      this.#readBuf = buf;
      this.#readResolve = resolve;
      this.#readReject = reject;
      this.#readGuard = tieWait(this, signal);
      if (this.#readGuard === null) return; // cancelled at once
      this.updateHold();
      if (timeout !== undefined) {
        this.#readTimer = setTimeout(
          () => this.#endRead(new TimedOut(`${this.#what("read")}: no data within ${timeout} ms`)),
          timeout,
        );
      }
      // The budget is spent: read on the next turn. Otherwise a READ event follows.
      if (now) driver.kick();
      else {
        driver.defer(
          this.#retryRead ??= () => {
            if (this.#reading) this.#onReadable();
          },
        );
      }
    });
  }

  /**
   * Reads until `buf` is full; `options` apply to each read. Rejects with `Closed` if the
   * stream ends first. If a read fails (its timeout, a cancel, a reset), readFull rejects
   * with an error of the same class and `code` (and `reason`, for `Cancelled`), whose
   * message names readFull and says how many bytes it had read, the original error as its
   * `cause`. Either error has a `bytesRead` property: that many bytes were taken from the
   * stream and are in `buf.subarray(0, bytesRead)`; the stream stays usable after a
   * timeout or a cancel, at the byte after them.
   */
  async readFull(buf: Uint8Array, options?: ReadOptions): Promise<Uint8Array> {
    checkBytes(buf, "readFull", "buf", true);
    // Checked here so that a bad option is readFull's error, not one of its reads'.
    const timeout = checkOptions(options, "readFull")?.timeout;
    if (timeout !== undefined) checkMs(timeout, "readFull", "timeout");
    checkSignal(options?.signal, "readFull");
    let got = 0;
    while (got < buf.length) {
      let n: number | null;
      try {
        n = await this.read(buf.subarray(got), options);
      } catch (error) {
        throw this.#readFullError(error, got, buf.length);
      }
      if (n === null) {
        const error = new Closed(`${this.#what("readFull")}: the stream ended after ${got} of ${buf.length} bytes`);
        throw Object.assign(error, { bytesRead: got });
      }
      got += n;
    }
    return buf;
  }

  /** A read's `error` as readFull's, after `got` of `total` bytes (see `readFull`). */
  #readFullError(error: unknown, got: number, total: number): unknown {
    if (!(error instanceof Error)) return error;
    const prefix = `${this.#what("read")}: `;
    const why = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
    const message = `${this.#what("readFull")}: ${got} of ${total} bytes read, then ${why}`;
    let again: Error;
    if (error instanceof Cancelled) {
      again = new Cancelled(error.reason);
      again.message = message;
    } else if (error instanceof Closed) again = new Closed(message);
    else if (error instanceof TimedOut) again = new TimedOut(message);
    else if (error instanceof ZevError) again = new ZevError(error.code, message);
    else if (error instanceof TypeError) again = new TypeError(message);
    else if (error instanceof RangeError) again = new RangeError(message);
    else again = new Error(message);
    again.cause = error;
    return Object.assign(again, { bytesRead: got });
  }

  /**
   * @internal The server that accepted this stream is closing: the pending read and every
   * later one reject with `Cancelled` carrying `reason`, so that a handler waiting for its
   * client learns it at once; writes go on (a goodbye, the rest of a reply).
   */
  _endReads(reason: unknown): void {
    this.#readsEnded = reason;
    this.#endRead(new Cancelled(reason));
  }

  /**
   * @internal The pending read's task or signal cancelled it (the stream is its own
   * cancel: see `CancelWait`).
   */
  _cancelWait(error: unknown): void {
    this.#endRead(error);
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
    this.#readBuf = EMPTY;
    this.#readResolve = this.#readReject = noop;
    untieWait(this.#readGuard, this);
    this.#readGuard = undefined;
    if (this.#readTimer !== undefined) {
      clearTimeout(this.#readTimer);
      this.#readTimer = undefined;
    }
    this.updateHold();
  }

  #onReadable(): void {
    const buf = this.#readBuf;
    const chunk = buf === CHUNK;
    let r: number;
    try {
      if (chunk) r = sym.zev_read(loop, this.handle, scratch, scratch.length);
      else {
        checkBytes(buf, "read", "buf", false);
        r = sym.zev_read(loop, this.handle, buf, buf.length);
      }
    } catch (error) {
      // The caller's buffer was detached (transferred) while the read waited.
      return this.#endRead(error);
    }
    if (r === WOULD_BLOCK) return; // spurious; the loop re-armed the interest
    const resolve = this.#readResolve, reject = this.#readReject;
    this.#clearRead();
    if (r > 0) resolve(chunk ? scratch.slice(0, r) : r);
    else if (r === 0) resolve(null);
    else reject(abiError(r, this.#what("read")));
  }

  /**
   * Writes all of `data`. Resolves with `data.length` once every byte is in the kernel
   * or in the stream's write queue (bounded: see `Limits` in the README); until then the
   * caller is held back, which is the backpressure. Writes are sent in call order. The
   * stream keeps a reference to `data` (no copy) until the write resolves: do not
   * change or transfer it before. Past `limits().maxPendingWrites` writes not awaited,
   * the next rejects with `Limit`, and the write side fails: every later write rejects
   * with `Closed`, so that no byte is sent after a refused one.
   */
  write(data: Uint8Array, options?: WriteOptions): Promise<number> {
    let signal: AbortSignal | undefined;
    try {
      checkBytes(data, "write", "data", true);
      signal = enter(options, "write");
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#closed) return Promise.reject(new Closed(`${this.#what("write")}: the stream is closed`));
    if (this.#writeClosed) {
      return Promise.reject(new Closed(`${this.#what("write")}: the stream's write side is closed (closeWrite)`));
    }
    if (this.#writeRefused) {
      const error = new Closed(
        `${this.#what("write")}: the write side failed when an earlier write was refused (${MAX_PENDING_WRITES} ` +
          "writes pending): a later write would leave a hole in the byte stream",
      );
      error.cause = this.#writeRefused;
      return Promise.reject(error);
    }
    if (this.#writers.length === 0) {
      if (!driver.spend()) return this.#queueWrite(data, 0, signal, true);
      const r = data.length === 0 ? 0 : sym.zev_write(loop, this.handle, data, data.length);
      if (r === data.length) {
        driver.queued(); // what the kernel did not take yet must keep the process alive
        return Promise.resolve(r);
      }
      if (r < 0) return Promise.reject(abiError(r, this.#what("write")));
      return this.#queueWrite(data, r, signal, false);
    }
    if (this.#writers.length >= MAX_PENDING_WRITES) {
      // Refused, it is a hole in the byte stream if anything written later is sent: the
      // write side fails from here on (as Go's connections do after a write error). The
      // writes already pending are still sent; closeWrite and close still work.
      this.#writeRefused = new ZevError(
        "Limit",
        `${this.#what("write")}: ${MAX_PENDING_WRITES} writes are already pending on this stream; await them ` +
          "(the write side fails: later writes are refused too)",
      );
      return Promise.reject(this.#writeRefused);
    }
    return this.#queueWrite(data, 0, signal, false);
  }

  #queueWrite(data: Uint8Array, offset: number, signal: AbortSignal | undefined, deferred: boolean): Promise<number> {
    return new Promise((resolve, reject) => {
      const w = new WriteWait(this, data, offset, resolve, reject);
      w.guard = tieWait(w.cancel, signal);
      if (w.guard === null) return; // cancelled at once
      if (this.#writers === NO_WRITERS) this.#writers = new WaitQueue();
      this.#writers.push(w);
      this.updateHold();
      if (deferred) {
        driver.defer(
          this.#retryWrite ??= () => {
            if (this.#writers.length > 0) this.#onWritable();
          },
        );
      } else driver.kick();
    });
  }

  /** @internal A pending write was cancelled. */
  _cancelWrite(w: WriteWait, error: unknown): void {
    if (!this.#writers.remove(w)) return;
    w.reject(error);
    // Part of it may be sent already: the byte stream is cut, so close it. A close
    // waiting for the queue ends with the same cancel (its bytes will never be sent).
    if (w.offset > 0) {
      if (this.#closeWait) this.#closeWait.finish(error);
      else this.abort();
    } else {
      this.updateHold();
      this.#checkDrained(); // a closeWrite or close may be waiting for the last writer
    }
  }

  #onWritable(): void {
    for (let w = this.#writers.peek(); w !== null; w = this.#writers.peek()) {
      let r: number;
      try {
        checkBytes(w.data, "write", "data", true);
        if (w.data.length !== w.length) {
          throw new TypeError(
            `${
              this.#what("write")
            }: data's ArrayBuffer was resized (${w.length} to ${w.data.length} bytes) while the write waited`,
          );
        }
        const rest = w.data.subarray(w.offset);
        r = sym.zev_write(loop, this.handle, rest, rest.length);
      } catch (error) {
        // The caller's buffer was detached (transferred) or resized while the write
        // waited: this write fails, and since its bytes are gone mid-stream, so does the
        // stream.
        this.#writers.shift();
        untieWait(w.guard, w.cancel);
        w.reject(error);
        this.abort();
        return;
      }
      if (r < 0) {
        if (r === WOULD_BLOCK) return;
        const error = abiError(r, this.#what("write"));
        for (const pending of this.#writers.drain()) {
          untieWait(pending.guard, pending.cancel);
          pending.reject(error);
        }
        break;
      }
      w.offset += r;
      if (w.offset < w.data.length) return; // the queue is full again: wait for WRITE
      this.#writers.shift();
      untieWait(w.guard, w.cancel);
      w.resolve(w.data.length);
    }
    this.updateHold();
    this.#checkDrained();
  }

  /**
   * Resolves when every write has been handed over and the queue is empty (`DRAINED`),
   * the stream failed (its negative code) or was released (`RELEASED`). The wait is tied
   * to the calling task and `signal`: a cancel rejects with `Cancelled`.
   */
  #drained(signal: AbortSignal | undefined): Promise<number> {
    return new Promise((resolve, reject) => {
      const done = (status: number) => {
        untieWait(guard, cancel);
        resolve(status);
      };
      const cancel = (error: Cancelled) => {
        const i = this.#drainers.indexOf(done);
        if (i < 0) return;
        this.#drainers.splice(i, 1);
        this.updateHold();
        reject(error);
      };
      this.#addDrainer(done);
      const guard = tieWait(cancel, signal);
      if (guard === null) return; // cancelled at once
      this.updateHold();
      this.#checkDrained();
    });
  }

  #addDrainer(drainer: (status: number) => void): void {
    if (this.#drainers === NO_DRAINERS) this.#drainers = [];
    this.#drainers.push(drainer);
  }

  #checkDrained(): void {
    if (this.#drainers.length === 0 || this.#writers.length > 0) return;
    const left = sym.zev_flush(loop, this.handle);
    if (left > 0) {
      driver.kick();
      return; // a WRITE event follows when the queue is empty
    }
    const drainers = this.#drainers.splice(0);
    this.updateHold();
    for (const done of drainers) done(left < 0 ? left : DRAINED);
  }

  /** Bytes not yet handed to the kernel: the stream's queue and the writes waiting. */
  #unsent(): number {
    let n = Math.max(0, sym.zev_flush(loop, this.handle));
    for (let w = this.#writers.peek(); w !== null; w = w.next as WriteWait | null) n += w.data.length - w.offset;
    return n;
  }

  /** A read, a write, a drain (close, closeWrite) or a connect is pending. */
  protected get waiting(): boolean {
    return this.#reading || this.#writers.length > 0 || this.#drainers.length > 0 || this.#connecting !== undefined ||
      this.#handshaking !== undefined;
  }

  /** What TLS agreed for this stream, or undefined for a plain stream. */
  get tls(): TlsInfo | undefined {
    if (!this.#tls || this.#released !== 0) return undefined;
    const text = (what: number): string | undefined => {
      const buf = new Uint8Array(256);
      const n = sym.zev_tls_info(loop, this.handle, what, buf, buf.length);
      return n > 0 ? new TextDecoder().decode(buf.subarray(0, n)) : undefined;
    };
    const cert = new Uint8Array(16 * 1024);
    const n = sym.zev_tls_info(loop, this.handle, TLS_INFO.peerCertificate, cert, cert.length);
    return {
      protocol: text(TLS_INFO.protocol) ?? "",
      cipher: text(TLS_INFO.cipher) ?? "",
      alpn: text(TLS_INFO.alpn),
      servername: text(TLS_INFO.servername),
      peerCertificate: n > 0 ? cert.slice(0, n) : undefined,
      resumed: text(TLS_INFO.resumed) === "1",
    };
  }

  /** @internal Puts a TLS session of context `ctx` on the stream (src/net/tls.ts). */
  _startTls(ctx: number, servername: string, what: string): void {
    const r = sym.zev_tls_start(loop, this.handle, ctx, new TextEncoder().encode(servername), servername.length);
    if (r < 0) throw abiError(r, what);
    this.#tls = true;
  }

  /** @internal Runs the TLS handshake; rejects with its error (or a cancel, or `signal`'s). */
  _handshake(what: string, signal?: AbortSignal): Promise<void> {
    const r = sym.zev_tls_handshake(loop, this.handle);
    if (r === 0) return Promise.resolve();
    if (r !== WOULD_BLOCK) return Promise.reject(abiError(r, what));
    return this.#waitLoop(what, signal, (error) => this.#endHandshake(error), (p) => (this.#handshaking = p));
  }

  #endHandshake(error?: unknown): void {
    const pending = this.#handshaking;
    if (!pending) return;
    this.#handshaking = undefined;
    untieWait(pending.guard, pending.cancel);
    this.updateHold();
    if (error === undefined) pending.resolve();
    else pending.reject(error);
  }

  #onHandshake(): void {
    const r = sym.zev_tls_handshake(loop, this.handle);
    if (r === WOULD_BLOCK) return;
    this.#endHandshake(r === 0 ? undefined : abiError(r, this.#handshaking!.what));
  }

  /**
   * Shuts down the write side once everything written so far is sent: the peer reads
   * the end of stream, and this side can still read. Later writes reject with `Closed`.
   * While writes are still pending it waits for them, and a cancel of the calling task
   * or `signal` rejects it with `Cancelled`: the end of stream is not sent then (the
   * pending writes go on, later writes are still refused; call closeWrite again, or
   * close). Rejects with `Closed` if the stream is reset (`abort`, or `close`'s timeout)
   * before the end of stream could be sent.
   */
  async closeWrite(options?: { signal?: AbortSignal }): Promise<void> {
    // (`options` is spelled out: a named type would have to be exported by mod.ts.)
    const signal = enter(options, "closeWrite");
    const what = this.#what("closeWrite"); // now: the peer's address is gone once released
    if (this.#closed) throw new Closed(`${what}: the stream is closed`);
    if (this.#shutDown) return;
    this.#writeClosed = true;
    // Pending writes finish first; the loop sends the FIN after the queued bytes.
    if (this.#writers.length > 0) {
      const status = await this.#drained(signal);
      // A reset dropped the queue, and the end of stream behind it.
      if (this.#released === 2) {
        throw new Closed(`${what}: the stream was closed before its write side was shut down`);
      }
      // A close that sent every byte closed the write side after them; or another
      // closeWrite shut it down meanwhile.
      if (this.#released === 1 || this.#shutDown) return;
      if (status < 0) throw abiError(status, what);
    }
    const r = sym.zev_shutdown(loop, this.handle);
    if (r < 0) throw abiError(r, what);
    this.#shutDown = true;
    driver.queued(); // the FIN waits behind the queued bytes: keep the process alive for them
  }

  /**
   * Sends what is queued (waiting at most `timeout`), then closes the stream. A pending
   * read rejects with `Closed`. If the queue has not drained within `timeout`, the stream
   * is reset (its handle released all the same) and close rejects with `TimedOut`, saying
   * how many bytes were not sent. A cancel of the calling task, or `signal`, while close
   * waits resets the stream at once and rejects with `Cancelled`. Calling it again
   * returns the same promise (and ties that caller's task and signal to it too).
   */
  close(options?: CloseOptions): Promise<void> {
    let timeout = DEFAULT_CLOSE_TIMEOUT_MS, signal: AbortSignal | undefined;
    try {
      const t = checkOptions(options, "close")?.timeout;
      if (t !== undefined) timeout = checkMs(t, "close", "timeout");
      signal = checkSignal(options?.signal, "close");
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#closing) {
      this.#tieClose(signal);
      return this.#closing;
    }
    this.#closed = true;
    this.#closing = this.#close(timeout, signal);
    return this.#closing;
  }

  #close(timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.#reading) this.#endRead(new Closed(`${this.#what("read")}: the stream was closed while reading`));
    // A TLS stream ends with close_notify, so that its peer reads a clean end.
    if (this.#writers.length === 0) this.#notifyTls();
    if (this.#writers.length === 0 && !(sym.zev_flush(loop, this.handle) > 0)) {
      this.#release(false);
      return Promise.resolve();
    }
    const what = this.#what("close"); // now: the peer's address is gone once released
    return new Promise((resolve, reject) => {
      // Assigned once the wait is tied (a cancel may come first and find none).
      // deno-lint-ignore prefer-const
      let timer: ReturnType<typeof setTimeout> | undefined;
      const wait: CloseWait = {
        finish: (error?: unknown) => {
          if (this.#closeWait !== wait) return; // ended already
          this.#closeWait = undefined;
          clearTimeout(timer);
          const i = this.#drainers.indexOf(drained);
          if (i >= 0) this.#drainers.splice(i, 1);
          for (const untie of wait.unties.splice(0)) untie();
          this.#release(error !== undefined);
          if (error === undefined) resolve();
          else reject(error);
        },
        unties: [],
      };
      // Drained: closed. The stream failed (a peer that reset), or `abort` reset it
      // meanwhile: its queue is lost, and close says so.
      const drained = (status: number) => {
        // The writes are out: a TLS stream's close_notify follows them.
        if (status === DRAINED && this.#notifyTls() && sym.zev_flush(loop, this.handle) > 0) {
          this.#addDrainer(drained);
          this.updateHold();
          return driver.kick();
        }
        if (status < 0) wait.finish(abiError(status, what));
        else if (status === RELEASED && this.#released === 2) {
          wait.finish(new Closed(`${what}: the stream was reset before its queue was sent`));
        } else wait.finish();
      };
      this.#closeWait = wait;
      this.#addDrainer(drained);
      this.updateHold();
      this.#tieClose(signal);
      if (this.#closeWait !== wait) return; // cancelled at once
      timer = setTimeout(() => {
        const unsent = this.#unsent();
        wait.finish(
          new TimedOut(`${what}: ${unsent} bytes were still unsent after ${timeoutMs} ms: the stream was reset`),
        );
      }, timeoutMs);
      this.#checkDrained();
    });
  }

  /** Sends a TLS stream's close_notify (and FIN) if it is not sent yet; true if it was now. */
  #notifyTls(): boolean {
    if (!this.#tls || this.#shutDown || this.#released !== 0) return false;
    this.#shutDown = true;
    return sym.zev_shutdown(loop, this.handle) >= 0;
  }

  /** Ties the calling task and `signal` to the close under way: a cancel resets the stream. */
  #tieClose(signal: AbortSignal | undefined): void {
    const wait = this.#closeWait;
    if (wait === undefined) return;
    const untie = guardWait((error) => wait.finish(error), signal);
    if (untie !== null) wait.unties.push(untie);
  }

  /** Closes at once with a reset (RST), dropping whatever is queued. */
  abort(): void {
    this.#closed = true;
    this.#closing ??= Promise.resolve();
    if (this.#reading) this.#endRead(new Closed(`${this.#what("read")}: the stream was aborted while reading`));
    this.#release(true);
  }

  #release(reset: boolean): void {
    if (!driver.unregister(this)) return;
    // Kept by the library, no system call: a handler that logs its peer after close can.
    if (this.#unix === undefined && this.#remote === undefined) {
      try {
        this.#remote = readAddr(this.handle, true, "stream.remoteAddr");
      } catch {
        // (A stream that never connected has no peer to keep.)
      }
    }
    this.#released = reset ? 2 : 1;
    for (const pending of this.#writers.drain()) {
      untieWait(pending.guard, pending.cancel);
      pending.reject(new Closed(`${this.#what("write")}: the stream was closed before the data was sent`));
    }
    const drainers = this.#drainers.splice(0);
    if (this.#connecting) this.#endConnect(new Closed(`${this.#connecting.what}: the stream was closed`));
    if (this.#handshaking) this.#endHandshake(new Closed(`${this.#handshaking.what}: the stream was closed`));
    this.updateHold();
    for (const done of drainers) done(RELEASED);
    sym.zev_close(loop, this.handle, reset ? 1 : 0);
  }

  /** @internal Waits for the connect under way; rejects with its error. */
  whenConnected(what: string, signal?: AbortSignal): Promise<void> {
    return this.#waitLoop(what, signal, (error) => this.#endConnect(error), (p) => (this.#connecting = p));
  }

  /**
   * A wait for the loop to finish something (a connect, a handshake), tied to the calling
   * task and `signal` (`end` ends it with their error), kept where `keep` puts it.
   */
  #waitLoop(
    what: string,
    signal: AbortSignal | undefined,
    end: (error: unknown) => void,
    keep: (pending: PendingConnect) => void,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const pending: PendingConnect = { what, resolve, reject, guard: undefined, cancel: end };
      pending.guard = tieWait(pending.cancel, signal);
      if (pending.guard === null) return;
      keep(pending);
      this.updateHold();
      driver.kick();
    });
  }

  #endConnect(error: unknown): void {
    const pending = this.#connecting;
    if (!pending) return;
    this.#connecting = undefined;
    untieWait(pending.guard, pending.cancel);
    this.updateHold();
    pending.reject(error);
  }

  #onConnected(): void {
    const pending = this.#connecting!;
    const status = sym.zev_status(loop, this.handle);
    if (status === WOULD_BLOCK) return;
    if (status !== 0) return this.#endConnect(abiError(status, pending.what));
    this.#connecting = undefined;
    untieWait(pending.guard, pending.cancel);
    this.updateHold();
    pending.resolve();
  }

  /** @internal */
  onEvent(flags: number): void {
    if (this.#connecting) {
      if (flags & WRITE) this.#onConnected();
      return;
    }
    if (this.#handshaking) {
      if (flags & READ) this.#onHandshake();
      if (flags & WRITE) this.#checkDrained();
      return;
    }
    if (flags & READ && this.#reading) this.#onReadable();
    if (flags & WRITE) {
      if (this.#writers.length > 0) this.#onWritable();
      else this.#checkDrained();
    }
  }

  /**
   * The stream's incoming bytes as a Web `ReadableStream` (a byte stream): it reads from
   * the socket only when its consumer asks, so a slow consumer holds the peer back
   * through TCP instead of letting memory grow. Cancelling it closes the stream. Use it,
   * or `read`, not both.
   *
   * @example
   * ```ts
   * for await (const text of stream.readable.pipeThrough(new TextDecoderStream())) console.log(text);
   * ```
   */
  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= new ReadableStream({
      type: "bytes",
      pull: async (controller) => {
        // A BYOB reader's view is filled in place; a default reader gets chunks from
        // `read()`, so a readable waiting for its peer holds no buffer.
        const request = controller.byobRequest;
        if (request?.view) {
          const view = request.view;
          const n = await this.read(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
          if (n === null) {
            controller.close();
            request.respond(0);
          } else {
            request.respond(n);
          }
          return;
        }
        const chunk = await this.read();
        if (chunk === null) controller.close();
        else controller.enqueue(chunk as Uint8Array<ArrayBuffer>); // (a copy: never shared)
      },
      cancel: () => this.close(),
    });
  }

  /**
   * The stream's outgoing side as a Web `WritableStream`: each chunk is written with
   * `write` (so it waits while the peer does not read); closing it closes the write side
   * (`closeWrite`); aborting it resets the stream.
   *
   * @example
   * ```ts
   * await other.readable.pipeTo(stream.writable); // a proxy, one direction
   * ```
   */
  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= new WritableStream<Uint8Array>({
      // The controller's signal aborts a write the peer holds back: abort() waits for the
      // write in flight, so without it aborting a stuck writable would hang.
      // (bun-types does not declare the signal, which both runtimes have.)
      write: async (chunk, controller: WritableStreamDefaultController & { signal?: AbortSignal }) => {
        await this.write(chunk, { signal: controller.signal });
      },
      close: () => this.closeWrite(),
      abort: () => this.abort(),
    });
  }

  /**
   * Reads chunks until the end of the stream (each from `read()`: the caller's to keep,
   * and no buffer held while it waits).
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for (let chunk; (chunk = await this.read()) !== null;) yield chunk;
  }

  /** `await using stream = await connect(...)` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
