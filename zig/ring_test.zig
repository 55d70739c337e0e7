//! The io_uring backend on real sockets (skipped unless ZEV_BACKEND=io_uring): buffers
//! that run out and come back, streams left over by small polls, cancels the ring refuses,
//! the epoll set's poll, and the stall detector.

const std = @import("std");
const testing = std.testing;
const limits = @import("limits.zig");
const sys = @import("sys.zig");
const Flag = @import("loop.zig").Flag;
const t = @import("loop_test.zig");
const Events = t.Events;
const open = t.open;
const portOf = t.portOf;
const waitFor = t.waitFor;
const connectNow = t.connectNow;
const acceptOne = t.acceptOne;
const readFull = t.readFull;
const connectPairs = t.connectPairs;
const sendTagged = t.sendTagged;
const expectTagged = t.expectTagged;

test "loop: io_uring: a read that gives buffers back lets streams that ran out receive again, with no poll" {
    // A parked loop polls only after a completion, and a stream that ran out of buffers
    // has no receive armed to complete: the read that frees buffers must start it again.
    const loop = try open(512);
    defer loop.destroy();
    if (loop.uring == null) return error.SkipZigTest;
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    // Each stream's bytes fit its share of buffers; together they need more than the ring has.
    const share = @as(usize, limits.ring_buffers_per_stream) * limits.ring_buffer_bytes;
    const n = limits.ring_buffers / limits.ring_buffers_per_stream + 16;
    var clients: [n]u32 = undefined;
    var servers: [n]u32 = undefined;
    var chunk: [share]u8 = undefined;
    try sendTagged(loop, l, &clients, &servers, &chunk);
    try testing.expect(loop.uring.?.starving_len > 0);
    // The last poll found nothing: the loop would park now. Read all that was received.
    var e: Events = .{};
    try e.poll(loop, 0);
    try testing.expectEqual(@as(usize, 0), e.n);
    var got: [n]usize = @splat(0);
    for (servers, 0..) |s, i| {
        while (got[i] < share) {
            const k = loop.read(s, chunk[0 .. share - got[i]]) catch |err| switch (err) {
                error.WouldBlock => break,
                else => return err,
            };
            try expectTagged(chunk[0..k], i);
            got[i] += k;
        }
    }
    // A stream that ran out receives again at once: its completion ends the park.
    try testing.expect(try loop.park(2000));
    for (servers, 0..) |s, i| {
        try readFull(loop, s, chunk[0 .. share - got[i]]);
        try expectTagged(chunk[0 .. share - got[i]], i);
    }
    for (clients) |c| try loop.close(c, false);
    for (servers) |s| try loop.close(s, false);
    try loop.close(l, false);
}

test "loop: io_uring: a write whose bytes were taken but whose writability cannot be watched fails the stream on the next poll, not the write" {
    const loop = try open(64);
    defer loop.destroy();
    if (loop.uring == null) return error.SkipZigTest;
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const c = try connectNow(loop, try portOf(loop, l));
    _ = try acceptOne(loop, l); // never reads: the client's send buffer fills
    const chunk = try testing.allocator.alloc(u8, 64 * 1024);
    defer testing.allocator.free(chunk);
    @memset(chunk, 'x');
    // Fill the send buffer until a write is short (the rest queued) with the arm failing.
    loop.test_fail_watch = 1;
    var took: usize = 0;
    for (0..1000) |_| {
        const n = try loop.write(c, chunk); // bytes taken are never an error
        took += n;
        if (loop.test_fail_watch == 0) break;
    }
    try testing.expectEqual(@as(u32, 0), loop.test_fail_watch);
    try testing.expect(took > 0);
    // The writer is told at the next poll, and the queue is gone with the error.
    var e: Events = .{};
    try e.poll(loop, 0);
    try testing.expect(e.has(c, Flag.write));
    try testing.expectError(error.Limit, loop.flush(c));
    try testing.expectEqual(@as(u64, 0), loop.snapshot().queued_bytes);
}

test "loop: io_uring: a park after the epoll set's multishot poll ended arms it again, so a connection still wakes it" {
    const loop = try open(16);
    defer loop.destroy();
    const r = (loop.uring orelse return error.SkipZigTest).ring;
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    var out: [1]u32 = undefined;
    try testing.expectError(error.WouldBlock, loop.accept(l, &out)); // wants an ACCEPT
    var e: Events = .{};
    try e.poll(loop, 0); // arms the multishot poll on the epoll set
    // End it, as a full completion queue would, and let a poll take its last completion.
    try r.cancelOp(@import("backends/io_uring.zig").userData(.epoll, 0));
    try e.poll(loop, 0);
    try testing.expectEqual(@as(usize, 0), e.n);
    // Parked (the poll above found nothing), a connection from outside the loop, so
    // that only the listener can wake it, must wake it.
    const peer = try std.net.tcpConnectToAddress(try std.net.Address.parseIp4("127.0.0.1", @intCast(try portOf(loop, l))));
    defer peer.close();
    try testing.expect(try loop.park(2000));
    try e.poll(loop, 0);
    try testing.expect(e.has(l, Flag.accept));
}

test "loop: io_uring: streams left over by a small poll are each reported once, by the polls after it" {
    const loop = try open(256);
    defer loop.destroy();
    if (loop.uring == null) return error.SkipZigTest;
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const n = 60;
    var clients: [n]u32 = undefined;
    var servers: [n]u32 = undefined;
    var buf: [8]u8 = undefined;
    try connectPairs(loop, l, &clients, &servers);
    // Each wants a READ event: nothing to read yet.
    for (servers) |sv| try testing.expectError(error.WouldBlock, loop.read(sv, &buf));
    for (clients) |c| try testing.expectEqual(@as(usize, 1), try loop.write(c, "x"));
    // Polls of 4 events at a time: every server once, none twice, none lost.
    var seen: [n]u32 = @splat(0);
    var out: [2 * 4]u32 = undefined;
    const deadline = std.time.milliTimestamp() + 5000;
    var total: usize = 0;
    while (total < n and std.time.milliTimestamp() < deadline) {
        const k = try loop.poll(&out, 10);
        for (0..k) |j| {
            for (servers, 0..) |s, i| {
                if (out[2 * j] == s and out[2 * j + 1] & Flag.read != 0) {
                    seen[i] += 1;
                    total += 1;
                }
            }
        }
    }
    for (seen) |count| try testing.expectEqual(@as(u32, 1), count);
}

fn sendLater(fd: sys.fd_t) void {
    std.Thread.sleep(1500 * std.time.ns_per_ms);
    // (The socket itself: the loop is not for threads.) The end of stream ends the
    // multishot receive, so the old wait ends too, late, instead of never.
    _ = sys.send(fd, "late") catch {};
    sys.shutdownWrite(fd) catch {};
}

test "loop: io_uring: closing a stream whose cancel the ring refused does not wait for its peer, and the next poll lets the socket go" {
    const loop = try open(16);
    defer loop.destroy();
    if (loop.uring == null) return error.SkipZigTest;
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const c = try connectNow(loop, try portOf(loop, l));
    const s = try acceptOne(loop, l); // its receive is armed, and nothing comes
    var e: Events = .{};
    try e.poll(loop, 0);
    loop.test_fail_cancel = 1;
    // A peer that would end the receive only much later (the old wait's only way out).
    const late = try std.Thread.spawn(.{}, sendLater, .{loop.sockets.get(c).?.fd()});
    defer late.join();
    const started = std.time.milliTimestamp();
    try loop.close(s, false);
    try testing.expect(std.time.milliTimestamp() - started < 1000);
    // The next poll asks the cancel again: the kernel lets the socket go, and the peer
    // reads its end of stream long before the late sender would have ended it.
    var buf: [8]u8 = undefined;
    var eof = false;
    while (!eof and std.time.milliTimestamp() - started < 1000) {
        try e.poll(loop, 10);
        const n = loop.read(c, &buf) catch |err| switch (err) {
            error.WouldBlock => continue,
            else => return err,
        };
        eof = n == 0;
    }
    try testing.expect(eof);
}

test "loop: io_uring: streams made ready again while a small poll's leftovers wait, past the list's size, are each reported" {
    const loop = try open(16); // the dirty list holds 16: it fills, and moves down
    defer loop.destroy();
    if (loop.uring == null) return error.SkipZigTest;
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const n = 7;
    const rounds = 20;
    var clients: [n]u32 = undefined;
    var servers: [n]u32 = undefined;
    var sent: [n]u32 = @splat(0);
    var got: [n]u32 = @splat(0);
    var buf: [64]u8 = undefined;
    try connectPairs(loop, l, &clients, &servers);
    for (servers) |sv| try testing.expectError(error.WouldBlock, loop.read(sv, &buf));
    for (0..n) |i| {
        _ = try loop.write(clients[i], "x");
        sent[i] = 1;
    }
    var out: [2 * 2]u32 = undefined; // two events a poll: the rest wait on the list
    const deadline = std.time.milliTimestamp() + 5000;
    var done: usize = 0;
    while (done < n and std.time.milliTimestamp() < deadline) {
        const k = try loop.poll(&out, 10);
        for (0..k) |j| {
            const i = std.mem.indexOfScalar(u32, &servers, out[2 * j]) orelse continue;
            while (true) {
                const r = loop.read(servers[i], &buf) catch |err| switch (err) {
                    error.WouldBlock => break,
                    else => return err,
                };
                got[i] += @intCast(r);
            }
            // Ready again at once, while others still wait behind the head.
            if (sent[i] < rounds) {
                _ = try loop.write(clients[i], "x");
                sent[i] += 1;
            } else if (got[i] == rounds) done += 1;
        }
    }
    for (got) |g| try testing.expectEqual(@as(u32, rounds), g);
    // The case this test is for happened: the list filled behind its head and moved down.
    try testing.expect(loop.uring.?.test_moved_down > 0);
}

test "loop: io_uring: a parked loop with data waiting and no wake sent counts one stall; a woken one none" {
    const loop = try open(16);
    defer loop.destroy();
    const r = (loop.uring orelse return error.SkipZigTest).ring;
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const c = try connectNow(loop, try portOf(loop, l));
    const s = try acceptOne(loop, l);
    var buf: [8]u8 = undefined;
    try testing.expectError(error.WouldBlock, loop.read(s, &buf)); // wants a READ
    var e: Events = .{};
    try e.poll(loop, 0);
    try testing.expectEqual(@as(usize, 0), e.n); // parked: signals on
    loop.lookForStall();
    try testing.expectEqual(@as(u64, 0), loop.stats.stalls); // nothing waits
    // Data, and the wake the kernel sends for it: no stall.
    _ = try loop.write(c, "one");
    loop.lookForStall();
    try testing.expectEqual(@as(u64, 0), loop.stats.stalls);
    try e.poll(loop, 0);
    try testing.expect(e.has(s, Flag.read));
    try testing.expectEqual(@as(usize, 3), try loop.read(s, &buf));
    try testing.expectError(error.WouldBlock, loop.read(s, &buf));
    try e.poll(loop, 0);
    try testing.expectEqual(@as(usize, 0), e.n); // parked again
    // Data whose wake is lost (taken off the eventfd, as a kernel that never sent it):
    // one stall, counted once however often it is looked for.
    _ = try loop.write(c, "two");
    var sink: u64 = 0;
    try testing.expectEqual(@as(usize, 8), try sys.read(r.efd, std.mem.asBytes(&sink)));
    loop.lookForStall();
    loop.lookForStall();
    try testing.expectEqual(@as(u64, 1), loop.stats.stalls);
    // A loop that runs is not parked: its next poll takes the data.
    try e.poll(loop, 0);
    try testing.expect(e.has(s, Flag.read));
    loop.lookForStall();
    try testing.expectEqual(@as(u64, 1), loop.stats.stalls);
}

test "loop: io_uring: a read waiting when its receive finds no buffer is told READ, and reads with read(2)" {
    // Streams nobody reads hold every buffer. A stream whose read waits (it wants READ)
    // then gets data: its receive fails for want of a buffer. The data is in the kernel,
    // so the read must be told, and take it with read(2), rather than wait for buffers
    // that nobody will give back.
    const loop = try open(512);
    defer loop.destroy();
    if (loop.uring == null) return error.SkipZigTest;
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const share = @as(usize, limits.ring_buffers_per_stream) * limits.ring_buffer_bytes;
    const n = limits.ring_buffers / limits.ring_buffers_per_stream + 16;
    var clients: [n]u32 = undefined;
    var servers: [n]u32 = undefined;
    var chunk: [share]u8 = undefined;
    // The waiting pair first, so that its receive is armed before the buffers run out.
    const c = try connectNow(loop, try portOf(loop, l));
    const s = try acceptOne(loop, l);
    // The connecting side: it was never told readable (an accepted stream starts so).
    var buf: [16]u8 = undefined;
    try testing.expectError(error.WouldBlock, loop.read(c, &buf));
    try sendTagged(loop, l, &clients, &servers, &chunk);
    try testing.expect(loop.uring.?.starving_len > 0);
    _ = try loop.write(s, "late");
    try waitFor(loop, c, Flag.read, 2000);
    try testing.expectEqual(@as(usize, 4), try loop.read(c, &buf));
    try testing.expectEqualStrings("late", buf[0..4]);
    for (clients) |x| try loop.close(x, false);
    for (servers) |x| try loop.close(x, false);
    try loop.close(c, false);
    try loop.close(s, false);
    try loop.close(l, false);
}
