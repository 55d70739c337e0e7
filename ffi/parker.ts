/**
 * Choosing how the loop driver parks, when the loop opens (so that nothing it needs is
 * acquired later, when descriptors may have run out).
 *
 * The first choice costs what the runtime's own sockets cost to wake: the kernel wakes the
 * JS thread itself, inside the runtime's own wait, through a socket the runtime watches
 * (zig/ring_wake.zig). Where io_uring is missing or forbidden, or `ZEV_WAKE=thread`
 * asks for it, another thread waits instead (ffi/bun.ts, ffi/deno.ts), at the cost of a
 * cross-thread hop per wake.
 *
 * @module
 */

import { ERRORS, type Native, type Parker, type Symbols, type Watch } from "./symbols.ts";

/** The kernel-delivered wake: a park arms an io_uring poll linked to a one-byte send. */
class RingParker implements Parker {
  readonly kind = "io_uring";
  #keep = false;

  constructor(readonly sym: Symbols, readonly loop: number, readonly watch: Watch) {}

  park(): number {
    return this.sym.zev_wake_arm(this.loop);
  }

  get keepingAlive(): boolean {
    return this.#keep;
  }

  keepAlive(on: boolean): void {
    if (on === this.#keep) return;
    this.#keep = on;
    this.watch.keepAlive(on);
  }

  close(): void {
    this.watch.close();
  }
}

/** How to park: "auto" (the kernel wake where it works) or "thread". */
export type WakeMode = "auto" | "thread";

/** Opens the parker of `loop`; `onWake` runs on the JS thread after each park that ends. */
export async function openParker(native: Native, loop: number, onWake: () => void, mode: WakeMode): Promise<Parker> {
  let reason = "ZEV_WAKE=thread";
  if (mode === "auto") {
    const fd = native.sym.zev_wake_fd(loop);
    if (fd >= 0) return new RingParker(native.sym, loop, await native.watch(fd, onWake));
    reason = fd === ERRORS.Unsupported
      ? "io_uring is missing or forbidden here"
      : `io_uring could not be set up (code ${fd})`;
  }
  return native.threadParker(loop, onWake, reason);
}
