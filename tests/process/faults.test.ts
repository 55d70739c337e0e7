/**
 * Faults from outside, against examples/echo.ts in its own process: descriptor
 * exhaustion, reset storms, and a client that sends without ever reading. The server must
 * stay alive, not spin, stay bounded in memory, lose no byte it accepted, leak nothing,
 * and serve again as soon as it can.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { connect, sleep } from "../../mod.ts";
import { eventually, openClient, requestOnce, text, within } from "../harness/helpers.ts";
import { startEcho } from "../harness/echo_process.ts";
import { checkLeaks } from "../harness/leaks.ts";

checkLeaks("faults");

const decode = (b: Uint8Array) => new TextDecoder().decode(b);

/** The server's CPU seconds used during `ms` of wall time. */
async function cpuDuring(server: { cpuSeconds(): number }, ms: number): Promise<number> {
  const before = server.cpuSeconds();
  await sleep(ms);
  return server.cpuSeconds() - before;
}

test("descriptor exhaustion: 64 descriptors, 200 clients; no crash, no spin, told, recovers", async () => {
  const server = await startEcho({ fdLimit: 64 });
  try {
    // 200 clients connect at once and each sends a request; the kernel completes every
    // handshake, but the server can hold only a few dozen connections at a time.
    const clients = await within(
      10000,
      "200 connections",
      Promise.all(
        Array.from({ length: 200 }, () => openClient(server.port)),
      ),
    );
    // Each client hangs up once it has its echo and the test lets it go.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let served = 0;
    const done = clients.map((socket, i) =>
      new Promise<void>((resolve, reject) => {
        let got = "";
        socket.on("data", (d) => {
          got += d;
          if (got !== `client ${i}`) return;
          served++;
          released.then(() => {
            socket.end();
            resolve();
          });
        });
        socket.on("error", reject);
        socket.write(`client ${i}`);
      })
    );
    // If an assertion below fails first, these must not surface as unhandled rejections.
    for (const d of done) d.catch(() => {});
    await sleep(500);
    // Exhausted now: the server must be paused, not spinning on its listener.
    assert.ok(served < 200, `only part of the clients can be served while descriptors are short (${served})`);
    const cpu = await cpuDuring(server, 1000);
    console.log(`out of descriptors: ${served} of 200 served so far, server CPU ${(cpu * 1000).toFixed(0)} ms in 1 s`);
    assert.ok(cpu < 0.3, `server used ${cpu.toFixed(2)} s of CPU in 1 s while out of descriptors`);
    await eventually(3000, "the server tells the application", () => /no free file descriptors/.test(server.stderr()));
    // Served clients hang up, which frees descriptors: everyone gets served.
    release();
    await within(30000, `all 200 clients served as descriptors free up`, Promise.all(done))
      .catch((e) => {
        throw new Error(`${e.message}: ${served} served`);
      });
    assert.equal(served, 200);
    // And a new client afterwards.
    assert.equal(decode(await requestOnce(server.port, text("later"))), "later");
    assert.equal(server.child.exitCode, null, "the server is alive");
  } catch (error) {
    throw new Error(`${(error as Error).message}\nserver stderr:\n${server.stderr()}`);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test("reset storms: clients that reset at once or after half a request; nothing leaks, serving goes on", async () => {
  const server = await startEcho();
  try {
    await sleep(200);
    const baseline = server.fds();
    for (let wave = 0; wave < 5; wave++) {
      await Promise.all(Array.from({ length: 100 }, async (_, i) => {
        const stream = await connect({ port: server.port });
        if (i % 2 === 0) await stream.write(text("half a requ"));
        stream.abort(); // SO_LINGER 0: RST
      }));
    }
    // Served as before.
    for (let i = 0; i < 20; i++) assert.equal(decode(await requestOnce(server.port, text(`after ${i}`))), `after ${i}`);
    // Every reset connection's handler ended and its descriptor was closed.
    await eventually(5000, `server descriptors back to ${baseline}`, () => server.fds() <= baseline);
    const cpu = await cpuDuring(server, 500);
    assert.ok(cpu < 0.2, `server idle after the storm, used ${cpu.toFixed(2)} s of CPU in 0.5 s`);
    assert.equal(server.child.exitCode, null, "the server is alive");
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test("a client that sends without reading: bounded server memory, and every byte comes back", async () => {
  const server = await startEcho();
  const socket = net.connect({ port: server.port, host: "127.0.0.1" });
  try {
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.pause(); // never read, for now
    await sleep(200);
    const rssBefore = server.rssBytes();

    // Send a counting pattern as fast as the connection takes it, until it takes no more
    // for a while: the server has stopped reading because its writes are held back.
    const chunk = new Uint8Array(256 * 1024);
    let sent = 0;
    const target = 512 * 1024 * 1024;
    while (sent < target) {
      for (let i = 0; i < chunk.length; i++) chunk[i] = (sent + i) % 251;
      sent += chunk.length;
      if (!socket.write(chunk.slice())) {
        const drained = await Promise.race([
          new Promise((resolve) => socket.once("drain", () => resolve(true))),
          sleep(1000).then(() => false),
        ]);
        if (!drained) break;
      }
    }
    assert.ok(sent < target, "the server applied backpressure (it stopped taking data)");
    assert.ok(sent >= 4 * 1024 * 1024, `some megabytes went through first (${sent} bytes)`);
    const growth = server.rssBytes() - rssBefore;
    assert.ok(growth < 64 * 1024 * 1024, `server memory grew by ${(growth / 2 ** 20).toFixed(1)} MiB`);
    const cpu = await cpuDuring(server, 500);
    assert.ok(cpu < 0.2, `the blocked server is idle (${cpu.toFixed(2)} s of CPU in 0.5 s)`);

    // Now read: every byte the server accepted comes back, in order.
    let got = 0;
    let bad = -1;
    await within(
      60000,
      `reading back ${sent} bytes`,
      new Promise<void>((resolve, reject) => {
        socket.on("data", (d: Uint8Array) => {
          for (let i = 0; i < d.length && bad < 0; i++) if (d[i] !== (got + i) % 251) bad = got + i;
          got += d.length;
          if (got >= sent) resolve();
        });
        socket.on("error", reject);
        socket.resume();
      }),
    );
    assert.equal(bad, -1, `byte ${bad} differs`);
    assert.equal(got, sent);
    console.log(
      `never-reading client: ${(sent / 2 ** 20).toFixed(1)} MiB sent before backpressure, ` +
        `server memory +${(growth / 2 ** 20).toFixed(1)} MiB, all echoed back`,
    );
  } finally {
    socket.destroy();
    assert.equal(await server.stop(), 0);
  }
});
