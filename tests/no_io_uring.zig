//! Runs a command where io_uring is forbidden, as many container runtimes forbid it: a
//! seccomp filter makes `io_uring_setup` fail with EPERM, for the command and everything
//! it starts. The tests run zev under it to see the fallbacks (`auto` on epoll, the
//! thread wake) and their reasons on a kernel that has io_uring.
//!
//!   zev-no-io-uring COMMAND [ARGS...]

const std = @import("std");
const linux = std.os.linux;

/// A classic BPF instruction and program, as seccomp(2) takes them.
const SockFilter = extern struct { code: u16, jt: u8, jf: u8, k: u32 };
const SockFprog = extern struct { len: u16, filter: [*]const SockFilter };

const BPF_LD_W_ABS = 0x20;
const BPF_JEQ_K = 0x15;
const BPF_RET_K = 0x06;
/// Offsets in `struct seccomp_data`.
const nr_offset = 0;
const arch_offset = 4;
const AUDIT_ARCH_X86_64 = 0xc000003e;
const AUDIT_ARCH_AARCH64 = 0xc00000b7;

pub fn main() u8 {
    const argv = std.os.argv;
    if (argv.len < 2) {
        std.debug.print("usage: zev-no-io-uring COMMAND [ARGS...]\n", .{});
        return 2;
    }
    const arch: u32 = switch (@import("builtin").cpu.arch) {
        .x86_64 => AUDIT_ARCH_X86_64,
        .aarch64 => AUDIT_ARCH_AARCH64,
        else => @compileError("zev-no-io-uring: no seccomp arch for this CPU"),
    };
    const errno_perm: u32 = @intFromEnum(linux.E.PERM);
    const filter = [_]SockFilter{
        // Another architecture's system call numbers mean other calls: let them be.
        .{ .code = BPF_LD_W_ABS, .jt = 0, .jf = 0, .k = arch_offset },
        .{ .code = BPF_JEQ_K, .jt = 0, .jf = 3, .k = arch },
        .{ .code = BPF_LD_W_ABS, .jt = 0, .jf = 0, .k = nr_offset },
        .{ .code = BPF_JEQ_K, .jt = 0, .jf = 1, .k = @intFromEnum(linux.SYS.io_uring_setup) },
        .{ .code = BPF_RET_K, .jt = 0, .jf = 0, .k = linux.SECCOMP.RET.ERRNO | errno_perm },
        .{ .code = BPF_RET_K, .jt = 0, .jf = 0, .k = linux.SECCOMP.RET.ALLOW },
    };
    const prog: SockFprog = .{ .len = filter.len, .filter = &filter };
    if (linux.E.init(linux.prctl(@intFromEnum(linux.PR.SET_NO_NEW_PRIVS), 1, 0, 0, 0)) != .SUCCESS) {
        std.debug.print("zev-no-io-uring: prctl(PR_SET_NO_NEW_PRIVS) failed\n", .{});
        return 1;
    }
    const rc = linux.seccomp(linux.SECCOMP.SET_MODE_FILTER, 0, &prog);
    if (linux.E.init(rc) != .SUCCESS) {
        std.debug.print("zev-no-io-uring: seccomp failed: {s}\n", .{@tagName(linux.E.init(rc))});
        return 1;
    }
    const err = std.posix.execvpeZ(argv[1], @ptrCast(argv[1..].ptr), @ptrCast(std.os.environ.ptr));
    std.debug.print("zev-no-io-uring: cannot run {s}: {s}\n", .{ argv[1], @errorName(err) });
    return 127;
}
