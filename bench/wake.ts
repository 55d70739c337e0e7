/**
 * The wake study (docs/design/WAKE.md): zev's ways of parking, A/B against each other and
 * against the runtime's own sockets, over the whole load curve.
 *
 *   bun bench/wake.ts [--runtime bun|deno|both] [--seconds 3] [--repeat 5]
 *                     [--variants io_uring,thread,spin] [--levels 0,1,...]
 *
 * Variants: `io_uring` (the default: the kernel wakes the JS thread through a socket the
 * runtime watches), `thread` (ZEV_WAKE=thread: another thread waits, zev 0.1's way, without
 * the spin), `spin` (io_uring, plus 200 µs of polling before each park: zev 0.1's default
 * spin). Prints a markdown table.
 */

import process from "node:process";
import { curveTable, type EchoServer, LEVELS, measureCurve, option, printStudy } from "./curve.ts";
import { BUN, DENO, example, root } from "../tests/harness/server.ts";

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => option(args, name, fallback);
const runtimes = opt("runtime", "both") === "both"
  ? ["bun", "deno"] as const
  : [opt("runtime", "bun") as "bun" | "deno"];
const variants = opt("variants", "io_uring,thread,spin").split(",");
const seconds = Number(opt("seconds", "3"));
const repeat = Number(opt("repeat", "5"));

const own = {
  bun: { name: "Bun.listen", argv: [BUN, `${root}bench/servers/bun_listen.ts`] },
  deno: { name: "Deno.listen", argv: [DENO, "run", "--allow-net", `${root}bench/servers/deno_listen.ts`] },
};
const servers: EchoServer[] = [];
for (const rt of runtimes) {
  const label = rt === "bun" ? "Bun" : "Deno";
  servers.push(own[rt]);
  for (const v of variants) {
    const base = { baseline: own[rt].name };
    if (v === "io_uring") servers.push({ ...base, name: `zev (${label}), io_uring wake`, argv: example(rt, "echo") });
    else if (v === "thread") {
      servers.push({
        ...base,
        name: `zev (${label}), thread wake`,
        argv: example(rt, "echo"),
        env: { ZEV_WAKE: "thread" },
      });
    } else if (v === "spin") {
      servers.push({
        ...base,
        name: `zev (${label}), spin 200 µs`,
        argv: example(rt, "echo", ["--spin-micros", "200"]),
      });
    } else throw new Error(`unknown variant ${v}`);
  }
}

const levels = opt("levels", "").split(",").filter((x) => x !== "").map((i) => LEVELS[Number(i)]);
const curve = await measureCurve(servers, levels.length > 0 ? levels : LEVELS, { seconds, repeat, log: console.log });
printStudy(`bun bench/wake.ts ${args.join(" ")}`, curve, seconds, repeat, curveTable(curve));
