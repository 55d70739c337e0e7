/**
 * TLS streams, against peers nobody here wrote as well as against zev itself: OpenSSL's
 * `s_client` and `s_server`, curl, and the runtime's own `node:tls`. Verification (a
 * wrong CA, a wrong host, an expired or self-signed certificate), mutual TLS, ALPN,
 * close_notify and truncation, STARTTLS, and handshakes that fail, stall or flood a
 * listener while it keeps serving the others.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import net from "node:net";
import nodeTls from "node:tls";
import {
  acceptLoop,
  configure,
  connect,
  listen,
  type Listener,
  sleep,
  startTls,
  stats,
  type Stream,
  type TlsServerOptions,
  ZevError,
} from "../../mod.ts";
import { certs } from "../harness/certs.ts";
import { eventually, text, within } from "../harness/helpers.ts";
import { checkLeaks } from "../harness/leaks.ts";

// Bun opens descriptors for process.stdout and stderr lazily, on node:tls's first use:
// open them before the leak check counts (they are Bun's, not a leak of zev's).
void process.stdout.fd, void process.stderr.fd;
checkLeaks("tls");

const c = certs();
const decoder = new TextDecoder();

/** A TLS echo server; `errors` collects what its listener told onAcceptError. */
function echoServer(tls: Partial<TlsServerOptions> = {}) {
  const errors: ZevError[] = [];
  const listener = listen({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: c.server.cert, key: c.server.key, ...tls },
    onAcceptError: (e) => errors.push(e),
  });
  const seen: Stream[] = [];
  const served = acceptLoop(listener, async (s) => {
    seen.push(s);
    const buf = new Uint8Array(64 * 1024);
    for (let n; (n = await s.read(buf)) !== null;) await s.write(buf.subarray(0, n));
  });
  const stop = async () => {
    listener.close();
    await served;
    // Handlers still running go on after the loop: wait for their streams too.
    await eventually(5000, "every handler's stream closed", () => seen.every((s) => s.closed));
  };
  return { listener, port: listener.addr.port, errors, seen, stop };
}

async function roundTrip(s: Stream, message: string): Promise<string> {
  await s.write(text(message));
  const buf = new Uint8Array(message.length);
  await s.readFull(buf);
  return decoder.decode(buf);
}

/** Runs a command; resolves with its stdout once it exits (stdin: `input`, then closed). */
function run(
  cmd: string,
  args: string[],
  input = "",
  ms = 10_000,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "", err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), ms);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
    child.stdin.end(input);
  });
}

/**
 * `openssl s_server` on a free port; `kill` ends it (SIGKILL: no close_notify). s_server
 * takes no port 0: a port below the kernel's ephemeral range is tried, and another if it
 * is taken (s_server then exits).
 */
async function sServer(extra: string[] = []) {
  for (let attempt = 0;; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const child = spawn("openssl", [
      "s_server",
      "-accept",
      `127.0.0.1:${port}`,
      "-cert",
      c.server.certFile,
      "-key",
      c.server.keyFile,
      "-naccept",
      "1",
      ...extra,
    ], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "", exited = false;
    child.stdout.on("data", (d) => (out += d));
    child.once("exit", () => (exited = true));
    await eventually(5000, "s_server is listening, or gone", () => out.includes("ACCEPT") || exited);
    if (out.includes("ACCEPT")) return { port, child, out: () => out, kill: () => child.kill("SIGKILL") };
    if (attempt === 4) throw new Error(`s_server would not listen: ${out}`);
  }
}

test("the engine is the system's OpenSSL 3, found at run time", () => {
  const tls = configure().tls;
  assert.equal(tls.engine, "openssl", JSON.stringify(tls));
  assert.match((tls as { version: string }).version, /^OpenSSL 3\./);
});

test("zev to zev: echo, what each side agreed, and close_notify read as a clean end", async () => {
  const server = echoServer({ alpn: ["h2", "http/1.1"] });
  const s = await connect({ hostname: "localhost", port: server.port, tls: { ca: c.ca, alpn: ["http/1.1", "h2"] } });
  assert.equal(await roundTrip(s, "hello over TLS"), "hello over TLS");
  const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => i * 7);
  const back = new Uint8Array(big.length);
  await Promise.all([s.write(big), s.readFull(back)]);
  assert.deepEqual(back, big);
  const info = s.tls!;
  assert.match(info.protocol, /^TLSv1\.[23]$/);
  assert.ok(info.cipher.length > 0);
  assert.equal(info.alpn, "h2", "the server's preference wins");
  assert.ok(info.peerCertificate && info.peerCertificate[0] === 0x30, "the server's certificate, DER");
  const theirs = server.seen[0].tls!;
  assert.equal(theirs.servername, "localhost");
  assert.equal(theirs.peerCertificate, undefined, "no client certificate was asked for");
  await s.closeWrite(); // close_notify and FIN: the server reads a clean end, and closes too
  assert.equal(await s.read(new Uint8Array(8)), null);
  await s.close();
  const probe = await connect({ port: server.port });
  assert.equal(probe.tls, undefined, "a plain stream has no tls");
  await probe.close(); // an end in the middle of the handshake: told, never accepted
  await eventually(1000, "the plain probe's handshake failed", () => server.errors.length === 1);
  assert.match(server.errors[0].message, /the peer closed the connection during the handshake/);
  await server.stop();
});

test("verification: a wrong CA, a wrong host, an expired and a self-signed certificate fail with TlsUnverified", async () => {
  const cases: [Partial<TlsServerOptions>, Record<string, unknown>, RegExp][] = [
    [{}, { ca: c.stranger.cert }, /unable to get local issuer certificate/],
    [{}, { ca: c.ca, servername: "other.test" }, /Hostname mismatch|hostname mismatch/i],
    [{ cert: c.expired.cert, key: c.expired.key }, { ca: c.ca }, /certificate has expired/],
    [{ cert: c.selfSigned.cert, key: c.selfSigned.key }, true as never, /self-signed certificate/],
  ];
  for (const [serverTls, clientTls, reason] of cases) {
    const server = echoServer(serverTls);
    await assert.rejects(
      connect({ hostname: "localhost", port: server.port, tls: clientTls as never }),
      (e: unknown) => e instanceof ZevError && e.code === "TlsUnverified" && reason.test(e.message),
    );
    await server.stop();
  }
  // Verification off takes a name that says so; `rejectUnauthorized: false` is refused.
  const server = echoServer({ cert: c.selfSigned.cert, key: c.selfSigned.key });
  await assert.rejects(
    connect({ port: server.port, tls: { rejectUnauthorized: false } as never }),
    /unsafelyIgnoreCertificateErrors: true/,
  );
  const insecure = await connect({ port: server.port, tls: { unsafelyIgnoreCertificateErrors: true } });
  assert.equal(await roundTrip(insecure, "x"), "x");
  await insecure.close();
  await server.stop();
});

test("SNI: each host name gets its certificate (exact, then *.domain); others get the default", async () => {
  const server = echoServer({
    sni: {
      "other.test": { cert: c.other.cert, key: c.other.key },
      "*.wild.test": { cert: c.wild.cert, key: c.wild.key },
    },
  });
  const subject = async (name: string) => {
    const s = await connect({ hostname: "127.0.0.1", port: server.port, tls: { ca: c.ca, servername: name } });
    const seen = new TextDecoder("latin1").decode(s.tls!.peerCertificate!);
    await s.close();
    return seen;
  };
  assert.match(await subject("other.test"), /other\.test/);
  assert.match(await subject("a.wild.test"), /\*\.wild\.test/);
  assert.match(await subject("localhost"), /localhost/);
  // One label only: a.b.wild.test gets the default certificate, which does not name it.
  await assert.rejects(
    connect({ hostname: "127.0.0.1", port: server.port, tls: { ca: c.ca, servername: "a.b.wild.test" } }),
    (e: unknown) => e instanceof ZevError && e.code === "TlsUnverified",
  );
  assert.throws(() => listen({ port: 0, tls: { ...c.server, sni: { "bad name!": c.other } } }), /not a host name/);
  await server.stop();
});

test("mutual TLS: a client certificate the server's CA signed is seen; none, or an unknown one, fails", async () => {
  const server = echoServer({ requestCert: true, ca: c.ca });
  const s = await connect({
    hostname: "localhost",
    port: server.port,
    tls: { ca: c.ca, cert: c.client.cert, key: c.client.key },
  });
  assert.equal(await roundTrip(s, "mine"), "mine");
  assert.ok(server.seen[0].tls!.peerCertificate!.length > 100);
  await s.close();
  for (const tls of [{ ca: c.ca }, { ca: c.ca, cert: c.stranger.cert, key: c.stranger.key }]) {
    // TLS 1.3 clients learn of the refusal at their first read.
    const bad = await connect({ hostname: "localhost", port: server.port, tls }).then(
      (x) => x.read(new Uint8Array(4)).then(() => "read", (e) => e.code).finally(() => x.abort()),
      (e) => e.code,
    );
    assert.match(bad, /^Tls(Failed|Unverified)$|^ConnectionReset$/);
  }
  await eventually(1000, "both refusals told", () => server.errors.length === 2);
  assert.equal(server.seen.length, 1, "no handler ever saw a refused client");
  await server.stop();
});

test("OpenSSL's s_client against a zev server, and a zev client against s_server", async () => {
  const server = echoServer({ alpn: ["zev-test"] });
  // s_client keeps the connection while its stdin is open: a line, its echo, then the end.
  const client = spawn("openssl", [
    "s_client",
    "-connect",
    `127.0.0.1:${server.port}`,
    "-CAfile",
    c.caFile,
    "-verify_return_error",
    "-servername",
    "localhost",
    "-alpn",
    "zev-test",
    "-quiet",
  ], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "", err = "";
  client.stdout.on("data", (d) => (out += d));
  client.stderr.on("data", (d) => (err += d));
  client.stdin.write("a line through s_client\n");
  await eventually(5000, `s_client's echo (${err})`, () => out.includes("a line through s_client"));
  client.kill();
  assert.equal(server.seen[0].tls!.alpn, "zev-test");
  await server.stop();
  // s_server -rev answers each line reversed; killed, it sends no close_notify.
  const peer = await sServer(["-rev"]);
  const s = await connect({ hostname: "localhost", port: peer.port, tls: { ca: c.ca } });
  await s.write(text("abc\n"));
  const buf = new Uint8Array(64);
  let got = "";
  while (!got.includes("cba")) got += decoder.decode(buf.subarray(0, (await s.read(buf))!));
  peer.kill();
  await assert.rejects(
    (async () => {
      while ((await s.read(buf)) !== null);
    })(),
    (e: unknown) => e instanceof ZevError && e.code === "TlsTruncated",
  );
  s.abort();
});

test("curl fetches over HTTPS from a zev server", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0, tls: { cert: c.server.cert, key: c.server.key } });
  const served = acceptLoop(listener, async (s) => {
    const buf = new Uint8Array(4096);
    let head = "";
    while (!head.includes("\r\n\r\n")) head += decoder.decode(buf.subarray(0, (await s.read(buf))!));
    await s.write(text("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nzev ok"));
  });
  const r = await run("curl", ["-sS", "--cacert", c.caFile, `https://localhost:${listener.addr.port}/`]);
  assert.equal(r.out, "zev ok", r.err);
  listener.close();
  await served;
});

test("the runtime's own node:tls, as client of a zev server and as server for a zev client", async () => {
  const server = echoServer();
  const socket = nodeTls.connect({ host: "127.0.0.1", port: server.port, ca: c.ca, servername: "localhost" });
  await new Promise((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject));
  socket.write("from node:tls");
  const echoed = await new Promise<string>((resolve) => socket.once("data", (d) => resolve(String(d))));
  assert.equal(echoed, "from node:tls");
  socket.destroy();
  await new Promise((resolve) => socket.once("close", resolve));
  await server.stop();
  const nodeServer = nodeTls.createServer({ cert: c.server.cert, key: c.server.key }, (s) => s.pipe(s));
  await new Promise<void>((resolve) => nodeServer.listen(0, "127.0.0.1", resolve));
  const port = (nodeServer.address() as net.AddressInfo).port;
  const s = await connect({ hostname: "localhost", port, tls: { ca: c.ca } });
  assert.equal(await roundTrip(s, "to node:tls"), "to node:tls");
  await s.close();
  await new Promise((resolve) => nodeServer.close(resolve));
});

test("STARTTLS: a plain exchange, then both sides upgrade the same streams", async () => {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const serverSide = (async () => {
    const s = await listener.accept();
    const buf = new Uint8Array(9);
    await s.readFull(buf);
    assert.equal(decoder.decode(buf), "STARTTLS\n");
    await s.write(text("GO\n"));
    await startTls(s, { isServer: true, cert: c.server.cert, key: c.server.key });
    assert.ok(s.tls);
    const n = await s.read(buf);
    await s.write(buf.subarray(0, n!));
    await s.close();
  })();
  const client = await connect({ port: listener.addr.port });
  await client.write(text("STARTTLS\n"));
  const go = new Uint8Array(3);
  await client.readFull(go);
  await assert.rejects(startTls(client, { ca: c.ca } as never), /servername/);
  await startTls(client, { servername: "localhost", ca: c.ca });
  assert.equal(await roundTrip(client, "secret"), "secret");
  assert.equal(await client.read(new Uint8Array(4)), null, "the server's close_notify");
  await client.close();
  await serverSide;
  listener.close();
});

test("handshakes that fail or stall never reach accept, are told, and hold no other client back", async () => {
  const before = stats().tlsHandshakesFailed;
  const server = echoServer({ handshakeTimeout: 2000 });
  // Garbage, a truncated ClientHello, and twenty clients that say nothing at all.
  const garbage = net.connect(server.port, "127.0.0.1", () => garbage.write("GET / HTTP/1.1\r\n\r\n"));
  const cut = net.connect(server.port, "127.0.0.1", () => {
    cut.write(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]));
    cut.end();
  });
  const silent = Array.from({ length: 20 }, () => net.connect(server.port, "127.0.0.1"));
  for (const sock of [garbage, cut, ...silent]) sock.on("error", () => {});
  // Meanwhile real clients are served at once.
  for (let i = 0; i < 5; i++) {
    const s = await connect({ hostname: "localhost", port: server.port, tls: { ca: c.ca } });
    assert.equal(await roundTrip(s, `client ${i}`), `client ${i}`);
    await s.close();
  }
  // Served while the stalled handshakes still wait for their deadline: none timed out yet.
  assert.equal(server.errors.filter((e) => e.code === "TimedOut").length, 0, "served before any deadline passed");
  await within(5000, "every bad handshake told", eventually(5000, "22 told", () => server.errors.length === 22));
  const codes = new Set(server.errors.map((e) => e.code));
  assert.ok(codes.has("TlsFailed"), [...codes].join());
  assert.ok(codes.has("TimedOut"), [...codes].join());
  assert.equal(stats().tlsHandshakesFailed - before, 22);
  assert.equal(server.seen.length, 5);
  for (const sock of [garbage, cut, ...silent]) sock.destroy();
  await server.stop();
});

test("a flood of handshakes past the per-listener bound waits in the backlog, and is served", async () => {
  const server = echoServer();
  const clients = await within(
    30_000,
    "300 TLS clients connected",
    Promise.all(
      Array.from({ length: 300 }, () => connect({ hostname: "localhost", port: server.port, tls: { ca: c.ca } })),
    ),
  );
  for (const [i, s] of clients.entries()) assert.equal(await roundTrip(s, `n${i}`), `n${i}`);
  await Promise.all(clients.map((s) => s.close()));
  assert.equal(server.errors.length, 0);
  await server.stop();
});

test("bad TLS options are errors naming what was wrong, and open nothing", async () => {
  const before = stats().liveHandles;
  assert.throws(() => listen({ port: 0, tls: { cert: "nope", key: c.server.key } }), /tls\.cert and tls\.key must be/);
  assert.throws(() => listen({ port: 0, tls: { cert: c.server.cert, key: c.other.key } }), /tls\.cert and tls\.key/);
  assert.throws(() => listen({ port: 0, tls: { cert: c.server.cert } as never }), /tls\.key must be PEM/);
  assert.throws(() => listen({ port: 0, tls: { ...c.server, alpn: [""] } }), /tls\.alpn/);
  assert.throws(() => listen({ port: 0, tls: { ...c.server, minVersion: "SSLv3" as never } }), /minVersion/);
  // Checked before anything goes out: port 1 would refuse.
  await assert.rejects(connect({ port: 1, tls: { ca: "not a certificate" } }), /tls\.ca must hold PEM/);
  await assert.rejects(
    connect({ port: 1, tls: { cert: c.client.cert } as never }),
    /tls\.cert and tls\.key go together/,
  );
  await assert.rejects(connect({ port: 1, tls: { alpn: "h2" } as never }), /tls\.alpn must be/);
  await sleep(10);
  assert.equal(stats().liveHandles, before);
});

test("a TLS listener's close aborts the handshakes under way and rejects its accepts", async () => {
  const listener: Listener = listen({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: c.server.cert, key: c.server.key },
  });
  const pending = listener.accept();
  const silent = net.connect(listener.addr.port, "127.0.0.1");
  silent.on("error", () => {});
  await sleep(50);
  listener.close();
  await assert.rejects(pending, /closed/);
  silent.destroy();
});
