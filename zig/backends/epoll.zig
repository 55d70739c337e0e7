//! The Linux backend: epoll, with an eventfd as the waker.
//!
//! Streams are registered once, edge-triggered, for input and output together, and never
//! modified again: the loop keeps each stream's readiness itself and drains until EAGAIN.
//! Listeners are level-triggered (or, in the `edge-single` regression build, edge-
//! triggered); a paused listener is modified to an empty interest set so it cannot spin.

const std = @import("std");
const linux = std.os.linux;
const sys = @import("../sys.zig");
const Error = @import("../errors.zig").Error;
const check = sys.check;
const Event = @import("poller.zig").Event;
const limits = @import("../limits.zig");

/// Token of the waker; handles are never 0.
const waker_token: u32 = 0;

pub const Poller = struct {
    epfd: sys.fd_t,
    waker: sys.fd_t,
    raw: [limits.max_events_per_poll]linux.epoll_event = undefined,

    pub fn init() Error!Poller {
        const epfd: sys.fd_t = @intCast(try check(linux.epoll_create1(linux.EPOLL.CLOEXEC)));
        errdefer sys.close(epfd);
        const waker: sys.fd_t = @intCast(try check(linux.eventfd(0, linux.EFD.CLOEXEC | linux.EFD.NONBLOCK)));
        errdefer sys.close(waker);
        var p: Poller = .{ .epfd = epfd, .waker = waker };
        try p.ctl(linux.EPOLL.CTL_ADD, waker, linux.EPOLL.IN, waker_token);
        return p;
    }

    pub fn deinit(p: *Poller) void {
        sys.close(p.waker);
        sys.close(p.epfd);
    }

    fn ctl(p: *Poller, op: u32, fd: sys.fd_t, events: u32, token: u32) Error!void {
        var ev = linux.epoll_event{ .events = events, .data = .{ .u64 = token } };
        _ = try check(linux.epoll_ctl(p.epfd, op, fd, &ev));
    }

    pub fn addStream(p: *Poller, fd: sys.fd_t, token: u32) Error!void {
        const E = linux.EPOLL;
        try p.ctl(E.CTL_ADD, fd, E.IN | E.OUT | E.RDHUP | E.ET, token);
    }

    pub fn addListener(p: *Poller, fd: sys.fd_t, token: u32, edge: bool) Error!void {
        const E = linux.EPOLL;
        try p.ctl(E.CTL_ADD, fd, E.IN | (if (edge) E.ET else 0), token);
    }

    /// Pauses (empty interest set) or resumes a listener.
    pub fn armListener(p: *Poller, fd: sys.fd_t, token: u32, edge: bool, on: bool) Error!void {
        const E = linux.EPOLL;
        const events: u32 = if (on) E.IN | (if (edge) E.ET else 0) else 0;
        try p.ctl(E.CTL_MOD, fd, events, token);
    }

    /// Waits up to `timeout_ms` (0: do not wait) and normalizes the events into `out`.
    pub fn wait(p: *Poller, out: []Event, timeout_ms: i32) Error!usize {
        const max: u32 = @intCast(@min(out.len, p.raw.len));
        const n = check(linux.epoll_wait(p.epfd, &p.raw, max, timeout_ms)) catch |err| switch (err) {
            error.Interrupted => return 0,
            else => return err,
        };
        var count: usize = 0;
        for (p.raw[0..n]) |ev| {
            const token: u32 = @truncate(ev.data.u64);
            if (token == waker_token) {
                var sink: u64 = 0;
                _ = sys.read(p.waker, std.mem.asBytes(&sink)) catch {};
                continue;
            }
            const E = linux.EPOLL;
            out[count] = .{
                .token = token,
                .readable = ev.events & (E.IN | E.PRI) != 0,
                .writable = ev.events & E.OUT != 0,
                .read_closed = ev.events & (E.HUP | E.RDHUP) != 0,
                .write_closed = ev.events & E.HUP != 0,
                .err = ev.events & E.ERR != 0,
            };
            count += 1;
        }
        return count;
    }

    /// Wakes a thread blocked in `park`; safe from any thread.
    pub fn wake(p: *const Poller) void {
        const one: u64 = 1;
        // Only fails if the counter would overflow, which means a wake is pending anyway.
        _ = sys.write(p.waker, std.mem.asBytes(&one)) catch {};
    }

    /// The descriptor a parked thread polls: an epoll fd is readable while it has events,
    /// and waiting on it this way leaves the events for the JS thread to take.
    pub fn parkFd(p: *const Poller) sys.fd_t {
        return p.epfd;
    }
};
