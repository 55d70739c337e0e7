/**
 * Starting a server process, for the tests, the demo and the benchmarks: spawn it, wait for its
 * `listening on HOST:PORT` line, read its CPU time and memory from /proc, stop it.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

export const root = new URL("../../", import.meta.url).pathname;
export const DENO = `${root}node_modules/.bin/deno`;
export const BUN = `${root}node_modules/.bin/bun`;
export const LOAD = `${root}zig-out/bin/zev-load`;

export interface Server {
  name: string;
  port: number;
  child: ChildProcess;
  /** User + system CPU seconds of the server process so far. */
  cpuSeconds(): number;
  /** Times its threads were put on a CPU so far (about one per wake). */
  runs(): number;
  /** Resident memory in bytes now. */
  rssBytes(): number;
  /** Open descriptors now. */
  fds(): number;
  /** What the server wrote to stderr so far. */
  stderr(): string;
  /** SIGTERM, then resolves with the exit code (null if it had to be killed). */
  stop(): Promise<number | null>;
}

/**
 * User + system CPU seconds of a process so far: the sum of its threads' run time from
 * /proc/PID/task/TID/schedstat (nanoseconds; /proc/PID/stat counts 10 ms ticks, too coarse
 * for a server at 1 % CPU). Threads come and go (a JIT compiler, a collector's helpers):
 * each thread's last seen time is kept after it ends, so the count never goes back.
 */
export function cpuCounter(pid: number): () => number {
  const ns = schedstatCounter(pid, 0);
  return () => ns() / 1e9;
}

/**
 * How many times the threads of a process were put on a CPU so far (schedstat's third
 * field): a server that sleeps between requests is put back once per wake, so per
 * request this says whether each request woke it or several shared a wake.
 */
export function runsCounter(pid: number): () => number {
  return schedstatCounter(pid, 2);
}

/** The sum over a process's threads, ended ones included, of one field of their schedstat. */
function schedstatCounter(pid: number, field: number): () => number {
  const seen = new Map<string, number>();
  let gone = 0;
  return () => {
    const now = new Map<string, number>();
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        try {
          now.set(tid, Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[field]));
        } catch {
          // the thread ended just now
        }
      }
    } catch {
      // the process ended: its threads' last seen counts stand
    }
    for (const [tid, n] of seen) if (!now.has(tid)) gone += n;
    seen.clear();
    let sum = gone;
    for (const [tid, n] of now) {
      seen.set(tid, n);
      sum += n;
    }
    return sum;
  };
}

/** Runs `argv` and resolves once it prints its ready line (rejects after `timeoutMs`). */
export function startServer(
  name: string,
  argv: string[],
  env: Record<string, string> = {},
  timeoutMs = 15000,
): Promise<Server> {
  const child = spawn(argv[0], argv.slice(1), { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${name}: no ready line within ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /listening on (\S+):(\d+)/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      child.stdout!.removeAllListeners("data");
      child.stdout!.resume();
      const pid = child.pid!;
      resolve({
        name,
        port: Number(m[2]),
        child,
        cpuSeconds: cpuCounter(pid),
        runs: runsCounter(pid),
        fds: () => readdirSync(`/proc/${pid}/fd`).length,
        stderr: () => stderr,
        rssBytes() {
          const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
          return m ? Number(m[1]) * 1024 : 0;
        },
        stop() {
          return new Promise((done) => {
            if (child.exitCode !== null) return done(child.exitCode);
            // Past the examples' 5 s grace period for open connections.
            const kill = setTimeout(() => child.kill("SIGKILL"), 15_000);
            child.once("exit", (code) => {
              clearTimeout(kill);
              done(code);
            });
            // process.kill, not child.kill: Deno's node:child_process reports a child it
            // signalled itself as killed by the signal even when the child exits 0.
            process.kill(pid, "SIGTERM");
          });
        },
      });
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name}: exited with ${code} before it was ready\n${stderr}`));
    });
  });
}

/** Runs the load generator (pinned to `cpu` if given) and returns its JSON result. */
export function load(args: string[], cpu?: number): Promise<Record<string, number | string | boolean>> {
  return new Promise((resolve, reject) => {
    const argv = cpu === undefined
      ? [LOAD, ...args, "--json"]
      : ["taskset", "-c", String(cpu), LOAD, ...args, "--json"];
    const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    child.once("exit", () => {
      try {
        resolve(JSON.parse(out.trim().split("\n").pop()!));
      } catch {
        reject(new Error(`zev-load ${args.join(" ")}: no JSON result: ${out}`));
      }
    });
  });
}

/** The command that runs examples/NAME.ts in `runtime` (its binary can be overridden). */
export function example(runtime: "deno" | "bun", name: string, flags: string[] = [], binary?: string): string[] {
  const file = `${root}examples/${name}.ts`;
  return runtime === "deno"
    ? [binary ?? DENO, "run", "--allow-ffi", "--allow-read", "--allow-env", "--allow-net", file, ...flags]
    : [binary ?? BUN, file, ...flags];
}

/** Formats a markdown table. */
export function table(header: string[], rows: (string | number)[][]): string {
  const lines = [header, header.map(() => "---"), ...rows.map((r) => r.map(String))];
  return lines.map((cells) => `| ${cells.join(" | ")} |`).join("\n");
}
