/**
 * Mutation testing of src/ with StrykerJS (its command runner driving `bun test`): each
 * module is mutated on its own, and each mutant is run against only the test files that
 * exercise that module, so the whole run fits on a 2-core machine. Prints every mutant
 * killed or survived, and the mutation score. Too long for `make test`; run before each
 * release with `make mutate` (which installs StrykerJS into tools/stryker/).
 *
 *   bun tests/mutants/stryker.ts [MODULE ...]     (default: every module of src/)
 */

import process from "node:process";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The test files that exercise each module. */
const suites: Record<string, string[]> = {
  "core/context.ts": ["supervisor", "driver", "hold"],
  "core/driver.ts": ["hold", "driver", "burst", "wake", "lifecycle", "cancel", "stream"],
  "core/errors.ts": ["errors", "stream"],
  "core/handle.ts": ["hold", "lifecycle", "datagram"],
  "core/limits.ts": ["hold", "errors", "datagram"],
  "core/settings.ts": ["stream", "errors", "unix", "read_chunk"],
  "core/validate.ts": ["errors", "stream", "channel", "cancel", "supervisor", "addr"],
  "core/wait_queue.ts": ["wait_queue", "channel", "cancel"],
  "net/addr.ts": ["addr", "stream", "errors", "unix"],
  "net/datagram.ts": ["hold", "datagram", "errors", "lifecycle", "cancel"],
  "net/listener.ts": ["serve", "hold", "stream", "burst", "errors", "lifecycle", "unix", "cancel", "task"],
  "net/open.ts": ["stream", "errors", "lifecycle", "cancel", "unix", "task"],
  "net/stream.ts": ["hold", "stream", "errors", "cancel", "web_streams", "unix", "tls", "read_chunk"],
  "net/tls.ts": ["tls"],
  "server/accept_loop.ts": [
    "serve",
    "supervisor",
    "task",
    "burst",
    "lifecycle",
    "cancel",
    "gather",
    "web_streams",
    "errors",
    "read_chunk",
  ],
  "server/serve.ts": ["serve", "supervisor", "task", "lifecycle", "errors", "cancel", "unix", "workers"],
  "server/server.ts": ["serve", "supervisor", "task", "lifecycle", "errors", "cancel", "unix", "workers"],
  "server/workers.ts": ["workers"],
  "tasks/channel.ts": ["channel", "cancel", "task", "errors"],
  "tasks/deadline.ts": ["task", "cancel", "errors", "gather", "scope"],
  "tasks/gather.ts": ["gather", "task"],
  "tasks/scope.ts": ["scope", "gather", "serve", "proxy"],
  "tasks/task.ts": ["supervisor", "gather", "task", "cancel", "channel", "lifecycle", "scope", "serve"],
};

const root = new URL("../../", import.meta.url).pathname;
/** A test file by its name (tests/<layer>/<name>.test.ts). */
const testFile = (name: string): string => {
  const found = (readdirSync(`${root}tests`, { recursive: true }) as string[]).find((f) =>
    f.endsWith(`/${name}.test.ts`)
  );
  if (found === undefined) throw new Error(`no test file named ${name}`);
  return `tests/${found}`;
};
const stryker = `${root}tools/stryker/node_modules/.bin/stryker`;
const bun = `${root}node_modules/.bin/bun`;
// A copy of the library, taken at the start: a rebuild during the long run must not
// change what the sandboxed sources (taken at the start too) are tested against.
const lib = join(mkdtempSync(join(tmpdir(), "zev-stryker-")), "libzev.so");
copyFileSync(`${root}zig-out/lib/libzev-linux-x86_64-gnu.so`, lib);
// Every module of src/, so that a new one without a list above fails instead of going unmutated.
const modules = process.argv.slice(2).length > 0
  ? process.argv.slice(2)
  : (readdirSync(`${root}src`, { recursive: true }) as string[]).filter((f) => f.endsWith(".ts")).sort();

interface MutantResult {
  status: string;
  mutatorName: string;
  replacement?: string;
  location: { start: { line: number; column: number } };
}

let killed = 0, survived = 0, other = 0;
const survivors: string[] = [];
for (const module of modules) {
  const tests = suites[module];
  if (!tests) throw new Error(`no test files are listed for ${module}`);
  const command = `${bun} test --bail --timeout 60000 ${tests.map(testFile).join(" ")}`;
  const config = {
    testRunner: "command",
    commandRunner: { command },
    mutate: [`src/${module}`],
    // The suites wait on sockets and timers more than they compute (one run uses about a
    // third of a core): four at once keep two cores busy without slowing a run by more
    // than a sixth (measured: 12.0 s alone, 13.8 s four at once).
    concurrency: Number(process.env.STRYKER_CONCURRENCY ?? 4),
    // On top of 1.5 × the unmutated run: a mutant that hangs a suite is called a timeout
    // (detected) 10 s past what a passing run takes, on a machine left to StrykerJS.
    timeoutMS: 10_000,
    coverageAnalysis: "off",
    reporters: ["json", "progress"],
    jsonReporter: { fileName: `reports/mutation/${module.replace("/", "-")}.json` },
    ignorePatterns: [
      ".tools",
      // (zig-out/bin stays: the lifecycle tests run its no-io_uring wrapper.)
      "zig-out/lib",
      "zig-out-edge",
      ".zig-cache",
      "tools/stryker",
      "bench/out",
      "tests/out",
      "reports",
    ],
    tempDirName: ".stryker-tmp",
    cleanTempDir: true,
  };
  console.log(`\n== src/${module}: ${command}`);
  const configFile = `${root}.stryker-tmp-${module.replace("/", "-")}.json`;
  writeFileSync(configFile, JSON.stringify(config));
  const r = spawnSync(stryker, ["run", configFile], {
    cwd: root,
    stdio: "inherit",
    // The sandbox has no node_modules: the project's Deno (for the tests that start it) on PATH.
    env: { ...process.env, ZEV_LIB: lib, PATH: `${root}node_modules/.bin:${process.env.PATH}` },
  });
  rmSync(configFile);
  if (r.status !== 0) throw new Error(`stryker failed on ${module}`);
  const report = JSON.parse(readFileSync(`${root}reports/mutation/${module.replace("/", "-")}.json`, "utf8"));
  for (const file of Object.values(report.files) as { mutants: MutantResult[] }[]) {
    for (const m of file.mutants) {
      const where = `src/${module}:${m.location.start.line}:${m.location.start.column} ${m.mutatorName}${
        m.replacement ? ` -> ${m.replacement.replace(/\s+/g, " ").slice(0, 60)}` : ""
      }`;
      if (m.status === "Killed" || m.status === "Timeout") killed++;
      else if (m.status === "Survived" || m.status === "NoCoverage") {
        (survived++, survivors.push(`${m.status} ${where}`));
      } else other++;
      console.log(`${m.status.padEnd(10)} ${where}`);
    }
  }
}
console.log(`\nsurvivors:\n${survivors.join("\n")}`);
const score = (100 * killed) / (killed + survived);
console.log(`\nsrc/ mutation score: ${score.toFixed(1)} % (${killed} killed, ${survived} survived, ${other} not run)`);
