//! Choosing the backend: `auto` runs epoll for now and says why, io_uring by name runs
//! where the kernel allows it and is refused, naming why, where it does not, and a loop
//! with nothing open moves between backends (what `configure({ backend })` does) and
//! works on the new one, wake included.

const std = @import("std");
const linux = std.os.linux;
const testing = std.testing;
const loop_mod = @import("loop.zig");
const Loop = loop_mod.Loop;
const loop_test = @import("loop_test.zig");
const sys = @import("sys.zig");

/// Listens, connects, accepts and echoes five bytes, then closes all three.
fn echoOnce(loop: *Loop) !void {
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const c = try loop_test.connectNow(loop, try loop_test.portOf(loop, l));
    const s = try loop_test.acceptOne(loop, l);
    try testing.expectEqual(@as(usize, 5), try loop.write(c, "hello"));
    var buf: [5]u8 = undefined;
    try loop_test.readFull(loop, s, &buf);
    try testing.expectEqualStrings("hello", &buf);
    for ([_]u32{ c, s, l }) |h| try loop.close(h, false);
}

test "backend: auto runs epoll while io_uring is not level with it, and says so" {
    const loop = try Loop.create(testing.allocator, 16, .auto);
    defer loop.destroy();
    try testing.expectEqual(loop_mod.Backend.poll, loop.backendKind());
    try testing.expectEqual(@import("backends/io_uring.zig").Unavailable.not_level, loop.fallback);
    try echoOnce(loop);
}

test "backend: an empty loop moves between backends and works on each, its wake too" {
    const loop = try Loop.create(testing.allocator, 16, .poll);
    defer loop.destroy();
    loop.switchBackend(.io_uring) catch |err| switch (err) {
        error.Unsupported => return error.SkipZigTest, // io_uring refused here
        else => return err,
    };
    try echoOnce(loop);
    try loop.switchBackend(.poll);
    try testing.expectEqual(loop_mod.Backend.poll, loop.backendKind());
    try echoOnce(loop);

    // A park armed on one backend is taken back by the move: the next park, on the new
    // backend, arms anew and fires (an old arm left waiting on the ring's eventfd, which
    // nothing signals any more, would swallow it: a hang).
    const rx = try loop.takeWakeFd();
    defer sys.close(rx);
    try loop.switchBackend(.io_uring);
    try loop.armWake();
    try loop.switchBackend(.poll);
    try testing.expectEqual(loop_mod.Backend.poll, loop.backendKind());
    // The move woke the old park; the driver's poll after a wake takes that event.
    var ev: [2 * 16]u32 = undefined;
    _ = try loop.poll(&ev, 0);
    var byte: [8]u8 = undefined;
    while (try sys.pollReadable(rx, 0)) _ = try sys.read(rx, &byte);
    try loop.armWake();
    try testing.expect(!try sys.pollReadable(rx, 20));
    const l = try loop.listen("127.0.0.1", 0, 0, 0);
    const c = try loop.connect("127.0.0.1", try loop_test.portOf(loop, l), 0);
    try testing.expect(try sys.pollReadable(rx, 2000));

    // Not while anything is open.
    try testing.expectError(error.InvalidArgument, loop.switchBackend(.io_uring));
    try loop.close(c, false);
    try loop.close(l, false);
    try loop.switchBackend(.io_uring);
    try echoOnce(loop);
}

test "backend: io_uring by name is refused, saying it is forbidden, under a seccomp filter; auto runs epoll" {
    const pid = linux.fork();
    if (pid == 0) linux.exit_group(forbiddenChild());
    var status: u32 = 0;
    _ = linux.waitpid(@intCast(pid), &status, 0);
    try testing.expect(linux.W.IFEXITED(status));
    switch (linux.W.EXITSTATUS(status)) {
        0 => {},
        77 => return error.SkipZigTest, // no seccomp here (qemu-user)
        else => |code| {
            std.debug.print("child exit code {d}\n", .{code});
            return error.TestUnexpectedResult;
        },
    }
}

/// In a child process: io_uring_setup refused with EPERM, as container runtimes do, then
/// a loop asked for `auto`. 0 when it runs epoll, and io_uring by name says it is forbidden.
fn forbiddenChild() i32 {
    @import("forbid_io_uring.zig").install() catch return 77;
    const loop = Loop.create(std.heap.page_allocator, 16, .auto) catch return 2;
    if (loop.backendKind() != .poll) return 3;
    if (loop.fallback != .not_level) return 4;
    echoOnce(loop) catch return 5;
    // Forced, it is an error, not a silent epoll, and the probe names why.
    if (Loop.create(std.heap.page_allocator, 16, .io_uring)) |_| return 6 else |err| if (err != error.Unsupported) return 7;
    if (Loop.probeRing() != .forbidden) return 8;
    return 0;
}
