/**
 * The Deno loader: `Deno.dlopen`, sockets of Deno's own (through `node:net`, which adopts
 * a descriptor) for the kernel-delivered wake, and the fallback parker, a `nonblocking`
 * call that Deno runs on its blocking thread pool and settles as a promise.
 *
 * The fallback's blocking call is libc's poll(2) on the loop's descriptor, not a zev
 * function: Deno unloads FFI libraries when it exits, and a thread still blocked inside
 * zev would then return into unmapped code. libc is never unloaded.
 *
 * @module
 */

import net from "node:net";
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

export function load(path: string): Native {
  const lib = Deno.dlopen(path, symbols);
  const sym = lib.symbols as unknown as Symbols;
  return {
    runtime: "deno",
    path,
    sym,
    watch,
    netPermission,
    pathPermission,
    workers,
    threadParker: (loop, onWake, reason) => Promise.resolve(new PollParker(sym, loop, onWake, reason)),
    resolve,
  };
}

/** `Native.resolve` with libc's dlopen and dlsym (Deno's own dlopen gives no addresses). */
function resolve(libraries: readonly string[], names: readonly string[]): { table: Uint8Array } | { error: string } {
  const libc = Deno.dlopen(libcPath(), {
    dlopen: { parameters: ["buffer", "i32"], result: "pointer" },
    dlsym: { parameters: ["pointer", "buffer"], result: "pointer" },
    dlerror: { parameters: [], result: "pointer" },
  });
  try {
    const cstr = (s: string) => new TextEncoder().encode(`${s}\0`);
    const flags = RTLD_NOW | (Deno.build.os === "linux" ? RTLD_DEEPBIND : 0);
    const why = () => {
      const p = libc.symbols.dlerror();
      return p === null ? "unknown" : Deno.UnsafePointerView.getCString(p);
    };
    let handle: Deno.PointerValue = null;
    const errors: string[] = [];
    for (const name of libraries) {
      handle = libc.symbols.dlopen(cstr(name), flags);
      if (handle !== null) break;
      errors.push(why());
    }
    if (handle === null) return { error: errors.join("; ") };
    const table = new BigUint64Array(names.length);
    for (const [i, name] of names.entries()) {
      const p = libc.symbols.dlsym(handle, cstr(name));
      if (p === null) return { error: `${name}: ${why()}` };
      table[i] = BigInt(Deno.UnsafePointer.value(p));
    }
    return { table: new Uint8Array(table.buffer) };
  } finally {
    // The library stays loaded (never dlclosed): the table points into it.
    libc.close();
  }
}

/**
 * Deno's sockets need `--allow-net`; zev's reach the network through FFI, so they ask
 * Deno the same question before they listen or connect, and `--allow-net=host:port`
 * keeps its meaning. A program run without an answer is asked as Deno asks (a prompt on
 * a terminal, a refusal elsewhere).
 */
function netPermission(host: string, port: number): string | undefined {
  const target = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  const descriptor = { name: "net", host: target } as const;
  let state = Deno.permissions.querySync(descriptor).state;
  if (state === "prompt") state = Deno.permissions.requestSync(descriptor).state;
  if (state === "granted") return undefined;
  return `Deno's permissions do not allow network access to ${target}: run with --allow-net=${target} (or --allow-net)`;
}

/** Deno.listen and Deno.connect on a Unix socket need read and write access to its path. */
function pathPermission(path: string): string | undefined {
  for (const name of ["read", "write"] as const) {
    const descriptor = { name, path } as const;
    let state = Deno.permissions.querySync(descriptor).state;
    if (state === "prompt") state = Deno.permissions.requestSync(descriptor).state;
    if (state !== "granted") {
      return `Deno's permissions do not allow ${name} access to ${path}: run with --allow-read=${path} --allow-write=${path}`;
    }
  }
  return undefined;
}

const WORKER_NAME = "zev-worker ";

/** Deno tells a Worker its tag through its name (`self.name`). */
const workers: Workers = {
  mainModule: () => Deno.mainModule,
  start: (url, tag) => new Worker(url, { type: "module", name: WORKER_NAME + tag }),
  tag: () => {
    const name = (globalThis as { name?: unknown }).name;
    return typeof name === "string" && name.startsWith(WORKER_NAME) ? name.slice(WORKER_NAME.length) : undefined;
  },
};

/** The wake socket's read buffer: a park sends one byte, so a read rarely finds more. */
const WAKE_READ_BYTES = 64;

/**
 * Deno adopts a descriptor as a socket through node:net (`new net.Socket({ fd })`). Its
 * bytes are read into one small buffer (`onread`): a `data` event would allocate 64 KiB
 * and run a stream's machinery for every one-byte wake, a fifth of zev's CPU per request
 * at 1,000 requests/s (docs/design/WAKE.md).
 */
function watch(fd: number, onData: () => void): Promise<Watch> {
  const onread = {
    buffer: new Uint8Array(WAKE_READ_BYTES),
    // true: keep reading (false would pause the socket).
    callback: (): boolean => {
      onData();
      return true;
    },
  };
  const socket = new net.Socket({ fd, readable: true, writable: false, onread });
  socket.unref();
  return Promise.resolve({
    keepAlive: (on) => void (on ? socket.ref() : socket.unref()),
    close: () => void socket.destroy(),
  });
}

/** POLLIN is 1 on Linux, macOS and FreeBSD. */
const POLLIN = 1;

/** Longest sleep between polls while parked without keeping the process alive. */
const UNREF_POLL_MAX_MS = 100;

/**
 * Waits in libc's poll(2) on Deno's blocking pool. Deno cannot unreference that pending
 * call, so while a park must not keep the process alive, the driver is polled from an
 * unreferenced timer instead (1 ms doubling to 100 ms; only in this fallback).
 */
class PollParker implements Parker {
  readonly kind = "thread";
  #poll: Deno.DynamicLibrary<{ poll: { parameters: ["buffer", "u64", "i32"]; result: "i32"; nonblocking: true } }>;
  /** struct pollfd { int fd; short events; short revents; } */
  #pollfd = new Uint8Array(8);
  #keep = false;
  #polling = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #backoffMs = 0;

  constructor(readonly sym: Symbols, readonly loop: number, readonly onWake: () => void, readonly reason: string) {
    this.#poll = Deno.dlopen(libcPath(), {
      poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
    });
    const view = new DataView(this.#pollfd.buffer);
    view.setInt32(0, sym.zev_park_fd(loop), true);
    view.setInt16(4, POLLIN, true);
  }

  park(): number {
    if (this.#polling || this.#timer !== undefined) return 0;
    if (!this.#keep) {
      this.#backoffMs = Math.min(UNREF_POLL_MAX_MS, Math.max(1, this.#backoffMs * 2));
      const timer = setTimeout(this.#tick, this.#backoffMs);
      Deno.unrefTimer(timer);
      this.#timer = timer;
      return 0;
    }
    this.#backoffMs = 0;
    this.#polling = true;
    new DataView(this.#pollfd.buffer).setInt16(6, 0, true);
    this.#poll.symbols.poll(this.#pollfd, 1n, -1).then(this.#done, this.#done);
    return 0;
  }

  #tick = (): void => {
    this.#timer = undefined;
    this.onWake();
  };

  #done = (): void => {
    this.#polling = false;
    this.onWake();
  };

  get keepingAlive(): boolean {
    return this.#keep;
  }

  keepAlive(on: boolean): void {
    if (on === this.#keep) return;
    this.#keep = on;
    if (on && this.#timer !== undefined) {
      // Parked on the unreferenced timer: park on the thread instead, now.
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.park();
    } else if (!on && this.#polling) {
      // The pending poll would keep the process alive: end it (the driver parks again).
      this.sym.zev_wake(this.loop);
    }
  }

  close(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    // libc stays open: a pending poll may still be running in it.
    if (this.#polling) this.sym.zev_wake(this.loop);
  }
}
