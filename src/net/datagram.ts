/**
 * UDP sockets (Janet's `net/send-to` and `net/recv-from`): one datagram per call, driven
 * by the same loop as streams, every wait cancellable, every queue bounded.
 *
 * @module
 */

import { OPT, READ, WRITE } from "../../ffi/mod.ts";
import { type Addr, formatAddr, literalHost, parseAddr, readAddr, resolveHosts } from "./addr.ts";
import { abiError, Closed, WOULD_BLOCK, ZevError } from "../core/errors.ts";
import { cancellable, checkPermission, hostPort } from "./open.ts";
import { Handle } from "../core/handle.ts";
import { driver, onNextTurn } from "../core/driver.ts";
import { MAX_DATAGRAM_BYTES, MAX_PENDING_DATAGRAMS } from "../core/limits.ts";
import { cancelledOnEntry, enter, type Guard, tieWait, untieWait } from "../tasks/task.ts";
import { checkBytes, checkPort, show } from "../core/validate.ts";
import { Waiter, WaitQueue } from "../core/wait_queue.ts";

const sym = driver.native.sym;
const loop = driver.loop;
const encoder = new TextEncoder();

/** Options of `listenDatagram`. */
export interface ListenDatagramOptions {
  /** An IP address or "localhost". Default "0.0.0.0" (every IPv4 interface). */
  hostname?: string;
  /** 0 picks a free port; `socket.addr.port` tells which. */
  port: number;
  /** Share the port with other sockets that ask for it too (SO_REUSEPORT). Default false. */
  reusePort?: boolean;
}

/** A datagram received by `DatagramSocket.receive`. */
export interface Datagram {
  /** Bytes of the datagram now at the start of the buffer (at most its length). */
  bytes: number;
  /** Who sent it. */
  addr: Addr;
  /** The datagram was longer than the buffer: only its first `bytes` bytes were kept. */
  truncated: boolean;
}

/** Options of `DatagramSocket.send`: where to, and a signal. */
export interface DatagramSendOptions {
  /** Host name or IP address. Default "127.0.0.1". */
  hostname?: string;
  /** The port, 1 to 65535. */
  port: number;
  /** Reject with `Cancelled` when this signal aborts (a datagram not yet sent is not sent). */
  signal?: AbortSignal;
}

/** Options of `DatagramSocket.receive`. */
export interface DatagramReceiveOptions {
  /** Reject with `Cancelled` when this signal aborts (no datagram is taken). */
  signal?: AbortSignal;
}

class ReceiveWait extends Waiter {
  guard: Guard | null = undefined;
  constructor(
    readonly socket: DatagramSocket,
    readonly buf: Uint8Array,
    readonly resolve: (d: Datagram) => void,
    readonly reject: (error: unknown) => void,
  ) {
    super();
  }
  cancel = (error: unknown): void => this.socket._cancel(this, error);
}

class SendWait extends Waiter {
  guard: Guard | null = undefined;
  constructor(
    readonly socket: DatagramSocket,
    readonly data: Uint8Array,
    readonly host: Uint8Array,
    readonly port: number,
    readonly target: string,
    readonly resolve: () => void,
    readonly reject: (error: unknown) => void,
  ) {
    super();
  }
  cancel = (error: unknown): void => this.socket._cancel(this, error);
}

/**
 * A UDP socket, from `listenDatagram`. Receives and sends each wait in their own queue,
 * first come first served; a datagram is never cut silently (`truncated`).
 *
 * @example
 * ```ts
 * using socket = listenDatagram({ hostname: "127.0.0.1", port: 0 });
 * const buf = new Uint8Array(2048);
 * const { bytes, addr } = await socket.receive(buf);
 * await socket.send(buf.subarray(0, bytes), addr);
 * ```
 */
export class DatagramSocket extends Handle {
  /** The socket's handle in the native loop (for diagnostics). */
  readonly handle: number;
  /** The address it is bound to (with the real port when 0 was asked). */
  readonly addr: Addr;
  #receivers = new WaitQueue<ReceiveWait>();
  #senders = new WaitQueue<SendWait>();
  #from = new Uint8Array(20);
  #closed = false;
  /** Serves the waiting receives and sends on the next turn (once however often asked). */
  #serveSoon = onNextTurn(() => {
    if (this.#closed) return;
    this.#serveReceivers();
    this.#serveSenders();
  });

  /** @internal Sockets come from `listenDatagram`. */
  constructor(handle: number) {
    super();
    this.handle = handle;
    this.addr = readAddr(handle, false, "listenDatagram");
    driver.register(this);
  }

  /** Whether `close` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Resolves with the next datagram, copied to the start of `buf`. Rejects with `Closed`
   * once the socket closes.
   */
  receive(buf: Uint8Array, options?: DatagramReceiveOptions): Promise<Datagram> {
    let signal: AbortSignal | undefined;
    try {
      checkBytes(buf, "receive", "buf", false);
      signal = enter(options, "receive");
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#closed) return Promise.reject(new Closed(`${this.#on("receive")}: the socket is closed`));
    let tried = false;
    if (this.#receivers.length === 0 && driver.spend()) {
      const got = this.#receive(buf);
      if (got instanceof Error) return Promise.reject(got);
      if (got !== undefined) return Promise.resolve(got);
      tried = true;
    } else if (this.#receivers.length >= MAX_PENDING_DATAGRAMS) {
      return Promise.reject(
        new ZevError("Limit", `${this.#on("receive")}: ${MAX_PENDING_DATAGRAMS} receives are already pending`),
      );
    }
    return new Promise((resolve, reject) => {
      const wait = new ReceiveWait(this, buf, resolve, reject);
      this.#enqueue(this.#receivers, wait, signal, tried);
    });
  }

  /**
   * Sends `data` as one datagram (at most `limits().maxDatagramBytes`) to `hostname`
   * and `port`; host names resolve through the system's resolver. Resolves once the
   * kernel has taken it (UDP says nothing of its arrival).
   */
  async send(data: Uint8Array, options: DatagramSendOptions): Promise<void> {
    if (typeof options !== "object" || options === null) {
      throw new TypeError(`send: options must be an object with a port, not ${show(options)}`);
    }
    checkBytes(data, "send", "data", true);
    if (data.length > MAX_DATAGRAM_BYTES) {
      throw new RangeError(`send: data is ${data.length} bytes: a UDP datagram carries at most ${MAX_DATAGRAM_BYTES}`);
    }
    const port = checkPort(options.port, "send", false);
    // Only a missing hostname means the default: null is a mistake, named as one.
    const name = options.hostname === undefined ? "127.0.0.1" : options.hostname;
    const signal = options.signal;
    const cancelled = cancelledOnEntry(signal, "send");
    if (cancelled) throw cancelled;
    const literal = literalHost(name, "send");
    checkPermission(
      literal ?? name,
      port,
      `send to ${literal === undefined ? `${name}:${port}` : hostPort(literal, port)}`,
    );
    // An IPv4 socket asks for IPv4 addresses only (a name whose first answer is IPv6 is
    // still reachable); an IPv6 one reaches both.
    const family = this.addr.family === 4 ? 4 : 0;
    const host = this.#reachable(literal ?? (await cancellable(resolveHosts(name, "send", family), signal))[0], port);
    const target = `send to ${hostPort(host, port)}`;
    const late = cancelledOnEntry(signal, "send");
    if (late) throw late;
    if (this.#closed) throw new Closed(`${target}: the socket is closed`);
    const hostBytes = encoder.encode(host);
    let tried = false;
    if (this.#senders.length === 0 && driver.spend()) {
      const r = sym.zev_send_to(loop, this.handle, data, data.length, hostBytes, hostBytes.length, port);
      if (r >= 0) return;
      if (r !== WOULD_BLOCK) throw abiError(r, target);
      tried = true;
    } else if (this.#senders.length >= MAX_PENDING_DATAGRAMS) {
      throw new ZevError(
        "Limit",
        `${target}: ${MAX_PENDING_DATAGRAMS} sends are already pending on this socket; await them`,
      );
    }
    return new Promise<void>((resolve, reject) => {
      const wait = new SendWait(this, data, hostBytes, port, target, resolve, reject);
      this.#enqueue(this.#senders, wait, signal, tried);
    });
  }

  /**
   * Closes the socket. Pending receives and sends reject with `Closed` (a send that
   * waited was not sent).
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    driver.unregister(this);
    sym.zev_close(loop, this.handle, 0);
    for (const w of this.#receivers.drain()) {
      untieWait(w.guard, w.cancel);
      w.reject(new Closed(`${this.#on("receive")}: the socket was closed`));
    }
    for (const w of this.#senders.drain()) {
      untieWait(w.guard, w.cancel);
      w.reject(new Closed(`${w.target}: the socket was closed before the datagram was sent`));
    }
    this.updateHold();
  }

  /** `using socket = listenDatagram(...)` closes it. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal */
  onEvent(flags: number): void {
    if (flags & READ) this.#serveReceivers();
    if (flags & WRITE) this.#serveSenders();
  }

  /** @internal A pending receive or send was cancelled: it leaves its queue at once. */
  _cancel(wait: ReceiveWait | SendWait, error: unknown): void {
    const removed = wait instanceof ReceiveWait ? this.#receivers.remove(wait) : this.#senders.remove(wait);
    if (!removed) return;
    this.updateHold();
    wait.reject(error);
  }

  #enqueue<W extends ReceiveWait | SendWait>(
    queue: WaitQueue<W>,
    wait: W,
    signal: AbortSignal | undefined,
    tried: boolean,
  ): void {
    wait.guard = tieWait(wait.cancel, signal);
    if (wait.guard === null) return; // cancelled at once
    queue.push(wait);
    this.updateHold();
    // Tried and would block: the native loop was asked for the READ or WRITE event that
    // says when to try again. Not tried (queued behind others, or the turn's budget was
    // spent): the next turn tries.
    if (tried) driver.kick();
    else this.#serveSoon();
  }

  /** One datagram into `buf`; undefined when none is waiting; an Error to reject with. */
  #receive(buf: Uint8Array): Datagram | Error | undefined {
    const from = this.#from;
    const r = sym.zev_recv_from(loop, this.handle, buf, buf.length, from);
    if (r === WOULD_BLOCK) return undefined;
    if (r < 0) return abiError(r, this.#on("receive"));
    return { bytes: r, addr: parseAddr(from), truncated: from[1] === 1 };
  }

  #serveReceivers(): void {
    for (let w = this.#receivers.peek(); w !== null; w = this.#receivers.peek()) {
      let got: Datagram | Error | undefined;
      try {
        // The caller's buffer may have been detached (transferred) while it waited: that
        // receive fails, naming it, and the datagram stays for the next.
        checkBytes(w.buf, "receive", "buf", false);
        got = this.#receive(w.buf);
      } catch (error) {
        got = error as Error;
      }
      if (got === undefined) break;
      this.#receivers.shift();
      untieWait(w.guard, w.cancel);
      if (got instanceof Error) w.reject(got);
      else w.resolve(got);
    }
    this.updateHold();
  }

  #serveSenders(): void {
    for (let w = this.#senders.peek(); w !== null; w = this.#senders.peek()) {
      try {
        // Detached while it waited: sent, it would be an empty datagram. It fails instead.
        checkBytes(w.data, "send", "data", true);
      } catch (error) {
        this.#senders.shift();
        untieWait(w.guard, w.cancel);
        w.reject(error);
        continue;
      }
      const r = sym.zev_send_to(loop, this.handle, w.data, w.data.length, w.host, w.host.length, w.port);
      if (r === WOULD_BLOCK) break;
      this.#senders.shift();
      untieWait(w.guard, w.cancel);
      if (r < 0) w.reject(abiError(r, w.target));
      else w.resolve();
    }
    this.updateHold();
  }

  /** A receive or a send is pending (what holds the loop while referenced). */
  protected get waiting(): boolean {
    return this.#receivers.length + this.#senders.length > 0;
  }

  /**
   * `host` as this socket's family can reach it: an IPv6 socket (dual-stack when bound
   * to "::") reaches IPv4 through the mapped form; an IPv4 socket cannot reach IPv6.
   */
  #reachable(host: string, port: number): string {
    const v6 = host.includes(":");
    if (this.addr.family === 6 && !v6) return `::ffff:${host}`;
    if (this.addr.family === 4 && v6) {
      throw new ZevError(
        "InvalidArgument",
        `send to ${hostPort(host, port)}: ${
          this.#on("the socket")
        } is IPv4 and cannot reach an IPv6 address (bind it to "::" for both)`,
      );
    }
    return host;
  }

  #on(op: string): string {
    return `${op} on ${formatAddr(this.addr)}`;
  }
}

/**
 * Opens a UDP socket bound to `hostname` and `port` (Janet's `net/listen` with `:datagram`).
 *
 * @example
 * ```ts
 * const socket = listenDatagram({ hostname: "127.0.0.1", port: 0 });
 * await socket.send(new TextEncoder().encode("ping"), { hostname: "127.0.0.1", port: 9999 });
 * socket.close();
 * ```
 */
export function listenDatagram(options: ListenDatagramOptions): DatagramSocket {
  const what = "listenDatagram";
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`${what}: options must be an object, not ${show(options)}`);
  }
  const port = checkPort(options.port, what, true);
  // Only a missing hostname means the default: null is a mistake, named as one.
  const host = literalHost(options.hostname === undefined ? "0.0.0.0" : options.hostname, what);
  if (host === undefined) {
    throw new TypeError(`${what}: hostname must be an IP address or "localhost", not ${show(options.hostname)}`);
  }
  if (options.reusePort !== undefined && typeof options.reusePort !== "boolean") {
    throw new TypeError(`${what}: reusePort must be a boolean, not ${show(options.reusePort)}`);
  }
  const where = `${what} on ${hostPort(host, port)}`;
  checkPermission(host, port, where);
  const bytes = encoder.encode(host);
  const h = sym.zev_listen_datagram(loop, bytes, bytes.length, port, options.reusePort ? OPT.reusePort : 0);
  if (h < 0) throw abiError(h, where);
  return new DatagramSocket(h);
}
