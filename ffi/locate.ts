/**
 * Finds the native library for the running process, in this order:
 *
 * 1. `ZEV_LIB`, the path of a library (an override, for a library built by hand);
 * 2. in a source checkout, the library `make lib` built under `zig-out/lib/`;
 * 3. installed from npm (`bun add zev`, `npm:zev`): the platform package for this OS, CPU
 *    and the C library this process really runs on (`@zev/lib-linux-x86_64-gnu`...), an
 *    optional dependency of `zev`;
 * 4. imported from JSR (`jsr:@zev/zev`, no file path): the library travels inside the
 *    package as a module (ffi/embedded.ts); it is written once into a per-user cache
 *    directory named by version and content hash, checked by SHA-256 before it is opened,
 *    and written atomically, so that processes starting together all succeed.
 *
 * When none applies, the error says what is missing and the command that fixes it.
 *
 * @module
 */

import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { embeddedLibrary } from "./embedded.ts";

/** The platform the library must be built for. */
export interface Platform {
  /** As in library file names: `linux-x86_64-musl`, `macos-aarch64`... */
  name: string;
  /** The library's file name. */
  file: string;
  /** The npm package that holds it. */
  npm: string;
}

/** The platform of this process: OS, CPU and, on Linux, the C library it runs on. */
export function currentPlatform(): Platform {
  const os = process.platform === "darwin" ? "macos" : process.platform;
  const arch = process.arch === "x64" ? "x86_64" : process.arch === "arm64" ? "aarch64" : process.arch;
  const name = os === "linux" ? `${os}-${arch}-${linuxLibc()}` : `${os}-${arch}`;
  return { name, file: `libzev-${name}.${os === "macos" ? "dylib" : "so"}`, npm: `@zev/lib-${name}` };
}

/** The platform name used in library file names, e.g. `linux-x86_64-musl`. */
export function platformName(): string {
  return currentPlatform().name;
}

/**
 * The C library this process runs on. A musl process must load the musl build and a
 * glibc process the glibc build; the loader that mapped this process says which it is
 * (both packages arrive on Linux, since no package manager filters on `libc`).
 */
export function linuxLibc(): "gnu" | "musl" {
  // Deno without --allow-read would prompt on a terminal; Deno's own builds are glibc.
  if (!denoAllows({ name: "read", path: "/proc/self/maps" })) return "gnu";
  try {
    return /ld-musl|libc\.musl/.test(readFileSync("/proc/self/maps", "utf8")) ? "musl" : "gnu";
  } catch {
    // No /proc: the process's own interpreter, as the kernel reports it, is not at hand;
    // glibc is the common case.
    return "gnu";
  }
}

/** A zev environment variable (`ZEV_LIB`, `ZEV_WAKE`...), or undefined when unset. */
export function envVar(name: string): string | undefined {
  // Deno without --allow-env: behave as if unset (asking would prompt on a terminal);
  // the locator's errors mention the flag.
  if (!denoAllows({ name: "env", variable: name })) return undefined;
  return process.env[name] || undefined;
}

type Descriptor = { name: "read" | "write"; path: string } | { name: "env"; variable: string };

/** Under Deno, whether a permission is granted already; elsewhere always true. */
function denoAllows(descriptor: Descriptor): boolean {
  const deno = (globalThis as { Deno?: { permissions: { querySync(d: unknown): { state: string } } } }).Deno;
  return deno === undefined || deno.permissions.querySync(descriptor).state === "granted";
}

const DENO_FLAGS = "under Deno, run with --allow-ffi --allow-read --allow-env (and --allow-write for the cache)";

/** Whether `path` exists; false, not Deno's NotCapable, where Deno may not read it. */
function existsReadable(path: string): boolean {
  return denoAllows({ name: "read", path }) && existsSync(path);
}

/** Throws zev's own error when Deno may not read `path`, naming the flag that allows it. */
function needRead(path: string, what: string): void {
  if (!denoAllows({ name: "read", path })) {
    throw new Error(`zev: Deno may not read ${what} ${path}: run with --allow-read=${path} (or --allow-read).`);
  }
}

/** The library path to load, or an Error explaining what is missing and how to fix it. */
export async function locateLibrary(): Promise<string> {
  const platform = currentPlatform();
  const override = envVar("ZEV_LIB");
  if (override !== undefined) {
    if (!existsSync(override)) {
      throw new Error(
        `zev: ZEV_LIB is set to '${override}', but no file exists there; unset it, or point it at ${platform.file}.`,
      );
    }
    return override;
  }
  const here = new URL(".", import.meta.url);
  if (here.protocol === "file:") return localLibrary(platform, here);
  return await cachedLibrary(platform);
}

/**
 * A checkout's `zig-out/lib/`, or the platform package beside an npm install. An
 * installed package (under node_modules, or Deno's npm cache) looks only where its
 * library is: a checkout's path is no place of its, and asking Deno for it would need a
 * permission the user had no reason to grant.
 */
function localLibrary(platform: Platform, here: URL): string {
  const built = fileURLToPath(new URL(`../zig-out/lib/${platform.file}`, here));
  const installed = /[\\/]node_modules[\\/]|[\\/]npm[\\/][^\\/]+[\\/]zev[\\/]/.test(fileURLToPath(here));
  if (!installed && existsReadable(built)) return built;
  let packageDir: string | undefined;
  try {
    packageDir = join(createRequire(here).resolve(`${platform.npm}/package.json`), "..");
  } catch {
    // not installed
  }
  if (packageDir !== undefined) {
    const file = join(packageDir, platform.file);
    needRead(file, "the native library");
    if (existsSync(file)) return file;
    throw new Error(
      `zev: ${platform.npm} is installed at ${packageDir}, but ${platform.file} is not in it; reinstall zev.`,
    );
  }
  const checkout = fileURLToPath(new URL("../build.zig", here));
  throw new Error(
    `zev: no native library for ${platform.name}: ` +
      (!installed && existsReadable(checkout)
        ? `expected ${built}; build it with \`make lib\` in ${fileURLToPath(new URL("..", here))},`
        : `the package ${platform.npm} is not installed (an optional dependency of zev, installed for the OS, CPU and C library ` +
          `the package manager ran on); add it with \`bun add ${platform.npm}\` or \`npm install ${platform.npm}\`,`) +
      ` or set ZEV_LIB to the path of ${platform.file} (${DENO_FLAGS}).`,
  );
}

/** The environment variables the cache directory comes from. */
const CACHE_VARS = ["ZEV_CACHE_DIR", "XDG_CACHE_HOME", "HOME"];

/** The per-user cache directory for libraries taken out of the JSR package. */
export function cacheDir(): string {
  const explicit = envVar("ZEV_CACHE_DIR");
  if (explicit !== undefined) return explicit;
  const xdg = envVar("XDG_CACHE_HOME");
  if (xdg !== undefined) return join(xdg, "zev");
  const home = envVar("HOME");
  if (home === undefined) {
    const denied = CACHE_VARS.filter((variable) => !denoAllows({ name: "env", variable }));
    if (denied.length > 0) {
      throw new Error(
        `zev: Deno may not read the environment (${denied.join(", ")}) to find the cache directory for the native ` +
          `library: run with --allow-env=${CACHE_VARS.join(",")},ZEV_LIB,ZEV_BACKEND,ZEV_WAKE (or --allow-env).`,
      );
    }
    throw new Error(`zev: no cache directory for the native library: set ZEV_CACHE_DIR (or HOME).`);
  }
  return process.platform === "darwin" ? join(home, "Library", "Caches", "zev") : join(home, ".cache", "zev");
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/**
 * The embedded library of this platform, written once into the cache (named by version
 * and content hash), and checked by SHA-256 every time before it is opened.
 */
async function cachedLibrary(platform: Platform): Promise<string> {
  const embedded = await embeddedLibrary(platform.name);
  if (embedded === undefined) {
    throw new Error(
      `zev: this package carries no native library for ${platform.name}; build one (\`make lib\` in a checkout of zev) and set ZEV_LIB to its path.`,
    );
  }
  const dir = join(cacheDir(), `${embedded.version}-${embedded.sha256.slice(0, 16)}`);
  const file = join(dir, platform.file);
  // Both asked of Deno before anything is written: a write whose rename then fails for
  // want of read access would leave its temporary file behind.
  needRead(dir, "the native library's cache directory");
  try {
    if (existsSync(file) && sha256(readFileSync(file)) === embedded.sha256) return file;
  } catch {
    // unreadable: written again below
  }
  if (!denoAllows({ name: "write", path: dir })) {
    throw new Error(
      `zev: Deno may not write the native library into its cache directory ${dir}: run with --allow-write=${dir} ` +
        `(or set ZEV_CACHE_DIR to a directory it may write, or ZEV_LIB to the path of ${platform.file}).`,
    );
  }
  const bytes = Uint8Array.from(atob(embedded.base64), (c) => c.charCodeAt(0));
  if (sha256(bytes) !== embedded.sha256) {
    throw new Error(`zev: the embedded library for ${platform.name} is corrupt (SHA-256 mismatch); reinstall zev.`);
  }
  // Written beside its final name and renamed over it: a process that starts meanwhile
  // sees the old file or the new one, never half of one.
  const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(temp, bytes, { mode: 0o755 });
    renameSync(temp, file);
  } catch (error) {
    let left = "";
    try {
      rmSync(temp, { force: true });
    } catch (cleanup) {
      left = ` (and ${temp} could not be removed: ${(cleanup as Error).message})`;
    }
    throw new Error(
      `zev: cannot write the native library into the cache directory ${dir} (${(error as Error).message}): ` +
        `set ZEV_CACHE_DIR to a writable directory (under Deno, allow it with --allow-read and --allow-write for it), ` +
        `or set ZEV_LIB to the path of ${platform.file}${left}.`,
      { cause: error },
    );
  }
  if (sha256(readFileSync(file)) !== embedded.sha256) {
    throw new Error(`zev: ${file} changed while it was being written; try again.`);
  }
  return file;
}
