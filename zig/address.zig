//! Socket addresses across the ABI: parsed from an IP literal and a port (or a Unix
//! socket's path), and written out as 20 bytes a JS caller reads without knowing any
//! OS's sockaddr layout: byte 0 the family (4, 6, or 1 for a Unix socket, whose path the
//! caller knows), bytes 2..4 the port (little-endian), bytes 4..20 the address (the
//! first 4 for IPv4). Host names are resolved by the caller, not here.

const std = @import("std");
const posix = std.posix;
const Error = @import("errors.zig").Error;

pub const abi_len = 20;

pub const Address = std.net.Address;

pub fn parse(host: []const u8, port: u32) Error!Address {
    if (port > std.math.maxInt(u16)) return error.InvalidArgument;
    return Address.parseIp(host, @intCast(port)) catch error.InvalidArgument;
}

/// A Unix socket's path: not empty, no NUL (no abstract names), and short enough for
/// sockaddr_un (107 bytes on Linux, 103 on macOS and the BSDs).
pub fn parseUnix(path: []const u8) Error!Address {
    if (path.len == 0 or std.mem.indexOfScalar(u8, path, 0) != null) return error.InvalidArgument;
    return Address.initUnix(path) catch error.InvalidArgument;
}

/// The longest Unix socket path (sockaddr_un's path, less its NUL).
pub const max_unix_path = @typeInfo(@FieldType(posix.sockaddr.un, "path")).array.len - 1;

pub fn family(addr: *const Address) u32 {
    return addr.any.family;
}

/// Writes `storage` (as filled by getsockname/getpeername) in the ABI layout.
pub fn write(storage: *const posix.sockaddr.storage, out: *[abi_len]u8) Error!void {
    @memset(out, 0);
    const any: *const posix.sockaddr = @ptrCast(storage);
    switch (any.family) {
        posix.AF.INET => {
            const in: *const posix.sockaddr.in = @ptrCast(@alignCast(storage));
            out[0] = 4;
            std.mem.writeInt(u16, out[2..4], std.mem.bigToNative(u16, in.port), .little);
            @memcpy(out[4..8], std.mem.asBytes(&in.addr));
        },
        posix.AF.INET6 => {
            const in6: *const posix.sockaddr.in6 = @ptrCast(@alignCast(storage));
            out[0] = 6;
            std.mem.writeInt(u16, out[2..4], std.mem.bigToNative(u16, in6.port), .little);
            @memcpy(out[4..20], &in6.addr);
        },
        posix.AF.UNIX => out[0] = 1,
        else => return error.InvalidArgument,
    }
}

const testing = std.testing;

test "address: parse IPv4 and IPv6 literals, reject the rest" {
    const a = try parse("127.0.0.1", 8080);
    try testing.expectEqual(@as(u32, posix.AF.INET), family(&a));
    const b = try parse("::1", 0);
    try testing.expectEqual(@as(u32, posix.AF.INET6), family(&b));
    try testing.expectError(error.InvalidArgument, parse("localhost", 80));
    try testing.expectError(error.InvalidArgument, parse("1.2.3.4", 70000));
    try testing.expectError(error.InvalidArgument, parse("", 1));
}

test "address: Unix paths, checked" {
    const a = try parseUnix("/tmp/zev.sock");
    try testing.expectEqual(@as(u32, posix.AF.UNIX), family(&a));
    try testing.expectError(error.InvalidArgument, parseUnix(""));
    try testing.expectError(error.InvalidArgument, parseUnix("a\x00b"));
    const long = [_]u8{'a'} ** (max_unix_path + 1);
    try testing.expectError(error.InvalidArgument, parseUnix(&long));
    _ = try parseUnix(long[0..max_unix_path]);
    var storage: posix.sockaddr.storage = undefined;
    @memcpy(std.mem.asBytes(&storage)[0..@sizeOf(posix.sockaddr.un)], std.mem.asBytes(&a.un));
    var out: [abi_len]u8 = @splat(7);
    try write(&storage, &out);
    try testing.expectEqualSlices(u8, &.{ 1, 0, 0, 0 }, out[0..4]);
}

test "address: ABI layout" {
    const a = try parse("10.1.2.3", 0x1234);
    var storage: posix.sockaddr.storage = undefined;
    @memcpy(std.mem.asBytes(&storage)[0..@sizeOf(posix.sockaddr.in)], std.mem.asBytes(&a.in.sa));
    var out: [abi_len]u8 = undefined;
    try write(&storage, &out);
    try testing.expectEqualSlices(u8, &.{ 4, 0, 0x34, 0x12, 10, 1, 2, 3 }, out[0..8]);
}
