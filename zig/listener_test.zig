//! Listeners that cannot accept: descriptor exhaustion, the handle table or the kernel's
//! watch refusing a connection, re-arms that fail when a pause ends; each pause told once,
//! and no listener left spinning or paused forever.

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

test "loop: descriptor exhaustion pauses the listener without spinning, and it recovers" {
    const loop = try open(64);
    defer loop.destroy();
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const port = try portOf(loop, l);
    const c1 = try connectNow(loop, port);
    _ = try connectNow(loop, port);
    _ = try connectNow(loop, port);
    // Accepting one re-arms the listener (the polls above disarmed it, nobody accepting):
    // the pause below must disarm it again.
    _ = try acceptOne(loop, l);

    // Lower the soft limit and fill every free descriptor below it, so that accept fails
    // with EMFILE. (No /proc: the same test runs where there is none.)
    const posix = std.posix;
    const saved = try posix.getrlimit(.NOFILE);
    defer posix.setrlimit(.NOFILE, saved) catch {};
    try posix.setrlimit(.NOFILE, .{ .cur = @min(saved.max, 512), .max = saved.max });
    var fillers: [512]sys.fd_t = undefined;
    var fillers_len: usize = 0;
    defer for (fillers[0..fillers_len]) |fd| sys.close(fd);
    while (fillers_len < fillers.len) : (fillers_len += 1) {
        fillers[fillers_len] = sys.socket(posix.AF.INET) catch break;
    }
    try testing.expect(fillers_len < fillers.len);

    var out: [4]u32 = undefined;
    try testing.expectError(error.TooManyOpenFiles, loop.accept(l, &out));
    // (A caller that waits to accept asks again after every ACCEPT event, below.)
    try testing.expectEqual(@as(u64, 1), loop.snapshot().accept_paused);
    // Paused: the next poll tells it once, with the reason; then polls report nothing
    // for the listener (no spin) while no descriptor is free.
    var e: Events = .{};
    try e.poll(loop, 0);
    try testing.expect(e.has(l, Flag.paused));
    try testing.expectError(error.TooManyOpenFiles, loop.status(l));
    try loop.status(l);
    // No spin: while paused the listener reports nothing. Only a backoff that expires
    // (1 ms, doubling; a slow machine or qemu may see some) re-arms it, for one ACCEPT
    // and one pause notice: never a report per poll.
    const pauses_before = loop.snapshot().accept_paused;
    var reports: u64 = 0;
    for (0..20) |_| {
        _ = loop.accept(l, &out) catch |err| switch (err) {
            error.WouldBlock, error.TooManyOpenFiles => {},
            else => return err,
        };
        try e.poll(loop, 0);
        if (e.has(l, Flag.accept) or e.has(l, Flag.paused)) reports += 1;
    }
    try testing.expect(reports <= 2 * (loop.snapshot().accept_paused - pauses_before));
    // Free a descriptor: the listener resumes at once and both pending connections come in
    // as descriptors allow.
    try loop.close(c1, false);
    try testing.expect(try acceptOne(loop, l) > 0);
    try posix.setrlimit(.NOFILE, saved);
    try testing.expect(try acceptOne(loop, l) > 0);
}

test "loop: more paused listeners than any fixed table, each told once, none left spinning" {
    const loop = try open(2048);
    defer loop.destroy();
    const n = 300;
    var ls: [n]u32 = undefined;
    for (&ls) |*l| l.* = try loop.listen("127.0.0.1", 0, 0, 0);
    for (ls) |l| {
        @import("listener.zig").pause(loop, l, try loop.get(l, .listener), error.NoMemory);
    }
    var told: usize = 0;
    var e: Events = .{};
    for (0..4) |_| {
        try e.poll(loop, 0);
        for (0..e.n) |i| {
            if (e.buf[2 * i + 1] & Flag.paused != 0) told += 1;
        }
    }
    try testing.expectEqual(@as(usize, n), told);
    for (ls) |l| try testing.expectError(error.NoMemory, loop.status(l));
    for (ls) |l| try testing.expectEqual(@as(u32, 1), try loop.pausesUntold(l));
    for (ls) |l| try testing.expectEqual(@as(u32, 0), try loop.pausesUntold(l));
    // Closing a paused listener takes it out of every list.
    for (ls[0 .. n / 2]) |l| try loop.close(l, false);
    try e.poll(loop, 0);
    try testing.expectEqual(@as(usize, 0), e.n);
}

test "loop: a connection the kernel will not watch is counted, and the listener backs off with the reason" {
    const loop = try open(64);
    defer loop.destroy();
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const port = try portOf(loop, l);
    _ = try connectNow(loop, port);
    _ = try connectNow(loop, port);
    loop.test_fail_watch = 1;
    var out: [4]u32 = undefined;
    // The first connection is lost (counted), and the second is not taken with it: the
    // listener pauses, so it waits in the backlog.
    try testing.expectError(error.WouldBlock, loop.accept(l, &out));
    try testing.expectEqual(@as(u64, 1), loop.snapshot().accept_rejected);
    try testing.expectEqual(@as(u64, 1), loop.snapshot().accept_paused);
    var e: Events = .{};
    try e.poll(loop, 0);
    try testing.expect(e.has(l, Flag.paused));
    try testing.expectError(error.NoMemory, loop.status(l));
    // The backoff ends and the second connection comes in.
    try testing.expect(try acceptOne(loop, l) > 0);
    try testing.expectEqual(@as(u64, 1), loop.snapshot().accepted);
}

test "loop: a listener whose re-arm fails when its pause ends is paused again, and its ACCEPT still comes" {
    const loop = try open(64);
    defer loop.destroy();
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const port = try portOf(loop, l);
    _ = try connectNow(loop, port);
    _ = try connectNow(loop, port);
    loop.test_fail_watch = 1; // the first accept's connection cannot be watched: paused
    var out: [4]u32 = undefined;
    try testing.expectError(error.WouldBlock, loop.accept(l, &out));
    loop.test_fail_arm = 1; // and the re-arm when that pause ends fails
    // Nobody calls accept again: the caller waits for the ACCEPT event.
    var e: Events = .{};
    var accept_told = false;
    const deadline = std.time.milliTimestamp() + 2000;
    while (!accept_told and std.time.milliTimestamp() < deadline) {
        try e.poll(loop, 20);
        accept_told = e.has(l, Flag.accept);
    }
    try testing.expect(accept_told);
    try testing.expectEqual(@as(u32, 0), loop.test_fail_arm);
    try testing.expectEqual(@as(u64, 2), loop.snapshot().accept_paused);
    try testing.expect(try acceptOne(loop, l) > 0);
}

test "loop: of two listeners due at once, the first failing its re-arm stays paused and is resumed later; the second resumes" {
    const loop = try open(64);
    defer loop.destroy();
    var ls: [2]u32 = undefined;
    var out: [4]u32 = undefined;
    for (&ls) |*l| {
        l.* = try loop.listen("127.0.0.1", 0, 0, 0);
        _ = try connectNow(loop, try portOf(loop, l.*));
        _ = try connectNow(loop, try portOf(loop, l.*));
        loop.test_fail_watch = 1; // paused: its first connection cannot be watched
        try testing.expectError(error.WouldBlock, loop.accept(l.*, &out));
    }
    // Both pauses end together; the re-arm of the first resumed fails.
    loop.test_fail_arm = 1;
    std.Thread.sleep(5 * std.time.ns_per_ms);
    var e: Events = .{};
    var told: [2]bool = .{ false, false };
    const deadline = std.time.milliTimestamp() + 2000;
    while (!(told[0] and told[1]) and std.time.milliTimestamp() < deadline) {
        try e.poll(loop, 20);
        loop.checkInvariants();
        for (ls, 0..) |l, i| told[i] = told[i] or e.has(l, Flag.accept);
    }
    try testing.expect(told[0] and told[1]);
}
