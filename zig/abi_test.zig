//! The C ABI under misuse: stale, forged and wrong-kind handles, calls in the wrong
//! state, and a seeded random sequence of thousands of operations with the invariants
//! checked after every step. Nothing may crash; every misuse is an error code.

const std = @import("std");
const sys = @import("sys.zig");
const testing = std.testing;
const abi = @import("abi.zig");
const errors = @import("errors.zig");

const code = errors.code;

fn openLoop() !u32 {
    abi.allocator = testing.allocator;
    const id = abi.zev_loop_open_backend(256, @intFromEnum(@import("loop_test.zig").backendUnderTest()));
    try testing.expect(id >= 0);
    return @intCast(id);
}

fn listenAny(loop: u32) !u32 {
    const host = "127.0.0.1";
    const h = abi.zev_listen(loop, host, host.len, 0, 0, 0);
    try testing.expect(h > 0);
    return @intCast(h);
}

fn portOf(loop: u32, h: u32) !u32 {
    var out: [20]u8 = undefined;
    try testing.expectEqual(@as(i32, 0), abi.zev_address(loop, h, 0, &out));
    return std.mem.readInt(u16, out[2..4], .little);
}

test "abi: stale loops and handles, forged values and wrong states are error codes" {
    const loop = try openLoop();
    const l = try listenAny(loop);
    var buf: [8]u8 = undefined;
    var out: [4]u32 = undefined;
    // Wrong kind and bad arguments.
    try testing.expectEqual(code(error.WrongKind), abi.zev_read(loop, l, &buf, buf.len));
    try testing.expectEqual(code(error.WrongKind), abi.zev_write(loop, l, &buf, buf.len));
    try testing.expectEqual(code(error.InvalidArgument), abi.zev_accept(loop, l, &out, 0));
    try testing.expectEqual(code(error.InvalidArgument), abi.zev_accept(loop, l, null, 4));
    try testing.expectEqual(code(error.InvalidArgument), abi.zev_read(loop, l, null, 8));
    try testing.expectEqual(code(error.InvalidArgument), abi.zev_listen(loop, "x", 1, 0, 0, 0));
    try testing.expectEqual(code(error.InvalidArgument), abi.zev_limit(999));
    // A connect in progress: reads wait, writes are refused until connected.
    const host = "127.0.0.1";
    const c: u32 = @intCast(abi.zev_connect(loop, host, host.len, try portOf(loop, l), 0));
    const st = abi.zev_status(loop, c);
    try testing.expect(st == 0 or st == code(error.WouldBlock));
    if (st != 0) try testing.expectEqual(code(error.NotConnected), abi.zev_write(loop, c, "x", 1));
    // Shut down, then write: Closed.
    var events: [32]u32 = undefined;
    while (abi.zev_status(loop, c) != 0) _ = abi.zev_poll(loop, &events, 16, 10);
    try testing.expectEqual(@as(i32, 0), abi.zev_shutdown(loop, c));
    try testing.expectEqual(code(error.Closed), abi.zev_write(loop, c, "x", 1));
    // Stale handles after close.
    try testing.expectEqual(@as(i32, 0), abi.zev_close(loop, c, 0));
    try testing.expectEqual(code(error.BadHandle), abi.zev_close(loop, c, 0));
    try testing.expectEqual(code(error.BadHandle), abi.zev_read(loop, c, &buf, buf.len));
    try testing.expectEqual(code(error.BadHandle), abi.zev_status(loop, c));
    // Forged loop ids, and a stale one after close.
    try testing.expectEqual(code(error.BadLoop), abi.zev_poll(loop + 1, &events, 16, 0));
    try testing.expectEqual(code(error.BadLoop), abi.zev_read(0xdead_beef, l, &buf, buf.len));
    try testing.expectEqual(@as(i32, 0), abi.zev_loop_close(loop));
    try testing.expectEqual(code(error.BadLoop), abi.zev_loop_close(loop));
    try testing.expectEqual(code(error.BadLoop), abi.zev_accept(loop, l, &out, 4));
    try testing.expectEqual(code(error.BadLoop), abi.zev_park(loop, 0));
    try testing.expectEqual(code(error.BadLoop), abi.zev_wake(loop));
}

const Kind = enum { listener, stream };

const Model = struct {
    const max = 200;
    live: [max]u32 = undefined,
    kind: [max]Kind = undefined,
    live_len: usize = 0,
    closed: [4096]u32 = undefined,
    closed_len: usize = 0,

    fn add(m: *Model, h: u32, k: Kind) void {
        m.live[m.live_len] = h;
        m.kind[m.live_len] = k;
        m.live_len += 1;
    }

    fn remove(m: *Model, i: usize) void {
        if (m.closed_len < m.closed.len) {
            m.closed[m.closed_len] = m.live[i];
            m.closed_len += 1;
        }
        m.live_len -= 1;
        m.live[i] = m.live[m.live_len];
        m.kind[i] = m.kind[m.live_len];
    }

    /// A live handle of `kind`, picked at random, if there is one.
    fn randomOf(m: *const Model, kind: Kind, r: std.Random) ?u32 {
        var count: usize = 0;
        for (m.kind[0..m.live_len]) |k| count += @intFromBool(k == kind);
        if (count == 0) return null;
        var nth = r.uintLessThan(usize, count);
        for (m.live[0..m.live_len], m.kind[0..m.live_len]) |h, k| {
            if (k != kind) continue;
            if (nth == 0) return h;
            nth -= 1;
        }
        unreachable;
    }

    fn isLive(m: *const Model, h: u32) bool {
        for (m.live[0..m.live_len]) |x| if (x == h) return true;
        return false;
    }
};

test "abi: a seeded random sequence of 5000 operations keeps every invariant" {
    const fds_before = try openFds();
    const loop = try openLoop();
    var prng = std.Random.DefaultPrng.init(0x5eed_2e7);
    const r = prng.random();
    var m: Model = .{};
    var buf: [4096]u8 = undefined;
    var events: [2 * 64]u32 = undefined;
    var accepted: [8]u32 = undefined;
    const host = "127.0.0.1";
    // What the sequence did, so the test shows it exercised every path.
    var did = struct { accepted: usize = 0, read: usize = 0, written: usize = 0, closed: usize = 0, stale: usize = 0 }{};

    for (0..5000) |step| {
        const op = r.uintLessThan(u8, 10);
        // A handle to act on: usually live, sometimes closed, sometimes forged.
        const pick = r.uintLessThan(u8, 10);
        const target: u32 = if (pick < 7 and m.live_len > 0)
            m.live[r.uintLessThan(usize, m.live_len)]
        else if (pick < 9 and m.closed_len > 0)
            m.closed[r.uintLessThan(usize, m.closed_len)]
        else
            r.int(u32);
        const live = m.isLive(target);
        switch (op) {
            0 => if (m.live_len < Model.max - 10) {
                const h = abi.zev_listen(loop, host, host.len, 0, 0, 0);
                try testing.expect(h > 0);
                m.add(@intCast(h), .listener);
            },
            1 => if (m.live_len < Model.max - 10) {
                if (m.randomOf(.listener, r)) |l| {
                    const c = abi.zev_connect(loop, host, host.len, try portOf(loop, l), 0);
                    try testing.expect(c > 0);
                    m.add(@intCast(c), .stream);
                }
            },
            2 => if (m.live_len < Model.max - 10) {
                // Mostly on a live listener, so that connections do get accepted.
                const on = if (pick < 7) m.randomOf(.listener, r) orelse target else target;
                const n = abi.zev_accept(loop, on, &accepted, accepted.len);
                if (n > 0) {
                    did.accepted += @intCast(n);
                    for (accepted[0..@intCast(n)]) |h| m.add(h, .stream);
                } else try expectOneOf(n, &.{ error.WouldBlock, error.BadHandle, error.WrongKind });
            },
            3 => {
                const n = abi.zev_read(loop, target, &buf, r.uintLessThan(u32, buf.len) + 1);
                if (n > 0) did.read += @intCast(n);
                if (n < 0) try expectOneOf(n, &.{ error.WouldBlock, error.BadHandle, error.WrongKind, error.ConnectionReset, error.BrokenPipe, error.NotConnected });
            },
            4 => {
                const len = r.uintLessThan(u32, buf.len);
                const n = abi.zev_write(loop, target, &buf, len);
                if (n > 0) did.written += @intCast(n);
                if (n >= 0) try testing.expect(n <= len) else try expectOneOf(n, &.{ error.BadHandle, error.WrongKind, error.NotConnected, error.Closed, error.ConnectionReset, error.BrokenPipe });
            },
            5 => {
                const n = abi.zev_close(loop, target, r.uintLessThan(u32, 2));
                if (live) {
                    did.closed += 1;
                    try testing.expectEqual(@as(i32, 0), n);
                    for (m.live[0..m.live_len], 0..) |h, i| if (h == target) {
                        m.remove(i);
                        break;
                    };
                } else {
                    did.stale += 1;
                    try testing.expectEqual(code(error.BadHandle), n);
                }
            },
            6 => {
                const n = abi.zev_shutdown(loop, target);
                if (n < 0) try expectOneOf(n, &.{ error.BadHandle, error.WrongKind, error.NotConnected, error.ConnectionReset, error.BrokenPipe });
            },
            7 => {
                const n = abi.zev_flush(loop, target);
                if (n < 0) try expectOneOf(n, &.{ error.BadHandle, error.WrongKind, error.ConnectionReset, error.BrokenPipe, error.NotConnected });
            },
            else => {
                const n = abi.zev_poll(loop, &events, events.len / 2, 0);
                try testing.expect(n >= 0);
                // Every event names a live handle.
                for (0..@intCast(n)) |i| try testing.expect(m.isLive(events[2 * i]));
            },
        }
        // Invariants after every step: the loop's own, and the model's.
        abi.lookup(loop).?.checkInvariants();
        var stats: [8]f64 = undefined;
        try testing.expectEqual(@as(i32, 8), abi.zev_stats(loop, &stats, stats.len));
        testing.expectEqual(@as(f64, @floatFromInt(m.live_len)), stats[6]) catch |err| {
            std.debug.print("step {d}: live handles differ from the model\n", .{step});
            return err;
        };
        try testing.expect(stats[7] <= @as(f64, @floatFromInt(m.live_len)) * 256 * 1024);
        for (m.live[0..m.live_len]) |h| try testing.expect(abi.zev_status(loop, h) != code(error.BadHandle));
        if (m.closed_len > 0) {
            const stale = m.closed[r.uintLessThan(usize, m.closed_len)];
            try testing.expectEqual(code(error.BadHandle), abi.zev_status(loop, stale));
        }
    }
    std.debug.print("random ABI sequence: {any}\n", .{did});
    try testing.expect(did.accepted > 50 and did.read > 0 and did.written > 0 and did.closed > 100 and did.stale > 50);
    try testing.expectEqual(@as(i32, 0), abi.zev_loop_close(loop));
    // Closing the loop closed every descriptor it had.
    try testing.expectEqual(fds_before, try openFds());
}

fn expectOneOf(n: i32, allowed: []const errors.Error) !void {
    for (allowed) |e| if (code(e) == n) return;
    std.debug.print("unexpected result {d}\n", .{n});
    return error.TestUnexpectedResult;
}

/// Open descriptors below 4096, found with fcntl (no /proc: the same test runs on every
/// OS zev builds for).
fn openFds() !usize {
    var n: usize = 0;
    var fd: i32 = 0;
    while (fd < 4096) : (fd += 1) {
        n += @intFromBool(sys.isOpen(fd));
    }
    return n;
}

/// A call on its own thread, so that a test can give up on it instead of hanging.
const Returns = struct {
    result: std.atomic.Value(i32) = .init(-1000),

    fn park(self: *Returns, loop: u32) void {
        self.result.store(abi.zev_park(loop, -1), .release);
    }

    fn close(self: *Returns, loop: u32) void {
        self.result.store(abi.zev_loop_close(loop), .release);
    }

    fn switchBackend(self: *Returns, loop: u32) void {
        const other: u32 = if (abi.zev_backend(loop) == 0) 1 else 0;
        // (Where io_uring is missing the switch fails; the park is woken all the same.)
        _ = abi.zev_loop_switch_backend(loop, other);
        self.result.store(0, .release);
    }

    /// Whether the call returned within `ms`.
    fn within(self: *Returns, ms: u32) bool {
        var waited: u32 = 0;
        while (self.result.load(.acquire) == -1000) : (waited += 1) {
            if (waited == ms) return false;
            std.Thread.sleep(std.time.ns_per_ms);
        }
        return true;
    }
};

test "abi: closing a loop, or changing its backend, wakes a thread parked on it with no timeout" {
    inline for (.{ false, true }) |close| {
        const loop = try openLoop();
        var parked: Returns = .{};
        const parker = try std.Thread.spawn(.{}, Returns.park, .{ &parked, loop });
        std.Thread.sleep(20 * std.time.ns_per_ms); // let it block in poll(2)
        var closed: Returns = .{};
        const closer = try std.Thread.spawn(.{}, if (close) Returns.close else Returns.switchBackend, .{ &closed, loop });
        // Either may stay blocked when the park is not woken (the close waits for the
        // park to leave): then the test fails, leaving both threads behind, not hangs.
        if (!parked.within(2000) or !closed.within(2000)) {
            parker.detach();
            closer.detach();
            return error.TestParkNotWoken;
        }
        parker.join();
        closer.join();
        try testing.expectEqual(@as(i32, 1), parked.result.load(.acquire));
        try testing.expectEqual(@as(i32, 0), closed.result.load(.acquire));
        if (!close) try testing.expectEqual(@as(i32, 0), abi.zev_loop_close(loop));
    }
}
