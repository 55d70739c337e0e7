/**
 * The Deno loader: `Deno.dlopen`, and a parker that waits in a `nonblocking` call,
 * which Deno runs on its blocking thread pool and settles as a promise on the JS thread.
 *
 * @module
 */

import { type Native, type Symbols, symbols } from "./symbols.ts";

export function load(path: string): Native {
  const lib = Deno.dlopen(path, {
    ...symbols,
    zev_park_async: { name: "zev_park", parameters: ["u32", "i32"], result: "i32", nonblocking: true },
  } as const);
  const sym = lib.symbols as unknown as Symbols;
  return {
    runtime: "deno",
    path,
    sym,
    parker: {
      // The pending call keeps the process alive, as a parked loop with open handles should.
      park: (loop, timeoutMs) => lib.symbols.zev_park_async(loop, timeoutMs).then(() => {}),
      wake: (loop) => void sym.zev_wake(loop),
    },
  };
}
