//! One readiness interface, one backend per OS, chosen at compile time.

const builtin = @import("builtin");

/// A readiness event, the same on every backend.
pub const Event = struct {
    /// The handle the descriptor was registered with.
    token: u32,
    readable: bool,
    writable: bool,
    /// The peer closed its side (EPOLLHUP/EPOLLRDHUP, EV_EOF).
    hup: bool,
    err: bool,
};

pub const Poller = switch (builtin.os.tag) {
    .linux => @import("epoll.zig").Poller,
    .macos, .freebsd, .netbsd, .openbsd, .dragonfly => @import("kqueue.zig").Poller,
    else => @compileError("zev has no backend for " ++ @tagName(builtin.os.tag)),
};
