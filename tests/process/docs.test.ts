/**
 * The guide's examples (docs/guide.md, each block after `<!-- run -->`), run as programs
 * of their own in the runtime running the tests, with `zev` meaning this checkout: a
 * promise the docs make is a promise tested.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { runtime } from "../harness/helpers.ts";

const root = new URL("../../", import.meta.url).pathname;
const guide = readFileSync(join(root, "docs/guide.md"), "utf8");
const blocks = [...guide.matchAll(/<!-- run -->\s*```ts\n([\s\S]*?)```/g)].map((m) => m[1]);

/** What each block prints, in order. */
const expected: RegExp[] = [
  /^server closing, bye\n\nnull\n$/,
  /^(worker \d: (1|4|9|16)\n){4}true\n$/,
  /^sibling: true\none request failed\nfast\n$/,
  /^ping false\n$/,
  /^hello over \/tmp\/zev-guide-\d+\.sock\n$/,
];

test("docs/guide.md: every example runs and prints what it says", () => {
  assert.equal(blocks.length, expected.length, "the guide's examples");
  const dir = mkdtempSync(join(tmpdir(), "zev-guide-"));
  try {
    blocks.forEach((block, i) => {
      const file = join(dir, `example${i}.ts`);
      writeFileSync(file, block.replaceAll('from "zev"', `from "${join(root, "mod.ts")}"`));
      const argv = runtime === "deno" ? [process.execPath, "run", "--allow-all", file] : [process.execPath, file];
      const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8", timeout: 30_000 });
      assert.equal(r.status, 0, `example ${i + 1}:\n${block}\n${r.stdout}${r.stderr}`);
      assert.match(r.stdout, expected[i], `example ${i + 1} printed:\n${r.stdout}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
