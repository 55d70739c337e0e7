//! Streams on the io_uring backend (docs/design/IO_URING.md): what each stream holds of
//! the ring (its received buffers, its armed operations), the loop's lists of streams that
//! changed since the last poll or wait for buffers, and the poll that folds completions
//! into stream state. The ring itself (submissions, completions, buffers, the park's
//! eventfd) is io_uring.zig; listeners and datagram sockets stay in the epoll set, which
//! the ring polls.

const std = @import("std");
const builtin = @import("builtin");
const sys = @import("../sys.zig");
const limits = @import("../limits.zig");
const errors = @import("../errors.zig");
const Error = errors.Error;
const uring = if (sys.is_linux) @import("io_uring.zig") else struct {
    pub const Ring = opaque {};
    pub const Unavailable = enum(u32) { none = 0, missing = 1, not_level = 7 };
    pub const no_buffer: u16 = std.math.maxInt(u16);
};
const Cqe = if (sys.is_linux) std.os.linux.io_uring_cqe else void;
const loop_mod = @import("../loop.zig");
const Loop = loop_mod.Loop;
const stream = @import("../stream.zig");
const Stream = stream.Stream;
const listener = @import("../listener.zig");

pub const Ring = uring.Ring;
pub const Unavailable = uring.Unavailable;
const no_buffer = uring.no_buffer;

/// What a stream holds of the ring.
pub const RingStream = struct {
    /// This stream's handle: the token of its operations in the ring.
    handle: u32 = 0,
    /// Received buffers not yet read, oldest first, and how far the first is read.
    rx_head: u16 = no_buffer,
    rx_tail: u16 = no_buffer,
    rx_count: u16 = 0,
    rx_off: u32 = 0,
    /// The peer closed its side (a receive of 0 bytes), or the receive failed.
    rx_eof: bool = false,
    rx_err: ?Error = null,
    recv_armed: bool = false,
    pollout_armed: bool = false,
    /// A readability poll is armed (a starving stream reading with read(2)).
    pollin_armed: bool = false,
    /// Waiting for buffers (the ring ran out), on the loop's list of such streams.
    starving: bool = false,
    /// On the loop's list of streams whose state changed since the last poll.
    dirty: bool = false,
};

pub const RingStreams = struct {
    ring: *Ring,
    /// Streams whose state changed since the last poll, and streams waiting for buffers
    /// (handles; stale ones are skipped). Each stream is on each list at most once.
    dirty: []u32,
    dirty_len: usize = 0,
    /// Where the next poll resumes in `dirty` when the last one left streams over (so
    /// that a poll costs what it takes, not what is left).
    dirty_head: usize = 0,
    starving: []u32,
    starving_len: usize = 0,
    /// Cancels a closed stream's operations still need (the ring took none when it
    /// closed), by user data: asked at the next poll, so that the kernel lets the socket
    /// go (and sends its FIN). Three per handle at most.
    owed: []u64,
    owed_len: usize = 0,
    /// Buffers went back to the kernel since starving streams last asked for more.
    buffers_returned: bool = false,
    cqes: [limits.max_events_per_poll]Cqe = undefined,
    /// Tests only: how many times the dirty list moved down (it filled behind its head).
    test_moved_down: if (builtin.is_test) u32 else void = if (builtin.is_test) 0 else {},

    /// A ring for a loop of `cap` handles, polling the epoll set `epfd`; `why` tells why
    /// the kernel refused it.
    pub fn init(allocator: std.mem.Allocator, epfd: sys.fd_t, cap: u32, why: *Unavailable) Error!*RingStreams {
        if (!sys.is_linux) return error.Unsupported;
        const self = allocator.create(RingStreams) catch return error.NoMemory;
        errdefer allocator.destroy(self);
        const ring = try Ring.init(allocator, epfd, why);
        errdefer ring.deinit(allocator);
        const dirty = allocator.alloc(u32, cap) catch return error.NoMemory;
        errdefer allocator.free(dirty);
        const starving = allocator.alloc(u32, cap) catch return error.NoMemory;
        errdefer allocator.free(starving);
        const owed = allocator.alloc(u64, 3 * @as(usize, cap)) catch return error.NoMemory;
        self.* = .{ .ring = ring, .dirty = dirty, .starving = starving, .owed = owed };
        return self;
    }

    pub fn deinit(self: *RingStreams, allocator: std.mem.Allocator) void {
        self.ring.deinit(allocator);
        allocator.free(self.dirty);
        allocator.free(self.starving);
        allocator.free(self.owed);
        allocator.destroy(self);
    }

    /// Starts watching a new stream: a receive in the ring (a one-shot poll for
    /// writability first, while it connects).
    pub fn watch(self: *RingStreams, s: *Stream, h: u32) Error!void {
        s.ring.handle = h;
        if (s.connecting) {
            try self.ring.pollOut(s.fd, h);
            s.ring.pollout_armed = true;
        } else {
            try self.ring.armRecv(s.fd, h);
            s.ring.recv_armed = true;
        }
    }

    /// A stream's send buffer is full: a one-shot poll says when it is not.
    pub fn watchWritable(self: *RingStreams, loop: *Loop, s: *Stream) Error!void {
        if (s.ring.pollout_armed) return;
        if (loop.injected("test_fail_watch")) return error.Limit;
        try self.ring.pollOut(s.fd, s.ring.handle);
        s.ring.pollout_armed = true;
    }

    pub fn read(self: *RingStreams, loop: *Loop, s: *Stream, buf: []u8) Error!usize {
        const rs = &s.ring;
        if (s.connecting) {
            s.want_read = true;
            return error.WouldBlock;
        }
        if (rs.rx_count == 0) {
            if (rs.rx_err) |err| {
                // Told once, as a read(2) tells it; then the end of the stream.
                rs.rx_err = null;
                rs.rx_eof = true;
                return s.failure(err);
            }
            if (rs.rx_eof) return s.endOfStream();
            if (rs.starving) return self.readDirect(loop, s, buf);
            s.want_read = true;
            return error.WouldBlock;
        }
        const r = self.ring;
        var n: usize = 0;
        while (n < buf.len and rs.rx_head != no_buffer) {
            const bid = rs.rx_head;
            const data = r.buffer(bid)[rs.rx_off..r.len[bid]];
            const take = @min(data.len, buf.len - n);
            @memcpy(buf[n..][0..take], data[0..take]);
            n += take;
            rs.rx_off += @intCast(take);
            if (rs.rx_off == r.len[bid]) self.popBuffer(s);
        }
        self.maybeRearm(loop, s);
        self.feedStarvingIfFreed(loop);
        return n;
    }

    /// A stream the ring has no buffer for reads with read(2), as on epoll, so that streams
    /// nobody reads, holding every buffer, cannot stop one that is read. (Nothing of it
    /// waits in the ring: no receive is armed, and its buffers are all read.) A
    /// readability poll tells when there is more.
    fn readDirect(self: *RingStreams, loop: *Loop, s: *Stream, buf: []u8) Error!usize {
        const n = sys.read(s.fd, buf) catch |err| {
            if (err != error.WouldBlock) {
                s.ring.rx_eof = true; // told once, then the end, as a receive's error
                return s.failure(err);
            }
            s.readable = false;
            s.want_read = true;
            if (!s.ring.pollin_armed) {
                if (loop.injected("test_fail_watch")) return error.Limit;
                try self.ring.pollIn(s.fd, s.ring.handle);
                s.ring.pollin_armed = true;
            }
            return err;
        };
        if (n == 0) {
            s.ring.rx_eof = true;
            return s.endOfStream();
        }
        return n;
    }

    /// Gives a stream's oldest received buffer back to the kernel.
    fn popBuffer(self: *RingStreams, s: *Stream) void {
        const rs = &s.ring;
        const bid = rs.rx_head;
        rs.rx_head = self.ring.next[bid];
        if (rs.rx_head == no_buffer) rs.rx_tail = no_buffer;
        rs.rx_count -= 1;
        rs.rx_off = 0;
        self.ring.giveBack(bid);
        self.buffers_returned = true;
    }

    /// Receives again if the stream may: nothing ended it, and it holds less than its share.
    fn maybeRearm(self: *RingStreams, loop: *Loop, s: *Stream) void {
        const rs = &s.ring;
        if (rs.recv_armed or rs.rx_eof or rs.rx_err != null or rs.starving) return;
        if (rs.rx_count >= limits.ring_buffers_per_stream) return;
        self.ring.armRecv(s.fd, rs.handle) catch {
            // No submission entry now: try again when buffers come back.
            self.starve(loop, s);
            return;
        };
        rs.recv_armed = true;
    }

    fn starve(self: *RingStreams, loop: *Loop, s: *Stream) void {
        if (s.ring.starving) return;
        s.ring.starving = true;
        listAppend(loop, self.starving, &self.starving_len, s.ring.handle, "starving");
    }

    pub fn markDirty(self: *RingStreams, loop: *Loop, s: *Stream) void {
        if (s.ring.dirty) return;
        s.ring.dirty = true;
        if (self.dirty_len == self.dirty.len and self.dirty_head > 0) {
            // Full: the entries before the head are done; move the rest down (at most
            // once per `dirty.len` appends).
            const left = self.dirty_len - self.dirty_head;
            std.mem.copyForwards(u32, self.dirty[0..left], self.dirty[self.dirty_head..self.dirty_len]);
            self.dirty_len = left;
            self.dirty_head = 0;
            if (builtin.is_test) self.test_moved_down += 1;
        }
        listAppend(loop, self.dirty, &self.dirty_len, s.ring.handle, "dirty");
    }

    /// Appends a handle to one of the lists of streams. A closed stream's entry stays until
    /// the list is next walked (it is skipped then), so a list can fill with such entries
    /// between polls: then it drops them first. Each live stream is in it at most once,
    /// so there is room after that.
    fn listAppend(loop: *Loop, list: []u32, len: *usize, h: u32, comptime flag: []const u8) void {
        if (len.* == list.len) {
            var kept: usize = 0;
            for (list[0..len.*]) |other| {
                const o = loop.streamAt(other) orelse continue;
                if (!@field(o.ring, flag)) continue;
                list[kept] = other;
                kept += 1;
            }
            len.* = kept;
        }
        list[len.*] = h;
        len.* += 1;
    }

    /// If buffers came back, streams that ran out receive again. Called where buffers come
    /// back outside a poll too (a read, a close), not only at the next poll: a parked loop
    /// polls only after a completion, which a stream with no receive armed never brings.
    fn feedStarvingIfFreed(self: *RingStreams, loop: *Loop) void {
        if (self.buffers_returned and self.starving_len > 0) self.feedStarving(loop);
    }

    /// Buffers came back: streams that ran out receive again.
    fn feedStarving(self: *RingStreams, loop: *Loop) void {
        self.buffers_returned = false;
        const waiting = self.starving[0..self.starving_len];
        self.starving_len = 0;
        for (waiting) |h| {
            const s = loop.streamAt(h) orelse continue;
            if (!s.ring.starving) continue;
            s.ring.starving = false;
            self.maybeRearm(loop, s);
        }
    }

    /// Folds one completion into its stream's state.
    fn onCompletion(self: *RingStreams, loop: *Loop, cqe: Cqe) void {
        const linux = std.os.linux;
        const r = self.ring;
        const op = uring.opOf(cqe.user_data) orelse return;
        if (op == .epoll) {
            r.epoll_ready = true;
            if (cqe.flags & linux.IORING_CQE_F_MORE == 0) r.epoll_armed = false;
            return;
        }
        if (op == .cancel) return;
        const s = loop.streamAt(uring.tokenOf(cqe.user_data)) orelse {
            // A stream closed since: its buffer goes back (its receive was cancelled), and
            // streams waiting for buffers may receive again, as after a read.
            if (cqe.flags & linux.IORING_CQE_F_BUFFER != 0) {
                r.giveBack(cqe.buffer_id() catch return);
                self.buffers_returned = true;
            }
            return;
        };
        const rs = &s.ring;
        switch (op) {
            .recv => {
                rs.recv_armed = false;
                if (cqe.res > 0) {
                    const bid = cqe.buffer_id() catch return;
                    r.len[bid] = @intCast(cqe.res);
                    r.next[bid] = no_buffer;
                    if (rs.rx_tail == no_buffer) rs.rx_head = bid else r.next[rs.rx_tail] = bid;
                    rs.rx_tail = bid;
                    rs.rx_count += 1;
                } else if (cqe.res == 0) {
                    rs.rx_eof = true;
                } else {
                    const e: linux.E = @enumFromInt(-cqe.res);
                    switch (e) {
                        // Data came and found no buffer: it waits in the kernel, so the
                        // stream is readable (with read(2): see `readDirect`), and a read
                        // waiting for it must be told now, not when buffers come back.
                        .NOBUFS => {
                            self.starve(loop, s);
                            s.readable = true;
                        },
                        .CANCELED => {},
                        else => rs.rx_err = errors.fromErrno(e),
                    }
                }
                self.maybeRearm(loop, s);
            },
            .pollin => {
                rs.pollin_armed = false;
                if (cqe.res == -@as(i32, @intFromEnum(linux.E.CANCELED))) return;
                s.readable = true;
            },
            .pollout => {
                rs.pollout_armed = false;
                if (cqe.res == -@as(i32, @intFromEnum(linux.E.CANCELED))) return;
                s.writable = true;
                if (s.connecting) {
                    stream.finishConnect(s);
                    if (s.failed == null) self.maybeRearm(loop, s) else rs.rx_eof = true;
                }
                if (!s.queue.isEmpty()) stream.drainQueue(loop, s);
            },
            .epoll, .cancel => unreachable,
        }
        self.markDirty(loop, s);
    }

    /// Takes up to `batches` batches of completions off the ring and folds each into its
    /// stream; returns how many it took.
    fn takeCompletions(self: *RingStreams, loop: *Loop, batches: usize) usize {
        var taken: usize = 0;
        for (0..batches) |_| {
            const n = self.ring.reap(&self.cqes);
            if (n == 0) break;
            taken += n;
            for (self.cqes[0..n]) |cqe| self.onCompletion(loop, cqe);
        }
        return taken;
    }

    /// The loop's poll on this backend: one `io_uring_enter` submits what is pending and
    /// takes the completions; the streams they changed, then the epoll set's listeners and
    /// datagram sockets, then the pause notices, become (handle, flags) pairs in `out`.
    pub fn poll(self: *RingStreams, loop: *Loop, out: []u32, timeout_ms: i32) Error!usize {
        const r = self.ring;
        r.batching = true;
        defer r.batching = false;
        r.running();
        try r.armEpoll();
        self.payOwed();
        var wait = timeout_ms;
        var looked_again = false;
        while (true) {
            // Streams that ran out of buffers receive again, in this `enter`, once reads
            // gave buffers back.
            self.feedStarvingIfFreed(loop);
            // A poll that finds the ring idle makes no system call.
            if (wait != 0 or !r.idle()) _ = try r.enter(wait);
            wait = 0;
            // Bounded: what is left waits for the next poll.
            loop.stats.events += self.takeCompletions(loop, 4);
            var count: usize = 0;
            const cap = out.len / 2;
            // Streams whose state changed; those left over stay on the list.
            var i: usize = self.dirty_head;
            while (i < self.dirty_len and count < cap) : (i += 1) {
                const h = self.dirty[i];
                const s = loop.streamAt(h) orelse continue;
                const rs = &s.ring;
                if (!rs.dirty) continue;
                rs.dirty = false;
                const can_read = rs.rx_count > 0 or rs.rx_eof or rs.rx_err != null or (rs.starving and s.readable);
                const flags = stream.flags(s, !s.connecting and can_read);
                if (flags == 0) continue;
                out[2 * count] = h;
                out[2 * count + 1] = flags;
                count += 1;
            }
            if (i == self.dirty_len) {
                self.dirty_len = 0;
                self.dirty_head = 0;
            } else {
                self.dirty_head = i;
            }
            // Listeners and datagram sockets, from the epoll set when its poll fired.
            if (r.epoll_ready and count < cap) {
                const n = try loop.poller.wait(loop.events[0..@min(cap - count, loop.events.len)], 0);
                // Level-triggered listeners stay ready without a new wake: look again
                // next time, until a wait finds nothing.
                r.epoll_ready = n > 0;
                count = loop.readinessEvents(out, count, n);
            }
            count = listener.notices(loop, out, count);
            if (count > 0 or looked_again) return count;
            // Nothing: the caller may park. Signals on, and one last look.
            if (!try r.preparePark(!loop.wakeDrains())) return 0;
            looked_again = true;
        }
    }

    fn owe(self: *RingStreams, user_data: u64) void {
        // (Three per handle: there is room, as a handle owes only until the next poll.)
        if (self.owed_len == self.owed.len) return;
        self.owed[self.owed_len] = user_data;
        self.owed_len += 1;
    }

    /// Asks the cancels owed; those the ring does not take stay owed.
    fn payOwed(self: *RingStreams) void {
        while (self.owed_len > 0) {
            self.ring.cancelOp(self.owed[self.owed_len - 1]) catch return;
            self.owed_len -= 1;
        }
    }

    /// Before a stream closes: its operations in the ring cancelled and their last
    /// completions taken (the kernel holds the socket until then), its buffers given back.
    pub fn forget(self: *RingStreams, loop: *Loop, s: *Stream) void {
        const rs = &s.ring;
        rs.rx_eof = true; // receives no more: a cancelled receive is not re-armed
        if (rs.recv_armed or rs.pollout_armed or rs.pollin_armed) {
            // Without the cancel in the ring nothing ends its operations, and waiting for
            // them would block the JS thread for as long as the peer stays silent: then
            // the cancels are owed, asked by the next poll (their completions find no
            // stream, and give their buffers back).
            const cancelled = if (loop.injected("test_fail_cancel")) false else if (self.ring.cancelFd(s.fd)) |_| true else |_| false;
            var rounds: usize = 0;
            while (cancelled and (rs.recv_armed or rs.pollout_armed or rs.pollin_armed) and rounds < 1000) : (rounds += 1) {
                _ = self.ring.enter(-1) catch break;
                _ = self.takeCompletions(loop, std.math.maxInt(usize));
            }
            if (!cancelled) {
                if (rs.recv_armed) self.owe(uring.userData(.recv, rs.handle));
                if (rs.pollout_armed) self.owe(uring.userData(.pollout, rs.handle));
                if (rs.pollin_armed) self.owe(uring.userData(.pollin, rs.handle));
            }
        }
        while (rs.rx_head != no_buffer) self.popBuffer(s);
        rs.starving = false;
        rs.dirty = false;
        self.feedStarvingIfFreed(loop);
    }
};
