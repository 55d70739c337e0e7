//! The loop's behaviour on real sockets over loopback: accept batches under a burst,
//! drained reads and writes, the bounded write queue, half-close, resets, stale handles,
//! Unix and UDP sockets, and parking; and the helpers the other socket tests share
//! (listener_test.zig, ring_test.zig). Each test bounds its waits and fails rather than
//! hangs.

const std = @import("std");
const testing = std.testing;
const loop_mod = @import("loop.zig");
const Loop = loop_mod.Loop;
const Flag = @import("loop.zig").Flag;
const Opt = @import("loop.zig").Opt;
const limits = @import("limits.zig");
const sys = @import("sys.zig");

pub const Events = struct {
    buf: [2 * 256]u32 = undefined,
    n: usize = 0,

    pub fn poll(e: *Events, loop: *Loop, timeout_ms: i32) !void {
        e.n = try loop.poll(&e.buf, timeout_ms);
    }

    pub fn has(e: *const Events, h: u32, flag: u32) bool {
        for (0..e.n) |i| {
            if (e.buf[2 * i] == h and e.buf[2 * i + 1] & flag != 0) return true;
        }
        return false;
    }
};

/// The backend under test: the poll backend, or io_uring with ZEV_BACKEND=io_uring.
pub fn backendUnderTest() loop_mod.Backend {
    const want = std.posix.getenv("ZEV_BACKEND") orelse return .poll;
    return if (std.mem.eql(u8, want, "io_uring")) .io_uring else .poll;
}

pub fn open(max_handles: u32) !*Loop {
    return Loop.create(testing.allocator, max_handles, backendUnderTest());
}

pub fn portOf(loop: *Loop, h: u32) !u32 {
    var out: [20]u8 = undefined;
    try loop.addressOf(h, false, &out);
    return std.mem.readInt(u16, out[2..4], .little);
}

/// Polls until `h` gets `flag`, at most `ms` milliseconds.
pub fn waitFor(loop: *Loop, h: u32, flag: u32, ms: i64) !void {
    var e: Events = .{};
    const deadline = std.time.milliTimestamp() + ms;
    while (std.time.milliTimestamp() < deadline) {
        try e.poll(loop, 10);
        if (e.has(h, flag)) return;
    }
    return error.TestTimedOut;
}

/// Connects and polls until the connection is established.
pub fn connectNow(loop: *Loop, port: u32) !u32 {
    const h = try loop.connect("127.0.0.1", port, 0);
    loop.status(h) catch |err| switch (err) {
        error.WouldBlock => try waitFor(loop, h, Flag.write, 2000),
        else => return err,
    };
    try loop.status(h);
    return h;
}

/// Accepts one connection, polling for it if needed.
pub fn acceptOne(loop: *Loop, l: u32) !u32 {
    var out: [1]u32 = undefined;
    const deadline = std.time.milliTimestamp() + 2000;
    while (std.time.milliTimestamp() < deadline) {
        if (loop.accept(l, &out)) |_| return out[0] else |err| switch (err) {
            error.WouldBlock => try waitFor(loop, l, Flag.accept, 2000),
            else => return err,
        }
    }
    return error.TestTimedOut;
}

/// Reads exactly `buf.len` bytes, polling between reads.
pub fn readFull(loop: *Loop, h: u32, buf: []u8) !void {
    var got: usize = 0;
    while (got < buf.len) {
        const n = loop.read(h, buf[got..]) catch |err| switch (err) {
            error.WouldBlock => {
                try waitFor(loop, h, Flag.read, 2000);
                continue;
            },
            else => return err,
        };
        if (n == 0) return error.EndOfStream;
        got += n;
    }
}

test "loop: listen, connect, accept, echo, close" {
    const loop = try open(64);
    defer loop.destroy();
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const port = try portOf(loop, l);
    try testing.expect(port != 0);
    const c = try connectNow(loop, port);
    const s = try acceptOne(loop, l);
    try testing.expectEqual(@as(usize, 5), try loop.write(c, "hello"));
    var buf: [5]u8 = undefined;
    try readFull(loop, s, &buf);
    try testing.expectEqualStrings("hello", &buf);
    try testing.expectEqual(@as(usize, 5), try loop.write(s, &buf));
    try readFull(loop, c, &buf);
    try testing.expectEqualStrings("hello", &buf);
    try loop.close(c, false);
    // The server sees the end of stream.
    var one: [1]u8 = undefined;
    const n = loop.read(s, &one) catch |err| switch (err) {
        error.WouldBlock => blk: {
            try waitFor(loop, s, Flag.read, 2000);
            break :blk try loop.read(s, &one);
        },
        else => return err,
    };
    try testing.expectEqual(@as(usize, 0), n);
    try loop.close(s, false);
    try loop.close(l, false);
    try testing.expectEqual(@as(u64, 0), loop.snapshot().live_handles);
}

/// Connects `clients.len` streams to listener `l`, the accepted ends in `servers`.
pub fn connectPairs(loop: *Loop, l: u32, clients: []u32, servers: []u32) !void {
    const port = try portOf(loop, l);
    for (clients, servers) |*c, *s| {
        c.* = try connectNow(loop, port);
        s.* = try acceptOne(loop, l);
    }
}

/// `connectPairs`; then each client writes `chunk.len` bytes of its index, and the loop
/// polls 200 ms while nobody reads, so that everything arrives (and the write queues
/// drain meanwhile).
pub fn sendTagged(loop: *Loop, l: u32, clients: []u32, servers: []u32, chunk: []u8) !void {
    try connectPairs(loop, l, clients, servers);
    for (clients, 0..) |c, i| {
        @memset(chunk, @intCast(i));
        try testing.expectEqual(chunk.len, try loop.write(c, chunk));
    }
    var e: Events = .{};
    for (0..40) |_| try e.poll(loop, 5);
}

/// Every byte of `got` is `i`, as `sendTagged`'s client `i` sent it.
pub fn expectTagged(got: []const u8, i: usize) !void {
    for (got) |b| try testing.expectEqual(@as(u8, @intCast(i)), b);
}

test "loop: many streams receive at once and none reads: every byte arrives once they do" {
    // On io_uring, 96 streams of 48 KiB unread need more receive buffers than the ring
    // has (limits.ring_buffers): receives run out, wait, and start again as streams are
    // read. On epoll, the kernel's buffers hold it all.
    const loop = try open(512);
    defer loop.destroy();
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const n = 96;
    const size = 48 * 1024;
    try testing.expect(n * size > @as(usize, limits.ring_buffers) * limits.ring_buffer_bytes);
    var clients: [n]u32 = undefined;
    var servers: [n]u32 = undefined;
    var chunk: [size]u8 = undefined;
    try sendTagged(loop, l, &clients, &servers, &chunk);
    for (servers, 0..) |s, i| {
        try readFull(loop, s, &chunk);
        try expectTagged(&chunk, i);
    }
    for (clients) |c| try loop.close(c, false);
    for (servers) |s| try loop.close(s, false);
    try loop.close(l, false);
    try testing.expectEqual(@as(u64, 0), loop.snapshot().live_handles);
}

test "loop: a burst of 1000 connections is accepted in bounded batches, none left behind" {
    const loop = try open(4096);
    defer loop.destroy();
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const port = try portOf(loop, l);
    const total = 1000;
    var clients: [total]u32 = undefined;
    for (&clients) |*c| c.* = try loop.connect("127.0.0.1", port, 0);

    // Accept the way a caller does: once, then again only on each ACCEPT event. A full
    // batch leaves connections behind; level triggering must report them again.
    var accepted: usize = 0;
    var out: [limits.accept_batch + 8]u32 = undefined;
    var e: Events = .{};
    var ready = true;
    const deadline = std.time.milliTimestamp() + 10_000;
    while (accepted < total and std.time.milliTimestamp() < deadline) {
        if (ready) {
            if (loop.accept(l, &out)) |n| {
                try testing.expect(n <= limits.accept_batch);
                accepted += n;
            } else |err| if (err != error.WouldBlock) return err;
        }
        try e.poll(loop, 100);
        ready = e.has(l, Flag.accept);
    }
    try testing.expectEqual(@as(usize, total), accepted);
}

test "loop: stale, forged and wrong-kind handles are errors, not crashes" {
    const loop = try open(16);
    defer loop.destroy();
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    var buf: [8]u8 = undefined;
    try testing.expectError(error.WrongKind, loop.read(l, &buf));
    try testing.expectError(error.WrongKind, loop.write(l, "x"));
    var out: [4]u32 = undefined;
    const port = try portOf(loop, l);
    const c = try connectNow(loop, port);
    try testing.expectError(error.WrongKind, loop.accept(c, &out));
    try loop.close(c, false);
    try testing.expectError(error.BadHandle, loop.read(c, &buf));
    try testing.expectError(error.BadHandle, loop.write(c, "x"));
    try testing.expectError(error.BadHandle, loop.close(c, false));
    try testing.expectError(error.BadHandle, loop.read(0, &buf));
    try testing.expectError(error.BadHandle, loop.read(0x7fff_ffff, &buf));
    try testing.expectError(error.InvalidArgument, loop.listen("not an ip", 1, 0, 0));
    try testing.expectError(error.InvalidArgument, loop.listen("127.0.0.1", 70000, 0, 0));
    try testing.expectError(error.InvalidArgument, loop.listen("127.0.0.1", 0, 0, 1 << 9));
    try testing.expectError(error.InvalidArgument, loop.connect("127.0.0.1", 0, 0));
    try testing.expectError(error.InvalidArgument, loop.connect("127.0.0.1", 1, Opt.reuse_port));
}

test "loop: the write queue is bounded and every byte arrives in order once the peer reads" {
    const loop = try open(16);
    defer loop.destroy();
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const c = try connectNow(loop, try portOf(loop, l));
    const s = try acceptOne(loop, l);
    const limit = 64 * 1024;
    try loop.setQueueLimit(c, limit);

    // Write a counting pattern until the kernel buffers and the queue are full.
    var chunk: [16 * 1024]u8 = undefined;
    var sent: usize = 0;
    while (true) {
        for (&chunk, 0..) |*b, i| b.* = @truncate(sent + i);
        const n = try loop.write(c, &chunk);
        sent += n;
        try testing.expect(loop.snapshot().queued_bytes <= limit);
        if (n < chunk.len) break;
        try testing.expect(sent < 64 * 1024 * 1024);
    }
    // Whatever the stream took, the peer receives, byte for byte.
    var got: usize = 0;
    var buf: [32 * 1024]u8 = undefined;
    var e: Events = .{};
    const deadline = std.time.milliTimestamp() + 10_000;
    while (got < sent and std.time.milliTimestamp() < deadline) {
        const n = loop.read(s, &buf) catch |err| switch (err) {
            error.WouldBlock => {
                try e.poll(loop, 10);
                continue;
            },
            else => return err,
        };
        for (buf[0..n], 0..) |b, i| try testing.expectEqual(@as(u8, @truncate(got + i)), b);
        got += n;
    }
    try testing.expectEqual(sent, got);
    try testing.expectEqual(@as(u32, 0), try loop.flush(c));
}

test "loop: half-close sends queued bytes first, then the end of stream" {
    const loop = try open(16);
    defer loop.destroy();
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const c = try connectNow(loop, try portOf(loop, l));
    const s = try acceptOne(loop, l);
    // The server does not read yet: the kernel's buffers fill and the rest queues.
    const chunk = [_]u8{'q'} ** 65536;
    var sent: usize = 0;
    while (true) {
        const n = try loop.write(c, &chunk);
        sent += n;
        if (n < chunk.len) break;
    }
    try testing.expect(loop.snapshot().queued_bytes > 0);
    try loop.shutdown(c);
    try testing.expectError(error.Closed, loop.write(c, "more"));
    // Every byte arrives, then the end of stream; the queue drains as the server reads.
    var buf: [65536]u8 = undefined;
    var got: usize = 0;
    const deadline = std.time.milliTimestamp() + 5000;
    while (std.time.milliTimestamp() < deadline) {
        const n = loop.read(s, &buf) catch |err| switch (err) {
            error.WouldBlock => {
                var e: Events = .{};
                try e.poll(loop, 10);
                continue;
            },
            else => return err,
        };
        if (n == 0) break;
        got += n;
    } else return error.TestTimedOut;
    try testing.expectEqual(sent, got);
    // The server can still answer on its open write side.
    _ = try loop.write(s, "reply");
    var reply: [5]u8 = undefined;
    try readFull(loop, c, &reply);
    try testing.expectEqualStrings("reply", &reply);
}

test "loop: a refused connect and a reset peer are reported as errors" {
    const loop = try open(16);
    defer loop.destroy();
    // A port that was just free: nothing listens there.
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const port = try portOf(loop, l);
    try loop.close(l, false);
    try testing.expectError(error.ConnectionRefused, connectNow(loop, port));

    const l2 = try loop.listen("127.0.0.1", 0, 0, 0);
    const c = try connectNow(loop, try portOf(loop, l2));
    const s = try acceptOne(loop, l2);
    try loop.close(c, true); // RST
    var buf: [8]u8 = undefined;
    try testing.expectError(error.ConnectionReset, readFull(loop, s, &buf));
}

test "loop: park returns when the loop has events, and wake ends it" {
    const loop = try open(16);
    defer loop.destroy();
    // Nothing pending: a short park times out.
    try testing.expect(!try loop.park(10));
    // Woken from another thread.
    const waker = try std.Thread.spawn(.{}, Loop.wake, .{loop});
    try testing.expect(try loop.park(5000));
    waker.join();
    var e: Events = .{};
    try e.poll(loop, 0); // takes the wake
    try testing.expect(!try loop.park(0));
    // A connection arriving wakes the parked thread too, and leaves the event to poll.
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    var out: [1]u32 = undefined;
    try testing.expectError(error.WouldBlock, loop.accept(l, &out));
    const c = try loop.connect("127.0.0.1", try portOf(loop, l), 0);
    _ = c;
    try testing.expect(try loop.park(5000));
    try waitFor(loop, l, Flag.accept, 2000);
}

test "loop: a connect to IPv6 keeps the whole peer address" {
    const loop = try open(16);
    defer loop.destroy();
    const l = try loop.listen("::1", 0, 0, 0);
    const c = try loop.connect("::1", try portOf(loop, l), 0);
    var peer: [20]u8 = undefined;
    try loop.addressOf(c, true, &peer);
    try testing.expectEqual(@as(u8, 6), peer[0]);
    try testing.expectEqual(@as(u8, 1), peer[19]);
}

test "loop: the peer's address survives a reset" {
    const loop = try open(16);
    defer loop.destroy();
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const c = try connectNow(loop, try portOf(loop, l));
    const s = try acceptOne(loop, l);
    var before: [20]u8 = undefined;
    try loop.addressOf(s, true, &before);
    try testing.expectEqual(@as(u8, 4), before[0]);
    try testing.expectEqualSlices(u8, &.{ 127, 0, 0, 1 }, before[4..8]);
    // The connecting side knows its peer from connect: the listener's address.
    var cpeer: [20]u8 = undefined;
    try loop.addressOf(c, true, &cpeer);
    var laddr: [20]u8 = undefined;
    try loop.addressOf(l, false, &laddr);
    try testing.expectEqualSlices(u8, &laddr, &cpeer);
    try loop.close(c, true); // RST
    var buf: [8]u8 = undefined;
    try testing.expectError(error.ConnectionReset, readFull(loop, s, &buf));
    var after: [20]u8 = undefined;
    try loop.addressOf(s, true, &after);
    try testing.expectEqualSlices(u8, &before, &after);
}

test "loop: socket options: no delay by default, keep-alive and reuse-port when asked, inherited by accepted streams" {
    const loop = try open(32);
    defer loop.destroy();
    const posix = std.posix;
    const l = try loop.listen("127.0.0.1", 0, 0, Opt.keep_alive | Opt.reuse_port);
    // A second listener on the same port: reuse-port lets the kernel share it.
    const l2 = try loop.listen("127.0.0.1", try portOf(loop, l), 0, Opt.reuse_port | Opt.keep_alive);
    const c = try connectNow(loop, try portOf(loop, l));
    const s = acceptOne(loop, l) catch try acceptOne(loop, l2);
    const fd = loop.sockets.get(s).?.fd();
    try testing.expect(try sys.getInt(fd, posix.IPPROTO.TCP, sys.tcp_nodelay) != 0);
    try testing.expect(try sys.getInt(fd, posix.SOL.SOCKET, posix.SO.KEEPALIVE) != 0);
    const cfd = loop.sockets.get(c).?.fd();
    try testing.expect(try sys.getInt(cfd, posix.SOL.SOCKET, posix.SO.KEEPALIVE) == 0);
    const d = try loop.connect("127.0.0.1", try portOf(loop, l), Opt.delay);
    try testing.expect(try sys.getInt(loop.sockets.get(d).?.fd(), posix.IPPROTO.TCP, sys.tcp_nodelay) == 0);
}

// ---- Unix sockets -----------------------------------------------------------------------

/// A fresh path for a Unix socket under /tmp (removed by the caller).
fn socketPath(buf: []u8) ![:0]u8 {
    return std.fmt.bufPrintZ(buf, "/tmp/zev-test-{x}.sock", .{std.crypto.random.int(u64)});
}

fn exists(path: [:0]const u8) bool {
    std.fs.cwd().accessZ(path, .{}) catch return false;
    return true;
}

/// A socket file left behind by a process that died: bound, never listening, closed.
fn leaveStaleFile(path: [:0]const u8) !void {
    const addr = try std.net.Address.initUnix(path);
    const fd = try sys.socket(std.posix.AF.UNIX);
    defer sys.close(fd);
    try sys.bind(fd, &addr.any, addr.getOsSockLen());
}

test "unix: listen, connect, echo, and the socket file goes with the listener" {
    const loop = try open(64);
    defer loop.destroy();
    var buf: [64]u8 = undefined;
    const path = try socketPath(&buf);
    const l = try loop.listenUnix(path, 0, 0);
    try testing.expect(exists(path));
    const c = try loop.connectUnix(path, 0);
    loop.status(c) catch |err| switch (err) {
        error.WouldBlock => try waitFor(loop, c, Flag.write, 2000),
        else => return err,
    };
    const s = try acceptOne(loop, l);
    try testing.expectEqual(@as(usize, 5), try loop.write(c, "hello"));
    var got: [5]u8 = undefined;
    try readFull(loop, s, &got);
    try testing.expectEqualStrings("hello", &got);
    var addr: [20]u8 = undefined;
    try loop.addressOf(c, true, &addr);
    try testing.expectEqual(@as(u8, 1), addr[0]);
    try loop.addressOf(s, true, &addr);
    try testing.expectEqual(@as(u8, 1), addr[0]);
    try loop.addressOf(l, false, &addr);
    try testing.expectEqual(@as(u8, 1), addr[0]);
    try loop.close(l, false);
    try testing.expect(!exists(path));
    // Options that mean nothing for a Unix socket are refused, not ignored.
    try testing.expectError(error.InvalidArgument, loop.listenUnix(path, 0, Opt.reuse_port));
    try testing.expectError(error.InvalidArgument, loop.connectUnix(path, Opt.keep_alive));
    try testing.expectError(error.NotFound, loop.connectUnix(path, 0));
    try testing.expectError(error.InvalidArgument, loop.listenUnix("", 0, 0));
}

test "unix: a stale socket file is reported, and replaced only when asked; a live one or another file never" {
    const loop = try open(64);
    defer loop.destroy();
    var buf: [64]u8 = undefined;
    const path = try socketPath(&buf);
    defer std.fs.cwd().deleteFileZ(path) catch {};
    try leaveStaleFile(path);
    const live_before = loop.stats.live_handles;
    try testing.expectError(error.StaleSocket, loop.listenUnix(path, 0, 0));
    try testing.expect(exists(path));
    const l = try loop.listenUnix(path, 0, Opt.replace_stale);
    // A live listener is not stale: replace_stale does not take its file.
    try testing.expectError(error.AddressInUse, loop.listenUnix(path, 0, Opt.replace_stale));
    try loop.close(l, false);
    try testing.expect(!exists(path));
    // Not a socket: never removed.
    (try std.fs.cwd().createFileZ(path, .{})).close();
    try testing.expectError(error.AddressInUse, loop.listenUnix(path, 0, Opt.replace_stale));
    try testing.expect(exists(path));
    try testing.expectEqual(live_before, loop.stats.live_handles);
}

test "unix: a listener whose file was replaced by another's leaves that file alone" {
    const loop = try open(64);
    defer loop.destroy();
    var buf: [64]u8 = undefined;
    const path = try socketPath(&buf);
    defer std.fs.cwd().deleteFileZ(path) catch {};
    const a = try loop.listenUnix(path, 0, 0);
    try std.fs.cwd().deleteFileZ(path);
    const b = try loop.listenUnix(path, 0, 0);
    try loop.close(a, false);
    try testing.expect(exists(path));
    try loop.close(b, false);
    try testing.expect(!exists(path));
}

test "unix: a full backlog is BacklogFull, never a connect that waits for nothing" {
    const loop = try open(64);
    defer loop.destroy();
    var buf: [64]u8 = undefined;
    const path = try socketPath(&buf);
    const l = try loop.listenUnix(path, 1, 0);
    defer loop.close(l, false) catch {};
    var opened: [64]u32 = undefined;
    var n: usize = 0;
    var full: ?anyerror = null;
    while (n < opened.len) : (n += 1) {
        opened[n] = loop.connectUnix(path, 0) catch |err| {
            full = err;
            break;
        };
    }
    for (opened[0..n]) |h| try loop.close(h, false);
    if (@import("builtin").os.tag == .linux) try testing.expectEqual(@as(?anyerror, error.BacklogFull), full);
}

// ---- UDP --------------------------------------------------------------------------------

/// Receives one datagram, polling for it if none is there yet.
fn recvOne(loop: *Loop, h: u32, buf: []u8, from: *[20]u8) !usize {
    return loop.recvFrom(h, buf, from) catch |err| switch (err) {
        error.WouldBlock => {
            try waitFor(loop, h, Flag.read, 2000);
            return loop.recvFrom(h, buf, from);
        },
        else => return err,
    };
}

test "udp: datagrams both ways with the sender's address; a long one is reported cut; none waiting asks for READ" {
    const loop = try open(64);
    defer loop.destroy();
    const a = try loop.listenDatagram("127.0.0.1", 0, 0);
    const b = try loop.listenDatagram("127.0.0.1", 0, 0);
    const port_a = try portOf(loop, a);
    const port_b = try portOf(loop, b);
    var buf: [16]u8 = undefined;
    var from: [20]u8 = undefined;
    try testing.expectError(error.WouldBlock, loop.recvFrom(b, &buf, &from));
    try testing.expectEqual(@as(usize, 5), try loop.sendTo(a, "hello", "127.0.0.1", port_b));
    try waitFor(loop, b, Flag.read, 2000);
    try testing.expectEqual(@as(usize, 5), try loop.recvFrom(b, &buf, &from));
    try testing.expectEqualStrings("hello", buf[0..5]);
    try testing.expectEqual(@as(u8, 4), from[0]);
    try testing.expectEqual(@as(u8, 0), from[1]);
    try testing.expectEqual(port_a, std.mem.readInt(u16, from[2..4], .little));
    // Longer than the buffer: what fits, and the flag.
    const long = [_]u8{'x'} ** 40;
    _ = try loop.sendTo(a, &long, "127.0.0.1", port_b);
    try testing.expectEqual(@as(usize, 16), try recvOne(loop, b, &buf, &from));
    try testing.expectEqual(@as(u8, 1), from[1]);
    // An empty datagram is a datagram.
    try testing.expectEqual(@as(usize, 0), try loop.sendTo(b, "", "127.0.0.1", port_a));
    try testing.expectEqual(@as(usize, 0), try recvOne(loop, a, &buf, &from));
    try testing.expectError(error.WouldBlock, loop.recvFrom(a, &buf, &from));
    // Bad input, and the wrong kind of handle.
    try testing.expectError(error.InvalidArgument, loop.sendTo(a, "x", "127.0.0.1", 0));
    try testing.expectError(error.InvalidArgument, loop.sendTo(a, "x", "nowhere", 9));
    const big = try testing.allocator.alloc(u8, limits.max_datagram_bytes + 1);
    defer testing.allocator.free(big);
    try testing.expectError(error.InvalidArgument, loop.sendTo(a, big, "127.0.0.1", port_b));
    try testing.expectError(error.WrongKind, loop.read(a, &buf));
    try testing.expectError(error.WrongKind, loop.recvFrom(try loop.listen("127.0.0.1", 0, 0, 0), &buf, &from));
    try loop.close(a, false);
    try testing.expectError(error.BadHandle, loop.recvFrom(a, &buf, &from));
    loop.checkInvariants();
}
