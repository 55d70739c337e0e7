/**
 * TLS (`make bench`, its TLS section): zev's TLS (the system's OpenSSL 3 inside the loop)
 * in Deno and in Bun, beside `Deno.listenTls`, `Bun.listen({ tls })` and node `tls`, as
 * echo servers with the same certificate (P-256):
 *
 * - throughput: 16 KiB messages echoed over 1 and 8 connections (bench/tls_client.ts,
 *   zev's client in Bun, the same for every server), in MB/s and server CPU per MB;
 * - handshakes: `openssl s_time -new` (a full TLS 1.3 handshake per connection, one at a
 *   time), in handshakes per second and server CPU per handshake.
 *
 * Servers on CPU 0, the load on CPU 1 (pinned), then again with nothing pinned; each
 * figure the median of `--repeat` rounds that visit every server back to back. Writes
 * bench/TLS.md and prints it.
 *
 *   bun bench/tls.ts [--seconds 3] [--repeat 3]
 *
 * @module
 */

import process from "node:process";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { BUN, DENO, example, root, type Server, startServer, table } from "../tests/harness/server.ts";
import { certs } from "../tests/harness/certs.ts";
import { median } from "./curve.ts";

const args = process.argv.slice(2);
const SECONDS = Number(args[args.indexOf("--seconds") + 1] || 3);
const REPEAT = Number(args[args.indexOf("--repeat") + 1] || 3);
const c = certs();
const TLS = ["--tls-cert", c.server.certFile, "--tls-key", c.server.keyFile];

interface Entry {
  name: string;
  argv: string[];
  /** The runtime's own TLS this zev server is measured against. */
  baseline?: string;
}
const servers: Entry[] = [
  { name: "zev (Bun)", argv: example("bun", "echo", TLS), baseline: "Bun.listen({ tls })" },
  { name: "Bun.listen({ tls })", argv: [BUN, `${root}bench/servers/bun_listen.ts`, ...TLS] },
  { name: "zev (Deno)", argv: example("deno", "echo", TLS), baseline: "Deno.listenTls" },
  {
    name: "Deno.listenTls",
    argv: [DENO, "run", "--allow-net", "--allow-read", `${root}bench/servers/deno_listen.ts`, ...TLS],
  },
  { name: "node tls", argv: ["node", `${root}bench/servers/node_net.mjs`, ...TLS] },
];

const pin = (cpu: number | undefined, argv: string[]) =>
  cpu === undefined ? argv : ["taskset", "-c", String(cpu), ...argv];

function run(argv: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(argv[0], argv.slice(1), { maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${argv.join(" ")}: ${error.message}\n${stderr}`));
      else resolve(stdout);
    })
  );
}

interface Sample {
  /** MB/s or handshakes/s. */
  rate: number;
  /** Server CPU µs per MB or per handshake. */
  cpuUs: number;
}

async function throughput(s: Server, connections: number, loadCpu: number | undefined): Promise<Sample> {
  const cpu0 = s.cpuSeconds();
  const out = await run(
    pin(loadCpu, [
      BUN,
      `${root}bench/tls_client.ts`,
      "--port",
      String(s.port),
      "--ca",
      c.caFile,
      "--connections",
      String(connections),
      "--seconds",
      String(SECONDS),
    ]),
  );
  const cpu = s.cpuSeconds() - cpu0;
  const { bytes, seconds } = JSON.parse(out.trim().split("\n").pop()!);
  const mb = bytes / 1e6;
  return { rate: mb / seconds, cpuUs: (cpu * 1e6) / mb };
}

async function handshakes(s: Server, loadCpu: number | undefined): Promise<Sample> {
  const cpu0 = s.cpuSeconds();
  const out = await run(
    pin(loadCpu, ["openssl", "s_time", "-connect", `127.0.0.1:${s.port}`, "-new", "-time", String(SECONDS)]),
  );
  const cpu = s.cpuSeconds() - cpu0;
  const m = /(\d+) connections in (\d+) real seconds/.exec(out);
  if (!m) throw new Error(`s_time said: ${out}`);
  const n = Number(m[1]);
  return { rate: n / Number(m[2]), cpuUs: (cpu * 1e6) / n };
}

const loads = [
  {
    name: "throughput, 1 connection",
    unit: "MB/s",
    per: "MB",
    run: (s: Server, cpu?: number) => throughput(s, 1, cpu),
  },
  {
    name: "throughput, 8 connections",
    unit: "MB/s",
    per: "MB",
    run: (s: Server, cpu?: number) => throughput(s, 8, cpu),
  },
  { name: "full handshakes", unit: "handshakes/s", per: "handshake", run: handshakes },
];

const sections: string[] = [];
for (const pinned of [true, false]) {
  const serverCpu = pinned ? 0 : undefined, loadCpu = pinned ? 1 : undefined;
  const running = new Map<string, Server>();
  for (const e of servers) running.set(e.name, await startServer(e.name, pin(serverCpu, e.argv)));
  // Warm every server (its JIT) before measuring.
  for (const s of running.values()) await throughput(s, 2, loadCpu);
  const samples = new Map<string, Sample[]>();
  for (let rep = 0; rep < REPEAT; rep++) {
    const order = rep % 2 === 0 ? servers : [...servers].reverse();
    for (const load of loads) {
      for (const e of order) {
        const sample = await load.run(running.get(e.name)!, loadCpu);
        const key = `${load.name}|${e.name}`;
        samples.set(key, [...(samples.get(key) ?? []), sample]);
        console.log(
          `[${rep + 1}/${REPEAT}] ${pinned ? "pinned" : "unpinned"} ${load.name.padEnd(26)} ${e.name.padEnd(20)} ${
            sample.rate.toFixed(1)
          } ${load.unit}, ${sample.cpuUs.toFixed(0)} µs/${load.per}`,
        );
      }
    }
  }
  for (const s of running.values()) await s.stop();
  const rows: (string | number)[][] = [];
  for (const load of loads) {
    for (const e of servers) {
      const xs = samples.get(`${load.name}|${e.name}`)!;
      const rate = median(xs.map((x) => x.rate)), cpu = median(xs.map((x) => x.cpuUs));
      let vs = "";
      if (e.baseline) {
        const b = samples.get(`${load.name}|${e.baseline}`)!;
        // Ratios within each round, then their median.
        const cpuRatio = median(xs.map((x, i) => x.cpuUs / b[i].cpuUs));
        const rateRatio = median(xs.map((x, i) => x.rate / b[i].rate));
        vs = `${cpuRatio.toFixed(2)}×, ${rateRatio.toFixed(2)}×`;
      }
      rows.push([
        load.name,
        e.name,
        `${rate.toFixed(0)} ${load.unit}`,
        `${cpu.toFixed(0)} µs/${load.per}`,
        vs,
      ]);
    }
  }
  sections.push(
    `## ${pinned ? "Pinned (servers on CPU 0, the load on CPU 1)" : "Nothing pinned"}\n\n` +
      table(["load", "server", "rate", "server CPU", "zev / runtime's own: CPU, rate"], rows),
  );
}

const report = `# TLS benchmark

\`bun bench/tls.ts --seconds ${SECONDS} --repeat ${REPEAT}\` (part of \`make bench\`), ${
  new Date().toISOString().slice(0, 10)
}.
Echo servers over TLS with one P-256 certificate: zev (examples/echo.ts --tls-cert/--tls-key:
the system's OpenSSL 3 inside the loop) in Bun and in Deno, \`Bun.listen({ tls })\`,
\`Deno.listenTls\` and node \`tls\`. Throughput: 16 KiB messages echoed, at most 4 in flight
per connection, by zev's TLS client in Bun (bench/tls_client.ts, the same for every server);
handshakes: \`openssl s_time -new\` (one full handshake after another). Medians of ${REPEAT}
rounds; ratios are medians of the ratios within a round (CPU: under 1 is cheaper; rate: over 1
is faster).

${sections.join("\n\n")}
`;
writeFileSync(`${root}bench/TLS.md`, report);
console.log(`\n${report}`);
