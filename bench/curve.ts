/**
 * The load curve: echo servers measured at paced loads (a fixed request rate spread over
 * N connections, as real servers live) and at saturation, side by side, with CPU per
 * request as the figure that matters; and the other loads of `make bench` (one
 * connection in a closed loop, connection churn). Shared by `make bench` (bench/run.ts)
 * and the wake study (bench/wake.ts).
 *
 * Every server is started once, pinned to CPU 0, and the load runs pinned to CPU 1 (CPU
 * per request is steadiest so); or, with `pinned: false`, neither is pinned, as users run
 * them (a stall that pinning hides shows there). Each level is measured in `repeat`
 * rounds that visit every server back to back (alternating direction), and ratios are
 * medians of the ratios within a round: this shared machine drifts by tens of percent
 * over minutes, and a drift must not fall on one server only.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { load, type Server, startServer } from "../tests/harness/server.ts";

/** A load the generator (bench/load.zig) puts on a server. */
export interface Level {
  name: string;
  /** Arguments of zev-load, without --port and --duration. */
  args: string[];
  /** What one unit of work is in its JSON result: a round trip, or a connect-echo-close cycle. */
  unit: "round_trips" | "cycles";
}

/** An echo load: `connections`, paced at `rate` requests/s over all of them (0: closed loop). */
export function echoLevel(connections: number, rate: number): Level {
  const args = ["echo", "--connections", String(connections)];
  if (rate > 0) args.push("--rate", String(rate));
  const name = rate === 0 ? `${connections} × saturation` : `${connections} × ${rate.toLocaleString("en-US")} req/s`;
  return { name, args, unit: "round_trips" };
}

/** The curve of the performance issue: light, medium, busy, saturation. */
export const LEVELS: Level[] = [
  echoLevel(1, 1_000),
  echoLevel(8, 5_000),
  echoLevel(16, 20_000),
  echoLevel(64, 50_000),
  echoLevel(64, 0),
];

export function levelName(l: Level): string {
  return l.name;
}

export interface EchoServer {
  name: string;
  argv: string[];
  env?: Record<string, string>;
  /** The server this one is compared with (a runtime's own sockets). */
  baseline?: string;
}

export interface Sample {
  /** Requests answered (or connections served) per second. */
  rate: number;
  p50: number;
  p99: number;
  /** Server CPU (user + system, every thread) per answered request (or connection), µs. */
  cpuUs: number;
  /** Server CPU over the run, as a share of one core. */
  cpuShare: number;
  /** Times the server was put on a CPU per answered request: 1 when each request wakes it. */
  runsPerReq: number;
  errors: number;
  /** Paced sends whose slot came before the previous echo (the server fell behind). */
  late: number;
  /** The server's resident memory after the run, bytes. */
  rss: number;
}

const pin = (cpu: number, argv: string[]) => ["taskset", "-c", String(cpu), ...argv];

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function measure(server: Server, level: Level, seconds: number, loadCpu?: number): Promise<Sample> {
  const args = [...level.args, "--port", String(server.port)];
  // Warm-up (JIT, pools) with the same shape of load, then the measured run.
  await load([...args, "--duration", "1"], loadCpu);
  const cpu0 = server.cpuSeconds();
  const runs0 = server.runs();
  const t0 = performance.now();
  const r = await load([...args, "--duration", String(seconds)], loadCpu);
  const wall = (performance.now() - t0) / 1000;
  const cpu = server.cpuSeconds() - cpu0;
  const runs = server.runs() - runs0;
  const answered = Number(r[level.unit]);
  return {
    rate: Number(r.rtps ?? r.cps),
    p50: Number(r.p50_us),
    p99: Number(r.p99_us),
    // The CPU window includes connecting and closing; the requests are what the load saw.
    cpuUs: answered > 0 ? (cpu / answered) * 1e6 : NaN,
    rss: server.rssBytes(),
    cpuShare: cpu / wall,
    runsPerReq: answered > 0 ? runs / answered : NaN,
    errors: Number(r.errors),
    late: Number(r.late ?? 0),
  };
}

/** CPU time of the whole machine so far, and how much of it the hypervisor stole. */
function cpuTicks(): { total: number; steal: number } {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7] ?? 0 };
}

/**
 * Starts measuring steal: the share of the machine's CPU time that the hypervisor gave to
 * other guests. A run with much of it is a noisy run; the reports say how noisy.
 */
export function stealMeter(): () => number {
  const start = cpuTicks();
  return () => {
    const now = cpuTicks();
    return (now.steal - start.steal) / Math.max(1, now.total - start.total);
  };
}

export interface Curve {
  servers: EchoServer[];
  levels: Level[];
  /** samples.get(server)[level][round] */
  samples: Map<string, Sample[][]>;
  /** The share of CPU time stolen by the hypervisor during the whole run. */
  steal: number;
  /** Servers on CPU 0 and the load on CPU 1; false: nothing pinned. */
  pinned: boolean;
}

/**
 * Seconds of saturation (64 connections, closed loop) each server gets once, before the
 * curve. A server is measured as it runs for most of its life: warm. At 1,000 requests/s
 * JavaScriptCore takes about 20 s to finish compiling zev's hot path, on a JIT thread
 * that cost 6-7 µs per request meanwhile (docs/design/WAKE.md); charging that one-off cost to
 * whichever level comes first would measure start-up, not the level.
 */
export const WARM_SECONDS = 5;

/** Measures every server at every level, `repeat` rounds each, after one warm-up each. */
export async function measureCurve(
  servers: EchoServer[],
  levels: Level[],
  options: { seconds: number; repeat: number; log?: (line: string) => void; keep?: boolean; pinned?: boolean },
): Promise<Curve & { running: Map<string, Server> }> {
  const pinned = options.pinned ?? true;
  const loadCpu = pinned ? 1 : undefined;
  const running = new Map<string, Server>();
  const samples = new Map<string, Sample[][]>();
  const steal = stealMeter();
  try {
    for (const s of servers) {
      running.set(s.name, await startServer(s.name, pinned ? pin(0, s.argv) : s.argv, s.env));
      samples.set(s.name, levels.map(() => []));
    }
    for (const server of running.values()) {
      await load(
        [...echoLevel(64, 0).args, "--port", String(server.port), "--duration", String(WARM_SECONDS)],
        loadCpu,
      );
    }
    for (const [li, level] of levels.entries()) {
      for (let rep = 1; rep <= options.repeat; rep++) {
        const order = rep % 2 === 1 ? servers : [...servers].reverse();
        for (const s of order) {
          const sample = await measure(running.get(s.name)!, level, options.seconds, loadCpu);
          samples.get(s.name)![li].push(sample);
          options.log?.(
            `[${rep}/${options.repeat}] ${s.name.padEnd(28)} ${levelName(level).padEnd(24)} ${
              sample.rate.toFixed(0).padStart(7)
            }/s  ` +
              `cpu ${(sample.cpuShare * 100).toFixed(1).padStart(5)} %  ${
                sample.cpuUs.toFixed(2).padStart(7)
              } µs/req  ` +
              `p50 ${sample.p50.toFixed(0).padStart(5)} µs  p99 ${
                sample.p99.toFixed(0).padStart(6)
              } µs  late ${sample.late}  errors ${sample.errors}`,
          );
        }
      }
    }
  } catch (error) {
    for (const server of running.values()) await server.stop();
    throw error;
  }
  // `keep`: the caller measures the idle servers next, and stops them.
  if (!options.keep) { for (const server of running.values()) await server.stop(); }
  return { servers, levels, samples, running, steal: steal(), pinned };
}

/** Median over rounds of `metric(a) / metric(b)` at a level, both measured in the same round. */
export function pairedRatio(curve: Curve, a: string, b: string, level: number, metric: (s: Sample) => number): number {
  const as = curve.samples.get(a)![level], bs = curve.samples.get(b)![level];
  return median(as.map((s, i) => metric(s) / metric(bs[i])));
}

/** The median of a metric for a server at a level. */
export function medianOf(curve: Curve, server: string, level: number, metric: (s: Sample) => number): number {
  return median(curve.samples.get(server)![level].map(metric));
}

/** One markdown row per server and level (of `levels`, default all): rate, CPU, latency, and the ratio to its baseline. */
export function curveTable(
  curve: Curve,
  levels: Level[] = curve.levels,
  baselineLabel = "vs its runtime's own sockets (CPU, p50)",
): string {
  const header = [
    "load",
    "server",
    "answered/s",
    "server CPU",
    "CPU µs / request",
    "runs / request",
    "p50 µs",
    "p99 µs",
    baselineLabel,
  ];
  const rows: string[][] = [];
  for (const level of levels) {
    const li = curve.levels.indexOf(level);
    for (const s of curve.servers) {
      const m = (f: (x: Sample) => number) => medianOf(curve, s.name, li, f);
      const vs = s.baseline
        ? `${pairedRatio(curve, s.name, s.baseline, li, (x) => x.cpuUs).toFixed(2)}×, ${
          pairedRatio(curve, s.name, s.baseline, li, (x) => x.p50).toFixed(2)
        }×`
        : "";
      rows.push([
        levelName(level),
        s.name,
        m((x) => x.rate).toFixed(0),
        `${(m((x) => x.cpuShare) * 100).toFixed(1)} %`,
        m((x) => x.cpuUs).toFixed(2),
        m((x) => x.runsPerReq).toFixed(2),
        m((x) => x.p50).toFixed(0),
        m((x) => x.p99).toFixed(0),
        vs,
      ]);
    }
  }
  const lines = [header, header.map(() => "---"), ...rows];
  return lines.map((cells) => `| ${cells.join(" | ")} |`).join("\n");
}

/** `--name value` among a study script's arguments, or `fallback`. */
export function option(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
}

/** Prints how a study's curve was measured (the command, the runs, the steal), then its table. */
export function printStudy(command: string, curve: Curve, seconds: number, repeat: number, table: string): void {
  console.log(
    `\n${command} (every server warmed ${WARM_SECONDS} s at saturation first; ${seconds} s per run, ${repeat} rounds, medians; ` +
      `the hypervisor stole ${(curve.steal * 100).toFixed(0)} % of the machine's CPU time during the run)\n`,
  );
  console.log(table);
}

/**
 * The io_uring studies (bench/floors.ts, bench/backends.ts): `servers`, each io_uring one
 * with its epoll twin as baseline, along the curve and at 1, 8 and 512 connections in a
 * closed loop (`--unpinned`: nothing pinned); prints the table with io_uring against epoll.
 */
export async function ioUringStudy(
  script: string,
  args: string[],
  servers: EchoServer[],
  seconds: number,
  repeat: number,
): Promise<void> {
  const levels = [...LEVELS, echoLevel(1, 0), echoLevel(8, 0), echoLevel(512, 0)];
  const pinned = !args.includes("--unpinned");
  const curve = await measureCurve(servers, levels, { seconds, repeat, log: console.log, pinned });
  printStudy(
    `bun ${script} ${args.join(" ")}`,
    curve,
    seconds,
    repeat,
    curveTable(curve, levels, "io_uring vs epoll (CPU, p50)"),
  );
}
