/**
 * What a listener, a stream and a datagram socket share: whether they keep the process
 * alive. A handle holds the loop (`driver.hold`) while it is referenced and has a wait
 * pending, and only then, so that a program with nothing left to wait for exits.
 *
 * @module
 */

import { driver } from "./driver.ts";

/**
 * A listener, stream or datagram socket: a native handle that may keep the process alive
 * while something waits on it.
 *
 * @example
 * ```ts
 * // Background work that must not keep the program alive, whatever kind each handle is.
 * function inBackground(...handles: Handle[]): void {
 *   for (const handle of handles) handle.unref();
 * }
 * ```
 */
export abstract class Handle {
  #ref = true;
  #holding = false;

  /** Whether a wait is pending on this handle (accept, read, write, receive...). */
  protected abstract get waiting(): boolean;

  /**
   * Lets the process exit while this handle waits, as Node's and Deno's `unref`; `ref`
   * undoes it. A new handle is referenced.
   */
  unref(): this {
    this.#ref = false;
    this.updateHold();
    return this;
  }

  /** Makes an `unref`ed handle keep the process alive again while it waits. */
  ref(): this {
    this.#ref = true;
    this.updateHold();
    return this;
  }

  /** Takes or lets go of the hold after a wait began or ended. */
  protected updateHold(): void {
    const hold = this.#ref && this.waiting;
    if (hold === this.#holding) return;
    this.#holding = hold;
    if (hold) driver.hold();
    else driver.release();
  }
}
