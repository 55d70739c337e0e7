/**
 * examples/proxy.ts in its own process, and examples/happy_eyeballs.ts: bytes both ways
 * with the end passed on; an upstream that resets mid-transfer, or a client that does,
 * ends the connection on both sides with nothing of it left open in the proxy (its
 * descriptors, read from /proc, come back to where they were).
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { connect, go, listen, type Listener, type Stream, ZevError } from "../../mod.ts";
import { eventually, type Program, runProgram, startProgram, text, within } from "../harness/helpers.ts";
import { checkLeaks } from "../harness/leaks.ts";

checkLeaks("proxy");

/** The proxy's open descriptors. */
const fdsOf = (p: Program) => readdirSync(`/proc/${p.pid}/fd`).length;

async function startProxy(upstream: Listener): Promise<{ proxy: Program; port: number; idleFds: number }> {
  const proxy = startProgram("proxy", {
    example: true,
    args: ["--upstream", `127.0.0.1:${upstream.addr.port}`],
    timeoutMs: 60_000,
  });
  await eventually(20_000, "the proxy is ready", () => /listening on /.test(proxy.stdout()));
  const port = Number(/listening on [^\s]+:(\d+)/.exec(proxy.stdout())![1]);
  // One connection through it first: whatever the runtime opens lazily is then in the count.
  const warm = await connect({ port });
  await warm.closeWrite();
  const far = await upstream.accept();
  assert.deepEqual(await drain(far), { bytes: 0, end: "end" });
  await far.close();
  assert.deepEqual(await drain(warm), { bytes: 0, end: "end" });
  await warm.close();
  await new Promise((r) => setTimeout(r, 200));
  return { proxy, port, idleFds: fdsOf(proxy) };
}

async function stop(proxy: Program): Promise<void> {
  proxy.signal("SIGTERM");
  const run = await proxy.done;
  assert.equal(run.code, 0, run.stderr);
  assert.doesNotMatch(run.stderr, /failed|internal error/, run.stderr);
}

/** Reads until the end or an error; returns the bytes and how it ended. */
async function drain(stream: Stream): Promise<{ bytes: number; end: string }> {
  const buf = new Uint8Array(64 * 1024);
  let bytes = 0;
  try {
    for (let n; (n = await stream.read(buf)) !== null;) bytes += n;
    return { bytes, end: "end" };
  } catch (error) {
    return { bytes, end: error instanceof ZevError ? error.code : String(error) };
  }
}

test("proxy: bytes both ways, and each side's end passed on to the other", async () => {
  const upstream = listen({ hostname: "127.0.0.1", port: 0 });
  const { proxy, port, idleFds } = await startProxy(upstream);
  const echo = go(async () => {
    const s = await upstream.accept();
    const buf = new Uint8Array(1024);
    for (let n; (n = await s.read(buf)) !== null;) await s.write(buf.subarray(0, n));
    await s.close();
  });
  try {
    const client = await connect({ port });
    await client.write(text("hello through the proxy"));
    await client.closeWrite(); // the upstream sees the end, answers, and closes
    const got = new Uint8Array(64);
    let n = 0;
    for (let m; (m = await client.read(got.subarray(n))) !== null;) n += m;
    assert.equal(new TextDecoder().decode(got.subarray(0, n)), "hello through the proxy");
    await client.close();
    await echo.done;
    await eventually(5000, "the proxy holds nothing of the connection", () => fdsOf(proxy) <= idleFds);
  } finally {
    upstream.close();
    await stop(proxy);
  }
});

for (const side of ["upstream", "client"] as const) {
  test(`proxy: a ${side} that resets mid-transfer ends the connection on both sides, nothing left open`, async () => {
    const upstream = listen({ hostname: "127.0.0.1", port: 0 });
    const { proxy, port, idleFds } = await startProxy(upstream);
    const upstreamEnd = go(async () => {
      const s = await upstream.accept();
      if (side === "upstream") {
        // Take part of the transfer, send some back, then reset.
        const buf = new Uint8Array(64 * 1024);
        let got = 0;
        for (let n; got < 256 * 1024 && (n = await s.read(buf)) !== null;) got += n;
        await s.write(new Uint8Array(100_000));
        s.abort();
        return "reset";
      }
      const { end } = await drain(s);
      s.abort();
      return end;
    });
    try {
      const client = await connect({ port });
      const reader = drain(client);
      let writeEnd = "not ended";
      const writer = (async () => {
        const chunk = new Uint8Array(64 * 1024);
        try {
          for (let i = 0; i < 64 * 1024; i++) {
            await client.write(chunk);
            if (side === "client" && i === 16) return void client.abort();
          }
        } catch (error) {
          writeEnd = error instanceof ZevError ? error.code : String(error);
        }
      })();
      await within(10_000, "both ends of the transfer ended", writer);
      if (side === "upstream") {
        const { end } = await within(10_000, "the client's reads ended", reader);
        assert.equal(await upstreamEnd.done, "reset");
        // The client learns the connection is gone: a reset, not a clean end.
        assert.ok(["ConnectionReset", "BrokenPipe"].includes(end) || writeEnd !== "not ended", `${end}/${writeEnd}`);
        assert.notEqual(end, "end");
        client.abort();
      } else {
        await reader;
        // The upstream learns the client is gone: a reset passed on, not a clean end.
        assert.equal(await within(10_000, "the upstream's reads ended", upstreamEnd.done), "ConnectionReset");
      }
      await eventually(5000, "the proxy holds nothing of the connection", () => fdsOf(proxy) <= idleFds);
    } finally {
      upstream.close();
      await stop(proxy);
    }
  });
}

test("happy eyeballs: the address that answers wins; none answering lists every attempt's error", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  try {
    // localhost is ::1 (nobody listens there: refused) and 127.0.0.1.
    const run = await runProgram("happy_eyeballs", { example: true, args: ["localhost", String(listener.addr.port)] });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), `connected to 127.0.0.1:${listener.addr.port}`);
  } finally {
    listener.close();
  }
  const refused = await runProgram("happy_eyeballs", {
    example: true,
    args: ["127.0.0.1", String(listener.addr.port)],
  });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /refused/);
  const usage = await runProgram("happy_eyeballs", { example: true, args: ["localhost"] });
  assert.equal(usage.code, 2);
});
