//! The system calls the reactor makes, each returning a classified `Error`.
//!
//! On Linux they are raw system calls (`std.os.linux`), in the musl build, which links no
//! libc, and in the glibc build too: glibc wraps read and send as thread-cancellation
//! points (pthread_enable/disable_asynccancel around each), which a profile of a busy
//! echo server showed at 2% of its CPU, for a feature the reactor never uses. On macOS
//! and FreeBSD, where libc is the system call interface, they go through libc. Unlike
//! `std.posix` wrappers, nothing here treats an errno as unreachable: whatever the kernel
//! says becomes an error code for the caller, never a panic inside a JS runtime.

const std = @import("std");
const builtin = @import("builtin");
const posix = std.posix;
const errors = @import("errors.zig");
const Error = errors.Error;

pub const fd_t = posix.fd_t;
pub const is_linux = builtin.os.tag == .linux;
const is_darwin = builtin.os.tag.isDarwin();
const system = if (is_linux) std.os.linux else posix.system;

/// Turns a system call's return value into a count or a classified error.
pub fn check(rc: anytype) Error!usize {
    const e = if (is_linux) rawErrno(rc) else posix.errno(rc);
    if (e == .SUCCESS) return @intCast(rc);
    return errors.fromErrno(e);
}

/// A raw Linux system call returns -errno in its result, never through `errno`.
fn rawErrno(rc: usize) posix.E {
    const signed: isize = @bitCast(rc);
    return if (signed > -4096 and signed < 0) @enumFromInt(-signed) else .SUCCESS;
}

/// Like `check`, retrying while the call is interrupted by a signal.
fn retry(comptime f: anytype, args: anytype) Error!usize {
    while (true) {
        return check(@call(.auto, f, args)) catch |err| switch (err) {
            error.Interrupted => continue,
            else => err,
        };
    }
}

pub fn close(fd: fd_t) void {
    // Linux and the BSDs release the descriptor even when close reports EINTR;
    // retrying could close a descriptor another thread just opened.
    _ = system.close(fd);
}

/// A nonblocking, close-on-exec stream socket (TCP, or Unix with AF.UNIX).
pub fn socket(family: u32) Error!fd_t {
    return socketOf(family, posix.SOCK.STREAM);
}

/// A nonblocking, close-on-exec UDP socket.
pub fn datagramSocket(family: u32) Error!fd_t {
    return socketOf(family, posix.SOCK.DGRAM);
}

fn socketOf(family: u32, kind: u32) Error!fd_t {
    if (comptime is_darwin) {
        const fd: fd_t = @intCast(try check(system.socket(family, kind, 0)));
        errdefer close(fd);
        try setNonblockCloexec(fd);
        try setInt(fd, posix.SOL.SOCKET, posix.SO.NOSIGPIPE, 1);
        return fd;
    }
    const flags = kind | posix.SOCK.NONBLOCK | posix.SOCK.CLOEXEC;
    return @intCast(try check(system.socket(family, flags, 0)));
}

fn setNonblockCloexec(fd: fd_t) Error!void {
    const fl = try check(system.fcntl(fd, posix.F.GETFL, @as(usize, 0)));
    _ = try check(system.fcntl(fd, posix.F.SETFL, fl | @as(usize, 1 << @bitOffsetOf(posix.O, "NONBLOCK"))));
    _ = try check(system.fcntl(fd, posix.F.SETFD, @as(usize, posix.FD_CLOEXEC)));
}

/// TCP_NODELAY is 1 on Linux, macOS and the BSDs; Zig 0.15's std omits it for FreeBSD.
pub const tcp_nodelay: u32 = 1;

pub fn setInt(fd: fd_t, level: i32, name: u32, value: c_int) Error!void {
    _ = try check(system.setsockopt(fd, level, name, @ptrCast(&value), @sizeOf(c_int)));
}

pub fn getInt(fd: fd_t, level: i32, name: u32) Error!c_int {
    var value: c_int = 0;
    var len: posix.socklen_t = @sizeOf(c_int);
    _ = try check(system.getsockopt(fd, level, name, @ptrCast(&value), &len));
    return value;
}

/// Makes the next close send RST instead of FIN (an abortive close).
pub fn setLingerZero(fd: fd_t) Error!void {
    const linger = extern struct { onoff: c_int, seconds: c_int }{ .onoff = 1, .seconds = 0 };
    _ = try check(system.setsockopt(fd, posix.SOL.SOCKET, posix.SO.LINGER, @ptrCast(&linger), @sizeOf(@TypeOf(linger))));
}

pub fn bind(fd: fd_t, addr: *const posix.sockaddr, len: posix.socklen_t) Error!void {
    _ = try check(system.bind(fd, addr, len));
}

pub fn listen(fd: fd_t, backlog: u32) Error!void {
    _ = try check(system.listen(fd, @intCast(backlog)));
}

/// Accepts one pending connection as a nonblocking, close-on-exec socket; the peer's
/// address is written to `peer`.
pub fn accept(fd: fd_t, peer: *posix.sockaddr.storage) Error!fd_t {
    var len: posix.socklen_t = @sizeOf(posix.sockaddr.storage);
    const p: *posix.sockaddr = @ptrCast(peer);
    if (comptime is_darwin) {
        const conn: fd_t = @intCast(try retry(system.accept, .{ fd, p, &len }));
        errdefer close(conn);
        try setNonblockCloexec(conn);
        try setInt(conn, posix.SOL.SOCKET, posix.SO.NOSIGPIPE, 1);
        return conn;
    }
    const flags = posix.SOCK.NONBLOCK | posix.SOCK.CLOEXEC;
    return @intCast(try retry(system.accept4, .{ fd, p, &len, flags }));
}

pub fn connect(fd: fd_t, addr: *const posix.sockaddr, len: posix.socklen_t) Error!void {
    _ = try check(system.connect(fd, @ptrCast(addr), len));
}

pub fn read(fd: fd_t, buf: []u8) Error!usize {
    return retry(system.read, .{ fd, buf.ptr, buf.len });
}

/// Writes to a descriptor that is not a socket (the waker).
pub fn write(fd: fd_t, buf: []const u8) Error!usize {
    return retry(system.write, .{ fd, buf.ptr, buf.len });
}

/// Sends without raising SIGPIPE on a peer that has gone (the error is returned instead).
pub fn send(fd: fd_t, buf: []const u8) Error!usize {
    const flags: u32 = if (is_darwin) 0 else posix.MSG.NOSIGNAL;
    return retry(system.sendto, .{ fd, buf.ptr, buf.len, flags, null, 0 });
}

/// What identifies a file across renames: its device and inode.
pub const FileId = struct { dev: u64, ino: u64 };

/// The file at `path` if it is a socket (not following a symbolic link), else null.
pub fn socketFileAt(path: [*:0]const u8) Error!?FileId {
    const st = posix.fstatatZ(posix.AT.FDCWD, path, posix.AT.SYMLINK_NOFOLLOW) catch |err| return switch (err) {
        error.FileNotFound => error.NotFound,
        error.AccessDenied, error.PermissionDenied => error.PermissionDenied,
        error.SystemResources => error.NoMemory,
        else => error.Unexpected,
    };
    if (st.mode & posix.S.IFMT != posix.S.IFSOCK) return null;
    return .{ .dev = widen(st.dev), .ino = widen(st.ino) };
}

fn widen(x: anytype) u64 {
    return @truncate(@as(u128, @bitCast(@as(i128, x))));
}

pub fn unlink(path: [*:0]const u8) Error!void {
    posix.unlinkZ(path) catch |err| return switch (err) {
        error.FileNotFound => error.NotFound,
        error.AccessDenied, error.PermissionDenied => error.PermissionDenied,
        else => error.Unexpected,
    };
}

const Msghdr = if (is_linux) std.os.linux.msghdr else std.c.msghdr;

/// One datagram's length, and whether it was longer than the buffer (cut by the kernel).
pub const Received = struct { len: usize, truncated: bool };

/// Receives one datagram; the sender's address goes to `from`.
pub fn recvFrom(fd: fd_t, buf: []u8, from: *posix.sockaddr.storage) Error!Received {
    var iov = [1]posix.iovec{.{ .base = buf.ptr, .len = buf.len }};
    var msg = Msghdr{
        .name = @ptrCast(from),
        .namelen = @sizeOf(posix.sockaddr.storage),
        .iov = &iov,
        .iovlen = 1,
        .control = null,
        .controllen = 0,
        .flags = 0,
    };
    const n = try retry(system.recvmsg, .{ fd, &msg, 0 });
    const flags: u32 = @bitCast(msg.flags);
    return .{ .len = n, .truncated = flags & posix.MSG.TRUNC != 0 };
}

/// Sends one datagram to `addr`.
pub fn sendTo(fd: fd_t, buf: []const u8, addr: *const posix.sockaddr, len: posix.socklen_t) Error!usize {
    // An empty datagram: the kernel checks even a zero-length buffer's address, and a
    // runtime may pass any pointer for an empty array (Deno's fails with EFAULT).
    const empty: [1]u8 = .{0};
    const ptr = if (buf.len == 0) &empty else buf.ptr;
    return retry(system.sendto, .{ fd, ptr, buf.len, 0, addr, len });
}

pub fn shutdownWrite(fd: fd_t) Error!void {
    _ = try check(system.shutdown(fd, posix.SHUT.WR));
}

pub fn sockName(fd: fd_t, addr: *posix.sockaddr.storage, peer: bool) Error!void {
    var len: posix.socklen_t = @sizeOf(posix.sockaddr.storage);
    const p: *posix.sockaddr = @ptrCast(addr);
    _ = try check(if (peer) system.getpeername(fd, p, &len) else system.getsockname(fd, p, &len));
}

/// Blocks until `fd` is readable or `timeout_ms` passes (negative: no timeout).
/// Returns whether it became readable.
pub fn pollReadable(fd: fd_t, timeout_ms: i32) Error!bool {
    var pfd = [1]posix.pollfd{.{ .fd = fd, .events = posix.POLL.IN, .revents = 0 }};
    const n = check(system.poll(&pfd, 1, timeout_ms)) catch |err| switch (err) {
        error.Interrupted => return false,
        else => return err,
    };
    return n > 0;
}

/// Whether `fd` is an open descriptor (for tests that count them without /proc).
pub fn isOpen(fd: fd_t) bool {
    _ = check(system.fcntl(fd, posix.F.GETFD, @as(usize, 0))) catch return false;
    return true;
}

pub fn monotonicNs() i64 {
    const ts = posix.clock_gettime(.MONOTONIC) catch return 0;
    return @as(i64, ts.sec) * std.time.ns_per_s + ts.nsec;
}

/// Raises the soft descriptor limit toward `want` (at most the hard limit); returns it.
pub fn raiseFdLimit(want: u64) Error!u64 {
    var lim: posix.rlimit = undefined;
    _ = try check(system.getrlimit(.NOFILE, &lim));
    const target = @min(@as(u64, @intCast(want)), @as(u64, @intCast(lim.max)));
    if (target > lim.cur) {
        lim.cur = @intCast(target);
        _ = try check(system.setrlimit(.NOFILE, &lim));
    }
    return @intCast(lim.cur);
}
