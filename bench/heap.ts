/**
 * What one held, idle connection costs in JavaScriptCore's heap, object by object (the
 * table in docs/limits.md, "What an idle connection holds"): serves examples/echo.ts's
 * handler in this process, holds N connections open with `zev-load hold`, and compares
 * two heap snapshots, each after a full collection, taken before and while they are held.
 *
 *   bun bench/heap.ts [--connections 2000]
 *
 * Bun only (`Bun.generateHeapSnapshot`); part of `make bench`.
 */

import process from "node:process";
import { spawn } from "node:child_process";
import { serve, type Stream } from "../mod.ts";
import { LOAD } from "../tests/harness/server.ts";

const i = process.argv.indexOf("--connections");
const N = i >= 0 ? Number(process.argv[i + 1]) : 2000;
if (!("Bun" in globalThis)) throw new Error("bench/heap.ts: run it with Bun (it reads JavaScriptCore's heap)");
const bun = (globalThis as unknown as { Bun: { gc(sync: boolean): void; generateHeapSnapshot(f: "v8"): string } }).Bun;

// examples/echo.ts's handler, without its error filter (no error is expected here).
async function echo(stream: Stream): Promise<void> {
  for (let chunk; (chunk = await stream.read()) !== null;) await stream.write(chunk);
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

/** Objects in the heap now, after a full collection: count and bytes by type and class name. */
function census(): Map<string, { count: number; bytes: number }> {
  bun.gc(true);
  const s = JSON.parse(bun.generateHeapSnapshot("v8")) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const [type, name, size] = ["type", "name", "self_size"].map((f) => fields.indexOf(f));
  const out = new Map<string, { count: number; bytes: number }>();
  for (let n = 0; n < s.nodes.length; n += fields.length) {
    const key = `${s.strings[s.nodes[n + name]]} (${types[s.nodes[n + type]]})`;
    const entry = out.get(key) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += s.nodes[n + size];
    out.set(key, entry);
  }
  return out;
}

const server = serve({ hostname: "127.0.0.1", port: 0 }, echo);
const before = census();
const child = spawn(LOAD, ["hold", "--port", String(server.addr.port), "--connections", String(N), "--hold", "3"], {
  stdio: ["ignore", "pipe", "inherit"],
});
let out = "";
const held = new Promise<void>((resolve) =>
  child.stdout!.on("data", (d) => {
    out += d;
    if (out.includes("held connections=")) resolve();
  })
);
await held;
await new Promise((r) => setTimeout(r, 500));
const during = census();
const rows = [...during].map(([key, now]) => {
  const was = before.get(key) ?? { count: 0, bytes: 0 };
  return { key, count: (now.count - was.count) / N, bytes: (now.bytes - was.bytes) / N };
}).filter((r) => r.count >= 0.5).sort((a, b) => b.bytes - a.bytes);
console.log(`JavaScriptCore heap per held connection (${N} held, examples/echo.ts's handler):`);
for (const r of rows) console.log(`${r.bytes.toFixed(0).padStart(6)} B  ${r.count.toFixed(2).padStart(5)} × ${r.key}`);
console.log(`${rows.reduce((a, r) => a + r.bytes, 0).toFixed(0).padStart(6)} B  in all`);
await new Promise((r) => child.once("exit", r));
await server.close();
