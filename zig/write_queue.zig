//! The bytes a stream has accepted from its caller but the kernel has not yet taken.
//!
//! Bounded by a per-stream limit: `push` takes no more than the room left, and the caller
//! waits for the queue to drain before it offers the rest. The buffer is allocated on
//! first use (most streams never fill their kernel send buffer) and kept until the stream
//! closes, so a stream under steady backpressure does not map and unmap memory per write.

const std = @import("std");
const assert = std.debug.assert;
const Error = @import("errors.zig").Error;

pub const WriteQueue = struct {
    buf: []u8 = &.{},
    head: u32 = 0,
    tail: u32 = 0,

    pub fn len(q: *const WriteQueue) u32 {
        return q.tail - q.head;
    }

    pub fn isEmpty(q: *const WriteQueue) bool {
        return q.head == q.tail;
    }

    /// The queued bytes, oldest first.
    pub fn pending(q: *const WriteQueue) []const u8 {
        return q.buf[q.head..q.tail];
    }

    /// Appends as much of `data` as fits under `limit`; returns how many bytes it took.
    pub fn push(q: *WriteQueue, allocator: std.mem.Allocator, limit: u32, data: []const u8) Error!u32 {
        const room = limit -| q.len();
        const n: u32 = @intCast(@min(room, data.len));
        if (n == 0) return 0;
        if (q.buf.len < limit) {
            // Grow to the limit once; copying the live bytes is at most `limit` bytes.
            const bigger = allocator.alloc(u8, limit) catch return error.NoMemory;
            const live = q.pending();
            @memcpy(bigger[0..live.len], live);
            if (q.buf.len > 0) allocator.free(q.buf);
            q.buf = bigger;
            q.tail = q.len();
            q.head = 0;
        } else if (q.buf.len - q.tail < n) {
            // Compact: move the live bytes to the front. Bounded by the limit.
            const live_len = q.len();
            std.mem.copyForwards(u8, q.buf[0..live_len], q.buf[q.head..q.tail]);
            q.head = 0;
            q.tail = live_len;
        }
        @memcpy(q.buf[q.tail..][0..n], data[0..n]);
        q.tail += n;
        assert(q.len() <= limit);
        return n;
    }

    /// Drops `n` bytes the kernel has taken from the front.
    pub fn consume(q: *WriteQueue, n: u32) void {
        assert(n <= q.len());
        q.head += n;
        if (q.head == q.tail) {
            q.head = 0;
            q.tail = 0;
        }
    }

    pub fn deinit(q: *WriteQueue, allocator: std.mem.Allocator) void {
        if (q.buf.len > 0) allocator.free(q.buf);
        q.* = .{};
    }
};

const testing = std.testing;

test "write queue: bounded push, consume in order" {
    var q: WriteQueue = .{};
    defer q.deinit(testing.allocator);
    try testing.expectEqual(@as(u32, 4), try q.push(testing.allocator, 8, "abcd"));
    try testing.expectEqual(@as(u32, 4), try q.push(testing.allocator, 8, "efghij"));
    try testing.expectEqual(@as(u32, 0), try q.push(testing.allocator, 8, "x"));
    try testing.expectEqualStrings("abcdefgh", q.pending());
    q.consume(3);
    try testing.expectEqualStrings("defgh", q.pending());
    try testing.expectEqual(@as(u32, 3), try q.push(testing.allocator, 8, "ijk"));
    try testing.expectEqualStrings("defghijk", q.pending());
    q.consume(8);
    try testing.expect(q.isEmpty());
}

test "write queue: a seeded random schedule keeps every byte in order" {
    var q: WriteQueue = .{};
    defer q.deinit(testing.allocator);
    var prng = std.Random.DefaultPrng.init(42);
    const r = prng.random();
    var next_in: u8 = 0;
    var next_out: u8 = 0;
    var scratch: [100]u8 = undefined;
    for (0..10_000) |_| {
        if (r.boolean()) {
            const want = r.uintLessThan(usize, scratch.len);
            for (scratch[0..want], 0..) |*b, i| b.* = next_in +% @as(u8, @truncate(i));
            const took = try q.push(testing.allocator, 64, scratch[0..want]);
            next_in +%= @truncate(took);
        } else {
            const take = r.uintAtMost(u32, q.len());
            for (q.pending()[0..take]) |b| {
                try testing.expectEqual(next_out, b);
                next_out +%= 1;
            }
            q.consume(take);
        }
        try testing.expect(q.len() <= 64);
    }
}
