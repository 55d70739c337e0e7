//! What both floor servers (bench/floor.zig, bench/floor_uring.zig) do before they serve:
//! `--host` and `--port`, SIGINT and SIGTERM turned into a descriptor, the listening
//! socket, and the `listening on HOST:PORT` line; and how they fail, named.

const std = @import("std");
const linux = std.os.linux;
const io = @import("linux_io.zig");
const flags = @import("flags.zig");

pub fn Start(comptime prog: []const u8) type {
    return struct {
        const usage_line = "usage: " ++ prog ++ " [--host 127.0.0.1] [--port 0]\n";

        pub fn fatal(comptime fmt: []const u8, args: anytype) noreturn {
            std.debug.print(prog ++ ": " ++ fmt ++ "\n", args);
            std.process.exit(1);
        }

        fn usage(comptime fmt: []const u8, args: anytype) noreturn {
            std.debug.print(prog ++ ": " ++ fmt ++ "\n" ++ usage_line, args);
            std.process.exit(2);
        }

        /// The address from `--host` and `--port` (`--flag value` or `--flag=value`).
        pub fn address() std.net.Address {
            var host: []const u8 = "127.0.0.1";
            var port: u16 = 0;
            var args = std.process.args();
            _ = args.skip();
            while (args.next()) |arg| {
                if (std.mem.eql(u8, arg, "-h") or std.mem.eql(u8, arg, "--help")) {
                    std.debug.print(usage_line, .{});
                    std.process.exit(0);
                }
                const given = flags.split(arg);
                const name = given.name;
                const inline_value = given.value;
                const is_host = std.mem.eql(u8, name, "--host");
                if (!is_host and !std.mem.eql(u8, name, "--port")) usage("unknown flag '{s}'", .{arg});
                const value = inline_value orelse args.next() orelse usage("missing value for {s}", .{name});
                if (is_host) {
                    host = value;
                } else {
                    port = std.fmt.parseInt(u16, value, 10) catch usage("invalid --port '{s}'", .{value});
                }
            }
            return std.net.Address.parseIp(host, port) catch usage("invalid --host '{s}' (numeric IPv4/IPv6 only)", .{host});
        }

        /// Raises the soft descriptor limit to the hard one and returns it (capped: it
        /// sizes the connection table, indexed by descriptor).
        pub fn maxFds() usize {
            return @intCast(@min(io.raiseNofile(), 1 << 20));
        }

        /// SIGINT and SIGTERM, blocked, as a nonblocking descriptor: shutdown arrives
        /// through the server's own wait, with no global flag.
        pub fn termSignals() i32 {
            var mask = linux.sigemptyset();
            linux.sigaddset(&mask, linux.SIG.INT);
            linux.sigaddset(&mask, linux.SIG.TERM);
            _ = linux.sigprocmask(linux.SIG.BLOCK, &mask, null);
            const rc = linux.signalfd(-1, &mask, linux.SFD.NONBLOCK | linux.SFD.CLOEXEC);
            if (linux.E.init(rc) != .SUCCESS) fatal("signalfd: {t}", .{linux.E.init(rc)});
            return @intCast(rc);
        }

        /// A TCP listener on `addr` (`sock_flags`: SOCK.NONBLOCK or 0, beside CLOEXEC).
        pub fn listen(addr: std.net.Address, sock_flags: u32) i32 {
            const lrc = linux.socket(addr.any.family, linux.SOCK.STREAM | linux.SOCK.CLOEXEC | sock_flags, 0);
            if (linux.E.init(lrc) != .SUCCESS) fatal("socket: {t}", .{linux.E.init(lrc)});
            const lfd: i32 = @intCast(lrc);
            io.setInt(lfd, linux.SOL.SOCKET, linux.SO.REUSEADDR, 1);
            var rc = linux.bind(lfd, &addr.any, addr.getOsSockLen());
            if (linux.E.init(rc) != .SUCCESS) fatal("bind {f}: {t}", .{ addr, linux.E.init(rc) });
            // The kernel clamps the backlog to net.core.somaxconn.
            rc = linux.listen(lfd, 65535);
            if (linux.E.init(rc) != .SUCCESS) fatal("listen: {t}", .{linux.E.init(rc)});
            return lfd;
        }

        /// Prints `listening on HOST:PORT`, the line the benchmarks wait for.
        pub fn announce(lfd: i32) void {
            var bound: linux.sockaddr.storage = undefined;
            var bound_len: linux.socklen_t = @sizeOf(linux.sockaddr.storage);
            const rc = linux.getsockname(lfd, @ptrCast(&bound), &bound_len);
            if (linux.E.init(rc) != .SUCCESS) fatal("getsockname: {t}", .{linux.E.init(rc)});
            var out_buf: [128]u8 = undefined;
            var out = std.fs.File.stdout().writerStreaming(&out_buf);
            out.interface.print("listening on {f}\n", .{std.net.Address.initPosix(@ptrCast(&bound))}) catch {};
            out.interface.flush() catch {};
        }
    };
}
