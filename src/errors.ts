/**
 * zev's errors. Every failure names what was wrong: the operation, the stream or
 * listener, and the reason, so that a log line is enough to act on.
 *
 * @module
 */

/** Names of the C ABI's error codes (zig/errors.zig), by code. */
const CODES: Record<number, [name: string, message: string]> = {
  [-1]: ["WouldBlock", "the operation would block"],
  [-2]: ["BadResource", "the handle is closed or was never valid"],
  [-3]: ["BadResource", "the event loop is closed"],
  [-4]: ["BadResource", "the handle is of the wrong kind for this operation"],
  [-5]: ["Closed", "the stream's write side is closed"],
  [-6]: ["InvalidArgument", "invalid argument"],
  [-7]: ["Limit", "a zev limit was reached (handles per loop, or loops per process)"],
  [-8]: ["AddrInUse", "the address is already in use"],
  [-9]: ["AddrNotAvailable", "the address is not available on this machine"],
  [-10]: ["ConnectionRefused", "the connection was refused"],
  [-11]: ["ConnectionReset", "the connection was reset by the peer"],
  [-12]: ["BrokenPipe", "the peer closed the connection"],
  [-13]: ["TimedOut", "the operation timed out"],
  [-14]: ["TooManyOpenFiles", "the process has no free file descriptors"],
  [-15]: ["PermissionDenied", "permission denied"],
  [-16]: ["Unreachable", "the network or host is unreachable"],
  [-17]: ["NotConnected", "the socket is not connected"],
  [-18]: ["OutOfMemory", "the system is out of memory or buffers"],
  [-19]: ["InProgress", "the operation is in progress"],
  [-20]: ["Interrupted", "interrupted by a signal"],
  [-21]: ["Unsupported", "the kernel lacks the feature or forbids it"],
  [-22]: ["NetworkError", "the network failed the connection"],
  [-99]: ["Unexpected", "unexpected system error"],
};

/** ABI code for "would block": not an error, a reason to wait for an event. */
export const WOULD_BLOCK = -1;
/** ABI code for "no free descriptors": the listener is paused and retried. */
export const TOO_MANY_OPEN_FILES = -14;

/**
 * Whether an accept failure is one the loop recovers from by itself, pausing the
 * listener and retrying: no descriptors, no memory, a full handle table.
 */
export function isRecoverableAcceptError(code: number): boolean {
  return code === TOO_MANY_OPEN_FILES || code === -18 || code === -7;
}

/** An error from the network layer. `code` is stable and meant for programs. */
export class ZevError extends Error {
  override name = "ZevError";
  constructor(readonly code: string, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Raised by an operation on a closed stream or listener. */
export class Closed extends ZevError {
  override name = "Closed";
  constructor(message: string) {
    super("Closed", message);
  }
}

/**
 * Raised in a task's waits when the task is cancelled, or by a wait whose AbortSignal
 * fired. `reason` is what was given to `cancel()` or `abort()`.
 */
export class Cancelled extends ZevError {
  override name = "Cancelled";
  constructor(readonly reason?: unknown) {
    super("Cancelled", `cancelled${reason === undefined ? "" : `: ${describe(reason)}`}`);
  }
}

/** Raised by a wait whose timeout passed, and by `withDeadline` when its deadline passes. */
export class TimedOut extends ZevError {
  override name = "TimedOut";
  constructor(message: string) {
    super("TimedOut", message);
  }
}

function describe(reason: unknown): string {
  if (reason instanceof Error) return reason.message;
  return String(reason);
}

/** The errno behind the last `Unexpected` result, told by the library. */
let lastErrno: () => number = () => 0;

/** @internal Wires `abiError` to the library's `zev_last_errno`. */
export function setLastErrno(get: () => number): void {
  lastErrno = get;
}

/** The error for a negative ABI result, naming the operation that failed. */
export function abiError(code: number, what: string): ZevError {
  const [name, message] = CODES[code] ?? ["Unexpected", `unknown error code ${code}`];
  const errno = code === -99 ? ` (errno ${lastErrno()})` : "";
  if (name === "Closed") return new Closed(`${what}: ${message}`);
  if (name === "TimedOut") return new TimedOut(`${what}: ${message}`);
  return new ZevError(name, `${what}: ${message}${errno}`);
}
