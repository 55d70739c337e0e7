//! floor — the "C floor": the simplest correct single-threaded epoll TCP echo
//! server, written the way one would in C. It is the baseline zev's numbers are
//! compared against, so it does as little as a correct server can: one shared
//! read buffer, a connection table indexed by fd, and no allocation per event
//! (a connection gets a backlog buffer only the first time a write blocks).
//!
//! Usage: floor [--host 127.0.0.1] [--port 0]
//! Prints `listening on HOST:PORT` once ready; exits 0 on SIGINT/SIGTERM.
//!
//! Build: zig build-exe -O ReleaseFast -target x86_64-linux-musl bench/floor.zig -femit-bin=OUT

const std = @import("std");
const linux = std.os.linux;
const io = @import("linux_io.zig");

const buf_size = 64 * 1024;

const Conn = struct {
    /// Echo bytes the kernel would not take yet. While non-empty we stop
    /// reading, so the backlog never exceeds one read (buf_size).
    pending: ?[]u8 = null,
    start: usize = 0,
    end: usize = 0,

    fn hasPending(c: *const Conn) bool {
        return c.end > c.start;
    }
};

const Server = struct {
    epfd: i32,
    lfd: i32,
    sfd: i32,
    /// Indexed by fd: fds are dense and below RLIMIT_NOFILE, so no lookup.
    conns: []Conn,
    rbuf: []u8,
    gpa: std.mem.Allocator,

    fn acceptAll(s: *Server) void {
        while (true) {
            const rc = linux.accept4(s.lfd, null, null, linux.SOCK.NONBLOCK | linux.SOCK.CLOEXEC);
            switch (linux.E.init(rc)) {
                .SUCCESS => {},
                .INTR, .CONNABORTED => continue,
                // AGAIN: drained. MFILE/NFILE/NOBUFS/NOMEM: out of resources;
                // the level-triggered listener retries on the next wait.
                else => return,
            }
            const fd: i32 = @intCast(rc);
            if (@as(usize, @intCast(fd)) >= s.conns.len) {
                _ = linux.close(fd);
                continue;
            }
            // Small echoes must not wait on Nagle + delayed ACK.
            io.setInt(fd, linux.IPPROTO.TCP, linux.TCP.NODELAY, 1);
            var ev = linux.epoll_event{
                .events = linux.EPOLL.IN | linux.EPOLL.OUT | linux.EPOLL.RDHUP | linux.EPOLL.ET,
                .data = .{ .fd = fd },
            };
            if (linux.E.init(linux.epoll_ctl(s.epfd, linux.EPOLL.CTL_ADD, fd, &ev)) != .SUCCESS) {
                _ = linux.close(fd);
                continue;
            }
            s.conns[@intCast(fd)] = .{};
        }
    }

    fn closeConn(s: *Server, fd: i32) void {
        const c = &s.conns[@intCast(fd)];
        if (c.pending) |p| s.gpa.free(p);
        c.* = .{};
        // close() also removes the fd from the epoll set (it is never dup'ed).
        _ = linux.close(fd);
    }

    fn onConn(s: *Server, fd: i32, events: u32) void {
        if (events & linux.EPOLL.ERR != 0) return s.closeConn(fd);
        const c = &s.conns[@intCast(fd)];
        if (c.hasPending()) {
            // Only writability (or HUP, which makes the write fail) can help.
            if (events & (linux.EPOLL.OUT | linux.EPOLL.HUP) == 0) return;
            switch (sendAll(fd, c.pending.?[c.start..c.end])) {
                .failed => return s.closeConn(fd),
                .sent => |n| {
                    c.start += n;
                    if (c.hasPending()) return;
                    c.start = 0;
                    c.end = 0;
                },
            }
            // Backlog drained: read even without EPOLLIN, because input that
            // arrived while reading was paused will not raise another edge.
        } else if (events & (linux.EPOLL.IN | linux.EPOLL.RDHUP | linux.EPOLL.HUP) == 0) {
            return; // writability alone, nothing to flush
        }
        // Edge-triggered: read until EAGAIN.
        while (true) {
            const n = switch (io.recvSome(fd, s.rbuf)) {
                .again => return,
                .eof, .failed => return s.closeConn(fd),
                .n => |n| n,
            };
            switch (sendAll(fd, s.rbuf[0..n])) {
                .failed => return s.closeConn(fd),
                .sent => |sent| if (sent < n) {
                    if (c.pending == null) {
                        c.pending = s.gpa.alloc(u8, buf_size) catch return s.closeConn(fd);
                    }
                    @memcpy(c.pending.?[0 .. n - sent], s.rbuf[sent..n]);
                    c.start = 0;
                    c.end = n - sent;
                    return; // resume on EPOLLOUT
                },
            }
        }
    }
};

const SendResult = union(enum) { sent: usize, failed };

/// Writes as much as the socket accepts.
fn sendAll(fd: i32, bytes: []const u8) SendResult {
    var off: usize = 0;
    while (off < bytes.len) {
        switch (io.sendSome(fd, bytes[off..])) {
            .n => |n| off += n,
            .again => break,
            .eof, .failed => return .failed,
        }
    }
    return .{ .sent = off };
}

const start = @import("floor_start.zig").Start("floor");
const fatal = start.fatal;

pub fn main() !void {
    const addr = start.address();
    const gpa = std.heap.page_allocator;
    const max_fds = start.maxFds();
    const sfd = start.termSignals();
    const lfd = start.listen(addr, linux.SOCK.NONBLOCK);

    const eprc = linux.epoll_create1(linux.EPOLL.CLOEXEC);
    if (linux.E.init(eprc) != .SUCCESS) fatal("epoll_create1: {t}", .{linux.E.init(eprc)});
    const epfd: i32 = @intCast(eprc);
    // Listener is level-triggered: if accept stops early (EMFILE) we get
    // woken again instead of losing the pending connections.
    var lev = linux.epoll_event{ .events = linux.EPOLL.IN, .data = .{ .fd = lfd } };
    var sev = linux.epoll_event{ .events = linux.EPOLL.IN, .data = .{ .fd = sfd } };
    if (linux.E.init(linux.epoll_ctl(epfd, linux.EPOLL.CTL_ADD, lfd, &lev)) != .SUCCESS or
        linux.E.init(linux.epoll_ctl(epfd, linux.EPOLL.CTL_ADD, sfd, &sev)) != .SUCCESS)
        fatal("epoll_ctl failed", .{});

    var s = Server{
        .epfd = epfd,
        .lfd = lfd,
        .sfd = sfd,
        .conns = try gpa.alloc(Conn, max_fds),
        .rbuf = try gpa.alloc(u8, buf_size),
        .gpa = gpa,
    };
    @memset(s.conns, .{});
    start.announce(lfd);

    var events: [256]linux.epoll_event = undefined;
    while (true) {
        const n = linux.epoll_wait(epfd, &events, events.len, -1);
        switch (linux.E.init(n)) {
            .SUCCESS => {},
            .INTR => continue,
            else => |e| fatal("epoll_wait: {t}", .{e}),
        }
        for (events[0..n]) |ev| {
            const fd = ev.data.fd;
            if (fd == lfd) {
                s.acceptAll();
            } else if (fd == sfd) {
                std.process.exit(0);
            } else {
                s.onConn(fd, ev.events);
            }
        }
    }
}
