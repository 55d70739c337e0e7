//! The io_uring side of the Linux loop (`ZEV_BACKEND=io_uring`; docs/design/IO_URING.md).
//!
//! Streams receive through the ring: one receive at a time per stream into a ring of
//! buffers the loop provides, so a read copies from memory instead of making a system
//! call, and one `io_uring_enter` per poll takes every stream's data (and asks for more). Sends stay direct
//! system calls; a stream whose send buffer is full (or a connect under way) waits for a
//! one-shot poll in the ring. Listeners and datagram sockets stay in the epoll set, which
//! the ring polls (multishot), so one ring is all the loop waits on.
//!
//! The ring is set up `SINGLE_ISSUER | COOP_TASKRUN` (Linux 6.0): the kernel completes
//! the loop's operations as task work of the JS thread, run on its way back from any
//! system call (or out of a wait, which it ends), never by interrupting it. The park waits
//! on an eventfd registered with the ring, which that task work signals as it posts a
//! completion; signals are off while the loop runs (`running`) and turned back on, with a
//! last look, before a park (`preparePark`).
//!
//! Not `DEFER_TASKRUN`: there the kernel signals the eventfd as it queues the work, and on
//! Linux 6.18 that signal sometimes came one RCU grace period late (4 to 100 ms; about a
//! fifth of round trips at one connection), so a parked loop slept through its own data
//! (docs/design/IO_URING.md, "The 15 ms stall"). Task work signals from the JS thread itself.

const std = @import("std");
const linux = std.os.linux;
const sys = @import("../sys.zig");
const errors = @import("../errors.zig");
const Error = errors.Error;
const limits = @import("../limits.zig");

pub const Op = enum(u8) { recv = 1, pollout, epoll, cancel, pollin };

pub fn userData(op: Op, token: u32) u64 {
    return (@as(u64, @intFromEnum(op)) << 32) | token;
}

pub fn opOf(user_data: u64) ?Op {
    return std.meta.intToEnum(Op, @as(u8, @truncate(user_data >> 32))) catch null;
}

pub fn tokenOf(user_data: u64) u32 {
    return @truncate(user_data);
}

/// No buffer (the end of a stream's list).
pub const no_buffer: u16 = std.math.maxInt(u16);
const group_id: u16 = 0;

/// Why a loop that asked for io_uring (`auto`) runs on epoll instead; order is ABI
/// (`zev_backend_fallback`; abi_gen.zig writes each `reason` into ffi/abi.ts).
pub const Unavailable = enum(u32) {
    none = 0,
    /// ENOSYS: the kernel has no io_uring.
    missing = 1,
    /// EPERM: forbidden (seccomp, `kernel.io_uring_disabled`).
    forbidden = 2,
    /// EINVAL: the kernel lacks `SINGLE_ISSUER` or `COOP_TASKRUN` (before Linux 6.0).
    too_old = 3,
    /// Provided buffer rings or a registered eventfd refused (before Linux 5.19).
    no_buffer_ring = 4,
    /// Out of memory, locked memory or descriptors.
    resources = 5,
    other = 6,
    /// Not asked of the kernel: `auto` picks epoll while io_uring is not level with it
    /// (loop.zig `auto_picks_io_uring`).
    not_level = 7,

    /// What `configure().backendReason` says.
    pub fn reason(u: Unavailable) []const u8 {
        return switch (u) {
            .none => "",
            .missing => "the kernel has no io_uring (ENOSYS)",
            .forbidden => "io_uring is forbidden here (EPERM: a seccomp filter, as in many containers, or kernel.io_uring_disabled)",
            .too_old => "the kernel lacks io_uring's SINGLE_ISSUER and COOP_TASKRUN (EINVAL: they need Linux 6.0)",
            .no_buffer_ring => "the kernel refused provided buffer rings or a registered eventfd (they need Linux 5.19)",
            .resources => "out of memory, locked memory or descriptors setting up io_uring",
            .other => "io_uring failed to set up",
            .not_level => "auto picks epoll: io_uring is not yet level with it (its bulk reads are slower; docs/design/IO_URING.md)",
        };
    }
};

pub const Ring = struct {
    ring: linux.IoUring,
    /// The completion ring's flags (`IORING_CQ_EVENTFD_DISABLED`), shared with the kernel.
    cq_flags: *u32,
    /// Signalled by the kernel when completions wait to be run (parks poll it).
    efd: sys.fd_t,
    epfd: sys.fd_t,
    br: *align(std.heap.page_size_min) linux.io_uring_buf_ring,
    buffers: []u8,
    /// Per buffer: bytes received into it, and the next buffer of its stream's list.
    len: []u32,
    next: []u16,
    /// The multishot poll on the epoll set is armed.
    epoll_armed: bool = false,
    /// The epoll set may have events (its poll fired, or the last wait filled the batch).
    epoll_ready: bool = true,
    /// Inside a poll: submissions wait for the poll's next `enter`. Outside one (a read
    /// or a write from JS, which may come after the loop parked), they go in at once.
    batching: bool = false,

    /// Sets up the ring; when it fails, `why` says what the kernel refused.
    pub fn init(allocator: std.mem.Allocator, epfd: sys.fd_t, why: *Unavailable) Error!*Ring {
        why.* = .resources;
        const r = allocator.create(Ring) catch return error.NoMemory;
        errdefer allocator.destroy(r);
        var params = std.mem.zeroInit(linux.io_uring_params, .{
            // TASKRUN_FLAG: the kernel says in the shared flags when task work waits, so a
            // poll or a park with nothing to do needs no system call (`idle`).
            .flags = linux.IORING_SETUP_SINGLE_ISSUER | linux.IORING_SETUP_COOP_TASKRUN |
                linux.IORING_SETUP_TASKRUN_FLAG | linux.IORING_SETUP_CQSIZE,
            .cq_entries = limits.ring_cq_entries,
        });
        const ring = linux.IoUring.init_params(limits.ring_sq_entries, &params) catch |err| {
            why.* = switch (err) {
                error.SystemOutdated => .missing,
                error.PermissionDenied => .forbidden,
                error.ArgumentsInvalid => .too_old,
                error.ProcessFdQuotaExceeded, error.SystemFdQuotaExceeded, error.SystemResources => .resources,
                else => .other,
            };
            return switch (err) {
                error.ProcessFdQuotaExceeded, error.SystemFdQuotaExceeded => error.TooManyOpenFiles,
                error.SystemResources => error.NoMemory,
                else => error.Unsupported,
            };
        };
        r.* = .{
            .ring = ring,
            .cq_flags = @ptrCast(@alignCast(&ring.sq.mmap[params.cq_off.flags])),
            .efd = undefined,
            .epfd = epfd,
            .br = undefined,
            .buffers = &.{},
            .len = &.{},
            .next = &.{},
        };
        errdefer r.ring.deinit();
        r.efd = @intCast(try sys.check(linux.eventfd(0, linux.EFD.CLOEXEC | linux.EFD.NONBLOCK)));
        errdefer sys.close(r.efd);
        why.* = .no_buffer_ring;
        r.ring.register_eventfd(r.efd) catch return error.Unsupported;
        const count = limits.ring_buffers;
        r.br = linux.IoUring.setup_buf_ring(r.ring.fd, count, group_id, .{ .inc = false }) catch return error.Unsupported;
        why.* = .resources;
        errdefer linux.IoUring.free_buf_ring(r.ring.fd, r.br, count, group_id);
        r.buffers = allocator.alloc(u8, @as(usize, count) * limits.ring_buffer_bytes) catch return error.NoMemory;
        errdefer allocator.free(r.buffers);
        r.len = allocator.alloc(u32, count) catch return error.NoMemory;
        errdefer allocator.free(r.len);
        r.next = allocator.alloc(u16, count) catch return error.NoMemory;
        errdefer allocator.free(r.next);
        linux.IoUring.buf_ring_init(r.br);
        for (0..count) |i| {
            const bid: u16 = @intCast(i);
            linux.IoUring.buf_ring_add(r.br, r.buffer(bid), bid, linux.IoUring.buf_ring_mask(count), bid);
        }
        linux.IoUring.buf_ring_advance(r.br, count);
        // Ready to park from the start: the epoll set watched, signals on.
        try r.armEpoll();
        _ = try r.enter(0);
        return r;
    }

    pub fn deinit(r: *Ring, allocator: std.mem.Allocator) void {
        linux.IoUring.free_buf_ring(r.ring.fd, r.br, limits.ring_buffers, group_id);
        r.ring.deinit();
        sys.close(r.efd);
        allocator.free(r.buffers);
        allocator.free(r.len);
        allocator.free(r.next);
        allocator.destroy(r);
    }

    pub fn buffer(r: *Ring, bid: u16) []u8 {
        const at = @as(usize, bid) * limits.ring_buffer_bytes;
        return r.buffers[at .. at + limits.ring_buffer_bytes];
    }

    /// Hands a buffer back to the kernel for the next receive.
    pub fn giveBack(r: *Ring, bid: u16) void {
        linux.IoUring.buf_ring_add(r.br, r.buffer(bid), bid, linux.IoUring.buf_ring_mask(limits.ring_buffers), 0);
        linux.IoUring.buf_ring_advance(r.br, 1);
    }

    /// A submission entry; when the queue is full, what it holds is submitted first.
    fn sqe(r: *Ring) Error!*linux.io_uring_sqe {
        return r.ring.get_sqe() catch {
            _ = try r.enter(0);
            return r.ring.get_sqe() catch error.Limit;
        };
    }

    /// Receives once on `fd` into a provided buffer. One-shot, not multishot: the
    /// kernel runs a receive as task work at any system call of the JS thread (not
    /// only at `enter`), so a multishot receive on a busy socket took every buffer
    /// before the loop could see that its stream held its share.
    pub fn armRecv(r: *Ring, fd: sys.fd_t, token: u32) Error!void {
        const e = try r.sqe();
        e.prep_rw(.RECV, fd, 0, 0, 0);
        e.flags |= linux.IOSQE_BUFFER_SELECT;
        e.buf_index = group_id;
        e.user_data = userData(.recv, token);
        r.submitUnlessBatching();
    }

    fn submitUnlessBatching(r: *Ring) void {
        // On failure it stays queued, and the next poll's `enter` submits it.
        if (!r.batching) _ = r.ring.submit() catch {};
    }

    /// One completion when `fd` can be written to (or has failed).
    pub fn pollOut(r: *Ring, fd: sys.fd_t, token: u32) Error!void {
        try r.pollOnce(fd, linux.POLL.OUT, userData(.pollout, token));
    }

    /// One completion when `fd` can be read from (or has failed): for a stream that
    /// reads with read(2) while the ring has no buffer for it.
    pub fn pollIn(r: *Ring, fd: sys.fd_t, token: u32) Error!void {
        try r.pollOnce(fd, linux.POLL.IN, userData(.pollin, token));
    }

    fn pollOnce(r: *Ring, fd: sys.fd_t, events: u32, user_data: u64) Error!void {
        const e = try r.sqe();
        e.prep_poll_add(fd, events);
        e.user_data = user_data;
        r.submitUnlessBatching();
    }

    /// Cancels every operation on `fd`; each ends with its own completion.
    pub fn cancelFd(r: *Ring, fd: sys.fd_t) Error!void {
        const e = try r.sqe();
        e.prep_cancel_fd(fd, linux.IORING_ASYNC_CANCEL_ALL);
        e.user_data = userData(.cancel, 0);
    }

    /// Cancels one operation (by its user data); it ends with its own completion.
    pub fn cancelOp(r: *Ring, user_data: u64) Error!void {
        const e = try r.sqe();
        e.prep_cancel(user_data, 0);
        e.user_data = userData(.cancel, 0);
    }

    /// Makes the park's eventfd readable (completions are waiting that signalled nothing).
    pub fn signal(r: *Ring) void {
        const one: u64 = 1;
        _ = sys.write(r.efd, std.mem.asBytes(&one)) catch {};
    }

    /// Keeps a multishot poll on the epoll set (listeners, datagram sockets) armed.
    pub fn armEpoll(r: *Ring) Error!void {
        if (r.epoll_armed) return;
        const e = try r.sqe();
        e.prep_poll_add(r.epfd, linux.POLL.IN);
        e.len = linux.IORING_POLL_ADD_MULTI;
        e.user_data = userData(.epoll, 0);
        r.epoll_armed = true;
    }

    /// Submits what is queued and runs the completions waiting; with `wait_ms` other
    /// than 0, first waits up to that long (-1: forever) for one.
    pub fn enter(r: *Ring, wait_ms: i32) Error!u32 {
        const submit = r.ring.flush_sq();
        var flags: u32 = linux.IORING_ENTER_GETEVENTS;
        var arg: linux.io_uring_getevents_arg = .{ .sigmask = 0, .sigmask_sz = 0, .pad = 0, .ts = 0 };
        var ts: linux.kernel_timespec = undefined;
        var min: u32 = 0;
        if (wait_ms != 0 and r.ring.cq_ready() == 0) {
            min = 1;
            if (wait_ms > 0) {
                ts = .{ .sec = @divTrunc(wait_ms, 1000), .nsec = @rem(wait_ms, 1000) * std.time.ns_per_ms };
                arg.ts = @intFromPtr(&ts);
                flags |= linux.IORING_ENTER_EXT_ARG;
            }
        }
        const argp: usize = if (flags & linux.IORING_ENTER_EXT_ARG != 0) @intFromPtr(&arg) else 0;
        const argsz: usize = if (argp != 0) @sizeOf(linux.io_uring_getevents_arg) else 0;
        const rc = linux.syscall6(.io_uring_enter, @bitCast(@as(isize, r.ring.fd)), submit, min, flags, argp, argsz);
        // The wait's timeout passed (ETIME): nothing came, which is no error.
        if (linux.E.init(rc) == .TIME) return 0;
        return @intCast(sys.check(rc) catch |err| switch (err) {
            // A timeout, or a signal: the completions that are there are taken anyway.
            error.TimedOut, error.Interrupted, error.WouldBlock => return 0,
            else => return err,
        });
    }

    /// Copies up to `out.len` completions and takes them off the ring.
    pub fn reap(r: *Ring, out: []linux.io_uring_cqe) usize {
        return r.ring.copy_cqes(out, 0) catch 0;
    }

    /// The loop runs: completions that arrive now signal nothing (it will poll again).
    pub fn running(r: *Ring) void {
        @atomicStore(u32, r.cq_flags, r.cq_flags.* | linux.IORING_CQ_EVENTFD_DISABLED, .release);
    }

    /// Nothing for an `enter` to do: nothing to submit, and no work `waiting`.
    pub fn idle(r: *Ring) bool {
        return r.ring.sq_ready() == 0 and !r.waiting();
    }

    /// Work the loop has not taken: task work queued for it (the kernel's
    /// `IORING_SQ_TASKRUN`), completions overflowed, or completions posted.
    pub fn waiting(r: *Ring) bool {
        const flags = @atomicLoad(u32, r.ring.sq.flags, .seq_cst);
        if (flags & (linux.IORING_SQ_TASKRUN | linux.IORING_SQ_CQ_OVERFLOW) != 0) return true;
        return r.ring.cq_ready() > 0;
    }

    /// Completions signal the eventfd: the loop prepared a park and has not polled since.
    pub fn signalling(r: *Ring) bool {
        return @atomicLoad(u32, r.cq_flags, .acquire) & linux.IORING_CQ_EVENTFD_DISABLED == 0;
    }

    /// Before a park: signals on, an old signal drained (unless the wake drains it:
    /// `drain` false), and a last look at the work that came meanwhile. True when
    /// completions are waiting (then the loop should not park); work that arrives after
    /// this signals the eventfd, so no wake is lost.
    pub fn preparePark(r: *Ring, drain: bool) Error!bool {
        // The multishot poll on the epoll set ends when the kernel cannot post its
        // completion (a full completion queue): a park needs it armed again, or a
        // listener's connection would wake nothing. (Queued here, it goes in with the
        // `enter` below.)
        try r.armEpoll();
        @atomicStore(u32, r.cq_flags, r.cq_flags.* & ~@as(u32, linux.IORING_CQ_EVENTFD_DISABLED), .seq_cst);
        if (drain) {
            var sink: u64 = 0;
            _ = sys.read(r.efd, std.mem.asBytes(&sink)) catch {};
        }
        // The last look needs no `enter` when no work waits. The kernel runs the loop's
        // work on this thread, as task work on its way back to user space: work run
        // before the store above left a completion this look sees, and work run after it
        // signals the eventfd. (Work queued by another CPU whose flag this look misses
        // runs later, so it signals.)
        if (r.idle()) return false;
        _ = try r.enter(0);
        return r.ring.cq_ready() > 0;
    }
};

const testing = std.testing;

test "a parked ring fires the kernel's wake once per completion, never before one" {
    var w = try @import("../ring_wake.zig").openForTest();
    defer w.deinit();
    const epfd: sys.fd_t = @intCast(try sys.check(linux.epoll_create1(linux.EPOLL.CLOEXEC)));
    defer sys.close(epfd);
    var why: Unavailable = .none;
    const r = Ring.init(testing.allocator, epfd, &why) catch |err| switch (err) {
        // Before Linux 6.0, or under qemu-user.
        error.Unsupported => return error.SkipZigTest,
        else => return err,
    };
    defer r.deinit(testing.allocator);
    var fds: [2]i32 = undefined;
    _ = try sys.check(linux.socketpair(linux.AF.UNIX, linux.SOCK.STREAM | linux.SOCK.NONBLOCK | linux.SOCK.CLOEXEC, 0, &fds));
    defer sys.close(fds[0]);
    defer sys.close(fds[1]);
    r.running();

    var buf: [8]u8 = undefined;
    var cqes: [4]linux.io_uring_cqe = undefined;
    // First as the loop parks with the kernel's wake (which drains the eventfd as it
    // fires), then as it parks on a thread (the park drains it).
    for (0..10) |i| {
        const wake_drains = i < 5;
        try r.armRecv(fds[0], 7); // one-shot: the loop asks again after each completion
        // The park, as the loop makes it: nothing waiting, then the wake armed on the
        // eventfd, which stays silent until data comes.
        try testing.expect(!try r.preparePark(!wake_drains));
        try w.arm(r.efd, wake_drains);
        try testing.expect(!try sys.pollReadable(w.rx, 20));
        // Data: the runtime's socket gets its byte, and the data is in the ring.
        _ = try sys.write(fds[1], "hello");
        try testing.expect(try sys.pollReadable(w.rx, 1000));
        try testing.expectEqual(@as(usize, 1), try sys.read(w.rx, &buf));
        // Drained by the wake itself, or still signalled for the next park to drain.
        try testing.expectEqual(!wake_drains, try sys.pollReadable(r.efd, 0));
        r.running();
        try testing.expect(!r.idle()); // the data waits as a completion
        _ = try r.enter(0);
        try testing.expectEqual(@as(usize, 1), r.reap(&cqes));
        try testing.expectEqual(userData(.recv, 7), cqes[0].user_data);
        try testing.expectEqual(@as(i32, 5), cqes[0].res);
        const bid = try cqes[0].buffer_id();
        try testing.expectEqualStrings("hello", r.buffer(bid)[0..5]);
        r.giveBack(bid);
    }
    // Data that came while the loop ran, with signals off: the park's last look finds it
    // instead of parking on an eventfd that nothing will signal.
    try r.armRecv(fds[0], 7);
    r.running();
    _ = try sys.write(fds[1], "late");
    try testing.expect(try r.preparePark(false));
    try testing.expectEqual(@as(usize, 1), r.reap(&cqes));
    try testing.expectEqual(@as(i32, 4), cqes[0].res);
    r.giveBack(try cqes[0].buffer_id());
}
