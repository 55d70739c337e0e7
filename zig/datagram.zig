//! UDP sockets: one datagram per call each way, readiness kept in the socket as for
//! streams. They stay in the epoll set on every backend (the ring receives only streams).

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const address = @import("address.zig");
const Error = @import("errors.zig").Error;
const Event = @import("backends/poller.zig").Event;
const loop_mod = @import("loop.zig");
const Loop = loop_mod.Loop;
const Opt = loop_mod.Opt;
const Flag = loop_mod.Flag;

pub const Datagram = struct {
    fd: sys.fd_t,
    readable: bool = true,
    writable: bool = true,
    want_read: bool = false,
    want_write: bool = false,
};

/// A UDP socket bound to an IP literal and port (0: any free port); `Opt.reuse_port`
/// is the only option.
pub fn listen(loop: *Loop, host: []const u8, port: u32, opts: u32) Error!u32 {
    if (opts & ~Opt.reuse_port != 0) return error.InvalidArgument;
    const addr = try address.parse(host, port);
    const fd = try sys.datagramSocket(address.family(&addr));
    errdefer sys.close(fd);
    const posix = std.posix;
    if (opts & Opt.reuse_port != 0) try sys.setInt(fd, posix.SOL.SOCKET, posix.SO.REUSEPORT, 1);
    try sys.bind(fd, &addr.any, addr.getOsSockLen());
    const h = try loop.sockets.insert(.{ .datagram = .{ .fd = fd } });
    errdefer loop.sockets.remove(h);
    try loop.poller.addStream(fd, h);
    return h;
}

/// Takes one datagram into `buf` and returns its length (at most `buf.len`); writes
/// the sender's address into `from` (ABI layout), with `from[1]` = 1 when the datagram
/// was longer than `buf` (the kernel dropped the rest). `WouldBlock` when none is
/// waiting: a READ event follows when one arrives.
pub fn recvFrom(loop: *Loop, h: u32, buf: []u8, from: *[address.abi_len]u8) Error!usize {
    const d = try loop.get(h, .datagram);
    if (!d.readable) {
        d.want_read = true;
        return error.WouldBlock;
    }
    var storage: std.posix.sockaddr.storage = undefined;
    const got = sys.recvFrom(d.fd, buf, &storage) catch |err| {
        if (err == error.WouldBlock) {
            d.readable = false;
            d.want_read = true;
        }
        return err;
    };
    try address.write(&storage, from);
    from[1] = @intFromBool(got.truncated);
    return got.len;
}

/// Sends `data` as one datagram to an IP literal and port. `WouldBlock` when the
/// kernel's send buffer is full: a WRITE event follows when it has room.
pub fn sendTo(loop: *Loop, h: u32, data: []const u8, host: []const u8, port: u32) Error!usize {
    const d = try loop.get(h, .datagram);
    if (data.len > limits.max_datagram_bytes or port == 0) return error.InvalidArgument;
    const addr = try address.parse(host, port);
    if (!d.writable) {
        d.want_write = true;
        return error.WouldBlock;
    }
    return sys.sendTo(d.fd, data, &addr.any, addr.getOsSockLen()) catch |err| {
        if (err == error.WouldBlock) {
            d.writable = false;
            d.want_write = true;
        }
        return err;
    };
}

/// A readiness event on a datagram socket: folded into its state, and the events it is owed.
pub fn onReady(d: *Datagram, ev: Event) u32 {
    // An error pending (ICMP on a connected socket) is taken by the next receive.
    if (ev.readable or ev.err) d.readable = true;
    if (ev.writable or ev.err) d.writable = true;
    var flags: u32 = 0;
    if (d.want_read and d.readable) {
        d.want_read = false;
        flags |= Flag.read;
    }
    if (d.want_write and d.writable) {
        d.want_write = false;
        flags |= Flag.write;
    }
    return flags;
}
