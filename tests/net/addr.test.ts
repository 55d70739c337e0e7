/**
 * Addresses as messages and results show them: the native 20-byte layout read back
 * (IPv4, IPv6 in RFC 5952's shortest form, IPv4-mapped with its dotted tail), host:port
 * and Unix paths for messages, IP literals taken without DNS, and a name DNS cannot
 * resolve refused with the resolver's code.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, listen, listenDatagram, ZevError } from "../../mod.ts";
import { formatAddr, literalHost, parseAddr, setResolverForTests } from "../../src/net/addr.ts";
import { checkLeaks } from "../harness/leaks.ts";

checkLeaks("addr");

/** The native layout of an IPv6 address (zig/address.zig): family, port, 16 bytes. */
function v6(groups: number[], port = 443): Uint8Array {
  const buf = new Uint8Array(20);
  buf[0] = 6;
  buf[2] = port & 0xff;
  buf[3] = port >> 8;
  groups.forEach((g, i) => {
    buf[4 + 2 * i] = g >> 8;
    buf[5 + 2 * i] = g & 0xff;
  });
  return buf;
}

test("IPv6 addresses read back in RFC 5952's form: the longest run of zero groups, the first of equals, never a lone one", () => {
  const cases: [number[], string][] = [
    [[0, 0, 0, 0, 0, 0, 0, 1], "::1"],
    [[0, 0, 0, 0, 0, 0, 0, 0], "::"],
    [[0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], "2001:db8::1"],
    [[0xfe80, 0, 0, 0, 0, 0, 0, 0], "fe80::"],
    [[1, 0, 0, 2, 0, 0, 0, 3], "1:0:0:2::3"], // the longer run wins
    [[1, 0, 0, 2, 0, 0, 3, 4], "1::2:0:0:3:4"], // equal runs: the first
    [[1, 0, 2, 3, 4, 5, 6, 7], "1:0:2:3:4:5:6:7"], // one zero group stays
    [[0x2001, 0xdb8, 1, 2, 3, 4, 5, 0xabcd], "2001:db8:1:2:3:4:5:abcd"],
    [[0, 0, 0, 0, 0, 0xffff, 0x7f00, 1], "::ffff:127.0.0.1"], // IPv4-mapped: dotted
    [[0, 0, 0, 0, 1, 0xffff, 0x7f00, 1], "::1:ffff:7f00:1"], // not mapped: hex
    [[0, 0, 0, 0, 0, 0xfffe, 0x7f00, 1], "::fffe:7f00:1"],
  ];
  for (const [groups, want] of cases) {
    const addr = parseAddr(v6(groups, 8443));
    assert.deepEqual(addr, { hostname: want, port: 8443, family: 6 }, groups.join(","));
  }
  const buf = new Uint8Array(20);
  buf.set([4, 0, 0x50, 0x00, 10, 0, 0, 255]);
  assert.deepEqual(parseAddr(buf), { hostname: "10.0.0.255", port: 80, family: 4 });
});

test("formatAddr: host:port, IPv6 in brackets, a Unix path, or what an unnamed Unix socket is", () => {
  assert.equal(formatAddr({ hostname: "10.0.0.1", port: 5000, family: 4 }), "10.0.0.1:5000");
  assert.equal(formatAddr({ hostname: "::1", port: 80, family: 6 }), "[::1]:80");
  assert.equal(formatAddr({ path: "/run/app.sock", family: "unix" }), "/run/app.sock");
  assert.equal(formatAddr({ path: "", family: "unix" }), "an unnamed Unix socket");
});

test("literalHost takes IP literals (IPv6 with or without brackets) and localhost without DNS, and nothing else", () => {
  assert.equal(literalHost("127.0.0.1", "t"), "127.0.0.1");
  assert.equal(literalHost("::1", "t"), "::1");
  assert.equal(literalHost("[::1]", "t"), "::1");
  assert.equal(literalHost("[fe80::1]", "t"), "fe80::1");
  assert.equal(literalHost("localhost", "t"), "127.0.0.1");
  assert.equal(literalHost("[localhost]", "t"), "127.0.0.1");
  assert.equal(literalHost("[::1", "t"), undefined, "half a bracket is no literal");
  assert.equal(literalHost("::1]", "t"), undefined);
  assert.equal(literalHost("example.com", "t"), undefined);
  assert.equal(literalHost("1.2.3", "t"), undefined);
  assert.throws(() => literalHost("", "connect"), {
    name: "TypeError",
    message: 'connect: invalid hostname "": expected a host name or an IP address',
  });
});

test("a name DNS cannot resolve is NameNotResolved, with the name, the resolver's code and its error as the cause", async () => {
  const host = "zev-addr-test.invalid";
  await assert.rejects(connect({ hostname: host, port: 80 }), (e: unknown) => {
    assert.ok(e instanceof ZevError && e.code === "NameNotResolved", String(e));
    assert.match(e.message, new RegExp(`^connect: cannot resolve hostname "${host}" \\(E[A-Z_]+\\)$`));
    assert.ok(e.cause instanceof Error, "the resolver's own error is kept");
    return true;
  });
});

test("connect tries each address of a name in the resolver's order: a refused first one does not end it; all refused, the last error", async () => {
  // Two listeners on two ports; the name's first address is one where nothing listens.
  const v4 = listen({ hostname: "127.0.0.1", port: 0 });
  const free = listen({ hostname: "127.0.0.1", port: 0 });
  const freePort = free.addr.port;
  free.close(); // nothing listens there now: a connection is refused
  const asked: [string, number][] = [];
  setResolverForTests((name, family) => {
    asked.push([name, family]);
    return Promise.resolve(name === "two.test" ? ["::1", "127.0.0.1"] : ["127.0.0.2", "127.0.0.1"]);
  });
  try {
    // ::1 refuses (nothing listens on IPv6 there), then 127.0.0.1 connects.
    const a = await connect({ hostname: "two.test", port: v4.addr.port });
    assert.equal(a.remoteAddr.hostname, "127.0.0.1");
    const served = await v4.accept();
    await Promise.all([a.close(), served.close()]);
    // Every address refused: the last one's error, naming it.
    await assert.rejects(
      connect({ hostname: "both.test", port: freePort }),
      (e: unknown) =>
        e instanceof ZevError && e.code === "ConnectionRefused" &&
        e.message.startsWith(`connect to 127.0.0.1:${freePort}:`),
    );
    assert.deepEqual(asked, [["two.test", 0], ["both.test", 0]]);
  } finally {
    setResolverForTests(undefined);
    v4.close();
  }
});

test("an IPv4 UDP socket asks the resolver for IPv4 addresses only", async () => {
  const socket = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  const peer = listenDatagram({ hostname: "127.0.0.1", port: 0 });
  const asked: number[] = [];
  setResolverForTests((_name, family) => {
    asked.push(family);
    return Promise.resolve(family === 4 ? ["127.0.0.1"] : ["::1", "127.0.0.1"]);
  });
  try {
    await socket.send(new Uint8Array([7]), { hostname: "peer.test", port: peer.addr.port });
    const got = await peer.receive(new Uint8Array(4));
    assert.equal(got.bytes, 1);
    assert.deepEqual(asked, [4]);
  } finally {
    setResolverForTests(undefined);
    socket.close();
    peer.close();
  }
});
