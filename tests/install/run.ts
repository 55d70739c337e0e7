/**
 * zev installed as users install it, each case in an empty temporary directory with a
 * fresh package cache, against real registries on loopback (`make test-install`, run by
 * `make test` after `make dist`):
 *
 * - npm: every package of dist/npm published to a Verdaccio on 127.0.0.1; `bun add zev`,
 *   then a program that imports `zev` and serves one echo; the same in Deno through
 *   `npm:zev`; with both Linux packages present, a glibc process loads the glibc library
 *   and Bun's musl build the musl one;
 * - JSR: the files of dist/jsr (what `deno publish` uploads) served over HTTP on
 *   127.0.0.1 and imported as `jsr:@zev/zev` through an import map with a fresh DENO_DIR,
 *   so the module has no file path, exactly as from JSR: the README's example runs; two
 *   processes start at once on an empty cache; a corrupted cache file is detected and
 *   replaced;
 * - every error path: no platform package, a wrong ZEV_LIB, an unwritable cache
 *   directory, each with a message that says what to do;
 * - one version everywhere: package.json, deno.json, build.zig.zon and every manifest
 *   built from them.
 *
 *   bun tests/install/run.ts
 */

import process from "node:process";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";

const root = new URL("../../", import.meta.url).pathname;
const BUN = `${root}node_modules/.bin/bun`;
const BUN_MUSL = `${root}.tools/bun-musl/bin/bun`;
const DENO = `${root}node_modules/.bin/deno`;
const VERDACCIO = `${root}node_modules/.bin/verdaccio`;
const work = mkdtempSync(join(tmpdir(), "zev-install-"));
const children: ChildProcess[] = [];
let failures = 0;

function check(ok: boolean, what: string, detail = ""): void {
  if (ok) console.log(`  ok    ${what}`);
  else {
    failures++;
    console.log(
      `  FAIL  ${what}${detail ? `\n${detail.trim().split("\n").map((l) => `        ${l}`).join("\n")}` : ""}`,
    );
  }
}

interface Run {
  code: number | null;
  out: string;
}

function run(argv: string[], cwd: string, env: Record<string, string> = {}): Run {
  // A clean environment: none of the checkout's ZEV_* settings leak into an install.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ZEV_")));
  const r = spawnSync(argv[0], argv.slice(1), {
    cwd,
    env: { ...base, ...env } as NodeJS.ProcessEnv,
    encoding: "utf8",
    timeout: 180_000,
  });
  return { code: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

function runBoth(argv: string[], cwd: string, env: Record<string, string>): Promise<Run[]> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ZEV_")));
  const one = () =>
    new Promise<Run>((resolve) => {
      const c = spawn(argv[0], argv.slice(1), { cwd, env: { ...base, ...env } as NodeJS.ProcessEnv });
      let out = "";
      c.stdout!.on("data", (d) => (out += d));
      c.stderr!.on("data", (d) => (out += d));
      c.on("close", (code) => resolve({ code, out }));
    });
  return Promise.all([one(), one()]);
}

function freshDir(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

// ---- one version ---------------------------------------------------------------------------
console.log("one version everywhere");
const version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version;
const zon = /\.version = "([^"]+)"/.exec(readFileSync(join(root, "build.zig.zon"), "utf8"))?.[1];
check(
  JSON.parse(readFileSync(join(root, "deno.json"), "utf8")).version === undefined,
  "the root deno.json names no package and no version (the JSR package is dist/jsr)",
);
check(zon === version, `build.zig.zon is ${version}, as package.json (it says ${zon})`);
const npmDirs = readdirSync(join(root, "dist/npm"));
for (const d of npmDirs) {
  const m = JSON.parse(readFileSync(join(root, "dist/npm", d, "package.json"), "utf8"));
  const deps = Object.values(m.optionalDependencies ?? {});
  check(
    m.version === version && deps.every((v) => v === version),
    `dist/npm/${d} is ${version}, and so is every package it depends on`,
  );
}
check(
  JSON.parse(readFileSync(join(root, "dist/jsr/deno.json"), "utf8")).version === version,
  `dist/jsr/deno.json is ${version}`,
);
const embeddedVersions = readdirSync(join(root, "dist/jsr/ffi/embedded")).map((f) =>
  /version: "([^"]+)"/.exec(readFileSync(join(root, "dist/jsr/ffi/embedded", f), "utf8"))?.[1]
);
check(
  embeddedVersions.length === 7 && embeddedVersions.every((v) => v === version),
  `the 7 embedded libraries are ${version}`,
);

// The program users run: the README's example (the ts block after `<!-- example -->`),
// importing zev the way each install provides it.
const readme = readFileSync(join(root, "README.md"), "utf8");
const block = /<!-- example -->\s*```ts\n([\s\S]*?)```/.exec(readme)?.[1];
if (!block || !block.includes('from "zev"')) {
  throw new Error('README.md: no example block importing "zev" after <!-- example -->');
}
const EXAMPLE = (specifier: string) => block.replace('from "zev"', `from "${specifier}"`);

try {
  // ---- npm, through Verdaccio on loopback ----------------------------------------------------
  console.log("npm: every package published to a registry on 127.0.0.1");
  const reg = freshDir("registry");
  const port = 4873 + (process.pid % 1000);
  const registry = `http://127.0.0.1:${port}/`;
  writeFileSync(
    join(reg, "config.yaml"),
    [
      `storage: ${join(reg, "storage")}`,
      "auth: { htpasswd: { file: " + join(reg, "htpasswd") + ", max_users: -1 } }",
      "uplinks: {}",
      "packages:",
      "  '@zev/*': { access: $all, publish: $anonymous }",
      "  'zev': { access: $all, publish: $anonymous }",
      "log: { type: stdout, format: pretty, level: error }",
      "",
    ].join("\n"),
  );
  const verdaccio = spawn(VERDACCIO, ["--config", join(reg, "config.yaml"), "--listen", `127.0.0.1:${port}`], {
    stdio: "ignore",
  });
  children.push(verdaccio);
  for (let i = 0;; i++) {
    const up = await fetch(`${registry}-/ping`).then((r) => r.ok, () => false);
    if (up) break;
    if (i > 100) throw new Error("Verdaccio did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  const npmrc = join(reg, "npmrc");
  writeFileSync(npmrc, `//127.0.0.1:${port}/:_authToken=anonymous\nregistry=${registry}\n`);
  for (const d of npmDirs) {
    const r = run(["npm", "publish", "--userconfig", npmrc, "--registry", registry], join(root, "dist/npm", d));
    check(r.code === 0, `published dist/npm/${d}`, r.out);
  }

  console.log("bun add zev, in an empty directory with a fresh cache");
  const bunDir = freshDir("bun");
  writeFileSync(join(bunDir, "package.json"), "{}\n");
  writeFileSync(join(bunDir, "bunfig.toml"), `[install]\nregistry = "${registry}"\n`);
  const bunEnv = { BUN_INSTALL_CACHE_DIR: join(bunDir, ".cache") };
  let r = run([BUN, "add", "zev"], bunDir, bunEnv);
  check(r.code === 0, "bun add zev", r.out);
  writeFileSync(join(bunDir, "main.ts"), EXAMPLE("zev"));
  r = run([BUN, "main.ts"], bunDir);
  check(
    r.code === 0 && /echoed ping with .*@zev\/lib-linux-x86_64-gnu\/libzev-linux-x86_64-gnu\.so/.test(r.out),
    "the README's example runs under Bun, with the glibc package's library",
    r.out,
  );
  // Bun installs the package of the C library it runs on; the musl one is added by name.
  r = run([BUN_MUSL, "main.ts"], bunDir);
  check(
    r.code !== 0 && r.out.includes("the package @zev/lib-linux-x86_64-musl") &&
      r.out.includes("bun add @zev/lib-linux-x86_64-musl"),
    "Bun's musl build without the musl package: an error naming the package and the command that adds it",
    r.out,
  );
  r = run([BUN, "add", "@zev/lib-linux-x86_64-musl"], bunDir, bunEnv);
  check(r.code === 0, "bun add @zev/lib-linux-x86_64-musl", r.out);
  r = run([BUN, "main.ts"], bunDir);
  check(
    r.code === 0 && /libzev-linux-x86_64-gnu\.so/.test(r.out),
    "with both Linux packages, glibc Bun loads the glibc library",
    r.out,
  );
  r = run([BUN_MUSL, "main.ts"], bunDir);
  check(
    r.code === 0 && /echoed ping with .*libzev-linux-x86_64-musl\.so/.test(r.out),
    "with both Linux packages, Bun's musl build loads the musl library",
    r.out,
  );
  r = run([BUN, "main.ts"], bunDir, { ZEV_LIB: "/no/such/libzev.so" });
  check(
    r.code !== 0 && r.out.includes("ZEV_LIB is set to '/no/such/libzev.so', but no file exists there"),
    "a wrong ZEV_LIB: an error saying so",
    r.out,
  );
  r = run([BUN, "main.ts"], bunDir, { ZEV_LIB: join(bunDir, "package.json") });
  check(
    r.code !== 0 && r.out.includes(`cannot load ${join(bunDir, "package.json")}`),
    "ZEV_LIB naming a file that is no library: an error saying so",
    r.out,
  );
  rmSync(join(bunDir, "node_modules/@zev/lib-linux-x86_64-gnu"), { recursive: true });
  r = run([BUN, "main.ts"], bunDir);
  check(
    r.code !== 0 && r.out.includes("the package @zev/lib-linux-x86_64-gnu") &&
      r.out.includes("bun add @zev/lib-linux-x86_64-gnu"),
    "no platform package: an error naming it and the command that adds it",
    r.out,
  );
  // The types, as a Bun user's editor sees them: the package against bun-types.
  writeFileSync(
    join(bunDir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        module: "esnext",
        moduleResolution: "bundler",
        target: "es2022",
        allowImportingTsExtensions: true,
        types: ["bun-types"],
        typeRoots: [join(root, "node_modules")],
      },
      files: ["main.ts"],
    }),
  );
  r = run([join(root, "node_modules/.bin/tsc"), "-p", "tsconfig.json"], bunDir);
  check(r.code === 0, "the README's example type-checks against the installed package and bun-types", r.out);

  console.log("npm:zev in Deno, with a fresh DENO_DIR");
  const denoDir = freshDir("deno");
  writeFileSync(join(denoDir, "main.ts"), EXAMPLE("npm:zev"));
  const denoEnv = { DENO_DIR: join(denoDir, ".deno"), NPM_CONFIG_REGISTRY: registry };
  const denoFlags = [
    "run",
    "--minimum-dependency-age=0",
    "--allow-ffi",
    "--allow-read",
    "--allow-env",
    "--allow-net=127.0.0.1",
  ];
  r = run([DENO, ...denoFlags, "main.ts"], denoDir, denoEnv);
  check(
    r.code === 0 && /echoed ping with .*libzev-linux-x86_64-gnu\.so/.test(r.out),
    "the README's example runs under Deno from npm:zev",
    r.out,
  );

  // Deno's permissions, narrowed to what zev needs on this route: reading its library
  // (and /proc/self/maps, to tell glibc from musl), nothing of a checkout's paths.
  const libDir = (readdirSync(join(denoDir, ".deno"), { recursive: true }) as string[])
    .filter((f) => f.endsWith("libzev-linux-x86_64-gnu.so")).map((f) => join(denoDir, ".deno", f, ".."))[0];
  const narrow = denoFlags.map((f) => (f === "--allow-read" ? `--allow-read=${libDir},/proc/self/maps` : f));
  r = run([DENO, ...narrow, "main.ts"], denoDir, denoEnv);
  check(
    r.code === 0 && r.out.includes("echoed ping"),
    "npm:zev in Deno with --allow-read of the library's folder and /proc/self/maps only",
    r.out,
  );
  r = run([DENO, ...denoFlags.filter((f) => f !== "--allow-read"), "main.ts"], denoDir, denoEnv);
  check(
    r.code !== 0 &&
      r.out.includes(`zev: Deno may not read the native library ${join(libDir, "libzev-linux-x86_64-gnu.so")}`) &&
      r.out.includes("--allow-read="),
    "npm:zev in Deno without --allow-read: zev's own error, naming the flag",
    r.out,
  );

  // ---- JSR: the published file set, served over HTTP -----------------------------------------
  console.log("jsr:@zev/zev, served from dist/jsr over HTTP on 127.0.0.1, with a fresh DENO_DIR");
  const types: Record<string, string> = {
    ".ts": "application/typescript",
    ".json": "application/json",
    ".md": "text/markdown",
  };
  const jsrRoot = join(root, "dist/jsr");
  const fetched: string[] = [];
  const http = createServer((req, res) => {
    fetched.push(new URL(req.url!, "http://x").pathname);
    const file = join(jsrRoot, decodeURIComponent(new URL(req.url!, "http://x").pathname));
    if (!file.startsWith(jsrRoot) || !existsSync(file)) return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" }).end(readFileSync(file));
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const jsrPort = (http.address() as { port: number }).port;
  const jsrDir = freshDir("jsr");
  writeFileSync(
    join(jsrDir, "import_map.json"),
    JSON.stringify({ imports: { "jsr:@zev/zev": `http://127.0.0.1:${jsrPort}/mod.ts` } }),
  );
  writeFileSync(join(jsrDir, "main.ts"), EXAMPLE("jsr:@zev/zev"));
  const cache = join(jsrDir, "cache");
  const jsrEnv = { DENO_DIR: join(jsrDir, ".deno"), ZEV_CACHE_DIR: cache };
  const jsrArgs = [
    DENO,
    "run",
    "--import-map",
    "import_map.json",
    `--allow-import=127.0.0.1:${jsrPort}`,
    "--allow-ffi",
    `--allow-read`,
    `--allow-write=${cache}`,
    "--allow-env",
    "--allow-net=127.0.0.1",
    "main.ts",
  ];
  const [a, b] = await runBoth(jsrArgs, jsrDir, jsrEnv);
  check(
    a.code === 0 && b.code === 0 && /echoed ping with .*cache\/.*libzev-linux-x86_64-gnu\.so/.test(a.out + b.out),
    "two processes started at once on an empty cache both run the README's example",
    `${a.out}\n${b.out}`,
  );
  const libraries = [...new Set(fetched.filter((path) => path.startsWith("/ffi/embedded/")))];
  check(
    libraries.length === 1 && libraries[0] === "/ffi/embedded/linux-x86_64-gnu.ts",
    "only this platform's embedded library is downloaded, not the other six",
    libraries.join(", "),
  );
  const cached = readdirSync(cache).map((d) => join(cache, d, "libzev-linux-x86_64-gnu.so")).find((f) => existsSync(f));
  check(
    cached !== undefined && readdirSync(join(cached, "..")).length === 1,
    "one library in the cache, in a directory named by version and hash, no temporary file left",
  );
  if (cached) {
    const good = readFileSync(cached);
    const bad = Uint8Array.from(good);
    bad[bad.length >> 1] ^= 0xff;
    writeFileSync(cached, bad);
    r = run(jsrArgs, jsrDir, jsrEnv);
    check(
      r.code === 0 && r.out.includes("echoed ping") && Buffer.compare(readFileSync(cached), good) === 0,
      "a corrupted cache file is detected by its SHA-256 and replaced",
      r.out,
    );
  }
  // Narrow permissions on the JSR route: each missing one named, no file left behind.
  const fresh = join(jsrDir, "fresh-cache");
  r = run(
    jsrArgs.map((
      a,
    ) => (a === "--allow-read"
      ? "--allow-read=/proc/self/maps"
      : a.startsWith("--allow-write")
      ? `--allow-write=${fresh}`
      : a)
    ),
    jsrDir,
    { ...jsrEnv, ZEV_CACHE_DIR: fresh },
  );
  check(
    r.code !== 0 && r.out.includes(`zev: Deno may not read the native library's cache directory ${fresh}`) &&
      r.out.includes(`--allow-read=${fresh}`) &&
      (!existsSync(fresh) || readdirSync(fresh, { recursive: true }).length === 0),
    "jsr: --allow-write on the cache but no --allow-read: an error naming --allow-read for it, and nothing written",
    r.out,
  );
  r = run(jsrArgs.filter((a) => a !== "--allow-env"), jsrDir, { ...jsrEnv, HOME: jsrDir });
  check(
    r.code !== 0 && r.out.includes("Deno may not read the environment") &&
      r.out.includes("--allow-env=ZEV_CACHE_DIR,XDG_CACHE_HOME,HOME"),
    "jsr: no --allow-env, HOME set: an error saying the environment cannot be read, naming the flag",
    r.out,
  );
  const unwritable = join(jsrDir, "not-a-directory");
  writeFileSync(unwritable, "");
  r = run(
    [...jsrArgs.slice(0, -1).map((a) => (a.startsWith("--allow-write") ? "--allow-write" : a)), "main.ts"],
    jsrDir,
    { ...jsrEnv, ZEV_CACHE_DIR: join(unwritable, "zev") },
  );
  check(
    r.code !== 0 && r.out.includes("cannot write the native library into the cache directory") &&
      r.out.includes("set ZEV_CACHE_DIR"),
    "an unwritable cache directory: an error naming it and what to set",
    r.out,
  );
  http.close();

  // What `deno publish` would check, where it can run without the registry.
  console.log("deno publish --dry-run, in dist/jsr");
  r = run([DENO, "publish", "--dry-run", "--allow-dirty"], jsrRoot, { DENO_DIR: join(jsrDir, ".deno-publish") });
  const needsRegistry = /jsr\.io|network|dns error|connect/i.test(r.out) && r.code !== 0;
  check(
    r.code === 0 || needsRegistry,
    `deno publish --dry-run${
      needsRegistry ? " (reached the registry step, which needs jsr.io: every local check passed)" : ""
    }`,
    r.out,
  );
  const size = (readdirSync(jsrRoot, { recursive: true }) as string[]).map((f) => statSync(join(jsrRoot, f))).filter((
    s,
  ) => s.isFile()).reduce((n, s) => n + s.size, 0);
  check(size < 20 * 2 ** 20, `the JSR package is ${(size / 2 ** 20).toFixed(2)} MiB, well under JSR's 20 MB`);
} finally {
  for (const c of children) c.kill();
  rmSync(work, { recursive: true, force: true });
}

console.log(failures === 0 ? "install: all passed" : `install: ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
