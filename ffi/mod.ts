/**
 * The native layer: locates the library, loads it with the running runtime's FFI, checks
 * that it speaks this binding's ABI, and parks the loop the cheapest way this machine
 * allows. Everything that differs between Deno and Bun stays under ffi/.
 *
 * @module
 */

import { envVar, locateLibrary } from "./locate.ts";
import { ABI_VERSION, BACKEND, BACKEND_FALLBACK, type Native, type Parker } from "./symbols.ts";
import { openParker as open, type WakeMode } from "./parker.ts";
import { type TlsEngine, tlsEngine } from "./openssl.ts";

export * from "./symbols.ts";
export { cacheDir, platformName } from "./locate.ts";
export type { TlsEngine } from "./openssl.ts";
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

/** The TLS engine (OpenSSL 3, found at run time), or why there is none. */
export function tls(): TlsEngine {
  return tlsEngine(native);
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

/** What a loop asks for: a backend, or "auto" (io_uring where the kernel allows it). */
export type BackendChoice = BackendName | "auto";

/** `zev_loop_open_backend`'s code for each choice (generated). */
export const BACKEND_CODE: Record<BackendChoice, number> = BACKEND;

/** The backend that runs when nothing asks for one (`ZEV_BACKEND` unset). */
export const DEFAULT_BACKEND = "epoll";

/**
 * Reads a backend's name as `ZEV_BACKEND` and `configure({ backend })` take it: "epoll"
 * or "kqueue" (the poll backend), "io_uring" (Linux 6.0; docs/design/IO_URING.md), or "auto"
 * (the backend zev picks: the poll backend for now, saying why).
 */
export function parseBackend(name: unknown, where: string): BackendChoice {
  if (name === "epoll" || name === "kqueue") return "poll";
  if (name === "io_uring" || name === "auto") return name;
  throw new Error(`zev: ${where} must be "epoll", "kqueue", "io_uring" or "auto", not ${JSON.stringify(name)}`);
}

/** The backend asked for by `ZEV_BACKEND` (the default: `DEFAULT_BACKEND`). */
export function backendChoice(): BackendChoice {
  return parseBackend(envVar("ZEV_BACKEND") ?? DEFAULT_BACKEND, "ZEV_BACKEND");
}

/** Why a loop asked for "auto" runs on epoll (`zev_backend_fallback`'s codes, generated). */
export function backendFallback(code: number): string | undefined {
  if (code === 0) return undefined;
  return BACKEND_FALLBACK[code] ?? `io_uring failed to set up (code ${code})`;
}

/** Opens the parker of `loop` (see ffi/parker.ts). */
export function openParker(loop: number, onWake: () => void): Promise<Parker> {
  return open(native, loop, onWake, wakeMode());
}
