/**
 * Test helpers. The clients use the runtime's own sockets (node:net), not zev, so that a
 * bug in zev cannot hide on both sides of a test. Every wait has a deadline: a test
 * fails with a message saying what stalled, and never hangs.
 */

import net from "node:net";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import process from "node:process";
import { connect, listen, type Stream, ZevError } from "../../mod.ts";
import { driver } from "../../src/core/driver.ts";

/** Rejects with `message` if `promise` has not settled within `ms`. */
export async function within<T>(ms: number, message: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`stall: ${message} (no progress within ${ms} ms)`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Awaits `promise` while `progress()` keeps changing; fails when it stood still for `ms`,
 * with `describe()` in the message, so that a stall says where it stood instead of
 * running into the test's timeout.
 */
export async function progressing<T>(
  ms: number,
  what: string,
  progress: () => unknown,
  describe: () => string,
  promise: Promise<T>,
): Promise<T> {
  let timer: ReturnType<typeof setInterval> | undefined;
  const stalled = new Promise<never>((_, reject) => {
    let last = progress(), since = Date.now();
    timer = setInterval(() => {
      const now = progress();
      if (now !== last) {
        last = now;
        since = Date.now();
      } else if (Date.now() - since >= ms) {
        reject(new Error(`stall: ${what} (no progress within ${ms} ms): ${describe()}`));
      }
    }, Math.min(1000, ms / 4));
  });
  try {
    return await Promise.race([promise, stalled]);
  } finally {
    clearInterval(timer);
  }
}

/** Waits until `f()` holds, polling every 5 ms; fails with `what` after `ms`. */
export async function eventually(ms: number, what: string, f: () => boolean): Promise<void> {
  await within(
    ms,
    what,
    (async () => {
      while (!f()) await new Promise((resolve) => setTimeout(resolve, 5));
    })(),
  );
}

/** Opens a node:net connection and resolves once it is established. */
export function openClient(port: number, host = "127.0.0.1"): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host, noDelay: true });
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

/** Writes `payload` and resolves with exactly `payload.length` bytes read back. */
export function exchange(socket: net.Socket, payload: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let got = 0;
    const onData = (data: Uint8Array) => {
      chunks.push(data);
      got += data.length;
      if (got >= payload.length) {
        cleanup();
        resolve(concat(chunks));
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new Error(`the server closed the connection after ${got} of ${payload.length} bytes`));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const cleanup = () => {
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("error", onError);
    };
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("error", onError);
    socket.write(payload);
  });
}

export function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export function text(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/** Connects, sends one request, reads the echo, closes: one client of a round. */
export async function requestOnce(port: number, payload: Uint8Array): Promise<Uint8Array> {
  const socket = await openClient(port);
  try {
    return await exchange(socket, payload);
  } finally {
    socket.destroy();
  }
}

/**
 * The seed scenario: `clients` concurrent clients, each connecting, sending one request
 * and reading its echo, repeated for `rounds` rounds. A round that does not finish within
 * `deadlineMs` is a stall, and the run stops there with an error saying so.
 */
export async function runRounds(port: number, clients: number, rounds: number, deadlineMs: number): Promise<number> {
  let served = 0;
  for (let round = 1; round <= rounds; round++) {
    let done = 0;
    const work = Array.from({ length: clients }, async (_, i) => {
      const payload = text(`round ${round} client ${i}\n`);
      const reply = await requestOnce(port, payload);
      if (new TextDecoder().decode(reply) !== new TextDecoder().decode(payload)) {
        throw new Error(`round ${round} client ${i}: wrong reply`);
      }
      done++;
    });
    await within(deadlineMs, `round ${round}: ${clients - done} of ${clients} clients got no reply`, Promise.all(work))
      .catch((error) => {
        throw new Error(`${error.message}; ${served} requests served before this round`);
      });
    served += clients;
  }
  return served;
}

/** Open descriptors of this process (Linux), to check that a suite leaks none. */
export function openDescriptors(): number {
  return readdirSync("/proc/self/fd").length;
}

/** A listener on `hostname` and a connected pair of streams through it. */
export async function tcpPair(hostname = "127.0.0.1") {
  const listener = listen({ hostname, port: 0 });
  const [client, server] = await Promise.all([connect({ hostname, port: listener.addr.port }), listener.accept()]);
  return { listener, client, server };
}

/** Reads `stream` to the peer's reset: fails unless a read rejects with ConnectionReset within `ms`. */
export async function readsToReset(stream: Stream, ms = 5000): Promise<void> {
  const sink = new Uint8Array(1 << 16);
  await assert.rejects(
    within(
      ms,
      "the peer reads to the reset",
      (async () => {
        while ((await stream.read(sink)) !== null);
      })(),
    ),
    (e: unknown) => e instanceof ZevError && e.code === "ConnectionReset",
  );
}

/** Spends what is left of this turn's budget: every operation after it waits a turn. */
export function spendTurn(): void {
  while (driver.spend());
}

/** The runtime running the tests, for messages. */
export const runtime = "Bun" in globalThis ? "bun" : "deno";

export { process };

/** The project's Deno (node_modules/.bin), or the one on PATH in a copy of the tree without it. */
function projectDeno(): string {
  const local = new URL("../../node_modules/.bin/deno", import.meta.url).pathname;
  return existsSync(local) ? local : "deno";
}

/** What a program run by `runProgram` did. */
export interface ProgramRun {
  /** Exit code, or null when it was killed for running past its time. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A program started by `startProgram`. */
export interface Program {
  /** What it printed so far. */
  stdout(): string;
  /** Sends it a signal. */
  signal(signal: NodeJS.Signals): void;
  /** Its process id (its open descriptors are in /proc/PID/fd). */
  pid: number;
  /** Settles when it exits (or is killed for running past its time). */
  done: Promise<ProgramRun>;
}

/**
 * Starts tests/process/programs/NAME.ts (examples/NAME.ts with `example`) as its own
 * process, in the runtime running the tests (so what keeps a process alive, or crashes
 * it, is seen from outside), or in the project's
 * Deno when `inDeno` (what only Deno has, its permissions, checked from either runtime).
 * `nofile` lowers the descriptor limit first; `denoFlags` replaces Deno's `--allow-all`;
 * `noIoUring` runs it where io_uring is forbidden (`make tools` builds the wrapper).
 */
export function startProgram(
  name: string,
  options: {
    args?: string[];
    env?: Record<string, string>;
    nofile?: number;
    denoFlags?: string[];
    timeoutMs?: number;
    inDeno?: boolean;
    /** Under tests/no_io_uring.zig: io_uring_setup fails with EPERM, as in many containers. */
    noIoUring?: boolean;
    /** NAME is one of examples/. */
    example?: boolean;
  } = {},
): Program {
  const file =
    new URL(options.example ? `../../examples/${name}.ts` : `../process/programs/${name}.ts`, import.meta.url)
      .pathname;
  const deno = options.inDeno || runtime === "deno";
  const exec = runtime === "deno" ? process.execPath : projectDeno();
  let argv = deno ? [exec, "run", ...(options.denoFlags ?? ["--allow-all"]), file] : [process.execPath, file];
  argv.push(...(options.args ?? []));
  if (options.nofile !== undefined) argv = ["sh", "-c", `ulimit -n ${options.nofile} && exec "$@"`, "sh", ...argv];
  if (options.noIoUring) argv = [new URL("../../zig-out/bin/zev-no-io-uring", import.meta.url).pathname, ...argv];
  const child = spawn(argv[0], argv.slice(1), {
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "", stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const done = new Promise<ProgramRun>((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 15_000);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  // process.kill, not child.kill: Deno's node:child_process reports a child it signalled
  // itself as killed by the signal even when the child exits 0.
  return { stdout: () => stdout, signal: (sig) => process.kill(child.pid!, sig), pid: child.pid!, done };
}

/** `startProgram`, waiting for the program to exit. */
export function runProgram(name: string, options: Parameters<typeof startProgram>[1] = {}): Promise<ProgramRun> {
  return startProgram(name, options).done;
}
