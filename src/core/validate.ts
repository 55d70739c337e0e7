/**
 * Argument checks shared by every entry point: a wrong argument is a `TypeError` or
 * `RangeError` that names the call, the argument and what is allowed, thrown before
 * anything is done.
 *
 * @module
 */

/** A value as it should appear in a message: NaN and Infinity as themselves, not `null`. */
export function show(value: unknown): string {
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  if (typeof value === "string") return JSON.stringify(value);
  if (value === undefined || value === null || typeof value === "boolean") return String(value);
  if (typeof value === "function") return "a function";
  if (Array.isArray(value)) return "an array";
  const name = value.constructor?.name;
  return name && name !== "Object" ? `${/^[AEIOU]/.test(name) ? "an" : "a"} ${name}` : "an object";
}

/** The longest timer both runtimes keep (2^31 - 1 ms, about 24.8 days). */
export const MAX_MS = 2 ** 31 - 1;

/** A duration in milliseconds: a finite number from 0 to 2^31-1. */
export function checkMs(ms: unknown, what: string, name = "duration"): number {
  if (typeof ms !== "number" || !(ms >= 0) || ms > MAX_MS) {
    throw new RangeError(`${what}: invalid ${name} ${show(ms)}: expected milliseconds from 0 to ${MAX_MS}`);
  }
  return ms;
}

/** A port: an integer in 0..65535 (0 only where `allowZero`). */
export function checkPort(port: unknown, what: string, allowZero: boolean): number {
  if (typeof port !== "number" || !Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535) {
    throw new RangeError(`${what}: invalid port ${show(port)}: expected an integer from ${allowZero ? 0 : 1} to 65535`);
  }
  return port;
}

/** The most bytes one native call takes (an `i32` count); longer buffers are refused. */
export const MAX_IO_BYTES = 2 ** 31 - 1;

/** A byte buffer for I/O: a Uint8Array, not detached, at most `MAX_IO_BYTES` long. */
export function checkBytes(buf: unknown, what: string, name: string, allowEmpty: boolean): Uint8Array {
  if (!(buf instanceof Uint8Array)) throw new TypeError(`${what}: ${name} must be a Uint8Array, not ${show(buf)}`);
  // A detached array reads as empty; only then is `.buffer` looked at (JavaScriptCore
  // makes an ArrayBuffer for a small array the first time `.buffer` is read).
  if (buf.length === 0) {
    if ((buf.buffer as ArrayBuffer).detached) {
      throw new TypeError(`${what}: ${name}'s ArrayBuffer is detached (transferred): its bytes are gone`);
    }
    if (!allowEmpty) throw new TypeError(`${what}: ${name} must be a non-empty Uint8Array`);
  }
  if (buf.length > MAX_IO_BYTES) {
    throw new RangeError(`${what}: ${name} is ${buf.length} bytes: at most ${MAX_IO_BYTES} per call`);
  }
  return buf;
}

/** An options argument: undefined or an object. */
export function checkOptions<T extends object>(options: T | undefined, what: string): T | undefined {
  if (options !== undefined && (typeof options !== "object" || options === null)) {
    throw new TypeError(`${what}: options must be an object, not ${show(options)}`);
  }
  return options;
}

/** An options.signal: undefined or an AbortSignal. */
export function checkSignal(signal: unknown, what: string): AbortSignal | undefined {
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(`${what}: options.signal must be an AbortSignal`);
  }
  return signal;
}

/** A supervisor option: a function, or an object with a `give` function (a `Channel`). */
export function checkSupervisor(supervisor: unknown, what: string): void {
  if (typeof supervisor === "function") return;
  if (typeof supervisor === "object" && supervisor !== null) {
    if (typeof (supervisor as { give?: unknown }).give === "function") return;
  }
  throw new TypeError(
    `${what}: supervisor must be a function or a Channel (an object with give), not ${show(supervisor)}`,
  );
}
