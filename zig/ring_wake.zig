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
const drain_token: u64 = 3;

/// Submission and completion entries: one park takes at most three, and a park is never
/// submitted again before its send has completed.
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
    /// Where a drained eventfd's count goes.
    sink: u64 = 0,

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

    /// An armed park has not fired yet (its send has not completed).
    pub fn waiting(w: *RingWake) bool {
        w.reap();
        return w.armed;
    }

    /// Arms the wake: the next event of `fd`, or one already there, sends one byte to
    /// `rx`. With `drain` (`fd` an eventfd), the kernel reads the eventfd first, so the
    /// loop need not: the read never waits, and the byte is sent even if it fails. Does
    /// nothing while an earlier arm has not fired: its poll is still waiting. An arm whose
    /// submission failed leaves its park in the queue, and the next arm submits that one:
    /// preparing another beside it would not fit, and every later park would fail.
    pub fn arm(w: *RingWake, fd: sys.fd_t, drain: bool) Error!void {
        w.reap();
        if (w.armed) return;
        if (w.ring.sq_ready() == 0) try w.prepare(fd, drain);
        _ = w.ring.submit() catch |err| return switch (err) {
            error.SystemResources, error.CompletionQueueOvercommitted => error.NoMemory,
            else => error.Unexpected,
        };
        w.armed = true;
    }

    /// Puts one park in the empty queue (it always fits: `ring_entries`), or nothing.
    fn prepare(w: *RingWake, fd: sys.fd_t, drain: bool) Error!void {
        const start = w.ring.sq.sqe_tail;
        errdefer w.ring.sq.sqe_tail = start;
        const poll = w.ring.poll_add(poll_token, fd, linux.POLL.IN) catch return error.Limit;
        poll.flags |= linux.IOSQE_IO_LINK;
        if (drain) {
            const read = w.ring.read(drain_token, fd, .{ .buffer = std.mem.asBytes(&w.sink) }, 0) catch return error.Limit;
            read.rw_flags = linux.RWF.NOWAIT;
            read.flags |= linux.IOSQE_IO_HARDLINK;
        }
        _ = w.ring.send(send_token, w.tx, &w.byte, linux.MSG.NOSIGNAL | linux.MSG.DONTWAIT) catch return error.Limit;
    }
};

const testing = std.testing;

fn rxReadable(w: *const RingWake, timeout_ms: i32) !bool {
    return sys.pollReadable(w.rx, timeout_ms);
}

/// A wake to test, or a skipped test where io_uring is forbidden (the host runs the
/// thread fallback then: nothing to test here).
pub fn openForTest() !RingWake {
    return RingWake.init() catch |err| switch (err) {
        error.Unsupported => error.SkipZigTest,
        else => err,
    };
}

fn eventfdForTest() !sys.fd_t {
    return @intCast(try sys.check(linux.eventfd(0, linux.EFD.CLOEXEC | linux.EFD.NONBLOCK)));
}

/// Signals `efd`, and expects exactly one byte on the wake for it.
fn expectOneByteFor(w: *const RingWake, efd: sys.fd_t) !void {
    const one: u64 = 1;
    _ = try sys.write(efd, std.mem.asBytes(&one));
    try expectOneByte(w);
}

fn expectOneByte(w: *const RingWake) !void {
    try testing.expect(try rxReadable(w, 1000));
    var buf: [8]u8 = undefined;
    try testing.expectEqual(@as(usize, 1), try sys.read(w.rx, &buf));
}

test "ring wake: no byte without an event, one byte per armed park, and none lost before the park" {
    var w = try openForTest();
    defer w.deinit();
    const efd = try eventfdForTest();
    defer sys.close(efd);

    // Nothing ready: arming sends nothing.
    try w.arm(efd, false);
    try testing.expect(!try rxReadable(&w, 20));
    // Arming again while armed submits nothing new.
    try w.arm(efd, false);

    // An event after the park: exactly one byte.
    try expectOneByteFor(&w, efd);
    try testing.expect(!try rxReadable(&w, 20));

    // The event is still there (nobody consumed it): the next park fires at once.
    try w.arm(efd, false);
    try expectOneByte(&w);

    // Consumed, then parked: silence again.
    var buf: [8]u8 = undefined;
    _ = try sys.read(efd, &buf);
    try w.arm(efd, false);
    try testing.expect(!try rxReadable(&w, 20));
}

test "ring wake: a park whose submission failed is submitted by the next arm, which then works" {
    var w = try openForTest();
    defer w.deinit();
    const efd = try eventfdForTest();
    defer sys.close(efd);

    // The kernel refuses the submission (here: the ring's descriptor is not a ring).
    const ring_fd = w.ring.fd;
    w.ring.fd = efd;
    try testing.expectError(error.Unexpected, w.arm(efd, true));
    w.ring.fd = ring_fd;
    try testing.expect(!w.armed);

    // The next arm submits the park left in the queue, and it fires once per event.
    try w.arm(efd, true);
    try testing.expect(!try rxReadable(&w, 20));
    try expectOneByteFor(&w, efd);
    // The kernel drained the eventfd (`drain`): the next park waits for a new event.
    try w.arm(efd, true);
    try testing.expect(!try rxReadable(&w, 20));
    try expectOneByteFor(&w, efd);
}
