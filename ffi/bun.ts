/**
 * The Bun loader: `bun:ffi`, and a parker that waits on a Worker, because bun:ffi has no
 * nonblocking calls (oven-sh/bun#5490) and its thread-safe JSCallback is experimental
 * (oven-sh/bun#41857). The worker blocks in `zev_park`; the JS thread awaits
 * `Atomics.waitAsync`, which costs nothing while it waits.
 *
 * @module
 */

import { dlopen, FFIType } from "bun:ffi";
import { type Native, type Parker, type Symbols, symbols } from "./symbols.ts";
/** Slots of the control array shared with the parking worker (ffi/park_worker.ts). */
export const CTL = { request: 0, done: 1, loop: 2, timeout: 3 } as const;
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
  return { runtime: "bun", path, sym, parker: new WorkerParker(path, sym) };
}

class WorkerParker implements Parker {
  #ctl = new Int32Array(new SharedArrayBuffer(CTL_LENGTH * 4));
  #worker: Worker | undefined;

  constructor(readonly path: string, readonly sym: Symbols) {}

  park(loop: number, timeoutMs: number): Promise<void> {
    const ctl = this.#ctl;
    const worker = this.#worker ??= this.#start();
    // A pending waitAsync does not keep Bun alive; the worker's ref does, only while parked.
    worker.ref();
    ctl[CTL.loop] = loop;
    ctl[CTL.timeout] = timeoutMs;
    const seq = ctl[CTL.request] + 1;
    Atomics.store(ctl, CTL.request, seq);
    Atomics.notify(ctl, CTL.request);
    const wait = Atomics.waitAsync(ctl, CTL.done, seq - 1);
    const done = wait.async ? wait.value : Promise.resolve();
    return done.then(() => void worker.unref());
  }

  wake(loop: number): void {
    this.sym.zev_wake(loop);
  }

  #start(): Worker {
    const worker = new Worker(new URL("./park_worker.ts", import.meta.url).href, { type: "module" });
    worker.unref();
    worker.postMessage({ path: this.path, ctl: this.#ctl.buffer });
    return worker;
  }
}
