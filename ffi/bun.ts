/**
 * The Bun loader: `bun:ffi`, sockets of Bun's own for the kernel-delivered wake, and the
 * fallback parker, a Worker, because bun:ffi has no nonblocking calls
 * (oven-sh/bun#5490) and its thread-safe JSCallback is experimental (oven-sh/bun#41857).
 *
 * @module
 */

import { CString, dlopen, FFIType } from "bun:ffi";
import { linuxLibc } from "./locate.ts";
import process from "node:process";
import { pathToFileURL } from "node:url";
import {
  type Native,
  type Parker,
  RTLD_DEEPBIND,
  RTLD_NOW,
  type Symbols,
  symbols,
  type Watch,
  type Workers,
} from "./symbols.ts";

/** Slots of the control array shared with the parking worker (ffi/park_worker.ts). */
export const CTL = { request: 0, done: 1, loop: 2, ready: 3 } as const;
const CTL_LENGTH = 4;

const types = { u32: FFIType.u32, i32: FFIType.i32, buffer: FFIType.ptr } as const;

/** The symbol table (or the named part of it) in bun:ffi's terms. */
export function bunSymbols(names: (keyof typeof symbols)[] = Object.keys(symbols) as (keyof typeof symbols)[]) {
  const defs: Record<string, { args: FFIType[]; returns: FFIType }> = {};
  for (const name of names) {
    const def = symbols[name];
    defs[name] = {
      args: def.parameters.map((p) => types[p]),
      returns: types[def.result as keyof typeof types],
    };
  }
  return defs;
}

export function load(path: string): Native {
  const lib = dlopen(path, bunSymbols());
  const sym = lib.symbols as unknown as Symbols;
  return {
    runtime: "bun",
    path,
    sym,
    watch,
    netPermission: () => undefined,
    pathPermission: () => undefined,
    workers,
    threadParker: (loop, onWake, reason) => WorkerParker.open(path, loop, onWake, reason),
    resolve,
  };
}

/** Where dlopen is: the C library this process runs on. */
function libcNames(): string[] {
  if (process.platform === "darwin") return ["libSystem.B.dylib"];
  if (process.platform === "freebsd") return ["libc.so.7"];
  return linuxLibc() === "musl" ? ["libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1", "libc.so"] : ["libc.so.6"];
}

/** `Native.resolve` with libc's dlopen and dlsym (glibc: with RTLD_DEEPBIND). */
function resolve(libraries: readonly string[], names: readonly string[]): { table: Uint8Array } | { error: string } {
  const defs = {
    dlopen: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.ptr },
    dlsym: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.ptr },
    dlerror: { args: [], returns: FFIType.ptr },
  } as const;
  let libc: ReturnType<typeof dlopen<typeof defs>> | undefined;
  for (const name of libcNames()) {
    try {
      libc = dlopen(name, defs);
      break;
    } catch {
      // the next name
    }
  }
  if (libc === undefined) return { error: `no C library to load it with (${libcNames().join(", ")})` };
  try {
    const cstr = (s: string) => new TextEncoder().encode(`${s}\0`);
    const deep = process.platform === "linux" && linuxLibc() === "gnu";
    const flags = RTLD_NOW | (deep ? RTLD_DEEPBIND : 0);
    const why = () => {
      const p = libc!.symbols.dlerror();
      return p ? new CString(p).toString() : "unknown";
    };
    let handle: ReturnType<typeof libc.symbols.dlopen> = null;
    const errors: string[] = [];
    for (const name of libraries) {
      handle = libc.symbols.dlopen(cstr(name), flags);
      if (handle) break;
      errors.push(why());
    }
    if (!handle) return { error: errors.join("; ") };
    const table = new BigUint64Array(names.length);
    for (const [i, name] of names.entries()) {
      const p = libc.symbols.dlsym(handle, cstr(name));
      if (!p) return { error: `${name}: ${why()}` };
      table[i] = BigInt(p);
    }
    return { table: new Uint8Array(table.buffer) };
  } finally {
    libc.close();
  }
}

/**
 * Bun tells a Worker its tag through its environment (Bun's `env` option), and gives it
 * the program's arguments (`argv`: Deno's Workers see them anyway).
 */
const workers: Workers = {
  mainModule: () => pathToFileURL(Bun.main).href,
  start: (url, tag) =>
    new Worker(
      url,
      { type: "module", env: { ...process.env, ZEV_WORKER: tag }, argv: process.argv.slice(2) } as WorkerOptions,
    ),
  tag: () => (Bun.isMainThread ? undefined : process.env.ZEV_WORKER),
};

/** Bun adopts a descriptor as one of its sockets (`Bun.connect({ fd })`). */
async function watch(fd: number, onData: () => void): Promise<Watch> {
  // `fd` is in the runtime but not yet in bun-types' signature of connect.
  const options = { fd, socket: { data: onData } } as unknown as Parameters<typeof Bun.connect>[0];
  const socket = await Bun.connect(options);
  socket.unref();
  return {
    keepAlive: (on) => void (on ? socket.ref() : socket.unref()),
    close: () => void socket.terminate(),
  };
}

/**
 * A Worker blocked in `zev_park` while the loop is parked; the JS thread awaits
 * `Atomics.waitAsync` on shared memory, which costs nothing while it waits.
 */
class WorkerParker implements Parker {
  readonly kind = "thread";
  readonly ctl = new Int32Array(new SharedArrayBuffer(CTL_LENGTH * 4));
  #waiting = false;

  private constructor(readonly worker: Worker, readonly onWake: () => void, readonly reason: string) {}

  /** Starts the worker and waits until it has loaded the library. */
  static async open(path: string, loop: number, onWake: () => void, reason: string): Promise<WorkerParker> {
    const worker = new Worker(new URL("./park_worker.ts", import.meta.url).href, { type: "module" });
    const parker = new WorkerParker(worker, onWake, reason);
    parker.ctl[CTL.loop] = loop;
    worker.postMessage({ path, ctl: parker.ctl.buffer });
    const ready = Atomics.waitAsync(parker.ctl, CTL.ready, 0);
    if (ready.async) await ready.value;
    worker.unref();
    return parker;
  }

  park(): number {
    if (this.#waiting) return 0;
    this.#waiting = true;
    const ctl = this.ctl;
    const seq = ctl[CTL.request] + 1;
    Atomics.store(ctl, CTL.request, seq);
    Atomics.notify(ctl, CTL.request);
    this.#await(seq, seq - 1);
    return 0;
  }

  /**
   * Waits while `done` is `seen`, until the worker has answered request `seq`; then wakes
   * the driver (always from a promise job, never inside `park`). A resolved waitAsync is
   * only a hint (Bun resolves it "ok" now and then with `done` unchanged), so `done` is
   * read again: a wake taken on the hint alone would leave the worker parked and the
   * next park resolving at once, forever.
   */
  #await(seq: number, seen: number): void {
    const wait = Atomics.waitAsync(this.ctl, CTL.done, seen);
    (wait.async ? wait.value : Promise.resolve()).then(() => {
      const done = Atomics.load(this.ctl, CTL.done);
      if (done !== seq) return this.#await(seq, done);
      this.#waiting = false;
      this.onWake();
    });
  }

  #keep = false;

  get keepingAlive(): boolean {
    return this.#keep;
  }

  keepAlive(on: boolean): void {
    this.#keep = on;
    // A pending waitAsync does not keep Bun alive; the worker's ref does.
    if (on) this.worker.ref();
    else this.worker.unref();
  }

  close(): void {
    this.worker.terminate();
  }
}
