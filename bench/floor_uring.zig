//! floor-uring — the io_uring floor: the simplest correct single-threaded TCP echo
//! server on io_uring, beside the epoll floor (bench/floor.zig). It shows how far below
//! the epoll floor a completion-based loop goes on this kernel, which is what an
//! io_uring backend in zev could reach at best.
//!
//! One system call per turn carries every connection's receives and sends: a multishot
//! accept, a multishot receive per connection into a ring of provided buffers, and the
//! echo sent straight from the buffer the kernel filled (returned to the ring once sent).
//! Everything is bounded: buffers in the ring, buffers queued per connection (past it
//! the connection's receive is cancelled until its queue drains), completions per turn.
//!
//! Usage: floor-uring [--host 127.0.0.1] [--port 0]
//! Prints `listening on HOST:PORT` once ready; exits 0 on SIGINT/SIGTERM; exits 1 with
//! the reason when the kernel lacks what it needs (multishot accept and receive, buffer
//! rings: Linux 6.0) or forbids io_uring.

const std = @import("std");
const linux = std.os.linux;
const io = @import("linux_io.zig");
const IoUring = linux.IoUring;

/// Provided buffers: their count (a power of two) and size.
const buffer_count: u16 = 4096;
const buffer_size: u32 = 4096;
const group_id: u16 = 0;
/// Buffers one connection may hold (received, not yet echoed) before its receive stops.
const max_queued_per_conn: u16 = 16;
/// Completions taken per turn.
const cqes_per_turn = 512;
const sq_entries: u16 = 4096;

const Op = enum(u8) { accept, recv, send, cancel, signal };

fn userData(op: Op, fd: i32) u64 {
    return (@as(u64, @intFromEnum(op)) << 32) | @as(u32, @bitCast(fd));
}

const no_buffer: u16 = std.math.maxInt(u16);

const Conn = struct {
    open: bool = false,
    recv_armed: bool = false,
    /// A cancel of the receive is in flight.
    cancelling: bool = false,
    send_inflight: bool = false,
    /// The peer closed, the connection failed, or we are closing it.
    ending: bool = false,
    /// Received buffers not yet fully sent back, oldest first (linked through `next`).
    head: u16 = no_buffer,
    tail: u16 = no_buffer,
    queued: u16 = 0,
    /// Bytes of the head buffer already sent.
    sent: u32 = 0,
    /// On the list of receives waiting for buffers (ENOBUFS).
    starving: bool = false,
};

const Server = struct {
    ring: IoUring,
    br: *align(std.heap.page_size_min) linux.io_uring_buf_ring,
    buffers: []u8,
    /// Per buffer: bytes received into it, and the next buffer of its connection's queue.
    len: []u32,
    next: []u16,
    conns: []Conn,
    /// Connections whose receive stopped for want of buffers.
    starving: std.ArrayListUnmanaged(i32),
    lfd: i32,
    sfd: i32,

    fn sqe(s: *Server) *linux.io_uring_sqe {
        return s.ring.get_sqe() catch {
            // The submission queue is full: hand it to the kernel and take a fresh entry.
            _ = s.ring.submit() catch |err| fatal("io_uring submit: {t}", .{err});
            return s.ring.get_sqe() catch unreachable;
        };
    }

    fn buffer(s: *Server, bid: u16) []u8 {
        const at = @as(usize, bid) * buffer_size;
        return s.buffers[at .. at + buffer_size];
    }

    fn giveBack(s: *Server, bid: u16) void {
        IoUring.buf_ring_add(s.br, s.buffer(bid), bid, IoUring.buf_ring_mask(buffer_count), 0);
        IoUring.buf_ring_advance(s.br, 1);
    }

    fn armAccept(s: *Server) void {
        const e = s.sqe();
        e.prep_multishot_accept(s.lfd, null, null, linux.SOCK.CLOEXEC);
        e.user_data = userData(.accept, s.lfd);
    }

    /// A poll, not a read: a read of a signalfd may run on an io_uring worker thread,
    /// which would look for the signal among its own.
    fn armSignal(s: *Server) void {
        const e = s.sqe();
        e.prep_poll_add(s.sfd, linux.POLL.IN);
        e.user_data = userData(.signal, s.sfd);
    }

    fn armRecv(s: *Server, fd: i32) void {
        const c = &s.conns[@intCast(fd)];
        const e = s.sqe();
        e.prep_rw(.RECV, fd, 0, 0, 0);
        e.flags |= linux.IOSQE_BUFFER_SELECT;
        e.buf_index = group_id;
        e.ioprio |= linux.IORING_RECV_MULTISHOT;
        e.user_data = userData(.recv, fd);
        c.recv_armed = true;
    }

    fn sendHead(s: *Server, fd: i32) void {
        const c = &s.conns[@intCast(fd)];
        const bid = c.head;
        const e = s.sqe();
        e.prep_send(fd, s.buffer(bid)[c.sent..s.len[bid]], linux.MSG.NOSIGNAL);
        e.user_data = userData(.send, fd);
        c.send_inflight = true;
    }

    fn cancelRecv(s: *Server, fd: i32) void {
        const c = &s.conns[@intCast(fd)];
        if (!c.recv_armed or c.cancelling) return;
        const e = s.sqe();
        e.prep_cancel(userData(.recv, fd), 0);
        e.user_data = userData(.cancel, fd);
        c.cancelling = true;
    }

    /// Receives again if the connection may: open, not ending, room in its queue.
    fn maybeRearm(s: *Server, fd: i32) void {
        const c = &s.conns[@intCast(fd)];
        if (c.recv_armed or c.ending or c.starving or c.queued >= max_queued_per_conn) return;
        s.armRecv(fd);
    }

    /// Ends a connection: buffers back to the ring, and the descriptor closed once no
    /// operation on it is in flight (a completion for a reused descriptor would mislead).
    fn end(s: *Server, fd: i32) void {
        const c = &s.conns[@intCast(fd)];
        c.ending = true;
        if (!c.send_inflight) {
            while (c.head != no_buffer) s.pop(c);
        }
        s.cancelRecv(fd);
        s.maybeClose(fd);
    }

    fn maybeClose(s: *Server, fd: i32) void {
        const c = &s.conns[@intCast(fd)];
        if (!c.ending or c.recv_armed or c.send_inflight or c.head != no_buffer or c.starving) return;
        c.* = .{};
        _ = linux.close(fd);
    }

    fn pop(s: *Server, c: *Conn) void {
        const bid = c.head;
        c.head = s.next[bid];
        if (c.head == no_buffer) c.tail = no_buffer;
        c.queued -= 1;
        c.sent = 0;
        s.giveBack(bid);
    }

    fn onAccept(s: *Server, cqe: linux.io_uring_cqe) void {
        if (cqe.flags & linux.IORING_CQE_F_MORE == 0) s.armAccept();
        if (cqe.res < 0) return; // ECONNABORTED, EMFILE...: the next connection may do
        const fd: i32 = cqe.res;
        if (@as(usize, @intCast(fd)) >= s.conns.len) {
            _ = linux.close(fd);
            return;
        }
        io.setInt(fd, linux.IPPROTO.TCP, linux.TCP.NODELAY, 1);
        s.conns[@intCast(fd)] = .{ .open = true };
        s.armRecv(fd);
    }

    fn onRecv(s: *Server, fd: i32, cqe: linux.io_uring_cqe) void {
        const c = &s.conns[@intCast(fd)];
        const more = cqe.flags & linux.IORING_CQE_F_MORE != 0;
        if (!more) {
            c.recv_armed = false;
            c.cancelling = false;
        }
        if (cqe.res > 0) {
            const bid = cqe.buffer_id() catch unreachable;
            s.len[bid] = @intCast(cqe.res);
            s.next[bid] = no_buffer;
            if (c.tail == no_buffer) c.head = bid else s.next[c.tail] = bid;
            c.tail = bid;
            c.queued += 1;
            if (c.ending) {
                if (!c.send_inflight) s.pop(c);
            } else if (!c.send_inflight) {
                s.sendHead(fd);
            }
            if (c.queued >= max_queued_per_conn) s.cancelRecv(fd);
        } else if (cqe.res == -@as(i32, @intFromEnum(linux.E.NOBUFS))) {
            if (!c.starving) {
                c.starving = true;
                s.starving.appendAssumeCapacity(fd);
            }
        } else if (cqe.res == -@as(i32, @intFromEnum(linux.E.CANCELED))) {
            // Paused for a full queue: receives again once it drains.
        } else {
            // 0: the peer closed; below: the connection failed.
            c.ending = true;
        }
        if (!more) {
            if (c.ending) s.end(fd) else s.maybeRearm(fd);
        }
    }

    fn onSend(s: *Server, fd: i32, cqe: linux.io_uring_cqe) void {
        const c = &s.conns[@intCast(fd)];
        c.send_inflight = false;
        if (cqe.res < 0) return s.end(fd);
        c.sent += @intCast(cqe.res);
        if (c.sent == s.len[c.head]) s.pop(c);
        if (c.ending) return s.end(fd);
        if (c.head != no_buffer) s.sendHead(fd);
        s.maybeRearm(fd);
    }

    /// Buffers came back: receives that stopped for want of them start again.
    fn feedStarving(s: *Server) void {
        const waiting = s.starving.items;
        s.starving.clearRetainingCapacity();
        for (waiting) |fd| {
            const c = &s.conns[@intCast(fd)];
            c.starving = false;
            if (c.ending) s.maybeClose(fd) else s.maybeRearm(fd);
        }
    }

    fn run(s: *Server) noreturn {
        var cqes: [cqes_per_turn]linux.io_uring_cqe = undefined;
        while (true) {
            _ = s.ring.submit_and_wait(1) catch |err| switch (err) {
                error.SignalInterrupt => continue,
                else => fatal("io_uring_enter: {t}", .{err}),
            };
            const n = s.ring.copy_cqes(&cqes, 0) catch |err| fatal("io_uring completions: {t}", .{err});
            for (cqes[0..n]) |cqe| {
                const fd: i32 = @bitCast(@as(u32, @truncate(cqe.user_data)));
                switch (@as(Op, @enumFromInt(cqe.user_data >> 32))) {
                    .accept => s.onAccept(cqe),
                    .recv => s.onRecv(fd, cqe),
                    .send => s.onSend(fd, cqe),
                    .cancel => {},
                    .signal => std.process.exit(0),
                }
            }
            if (s.starving.items.len > 0) s.feedStarving();
        }
    }
};

const start = @import("floor_start.zig").Start("floor-uring");
const fatal = start.fatal;

/// The ring, with the flags that spare a single-threaded server the kernel's
/// interruptions (completions are run when it asks for them: Linux 6.1), or without.
fn openRing() IoUring {
    const lean = linux.IORING_SETUP_SINGLE_ISSUER | linux.IORING_SETUP_DEFER_TASKRUN;
    for ([_]u32{ lean, linux.IORING_SETUP_COOP_TASKRUN, 0 }) |flags| {
        var p = std.mem.zeroInit(linux.io_uring_params, .{ .flags = flags | linux.IORING_SETUP_CQSIZE, .cq_entries = 4 * sq_entries });
        return IoUring.init_params(sq_entries, &p) catch |err| switch (err) {
            error.ArgumentsInvalid => continue,
            else => fatal("io_uring_setup: {t} (io_uring missing or forbidden here)", .{err}),
        };
    }
    fatal("io_uring_setup: the kernel refuses every set of flags", .{});
}

pub fn main() !void {
    const addr = start.address();
    const gpa = std.heap.page_allocator;
    const max_fds = start.maxFds();
    const sfd = start.termSignals();
    const lfd = start.listen(addr, 0);

    const ring = openRing();
    const br = IoUring.setup_buf_ring(ring.fd, buffer_count, group_id, .{ .inc = false }) catch |err|
        fatal("provided buffer ring: {t} (needs Linux 5.19)", .{err});
    IoUring.buf_ring_init(br);

    var s = Server{
        .ring = ring,
        .br = br,
        .buffers = try gpa.alloc(u8, @as(usize, buffer_count) * buffer_size),
        .len = try gpa.alloc(u32, buffer_count),
        .next = try gpa.alloc(u16, buffer_count),
        .conns = try gpa.alloc(Conn, max_fds),
        .starving = try .initCapacity(gpa, max_fds),
        .lfd = lfd,
        .sfd = sfd,
    };
    @memset(s.conns, .{});
    for (0..buffer_count) |i| {
        const bid: u16 = @intCast(i);
        IoUring.buf_ring_add(br, s.buffer(bid), bid, IoUring.buf_ring_mask(buffer_count), bid);
    }
    IoUring.buf_ring_advance(br, buffer_count);
    s.armAccept();
    s.armSignal();

    start.announce(lfd);

    s.run();
}
