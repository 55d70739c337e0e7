/**
 * TLS on zev streams: the system's OpenSSL 3 driven inside the loop (zig/tls/), so a TLS
 * stream is a `Stream` like any other (reads, writes, backpressure, cancellation,
 * deadlines), with only plaintext crossing into JavaScript.
 *
 * A TLS listener accepts in the background and hands out only streams whose handshake
 * has finished: a handshake that fails or passes its deadline never reaches `accept`, is
 * told to `onAcceptError` and counted (`stats().tlsHandshakesFailed`), and at most
 * `MAX_TLS_HANDSHAKES` run at once per listener (the rest wait in the kernel's backlog),
 * so a flood of slow handshakes cannot hold the others back.
 *
 * @module
 */

import { tls as tlsEngine, TLS_FLAG } from "../../ffi/mod.ts";
import { abiError, Closed, ZevError } from "../core/errors.ts";
import { live, outsideTasks } from "../core/context.ts";
import { driver } from "../core/driver.ts";
import { checkMs, show } from "../core/validate.ts";
import { enter, type Guard, tieWait, untieWait } from "../tasks/task.ts";
import { Listener } from "./listener.ts";
import type { Stream } from "./stream.ts";
import { type AnyAddr, formatAddr } from "./addr.ts";
import { Deque } from "../core/wait_queue.ts";

const sym = driver.native.sym;
const encoder = new TextEncoder();

/** PEM text, or its bytes. */
export type Pem = string | Uint8Array;

/** How long a handshake may take by default, in milliseconds. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Handshakes one TLS listener runs at once; the connections past it wait in the backlog. */
export const MAX_TLS_HANDSHAKES = 256;

/** TLS options of a server: `listen({ ..., tls })`, `serve({ ..., tls })`, `startTls(stream, { isServer: true, ... })`. */
export interface TlsServerOptions {
  /** The certificate, then its chain (PEM). */
  cert: Pem;
  /** The certificate's private key (PEM). */
  key: Pem;
  /** CAs that sign the client certificates it accepts (PEM), with `requestCert`. */
  ca?: Pem;
  /** Ask clients for a certificate (mutual TLS), verified against `ca`. Default false. */
  requestCert?: boolean;
  /** With `requestCert`: a client without a valid certificate fails its handshake. Default true. */
  rejectUnauthorized?: boolean;
  /** ALPN protocols, preferred first ("h2", "http/1.1"): a client offering none of them fails. */
  alpn?: string[];
  /**
   * Certificates by the host name a client asks for (SNI): `"api.example.com"`, or
   * `"*.example.com"` for any one label; other names, and clients that send none, get
   * `cert`. At most 64.
   */
  sni?: Record<string, { cert: Pem; key: Pem }>;
  /** The lowest version accepted: "TLSv1.2" (the default) or "TLSv1.3". */
  minVersion?: "TLSv1.2" | "TLSv1.3";
  /** Milliseconds a handshake may take (default 10,000). */
  handshakeTimeout?: number;
}

/** Host names `sni` takes: a DNS name, or `*.` and one. */
const SNI_NAME = /^(\*\.)?([a-z0-9-]+\.)*[a-z0-9-]+$/i;
const MAX_SNI_NAMES = 64;

/** TLS options of a client: `connect({ ..., tls })`, `startTls(stream, ...)`. */
export interface TlsClientOptions {
  /** The name the server's certificate must carry, sent as SNI. Default: `connect`'s hostname. */
  servername?: string;
  /** CAs to trust instead of the system's store (PEM). */
  ca?: Pem;
  /** A client certificate (PEM), for servers that ask for one; with `key`. */
  cert?: Pem;
  /** The client certificate's private key (PEM). */
  key?: Pem;
  /** ALPN protocols to offer, preferred first. */
  alpn?: string[];
  /** The lowest version accepted: "TLSv1.2" (the default) or "TLSv1.3". */
  minVersion?: "TLSv1.2" | "TLSv1.3";
  /** Milliseconds the handshake may take (default 10,000). */
  handshakeTimeout?: number;
  /**
   * Do not verify the server at all: anyone on the path can read and change the stream.
   * For tests against a server with a throwaway certificate only. Default false.
   */
  unsafelyIgnoreCertificateErrors?: boolean;
}

/** The engine, or the error every TLS call throws where there is none. */
function requireEngine(what: string): void {
  const e = tlsEngine();
  if (e.engine === null) throw new ZevError("Unsupported", `${what}: TLS is not available: ${e.reason}`);
}

function pem(value: unknown, name: string, what: string): Uint8Array {
  if (typeof value === "string" && value !== "") return encoder.encode(value);
  if (value instanceof Uint8Array && value.length > 0) return value;
  throw new TypeError(`${what}: tls.${name} must be PEM text or bytes, not ${show(value)}`);
}

function alpnWire(list: unknown, what: string): Uint8Array | undefined {
  if (list === undefined) return undefined;
  if (!Array.isArray(list) || list.length === 0) {
    throw new TypeError(`${what}: tls.alpn must be a non-empty array of protocol names, not ${show(list)}`);
  }
  const parts: number[] = [];
  for (const name of list) {
    const bytes = typeof name === "string" ? encoder.encode(name) : undefined;
    if (!bytes || bytes.length === 0 || bytes.length > 255) {
      throw new TypeError(`${what}: tls.alpn: each protocol name must be 1 to 255 bytes, not ${show(name)}`);
    }
    parts.push(bytes.length, ...bytes);
  }
  if (parts.length > 510) throw new RangeError(`${what}: tls.alpn: the protocol names take at most 510 bytes`);
  return new Uint8Array(parts);
}

function minVersionFlag(v: unknown, what: string): number {
  if (v === undefined || v === "TLSv1.2") return 0;
  if (v === "TLSv1.3") return TLS_FLAG.tls13Only;
  throw new TypeError(`${what}: tls.minVersion must be "TLSv1.2" or "TLSv1.3", not ${show(v)}`);
}

/** A handshake timeout, checked. */
export function handshakeMs(options: { handshakeTimeout?: unknown }, what: string): number {
  const t = options.handshakeTimeout;
  return t === undefined ? DEFAULT_HANDSHAKE_TIMEOUT_MS : checkMs(t, what, "tls.handshakeTimeout");
}

/** A context of the engine; `shared` ones live as long as the thread. */
export interface Context {
  id: number;
  handshakeMs: number;
  shared?: boolean;
  /** A client's `servername` option, if it gave one. */
  servername?: string;
}

/** Frees a context once nothing new starts from it (its sessions hold their own reference). */
export function releaseContext(ctx: Context): void {
  if (!ctx.shared) sym.zev_tls_context_free(ctx.id);
}

/** The client context of `tls: true`: the system's CAs, kept (loading them costs a file read). */
let defaultClient: number | undefined;

function check(r: number, what: string): number {
  if (r < 0) throw abiError(r, what);
  return r;
}

function setCertificate(id: number, cert: Uint8Array, key: Uint8Array, what: string): void {
  const r = sym.zev_tls_context_cert(id, cert, cert.length, key, key.length);
  if (r < 0) {
    throw new TypeError(
      `${what}: tls.cert and tls.key must be a PEM certificate and its PEM private key (the library refused them)`,
    );
  }
}

function setCa(id: number, ca: Uint8Array | undefined, what: string): void {
  const r = sym.zev_tls_context_ca(id, ca ?? new Uint8Array(0), ca?.length ?? 0);
  if (r < 0) {
    if (ca) throw new TypeError(`${what}: tls.ca must hold PEM certificates (the library found none it could use)`);
    throw abiError(r, `${what}: the system's CA store`);
  }
}

/** `sni`'s entries, checked: names, and their PEM certificate and key. */
function sniEntries(sni: unknown, what: string): [string, { cert: Uint8Array; key: Uint8Array }][] {
  if (sni === undefined) return [];
  if (typeof sni !== "object" || sni === null) {
    throw new TypeError(`${what}: tls.sni must map host names to { cert, key }, not ${show(sni)}`);
  }
  const entries = Object.entries(sni as Record<string, { cert?: unknown; key?: unknown }>);
  if (entries.length > MAX_SNI_NAMES) {
    throw new RangeError(`${what}: tls.sni has ${entries.length} names, at most ${MAX_SNI_NAMES}`);
  }
  return entries.map(([name, pair]) => {
    if (name.length > 253 || !SNI_NAME.test(name)) {
      throw new TypeError(`${what}: tls.sni: ${JSON.stringify(name)} is not a host name (or *.domain)`);
    }
    if (typeof pair !== "object" || pair === null) {
      throw new TypeError(`${what}: tls.sni[${JSON.stringify(name)}] must be { cert, key }`);
    }
    return [name, { cert: pem(pair.cert, `sni.${name}.cert`, what), key: pem(pair.key, `sni.${name}.key`, what) }];
  });
}

/** @internal A server context from `TlsServerOptions`, checked. */
export function serverContext(options: TlsServerOptions, what: string): Context {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`${what}: tls must be an object with cert and key, not ${show(options)}`);
  }
  const cert = pem(options.cert, "cert", what), key = pem(options.key, "key", what);
  const ca = options.ca === undefined ? undefined : pem(options.ca, "ca", what);
  const alpn = alpnWire(options.alpn, what);
  for (const name of ["requestCert", "rejectUnauthorized"] as const) {
    if (options[name] !== undefined && typeof options[name] !== "boolean") {
      throw new TypeError(`${what}: tls.${name} must be a boolean, not ${show(options[name])}`);
    }
  }
  const ms = handshakeMs(options, what);
  let flags = minVersionFlag(options.minVersion, what);
  if (options.requestCert) {
    flags |= TLS_FLAG.verifyPeer;
    if (options.rejectUnauthorized !== false) flags |= TLS_FLAG.requirePeerCert;
  }
  const sni = sniEntries(options.sni, what);
  requireEngine(what);
  /** A context with this server's settings and one certificate. */
  const make = (cert: Uint8Array, key: Uint8Array): number => {
    const id = check(sym.zev_tls_context(1, flags), what);
    try {
      setCertificate(id, cert, key, what);
      if (options.requestCert) setCa(id, ca, what);
      if (alpn) check(sym.zev_tls_context_alpn(id, alpn, alpn.length), what);
    } catch (error) {
      sym.zev_tls_context_free(id);
      throw error;
    }
    return id;
  };
  const id = make(cert, key);
  try {
    for (const [name, pair] of sni) {
      const other = make(pair.cert, pair.key);
      const bytes = encoder.encode(name);
      const r = sym.zev_tls_context_sni(id, bytes, bytes.length, other);
      if (r < 0) {
        sym.zev_tls_context_free(other);
        throw abiError(r, `${what}: tls.sni[${JSON.stringify(name)}]`);
      }
    }
  } catch (error) {
    sym.zev_tls_context_free(id);
    throw error;
  }
  return { id, handshakeMs: ms };
}

/** @internal A client context from `TlsClientOptions` (or `true`), checked. */
export function clientContext(options: TlsClientOptions | true, what: string): Context {
  const o: TlsClientOptions = options === true ? {} : options;
  if (typeof o !== "object" || o === null) {
    throw new TypeError(`${what}: tls must be true or an object, not ${show(options)}`);
  }
  if ((o as { rejectUnauthorized?: unknown }).rejectUnauthorized === false) {
    throw new TypeError(
      `${what}: a client verifies its server; to turn that off (insecure), say unsafelyIgnoreCertificateErrors: true`,
    );
  }
  if (o.unsafelyIgnoreCertificateErrors !== undefined && typeof o.unsafelyIgnoreCertificateErrors !== "boolean") {
    throw new TypeError(`${what}: tls.unsafelyIgnoreCertificateErrors must be a boolean`);
  }
  if (o.servername !== undefined && (typeof o.servername !== "string" || o.servername.length > 255)) {
    throw new TypeError(`${what}: tls.servername must be a host name, not ${show(o.servername)}`);
  }
  if ((o.cert === undefined) !== (o.key === undefined)) {
    throw new TypeError(`${what}: tls.cert and tls.key go together`);
  }
  const cert = o.cert === undefined ? undefined : pem(o.cert, "cert", what);
  const key = o.key === undefined ? undefined : pem(o.key, "key", what);
  const ca = o.ca === undefined ? undefined : pem(o.ca, "ca", what);
  const alpn = alpnWire(o.alpn, what);
  const ms = handshakeMs(o, what);
  const flags = minVersionFlag(o.minVersion, what) | (o.unsafelyIgnoreCertificateErrors ? 0 : TLS_FLAG.verifyPeer);
  requireEngine(what);
  const plain = !cert && !ca && !alpn && flags === TLS_FLAG.verifyPeer;
  const servername = o.servername;
  if (plain && defaultClient !== undefined) return { id: defaultClient, handshakeMs: ms, shared: true, servername };
  const id = check(sym.zev_tls_context(0, flags), what);
  try {
    if (!o.unsafelyIgnoreCertificateErrors) setCa(id, ca, what);
    if (cert && key) setCertificate(id, cert, key, what);
    if (alpn) check(sym.zev_tls_context_alpn(id, alpn, alpn.length), what);
  } catch (error) {
    sym.zev_tls_context_free(id);
    throw error;
  }
  if (plain) defaultClient = id;
  return { id, handshakeMs: ms, shared: plain, servername };
}

/** Starts a session of `ctx` on `stream` and runs its handshake, within `ms` and `signal`. */
async function secure(
  stream: Stream<AnyAddr>,
  ctx: Context,
  servername: string,
  what: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  stream._startTls(ctx.id, servername, what);
  const deadline = AbortSignal.timeout(ctx.handshakeMs);
  const both = signal ? AbortSignal.any([signal, deadline]) : deadline;
  await stream._handshake(`${what}: TLS handshake`, both);
}

/**
 * @internal The client side of `connect({ tls })` on a connected stream: the server is
 * verified against `servername` (sent as SNI). The stream is aborted if it fails.
 */
export async function secureClient(
  stream: Stream<AnyAddr>,
  ctx: Context,
  servername: string,
  what: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  try {
    await secure(stream, ctx, servername, what, signal);
  } catch (error) {
    stream.abort();
    throw error;
  }
}

/** Options of `startTls`: a client's, or a server's with `isServer: true`. */
export type StartTlsOptions =
  | (TlsClientOptions & { isServer?: false; signal?: AbortSignal })
  | (TlsServerOptions & {
    isServer: true;
    signal?: AbortSignal;
  });

/**
 * Upgrades a connected plain stream to TLS (STARTTLS: SMTP, IMAP, Postgres), in either
 * role, and resolves once the handshake is done; the stream is then a TLS stream. The
 * protocol must be at a point where neither side has unread plaintext in flight. A
 * client verifies the server against `servername` (which it must give). A failed
 * handshake aborts the stream.
 *
 * @example
 * ```ts
 * await stream.write(new TextEncoder().encode("STARTTLS\r\n"));
 * // ... read the server's "220 go ahead" ...
 * await startTls(stream, { servername: "mail.example.com" });
 * ```
 */
export async function startTls(stream: Stream<AnyAddr>, options: StartTlsOptions): Promise<void> {
  const what = "startTls";
  const signal = enter(options, what);
  if (stream.closed) throw new Closed(`${what}: the stream is closed`);
  if (stream.tls !== undefined) throw new TypeError(`${what}: the stream is already a TLS stream`);
  if (options.isServer) {
    const ctx = serverContext(options, what);
    try {
      await secure(stream, ctx, "", what, signal);
    } catch (error) {
      stream.abort();
      throw error;
    } finally {
      sym.zev_tls_context_free(ctx.id);
    }
    return;
  }
  if (typeof options.servername !== "string" || options.servername === "") {
    throw new TypeError(`${what}: a client must name the server it expects (servername)`);
  }
  const ctx = clientContext(options, what);
  try {
    await secureClient(stream, ctx, options.servername, what, signal);
  } finally {
    releaseContext(ctx);
  }
}

/** A pending accept of a TLS listener. */
interface TlsAcceptWait<A extends AnyAddr> {
  resolve: (stream: Stream<A>) => void;
  reject: (error: unknown) => void;
  guard: Guard | null;
  cancel: (error: unknown) => void;
}

/**
 * @internal A TLS listener (`listen({ tls })`): `accept` yields streams whose handshake
 * has finished. Connections are taken while someone accepts, and their handshakes run
 * concurrently (at most `MAX_TLS_HANDSHAKES`), so one slow client delays no other.
 */
export class TlsListener<A extends AnyAddr> extends Listener<A> {
  #ctx: Context;
  #ready = new Deque<Stream<A>>();
  #waiters: TlsAcceptWait<A>[] = [];
  #shaking = new Set<Stream<A>>();
  #pulling = false;
  #onError: ((error: ZevError) => void) | undefined;

  constructor(handle: number, ctx: Context, onAcceptError?: (error: ZevError) => void, path?: string) {
    super(handle, onAcceptError, path);
    this.#ctx = ctx;
    this.#onError = onAcceptError;
  }

  override accept(options?: { signal?: AbortSignal }): Promise<Stream<A>> {
    let signal: AbortSignal | undefined;
    try {
      signal = enter(options, "accept");
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.closed) return Promise.reject(new Closed(`accept on ${formatAddr(this.addr)}: the listener is closed`));
    const ready = this.#ready.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const wait: TlsAcceptWait<A> = {
        resolve,
        reject,
        guard: undefined,
        cancel: (error) => {
          const i = this.#waiters.indexOf(wait);
          if (i < 0) return;
          this.#waiters.splice(i, 1);
          reject(error);
        },
      };
      wait.guard = tieWait(wait.cancel, signal);
      if (wait.guard === null) return;
      this.#waiters.push(wait);
      this.#pull();
    });
  }

  /** Takes connections and starts their handshakes while someone waits for one. */
  #pull(): void {
    if (this.#pulling) return;
    this.#pulling = true;
    // Outside every task: the accepts and handshakes belong to the listener, not to
    // whichever task asked first (its cancel must not end them).
    outsideTasks(async () => {
      try {
        while (!this.closed && this.#waiters.length > this.#ready.length && this.#shaking.size < MAX_TLS_HANDSHAKES) {
          let stream: Stream<A>;
          try {
            stream = await super.accept();
          } catch (error) {
            if (this.closed) return;
            for (const w of this.#waiters.splice(0)) this.#settle(w).reject(error);
            return;
          }
          this.#handshake(stream);
        }
      } finally {
        this.#pulling = false;
      }
    });
  }

  #settle(w: TlsAcceptWait<A>): TlsAcceptWait<A> {
    untieWait(w.guard, w.cancel);
    return w;
  }

  #handshake(stream: Stream<A>): void {
    this.#shaking.add(stream);
    const what = `accept on ${formatAddr(this.addr)}`;
    secure(stream, this.#ctx, "", what, undefined).then(
      () => {
        this.#shaking.delete(stream);
        if (this.closed) return stream.abort();
        const w = this.#waiters.shift();
        if (w) this.#settle(w).resolve(stream);
        else this.#ready.push(stream);
        this.#pull();
      },
      (error) => {
        this.#shaking.delete(stream);
        stream.abort();
        live.tlsHandshakesFailed++;
        if (!this.closed) this.#tell(error);
        this.#pull();
      },
    );
  }

  /** A failed handshake, told to `onAcceptError` (never to an accept: the next client may do better). */
  #tell(error: unknown): void {
    if (this.#onError === undefined) return;
    const e = error instanceof ZevError ? error : new ZevError("TlsFailed", String(error));
    try {
      this.#onError(e);
    } catch (thrown) {
      console.error(`zev: the onAcceptError callback of the listener on ${formatAddr(this.addr)} threw: ${thrown}`);
    }
  }

  override close(): void {
    if (this.closed) return;
    super.close();
    sym.zev_tls_context_free(this.#ctx.id);
    for (const stream of this.#shaking) stream.abort();
    this.#shaking.clear();
    for (let s = this.#ready.shift(); s; s = this.#ready.shift()) s.abort();
    for (const w of this.#waiters.splice(0)) {
      this.#settle(w).reject(new Closed(`accept on ${formatAddr(this.addr)}: the listener was closed`));
    }
  }
}
