//! The macOS and FreeBSD backend: kqueue, with an EVFILT_USER event as the waker.
//!
//! Streams get a read and a write filter, both EV_CLEAR (edge-triggered), added once and
//! never changed. Listeners get a read filter without EV_CLEAR (level-triggered), or with
//! it in the `edge-single` regression build; a paused listener is disabled with
//! EV_DISABLE. A listener's mode is fixed when it is added, so the EV_DELETE that Janet
//! needed before switching a filter's mode (janet-lang/janet#1560) never arises.

const std = @import("std");
const c = std.c;
const posix = std.posix;
const sys = @import("../sys.zig");
const Error = @import("../errors.zig").Error;
const Event = @import("poller.zig").Event;
const limits = @import("../limits.zig");
const check = sys.check;

/// Ident and token of the waker's EVFILT_USER event; handles are never 0.
const waker_token: u32 = 0;

/// EV_EOF is 0x8000 on macOS and the BSDs; Zig 0.15's std omits it for FreeBSD.
const ev_eof: u16 = 0x8000;

pub const Poller = struct {
    kq: sys.fd_t,
    raw: [limits.max_events_per_poll]c.Kevent = undefined,

    pub fn init() Error!Poller {
        const kq: sys.fd_t = @intCast(try check(c.kqueue()));
        errdefer sys.close(kq);
        var p: Poller = .{ .kq = kq };
        try p.change(&.{kev(0, c.EVFILT.USER, c.EV.ADD | c.EV.CLEAR, 0, waker_token)});
        return p;
    }

    pub fn deinit(p: *Poller) void {
        sys.close(p.kq);
    }

    fn kev(ident: usize, filter: i16, flags: u16, fflags: u32, token: u32) c.Kevent {
        var ev = std.mem.zeroes(c.Kevent);
        ev.ident = ident;
        ev.filter = filter;
        ev.flags = flags;
        ev.fflags = fflags;
        ev.udata = token;
        return ev;
    }

    fn change(p: *const Poller, changes: []const c.Kevent) Error!void {
        var none: [0]c.Kevent = .{};
        _ = try check(c.kevent(p.kq, changes.ptr, @intCast(changes.len), &none, 0, null));
    }

    pub fn addStream(p: *Poller, fd: sys.fd_t, token: u32) Error!void {
        const ident: usize = @intCast(fd);
        try p.change(&.{
            kev(ident, c.EVFILT.READ, c.EV.ADD | c.EV.CLEAR, 0, token),
            kev(ident, c.EVFILT.WRITE, c.EV.ADD | c.EV.CLEAR, 0, token),
        });
    }

    pub fn addListener(p: *Poller, fd: sys.fd_t, token: u32, edge: bool) Error!void {
        const flags: u16 = c.EV.ADD | (if (edge) @as(u16, c.EV.CLEAR) else 0);
        try p.change(&.{kev(@intCast(fd), c.EVFILT.READ, flags, 0, token)});
    }

    /// Pauses (EV_DISABLE) or resumes (EV_ENABLE) a listener.
    pub fn armListener(p: *Poller, fd: sys.fd_t, token: u32, edge: bool, on: bool) Error!void {
        _ = edge;
        const flags: u16 = if (on) c.EV.ENABLE else c.EV.DISABLE;
        try p.change(&.{kev(@intCast(fd), c.EVFILT.READ, flags, 0, token)});
    }

    /// Waits up to `timeout_ms` (0: do not wait) and normalizes the events into `out`.
    pub fn wait(p: *Poller, out: []Event, timeout_ms: i32) Error!usize {
        const max: usize = @min(out.len, p.raw.len);
        var ts: c.timespec = .{
            .sec = @intCast(@divTrunc(timeout_ms, 1000)),
            .nsec = @intCast(@mod(timeout_ms, 1000) * std.time.ns_per_ms),
        };
        const tsp: ?*const c.timespec = if (timeout_ms < 0) null else &ts;
        var none: [0]c.Kevent = .{};
        const n = check(c.kevent(p.kq, &none, 0, &p.raw, @intCast(max), tsp)) catch |err| switch (err) {
            error.Interrupted => return 0,
            else => return err,
        };
        var count: usize = 0;
        for (p.raw[0..n]) |ev| {
            const token: u32 = @truncate(ev.udata);
            if (token == waker_token) continue;
            out[count] = .{
                .token = token,
                .readable = ev.filter == c.EVFILT.READ,
                .writable = ev.filter == c.EVFILT.WRITE,
                .read_closed = ev.filter == c.EVFILT.READ and ev.flags & ev_eof != 0,
                .write_closed = ev.filter == c.EVFILT.WRITE and ev.flags & ev_eof != 0,
                .err = ev.flags & c.EV.ERROR != 0,
            };
            count += 1;
        }
        return count;
    }

    /// Wakes a thread blocked in `park`; safe from any thread.
    pub fn wake(p: *const Poller) void {
        p.change(&.{kev(0, c.EVFILT.USER, 0, c.NOTE.TRIGGER, waker_token)}) catch {};
    }

    /// The descriptor a parked thread polls: a kqueue is readable while it has events.
    pub fn parkFd(p: *const Poller) sys.fd_t {
        return p.kq;
    }
};
