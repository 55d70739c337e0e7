/**
 * acceptLoop and serve: a handler's error never stops the loop, arguments are checked by
 * name, and a server closes gracefully (its handlers told at once, finished within the
 * grace period, the rest cut off).
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { acceptLoop, Cancelled, connect, listen, serve, sleep, type Stream, ZevError } from "../../mod.ts";
import { eventually, openClient, requestOnce, text, within } from "../harness/helpers.ts";
import { checkLeaks } from "../harness/leaks.ts";

const decode = (b: Uint8Array) => new TextDecoder().decode(b);

checkLeaks("serve");

test("an error in one acceptLoop handler never stops the loop", async () => {
  const errors: unknown[] = [];
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  let n = 0;
  const loop = acceptLoop(listener, async (stream: Stream) => {
    const buf = new Uint8Array(16);
    const got = await stream.read(buf);
    if (++n % 2 === 1) throw new Error(`handler ${n} failed`);
    await stream.write(buf.subarray(0, got!));
  }, { supervisor: (e) => errors.push(e) });
  for (let i = 0; i < 3; i++) {
    await requestOnce(listener.addr.port, text("hi")).catch(() => {});
  }
  assert.equal(decode(await requestOnce(listener.addr.port, text("ok"))), "ok");
  assert.ok(errors.length >= 2, `errors reached the supervisor: ${errors.length}`);
  listener.close();
  await within(2000, "acceptLoop settles when the listener closes", loop);
});

test("an accept that fails, not from a closed listener, is reported as the acceptLoop task's error and the loop goes on", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const failure = new ZevError("Unexpected", "accept on the test's listener: a failure made up by the test");
  const accept = listener.accept.bind(listener);
  let failures = 2;
  // Own property over the prototype's: the loop's next two accepts fail.
  listener.accept = (options) => (failures-- > 0 ? Promise.reject(failure) : accept(options));
  const seen: [unknown, string][] = [];
  const loop = acceptLoop(listener, async (stream: Stream) => {
    await stream.write(text("served"));
  }, { supervisor: (error, task) => void seen.push([error, task.name]) });
  const reply = await within(2000, "a connection served after the failures", requestOnce(listener.addr.port, text("")));
  assert.equal(decode(reply), "served");
  assert.deepEqual(seen, [[failure, "acceptLoop"], [failure, "acceptLoop"]]);
  listener.close();
  await within(2000, "acceptLoop settles when the listener closes", loop);
});

test("acceptLoop and serve: arguments checked by name; an anonymous handler's task is named for what it is; a bad close leaves the server closable; handlers cut off are told why", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  await assert.rejects(
    acceptLoop(listener, 5 as never),
    (e: unknown) => e instanceof TypeError && e.message === "acceptLoop: handler must be a function, not 5",
  );
  assert.throws(() => serve({ port: 0 }, 5 as never), /^TypeError: serve: handler must be a function, not 5$/);
  const names: string[] = [];
  const loop = acceptLoop(listener, () => {
    throw new Error("handler failed");
  }, { supervisor: (_error, task) => names.push(task.name) });
  await requestOnce(listener.addr.port, text("x")).catch(() => {});
  await eventually(2000, "the handler's error reaches the supervisor", () => names.length > 0);
  assert.deepEqual(names, ["connection handler"]);
  listener.close();
  await loop;

  const reasons: unknown[] = [];
  const server = serve({ hostname: "127.0.0.1", port: 0 }, async (stream) => {
    try {
      await stream.read(new Uint8Array(8)); // the client sends nothing
    } catch (error) {
      reasons.push(error instanceof Cancelled ? error.reason : error);
    }
  });
  const client = await connect({ port: server.addr.port });
  await eventually(2000, "the handler starts", () => server.connections > 0);
  await assert.rejects(
    server.close({ gracePeriod: -1 }),
    /^RangeError: close: invalid gracePeriod -1: expected milliseconds/,
  );
  await within(2000, "close after a bad close", server.close({ gracePeriod: 0 }));
  assert.deepEqual(reasons, ["the server is shutting down"]);
  await client.close();
});

test("serve: options checked by name; workers: undefined serves here; its supervisor gets the handlers' errors; close twice is one close", async () => {
  for (const options of [5, null, undefined]) {
    assert.throws(
      () => serve(options as never, () => {}),
      (e: unknown) => e instanceof TypeError && e.message === `serve: options must be an object, not ${options}`,
    );
  }
  const failures: string[] = [];
  const options = {
    hostname: "127.0.0.1",
    port: 0,
    workers: undefined,
    supervisor: (error: unknown) => failures.push(String(error)),
  };
  const server = serve(options, () => {
    throw new Error("handler failed");
  });
  assert.ok(!(server instanceof Promise), "without workers, serve runs on this thread and returns the server itself");
  await requestOnce(server.addr.port, text("x")).catch(() => {});
  await eventually(2000, "the handler's error reaches serve's supervisor", () => failures.length > 0);
  assert.deepEqual(failures, ["Error: handler failed"]);
  const first = server.close();
  assert.equal(server.close(), first, "a second close returns the first one's promise");
  await within(2000, "close", first);
  await within(2000, "finished", server.finished);
});

test("close lets running handlers finish: it resolves when the last one ends, long before the grace period, cutting none off", async () => {
  // Each handler waits as many tens of milliseconds as the byte it reads, then answers.
  const server = serve({ hostname: "127.0.0.1", port: 0 }, async (stream) => {
    const one = new Uint8Array(1);
    await stream.readFull(one);
    await sleep(one[0] * 10);
    await stream.write(text(`done after ${one[0] * 10} ms`));
  });
  const answers = [5, 30].map(async (tens) => {
    const client = await connect({ port: server.addr.port });
    await client.write(new Uint8Array([tens]));
    const buf = new Uint8Array(64);
    const n = await client.read(buf);
    await client.close();
    return n === null ? "nothing" : decode(buf.subarray(0, n));
  });
  await eventually(2000, "both handlers start", () => server.connections >= 2);
  await within(
    2000,
    "close with a 10 s grace period, once the 300 ms handler is done",
    server.close({ gracePeriod: 10_000 }),
  );
  assert.deepEqual(await Promise.all(answers), ["done after 50 ms", "done after 300 ms"]);
  // With no handler running, close does not wait at all.
  const idle = serve({ hostname: "127.0.0.1", port: 0 }, () => {});
  await within(2000, "close of an idle server with a 10 s grace period", idle.close({ gracePeriod: 10_000 }));
});

test("await using closes a server; finished resolves; a server whose handlers are done finishes once closed", async () => {
  let port = 0;
  let finished: Promise<void>;
  {
    await using server = serve({ hostname: "127.0.0.1", port: 0 }, async (stream) => {
      await stream.write(text("hi"));
    });
    port = server.addr.port;
    finished = server.finished;
    assert.deepEqual(await requestOnce(port, text("x")), text("hi"));
  }
  await within(2000, "finished after await using", finished);
  await assert.rejects(connect({ port }), (e: unknown) => (e as { code?: string }).code === "ConnectionRefused");
});

test("serve's close tells idle handlers at once: their reads reject with Cancelled, a goodbye still goes out, and clients get a clean end", async () => {
  const seen: unknown[] = [];
  const server = serve({ hostname: "127.0.0.1", port: 0 }, async (stream) => {
    try {
      await stream.read(new Uint8Array(64));
    } catch (error) {
      seen.push(error);
      await stream.write(text("bye\n"));
    }
  });
  const clients = await Promise.all([openClient(server.addr.port), openClient(server.addr.port)]);
  await eventually(2000, "both handlers running", () => server.connections === 2);
  const ends = clients.map((c) =>
    new Promise<string>((resolve, reject) => {
      let got = "";
      c.on("data", (d) => (got += d));
      c.once("end", () => resolve(got));
      c.once("error", reject);
    })
  );
  // A grace period far longer than the test's deadline: the handlers must not wait for it.
  await within(10_000, "close with idle handlers", server.close({ gracePeriod: 600_000 }));
  assert.deepEqual(await Promise.all(ends), ["bye\n", "bye\n"]);
  assert.equal(seen.length, 2);
  for (const error of seen) {
    assert.ok(error instanceof Cancelled, String(error));
    assert.equal(error.reason, "the server is closing");
  }
  for (const c of clients) c.destroy();
});

test("acceptLoop closes a handler's stream before its task ends: a close that fails after a return is the task's error; after a throw, the throw is", async () => {
  for (const how of ["returns", "throws"] as const) {
    const errors: unknown[] = [];
    const listener = listen({ hostname: "127.0.0.1", port: 0 });
    let handed: Stream | undefined;
    const loop = acceptLoop(listener, (stream) => {
      handed = stream;
      // 32 MiB the client never reads: the close at the handler's end waits for them.
      stream.write(new Uint8Array(32 << 20)).catch(() => {});
      if (how === "throws") throw new Error("the handler's own error");
    }, { supervisor: (error) => errors.push(error) });
    const client = await connect({ port: listener.addr.port });
    await eventually(2000, "the handler ran and its close waits", () => handed !== undefined && handed.closed);
    await sleep(50);
    assert.deepEqual(errors, [], "nothing is told while the close waits");
    client.abort(); // the queue can never be sent now
    await eventually(2000, "the task's end told", () => errors.length === 1);
    if (how === "returns") {
      // The close's own failure (the reset, while the queue waited), naming the close.
      assert.ok((errors[0] as object) instanceof ZevError, String(errors[0]));
      assert.match((errors[0] as Error).message, /^close to 127\.0\.0\.1:\d+: /);
    } else {
      assert.equal((errors[0] as Error).message, "the handler's own error");
    }
    listener.close();
    await loop;
  }
});
