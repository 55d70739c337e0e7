/**
 * Web Streams over zev streams: `stream.readable` and `stream.writable` with backpressure
 * carried through to the socket. A zev proxy made of nothing but `pipeTo` carries 256 MiB
 * each way between a client and an echo server, every byte checked. Backpressure is
 * proven by peers that stop reading: the bytes a writer gets accepted stay bounded (kernel
 * buffers and zev's queue), where a stream that read or accepted eagerly would take them all.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { acceptLoop, connect, listen, stats, type Stream } from "../../mod.ts";
import { driver } from "../../src/core/driver.ts";
import { progressing, text, within } from "../harness/helpers.ts";
import { checkLeaks } from "../harness/leaks.ts";

checkLeaks("web_streams");

const TOTAL = 256 << 20;
const CHUNK = 64 << 10;

/** Byte i of the test pattern (period 251, a prime, so that chunks never line up). */
const fill = (buf: Uint8Array, offset: number) => {
  for (let i = 0; i < buf.length; i++) buf[i] = (offset + i) % 251;
};

test("256 MiB each way through a proxy of pipeTo, every byte checked", async () => {
  // Where each part stands, told if the bytes stop moving (see `progressing` below).
  const parts = { echo: "accepting", down: "accepting", up: "accepting", sending: "writing" };
  const settle = <T>(name: keyof typeof parts, p: Promise<T>): Promise<T> =>
    p.then((v) => ((parts[name] = "done"), v), (e) => ((parts[name] = `failed: ${e}`), Promise.reject(e)));
  const echo = listen({ hostname: "127.0.0.1", port: 0 });
  const echoing = acceptLoop(echo, async (s: Stream) => {
    parts.echo = "piping";
    await settle("echo", s.readable.pipeTo(s.writable));
  });
  const proxy = listen({ hostname: "127.0.0.1", port: 0 });
  const proxying = acceptLoop(proxy, async (down: Stream) => {
    const up = await connect({ port: echo.addr.port });
    parts.down = parts.up = "piping";
    await Promise.all([
      settle("down", down.readable.pipeTo(up.writable)),
      settle("up", up.readable.pipeTo(down.writable)),
    ]);
    await up.close();
  });

  const client = await connect({ port: proxy.addr.port });
  let sent = 0, got = 0, bad = -1;
  const sending = settle(
    "sending",
    (async () => {
      const writer = client.writable.getWriter();
      for (; sent < TOTAL; sent += CHUNK) {
        const chunk = new Uint8Array(CHUNK); // a fresh chunk: the stream holds it until written
        fill(chunk, sent);
        await writer.write(chunk);
      }
      await writer.close();
    })(),
  );
  const receiving = (async () => {
    for await (const chunk of client.readable) {
      for (let i = 0; i < chunk.length && bad < 0; i++) if (chunk[i] !== (got + i) % 251) bad = got + i;
      got += chunk.length;
    }
  })();
  // A stall fails within 30 s and says where it stood, instead of running into the
  // test's timeout with nothing to show.
  await progressing(
    30_000,
    "bytes through the proxy",
    () => sent + got,
    () => `sent ${sent}, got ${got}, ${JSON.stringify(parts)}, ${driver.describe()}, ${JSON.stringify(stats())}`,
    Promise.all([receiving, sending]),
  );
  assert.equal(bad, -1, `byte ${bad} came back wrong`);
  assert.equal(got, TOTAL);
  await client.close();
  proxy.close();
  echo.close();
  await within(5000, "the proxy and echo loops to end", Promise.all([proxying, echoing]));
});

/** More than loopback's kernel buffers and zev's write queue can hold together. */
const FLOOD = 128 << 20;

/**
 * Writes FLOOD bytes through `write` and returns how many were accepted before one write
 * waited a whole second (the writer is held back) or all of them (it never was).
 */
async function acceptedUntilStall(write: (chunk: Uint8Array) => Promise<unknown>): Promise<number> {
  const chunk = new Uint8Array(CHUNK);
  for (let sent = 0; sent < FLOOD; sent += CHUNK) {
    let timer = 0;
    const stalled = new Promise<true>((resolve) => timer = setTimeout(resolve, 1000, true) as unknown as number);
    const done = await Promise.race([write(chunk).then(() => false), stalled]);
    clearTimeout(timer);
    if (done) return sent;
  }
  return FLOOD;
}

test("stream.readable reads only when its consumer asks: a reader that stops holds the peer back", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([connect({ port: listener.addr.port }), listener.accept()]);
  const reader = server.readable.getReader();
  await client.write(text("first"));
  assert.equal((await reader.read()).value?.length, 5); // started, then never read again
  const accepted = await acceptedUntilStall((chunk) => client.write(chunk));
  assert.ok(accepted < FLOOD / 2, `the peer wrote ${accepted >> 20} MiB into a reader that stopped`);
  client.abort();
  await reader.cancel();
  listener.close();
});

test("stream.writable waits while the peer does not read: a writer is held back", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([connect({ port: listener.addr.port }), listener.accept()]);
  const writer = client.writable.getWriter();
  const accepted = await acceptedUntilStall((chunk) => writer.write(chunk));
  assert.ok(accepted < FLOOD / 2, `the writer was accepted ${accepted >> 20} MiB by a peer that reads nothing`);
  await writer.abort();
  assert.equal(client.closed, true, "aborting the writable aborts the stream");
  await server.close();
  // With no write in flight too.
  const [idle, peer] = await Promise.all([connect({ port: listener.addr.port }), listener.accept()]);
  const idleWriter = idle.writable.getWriter();
  await idleWriter.write(text("x"));
  await idleWriter.abort();
  assert.equal(idle.closed, true, "aborting an idle writable aborts the stream");
  await peer.close();
  listener.close();
});

test("new Response(stream.readable) and TextDecoderStream read a stream to its end", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([connect({ port: listener.addr.port }), listener.accept()]);
  await client.write(text("héllo, "));
  await client.write(text("world"));
  await client.closeWrite();
  assert.equal(await new Response(server.readable).text(), "héllo, world");
  const [c2, s2] = await Promise.all([connect({ port: listener.addr.port }), listener.accept()]);
  await c2.write(text("decoded"));
  await c2.close();
  let out = "";
  for await (const part of s2.readable.pipeThrough(new TextDecoderStream())) out += part;
  assert.equal(out, "decoded");
  // Cancelling the readable closes the stream.
  const [c3, s3] = await Promise.all([connect({ port: listener.addr.port }), listener.accept()]);
  await s3.readable.cancel();
  assert.equal(s3.closed, true);
  await Promise.all([client.close(), server.close(), s2.close(), c3.close()]);
  listener.close();
});
