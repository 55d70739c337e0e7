/**
 * Finds the native library for the running process: `ZEV_LIB` if set, else the library
 * built for this OS, CPU and C library under the package's `zig-out/lib/`. When there is
 * none, the error says which file was expected and what to run.
 *
 * @module
 */

import { existsSync, readFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** The platform name used in library file names, e.g. `linux-x86_64-musl`. */
export function platformName(): string {
  const os = process.platform === "darwin" ? "macos" : process.platform;
  const arch = process.arch === "x64" ? "x86_64" : process.arch === "arm64" ? "aarch64" : process.arch;
  return os === "linux" ? `${os}-${arch}-${linuxLibc()}` : `${os}-${arch}`;
}

/**
 * The C library this process runs on. A musl process must load the musl build and a
 * glibc process the glibc build; the loader that mapped this process says which it is.
 */
export function linuxLibc(): "gnu" | "musl" {
  // Deno without --allow-read would prompt on a terminal; Deno's own builds are glibc.
  if (!denoAllows({ name: "read", path: "/proc/self/maps" })) return "gnu";
  try {
    const maps = readFileSync("/proc/self/maps", "utf8");
    return /ld-musl|libc\.musl/.test(maps) ? "musl" : "gnu";
  } catch {
    return existsSync("/lib/ld-musl-x86_64.so.1") || existsSync("/lib/ld-musl-aarch64.so.1") ? "musl" : "gnu";
  }
}

/** A zev environment variable (`ZEV_LIB`, `ZEV_WAKE`), or undefined when unset. */
export function envVar(name: string): string | undefined {
  // Deno without --allow-env: behave as if unset (asking would prompt on a terminal);
  // the locator's error mentions the flag.
  if (!denoAllows({ name: "env", variable: name })) return undefined;
  return process.env[name] || undefined;
}

/** Under Deno, whether a permission is granted already; elsewhere always true. */
function denoAllows(descriptor: { name: "read"; path: string } | { name: "env"; variable: string }): boolean {
  const deno = (globalThis as { Deno?: { permissions: { querySync(d: unknown): { state: string } } } }).Deno;
  return deno === undefined || deno.permissions.querySync(descriptor).state === "granted";
}

/** The library path to load, or an Error explaining what is missing and how to fix it. */
export function locateLibrary(): string {
  const override = envVar("ZEV_LIB");
  if (override !== undefined) {
    if (!existsSync(override)) {
      throw new Error(`zev: ZEV_LIB is set to '${override}', but no file exists there.`);
    }
    return override;
  }
  const platform = platformName();
  const ext = process.platform === "darwin" ? "dylib" : "so";
  const file = `libzev-${platform}.${ext}`;
  const root = new URL("../", import.meta.url);
  if (root.protocol === "file:") {
    const candidate = fileURLToPath(new URL(`zig-out/lib/${file}`, root));
    if (existsSync(candidate)) return candidate;
    throw new Error(
      `zev: no native library for ${platform}: expected ${candidate}.\n` +
        `Build it with \`make lib\` in ${fileURLToPath(root)}, or set ZEV_LIB to the path of ${file}` +
        ` (under Deno, run with --allow-ffi --allow-read --allow-env).`,
    );
  }
  throw new Error(`zev: loaded from ${root.href}; set ZEV_LIB to the path of ${file}.`);
}
