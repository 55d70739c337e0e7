//! Listening sockets: level-triggered, accepted in bounded batches, paused with a doubling
//! backoff when descriptors, memory or handles run out, and each pause told once.
//!
//! A listener nobody accepts from is disarmed by the poll that reports it (the kernel's
//! backlog holds the connections) and armed again by the next `accept`, so a level-triggered
//! listener never spins. Paused listeners and untold pauses are kept in two lists linked
//! through the listeners themselves: found without scanning the handle table.

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const address = @import("address.zig");
const Error = @import("errors.zig").Error;
const loop_mod = @import("loop.zig");
const Loop = loop_mod.Loop;
const Opt = loop_mod.Opt;
const Flag = loop_mod.Flag;
const stream = @import("stream.zig");

/// Janet 1.32's listener behaviour (edge-triggered, one accept per event), compiled in
/// only to prove that the burst tests catch it. Never set it in a real build.
pub const edge_single = std.mem.eql(u8, @import("build_options").listener_mode, "edge-single");

pub const no_deadline: i64 = std.math.maxInt(i64);

const UnixFile = struct {
    path: [:0]u8,
    /// What the path named when the listener bound it.
    id: sys.FileId,
};

pub const Listener = struct {
    fd: sys.fd_t,
    want_accept: bool = false,
    /// Registered with interest (not paused by the loop).
    armed: bool = true,
    /// edge-single only: an edge arrived and has not been consumed by an accept.
    acceptable: bool = false,
    paused: bool = false,
    /// On the loop's list of listeners with a pause not yet told.
    notice_pending: bool = false,
    backoff_ms: u32 = 0,
    resume_at_ns: i64 = 0,
    /// The next paused listener (a handle; 0 ends the list).
    next_paused: u32 = 0,
    /// The next listener with a pause not yet told (a handle; 0 ends the list).
    notice_next: u32 = 0,
    /// Pauses since the caller was last told (`pausesUntold`).
    pauses_untold: u32 = 0,
    /// Why the listener was last paused, not yet asked by `status`.
    pause_reason: ?Error = null,
    /// A Unix listener's socket file, removed when it closes if it is still this one
    /// (allocated apart: every slot of the handle table pays for a field here).
    unix: ?*UnixFile = null,
};

pub fn listen(loop: *Loop, host: []const u8, port: u32, backlog: u32, opts: u32) Error!u32 {
    if (opts & ~Opt.all != 0) return error.InvalidArgument;
    const addr = try address.parse(host, port);
    const fd = try sys.socket(address.family(&addr));
    errdefer sys.close(fd);
    const posix = std.posix;
    try sys.setInt(fd, posix.SOL.SOCKET, posix.SO.REUSEADDR, 1);
    if (opts & Opt.reuse_port != 0) try sys.setInt(fd, posix.SOL.SOCKET, posix.SO.REUSEPORT, 1);
    // Accepted sockets inherit these from the listener: one call, not one per accept.
    try stream.setOptions(fd, opts);
    try sys.bind(fd, &addr.any, addr.getOsSockLen());
    try sys.listen(fd, backlogOf(backlog));
    const h = try loop.sockets.insert(.{ .listener = .{ .fd = fd } });
    errdefer loop.sockets.remove(h);
    try loop.poller.addListener(fd, h, edge_single);
    return h;
}

/// Listens on a Unix socket at `path`. A socket file already there that no process
/// listens on (left by one that died) is `StaleSocket`, or is replaced if `opts` has
/// `Opt.replace_stale`; a live listener or any other file there is `AddressInUse`.
/// The file is removed when the listener closes, if it is still this listener's.
pub fn listenUnix(loop: *Loop, path: []const u8, backlog: u32, opts: u32) Error!u32 {
    if (opts & ~Opt.replace_stale != 0) return error.InvalidArgument;
    const addr = try address.parseUnix(path);
    const unix = loop.allocator.create(UnixFile) catch return error.NoMemory;
    errdefer loop.allocator.destroy(unix);
    const path_z = loop.allocator.dupeZ(u8, path) catch return error.NoMemory;
    errdefer loop.allocator.free(path_z);
    const fd = try sys.socket(std.posix.AF.UNIX);
    errdefer sys.close(fd);
    sys.bind(fd, &addr.any, addr.getOsSockLen()) catch |err| {
        if (err != error.AddressInUse or !try isStale(path_z)) return err;
        if (opts & Opt.replace_stale == 0) return error.StaleSocket;
        sys.unlink(path_z) catch |e| if (e != error.NotFound) return e;
        try sys.bind(fd, &addr.any, addr.getOsSockLen());
    };
    // The file is ours from here on: a failure below removes it.
    errdefer sys.unlink(path_z) catch {};
    unix.* = .{ .path = path_z, .id = (try sys.socketFileAt(path_z)) orelse return error.Unexpected };
    try sys.listen(fd, backlogOf(backlog));
    const h = try loop.sockets.insert(.{ .listener = .{ .fd = fd, .unix = unix } });
    errdefer loop.sockets.remove(h);
    try loop.poller.addListener(fd, h, edge_single);
    return h;
}

/// Accepts up to `out.len` (at most `accept_batch`) connections and writes their
/// handles to `out`. Returns how many; `WouldBlock` when none is pending, after which
/// an ACCEPT event tells when to call again.
pub fn accept(loop: *Loop, lh: u32, out: []u32) Error!usize {
    const l = try loop.get(lh, .listener);
    if (out.len == 0) return error.InvalidArgument;
    // The caller accepts: report the next readiness. (A listener whose ACCEPT event
    // goes unanswered is disarmed by the next poll instead; see onReady.)
    l.want_accept = true;
    if (l.paused) return error.WouldBlock;
    var max: usize = @min(out.len, limits.accept_batch);
    if (edge_single) {
        // Janet 1.32: one accept per readiness edge, then wait for the next edge.
        if (!l.acceptable) return error.WouldBlock;
        l.acceptable = false;
        max = 1;
    }
    var count: usize = 0;
    var attempts: usize = 0;
    while (attempts < max) : (attempts += 1) {
        var peer: std.posix.sockaddr.storage = undefined;
        const fd = sys.accept(l.fd, &peer) catch |err| switch (err) {
            error.WouldBlock => break,
            // The connection died between the handshake and accept, or the network
            // failed it (accept(2): treat these like EAGAIN): skip it, take the next.
            error.ConnectionReset, error.PermissionDenied, error.Unreachable, error.NetworkError => {
                loop.stats.accept_skipped += 1;
                continue;
            },
            error.TooManyOpenFiles, error.NoMemory => {
                pause(loop, lh, l, err);
                if (count == 0) return err;
                break;
            },
            else => {
                if (count == 0) return err;
                break;
            },
        };
        const h = stream.adopt(loop, fd, &peer) catch |err| {
            // The table is full (`Limit`), or the kernel would not watch it (epoll's watch
            // limit, no memory, no ring slot): this connection is lost, and the next would
            // be too while that lasts, so count it and back off as for EMFILE: the rest
            // wait in the backlog, and the pause notice tells the caller why.
            loop.stats.accept_rejected += 1;
            pause(loop, lh, l, err);
            break;
        };
        out[count] = h;
        count += 1;
    }
    loop.stats.accepted += count;
    if (count > 0) l.backoff_ms = 0;
    if (!l.armed and !l.paused) {
        try loop.poller.armListener(l.fd, lh, edge_single, true);
        l.armed = true;
    }
    if (count == 0) return error.WouldBlock;
    return count;
}

/// Stops polling a listener that cannot accept (no descriptors), so that level
/// triggering does not spin, and schedules a retry with a doubling backoff. The next
/// poll tells the caller (`Flag.paused`), once per pause.
pub fn pause(loop: *Loop, lh: u32, l: *Listener, reason: Error) void {
    loop.stats.accept_paused += 1;
    l.pause_reason = reason;
    l.pauses_untold +|= 1;
    if (!l.notice_pending) {
        l.notice_pending = true;
        l.notice_next = loop.notices_head;
        loop.notices_head = lh;
    }
    if (l.paused) return;
    l.backoff_ms = if (l.backoff_ms == 0) limits.accept_backoff_first_ms else @min(l.backoff_ms * 2, limits.accept_backoff_max_ms);
    l.resume_at_ns = sys.monotonicNs() + @as(i64, l.backoff_ms) * std.time.ns_per_ms;
    // If disarming fails the listener stays armed: the next poll reports it, and the
    // caller's accept pauses it again. Nothing is lost either way.
    if (l.armed) loop.poller.armListener(l.fd, lh, edge_single, false) catch {};
    l.armed = false;
    l.paused = true;
    l.next_paused = loop.paused_head;
    loop.paused_head = lh;
    updateResumeDue(loop);
}

/// Resumes paused listeners that are due (all of them when `now` is maxInt).
pub fn resumeDue(loop: *Loop, now: i64) void {
    var prev: ?*Listener = null;
    var lh = loop.paused_head;
    while (lh != 0) {
        const l = loop.listenerAt(lh);
        const next = l.next_paused;
        if (l.resume_at_ns > now) {
            prev = l;
        } else {
            if (prev) |p| p.next_paused = next else loop.paused_head = next;
            l.paused = false;
            l.next_paused = 0;
            if (armResumed(loop, l, lh)) |_| {
                l.armed = true;
            } else |err| {
                // Neither armed nor paused, it would wait for an accept() that a
                // caller waiting for its ACCEPT event never makes: pause it again,
                // with the reason (unless it is closing).
                if (now != std.math.minInt(i64)) {
                    pause(loop, lh, l, err);
                    // `pause` put it back at the head, before `next`: the walk goes
                    // on from it, so that unlinking `next` keeps it linked.
                    if (prev == null) prev = l;
                }
            }
        }
        lh = next;
    }
    updateResumeDue(loop);
}

fn armResumed(loop: *Loop, l: *Listener, lh: u32) Error!void {
    if (loop.injected("test_fail_arm")) return error.NoMemory;
    try loop.poller.armListener(l.fd, lh, edge_single, true);
}

fn updateResumeDue(loop: *Loop) void {
    var due: i64 = no_deadline;
    var lh = loop.paused_head;
    while (lh != 0) {
        const l = loop.listenerAt(lh);
        due = @min(due, l.resume_at_ns);
        lh = l.next_paused;
    }
    loop.resume_due_ns.store(due, .release);
}

/// Before a listener closes: out of the paused and notice lists, and its socket file
/// removed if it is still its own (another process may have replaced it).
pub fn forget(loop: *Loop, lh: u32, l: *Listener) void {
    if (l.paused) {
        l.resume_at_ns = std.math.minInt(i64);
        resumeDue(loop, std.math.minInt(i64));
    }
    if (l.notice_pending) {
        var link = &loop.notices_head;
        while (link.* != lh) link = &loop.listenerAt(link.*).notice_next;
        link.* = l.notice_next;
        l.notice_pending = false;
    }
    if (l.unix) |unix| {
        const now = sys.socketFileAt(unix.path) catch null;
        if (now != null and std.meta.eql(now.?, unix.id)) sys.unlink(unix.path) catch {};
        loop.allocator.free(unix.path);
        loop.allocator.destroy(unix);
        l.unix = null;
    }
}

/// Why a listener was last paused (and forgets it), or null.
pub fn pauseReason(loop: *Loop, lh: u32) Error!?Error {
    const l = try loop.get(lh, .listener);
    defer l.pause_reason = null;
    return l.pause_reason;
}

/// How many times a listener was paused since the last call (a `paused` notice may
/// stand for several).
pub fn pausesUntold(loop: *Loop, lh: u32) Error!u32 {
    const l = try loop.get(lh, .listener);
    defer l.pauses_untold = 0;
    // (Told as an i32 through the C ABI: a count past it is told as the largest.)
    return @min(l.pauses_untold, std.math.maxInt(i32));
}

/// A readiness event on a listener: ACCEPT if the caller wants connections.
pub fn onReady(loop: *Loop, lh: u32, l: *Listener) u32 {
    if (edge_single) l.acceptable = true;
    if (l.want_accept) {
        l.want_accept = false;
        return Flag.accept;
    }
    // Nobody is accepting: stop a level-triggered listener from waking every poll.
    // The next accept() re-arms it; the kernel's backlog holds the connections.
    if (!edge_single and l.armed) {
        loop.poller.armListener(l.fd, lh, false, false) catch return 0;
        l.armed = false;
    }
    return 0;
}

/// Adds the pauses not yet told after `start` pairs, as far as `out` has room; the
/// rest in the next poll.
pub fn notices(loop: *Loop, out: []u32, start: usize) usize {
    var count = start;
    while (loop.notices_head != 0 and count < out.len / 2) {
        const lh = loop.notices_head;
        const l = loop.listenerAt(lh);
        loop.notices_head = l.notice_next;
        l.notice_pending = false;
        l.notice_next = 0;
        out[2 * count] = lh;
        out[2 * count + 1] = Flag.paused;
        count += 1;
    }
    return count;
}

/// The backlog asked of the kernel: the caller's, or the default, at most the limit.
fn backlogOf(backlog: u32) u32 {
    return if (backlog == 0) limits.listen_backlog else @min(backlog, limits.listen_backlog);
}

/// Whether `path` is a socket file that no process listens on (a connect is refused).
fn isStale(path: [:0]const u8) Error!bool {
    if (sys.socketFileAt(path) catch |err| return err == error.NotFound) |_| {} else return false;
    const addr = try address.parseUnix(path);
    const probe = try sys.socket(std.posix.AF.UNIX);
    defer sys.close(probe);
    sys.connect(probe, &addr.any, addr.getOsSockLen()) catch |err| return err == error.ConnectionRefused;
    return false;
}
