/**
 * The Deno loader: `Deno.dlopen`, and a parker that waits in a `nonblocking` call,
 * which Deno runs on its blocking thread pool and settles as a promise on the JS thread.
 *
 * The call that blocks is libc's poll(2) on the loop's descriptor, not a zev function:
 * Deno unloads FFI libraries when it exits, and a thread still blocked inside zev would
 * then return into unmapped code. libc is never unloaded.
 *
 * @module
 */

import { type Native, type Symbols, symbols } from "./symbols.ts";

/** The C library Deno itself runs on. */
function libcPath(): string {
  switch (Deno.build.os) {
    case "darwin":
      return "libSystem.B.dylib";
    case "freebsd":
      return "libc.so.7";
    default:
      return "libc.so.6";
  }
}

/** POLLIN is 1 on Linux, macOS and FreeBSD. */
const POLLIN = 1;

export function load(path: string): Native {
  const lib = Deno.dlopen(path, symbols);
  const libc = Deno.dlopen(libcPath(), {
    poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  });
  const sym = lib.symbols as unknown as Symbols;
  // One struct pollfd { int fd; short events; short revents; } per loop being parked.
  const pollfds = new Map<number, Uint8Array>();
  return {
    runtime: "deno",
    path,
    sym,
    parker: {
      // The pending call keeps the process alive, as a parked loop with open handles should.
      park: (loop, timeoutMs) => {
        let pfd = pollfds.get(loop);
        if (!pfd) pollfds.set(loop, pfd = new Uint8Array(8));
        const view = new DataView(pfd.buffer);
        view.setInt32(0, sym.zev_park_fd(loop), true);
        view.setInt16(4, POLLIN, true);
        view.setInt16(6, 0, true);
        return libc.symbols.poll(pfd, 1n, sym.zev_park_timeout(loop, timeoutMs)).then(() => {});
      },
      wake: (loop) => void sym.zev_wake(loop),
    },
  };
}
