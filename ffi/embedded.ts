/**
 * The native libraries that travel inside the JSR package, one module per platform, of
 * which a process imports only its own. `make dist` replaces this file in the package it
 * builds (dist/jsr/) with one that imports `./embedded/<platform>.ts`; a source checkout
 * or an npm install carries none, and finds its library on disk instead (ffi/locate.ts).
 *
 * @module
 */

/** A library carried as a module: its bytes in base64, their SHA-256, and zev's version. */
export interface Embedded {
  version: string;
  sha256: string;
  base64: string;
}

/** The library embedded for `platform` (e.g. `linux-x86_64-gnu`), if this package has one. */
export function embeddedLibrary(platform: string): Promise<Embedded | undefined> {
  void platform;
  return Promise.resolve(undefined);
}
