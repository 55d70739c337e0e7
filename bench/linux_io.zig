//! Socket calls shared by the load generator and the floor server: raw Linux system
//! calls with errno classified, no libc.

const std = @import("std");
const linux = std.os.linux;

pub const IoResult = union(enum) { n: usize, again, eof, failed };

pub fn recvSome(fd: i32, buf: []u8) IoResult {
    while (true) {
        const rc = linux.read(fd, buf.ptr, buf.len);
        switch (linux.E.init(rc)) {
            .SUCCESS => return if (rc == 0) .eof else .{ .n = rc },
            .INTR => continue,
            .AGAIN => return .again,
            else => return .failed,
        }
    }
}

/// MSG_NOSIGNAL: a peer that went away must cost an error, not SIGPIPE.
pub fn sendSome(fd: i32, bytes: []const u8) IoResult {
    while (true) {
        const rc = linux.sendto(fd, bytes.ptr, bytes.len, linux.MSG.NOSIGNAL, null, 0);
        switch (linux.E.init(rc)) {
            .SUCCESS => return .{ .n = rc },
            .INTR => continue,
            .AGAIN => return .again,
            else => return .failed,
        }
    }
}

pub fn setInt(fd: i32, level: i32, opt: u32, v: c_int) void {
    _ = linux.setsockopt(fd, level, opt, std.mem.asBytes(&v), @sizeOf(c_int));
}

/// Raises the soft descriptor limit to the hard limit; returns the resulting soft limit.
pub fn raiseNofile() u64 {
    var lim: linux.rlimit = undefined;
    if (linux.E.init(linux.getrlimit(.NOFILE, &lim)) != .SUCCESS) return 1024;
    lim.cur = lim.max;
    _ = linux.setrlimit(.NOFILE, &lim);
    _ = linux.getrlimit(.NOFILE, &lim);
    return lim.cur;
}
