/**
 * `make check`: the TypeScript's import graph has no circle, and `src/` imports only
 * downward through its layers (core, tasks, net, server: docs/ARCHITECTURE.md).
 *
 *   bun tools/check_imports.ts
 *
 * @module
 */

import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import process from "node:process";

const root = resolve(new URL("..", import.meta.url).pathname);
const LAYERS = ["core", "tasks", "net", "server"];

function files(dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true })
    .map(String)
    .filter((f) => f.endsWith(".ts"))
    .map((f) => join(dir, f));
}

/** The project files a file imports (relative specifiers only; type-only imports too). */
function importsOf(file: string): string[] {
  // Comments hold examples that import too: not edges of the graph.
  const text = readFileSync(join(root, file), "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+\.ts)"/g)) {
    out.push(relative(root, resolve(root, dirname(file), m[1])));
  }
  return out;
}

const all = ["mod.ts", ...files("src"), ...files("ffi")];
const graph = new Map(all.map((f) => [f, importsOf(f)]));
const problems: string[] = [];

// Layers: a file in src/<layer>/ imports from its own layer or those below it.
const layerOf = (f: string) => (f.startsWith("src/") ? LAYERS.indexOf(f.split("/")[1]) : -1);
for (const [file, deps] of graph) {
  if (file.startsWith("src/") && layerOf(file) < 0) {
    problems.push(`${file}: not in a layer folder (${LAYERS.join(", ")})`);
  }
  for (const dep of deps) {
    if (layerOf(file) >= 0 && layerOf(dep) > layerOf(file)) problems.push(`${file} imports ${dep}, a layer above it`);
  }
}

// Circles, by depth-first search.
const state = new Map<string, "open" | "done">();
const path: string[] = [];
function visit(f: string): void {
  if (state.get(f) === "done") return;
  if (state.get(f) === "open") {
    problems.push(`import circle: ${[...path.slice(path.indexOf(f)), f].join(" → ")}`);
    return;
  }
  state.set(f, "open");
  path.push(f);
  for (const dep of graph.get(f) ?? []) visit(dep);
  path.pop();
  state.set(f, "done");
}
for (const f of graph.keys()) visit(f);

if (problems.length > 0) {
  for (const p of problems) console.error(`check_imports: ${p}`);
  process.exit(1);
}
console.log(`check_imports: ${graph.size} files, no circle, layers in order`);
