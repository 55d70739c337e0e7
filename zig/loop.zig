//! The loop: sockets behind generation-checked handles, each a listener, a stream or a
//! datagram socket (listener.zig, stream.zig, datagram.zig own their state and calls), the
//! backend they are watched by (backends/), the poll that turns readiness into events, and
//! the park and wake.
//!
//! The loop never calls into JS. It reports, through `poll`, only what its caller asked
//! to hear about: a stream whose read returned EAGAIN (`want_read`) gets a READ event on
//! its next readiness; a stream whose write was not fully taken (`want_write`) gets a
//! WRITE event once its queue has drained; a listener whose accept ran dry gets an ACCEPT
//! event. Everything else the kernel reports is folded into the socket's state, so a
//! readiness edge that arrives while nobody is reading is not lost: the next read sees
//! the `readable` flag and reads at once, without waiting for an edge that already passed.
//!
//! All functions but `park` and `wake` belong to the thread that owns the loop.

const std = @import("std");
const builtin = @import("builtin");
const assert = std.debug.assert;
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const handles = @import("handles.zig");
const address = @import("address.zig");
const backend = @import("backends/poller.zig");
const Error = @import("errors.zig").Error;
const RingWake = if (sys.is_linux) @import("ring_wake.zig").RingWake else void;
const ring_streams = @import("backends/ring_streams.zig");
const RingStreams = ring_streams.RingStreams;
const Unavailable = ring_streams.Unavailable;
const listener = @import("listener.zig");
const stream = @import("stream.zig");
const datagram = @import("datagram.zig");
const Listener = listener.Listener;
const Stream = stream.Stream;
const Datagram = datagram.Datagram;

/// Which kernel interface the loop waits on (and streams receive through).
pub const Backend = enum(u32) {
    /// epoll on Linux, kqueue on macOS and FreeBSD.
    poll = 0,
    /// io_uring (Linux 6.0): streams receive through the ring (zig/backends/ring_streams.zig).
    io_uring = 1,
    /// Asked for, never run: the backend zev picks for this machine, with the reason
    /// kept when it is not io_uring (`Loop.fallback`).
    auto = 2,
};

/// Whether `auto` picks io_uring where the kernel allows it. Not while io_uring is not
/// level with epoll everywhere it is measured (docs/design/IO_URING.md): its bulk reads are
/// slower (one receive of 4 KiB at a time per stream).
const auto_picks_io_uring = false;

pub const listener_edge_single = listener.edge_single;

/// Event flags written by `poll` (abi_gen.zig writes them into ffi/abi.ts).
pub const Flag = struct {
    /// A stream that wanted to read can read now (data, end of stream or an error).
    pub const read: u32 = 1;
    /// A stream that wanted to write can go on: its queue drained, its connect finished,
    /// or it failed (the next call returns the error).
    pub const write: u32 = 2;
    /// A listener that wanted connections has some pending.
    pub const accept: u32 = 4;
    /// A listener was paused since the last poll (out of descriptors or memory, or the
    /// handle table full); `status` on it tells why. One notice per pause.
    pub const paused: u32 = 8;
};

/// Socket options of `listen` and `connect`, as a bit set (abi_gen.zig writes them into
/// ffi/abi.ts). Accepted connections inherit a listener's.
pub const Opt = struct {
    /// Keep Nagle's algorithm (zev turns it off, TCP_NODELAY, unless asked).
    pub const delay: u32 = 1;
    /// SO_KEEPALIVE: the kernel probes an idle connection and reports a dead peer.
    pub const keep_alive: u32 = 2;
    /// SO_REUSEPORT (listeners): several listeners share the port, the kernel spreads
    /// the connections (one loop per core).
    pub const reuse_port: u32 = 4;
    pub const all: u32 = delay | keep_alive | reuse_port;
    /// Unix listeners: a stale socket file in the way (no process listens on it) is
    /// replaced, instead of failing with `StaleSocket`.
    pub const replace_stale: u32 = 8;
};

/// What a handle names. A slot of the handle table is as large as the largest kind (a
/// stream); state only some sockets need is allocated apart (a Unix listener's path).
pub const Socket = union(enum) {
    listener: Listener,
    stream: Stream,
    datagram: Datagram,

    pub fn fd(s: *const Socket) sys.fd_t {
        return switch (s.*) {
            inline else => |*k| k.fd,
        };
    }
};

pub const Kind = std.meta.Tag(Socket);

/// Counters for the application and the tests (`zev_stats`); order is ABI.
pub const Stats = struct {
    accepted: u64 = 0,
    /// Connections that failed between the kernel's handshake and accept (ECONNABORTED,
    /// EPROTO, EPERM, ECONNRESET...): skipped, as the design requires.
    accept_skipped: u64 = 0,
    /// Times a listener was paused because descriptors or memory ran out.
    accept_paused: u64 = 0,
    /// Connections accepted and closed at once because the handle table was full or the
    /// kernel would not watch them (each also pauses the listener).
    accept_rejected: u64 = 0,
    polls: u64 = 0,
    events: u64 = 0,
    live_handles: u64 = 0,
    queued_bytes: u64 = 0,
    /// Parks found with work waiting and no wake on its way (`lookForStall`): a wake the
    /// kernel lost or delayed, which only a later event or a timer would have ended.
    stalls: u64 = 0,
};

pub const Loop = struct {
    allocator: std.mem.Allocator,
    poller: backend.Poller,
    sockets: handles.Table(Socket),
    events: [limits.max_events_per_poll]backend.Event = undefined,
    stats: Stats = .{},
    /// Paused listeners, linked through `next_paused`: found without scanning the table,
    /// and as many as there are listeners.
    paused_head: u32 = 0,
    /// Listeners with a pause not yet told, linked through `notice_next`.
    notices_head: u32 = 0,
    /// Earliest resume time of a paused listener; read by `park` on another thread.
    resume_due_ns: std.atomic.Value(i64) = .init(listener.no_deadline),
    /// `zev_park` calls waiting on this loop's descriptor, on other threads: closing the
    /// loop or changing its backend wakes them and waits for them to leave first.
    parks: std.atomic.Value(u32) = .init(0),
    /// Tests only: how many of the next watches of a new stream fail (as epoll's watch limit).
    test_fail_watch: if (builtin.is_test) u32 else void = if (builtin.is_test) 0 else {},
    /// Tests only: how many of the next cancels of a closing stream's operations fail.
    test_fail_cancel: if (builtin.is_test) u32 else void = if (builtin.is_test) 0 else {},
    /// Tests only: how many of the next re-arms of a resumed listener fail.
    test_fail_arm: if (builtin.is_test) u32 else void = if (builtin.is_test) 0 else {},
    /// The kernel-delivered wake (Linux with io_uring), made when the loop opens, or the
    /// reason there is none.
    ring_wake: if (sys.is_linux) Error!RingWake else Error!void = error.Unsupported,
    /// The io_uring backend, or null on the poll backend: the one place the loop forks.
    uring: ?*RingStreams = null,
    /// Why the loop runs on the poll backend although io_uring was asked for (`auto`).
    fallback: Unavailable = .none,
    /// `stats.polls` when the last stall was counted: one count per park.
    stall_polls: u64 = std.math.maxInt(u64),
    /// Why the last TLS call on this loop failed (OpenSSL's reason), for its error message.
    tls_detail: [256]u8 = undefined,
    tls_detail_len: usize = 0,

    pub fn create(allocator: std.mem.Allocator, max_handles: u32, kind: Backend) Error!*Loop {
        const self = allocator.create(Loop) catch return error.NoMemory;
        errdefer allocator.destroy(self);
        var sockets = try handles.Table(Socket).init(allocator, max_handles);
        errdefer sockets.deinit(allocator);
        self.* = .{ .allocator = allocator, .poller = try backend.Poller.init(), .sockets = sockets };
        errdefer self.poller.deinit();
        try self.startBackend(kind);
        if (sys.is_linux) self.ring_wake = RingWake.init();
        return self;
    }

    /// Starts the ring for `io_uring` (and for `auto` if it picks io_uring, where the
    /// kernel allows it; else notes why not); nothing for the poll backend, whose epoll
    /// set every loop has.
    fn startBackend(self: *Loop, kind: Backend) Error!void {
        self.fallback = .none;
        if (kind == .poll) return;
        if (kind == .auto and !auto_picks_io_uring) {
            self.fallback = .not_level;
            return;
        }
        var why: Unavailable = .missing;
        if (!sys.is_linux) {
            if (kind == .io_uring) return error.Unsupported;
            self.fallback = why;
            return;
        }
        self.uring = RingStreams.init(self.allocator, self.poller.epfd, self.sockets.capacity(), &why) catch |err| {
            if (kind == .io_uring) return err;
            self.fallback = why;
            return;
        };
    }

    /// Sets up a ring as the backend would, and closes it: why it would fail, or `none`.
    pub fn probeRing() Unavailable {
        if (!sys.is_linux) return .missing;
        var poller = backend.Poller.init() catch return .resources;
        defer poller.deinit();
        var why: Unavailable = .none;
        const ring = ring_streams.Ring.init(std.heap.page_allocator, poller.epfd, &why) catch return why;
        ring.deinit(std.heap.page_allocator);
        return .none;
    }

    fn stopRing(self: *Loop) void {
        const r = self.ringStreams() orelse return;
        r.deinit(self.allocator);
        self.uring = null;
    }

    /// The io_uring backend, if the loop runs on it (never, where there is none: then the
    /// branches that use it are not compiled).
    pub inline fn ringStreams(self: *const Loop) ?*RingStreams {
        if (!sys.is_linux) return null;
        return self.uring;
    }

    /// Moves an empty loop to another backend (`configure({ backend })` before the first
    /// socket). A park under way on the old backend is woken first, so none waits on a
    /// descriptor that is gone. `InvalidArgument` while any handle is open.
    pub fn switchBackend(self: *Loop, kind: Backend) Error!void {
        if (self.sockets.live != 0) return error.InvalidArgument;
        if (kind == self.backendKind() or (kind == .auto and self.uring != null and auto_picks_io_uring)) {
            if (kind == .poll) self.fallback = .none; // asked for by name now
            return;
        }
        // A park under way on the old descriptor (a thread's, or the kernel's wake armed
        // on it) ends now: it fires, and the next park arms on the new one. A thread's
        // park has left before its descriptor closes (new ones wait for the registry lock,
        // which the caller holds).
        self.wake();
        self.waitForParks();
        self.stopRing();
        // Only a move to io_uring can fail, and it starts from the poll backend (the
        // epoll set every loop keeps), which then stays.
        try self.startBackend(kind);
    }

    /// The backend this loop runs on.
    pub fn backendKind(self: *const Loop) Backend {
        return if (self.uring != null) .io_uring else .poll;
    }

    /// Closes every handle still open, then the loop.
    pub fn destroy(self: *Loop) void {
        // Nobody can start a park any more (the loop is out of the registry): wake those
        // under way, so that none waits forever on a descriptor about to be closed.
        self.waitForParks();
        var i: u32 = 0;
        while (i < self.sockets.capacity()) : (i += 1) {
            if (self.sockets.liveHandle(i)) |h| self.close(h, false) catch unreachable;
        }
        if (sys.is_linux) {
            if (self.ring_wake) |*w| w.deinit() else |_| {}
        }
        self.stopRing();
        self.poller.deinit();
        self.sockets.deinit(self.allocator);
        const allocator = self.allocator;
        allocator.destroy(self);
    }

    /// The socket of kind `kind` behind `h`: `BadHandle` if stale or forged, `WrongKind`
    /// if it is another kind.
    pub fn get(self: *Loop, h: u32, comptime kind: Kind) Error!*@FieldType(Socket, @tagName(kind)) {
        const s = self.sockets.get(h) orelse return error.BadHandle;
        if (s.* != kind) return error.WrongKind;
        return &@field(s, @tagName(kind));
    }

    /// A listener on one of the loop's lists (which hold live listeners only).
    pub fn listenerAt(self: *Loop, h: u32) *Listener {
        return &self.sockets.get(h).?.listener;
    }

    /// The stream behind `h`, or null if it closed since (lists of streams keep stale
    /// handles until they are walked).
    pub fn streamAt(self: *Loop, h: u32) ?*Stream {
        const s = self.sockets.get(h) orelse return null;
        return if (s.* == .stream) &s.stream else null;
    }

    /// Tests only: whether the fault counted in `field` (a `test_fail_*`) happens now; it
    /// is then counted down. Always false outside tests.
    pub fn injected(self: *Loop, comptime field: []const u8) bool {
        if (builtin.is_test) {
            if (@field(self, field) == 0) return false;
            @field(self, field) -= 1;
            return true;
        }
        return false;
    }

    // ---- the calls, by kind (each file owns its kind's state) ------------------------

    pub const listen = listener.listen;
    pub const listenUnix = listener.listenUnix;
    pub const accept = listener.accept;
    pub const pausesUntold = listener.pausesUntold;
    pub const connect = stream.connect;
    pub const connectUnix = stream.connectUnix;
    pub const read = stream.read;
    pub const write = stream.write;
    pub const flush = stream.flush;
    pub const setQueueLimit = stream.setQueueLimit;
    pub const shutdown = stream.shutdown;
    pub const listenDatagram = datagram.listen;
    pub const recvFrom = datagram.recvFrom;
    pub const sendTo = datagram.sendTo;

    /// A stream: 0 when connected and healthy, `WouldBlock` while connecting, or the error
    /// that ended it. A listener: why it was last paused (once), or 0.
    pub fn status(self: *Loop, h: u32) Error!void {
        const s = self.sockets.get(h) orelse return error.BadHandle;
        switch (s.*) {
            .listener => if (try listener.pauseReason(self, h)) |reason| return reason,
            .stream => |*st| return stream.status(st),
            .datagram => return error.WrongKind,
        }
    }

    /// Closes a handle at once. Queued bytes are dropped: a caller that wants them sent
    /// waits for `flush` to reach 0 first (src/net/stream.ts does). `reset` sends RST
    /// instead of FIN.
    pub fn close(self: *Loop, h: u32, reset: bool) Error!void {
        const s = self.sockets.get(h) orelse return error.BadHandle;
        switch (s.*) {
            .listener => |*l| listener.forget(self, h, l),
            .stream => |*st| stream.forget(self, st, reset),
            .datagram => {},
        }
        sys.close(s.fd());
        self.sockets.remove(h);
        // A descriptor came free: a listener paused for EMFILE can accept again now.
        if (self.paused_head != 0) listener.resumeDue(self, std.math.maxInt(i64));
    }

    pub fn addressOf(self: *Loop, h: u32, peer: bool, out: *[address.abi_len]u8) Error!void {
        const s = self.sockets.get(h) orelse return error.BadHandle;
        if (peer) {
            if (s.* != .stream) return error.WrongKind;
            out.* = s.stream.peer;
            return;
        }
        var storage: std.posix.sockaddr.storage = undefined;
        try sys.sockName(s.fd(), &storage, peer);
        try address.write(&storage, out);
    }

    // ---- the poll ----------------------------------------------------------------

    /// Waits up to `timeout_ms` (0: not at all) and writes (handle, flags) pairs into
    /// `out`, at most `out.len / 2` of them. Returns the number of pairs.
    pub fn poll(self: *Loop, out: []u32, timeout_ms: i32) Error!usize {
        self.stats.polls += 1;
        if (self.paused_head != 0) listener.resumeDue(self, sys.monotonicNs());
        const cap = @min(out.len / 2, self.events.len);
        if (cap == 0) return error.InvalidArgument;
        const timeout = clampTimeout(timeout_ms, self.resume_due_ns.load(.acquire));
        if (self.ringStreams()) |r| return r.poll(self, out[0 .. @as(usize, cap) * 2], timeout);
        const n = try self.poller.wait(self.events[0..cap], timeout);
        const count = self.readinessEvents(out, 0, n);
        return listener.notices(self, out, count);
    }

    /// Turns `n` readiness events (in `self.events`) into (handle, flags) pairs in `out`,
    /// after the `start` pairs already there.
    pub fn readinessEvents(self: *Loop, out: []u32, start: usize, n: usize) usize {
        self.stats.events += n;
        var count: usize = start;
        for (self.events[0..n]) |ev| {
            const s = self.sockets.get(ev.token) orelse continue;
            const flags = switch (s.*) {
                .listener => |*l| listener.onReady(self, ev.token, l),
                .stream => |*st| stream.onReady(self, st, ev),
                .datagram => |*d| datagram.onReady(d, ev),
            };
            if (flags == 0) continue;
            out[2 * count] = ev.token;
            out[2 * count + 1] = flags;
            count += 1;
        }
        return count;
    }

    // ---- the park and the wake ---------------------------------------------------

    /// Blocks the calling thread (never the JS thread) until the loop has events, the
    /// timeout passes, a paused listener is due, or `wake` is called. It takes no events:
    /// the owner's next `poll` does.
    pub fn park(self: *const Loop, timeout_ms: i32) Error!bool {
        return sys.pollReadable(self.parkFd(), self.parkTimeout(timeout_ms));
    }

    /// What a park waits on: the epoll set, or the io_uring backend's eventfd.
    pub fn parkFd(self: *const Loop) sys.fd_t {
        if (self.ringStreams()) |r| return r.ring.efd;
        return self.poller.parkFd();
    }

    /// Wakes the `zev_park` calls under way and waits until they have left. (Woken again
    /// each millisecond: a wake is not a park's alone to take.) Without one, no wake at
    /// all: a loop closing with the kernel's wake armed sends the runtime no stray byte.
    fn waitForParks(self: *Loop) void {
        var waited: u32 = 0;
        while (self.parks.load(.acquire) != 0) : (waited += 1) {
            if (waited % 20 == 0) self.wake();
            std.Thread.sleep(50 * std.time.ns_per_us);
        }
    }

    /// `timeout_ms`, shortened so that a park ends when a paused listener is due.
    pub fn parkTimeout(self: *const Loop, timeout_ms: i32) i32 {
        return clampTimeout(timeout_ms, self.resume_due_ns.load(.acquire));
    }

    /// The descriptor the runtime adopts for the kernel-delivered wake; the caller owns it
    /// from now on. `Unsupported` (or the resource error) when there is no such wake.
    pub fn takeWakeFd(self: *Loop) Error!sys.fd_t {
        if (!sys.is_linux) return error.Unsupported;
        const w = try self.wakeRing();
        if (w.rx_taken) return error.InvalidArgument;
        w.rx_taken = true;
        return w.rx;
    }

    /// `poll` with timeout 0, and when it finds nothing, parks with the kernel-delivered
    /// wake (if the runtime took it): the driver's last poll of a busy spell and its park
    /// in one call.
    pub fn pollPark(self: *Loop, out: []u32) Error!usize {
        const n = try self.poll(out, 0);
        if (n == 0 and sys.is_linux) {
            if (self.ring_wake) |*w| {
                if (w.rx_taken) try w.arm(self.parkFd(), self.uring != null);
            } else |_| {}
        }
        return n;
    }

    /// Parks with the kernel-delivered wake: one byte arrives on the wake descriptor at the
    /// loop's next event, or at once if it has one now.
    pub fn armWake(self: *Loop) Error!void {
        if (!sys.is_linux) return error.Unsupported;
        const w = try self.wakeRing();
        if (self.uring) |r| {
            // The loop ran since its last poll, with completions signalling nothing.
            if (try r.ring.preparePark(false)) r.ring.signal();
        }
        try w.arm(self.parkFd(), self.uring != null);
    }

    /// The kernel's wake, armed on the ring's eventfd, drains it as it fires, so a park
    /// need not (a thread's park, which only polls the eventfd, needs the drain).
    pub fn wakeDrains(self: *Loop) bool {
        if (!sys.is_linux or self.uring == null) return false;
        const w = self.wakeRing() catch return false;
        return w.rx_taken;
    }

    /// Counts a stall if the loop is parked with work waiting that no wake is on its way
    /// for. Seen without timing: the kernel runs the loop's io_uring work on this thread,
    /// on its way back from a system call, and that work signals the park; so after one
    /// system call, work seen waiting before it has its wake sent, or never will on time.
    /// Where a thread parks on the epoll set itself (epoll, no kernel wake), waiting work
    /// is the wake, and there is nothing to look at.
    pub fn lookForStall(self: *Loop) void {
        if (!sys.is_linux) return;
        if (self.stall_polls == self.stats.polls) return;
        const w: ?*RingWake = if (self.ring_wake) |*w| (if (w.rx_taken) w else null) else |_| null;
        const wake_armed = if (w) |x| x.waiting() else false;
        const signalling = if (self.uring) |r| r.ring.signalling() else false;
        if (!wake_armed and !signalling) return; // running, or nothing to look at
        var waiting = if (self.uring) |r| r.ring.waiting() else false;
        // The system call, after the look at the ring.
        if (sys.pollReadable(self.poller.epfd, 0) catch false) waiting = true;
        if (!waiting) return;
        if (sys.pollReadable(self.parkFd(), 0) catch true) return; // the wake is there
        if (w != null and !w.?.waiting()) return; // the kernel's wake fired
        self.stall_polls = self.stats.polls;
        self.stats.stalls += 1;
    }

    fn wakeRing(self: *Loop) Error!*RingWake {
        if (self.ring_wake) |*w| return w else |err| return err;
    }

    pub fn wake(self: *const Loop) void {
        if (self.ringStreams()) |r| return r.ring.signal();
        self.poller.wake();
    }

    /// Checks the invariants of the loop's state machine (tests call it after every
    /// step of a random sequence; every function keeps them):
    /// - a listener is paused exactly when it is in the paused list, and then disarmed;
    /// - a listener has a notice pending exactly when it is in the notices list, and a
    ///   notice stands for at least one untold pause;
    /// - the queued-bytes counter is the sum of the streams' queues, each within its limit;
    /// - a stream shut down has nothing queued, and one still connecting has nothing queued.
    pub fn checkInvariants(self: *Loop) void {
        var in_paused: u32 = 0;
        var lh = self.paused_head;
        while (lh != 0) : (lh = self.listenerAt(lh).next_paused) {
            assert(self.sockets.get(lh).?.* == .listener);
            const l = self.listenerAt(lh);
            assert(l.paused and !l.armed);
            in_paused += 1;
        }
        var in_notices: u32 = 0;
        lh = self.notices_head;
        while (lh != 0) : (lh = self.listenerAt(lh).notice_next) {
            assert(self.sockets.get(lh).?.* == .listener);
            assert(self.listenerAt(lh).notice_pending);
            in_notices += 1;
        }
        var paused: u32 = 0;
        var noticed: u32 = 0;
        var queued: u64 = 0;
        var i: u32 = 0;
        while (i < self.sockets.capacity()) : (i += 1) {
            const h = self.sockets.liveHandle(i) orelse continue;
            switch (self.sockets.get(h).?.*) {
                .listener => |*l| {
                    paused += @intFromBool(l.paused);
                    noticed += @intFromBool(l.notice_pending);
                    if (l.notice_pending) assert(l.pauses_untold > 0);
                },
                .stream => |*s| {
                    queued += s.queue.len();
                    assert(s.queue.len() <= s.queue_limit);
                    if (s.shut_done or s.connecting) assert(s.queue.isEmpty());
                },
                .datagram => {},
            }
        }
        assert(paused == in_paused);
        assert(noticed == in_notices);
        assert(queued == self.stats.queued_bytes);
    }

    pub fn snapshot(self: *Loop) Stats {
        var st = self.stats;
        st.live_handles = self.sockets.live;
        return st;
    }
};

/// Shortens a timeout so that the wait ends when a paused listener is due.
fn clampTimeout(timeout_ms: i32, due_ns: i64) i32 {
    if (due_ns == listener.no_deadline) return timeout_ms;
    const left_ns = due_ns - sys.monotonicNs();
    const left_ms: i32 = if (left_ns <= 0) 0 else @intCast(@min(@divTrunc(left_ns + std.time.ns_per_ms - 1, std.time.ns_per_ms), std.math.maxInt(i32)));
    return if (timeout_ms < 0) left_ms else @min(timeout_ms, left_ms);
}
