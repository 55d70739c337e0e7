//! Errors of the reactor and their C ABI codes.
//!
//! Every ABI function returns an `i32`: zero or more is success, a negative value is one
//! of the codes below. The codes are zev's own, not errno values, so they mean the same
//! on Linux, macOS and FreeBSD, where errno numbers differ. abi_gen.zig writes them into
//! ffi/abi.ts (`ERRORS`), and src/core/errors.ts names each.

const std = @import("std");
const posix = std.posix;

pub const Error = error{
    WouldBlock,
    BadHandle,
    BadLoop,
    WrongKind,
    Closed,
    InvalidArgument,
    Limit,
    AddressInUse,
    AddressNotAvailable,
    ConnectionRefused,
    ConnectionReset,
    BrokenPipe,
    TimedOut,
    TooManyOpenFiles,
    PermissionDenied,
    Unreachable,
    /// The network failed a connection (EPROTO, ENOPROTOOPT, EHOSTDOWN, ENONET, EOPNOTSUPP).
    NetworkError,
    NotConnected,
    NoMemory,
    InProgress,
    Interrupted,
    /// The kernel lacks a feature or forbids it (io_uring under seccomp).
    Unsupported,
    /// No such file or directory (a Unix socket's path).
    NotFound,
    /// A Unix socket file is in the way and no process listens on it (left by one that
    /// died); `listen` replaces it only when asked (`Opt.replace_stale`).
    StaleSocket,
    /// A Unix listener's backlog is full (connect(2) says EAGAIN: nothing was started).
    BacklogFull,
    TlsFailed,
    TlsUnverified,
    TlsTruncated,
    Unexpected,
};

/// The ABI code of each error, in one table so that the mapping is total and reviewable.
pub fn code(err: Error) i32 {
    return switch (err) {
        error.WouldBlock => -1,
        error.BadHandle => -2,
        error.BadLoop => -3,
        error.WrongKind => -4,
        error.Closed => -5,
        error.InvalidArgument => -6,
        error.Limit => -7,
        error.AddressInUse => -8,
        error.AddressNotAvailable => -9,
        error.ConnectionRefused => -10,
        error.ConnectionReset => -11,
        error.BrokenPipe => -12,
        error.TimedOut => -13,
        error.TooManyOpenFiles => -14,
        error.PermissionDenied => -15,
        error.Unreachable => -16,
        error.NotConnected => -17,
        error.NoMemory => -18,
        error.InProgress => -19,
        error.Interrupted => -20,
        error.Unsupported => -21,
        error.NetworkError => -22,
        error.NotFound => -23,
        error.StaleSocket => -24,
        error.BacklogFull => -25,
        error.TlsFailed => -26,
        error.TlsUnverified => -27,
        error.TlsTruncated => -28,
        error.Unexpected => -99,
    };
}

/// The errors accept(2) says to treat like EAGAIN, beyond those mapped to Unreachable;
/// not every OS has every one (macOS has no ENONET).
fn isNetworkErrno(e: posix.E) bool {
    inline for (.{ "PROTO", "NOPROTOOPT", "HOSTDOWN", "NONET", "OPNOTSUPP" }) |name| {
        if (@hasField(posix.E, name) and e == @field(posix.E, name)) return true;
    }
    return false;
}

/// The last errno that had no mapping, for diagnostics (`zev_last_errno`).
pub var last_unexpected_errno = std.atomic.Value(i32).init(0);

/// Classifies an errno. Unknown values become `Unexpected` and are remembered.
pub fn fromErrno(e: posix.E) Error {
    if (isNetworkErrno(e)) return error.NetworkError;
    return switch (e) {
        .AGAIN => error.WouldBlock,
        .INTR => error.Interrupted,
        .INPROGRESS => error.InProgress,
        .BADF, .NOTSOCK => error.BadHandle,
        .INVAL, .AFNOSUPPORT, .PROTONOSUPPORT, .FAULT => error.InvalidArgument,
        .ADDRINUSE => error.AddressInUse,
        .ADDRNOTAVAIL => error.AddressNotAvailable,
        .CONNREFUSED => error.ConnectionRefused,
        .CONNRESET, .CONNABORTED => error.ConnectionReset,
        .PIPE => error.BrokenPipe,
        .TIMEDOUT => error.TimedOut,
        .MFILE, .NFILE => error.TooManyOpenFiles,
        .ACCES, .PERM => error.PermissionDenied,
        .NETUNREACH, .HOSTUNREACH, .NETDOWN => error.Unreachable,
        .NOTCONN => error.NotConnected,
        .NOENT, .NOTDIR => error.NotFound,
        .NOMEM, .NOBUFS => error.NoMemory,
        else => blk: {
            last_unexpected_errno.store(@intCast(@intFromEnum(e)), .monotonic);
            break :blk error.Unexpected;
        },
    };
}

test "errors: every error has a distinct negative code" {
    const info = @typeInfo(Error).error_set.?;
    var seen: [info.len]i32 = undefined;
    inline for (info, 0..) |field, i| {
        const c = code(@field(Error, field.name));
        try std.testing.expect(c < 0);
        for (seen[0..i]) |other| try std.testing.expect(other != c);
        seen[i] = c;
    }
}

test "errors: errno classification" {
    try std.testing.expectEqual(error.WouldBlock, fromErrno(.AGAIN));
    try std.testing.expectEqual(error.ConnectionReset, fromErrno(.CONNRESET));
    try std.testing.expectEqual(error.TooManyOpenFiles, fromErrno(.MFILE));
    try std.testing.expectEqual(error.NetworkError, fromErrno(.PROTO));
    try std.testing.expectEqual(error.Unreachable, fromErrno(.HOSTUNREACH));
    try std.testing.expectEqual(error.Unexpected, fromErrno(.NOEXEC));
    try std.testing.expect(last_unexpected_errno.load(.monotonic) == @intFromEnum(posix.E.NOEXEC));
}
