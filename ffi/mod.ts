/**
 * The native layer: locates the library, loads it with the running runtime's FFI, and
 * checks that it speaks this binding's ABI. Everything that differs between Deno and
 * Bun stays under ffi/.
 *
 * @module
 */

import { locateLibrary } from "./locate.ts";
import { ABI_VERSION, type Native } from "./symbols.ts";

export * from "./symbols.ts";
export { platformName } from "./locate.ts";

async function load(): Promise<Native> {
  const path = locateLibrary();
  if ("Bun" in globalThis) {
    // A computed specifier keeps Deno's type checker away from `bun:ffi`.
    const bun = "./bun.ts";
    return (await import(bun)).load(path);
  }
  return (await import("./deno.ts")).load(path);
}

export const native: Native = await load();

const abi = native.sym.zev_abi_version();
if (abi !== ABI_VERSION) {
  throw new Error(`zev: ${native.path} speaks ABI ${abi}, this binding speaks ${ABI_VERSION}; rebuild it with \`make lib\`.`);
}
