//! A wake that the kernel delivers to the JS thread itself, with no thread in between.
//!
//! The runtime (Deno, Bun) already sleeps in its own epoll_wait, watching its own sockets.
//! zev hands it one end of a socket pair (`rx`), which the runtime adopts as one of its own
//! sockets. To park, the JS thread submits to an io_uring a poll on the loop's epoll
//! descriptor, linked to a one-byte send on the other end (`tx`). When the loop gets an
//! event, the poll completes and the kernel runs the linked send as task work of the
//! thread that submitted it, the JS thread: its wait in the runtime returns, and the
//! runtime reads the byte as it reads any request on its own sockets. No byte is sent
//! without an event, so an idle loop costs nothing; the poll checks the descriptor when
//! it is submitted, so an event that arrived before the park is not lost.
//!
//! Linux only (io_uring poll, links and send: kernel 5.6). Where io_uring is missing or
//! forbidden (seccomp in many containers), `init` fails and the JS side parks on a thread.

const std = @import("std");
const linux = std.os.linux;
const sys = @import("sys.zig");
const Error = @import("errors.zig").Error;

const poll_token: u64 = 1;
const send_token: u64 = 2;

/// Submission and completion entries: one park takes two, and a park is never submitted
/// again before its send has completed, so two parks' worth is more than enough.
const ring_entries: u16 = 4;

pub const RingWake = struct {
    ring: linux.IoUring,
    /// The runtime's end: one byte arrives per park that found events.
    rx: sys.fd_t,
    tx: sys.fd_t,
    /// A poll and its send are submitted and the send has not completed yet.
    armed: bool = false,
    /// `rx` was handed to the runtime, which closes it.
    rx_taken: bool = false,
    byte: [1]u8 = .{1},

    pub fn init() Error!RingWake {
        var fds: [2]i32 = undefined;
        const flags = linux.SOCK.STREAM | linux.SOCK.NONBLOCK | linux.SOCK.CLOEXEC;
        _ = try sys.check(linux.socketpair(linux.AF.UNIX, flags, 0, &fds));
        errdefer {
            sys.close(fds[0]);
            sys.close(fds[1]);
        }
        const ring = linux.IoUring.init(ring_entries, 0) catch |err| return switch (err) {
            error.ProcessFdQuotaExceeded, error.SystemFdQuotaExceeded => error.TooManyOpenFiles,
            error.SystemResources => error.NoMemory,
            // ENOSYS (too old), EPERM (seccomp, io_uring_disabled), and the rest.
            else => error.Unsupported,
        };
        return .{ .ring = ring, .rx = fds[0], .tx = fds[1] };
    }

    pub fn deinit(w: *RingWake) void {
        w.ring.deinit();
        sys.close(w.tx);
        if (!w.rx_taken) sys.close(w.rx);
    }

    /// Takes the completions of earlier parks, noting when the last send has completed.
    fn reap(w: *RingWake) void {
        var cqes: [ring_entries]linux.io_uring_cqe = undefined;
        while (true) {
            const n = w.ring.copy_cqes(&cqes, 0) catch return;
            if (n == 0) return;
            for (cqes[0..n]) |cqe| {
                if (cqe.user_data == send_token) w.armed = false;
            }
        }
    }

    /// Arms the wake: the next event of `epfd`, or one already there, sends one byte to
    /// `rx`. Does nothing while an earlier arm has not fired: its poll is still waiting.
    pub fn arm(w: *RingWake, epfd: sys.fd_t) Error!void {
        w.reap();
        if (w.armed) return;
        const poll = w.ring.poll_add(poll_token, epfd, linux.POLL.IN) catch return error.Limit;
        poll.flags |= linux.IOSQE_IO_LINK;
        _ = w.ring.send(send_token, w.tx, &w.byte, linux.MSG.NOSIGNAL | linux.MSG.DONTWAIT) catch return error.Limit;
        _ = w.ring.submit() catch |err| return switch (err) {
            error.SystemResources, error.CompletionQueueOvercommitted => error.NoMemory,
            else => error.Unexpected,
        };
        w.armed = true;
    }
};

const testing = std.testing;

fn rxReadable(w: *const RingWake, timeout_ms: i32) !bool {
    return sys.pollReadable(w.rx, timeout_ms);
}

test "ring wake: no byte without an event, one byte per armed park, and none lost before the park" {
    var w = RingWake.init() catch |err| switch (err) {
        // A host that forbids io_uring runs the thread fallback; nothing to test here.
        error.Unsupported => return error.SkipZigTest,
        else => return err,
    };
    defer w.deinit();
    const efd: sys.fd_t = @intCast(try sys.check(linux.eventfd(0, linux.EFD.CLOEXEC | linux.EFD.NONBLOCK)));
    defer sys.close(efd);

    // Nothing ready: arming sends nothing.
    try w.arm(efd);
    try testing.expect(!try rxReadable(&w, 20));
    // Arming again while armed submits nothing new.
    try w.arm(efd);

    // An event after the park: exactly one byte.
    const one: u64 = 1;
    _ = try sys.write(efd, std.mem.asBytes(&one));
    try testing.expect(try rxReadable(&w, 1000));
    var buf: [8]u8 = undefined;
    try testing.expectEqual(@as(usize, 1), try sys.read(w.rx, &buf));
    try testing.expect(!try rxReadable(&w, 20));

    // The event is still there (nobody consumed it): the next park fires at once.
    try w.arm(efd);
    try testing.expect(try rxReadable(&w, 1000));
    try testing.expectEqual(@as(usize, 1), try sys.read(w.rx, &buf));

    // Consumed, then parked: silence again.
    _ = try sys.read(efd, &buf);
    try w.arm(efd);
    try testing.expect(!try rxReadable(&w, 20));
}

// The park of the io_uring backend to come (bench/IO_URING.md): the reactor is itself a
// ring set up DEFER_TASKRUN, whose completions wait as deferred work until the JS thread
// enters it; nothing makes its descriptor readable then, so the wake polls an eventfd
// registered with it instead. This checks the kernel does what that design relies on.
test "a DEFER_TASKRUN ring's eventfd wakes the park: once per event, never before one" {
    var w = RingWake.init() catch |err| switch (err) {
        error.Unsupported => return error.SkipZigTest,
        else => return err,
    };
    defer w.deinit();
    var params = std.mem.zeroInit(linux.io_uring_params, .{
        .flags = linux.IORING_SETUP_SINGLE_ISSUER | linux.IORING_SETUP_DEFER_TASKRUN,
    });
    // Before Linux 6.1 (or under qemu-user) the flags are refused: nothing to check here.
    var ring = linux.IoUring.init_params(8, &params) catch return error.SkipZigTest;
    defer ring.deinit();
    const cq_flags: *u32 = @ptrCast(@alignCast(&ring.sq.mmap[params.cq_off.flags]));
    const efd: sys.fd_t = @intCast(try sys.check(linux.eventfd(0, linux.EFD.CLOEXEC | linux.EFD.NONBLOCK)));
    defer sys.close(efd);
    try ring.register_eventfd(efd);

    // The reactor's one operation: a multishot receive into a ring of provided buffers.
    var fds: [2]i32 = undefined;
    _ = try sys.check(linux.socketpair(linux.AF.UNIX, linux.SOCK.STREAM | linux.SOCK.NONBLOCK | linux.SOCK.CLOEXEC, 0, &fds));
    defer sys.close(fds[0]);
    defer sys.close(fds[1]);
    const br = linux.IoUring.setup_buf_ring(ring.fd, 4, 0, .{ .inc = false }) catch return error.SkipZigTest;
    defer linux.IoUring.free_buf_ring(ring.fd, br, 4, 0);
    linux.IoUring.buf_ring_init(br);
    var bufs: [4][16]u8 = undefined;
    for (&bufs, 0..) |*b, i| linux.IoUring.buf_ring_add(br, b, @intCast(i), 3, @intCast(i));
    linux.IoUring.buf_ring_advance(br, 4);
    const recv = try ring.get_sqe();
    recv.prep_rw(.RECV, fds[0], 0, 0, 0);
    recv.flags |= linux.IOSQE_BUFFER_SELECT;
    recv.ioprio |= linux.IORING_RECV_MULTISHOT;
    _ = try ring.submit();
    cq_flags.* |= linux.IORING_CQ_EVENTFD_DISABLED; // running: completions signal nothing

    var buf: [8]u8 = undefined;
    for (0..5) |_| {
        // Park: signals on, stale ones drained, deferred work run; the wake armed only
        // when that brought nothing.
        @atomicStore(u32, cq_flags, cq_flags.* & ~@as(u32, linux.IORING_CQ_EVENTFD_DISABLED), .seq_cst);
        _ = sys.read(efd, &buf) catch {};
        _ = try ring.enter(0, 0, linux.IORING_ENTER_GETEVENTS);
        try testing.expectEqual(@as(u32, 0), ring.cq_ready());
        try w.arm(efd);
        try testing.expect(!try rxReadable(&w, 20));

        // An event: the runtime's socket gets its byte, and the data is in the ring once
        // the JS thread enters it.
        _ = try sys.write(fds[1], "hello");
        try testing.expect(try rxReadable(&w, 1000));
        try testing.expectEqual(@as(usize, 1), try sys.read(w.rx, &buf));
        cq_flags.* |= linux.IORING_CQ_EVENTFD_DISABLED;
        _ = try ring.enter(0, 0, linux.IORING_ENTER_GETEVENTS);
        var cqes: [4]linux.io_uring_cqe = undefined;
        try testing.expectEqual(@as(u32, 1), try ring.copy_cqes(&cqes, 0));
        try testing.expectEqual(@as(i32, 5), cqes[0].res);
        const bid = try cqes[0].buffer_id();
        try testing.expectEqualStrings("hello", bufs[bid][0..5]);
        linux.IoUring.buf_ring_add(br, &bufs[bid], bid, 3, 0);
        linux.IoUring.buf_ring_advance(br, 1);
    }
}
