/**
 * The regression tests for the bug zev exists to get right: connections that arrive
 * inside one readiness edge must all be accepted. Janet 1.32 (edge-triggered listener,
 * one accept per event) stalls on each of these; `make test` runs this file against the
 * `edge-single` libraries and requires it to fail with a stall.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { acceptLoop, call, listen, type Stream } from "../../mod.ts";
import { exchange, openClient, requestOnce, runRounds, text, within } from "../harness/helpers.ts";
import { checkLeaks } from "../harness/leaks.ts";

checkLeaks("burst");

async function echo(stream: Stream): Promise<void> {
  const buf = new Uint8Array(4096);
  for (let n; (n = await stream.read(buf)) !== null;) await stream.write(buf.subarray(0, n));
}

test("50 connections opened before any byte is sent are all served", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const loop = acceptLoop(listener, echo);
  try {
    const sockets = await within(
      5000,
      "opening 50 connections",
      Promise.all(
        Array.from({ length: 50 }, () => openClient(listener.addr.port)),
      ),
    );
    let served = 0;
    await within(
      5000,
      "50 pre-opened connections",
      Promise.all(sockets.map(async (s, i) => {
        const reply = await exchange(s, text(`hello ${i}`));
        assert.equal(new TextDecoder().decode(reply), `hello ${i}`);
        served++;
      })),
    ).catch((e) => {
      throw new Error(`${e.message}: ${served} of 50 served`);
    });
    for (const s of sockets) s.destroy();
  } finally {
    listener.close();
    await loop;
  }
});

test("20 concurrent clients, 50 rounds, served by acceptLoop + go", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const loop = acceptLoop(listener, echo);
  try {
    assert.equal(await runRounds(listener.addr.port, 20, 50, 3000), 1000);
  } finally {
    listener.close();
    await loop;
  }
});

test("20 concurrent clients, 50 rounds, served by a manual accept loop + call", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const loop = (async () => {
    for (;;) {
      let stream: Stream;
      try {
        stream = await listener.accept();
      } catch {
        return; // closed
      }
      call(async () => {
        try {
          await echo(stream);
        } finally {
          await stream.close();
        }
      });
    }
  })();
  try {
    assert.equal(await runRounds(listener.addr.port, 20, 50, 3000), 1000);
  } finally {
    listener.close();
    await loop;
  }
});

test("a burst of 1000 connections is served in full", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const loop = acceptLoop(listener, echo);
  try {
    let served = 0;
    await within(
      10000,
      "burst of 1000 connections",
      Promise.all(Array.from({ length: 1000 }, async (_, i) => {
        const reply = await requestOnce(listener.addr.port, text(`burst ${i}`));
        assert.equal(new TextDecoder().decode(reply), `burst ${i}`);
        served++;
      })),
    ).catch((e) => {
      throw new Error(`${e.message}: ${served} of 1000 served`);
    });
    assert.equal(served, 1000);
  } finally {
    listener.close();
    await loop;
  }
});
