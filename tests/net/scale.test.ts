/**
 * Scale: 10,000 concurrent connections to examples/echo.ts, held open, with traffic on a
 * share of them; no error. Prints the server's memory per connection.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, raiseFileLimit, sleep, type Stream } from "../../mod.ts";
import { runtime, text, within } from "../harness/helpers.ts";
import { startEcho } from "../harness/echo_process.ts";
import { checkLeaks } from "../harness/leaks.ts";

checkLeaks("scale");

const CONNECTIONS = 10_000;

test(`${CONNECTIONS} concurrent connections, traffic on a tenth of them`, async () => {
  // This process holds the client ends; the server gets its own limit.
  assert.ok(raiseFileLimit(CONNECTIONS + 1000) >= CONNECTIONS + 100, "the hard descriptor limit allows the test");
  const server = await startEcho({ fdLimit: CONNECTIONS + 1000 });
  const streams: Stream[] = [];
  try {
    await sleep(300);
    const rssBefore = server.rssBytes();
    await within(
      60000,
      `opening ${CONNECTIONS} connections (${streams.length} open)`,
      (async () => {
        while (streams.length < CONNECTIONS) {
          const batch = await Promise.all(Array.from({ length: 250 }, () => connect({ port: server.port })));
          streams.push(...batch);
        }
      })(),
    );
    // Every connection is live end to end: one echo on each.
    await within(
      60000,
      "one echo on every connection",
      (async () => {
        for (let i = 0; i < CONNECTIONS; i += 500) {
          await Promise.all(
            streams.slice(i, i + 500).map(async (s, j) => {
              const msg = text(`#${i + j}`);
              await s.write(msg);
              const got = await s.readFull(new Uint8Array(msg.length));
              assert.deepEqual(got, msg);
            }),
          );
        }
      })(),
    );
    // Traffic on a tenth of them for two seconds while all stay open.
    const busy = streams.filter((_, i) => i % 10 === 0);
    let exchanges = 0;
    const until = Date.now() + 2000;
    await Promise.all(busy.map(async (s) => {
      const mine = new Uint8Array(64).fill(7);
      const back = new Uint8Array(64);
      while (Date.now() < until) {
        await s.write(mine);
        await s.readFull(back);
        exchanges++;
      }
    }));
    const rss = server.rssBytes();
    const perConnection = (rss - rssBefore) / CONNECTIONS;
    console.log(
      `${runtime}: ${CONNECTIONS} connections, ${exchanges} exchanges on ${busy.length} of them; ` +
        `server memory ${(rssBefore / 2 ** 20).toFixed(0)} -> ${(rss / 2 ** 20).toFixed(0)} MiB, ` +
        `${(perConnection / 1024).toFixed(1)} KiB per connection`,
    );
    assert.equal(server.child.exitCode, null, "the server is alive");
    assert.ok(exchanges > busy.length, "traffic flowed");
  } finally {
    await Promise.all(streams.map((s) => s.close()));
    assert.equal(await server.stop(), 0);
  }
});
