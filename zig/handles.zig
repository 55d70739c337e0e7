//! Generation-checked handle table.
//!
//! A handle is a positive `i32`-sized integer: 18 bits of slot index and 13 bits of
//! generation. JS holds handles, never pointers, so a stale handle (its slot was freed and
//! perhaps reused) or a forged one is rejected with `BadHandle` instead of touching memory
//! it does not own. Freed slots are reused in FIFO order, so a slot comes back only after
//! every other free slot has been used: a stale handle meets the same generation again
//! only after 8191 reuses of its slot times the table size.

const std = @import("std");
const assert = std.debug.assert;
const Error = @import("errors.zig").Error;

pub const index_bits = 18;
pub const gen_bits = 13;
const index_mask: u32 = (1 << index_bits) - 1;
const gen_max: u16 = (1 << gen_bits) - 1;

comptime {
    // A handle must stay a positive i32, so that negative values can be error codes.
    assert(index_bits + gen_bits <= 31);
}

pub fn index(handle: u32) u32 {
    return handle & index_mask;
}

pub fn Table(comptime T: type) type {
    return struct {
        const Self = @This();

        const Slot = struct {
            /// Generation of the current (or next) occupant; never 0, so handle 0 is invalid.
            gen: u16 = 1,
            live: bool = false,
            value: T = undefined,
        };

        slots: []Slot,
        /// Ring of free slot indices, FIFO.
        free: []u32,
        free_head: u32 = 0,
        free_len: u32,
        live: u32 = 0,

        pub fn init(allocator: std.mem.Allocator, cap: u32) Error!Self {
            if (cap == 0 or cap > (1 << index_bits)) return error.InvalidArgument;
            const slots = allocator.alloc(Slot, cap) catch return error.NoMemory;
            errdefer allocator.free(slots);
            const free = allocator.alloc(u32, cap) catch return error.NoMemory;
            for (slots) |*s| s.* = .{};
            for (free, 0..) |*f, i| f.* = @intCast(i);
            return .{ .slots = slots, .free = free, .free_len = cap };
        }

        pub fn deinit(self: *Self, allocator: std.mem.Allocator) void {
            allocator.free(self.slots);
            allocator.free(self.free);
            self.* = undefined;
        }

        pub fn capacity(self: *const Self) u32 {
            return @intCast(self.slots.len);
        }

        /// Stores `value` and returns its handle, or `Limit` when the table is full.
        pub fn insert(self: *Self, value: T) Error!u32 {
            if (self.free_len == 0) return error.Limit;
            const i = self.free[self.free_head];
            self.free_head = (self.free_head + 1) % self.capacity();
            self.free_len -= 1;
            const slot = &self.slots[i];
            assert(!slot.live);
            slot.live = true;
            slot.value = value;
            self.live += 1;
            return (@as(u32, slot.gen) << index_bits) | i;
        }

        /// The value behind `handle`, or null when the handle is stale or forged.
        pub fn get(self: *Self, handle: u32) ?*T {
            const i = handle & index_mask;
            const gen = handle >> index_bits;
            if (i >= self.slots.len or gen == 0 or gen > gen_max) return null;
            const slot = &self.slots[i];
            if (!slot.live or slot.gen != gen) return null;
            return &slot.value;
        }

        /// Frees the slot of a live handle; the handle and every copy of it become stale.
        pub fn remove(self: *Self, handle: u32) void {
            assert(self.get(handle) != null);
            const i = handle & index_mask;
            const slot = &self.slots[i];
            slot.live = false;
            slot.value = undefined;
            slot.gen = if (slot.gen == gen_max) 1 else slot.gen + 1;
            const tail = (self.free_head + self.free_len) % self.capacity();
            self.free[tail] = i;
            self.free_len += 1;
            self.live -= 1;
        }

        /// Iterates the live handles (for closing everything at loop teardown).
        pub fn liveHandle(self: *Self, i: u32) ?u32 {
            const slot = &self.slots[i];
            if (!slot.live) return null;
            return (@as(u32, slot.gen) << index_bits) | i;
        }
    };
}

const testing = std.testing;

test "handles: insert, get, remove, stale" {
    var t = try Table(u64).init(testing.allocator, 4);
    defer t.deinit(testing.allocator);
    const a = try t.insert(10);
    const b = try t.insert(20);
    try testing.expect(a != b);
    try testing.expect(a > 0 and a <= std.math.maxInt(i32));
    try testing.expectEqual(@as(u64, 10), t.get(a).?.*);
    t.remove(a);
    try testing.expect(t.get(a) == null);
    try testing.expectEqual(@as(u64, 20), t.get(b).?.*);
    try testing.expectEqual(@as(u32, 1), t.live);
}

test "handles: full table is a Limit error, not a crash" {
    var t = try Table(u8).init(testing.allocator, 2);
    defer t.deinit(testing.allocator);
    _ = try t.insert(1);
    _ = try t.insert(2);
    try testing.expectError(error.Limit, t.insert(3));
}

test "handles: freed slots are reused in FIFO order with a new generation" {
    var t = try Table(u8).init(testing.allocator, 3);
    defer t.deinit(testing.allocator);
    const a = try t.insert(1);
    t.remove(a);
    // Two other slots are free before slot of `a` comes back.
    const b = try t.insert(2);
    const c = try t.insert(3);
    try testing.expect(index(b) != index(a) and index(c) != index(a));
    const d = try t.insert(4);
    try testing.expectEqual(index(a), index(d));
    try testing.expect(d != a);
    try testing.expect(t.get(a) == null);
}

test "handles: generations wrap without ever producing 0" {
    var t = try Table(u8).init(testing.allocator, 1);
    defer t.deinit(testing.allocator);
    var i: u32 = 0;
    while (i < 3 * gen_max) : (i += 1) {
        const h = try t.insert(0);
        try testing.expect(h >> index_bits != 0);
        t.remove(h);
    }
}

test "handles: forged handles are rejected" {
    var t = try Table(u8).init(testing.allocator, 8);
    defer t.deinit(testing.allocator);
    _ = try t.insert(7);
    var prng = std.Random.DefaultPrng.init(0x2e7);
    const r = prng.random();
    var live: u32 = 0;
    for (0..100_000) |_| {
        if (t.get(r.int(u32)) != null) live += 1;
    }
    // Only the one live handle can ever match; a random u32 hits it with odds 2^-32.
    try testing.expect(live <= 1);
    try testing.expect(t.get(0) == null);
    try testing.expect(t.get(0xffff_ffff) == null);
}
