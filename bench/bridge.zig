//! What the kernel charges for zev's wake, with no runtime in the way.
//!
//! A thread sleeps in epoll_wait, as Deno and Bun do, and another process on the other
//! CPU sends it one byte a millisecond. Each variant wakes the sleeper a different way;
//! the figure is the sleeper's CPU time per wake (CLOCK_PROCESS_CPUTIME_ID), which is
//! what the curve tables charge a server for:
//!
//!   direct      the byte arrives on a socket the outer epoll watches: a runtime's own
//!               socket, the floor every bridge is measured against.
//!   ring        zev's bridge (zig/ring_wake.zig): the byte arrives on a socket of an inner
//!               epoll (zev's loop, edge-triggered); the sleeper had armed an io_uring poll
//!               on the inner epoll linked to a one-byte send to a Unix socket the outer
//!               epoll watches; woken, it reads the wake byte, polls the inner epoll, reads.
//!   ring-coop   the same ring set up with COOP_TASKRUN and TASKRUN_FLAG.
//!   ring-ewait  the poll replaced by IORING_OP_EPOLL_WAIT (Linux 6.15), which hands over
//!               the inner epoll's events itself: no inner epoll_wait after the wake.
//!   aio         linux-aio's poll on the inner epoll, completing into an eventfd the outer
//!               epoll watches: no task work, no EINTR, no Unix socket; what the kernel
//!               can do without io_uring, but neither runtime reads an eventfd cheaply.
//!
//! For `ring` it also times each system call of a wake (wall time, which for calls that
//! never sleep is their CPU time): what the bridge adds, call by call.
//!
//!   zev-bridge [--rounds 5] [--wakes 3000] [--only direct,ring,...]   (or --flag=value)
//!
//! Rounds interleave the variants, so a slow spell of the machine hits them all; the
//! table gives each variant's median, lowest and highest, and the median of its ratio to
//! `direct` in the same round. Needs two CPUs (sleeper on CPU 0, sender on CPU 1).

const std = @import("std");
const linux = std.os.linux;
const flags = @import("flags.zig");

const Variant = enum { direct, ring, @"ring-coop", @"ring-ewait", aio };

/// IORING_OP_EPOLL_WAIT (Linux 6.15), not yet in the pinned Zig's enum.
const op_epoll_wait: linux.IORING_OP = @enumFromInt(59);

/// Wakes measured after this many, which warm the caches and the ring.
const warmup = 50;

/// The system calls of one `ring` wake, in order (wall ns per wake).
const Segment = enum { submit, rewait, read_wake, inner_poll, read_data };

const Run = struct {
    /// CPU µs per wake, or null if the kernel refused the variant.
    us: ?f64,
    segments: [@typeInfo(Segment).@"enum".fields.len]f64 = @splat(0),
};

fn check(rc: usize) !usize {
    return switch (linux.E.init(rc)) {
        .SUCCESS => rc,
        else => |e| {
            std.debug.print("bridge: system call failed: {s}\n", .{@tagName(e)});
            return error.SystemCall;
        },
    };
}

fn clockNs(id: linux.CLOCK) u64 {
    var ts: linux.timespec = undefined;
    _ = linux.clock_gettime(id, &ts);
    return @as(u64, @intCast(ts.sec)) * 1_000_000_000 + @as(u64, @intCast(ts.nsec));
}

fn pin(cpu: usize) !void {
    var set: linux.cpu_set_t = std.mem.zeroes(linux.cpu_set_t);
    set[cpu / @bitSizeOf(usize)] |= @as(usize, 1) << @intCast(cpu % @bitSizeOf(usize));
    try linux.sched_setaffinity(0, &set);
}

fn socketPair(kind: u32) ![2]i32 {
    var fds: [2]i32 = undefined;
    _ = try check(linux.socketpair(linux.AF.UNIX, @intCast(kind | linux.SOCK.NONBLOCK | linux.SOCK.CLOEXEC), 0, &fds));
    return fds;
}

fn epollWith(fd: i32, edge: bool) !i32 {
    const ep: i32 = @intCast(try check(linux.epoll_create1(linux.EPOLL.CLOEXEC)));
    var ev = linux.epoll_event{ .events = linux.EPOLL.IN | (if (edge) linux.EPOLL.ET else 0), .data = .{ .fd = fd } };
    _ = try check(linux.epoll_ctl(ep, linux.EPOLL.CTL_ADD, fd, &ev));
    return ep;
}

/// Sleeps in the outer epoll until it reports something, as a runtime's loop does
/// (retrying EINTR).
fn sleepOuter(outer: i32) void {
    var evs: [16]linux.epoll_event = undefined;
    while (@as(isize, @bitCast(linux.epoll_wait(outer, &evs, evs.len, -1))) <= 0) {}
}

/// struct iocb of linux-aio.
const Iocb = extern struct {
    data: u64 = 0,
    key: u32 = 0,
    rw_flags: i32 = 0,
    opcode: u16 = 0,
    reqprio: i16 = 0,
    fildes: u32 = 0,
    buf: u64 = 0,
    nbytes: u64 = 0,
    offset: i64 = 0,
    reserved2: u64 = 0,
    flags: u32 = 0,
    resfd: u32 = 0,
};
const IOCB_CMD_POLL = 5;
const IOCB_FLAG_RESFD = 1;

/// One variant, `wakes` wakes, paced by a sender process on CPU 1.
fn measure(v: Variant, wakes: usize) !Run {
    const net = try socketPair(linux.SOCK.STREAM); // the sender writes net[1]; net[0] is "a connection"
    defer for (net) |fd| {
        _ = linux.close(fd);
    };
    const pid: i32 = @intCast(try check(linux.fork()));
    if (pid == 0) {
        pin(1) catch linux.exit(3);
        for (0..wakes + warmup + 1000) |_| {
            const ms = linux.timespec{ .sec = 0, .nsec = 1_000_000 };
            _ = linux.nanosleep(&ms, null);
            _ = linux.write(net[1], "x", 1);
        }
        linux.exit(0);
    }
    defer {
        _ = linux.kill(pid, linux.SIG.KILL);
        var status: u32 = 0;
        _ = linux.waitpid(pid, &status, 0);
    }
    try pin(0);
    return switch (v) {
        .direct => direct(net[0], wakes),
        .aio => aio(net[0], wakes),
        .ring, .@"ring-coop", .@"ring-ewait" => ring(v, net[0], wakes),
    };
}

fn direct(conn: i32, wakes: usize) !Run {
    const outer = try epollWith(conn, false);
    defer _ = linux.close(outer);
    var buf: [64]u8 = undefined;
    var t0: u64 = 0;
    for (0..wakes + warmup) |i| {
        if (i == warmup) t0 = clockNs(.PROCESS_CPUTIME_ID);
        sleepOuter(outer);
        _ = linux.read(conn, &buf, buf.len);
    }
    return .{ .us = perWake(t0, wakes) };
}

fn perWake(t0: u64, wakes: usize) f64 {
    const ns: f64 = @floatFromInt(clockNs(.PROCESS_CPUTIME_ID) - t0);
    return ns / 1000.0 / @as(f64, @floatFromInt(wakes));
}

fn ring(v: Variant, conn: i32, wakes: usize) !Run {
    const inner = try epollWith(conn, true);
    defer _ = linux.close(inner);
    const wake = try socketPair(linux.SOCK.STREAM);
    defer for (wake) |fd| {
        _ = linux.close(fd);
    };
    const outer = try epollWith(wake[0], false);
    defer _ = linux.close(outer);
    const setup: u32 = if (v == .@"ring-coop") linux.IORING_SETUP_COOP_TASKRUN | linux.IORING_SETUP_TASKRUN_FLAG else 0;
    // Refused (io_uring forbidden, or an op this kernel lacks): the table says so.
    var r = linux.IoUring.init(4, setup) catch return .{ .us = null };
    defer r.deinit();
    if (v == .@"ring-ewait") {
        const probe = r.get_probe() catch return .{ .us = null };
        if (!probe.is_supported(op_epoll_wait)) return .{ .us = null };
    }

    const byte = [1]u8{1};
    var buf: [64]u8 = undefined;
    var evs: [16]linux.epoll_event = undefined;
    var cqes: [4]linux.io_uring_cqe = undefined;
    var run = Run{ .us = null };
    var t0: u64 = 0;
    var timed: usize = 0;
    for (0..wakes + warmup) |i| {
        if (i == warmup) {
            t0 = clockNs(.PROCESS_CPUTIME_ID);
            run.segments = @splat(0);
            timed = 0;
        }
        // One wake in ten is timed call by call, so the clock reads barely weigh on the
        // CPU figure.
        const time = i % 10 == 0;
        if (time) timed += 1;
        _ = try r.copy_cqes(&cqes, 0);
        if (v == .@"ring-ewait") {
            const sqe = try r.get_sqe();
            sqe.prep_rw(op_epoll_wait, inner, @intFromPtr(&evs), evs.len, 0);
            sqe.user_data = 1;
            sqe.flags |= linux.IOSQE_IO_LINK;
        } else {
            const poll = try r.poll_add(1, inner, linux.POLL.IN);
            poll.flags |= linux.IOSQE_IO_LINK;
        }
        _ = try r.send(2, wake[1], &byte, linux.MSG.NOSIGNAL | linux.MSG.DONTWAIT);
        var t = if (time) clockNs(.MONOTONIC) else 0;
        _ = try r.submit();
        t = lap(&run, .submit, t, time);
        // The first call sleeps and returns EINTR (the task work that sends the byte
        // interrupts it); the call after it is the bridge's.
        var calls: usize = 0;
        while (true) : (calls += 1) {
            if (time) t = clockNs(.MONOTONIC);
            if (@as(isize, @bitCast(linux.epoll_wait(outer, &evs, evs.len, -1))) > 0) break;
        }
        t = if (calls > 0) lap(&run, .rewait, t, time) else if (time) clockNs(.MONOTONIC) else 0;
        _ = linux.read(wake[0], &buf, buf.len);
        t = lap(&run, .read_wake, t, time);
        if (v == .@"ring-ewait") {
            const n = try r.copy_cqes(&cqes, 0);
            if (n == 0 or cqes[0].res != 1) {
                std.debug.print("bridge: IORING_OP_EPOLL_WAIT completed with {d}, not 1 event\n", .{if (n == 0) 0 else cqes[0].res});
                return error.Unexpected;
            }
        } else {
            _ = linux.epoll_wait(inner, &evs, evs.len, 0);
        }
        t = lap(&run, .inner_poll, t, time);
        _ = linux.read(conn, &buf, buf.len);
        _ = lap(&run, .read_data, t, time);
    }
    run.us = perWake(t0, wakes);
    for (&run.segments) |*s| s.* /= @floatFromInt(timed);
    return run;
}

/// Adds the time since `t` to a segment and returns now, if this wake is timed.
fn lap(run: *Run, s: Segment, t: u64, time: bool) u64 {
    if (!time) return 0;
    const now = clockNs(.MONOTONIC);
    run.segments[@intFromEnum(s)] += @floatFromInt(now - t);
    return now;
}

fn aio(conn: i32, wakes: usize) !Run {
    const inner = try epollWith(conn, true);
    defer _ = linux.close(inner);
    const efd: i32 = @intCast(try check(linux.eventfd(0, linux.EFD.CLOEXEC | linux.EFD.NONBLOCK)));
    defer _ = linux.close(efd);
    const outer = try epollWith(efd, false);
    defer _ = linux.close(outer);
    var ctx: usize = 0;
    _ = check(linux.syscall2(.io_setup, 4, @intFromPtr(&ctx))) catch return .{ .us = null };
    defer _ = linux.syscall1(.io_destroy, ctx);
    var cb = Iocb{ .opcode = IOCB_CMD_POLL, .fildes = @intCast(inner), .buf = linux.POLL.IN, .flags = IOCB_FLAG_RESFD, .resfd = @intCast(efd) };
    var cbs = [1]*Iocb{&cb};
    var done: [4][4]u64 = undefined; // struct io_event
    var zero = linux.timespec{ .sec = 0, .nsec = 0 };
    var buf: [64]u8 = undefined;
    var evs: [16]linux.epoll_event = undefined;
    var t0: u64 = 0;
    for (0..wakes + warmup) |i| {
        if (i == warmup) t0 = clockNs(.PROCESS_CPUTIME_ID);
        _ = try check(linux.syscall3(.io_submit, ctx, 1, @intFromPtr(&cbs)));
        sleepOuter(outer);
        _ = linux.read(efd, &buf, 8);
        _ = linux.syscall5(.io_getevents, ctx, 1, done.len, @intFromPtr(&done), @intFromPtr(&zero));
        _ = linux.epoll_wait(inner, &evs, evs.len, 0);
        _ = linux.read(conn, &buf, buf.len);
    }
    return .{ .us = perWake(t0, wakes) };
}

fn median(xs: []f64) f64 {
    std.mem.sort(f64, xs, {}, std.sort.asc(f64));
    const m = xs.len / 2;
    return if (xs.len % 2 == 1) xs[m] else (xs[m - 1] + xs[m]) / 2;
}

fn usage(comptime fmt: []const u8, args: anytype) noreturn {
    std.debug.print("bridge: " ++ fmt ++ "\nusage: zev-bridge [--rounds 5] [--wakes 3000] [--only direct,ring,...]\n", args);
    linux.exit(2);
}

pub fn main() !void {
    var rounds: usize = 5;
    var wakes: usize = 3000;
    var only = std.enums.EnumSet(Variant).initFull();
    var args = std.process.args();
    _ = args.next();
    while (args.next()) |arg| {
        const given = flags.split(arg);
        const flag = given.name;
        const v = given.value orelse args.next() orelse usage("missing value for {s}", .{flag});
        if (std.mem.eql(u8, flag, "--only")) {
            only = .initEmpty();
            var names = std.mem.splitScalar(u8, v, ',');
            while (names.next()) |name| only.insert(std.meta.stringToEnum(Variant, name) orelse usage("unknown wake '{s}'", .{name}));
            continue;
        }
        const n = std.fmt.parseInt(usize, v, 10) catch usage("invalid value '{s}' for {s}", .{ v, flag });
        if (n < 1) usage("{s} must be at least 1", .{flag});
        if (std.mem.eql(u8, flag, "--rounds")) rounds = n else if (std.mem.eql(u8, flag, "--wakes")) wakes = n else usage("unknown flag {s}", .{flag});
    }

    // The sender must run beside the sleeper, or its pinning fails and nothing wakes it.
    if ((std.Thread.getCpuCount() catch 1) < 2) usage("needs two CPUs (sleeper on CPU 0, sender on CPU 1)", .{});
    // `direct` always runs: every ratio is taken against it.
    only.insert(.direct);
    var chosen: [std.enums.values(Variant).len]Variant = undefined;
    var count: usize = 0;
    for (std.enums.values(Variant)) |v| if (only.contains(v)) {
        chosen[count] = v;
        count += 1;
    };
    const variants = chosen[0..count];
    var gpa = std.heap.GeneralPurposeAllocator(.{}){};
    const alloc = gpa.allocator();
    const runs = try alloc.alloc(Run, rounds * variants.len);
    defer alloc.free(runs);
    for (0..rounds) |round| {
        for (variants, 0..) |v, i| runs[round * variants.len + i] = try measure(v, wakes);
        std.debug.print("round {d} of {d} done\n", .{ round + 1, rounds });
    }

    const out = std.fs.File.stdout().deprecatedWriter();
    try out.print("CPU per wake of a thread sleeping in epoll_wait, {d} rounds of {d} wakes, one a millisecond\n\n", .{ rounds, wakes });
    try out.print("| wake | CPU µs per wake, median | lowest | highest | against direct, median of rounds |\n", .{});
    try out.print("| --- | --- | --- | --- | --- |\n", .{});
    const xs = try alloc.alloc(f64, rounds);
    defer alloc.free(xs);
    const ratios = try alloc.alloc(f64, rounds);
    defer alloc.free(ratios);
    for (variants, 0..) |v, i| {
        var n: usize = 0;
        for (0..rounds) |round| {
            const us = runs[round * variants.len + i].us orelse continue;
            xs[n] = us;
            ratios[n] = us / runs[round * variants.len].us.?;
            n += 1;
        }
        if (n == 0) {
            try out.print("| {s} | refused here (io_uring forbidden, or too old a kernel) | | | |\n", .{@tagName(v)});
            continue;
        }
        const m = median(xs[0..n]);
        try out.print("| {s} | {d:.1} | {d:.1} | {d:.1} | {d:.2}× |\n", .{ @tagName(v), m, xs[0], xs[n - 1], median(ratios[0..n]) });
    }
    const ring_at = std.mem.indexOfScalar(Variant, variants, .ring) orelse return;
    if (runs[ring_at].us == null) return; // refused here
    try out.print("\nThe system calls of a `ring` wake (wall µs each, median of rounds):", .{});
    for (std.enums.values(Segment)) |s| {
        for (0..rounds) |round| xs[round] = runs[round * variants.len + ring_at].segments[@intFromEnum(s)] / 1000.0;
        try out.print(" {s} {d:.2}", .{ @tagName(s), median(xs) });
    }
    try out.print("\n(submit: the park's io_uring_enter; rewait: the epoll_wait after EINTR; read_wake: the wake byte;\n" ++
        "inner_poll: zev's epoll_wait; read_data: the connection's read, which every server pays)\n", .{});
}
