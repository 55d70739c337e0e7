/**
 * Reactor mutants: each a small change to zig/ that breaks one promise, applied to a copy
 * of the tree (never a build option of the product). `make mutate-reactor` (run by `make
 * test`) builds each, runs the tests that guard that promise against it, and requires
 * every mutant to be killed: a test that passes against a broken reactor tests nothing.
 *
 *   bun tests/mutants/reactor.ts [--only NAME]
 *
 * Each mutant names the exact text it replaces, which must occur once: a mutant whose
 * text no longer matches the source fails the run instead of silently testing nothing.
 *
 * Left out as equivalent for correctness (each costs only speed, which `make bench`
 * measures): one accept per call (the level-triggered listener reports the rest at once),
 * and an io_uring poll not linked to its send (a byte, so a wake, at every park).
 */

import process from "node:process";
import { spawn } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

interface Mutant {
  name: string;
  /** What the change breaks. */
  breaks: string;
  file: string;
  from: string;
  to: string;
  /** Test files (tests/*.test.ts) that must fail; "zig" runs the reactor's own tests too. */
  tests: string[];
  /** Environment of the test runs (`ZEV_BACKEND=io_uring` for the ring's mutants). */
  env?: Record<string, string>;
}

export const mutants: Mutant[] = [
  {
    name: "edge-dropped",
    breaks: "an edge that arrives while nobody reads is forgotten",
    file: "zig/stream.zig",
    from: "    if (ev.readable) s.readable = true;",
    to: "    if (ev.readable and s.want_read) s.readable = true;",
    tests: ["errors"],
  },
  {
    name: "listener-never-disarmed",
    breaks: "a level-triggered listener nobody accepts from wakes every poll",
    file: "zig/listener.zig",
    from: "    if (!edge_single and l.armed) {",
    to: "    if (false and l.armed) {",
    tests: ["errors"],
  },
  {
    name: "edge-triggered-listener",
    breaks: "listeners are registered edge-triggered (Janet 1.32's registration)",
    file: "zig/backends/epoll.zig",
    from: "        try p.ctl(E.CTL_ADD, fd, E.IN | (if (edge) E.ET else 0), token);",
    to: "        _ = edge;\n        try p.ctl(E.CTL_ADD, fd, E.IN | E.ET, token);",
    tests: ["zig", "burst"],
  },
  {
    name: "read-forgets-readiness",
    breaks: "every read, even one that filled the buffer, forgets that more data is there",
    file: "zig/stream.zig",
    from: "    if (n < buf.len and !s.hup) s.readable = false;",
    to: "    if (!s.hup) s.readable = false;",
    tests: ["zig", "stream"],
  },
  {
    name: "eagain-no-interest",
    breaks: "a read that would block does not ask for the next READ event",
    file: "zig/stream.zig",
    from: "        if (err == error.WouldBlock) {\n            s.drained();",
    to: "        if (err == error.WouldBlock) {\n            s.readable = false;",
    tests: ["zig", "stream"],
  },
  {
    name: "write-queue-unbounded",
    breaks: "the write queue ignores its limit",
    file: "zig/stream.zig",
    from: "    return writeRaw(loop, s, data, s.queue_limit);",
    to: "    return writeRaw(loop, s, data, limits.max_write_queue_bytes);",
    tests: ["zig", "stream"],
  },
  {
    name: "pause-keeps-listener-armed",
    breaks: "a listener out of descriptors stays armed and spins",
    file: "zig/listener.zig",
    from: "    if (l.armed) loop.poller.armListener(l.fd, lh, edge_single, false) catch {};",
    to: "    if (false) loop.poller.armListener(l.fd, lh, edge_single, false) catch {};",
    tests: ["zig"],
  },
  {
    name: "pause-never-resumes",
    breaks: "a paused listener is never resumed by its backoff",
    file: "zig/listener.zig",
    from: "        if (l.resume_at_ns > now) {",
    to: "        if (l.resume_at_ns > now or now != std.math.maxInt(i64)) {",
    tests: ["lifecycle"],
  },
  {
    name: "half-close-forgets-fin",
    breaks: "closeWrite with bytes queued never sends the end of stream",
    file: "zig/stream.zig",
    from: "    if (s.shut_pending) {\n        s.shut_pending = false;",
    to: "    if (false) {\n        s.shut_pending = false;",
    tests: ["zig", "stream"],
  },
  {
    name: "stale-handle-accepted",
    breaks: "a stale handle whose slot was reused reaches the new socket",
    file: "zig/handles.zig",
    from: "            if (!slot.live or slot.gen != gen) return null;",
    to: "            if (!slot.live) return null;",
    tests: ["zig"],
  },
  {
    name: "park-never-armed",
    breaks: "the poll that finds nothing does not arm the kernel's wake",
    file: "zig/loop.zig",
    from: "                if (w.rx_taken) try w.arm(self.parkFd(), self.uring != null);",
    to: "                if (w.rx_taken and false) try w.arm(self.parkFd(), self.uring != null);",
    tests: ["wake"],
  },
  {
    name: "wake-watches-nothing",
    breaks: "the kernel's wake polls for a readiness the loop never has",
    file: "zig/ring_wake.zig",
    from: "        const poll = w.ring.poll_add(poll_token, fd, linux.POLL.IN) catch return error.Limit;",
    to: "        const poll = w.ring.poll_add(poll_token, fd, linux.POLL.PRI) catch return error.Limit;",
    tests: ["zig", "wake"],
  },
  {
    name: "pause-untold",
    breaks: "a listener's pause is never told to onAcceptError",
    file: "zig/listener.zig",
    from: "    l.pauses_untold +|= 1;",
    to: "",
    tests: ["zig", "lifecycle"],
  },
  {
    name: "ring-starving-never-fed",
    breaks: "io_uring: a stream whose receive ran out of buffers never receives again",
    file: "zig/backends/ring_streams.zig",
    from: "        self.buffers_returned = false;\n        const waiting = self.starving[0..self.starving_len];",
    to:
      "        self.buffers_returned = false;\n        if (true) return;\n        const waiting = self.starving[0..self.starving_len];",
    tests: ["zig"],
    env: { ZEV_BACKEND: "io_uring" },
  },
  {
    name: "ring-starving-fed-only-by-polls",
    breaks:
      "io_uring: buffers given back by a read outside a poll feed no stream that ran out, so a parked loop never receives for it",
    file: "zig/backends/ring_streams.zig",
    from: "        self.maybeRearm(loop, s);\n        self.feedStarvingIfFreed(loop);\n        return n;",
    to: "        self.maybeRearm(loop, s);\n        return n;",
    tests: ["zig"],
    env: { ZEV_BACKEND: "io_uring" },
  },
  {
    name: "ring-park-deaf",
    breaks: "io_uring: a park leaves the ring's eventfd signals off, so no completion wakes it",
    file: "zig/backends/io_uring.zig",
    from:
      "        @atomicStore(u32, r.cq_flags, r.cq_flags.* & ~@as(u32, linux.IORING_CQ_EVENTFD_DISABLED), .seq_cst);",
    to: "        @atomicStore(u32, r.cq_flags, r.cq_flags.* | linux.IORING_CQ_EVENTFD_DISABLED, .seq_cst);",
    tests: ["zig", "wake"],
    env: { ZEV_BACKEND: "io_uring" },
  },
  {
    name: "ring-park-no-last-look",
    breaks: "io_uring: a park never looks at the work that came while the loop ran, with signals off",
    file: "zig/backends/io_uring.zig",
    from: "        if (r.idle()) return false;",
    to: "        if (true) return false;",
    tests: ["zig", "wake"],
    env: { ZEV_BACKEND: "io_uring" },
  },
  {
    name: "ring-starving-never-read",
    breaks:
      "io_uring: a stream the ring has no buffer for waits for buffers that streams nobody reads hold, instead of reading with read(2)",
    file: "zig/backends/ring_streams.zig",
    from: "            if (rs.starving) return self.readDirect(loop, s, buf);\n",
    to: "",
    tests: ["zig"],
    env: { ZEV_BACKEND: "io_uring" },
  },
  {
    name: "ring-nobufs-unread",
    breaks:
      "io_uring: a read waiting when its receive finds no buffer is never told, so it waits for buffers that streams nobody reads hold",
    file: "zig/backends/ring_streams.zig",
    from: "                            self.starve(loop, s);\n                            s.readable = true;",
    to: "                            self.starve(loop, s);",
    tests: ["zig"],
    env: { ZEV_BACKEND: "io_uring" },
  },
  {
    name: "ring-defer-taskrun",
    breaks:
      "io_uring: the ring defers its task work, so the kernel signals the park as it queues work, and on Linux 6.18 that signal sometimes comes an RCU grace period late",
    file: "zig/backends/io_uring.zig",
    from: "linux.IORING_SETUP_SINGLE_ISSUER | linux.IORING_SETUP_COOP_TASKRUN |",
    to: "linux.IORING_SETUP_SINGLE_ISSUER | linux.IORING_SETUP_DEFER_TASKRUN |",
    tests: ["stall"],
    env: { ZEV_BACKEND: "io_uring" },
  },
  {
    name: "ring-wake-failed-park-stuck",
    breaks:
      "a park whose submission failed stays in the wake's queue beside the next, which no longer fits: every later park fails",
    file: "zig/ring_wake.zig",
    from: "        if (w.ring.sq_ready() == 0) try w.prepare(fd, drain);",
    to: "        try w.prepare(fd, drain);",
    tests: ["zig"],
  },
  {
    name: "ring-wake-no-drain",
    breaks: "io_uring: the kernel's wake leaves the ring's eventfd signalled, so every later park fires at once",
    file: "zig/ring_wake.zig",
    from: "        if (drain) {",
    to: "        if (false and drain) {",
    tests: ["zig"],
    env: { ZEV_BACKEND: "io_uring" },
  },
];

const root = new URL("../../", import.meta.url).pathname;
/** A test file by its name (tests/<layer>/<name>.test.ts). */
const testFile = (name: string): string => {
  const found = (readdirSync(`${root}tests`, { recursive: true }) as string[]).find((f) =>
    f.endsWith(`/${name}.test.ts`)
  );
  if (found === undefined) throw new Error(`no test file named ${name}`);
  return `tests/${found}`;
};
const zig = [`${root}.tools/venv/bin/python`, "-m", "ziglang"];
const bun = `${root}node_modules/.bin/bun`;

function run(argv: string[], cwd: string, env: Record<string, string> = {}): Promise<{ ok: boolean; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { cwd, env: { ...process.env, ...env } });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ ok: code === 0, out });
    });
  });
}

/** Builds `m` in a copy of the tree and runs its tests; returns which of them failed. */
async function tryMutant(m: Mutant): Promise<{ killedBy: string[]; error?: string }> {
  const dir = mkdtempSync(join(tmpdir(), `zev-mutant-${m.name}-`));
  try {
    for (const p of ["build.zig", "build.zig.zon", "zig", "bench", "tests/musl"]) {
      cpSync(join(root, p), join(dir, p), { recursive: true });
    }
    const file = join(dir, m.file);
    const text = readFileSync(file, "utf8");
    const count = text.split(m.from).length - 1;
    if (count !== 1) {
      return { killedBy: [], error: `its text occurs ${count} times in ${m.file} (expected once): update the mutant` };
    }
    writeFileSync(file, text.replace(m.from, m.to));
    const build = await run([...zig, "build"], dir);
    if (!build.ok) return { killedBy: [], error: `does not build:\n${build.out.slice(-2000)}` };
    const killedBy: string[] = [];
    for (const t of m.tests) {
      const r = t === "zig"
        ? await run([...zig, "build", "test"], dir, m.env)
        : await run([bun, "test", "--bail", "--timeout", "60000", join(root, testFile(t))], root, {
          ...m.env,
          ZEV_LIB: join(dir, "zig-out/lib/libzev-linux-x86_64-gnu.so"),
        });
      if (!r.ok) killedBy.push(t);
    }
    return { killedBy };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Mutants tried at once: each is a build and test runs, mostly waiting on one core. */
const AT_ONCE = 2;

if (import.meta.main) {
  const only = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1] : undefined;
  let survived = 0, broken = 0, tried = 0;
  const queue = mutants.filter((m) => !only || m.name === only);
  const worker = async () => {
    for (let m = queue.shift(); m !== undefined; m = queue.shift()) {
      tried++;
      const t0 = performance.now();
      const r = await tryMutant(m);
      const secs = ((performance.now() - t0) / 1000).toFixed(0);
      if (r.error) {
        broken++;
        console.log(`BROKEN   ${m.name.padEnd(28)} ${r.error}`);
      } else if (r.killedBy.length === 0) {
        survived++;
        console.log(`SURVIVED ${m.name.padEnd(28)} (${m.breaks}): no test failed of ${m.tests.join(", ")}`);
      } else {
        console.log(`killed   ${m.name.padEnd(28)} by ${r.killedBy.join(", ").padEnd(18)} ${secs} s  (${m.breaks})`);
      }
    }
  };
  await Promise.all(Array.from({ length: AT_ONCE }, worker));
  console.log(
    `reactor mutants: ${tried - survived - broken} of ${tried} killed, ${survived} survived, ${broken} broken`,
  );
  if (survived > 0 || broken > 0) process.exit(1);
}
