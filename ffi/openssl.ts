/**
 * The TLS engine: the system's OpenSSL 3, found at run time and handed to the library as
 * a table of function addresses (zig/tls/openssl.zig). The library links nothing of it,
 * so a machine without OpenSSL still loads zev, and only TLS says why it cannot run.
 *
 * @module
 */

import { envVar } from "./locate.ts";
import { OPENSSL_SYMBOLS } from "./abi.ts";
import type { Native } from "./symbols.ts";

/** Which TLS engine runs, or why none does. */
export type TlsEngine =
  | { engine: "openssl"; version: string; library: string }
  | { engine: null; reason: string };

/** Where OpenSSL 3's libssl may be, in the order tried (`ZEV_OPENSSL` names one path). */
function candidates(): string[] {
  const named = envVar("ZEV_OPENSSL");
  if (named) return [named];
  // macOS aborts a process that loads the system's libcrypto; Homebrew's would need a path.
  if (globalThis.navigator?.userAgent?.includes("Darwin")) return [];
  return ["libssl.so.3"];
}

let engine: TlsEngine | undefined;

/** Loads the engine once per thread (the library keeps the first table of the process). */
export function tlsEngine(native: Native): TlsEngine {
  if (engine) return engine;
  const libraries = candidates();
  if (libraries.length === 0) {
    return (engine = { engine: null, reason: "no OpenSSL 3 to use on this system: set ZEV_OPENSSL to a libssl.so.3" });
  }
  const found = native.resolve(libraries, OPENSSL_SYMBOLS);
  if ("error" in found) {
    return (engine = {
      engine: null,
      reason:
        `OpenSSL 3 could not be loaded (${found.error}): install it (Debian: libssl3, Alpine: libssl3) or set ZEV_OPENSSL`,
    });
  }
  const r = native.sym.zev_tls_engine(found.table, OPENSSL_SYMBOLS.length);
  if (r < 0) return (engine = { engine: null, reason: `the library refused OpenSSL's functions (code ${r})` });
  const buf = new Uint8Array(128);
  const n = native.sym.zev_tls_engine_version(buf, buf.length);
  const version = n > 0 ? new TextDecoder().decode(buf.subarray(0, n)) : "OpenSSL 3";
  if (!version.startsWith("OpenSSL 3")) {
    return (engine = { engine: null, reason: `${libraries[0]} is ${version}, not OpenSSL 3` });
  }
  return (engine = { engine: "openssl", version, library: libraries[0] });
}
