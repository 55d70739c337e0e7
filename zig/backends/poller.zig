//! One readiness interface, one backend per OS, chosen at compile time.

const std = @import("std");
const builtin = @import("builtin");

/// A readiness event, the same on every backend.
pub const Event = struct {
    /// The handle the descriptor was registered with.
    token: u32,
    readable: bool,
    writable: bool,
    /// The peer closed its sending side (EPOLLRDHUP or EPOLLHUP, EV_EOF on the read
    /// filter): reads no longer block, they return what is left, then the end.
    read_closed: bool,
    /// The connection is gone both ways (EPOLLHUP, EV_EOF on the write filter): writes no
    /// longer block, they fail. A peer that only closed its sending side still reads
    /// what we send, so that alone does not make a full send buffer writable.
    write_closed: bool,
    err: bool,
};

/// Tested on Linux (epoll) and compiled for macOS and FreeBSD (kqueue); the other BSDs
/// have kqueue too, but nothing builds or tests zev there, so none is claimed.
pub const Poller = switch (builtin.os.tag) {
    .linux => @import("epoll.zig").Poller,
    .macos, .freebsd => @import("kqueue.zig").Poller,
    else => @compileError("zev has no backend for " ++ @tagName(builtin.os.tag)),
};

// Every backend has the whole interface, with these exact types (as libxev checks): a
// backend missing a function or changing a signature fails to compile on its OS.
comptime {
    const P = Poller;
    const fd_t = std.posix.fd_t;
    const Error = @import("../errors.zig").Error;
    const interface = .{
        .{ "init", fn () Error!P },
        .{ "deinit", fn (*P) void },
        .{ "addStream", fn (*P, fd_t, u32) Error!void },
        .{ "addListener", fn (*P, fd_t, u32, bool) Error!void },
        .{ "armListener", fn (*P, fd_t, u32, bool, bool) Error!void },
        .{ "wait", fn (*P, []Event, i32) Error!usize },
        .{ "wake", fn (*const P) void },
        .{ "parkFd", fn (*const P) fd_t },
    };
    for (interface) |entry| {
        if (!@hasDecl(P, entry[0])) @compileError("the " ++ @tagName(builtin.os.tag) ++ " backend lacks " ++ entry[0]);
        if (@TypeOf(@field(P, entry[0])) != entry[1]) {
            @compileError("the " ++ @tagName(builtin.os.tag) ++ " backend's " ++ entry[0] ++ " is " ++
                @typeName(@TypeOf(@field(P, entry[0]))) ++ ", not " ++ @typeName(entry[1]));
        }
    }
}
