/**
 * The native layer: locates the library, loads it with the running runtime's FFI, checks
 * that it speaks this binding's ABI, and parks the loop the cheapest way this machine
 * allows. Everything that differs between Deno and Bun stays under ffi/.
 *
 * @module
 */

import { envVar, locateLibrary } from "./locate.ts";
import { ABI_VERSION, type Native, type Parker } from "./symbols.ts";
import { openParker as open, type WakeMode } from "./parker.ts";

export * from "./symbols.ts";
export { cacheDir, platformName } from "./locate.ts";
export type { WakeMode } from "./parker.ts";

async function load(): Promise<Native> {
  const path = await locateLibrary();
  // A computed specifier keeps Deno's type checker away from `bun:ffi`.
  const loader = "Bun" in globalThis ? "./bun.ts" : "./deno.ts";
  const { load } = await import(loader);
  try {
    return load(path);
  } catch (error) {
    throw new Error(`zev: cannot load ${path}: ${(error as Error).message}`, { cause: error });
  }
}

export const native: Native = await load();

const abi = native.sym.zev_abi_version();
if (abi !== ABI_VERSION) {
  throw new Error(
    `zev: ${native.path} speaks ABI ${abi}, this binding speaks ${ABI_VERSION}; rebuild it with \`make lib\`.`,
  );
}

/** How to park, from `ZEV_WAKE` ("auto", the default, or "thread"). */
export function wakeMode(): WakeMode {
  const mode = envVar("ZEV_WAKE") ?? "auto";
  if (mode !== "auto" && mode !== "thread") {
    throw new Error(`zev: ZEV_WAKE must be "auto" or "thread", not ${JSON.stringify(mode)}`);
  }
  return mode;
}

/** The kernel interface a loop waits on: "poll" (epoll, kqueue) or "io_uring". */
export type BackendName = "poll" | "io_uring";

/**
 * The backend asked for by `ZEV_BACKEND`: "epoll" or "kqueue" (the poll backend, the
 * default) or "io_uring" (Linux 6.1; bench/IO_URING.md).
 */
export function backendChoice(): BackendName {
  const name = envVar("ZEV_BACKEND") ?? "epoll";
  if (name === "epoll" || name === "kqueue") return "poll";
  if (name === "io_uring") return "io_uring";
  throw new Error(`zev: ZEV_BACKEND must be "epoll", "kqueue" or "io_uring", not ${JSON.stringify(name)}`);
}

/** Opens the parker of `loop` (see ffi/parker.ts). */
export function openParker(loop: number, onWake: () => void): Promise<Parker> {
  return open(native, loop, onWake, wakeMode());
}
