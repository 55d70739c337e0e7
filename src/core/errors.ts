/**
 * zev's errors. Every failure names what was wrong: the operation, the stream or
 * listener, and the reason, so that a log line is enough to act on.
 *
 * @module
 */

import { type ErrorName, ERRORS } from "../../ffi/abi.ts";

/**
 * Every error code of the C ABI (generated from zig/errors.zig into ffi/abi.ts): the
 * stable `code` programs see, and the message. Typed as total: a code added in Zig and
 * missing here does not compile.
 */
const MESSAGES: Record<ErrorName, [code: string, message: string]> = {
  WouldBlock: ["WouldBlock", "the operation would block"],
  BadHandle: ["BadResource", "the handle is closed or was never valid"],
  BadLoop: ["BadResource", "the event loop is closed"],
  WrongKind: ["BadResource", "the handle is of the wrong kind for this operation"],
  Closed: ["Closed", "the stream's write side is closed"],
  InvalidArgument: ["InvalidArgument", "invalid argument"],
  Limit: ["Limit", "a zev limit was reached (handles per loop, or loops per process)"],
  AddressInUse: ["AddrInUse", "the address is already in use"],
  AddressNotAvailable: ["AddrNotAvailable", "the address is not available on this machine"],
  ConnectionRefused: ["ConnectionRefused", "the connection was refused"],
  ConnectionReset: ["ConnectionReset", "the connection was reset by the peer"],
  BrokenPipe: ["BrokenPipe", "the peer closed the connection"],
  TimedOut: ["TimedOut", "the operation timed out"],
  TooManyOpenFiles: ["TooManyOpenFiles", "the process has no free file descriptors"],
  PermissionDenied: ["PermissionDenied", "permission denied"],
  Unreachable: ["Unreachable", "the network or host is unreachable"],
  NetworkError: ["NetworkError", "the network failed the connection"],
  NotConnected: ["NotConnected", "the socket is not connected"],
  NoMemory: ["OutOfMemory", "the system is out of memory or buffers"],
  InProgress: ["InProgress", "the operation is in progress"],
  Interrupted: ["Interrupted", "interrupted by a signal"],
  Unsupported: ["Unsupported", "the kernel lacks the feature or forbids it"],
  NotFound: ["NotFound", "no such file or directory"],
  StaleSocket: [
    "AddrInUse",
    "a socket file no process listens on is in the way (left by one that exited): remove it, or listen with replaceStale: true",
  ],
  BacklogFull: ["ConnectionRefused", "the listener's backlog is full"],
  TlsFailed: ["TlsFailed", "the TLS handshake or a TLS record failed"],
  TlsUnverified: ["TlsUnverified", "the peer's certificate could not be verified"],
  TlsTruncated: [
    "TlsTruncated",
    "the peer ended the TLS stream without close_notify: what was read may be cut short",
  ],
  Unexpected: ["Unexpected", "unexpected system error"],
};

const BY_CODE = new Map<number, [string, string]>(
  (Object.keys(ERRORS) as ErrorName[]).map((name) => [ERRORS[name], MESSAGES[name]]),
);

/** ABI code for "would block": not an error, a reason to wait for an event. */
export const WOULD_BLOCK: number = ERRORS.WouldBlock;

/**
 * Whether an accept failure is one the loop recovers from by itself, pausing the
 * listener and retrying: no descriptors, no memory, a full handle table.
 */
export function isRecoverableAcceptError(code: number): boolean {
  return code === ERRORS.TooManyOpenFiles || code === ERRORS.NoMemory || code === ERRORS.Limit;
}

/** An error from the network layer. `code` is stable and meant for programs. */
export class ZevError extends Error {
  /** "ZevError", or the subclass's name. */
  override name = "ZevError";
  /**
   * An error with a stable code.
   *
   * @param code the stable code programs test (`ConnectionReset`, `TooManyOpenFiles`...)
   * @param message what happened, naming the operation and the address
   */
  constructor(readonly code: string, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Raised by an operation on a closed stream or listener. */
export class Closed extends ZevError {
  /** "Closed". */
  override name = "Closed";
  /**
   * An operation on something closed.
   *
   * @param message what was closed, and which operation found it so
   */
  constructor(message: string) {
    super("Closed", message);
  }
}

/**
 * Raised in a task's waits when the task is cancelled, or by a wait whose AbortSignal
 * fired. `reason` is what was given to `cancel()` or `abort()`.
 */
export class Cancelled extends ZevError {
  /** "Cancelled". */
  override name = "Cancelled";
  /**
   * A cancelled wait.
   *
   * @param reason what was given to `cancel()` or `abort()`
   */
  constructor(readonly reason?: unknown) {
    super("Cancelled", `cancelled${reason === undefined ? "" : `: ${describe(reason)}`}`);
  }
}

/** Raised by a wait whose timeout passed, and by `withDeadline` when its deadline passes. */
export class TimedOut extends ZevError {
  /** "TimedOut". */
  override name = "TimedOut";
  /**
   * A wait past its time.
   *
   * @param message which operation, and how long it was given
   */
  constructor(message: string) {
    super("TimedOut", message);
  }
}

/** A reason in words; never throws (a reason may have no string form at all). */
function describe(reason: unknown): string {
  try {
    if (reason instanceof Error) return reason.message;
    return String(reason);
  } catch {
    return Object.prototype.toString.call(reason);
  }
}

/** The errno behind the last `Unexpected` result, told by the library. */
let lastErrno: () => number = () => 0;
/** Why the last TLS call failed (OpenSSL's reason, once), told by the library. */
let tlsDetail: () => string = () => "";

/** @internal Wires `abiError` to the library's `zev_tls_detail`. */
export function setTlsDetail(get: () => string): void {
  tlsDetail = get;
}

/** @internal Wires `abiError` to the library's `zev_last_errno`. */
export function setLastErrno(get: () => number): void {
  lastErrno = get;
}

/** The error for a negative ABI result, naming the operation that failed. */
export function abiError(code: number, what: string): ZevError {
  const [name, message] = BY_CODE.get(code) ?? ["Unexpected", `unknown error code ${code}`];
  const errno = code === ERRORS.Unexpected ? ` (errno ${lastErrno()})` : "";
  if (code === ERRORS.TlsFailed || code === ERRORS.TlsUnverified) {
    const detail = tlsDetail();
    if (detail) return new ZevError(name, `${what}: ${message}: ${detail}`);
  }
  if (name === "Closed") return new Closed(`${what}: ${message}`);
  if (name === "TimedOut") return new TimedOut(`${what}: ${message}`);
  return new ZevError(name, `${what}: ${message}${errno}`);
}

/** Where a call came from: a stack taken at the call, for an error raised later. */
export interface CallSite {
  stack?: string;
}

/** The caller's stack, above `fn` (nothing where the runtime cannot take one). */
export function callSite(fn: (...args: never[]) => unknown): CallSite {
  const site: CallSite = {};
  (Error as { captureStackTrace?: (target: object, above?: unknown) => void }).captureStackTrace?.(site, fn);
  return site;
}

/** `error`, its stack replaced by its first line and the caller's frames from `site`. */
export function fromCallSite(error: unknown, site: CallSite): unknown {
  if (error instanceof Error && site.stack !== undefined) {
    const frames = site.stack.slice(site.stack.indexOf("\n") + 1);
    error.stack = `${error.name}: ${error.message}\n${frames}`;
  }
  return error;
}
