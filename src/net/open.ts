/**
 * Opening TCP and Unix listeners and connections (Janet's `net/listen`, `net/connect`).
 *
 * @module
 */

import { OPT } from "../../ffi/mod.ts";
import { MAX_UNIX_PATH } from "../core/limits.ts";
import { abiError, callSite, Cancelled, fromCallSite, WOULD_BLOCK, ZevError } from "../core/errors.ts";
import { driver } from "../core/driver.ts";
import { Listener } from "./listener.ts";
import {
  clientContext,
  type Context,
  releaseContext,
  secureClient,
  serverContext,
  type TlsClientOptions,
  TlsListener,
  type TlsServerOptions,
} from "./tls.ts";
import { Stream } from "./stream.ts";
import { type Addr, formatAddr, literalHost, resolveHosts, type UnixAddr } from "./addr.ts";
import { cancelledOnEntry, guardWait } from "../tasks/task.ts";
import { checkPort, show } from "../core/validate.ts";

const sym = driver.native.sym;
const loop = driver.loop;
const encoder = new TextEncoder();

/** Options of `listen`. */
export interface ListenOptions {
  /** An IP address or "localhost". Default "0.0.0.0" (every IPv4 interface). */
  hostname?: string;
  /** 0 picks a free port; `listener.addr.port` tells which. */
  port: number;
  /** Kernel backlog of completed connections (capped; see the README's limits). */
  backlog?: number;
  /** Accepted streams send small writes at once (TCP_NODELAY). Default true. */
  noDelay?: boolean;
  /** Accepted streams have the kernel probe an idle peer (SO_KEEPALIVE). Default false. */
  keepAlive?: boolean;
  /**
   * Share the port with other listeners that ask for it too (SO_REUSEPORT): the kernel
   * spreads connections over them, one event loop per core. Default false.
   */
  reusePort?: boolean;
  /**
   * Told each time accepting pauses in a way zev recovers from by itself: the process
   * ran out of descriptors (EMFILE, ENFILE) or memory, or the loop's handle table is
   * full, so the listener is paused and retried shortly (and as soon as a descriptor is
   * closed). For logging; `stats().acceptPaused` counts them.
   */
  onAcceptError?: (error: ZevError) => void;
  /**
   * Serve TLS: accepted streams are TLS streams whose handshake has finished (one that
   * fails or passes its deadline is told to `onAcceptError`, never to `accept`).
   */
  tls?: TlsServerOptions;
}

/** Options of `listen` on a Unix socket. */
export interface UnixListenOptions {
  /** The socket file to create; it is removed when the listener closes. */
  path: string;
  /** Kernel backlog of completed connections (capped; see the README's limits). */
  backlog?: number;
  /**
   * A socket file at `path` that no process listens on (left by one that exited) is
   * replaced instead of failing with `AddrInUse`. A live listener's file, or a file
   * that is not a socket, is never replaced. Default false.
   */
  replaceStale?: boolean;
  /** As for TCP: told each time accepting pauses for lack of descriptors or memory. */
  onAcceptError?: (error: ZevError) => void;
}

/** Options of `connect` to a Unix socket. */
export interface UnixConnectOptions {
  /** The listener's socket file. */
  path: string;
  /** Reject with `Cancelled` when this signal aborts (checked before anything is done). */
  signal?: AbortSignal;
}

/** The options that are TCP's only: an error with `path`. */
const TCP_ONLY = ["hostname", "port", "noDelay", "keepAlive", "reusePort"] as const;

/** A Unix socket's path, checked: bytes it takes in the kernel's sockaddr_un. */
function checkPath(options: Record<string, unknown>, what: string): Uint8Array {
  const path = options.path;
  if (typeof path !== "string" || path === "") {
    throw new TypeError(`${what}: path must be a non-empty string, not ${show(path)}`);
  }
  if (path.includes("\0")) throw new TypeError(`${what}: path must not contain a NUL character`);
  const bytes = encoder.encode(path);
  if (bytes.length > MAX_UNIX_PATH) {
    throw new RangeError(
      `${what}: path is ${bytes.length} bytes, too long for a Unix socket (at most ${MAX_UNIX_PATH}): ${show(path)}`,
    );
  }
  for (const name of TCP_ONLY) {
    if (options[name] !== undefined) throw new TypeError(`${what}: ${name} is for TCP, not for a Unix socket (path)`);
  }
  return bytes;
}

/** The error for a file access the runtime does not allow (Deno's `--allow-read/write`). */
function checkPathPermission(path: string, what: string): void {
  const denied = driver.native.pathPermission(path);
  if (denied !== undefined) throw new ZevError("PermissionDenied", `${what}: ${denied}`);
}

function isUnix(options: object): options is { path: string } {
  return "path" in options && options.path !== undefined;
}

/** The `OPT` bits of the boolean socket options, each checked. */
function socketOptions(
  options: { noDelay?: boolean; keepAlive?: boolean; reusePort?: boolean },
  what: string,
  listener: boolean,
): number {
  const names = listener ? ["noDelay", "keepAlive", "reusePort"] as const : ["noDelay", "keepAlive"] as const;
  for (const name of names) {
    const v = options[name];
    if (v !== undefined && typeof v !== "boolean") {
      throw new TypeError(`${what}: ${name} must be a boolean, not ${show(v)}`);
    }
  }
  return (options.noDelay === false ? OPT.delay : 0) | (options.keepAlive ? OPT.keepAlive : 0) |
    (listener && options.reusePort ? OPT.reusePort : 0);
}

/** `host:port` for an IP literal, IPv6 in brackets. */
export function hostPort(host: string, port: number): string {
  return formatAddr({ hostname: host, port, family: host.includes(":") ? 6 : 4 });
}

/** The error for a network access the runtime does not allow (Deno's `--allow-net`). */
export function checkPermission(host: string, port: number, what: string): void {
  const denied = driver.native.netPermission(host, port);
  if (denied !== undefined) throw new ZevError("PermissionDenied", `${what}: ${denied}`);
}

/**
 * Listens on a Unix socket: creates the socket file at `path`, and removes it when the
 * listener closes (if it is still this listener's). A socket file that no process
 * listens on is reported (`AddrInUse`), and replaced only with `replaceStale: true`.
 *
 * @example
 * ```ts
 * const listener = listen({ path: "/tmp/app.sock" });
 * const stream = await listener.accept();
 * ```
 */
export function listen(options: UnixListenOptions): Listener<UnixAddr>;
/**
 * Listens for TCP connections.
 *
 * @example
 * ```ts
 * const listener = listen({ hostname: "127.0.0.1", port: 0 });
 * console.log(`listening on ${listener.addr.hostname}:${listener.addr.port}`);
 * ```
 */
export function listen(options: ListenOptions): Listener;
export function listen(options: ListenOptions | UnixListenOptions): Listener<UnixAddr> | Listener {
  const what = "listen";
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`${what}: options must be an object, not ${show(options)}`);
  }
  if (isUnix(options)) return listenUnix(options as UnixListenOptions, what);
  const { host, port, backlog, opts } = checkListen(options as ListenOptions, what);
  const tls = (options as ListenOptions).tls;
  // The certificate is checked before the port is taken: a bad one opens nothing.
  const ctx = tls === undefined ? undefined : serverContext(tls, what);
  const bytes = encoder.encode(host);
  const h = sym.zev_listen(loop, bytes, bytes.length, port, backlog, opts);
  if (h < 0) {
    if (ctx) sym.zev_tls_context_free(ctx.id);
    throw abiError(h, `${what} on ${hostPort(host, port)}`);
  }
  const onAcceptError = (options as ListenOptions).onAcceptError;
  return ctx ? new TlsListener<Addr>(h, ctx, onAcceptError) : new Listener<Addr>(h, onAcceptError);
}

/**
 * @internal Every check `listen` makes of TCP options before it opens anything (the
 * port, the hostname, the backlog, the socket options, the runtime's permission); `serve`
 * with `workers` makes them on the main thread before any Worker starts.
 */
export function checkListen(
  options: ListenOptions,
  what: string,
): { host: string; port: number; backlog: number; opts: number } {
  const port = checkPort(options.port, what, true);
  // Only a missing hostname means the default: null is a mistake, named as one.
  const host = literalHost(options.hostname === undefined ? "0.0.0.0" : options.hostname, what);
  if (host === undefined) {
    throw new TypeError(`${what}: hostname must be an IP address or "localhost", not ${show(options.hostname)}`);
  }
  const backlog = checkListenOptions(options, what);
  const opts = socketOptions(options, what, true);
  checkPermission(host, port, `${what} on ${hostPort(host, port)}`);
  return { host, port, backlog, opts };
}

/** The backlog (0: the default) and `onAcceptError`, checked; returns the backlog. */
function checkListenOptions(options: { backlog?: number; onAcceptError?: unknown }, what: string): number {
  const backlog = options.backlog ?? 0;
  if (!Number.isInteger(backlog) || backlog < 0 || backlog > 2 ** 31 - 1) {
    throw new RangeError(`${what}: invalid backlog ${show(backlog)}: expected an integer from 0 (the default) up`);
  }
  if (options.onAcceptError !== undefined && typeof options.onAcceptError !== "function") {
    throw new TypeError(`${what}: onAcceptError must be a function, not ${show(options.onAcceptError)}`);
  }
  return backlog;
}

function listenUnix(options: UnixListenOptions, what: string): Listener<UnixAddr> {
  const bytes = checkPath(options as unknown as Record<string, unknown>, what);
  const backlog = checkListenOptions(options, what);
  const replace = options.replaceStale ?? false;
  if (typeof replace !== "boolean") {
    throw new TypeError(`${what}: replaceStale must be a boolean, not ${show(options.replaceStale)}`);
  }
  const where = `${what} on ${options.path}`;
  checkPathPermission(options.path, where);
  const h = sym.zev_listen_unix(loop, bytes, bytes.length, backlog, replace ? OPT.replaceStale : 0);
  if (h < 0) throw abiError(h, where);
  return new Listener<UnixAddr>(h, options.onAcceptError, options.path);
}

/** Options of `connect`. */
export interface ConnectOptions {
  /** Host name or IP address. Default "127.0.0.1". */
  hostname?: string;
  /** The port to connect to, 1 to 65535. */
  port: number;
  /** Reject with `Cancelled` when this signal aborts (checked before anything is sent). */
  signal?: AbortSignal;
  /** Send small writes at once (TCP_NODELAY). Default true. */
  noDelay?: boolean;
  /** Have the kernel probe an idle peer (SO_KEEPALIVE). Default false. */
  keepAlive?: boolean;
  /**
   * Speak TLS: `true` verifies the server against the system's CAs and `hostname` (sent
   * as SNI); an object says more (its own CAs, a client certificate, ALPN...).
   */
  tls?: true | TlsClientOptions;
}

/**
 * `promise`, or `Cancelled` as soon as the calling task is cancelled or `signal` aborts
 * (a host name lookup cannot be stopped; its late result is dropped).
 */
export function cancellable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const release = guardWait(reject, signal);
    if (release === null) return void promise.catch(() => {});
    promise.then(
      (value) => (release(), resolve(value)),
      (error) => (release(), reject(error)),
    );
  });
}

/**
 * Connects to a Unix socket's listener.
 *
 * @example
 * ```ts
 * const stream = await connect({ path: "/tmp/app.sock" });
 * ```
 */
export function connect(options: UnixConnectOptions): Promise<Stream<UnixAddr>>;
/**
 * Opens a TCP connection. Host names are resolved through the system's resolver, and
 * each address it gives is tried in its order until one connects; if none does, the
 * last one's error is thrown.
 *
 * @example
 * ```ts
 * const stream = await connect({ hostname: "127.0.0.1", port: 8080 });
 * ```
 */
export function connect(options: ConnectOptions): Promise<Stream>;
export function connect(options: ConnectOptions | UnixConnectOptions): Promise<Stream<UnixAddr> | Stream> {
  // A refused connect fails in an event of the loop, far from the caller: its error gets
  // the caller's stack, taken here (about a microsecond, against a connect's tens).
  const site = callSite(connect);
  return connectFrom(options).catch((error) => {
    throw fromCallSite(error, site);
  });
}

async function connectFrom(options: ConnectOptions | UnixConnectOptions): Promise<Stream<UnixAddr> | Stream> {
  const what = "connect";
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`${what}: options must be an object, not ${show(options)}`);
  }
  if (isUnix(options)) return await connectUnix(options as UnixConnectOptions, what);
  options = options as ConnectOptions;
  const port = checkPort(options.port, what, false);
  const opts = socketOptions(options, what, false);
  // Only a missing hostname means the default: null is a mistake, named as one.
  const name = options.hostname === undefined ? "127.0.0.1" : options.hostname;
  const signal = options.signal;
  const cancelled = cancelledOnEntry(signal, what);
  if (cancelled) throw cancelled;
  const literal = literalHost(name, what);
  // Deno asks about the name the program gave, before any lookup, as Deno.connect does.
  checkPermission(
    literal ?? name,
    port,
    `${what} to ${literal === undefined ? `${name}:${port}` : hostPort(literal, port)}`,
  );
  // TLS options are checked (and the engine loaded) before anything goes out.
  const tls = options.tls === undefined ? undefined : clientContext(options.tls, what);
  try {
    return await connectAny(literal, name, port, opts, signal, tls, what);
  } finally {
    if (tls) releaseContext(tls);
  }
}

async function connectAny(
  literal: string | undefined,
  name: string,
  port: number,
  opts: number,
  signal: AbortSignal | undefined,
  tls: Context | undefined,
  what: string,
): Promise<Stream> {
  const hosts = literal === undefined ? await cancellable(resolveHosts(name, what), signal) : [literal];
  // Each address in the resolver's order, until one connects (a name with an IPv6
  // address first, on a host with no IPv6 route, still connects over IPv4); all failing,
  // the last one's error.
  let failure: unknown;
  for (const host of hosts) {
    // The lookup or the last attempt may have taken a while: a cancel meanwhile sends no SYN.
    const late = cancelledOnEntry(signal, what);
    if (late) throw late;
    try {
      const stream = await connectTo(host, port, opts, signal, what);
      // TLS on the address that answered (a failed handshake tries no other).
      if (tls) await secureClient(stream, tls, tls.servername ?? name, `${what} to ${hostPort(host, port)}`, signal);
      return stream;
    } catch (error) {
      if (error instanceof ZevError && error.code.startsWith("Tls")) throw error;
      if (!(error instanceof ZevError) || error instanceof Cancelled || error.code === "PermissionDenied") throw error;
      failure = error;
    }
  }
  throw failure;
}

/** One connection attempt to an IP literal. */
async function connectTo(
  host: string,
  port: number,
  opts: number,
  signal: AbortSignal | undefined,
  what: string,
): Promise<Stream> {
  const target = `${what} to ${hostPort(host, port)}`;
  const bytes = encoder.encode(host);
  const h = sym.zev_connect(loop, bytes, bytes.length, port, opts);
  if (h < 0) throw abiError(h, target);
  return await connected(new Stream(h), target, signal);
}

/** A stream whose connect was started: once connected, or aborted with its error. */
async function connected<S extends Stream<Addr> | Stream<UnixAddr>>(
  stream: S,
  target: string,
  signal: AbortSignal | undefined,
): Promise<S> {
  const status = sym.zev_status(loop, stream.handle);
  try {
    if (status === WOULD_BLOCK) await stream.whenConnected(target, signal);
    else if (status < 0) throw abiError(status, target);
  } catch (error) {
    stream.abort();
    throw error;
  }
  return stream;
}

async function connectUnix(options: UnixConnectOptions, what: string): Promise<Stream<UnixAddr>> {
  const bytes = checkPath(options as unknown as Record<string, unknown>, what);
  const signal = options.signal;
  const cancelled = cancelledOnEntry(signal, what);
  if (cancelled) throw cancelled;
  const target = `${what} to ${options.path}`;
  checkPathPermission(options.path, target);
  const h = sym.zev_connect_unix(loop, bytes, bytes.length, 0);
  if (h < 0) throw abiError(h, target);
  const stream = new Stream<UnixAddr>(h, [{ path: "", family: "unix" }, { path: options.path, family: "unix" }]);
  return await connected(stream, target, signal);
}
