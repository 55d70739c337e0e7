/**
 * Socket addresses: reading them from the native layout (zig/address.zig) and
 * resolving the host names that the native layer does not (it takes IP literals only).
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { abiError, ZevError } from "../core/errors.ts";
import { show } from "../core/validate.ts";
import { driver } from "../core/driver.ts";

/** A TCP address. */
export interface Addr {
  /** The IP address (IPv6 without brackets; IPv4-mapped as `::ffff:a.b.c.d`). */
  hostname: string;
  /** The port. */
  port: number;
  /** 4 or 6. */
  family: 4 | 6;
}

/** A Unix socket's address. */
export interface UnixAddr {
  /** The socket file's path; "" for the unnamed end of an accepted connection. */
  path: string;
  /** "unix". */
  family: "unix";
}

/** Either kind of address: what a listener or stream of either kind has. */
export type AnyAddr = Addr | UnixAddr;

const addrBuf = new Uint8Array(20);

/** The local (or, with `peer`, remote) address of a handle. */
export function readAddr(handle: number, peer: boolean, what: string): Addr {
  const r = driver.native.sym.zev_address(driver.loop, handle, peer ? 1 : 0, addrBuf);
  if (r < 0) throw abiError(r, what);
  return parseAddr(addrBuf);
}

/** An IP address in the native layout (zig/address.zig): 20 bytes. */
export function parseAddr(addrBuf: Uint8Array): Addr {
  const port = addrBuf[2] | (addrBuf[3] << 8);
  if (addrBuf[0] === 4) return { hostname: addrBuf.subarray(4, 8).join("."), port, family: 4 };
  const groups: string[] = [];
  for (let i = 4; i < 20; i += 2) groups.push(((addrBuf[i] << 8) | addrBuf[i + 1]).toString(16));
  // IPv4-mapped (::ffff:a.b.c.d) keeps its dotted tail, as RFC 5952 section 5 asks.
  if (groups.slice(0, 5).every((g) => g === "0") && groups[5] === "ffff") {
    return { hostname: `::ffff:${addrBuf.subarray(16, 20).join(".")}`, port, family: 6 };
  }
  return { hostname: compressIPv6(groups), port, family: 6 };
}

/** `host:port`, with an IPv6 host in brackets (`[::1]:80`), or a Unix path, for messages. */
export function formatAddr(addr: AnyAddr): string {
  if (addr.family === "unix") return addr.path === "" ? "an unnamed Unix socket" : addr.path;
  return addr.family === 6 ? `[${addr.hostname}]:${addr.port}` : `${addr.hostname}:${addr.port}`;
}

/** RFC 5952 form: the longest run of two or more zero groups becomes "::". */
function compressIPv6(groups: string[]): string {
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

/** Whether `host` is a well-formed IP literal (the native layer parses those itself). */
export function isIpLiteral(host: string): boolean {
  return isIP(host) !== 0;
}

/**
 * The IP literal a host name stands for without asking DNS: literals (IPv6 ones with or
 * without brackets) pass, "localhost" is IPv4 loopback; any other name gives undefined.
 */
export function literalHost(hostname: unknown, what: string): string | undefined {
  if (typeof hostname !== "string" || hostname.length === 0) {
    throw new TypeError(`${what}: invalid hostname ${show(hostname)}: expected a host name or an IP address`);
  }
  const host = hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
  if (host === "localhost") return "127.0.0.1";
  return isIpLiteral(host) ? host : undefined;
}

/** The system's resolver: every address of a name, in its order (a test may stand in). */
type Lookup = (hostname: string, family: 0 | 4 | 6) => Promise<string[]>;
const systemLookup: Lookup = async (hostname, family) =>
  (await lookup(hostname, { all: true, family })).map((a) => a.address);
let resolver: Lookup = systemLookup;

/** @internal Tests resolve names their own way (undefined: the system's resolver again). */
export function setResolverForTests(lookup: Lookup | undefined): void {
  resolver = lookup ?? systemLookup;
}

/**
 * Turns a host name into IP literals: `literalHost`, else every address the resolver
 * gives (of `family` only, if not 0), in its order.
 */
export async function resolveHosts(hostname: string, what: string, family: 0 | 4 | 6 = 0): Promise<string[]> {
  const literal = literalHost(hostname, what);
  if (literal !== undefined) return [literal];
  let hosts: string[];
  try {
    hosts = await resolver(hostname, family);
  } catch (error) {
    const code = (error as { code?: string }).code ?? "unknown";
    throw new ZevError("NameNotResolved", `${what}: cannot resolve hostname ${show(hostname)} (${code})`, {
      cause: error,
    });
  }
  if (hosts.length === 0) {
    const of = family === 0 ? "" : ` IPv${family}`;
    throw new ZevError("NameNotResolved", `${what}: cannot resolve hostname ${show(hostname)} (no${of} address)`);
  }
  return hosts;
}
