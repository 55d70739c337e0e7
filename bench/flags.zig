//! Command-line flags of the bench tools (bench/load.zig, bench/floor_start.zig,
//! bench/bridge.zig), given as `--name value` or `--name=value`.

const std = @import("std");

pub const Flag = struct {
    name: []const u8,
    /// The value after `=`, if the flag carried one.
    value: ?[]const u8,
};

/// Splits `--name=value` at its first `=`; a flag without one has no inline value.
pub fn split(arg: []const u8) Flag {
    const eq = std.mem.indexOfScalar(u8, arg, '=') orelse return .{ .name = arg, .value = null };
    return .{ .name = arg[0..eq], .value = arg[eq + 1 ..] };
}
