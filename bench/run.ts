/**
 * `make bench`: zev against the runtimes' own sockets, on this machine, in one run.
 *
 * TCP echo servers, in turn: zev in Deno and in Bun (examples/echo.ts), `Deno.listen`,
 * `Bun.listen`, node `net`, and a plain single-threaded epoll server in Zig (the floor).
 * Each is measured by bench/load.zig at 1 and 64 connections and in accept mode
 * (connect, one echo, close). The server runs on CPU 0 and the load on CPU 1, so the two
 * do not trade places between runs. Then HTTP: examples/http.ts in both runtimes
 * against `Bun.serve` and `Deno.serve`, under wrk at 20 and 256 connections.
 *
 * Server CPU per round trip (user + system time of the server process over the run,
 * divided by round trips) is the steadiest figure on a shared machine; ratios against the
 * runtime's own API are the headline. Writes bench/RESULTS.md.
 *
 *   bun bench/run.ts [--seconds 3] [--repeat 5]
 */

import process from "node:process";
import { execFileSync, spawn } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { BUN, DENO, example, load, root, type Server, startServer, table } from "./server.ts";

const args = process.argv.slice(2);
const SECONDS = Number(args[args.indexOf("--seconds") + 1] || 3);
const WARMUP = 1;
const pin = (cpu: number, argv: string[]) => ["taskset", "-c", String(cpu), ...argv];

interface EchoServer {
  name: string;
  runtime: "deno" | "bun" | "node" | "zig";
  zev: boolean;
  argv: string[];
}

const echoServers: EchoServer[] = [
  { name: "zev (Deno)", runtime: "deno", zev: true, argv: example("deno", "echo") },
  { name: "Deno.listen", runtime: "deno", zev: false, argv: [DENO, "run", "--allow-net", `${root}bench/servers/deno_listen.ts`] },
  { name: "zev (Bun)", runtime: "bun", zev: true, argv: example("bun", "echo") },
  { name: "Bun.listen", runtime: "bun", zev: false, argv: [BUN, `${root}bench/servers/bun_listen.ts`] },
  { name: "node net", runtime: "node", zev: false, argv: ["node", `${root}bench/servers/node_net.mjs`] },
  { name: "Zig floor (epoll, no JS)", runtime: "zig", zev: false, argv: [`${root}zig-out/bin/zev-floor`] },
];

interface Row {
  server: EchoServer;
  mode: string;
  rate: number;
  p50: number;
  p99: number;
  cpuUs: number;
  rssMiB: number;
  errors: number;
}

async function measure(server: Server, loadArgs: string[], unitKey: string): Promise<Omit<Row, "server" | "mode">> {
  const cpu0 = server.cpuSeconds();
  const r = await load(loadArgs, 1);
  const cpu = server.cpuSeconds() - cpu0;
  const units = Number(r[unitKey]);
  return {
    rate: Number(r.rtps ?? r.cps),
    p50: Number(r.p50_us),
    p99: Number(r.p99_us),
    cpuUs: units > 0 ? (cpu / units) * 1e6 : NaN,
    rssMiB: server.rssBytes() / 2 ** 20,
    errors: Number(r.errors),
  };
}

const modes = [
  { mode: "echo, 1 connection", args: ["echo", "--connections", "1"], unit: "round_trips" },
  { mode: "echo, 64 connections", args: ["echo", "--connections", "64"], unit: "round_trips" },
  { mode: "accept (16 clients)", args: ["accept", "--connections", "16"], unit: "cycles" },
];

// Every server starts once, pinned to CPU 0, and all stay up: an idle server costs nothing
// (see Idle below), so only the one under load runs. Each mode is measured in REPEAT
// rounds, and every round visits every server back to back, alternating direction, so a
// zev figure and its baseline are taken seconds apart: this shared 2-core machine drifts
// by 10 to 40% over minutes, and a drift must not fall on one server only. Ratios are the
// median of the per-round ratios; the other figures are medians.
const REPEAT = Number(args[args.indexOf("--repeat") + 1] || 5);
const running = new Map<string, Server>();
for (const s of echoServers) running.set(s.name, await startServer(s.name, pin(0, s.argv)));
const samples = new Map<string, Omit<Row, "server" | "mode">[]>();
const key = (server: string, mode: string) => `${server}\n${mode}`;
try {
  for (const m of modes) {
    for (let rep = 1; rep <= REPEAT; rep++) {
      const order = rep % 2 === 1 ? echoServers : [...echoServers].reverse();
      for (const s of order) {
        const server = running.get(s.name)!;
        // Warm-up (JIT, pools) with the same shape of load, then the measured run.
        await load([...m.args, "--port", String(server.port), "--duration", String(WARMUP)], 1);
        const result = await measure(server, [...m.args, "--port", String(server.port), "--duration", String(SECONDS)], m.unit);
        samples.set(key(s.name, m.mode), [...(samples.get(key(s.name, m.mode)) ?? []), result]);
        console.log(`[${rep}/${REPEAT}] ${s.name.padEnd(26)} ${m.mode.padEnd(22)} ${fmtRate(result.rate).padStart(9)}/s  p50 ${result.p50.toFixed(0).padStart(5)} µs  p99 ${result.p99.toFixed(0).padStart(6)} µs  cpu ${result.cpuUs.toFixed(2).padStart(6)} µs  rss ${result.rssMiB.toFixed(0)} MiB  errors ${result.errors}`);
      }
    }
  }
} catch (error) {
  for (const server of running.values()) await server.stop();
  throw error;
}

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
};
const rows: Row[] = [];
for (const s of echoServers) {
  for (const m of modes) {
    const runs = samples.get(key(s.name, m.mode))!;
    rows.push({
      server: s,
      mode: m.mode,
      rate: median(runs.map((r) => r.rate)),
      p50: median(runs.map((r) => r.p50)),
      p99: median(runs.map((r) => r.p99)),
      cpuUs: median(runs.map((r) => r.cpuUs)),
      rssMiB: median(runs.map((r) => r.rssMiB)),
      errors: runs.reduce((n, r) => n + r.errors, 0),
    });
  }
}

/** Median over rounds of `metric(a) / metric(b)`, both measured in the same round. */
function pairedRatio(a: string, b: string, mode: string, metric: (r: Omit<Row, "server" | "mode">) => number): number {
  const as = samples.get(key(a, mode))!, bs = samples.get(key(b, mode))!;
  return median(as.map((r, i) => metric(r) / metric(bs[i])));
}

// ---- idle: no wakeups, no CPU -------------------------------------------------------------

/** Context switches so far of each live thread of `pid`: each one is a wakeup. */
function contextSwitches(pid: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
      counts.set(tid, Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0) +
        Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0));
    } catch {
      // the thread ended
    }
  }
  return counts;
}

// All servers have just served their last load; now they are all idle, measured together.
const IDLE_SECONDS = 10;
await new Promise((r) => setTimeout(r, 1000));
const before = new Map([...running].map(([name, server]) => [name, { cpu: server.cpuSeconds(), sw: contextSwitches(server.child.pid!) }]));
await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
const idleRows: (string | number)[][] = [];
for (const [name, server] of running) {
  const b = before.get(name)!;
  const cpu = server.cpuSeconds() - b.cpu;
  let wakeups = 0;
  for (const [tid, n] of contextSwitches(server.child.pid!)) wakeups += n - (b.sw.get(tid) ?? 0);
  idleRows.push([name, `${(cpu * 1000).toFixed(0)} ms`, (wakeups / IDLE_SECONDS).toFixed(1)]);
  console.log(`idle ${name.padEnd(26)} cpu ${(cpu * 1000).toFixed(0)} ms in ${IDLE_SECONDS} s, ${(wakeups / IDLE_SECONDS).toFixed(1)} wakeups/s`);
}
for (const server of running.values()) await server.stop();

// ---- HTTP under wrk ----------------------------------------------------------------------

interface HttpRow {
  name: string;
  connections: number;
  rps: number;
  p50: string;
  p99: string;
  cpuUs: number;
  errors: string;
}
const httpServers = [
  { name: "zev http.ts (Deno)", argv: example("deno", "http") },
  { name: "Deno.serve", argv: [DENO, "run", "--allow-net", `${root}bench/servers/deno_serve.ts`] },
  { name: "zev http.ts (Bun)", argv: example("bun", "http") },
  { name: "Bun.serve", argv: [BUN, `${root}bench/servers/bun_serve.ts`] },
];

function wrk(port: number, connections: number, seconds: number): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn("taskset", ["-c", "1", "wrk", "-t1", `-c${connections}`, `-d${seconds}s`, "--latency", `http://127.0.0.1:${port}/`], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    child.once("exit", () => resolve(out));
  });
}

function wrkLatency(out: string, pct: string): string {
  return new RegExp(`^\\s+${pct}%\\s+(\\S+)`, "m").exec(out)?.[1] ?? "?";
}

const httpRows: HttpRow[] = [];
for (const h of httpServers) {
  const server = await startServer(h.name, pin(0, h.argv));
  try {
    for (const c of [20, 256]) {
      await wrk(server.port, c, WARMUP);
      const cpu0 = server.cpuSeconds();
      const out = await wrk(server.port, c, SECONDS);
      const cpu = server.cpuSeconds() - cpu0;
      const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
      const errors = /Socket errors:.*|Non-2xx.*/.exec(out)?.[0] ?? "0";
      const row = { name: h.name, connections: c, rps, p50: wrkLatency(out, "50"), p99: wrkLatency(out, "99"), cpuUs: (cpu / requests) * 1e6, errors };
      httpRows.push(row);
      console.log(`${h.name.padEnd(26)} wrk -c${String(c).padEnd(4)} ${fmtRate(rps).padStart(9)}/s  p50 ${row.p50.padStart(8)}  p99 ${row.p99.padStart(8)}  cpu ${row.cpuUs.toFixed(2)} µs  ${errors}`);
    }
  } finally {
    await server.stop();
  }
}

// ---- mitata microbenchmarks, under both runtimes ------------------------------------------

const micro: string[] = [];
for (const file of ["ffi", "task", "stream"]) {
  for (const [runtime, argv] of [["Deno", [DENO, "run", "-A"]], ["Bun", [BUN]]] as const) {
    console.log(`mitata: bench/${file}.bench.ts under ${runtime}`);
    const out = execFileSync(argv[0], [...argv.slice(1), `${root}bench/${file}.bench.ts`], {
      encoding: "utf8",
      env: { ...process.env, MITATA_FORMAT: "markdown" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    micro.push(`### bench/${file}.bench.ts, ${runtime}\n\n${out.split("\n").filter((l) => l.startsWith("|")).join("\n")}`);
  }
}

// ---- the report --------------------------------------------------------------------------

function fmtRate(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(1)} k` : n.toFixed(0);
}


const echoTable = table(
  ["server", "mode", "rate", "p50 µs", "p99 µs", "server CPU µs / op", "RSS MiB", "errors", "vs runtime's own API"],
  rows.map((r) => {
    const own = r.server.zev ? (r.server.runtime === "deno" ? "Deno.listen" : "Bun.listen") : undefined;
    const paired = (metric: (x: Omit<Row, "server" | "mode">) => number) => pairedRatio(r.server.name, own!, r.mode, metric).toFixed(2);
    const vs = own
      ? r.mode.startsWith("accept")
        ? `rate ${paired((x) => x.rate)}x, CPU ${paired((x) => x.cpuUs)}x`
        : `CPU ${paired((x) => x.cpuUs)}x, p50 ${paired((x) => x.p50)}x`
      : "";
    return [r.server.name, r.mode, `${fmtRate(r.rate)}/s`, r.p50.toFixed(0), r.p99.toFixed(0), r.cpuUs.toFixed(2), r.rssMiB.toFixed(0), r.errors, vs];
  }),
);
const httpTable = table(
  ["server", "wrk connections", "requests/s", "p50", "p99", "server CPU µs / request", "errors"],
  httpRows.map((r) => [r.name, r.connections, fmtRate(r.rps), r.p50, r.p99, r.cpuUs.toFixed(2), r.errors]),
);

// The goals of the performance issue, each as a ratio from this run.
const goal = (text: string, value: number, limit: number, atMost = true) =>
  `| ${text} | ${value.toFixed(2)}x | ${atMost ? "≤" : "≥"} ${limit}x | ${(atMost ? value <= limit : value >= limit) ? "reached" : "not reached"} |`;
const e64 = "echo, 64 connections", e1 = "echo, 1 connection", acc = "accept (16 clients)";
const floorName = "Zig floor (epoll, no JS)";
const cpu = (x: Omit<Row, "server" | "mode">) => x.cpuUs;
const goals = [
  "| goal | measured (median of per-round ratios) | target | |",
  "| --- | --- | --- | --- |",
  goal("CPU per round trip at 64 conns: zev (Bun) / Bun.listen", pairedRatio("zev (Bun)", "Bun.listen", e64, cpu), 1.0),
  goal("CPU per round trip at 64 conns: zev (Deno) / Deno.listen", pairedRatio("zev (Deno)", "Deno.listen", e64, cpu), 0.8),
  goal("CPU per round trip at 64 conns: zev (Bun) / Zig floor", pairedRatio("zev (Bun)", floorName, e64, cpu), 1.25),
  goal("CPU per round trip at 64 conns: zev (Deno) / Zig floor", pairedRatio("zev (Deno)", floorName, e64, cpu), 1.25),
  goal("p50 at 1 connection: zev (Bun) / Bun.listen", pairedRatio("zev (Bun)", "Bun.listen", e1, (x) => x.p50), 1.1),
  goal("p50 at 1 connection: zev (Deno) / Deno.listen", pairedRatio("zev (Deno)", "Deno.listen", e1, (x) => x.p50), 1.1),
  goal("accept rate: zev (Bun) / Bun.listen", pairedRatio("zev (Bun)", "Bun.listen", acc, (x) => x.rate), 1.0, false),
  goal("accept rate: zev (Deno) / Deno.listen", pairedRatio("zev (Deno)", "Deno.listen", acc, (x) => x.rate), 1.0, false),
].join("\n");

const version = (argv: string[]) => {
  try {
    return execFileSync(argv[0], argv.slice(1), { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).split("\n")[0].trim();
  } catch (error) {
    // wrk prints its version and exits 1.
    return String((error as { stdout?: string }).stdout ?? "?").split("\n")[0].trim() || "?";
  }
};
const cpuModel = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "?";
const machine = `${cpuModel}, ${version(["nproc"])} CPUs, ${(Number(/MemTotal:\s+(\d+)/.exec(readFileSync("/proc/meminfo", "utf8"))?.[1]) / 2 ** 20).toFixed(0)} GiB, Linux ${version(["uname", "-r"])}`;
const versions = [
  `Deno ${version([DENO, "--version"]).replace(/^deno /, "")}`,
  `Bun ${version([BUN, "--version"])}`,
  `Node ${version(["node", "--version"])}`,
  `Zig ${version([`${root}.tools/venv/bin/python`, "-m", "ziglang", "version"])}`,
  version(["wrk", "--version"]).split(" [")[0],
].join(", ");

const report = `# zev benchmark results

Produced by \`make bench\` (\`bun bench/run.ts --seconds ${SECONDS} --repeat ${REPEAT}\`) on ${new Date().toISOString().slice(0, 10)}.

- Machine: ${machine}
- Versions: ${versions}
- Method: every server runs pinned to CPU 0 (all started at once; only the one under load
  works); the load (bench/load.zig, or wrk) runs pinned to CPU 1. Each measurement follows
  a ${WARMUP} s warm-up and lasts ${SECONDS} s. Each mode is measured in ${REPEAT} rounds that visit
  every server back to back; figures are medians, and ratios are medians of the ratios
  within each round, so that the machine's drift between minutes cancels out. Echo
  messages are 64 bytes, one in flight per connection. "Server CPU µs / op" is the
  server process's user + system time over the run divided by round trips (or by accepted
  connections, or by HTTP requests).

## TCP echo

${echoTable}

## Goals

${goals}

Where the time goes, what was cut and what would close the remaining gaps: bench/PROFILE.md.

## Idle (all servers together, ${IDLE_SECONDS} s with nothing to do, after serving the loads above)

CPU is the server process's user + system time; wakeups are the context switches of all
its threads (the runtimes' own housekeeping threads included).

${table(["server", `CPU in ${IDLE_SECONDS} s`, "wakeups / s"], idleRows)}

## HTTP (examples/http.ts against the runtimes' own servers, wrk -t1)

${httpTable}

## Microbenchmarks (mitata)

${micro.join("\n\n")}
`;
writeFileSync(`${root}bench/RESULTS.md`, report);
console.log(`\n${report}`);
console.log("wrote bench/RESULTS.md");
