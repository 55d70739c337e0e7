//! Runs a command where io_uring is forbidden, as many container runtimes forbid it
//! (zig/forbid_io_uring.zig: `io_uring_setup` fails with EPERM, for the command and
//! everything it starts). The tests run zev under it to see the fallbacks (`auto` on
//! epoll, the thread wake) and their reasons on a kernel that has io_uring.
//!
//!   zev-no-io-uring COMMAND [ARGS...]

const std = @import("std");
const forbid = @import("forbid_io_uring");

pub fn main() u8 {
    const argv = std.os.argv;
    if (argv.len < 2) {
        std.debug.print("usage: zev-no-io-uring COMMAND [ARGS...]\n", .{});
        return 2;
    }
    forbid.install() catch {
        std.debug.print("zev-no-io-uring: cannot install the seccomp filter\n", .{});
        return 1;
    };
    const err = std.posix.execvpeZ(argv[1], @ptrCast(argv[1..].ptr), @ptrCast(std.os.environ.ptr));
    std.debug.print("zev-no-io-uring: cannot run {s}: {s}\n", .{ argv[1], @errorName(err) });
    return 127;
}
