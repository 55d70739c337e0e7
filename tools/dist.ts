/**
 * `make dist`: the packages, from the seven libraries `zig build dist` left in
 * zig-out/dist/, into dist/:
 *
 * - dist/npm/zev: the package compiled to JavaScript with its type declarations (Deno
 *   does not strip types under node_modules), and an optional dependency on each
 *   platform package;
 * - dist/npm/lib-PLATFORM: one package per platform holding its library, with `os`,
 *   `cpu` and, on Linux, `libc`;
 * - dist/jsr: exactly the files `deno publish` uploads to JSR as `@zev/zev`, each
 *   platform's library inside a module of its own (ffi/embedded/PLATFORM.ts).
 *
 * The version is written once, in package.json; every manifest is made from it (and
 * `make test` checks that the committed ones agree: tests/install/run.ts).
 *
 *   bun tools/dist.ts
 */

import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { join } from "node:path";

const root = new URL("../", import.meta.url).pathname;
const out = join(root, "dist");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const version: string = pkg.version;

/** Every platform zev ships: its library file, and the npm fields that select it. */
export const platforms = [
  { name: "linux-x86_64-gnu", os: "linux", cpu: "x64", libc: "glibc" },
  { name: "linux-x86_64-musl", os: "linux", cpu: "x64", libc: "musl" },
  { name: "linux-aarch64-gnu", os: "linux", cpu: "arm64", libc: "glibc" },
  { name: "linux-aarch64-musl", os: "linux", cpu: "arm64", libc: "musl" },
  { name: "macos-x86_64", os: "darwin", cpu: "x64" },
  { name: "macos-aarch64", os: "darwin", cpu: "arm64" },
  { name: "freebsd-x86_64", os: "freebsd", cpu: "x64" },
].map((p) => ({ ...p, file: `libzev-${p.name}.${p.os === "darwin" ? "dylib" : "so"}`, npm: `@zev/lib-${p.name}` }));

/** The TypeScript of the package, as both the npm and the JSR package carry it. */
const sources = ["mod.ts", "src", "ffi", "README.md", "LICENSE"];

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

rmSync(out, { recursive: true, force: true });

// ---- the libraries, and their platform packages ---------------------------------------
console.log(`zev ${version}: libraries (zig-out/dist/, stripped)`);
let total = 0;
for (const p of platforms) {
  const lib = join(root, "zig-out/dist", p.file);
  const size = statSync(lib).size;
  total += size;
  console.log(`  ${p.file.padEnd(32)} ${(size / 1024).toFixed(1).padStart(7)} KiB`);
  const dir = join(out, "npm", `lib-${p.name}`);
  mkdirSync(dir, { recursive: true });
  cpSync(lib, join(dir, p.file));
  writeFileSync(
    join(dir, "package.json"),
    json({
      name: p.npm,
      version,
      description: `zev's native library for ${p.name} (installed by the zev package, as an optional dependency)`,
      license: pkg.license,
      os: [p.os],
      cpu: [p.cpu],
      ...(p.libc ? { libc: [p.libc] } : {}),
      files: [p.file],
    }),
  );
}
console.log(`  ${"all seven".padEnd(32)} ${(total / 1024).toFixed(1).padStart(7)} KiB`);

// ---- npm: zev ---------------------------------------------------------------------------
// TypeScript compiled as is (no checking: `make test` checks), relative `.ts` specifiers
// made `.js`, including the computed ones tsc does not rewrite (the runtime's loader,
// Bun's parking worker).
const npmMain = join(out, "npm", "zev");
const tsconfig = join(out, "tsconfig.npm.json");
writeFileSync(
  tsconfig,
  json({
    compilerOptions: {
      target: "es2022",
      module: "esnext",
      moduleResolution: "bundler",
      allowImportingTsExtensions: true,
      rewriteRelativeImportExtensions: true,
      declaration: true,
      noCheck: true,
      skipLibCheck: true,
      rootDir: root,
      outDir: npmMain,
    },
    files: ["mod.ts", "ffi/bun.ts", "ffi/deno.ts", "ffi/park_worker.ts"].map((f) => join(root, f)),
  }),
);
execFileSync(join(root, "node_modules/.bin/tsc"), ["-p", tsconfig], { stdio: "inherit" });
rmSync(tsconfig);
const walk = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((
    e,
  ) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
for (const file of walk(npmMain)) {
  // The runtime-specific modules are loaded by name at run time; their declarations
  // would name Deno's and Bun's own types, which a user of the other runtime lacks.
  if (/ffi\/(bun|deno|park_worker)\.d\.ts$/.test(file)) {
    rmSync(file);
    continue;
  }
  if (!/\.(js|d\.ts)$/.test(file)) continue;
  const text = readFileSync(file, "utf8");
  writeFileSync(file, text.replace(/(["'])(\.{1,2}\/[^"'\n]+)\.ts\1/g, "$1$2.js$1"));
}
for (const f of ["README.md", "LICENSE"]) cpSync(join(root, f), join(npmMain, f));
writeFileSync(
  join(npmMain, "package.json"),
  json({
    name: "zev",
    version,
    description: pkg.description,
    license: pkg.license,
    keywords: pkg.keywords,
    type: "module",
    exports: { ".": { types: "./mod.d.ts", default: "./mod.js" } },
    module: "./mod.js",
    types: "./mod.d.ts",
    files: ["mod.js", "mod.d.ts", "src", "ffi", "README.md", "LICENSE"],
    optionalDependencies: Object.fromEntries(platforms.map((p) => [p.npm, version])),
  }),
);

// ---- JSR: @zev/zev ------------------------------------------------------------------------
const jsr = join(out, "jsr");
for (const s of sources) cpSync(join(root, s), join(jsr, s), { recursive: true });
// The root's deno.json names no package, so that `deno publish` run there by mistake
// fails; the package is this folder.
writeFileSync(
  join(jsr, "deno.json"),
  json({
    name: "@zev/zev",
    version,
    license: pkg.license,
    exports: "./mod.ts",
    publish: { include: [...sources, "deno.json"] },
  }),
);
mkdirSync(join(jsr, "ffi", "embedded"), { recursive: true });
let embedded = 0;
for (const p of platforms) {
  const bytes = readFileSync(join(root, "zig-out/dist", p.file));
  const text = `// Generated by \`make dist\`: zev's native library for ${p.name}, in base64.\n\n` +
    `import type { Embedded } from "../embedded.ts";\n\n` +
    `/** zev ${version}'s library for ${p.name}. */\n` +
    `const library: Embedded = {\n  version: "${version}",\n  sha256: "${
      createHash("sha256").update(bytes).digest("hex")
    }",\n` +
    `  base64: "${Buffer.from(bytes).toString("base64")}",\n};\n\nexport default library;\n`;
  writeFileSync(join(jsr, "ffi", "embedded", `${p.name}.ts`), text);
  embedded += text.length;
}
// A process imports its own platform's module only. The specifier is computed: Deno
// fetches every dynamic import whose specifier is a literal before anything runs (all
// seven libraries, 870 KB); a template it fetches when it runs, one module (and
// \`deno compile\` of a local copy still finds the modules the template matches).
writeFileSync(
  join(jsr, "ffi", "embedded.ts"),
  `/**
 * The native libraries that travel inside this JSR package, one module per platform, of
 * which a process imports only its own (generated by \`make dist\`).
 *
 * @module
 */

/** A library carried as a module: its bytes in base64, their SHA-256, and zev's version. */
export interface Embedded {
  version: string;
  sha256: string;
  base64: string;
}

const PLATFORMS: readonly string[] = ${JSON.stringify(platforms.map((p) => p.name))};

/** The library embedded for \`platform\` (e.g. \`linux-x86_64-gnu\`), if this package has one. */
export async function embeddedLibrary(platform: string): Promise<Embedded | undefined> {
  if (!PLATFORMS.includes(platform)) return undefined;
  return (await import(\`./embedded/\${platform}.ts\`)).default;
}
`,
);
console.log(`JSR package dist/jsr: ${(embedded / 1024).toFixed(0)} KiB of embedded libraries`);
console.log(`npm packages dist/npm: zev and ${platforms.length} platform packages`);
