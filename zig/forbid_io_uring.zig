//! Forbids io_uring to this process and everything it starts, as many container runtimes
//! do: a seccomp filter makes `io_uring_setup` fail with EPERM. For tests only: the Zig
//! test of `auto`'s fallback, and tests/no_io_uring.zig, which runs a command under it.

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

const audit_arch: u32 = switch (@import("builtin").cpu.arch) {
    .x86_64 => 0xc000003e,
    .aarch64 => 0xc00000b7,
    else => @compileError("forbid_io_uring: no seccomp arch for this CPU"),
};

/// Installs the filter; `Unsupported` where seccomp filters are not available (qemu-user).
pub fn install() error{Unsupported}!void {
    const filter = [_]SockFilter{
        // Another architecture's system call numbers mean other calls: let them be.
        .{ .code = BPF_LD_W_ABS, .jt = 0, .jf = 0, .k = arch_offset },
        .{ .code = BPF_JEQ_K, .jt = 0, .jf = 3, .k = audit_arch },
        .{ .code = BPF_LD_W_ABS, .jt = 0, .jf = 0, .k = nr_offset },
        .{ .code = BPF_JEQ_K, .jt = 0, .jf = 1, .k = @intFromEnum(linux.SYS.io_uring_setup) },
        .{ .code = BPF_RET_K, .jt = 0, .jf = 0, .k = linux.SECCOMP.RET.ERRNO | @as(u32, @intFromEnum(linux.E.PERM)) },
        .{ .code = BPF_RET_K, .jt = 0, .jf = 0, .k = linux.SECCOMP.RET.ALLOW },
    };
    const prog: SockFprog = .{ .len = filter.len, .filter = &filter };
    if (linux.E.init(linux.prctl(@intFromEnum(linux.PR.SET_NO_NEW_PRIVS), 1, 0, 0, 0)) != .SUCCESS) return error.Unsupported;
    if (linux.E.init(linux.seccomp(linux.SECCOMP.SET_MODE_FILTER, 0, &prog)) != .SUCCESS) return error.Unsupported;
}
