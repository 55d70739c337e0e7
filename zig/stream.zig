//! Connected streams (TCP and Unix): edge-triggered readiness kept in the stream, so an
//! edge that arrives while nobody reads is not lost; drained reads; sends that queue what
//! the kernel does not take, up to the stream's queue limit; half-close once the queue is
//! sent; and the connection's end told as it was (a reset is never a clean end).
//!
//! On the io_uring backend a stream receives through the ring instead of read(2): its
//! receive state is `ring` (backends/ring_streams.zig), and `read` hands over to it.

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const address = @import("address.zig");
const errors = @import("errors.zig");
const Error = errors.Error;
const WriteQueue = @import("write_queue.zig").WriteQueue;
const Event = @import("backends/poller.zig").Event;
const loop_mod = @import("loop.zig");
const Loop = loop_mod.Loop;
const Opt = loop_mod.Opt;
const Flag = loop_mod.Flag;
const ring_streams = @import("backends/ring_streams.zig");
const tls = @import("tls/session.zig");

pub const Stream = struct {
    fd: sys.fd_t,
    connecting: bool = false,
    readable: bool = false,
    writable: bool = false,
    /// The peer closed its side, or the socket has an error pending: reads no longer block.
    hup: bool = false,
    want_read: bool = false,
    want_write: bool = false,
    /// closeWrite was asked while bytes were queued: shut down once they are sent.
    shut_pending: bool = false,
    shut_done: bool = false,
    /// The peer reset the connection (a read or a send said so): the end of stream a read
    /// then finds is that reset, not the peer's orderly close. (The kernel tells a reset
    /// once, to whichever call comes first.)
    reset: bool = false,
    /// The error that ended the write side (a failed send), returned by later writes.
    failed: ?Error = null,
    queue_limit: u32 = limits.default_write_queue_bytes,
    queue: WriteQueue = .{},
    /// The peer's address (ABI layout), kept from accept or connect: after a reset the
    /// kernel no longer tells it, and error messages still name it.
    peer: [address.abi_len]u8 = @splat(0),
    /// The io_uring backend's receive state (empty elsewhere).
    ring: ring_streams.RingStream = .{},
    /// A TLS stream's engine (tls/session.zig), between the socket and the caller.
    tls: ?*tls.Session = null,

    /// A read found nothing (EAGAIN): not readable until the next edge, which the
    /// caller wants reported as a READ event.
    pub fn drained(s: *Stream) void {
        s.readable = false;
        s.want_read = true;
    }

    /// What a failed read or send reports, noting what it says of the connection (see
    /// `reset`): once reset, a send the kernel fails with EPIPE is that reset too.
    pub fn failure(s: *Stream, err: Error) Error {
        if (err == error.ConnectionReset) s.reset = true;
        return if (s.reset and err == error.BrokenPipe) error.ConnectionReset else err;
    }

    /// What a read that finds the end of stream returns: 0, or the reset it was.
    pub fn endOfStream(s: *const Stream) Error!usize {
        return if (s.reset) error.ConnectionReset else 0;
    }
};

/// Takes an accepted connection into the table and watches it. On failure the
/// connection is closed (the caller counts it and pauses the listener).
pub fn adopt(loop: *Loop, fd: sys.fd_t, peer: *const std.posix.sockaddr.storage) Error!u32 {
    errdefer sys.close(fd);
    const h = try loop.sockets.insert(.{ .stream = .{ .fd = fd, .readable = true, .writable = true } });
    errdefer loop.sockets.remove(h);
    const s = &loop.sockets.get(h).?.stream;
    address.write(peer, &s.peer) catch {};
    try watch(loop, s, h);
    return h;
}

/// Starts a nonblocking connect. The handle is usable at once; `status` tells whether
/// the connect has finished (0), is under way (`WouldBlock`, and a WRITE event will
/// follow) or failed.
pub fn connect(loop: *Loop, host: []const u8, port: u32, opts: u32) Error!u32 {
    if (opts & ~(Opt.delay | Opt.keep_alive) != 0) return error.InvalidArgument;
    const addr = try address.parse(host, port);
    if (port == 0) return error.InvalidArgument;
    const fd = try sys.socket(address.family(&addr));
    errdefer sys.close(fd);
    try setOptions(fd, opts);
    var connecting = false;
    sys.connect(fd, &addr.any, addr.getOsSockLen()) catch |err| switch (err) {
        error.InProgress, error.WouldBlock => connecting = true,
        else => return err,
    };
    const h = try loop.sockets.insert(.{ .stream = .{ .fd = fd, .connecting = connecting, .writable = !connecting } });
    errdefer loop.sockets.remove(h);
    const s = &loop.sockets.get(h).?.stream;
    var storage: std.posix.sockaddr.storage = undefined;
    const len = addr.getOsSockLen();
    @memcpy(std.mem.asBytes(&storage)[0..len], @as([*]const u8, @ptrCast(&addr.any))[0..len]);
    try address.write(&storage, &s.peer);
    try watch(loop, s, h);
    return h;
}

/// Starts connecting to the Unix socket at `path` (no options apply). `BacklogFull`
/// when its listener's backlog is full: Linux then starts nothing to wait for.
pub fn connectUnix(loop: *Loop, path: []const u8, opts: u32) Error!u32 {
    if (opts != 0) return error.InvalidArgument;
    const addr = try address.parseUnix(path);
    const fd = try sys.socket(std.posix.AF.UNIX);
    errdefer sys.close(fd);
    var connecting = false;
    sys.connect(fd, &addr.any, addr.getOsSockLen()) catch |err| switch (err) {
        error.WouldBlock => return error.BacklogFull,
        error.InProgress => connecting = true,
        else => return err,
    };
    const h = try loop.sockets.insert(.{ .stream = .{ .fd = fd, .connecting = connecting, .writable = !connecting } });
    errdefer loop.sockets.remove(h);
    const s = &loop.sockets.get(h).?.stream;
    s.peer[0] = 1;
    try watch(loop, s, h);
    return h;
}

/// 0 when connected and healthy, `WouldBlock` while connecting, or the error that ended it.
pub fn status(s: *Stream) Error!void {
    if (s.connecting) {
        s.want_write = true;
        return error.WouldBlock;
    }
    if (s.failed) |err| return s.failure(err);
}

/// Reads into `buf`. Returns the byte count, 0 at end of stream, or `WouldBlock`
/// (and then a READ event follows when the stream is readable again).
pub fn read(loop: *Loop, h: u32, buf: []u8) Error!usize {
    const s = try loop.get(h, .stream);
    if (buf.len == 0) return error.InvalidArgument;
    if (s.tls != null) return tls.read(loop, s, buf);
    return readRaw(loop, s, buf);
}

/// `read` from the socket itself: what a TLS stream's engine reads its ciphertext with.
pub fn readRaw(loop: *Loop, s: *Stream, buf: []u8) Error!usize {
    if (loop.ringStreams()) |r| return r.read(loop, s, buf);
    if (s.connecting or (!s.readable and !s.hup)) {
        s.want_read = true;
        return error.WouldBlock;
    }
    const n = sys.read(s.fd, buf) catch |err| {
        if (err == error.WouldBlock) {
            s.drained();
            return err;
        }
        return s.failure(err);
    };
    if (n == 0) return s.endOfStream();
    // A short read took everything the socket held at that instant; data arriving
    // later raises a new edge. This saves the EAGAIN read per message that a strict
    // drain would cost. After a hangup, keep reading: the end of stream is pending.
    if (n < buf.len and !s.hup) s.readable = false;
    return n;
}

/// Sends `data`, queueing what the kernel does not take, up to the queue limit.
/// Returns the bytes taken (sent or queued). When that is less than `data.len`, the
/// caller waits for a WRITE event (the queue drained) and offers the rest.
pub fn write(loop: *Loop, h: u32, data: []const u8) Error!usize {
    const s = try loop.get(h, .stream);
    if (s.shut_pending or s.shut_done) return error.Closed;
    if (s.failed) |err| return s.failure(err);
    if (s.connecting) return error.NotConnected;
    if (s.tls != null) return tls.write(loop, s, data);
    return writeRaw(loop, s, data, s.queue_limit);
}

/// `write` to the socket itself, queueing up to `limit` bytes: what a TLS stream's
/// engine sends its ciphertext with (with no limit of its own: it encrypts only while the
/// queue is under the stream's).
pub fn writeRaw(loop: *Loop, s: *Stream, data: []const u8, limit: u32) Error!usize {
    if (s.failed) |err| return s.failure(err);
    var done: usize = 0;
    if (s.queue.isEmpty() and s.writable) {
        while (done < data.len) {
            const n = sys.send(s.fd, data[done..]) catch |err| switch (err) {
                error.WouldBlock => {
                    s.writable = false;
                    break;
                },
                else => {
                    s.failed = s.failure(err);
                    return s.failed.?;
                },
            };
            done += n;
            // A short send means the send buffer is full: do not ask again for EAGAIN.
            if (done < data.len) {
                s.writable = false;
                break;
            }
        }
    }
    if (done < data.len) {
        const took = try s.queue.push(loop.allocator, limit, data[done..]);
        loop.stats.queued_bytes += took;
        done += took;
    }
    if (done < data.len) s.want_write = true;
    if (!s.writable) watchWritableOrFail(loop, s);
    return done;
}

/// Bytes still queued. When there are any, a WRITE event follows once they are sent.
pub fn flush(loop: *Loop, h: u32) Error!u32 {
    const s = try loop.get(h, .stream);
    if (s.writable and !s.queue.isEmpty()) drainQueue(loop, s);
    if (s.failed) |err| return s.failure(err);
    const left = s.queue.len();
    if (left > 0) {
        s.want_write = true;
        if (!s.writable) try watchWritable(loop, s);
    }
    return left;
}

pub fn setQueueLimit(loop: *Loop, h: u32, bytes: u32) Error!void {
    const s = try loop.get(h, .stream);
    if (bytes == 0 or bytes > limits.max_write_queue_bytes) return error.InvalidArgument;
    s.queue_limit = bytes;
}

/// Shuts down the write side once everything queued has been sent.
pub fn shutdown(loop: *Loop, h: u32) Error!void {
    const s = try loop.get(h, .stream);
    if (s.shut_done or s.shut_pending) return;
    if (s.connecting) return error.NotConnected;
    // A TLS stream's end is its close_notify, then the FIN.
    if (s.tls != null) try tls.notify(s);
    if (s.queue.isEmpty()) {
        s.shut_done = true;
        try sys.shutdownWrite(s.fd);
    } else {
        s.shut_pending = true;
    }
}

/// Before a stream closes: out of the ring, its queue dropped (the caller that wanted it
/// sent waited for `flush` to reach 0), and a reset asked for if `reset`.
pub fn forget(loop: *Loop, s: *Stream, reset: bool) void {
    if (loop.ringStreams()) |r| r.forget(loop, s);
    tls.free(loop, s);
    loop.stats.queued_bytes -= s.queue.len();
    s.queue.deinit(loop.allocator);
    if (reset) sys.setLingerZero(s.fd) catch {};
}

/// Sends what the queue holds until it is empty or the kernel pushes back.
pub fn drainQueue(loop: *Loop, s: *Stream) void {
    while (!s.queue.isEmpty()) {
        const pending = s.queue.pending();
        const n = sys.send(s.fd, pending) catch |err| {
            if (err == error.WouldBlock) {
                s.writable = false;
                watchWritableOrFail(loop, s);
            } else {
                failQueue(loop, s, err); // undeliverable
            }
            return;
        };
        s.queue.consume(@intCast(n));
        loop.stats.queued_bytes -= n;
        if (n < pending.len) {
            s.writable = false;
            watchWritableOrFail(loop, s);
            return;
        }
    }
    if (s.shut_pending) {
        s.shut_pending = false;
        s.shut_done = true;
        sys.shutdownWrite(s.fd) catch |err| {
            s.failed = err;
        };
    }
}

/// Starts watching a new stream: in the epoll set, or in the ring.
fn watch(loop: *Loop, s: *Stream, h: u32) Error!void {
    if (loop.injected("test_fail_watch")) return error.NoMemory;
    if (loop.ringStreams()) |r| return r.watch(s, h);
    try loop.poller.addStream(s.fd, h);
}

/// A stream's send buffer is full: on io_uring, a one-shot poll says when it is not
/// (epoll reports it anyway).
fn watchWritable(loop: *Loop, s: *Stream) Error!void {
    if (loop.ringStreams()) |r| try r.watchWritable(loop, s);
}

/// `watchWritable` where bytes are already taken: if the ring takes no more requests,
/// nothing would ever tell when the queue can move, so the stream fails with the
/// error (its queue dropped, as for a send that fails) and the next poll tells its
/// writer with a WRITE event.
fn watchWritableOrFail(loop: *Loop, s: *Stream) void {
    watchWritable(loop, s) catch |err| {
        failQueue(loop, s, err);
        s.want_write = true;
        if (loop.ringStreams()) |r| r.markDirty(loop, s);
    };
}

/// The queue cannot be sent: drop it, and remember why for the writer.
fn failQueue(loop: *Loop, s: *Stream, err: Error) void {
    s.failed = s.failure(err);
    loop.stats.queued_bytes -= s.queue.len();
    s.queue.consume(s.queue.len());
}

/// A readiness event on a stream (the poll backend): folded into its state, and the
/// events it is owed.
pub fn onReady(loop: *Loop, s: *Stream, ev: Event) u32 {
    if (ev.readable) s.readable = true;
    if (ev.writable) s.writable = true;
    // Reads no longer block once the peer closed its side or an error is pending;
    // writes only once the connection is gone (or failed).
    if (ev.read_closed or ev.err) s.hup = true;
    if (ev.write_closed or ev.err) s.writable = true;
    if (s.connecting and (ev.writable or ev.err or ev.write_closed)) finishConnect(s);
    if (s.writable and !s.queue.isEmpty()) drainQueue(loop, s);
    return flags(s, s.readable or s.hup);
}

/// A connect under way has ended: the socket's pending error says how.
pub fn finishConnect(s: *Stream) void {
    s.connecting = false;
    const posix = std.posix;
    if (sys.getInt(s.fd, posix.SOL.SOCKET, posix.SO.ERROR)) |so_error| {
        if (so_error != 0) s.failed = errors.fromErrno(@enumFromInt(so_error));
    } else |err| s.failed = err;
}

/// The events a stream is owed, on either backend: READ if it wanted to read and
/// `can_read`, WRITE if it wanted to write and its queue drained (or it failed).
pub fn flags(s: *Stream, can_read: bool) u32 {
    var f: u32 = 0;
    if (s.want_read and can_read) {
        s.want_read = false;
        f |= Flag.read;
    }
    if (s.want_write and !s.connecting and (s.queue.isEmpty() or s.failed != null)) {
        s.want_write = false;
        f |= Flag.write;
    }
    return f;
}

/// TCP_NODELAY unless `Opt.delay`, SO_KEEPALIVE if `Opt.keep_alive`.
pub fn setOptions(fd: sys.fd_t, opts: u32) Error!void {
    const posix = std.posix;
    if (opts & Opt.delay == 0) try sys.setInt(fd, posix.IPPROTO.TCP, sys.tcp_nodelay, 1);
    if (opts & Opt.keep_alive != 0) try sys.setInt(fd, posix.SOL.SOCKET, posix.SO.KEEPALIVE, 1);
}
