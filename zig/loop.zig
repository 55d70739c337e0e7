//! The reactor: sockets behind generation-checked handles, readiness kept per socket,
//! bounded accept batches, drained reads and writes, and a bounded write queue.
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
const build_options = @import("build_options");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const handles = @import("handles.zig");
const address = @import("address.zig");
const backend = @import("backend.zig");
const errors = @import("errors.zig");
const Error = errors.Error;
const WriteQueue = @import("write_queue.zig").WriteQueue;
const RingWake = if (sys.is_linux) @import("ring_wake.zig").RingWake else void;
const uring = if (sys.is_linux) @import("io_uring.zig") else struct {
    pub const Ring = opaque {};
    pub const Unavailable = enum(u32) { none = 0, missing = 1, not_level = 7 };
};
const Cqe = if (sys.is_linux) std.os.linux.io_uring_cqe else void;

/// Which kernel interface the loop waits on (and streams receive through).
pub const Backend = enum(u32) {
    /// epoll on Linux, kqueue on macOS and FreeBSD.
    poll = 0,
    /// io_uring (Linux 6.0): streams receive through the ring (zig/io_uring.zig).
    io_uring = 1,
    /// Asked for, never run: the backend zev picks for this machine, with the reason
    /// kept when it is not io_uring (`Loop.fallback`).
    auto = 2,
};

/// Whether `auto` picks io_uring where the kernel allows it. Not while io_uring is not
/// level with epoll everywhere it is measured (docs/design/IO_URING.md): its bulk reads are
/// slower (one receive of 4 KiB at a time per stream).
const auto_picks_io_uring = false;

/// The end of a stream's list of received buffers (io_uring).
const no_buffer: u16 = std.math.maxInt(u16);

/// Janet 1.32's listener behaviour (edge-triggered, one accept per event), compiled in
/// only to prove that the burst tests catch it. Never set it in a real build.
pub const listener_edge_single = std.mem.eql(u8, build_options.listener_mode, "edge-single");

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

/// Socket options of `listen` and `connect`, as a bit set (the ABI mirrors them in
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

const no_deadline: i64 = std.math.maxInt(i64);

const UnixFile = struct {
    path: [:0]u8,
    /// What the path named when the listener bound it.
    id: sys.FileId,
};

const Socket = struct {
    fd: sys.fd_t,
    kind: enum(u8) { listener, stream, datagram },

    // Streams.
    connecting: bool = false,
    readable: bool = false,
    writable: bool = false,
    /// The peer closed its side, or the socket has an error pending: reads no longer block.
    hup: bool = false,
    want_read: bool = false,
    want_write: bool = false,
    /// closeWrite was asked while bytes were queued: shut down once they are sent.
    shut_pending: bool = false,
    shut_done: bool = false,
    /// The error that ended the write side (a failed send), returned by later writes.
    failed: ?Error = null,
    /// The peer reset the connection (a read or a send said so): the end of stream a read
    /// then finds is that reset, not the peer's orderly close. (The kernel tells a reset
    /// once, to whichever call comes first.)
    reset: bool = false,
    queue: WriteQueue = .{},
    queue_limit: u32 = limits.default_write_queue_bytes,

    // Listeners.
    want_accept: bool = false,
    /// Registered with interest (not paused by the loop).
    armed: bool = true,
    /// edge-single only: an edge arrived and has not been consumed by an accept.
    acceptable: bool = false,
    paused: bool = false,
    resume_at_ns: i64 = 0,
    backoff_ms: u32 = 0,
    /// The next paused listener (a handle; 0 ends the list).
    next_paused: u32 = 0,
    /// Why the listener was last paused, not yet told through a `paused` flag (then
    /// `notice_next` links it into the loop's list of notices).
    pause_reason: ?Error = null,
    /// Pauses since the caller was last told (`pausesUntold`).
    pauses_untold: u32 = 0,
    notice_pending: bool = false,
    notice_next: u32 = 0,
    /// A Unix listener's socket file, removed when it closes if it is still this one
    /// (allocated apart: every slot of the handle table pays for a field here).
    unix: ?*UnixFile = null,
    /// The peer's address (ABI layout), kept from accept or connect: after a reset the
    /// kernel no longer tells it, and error messages still name it.
    peer: [address.abi_len]u8 = @splat(0),

    // Streams on the io_uring backend.
    /// This socket's handle: the token of its operations in the ring.
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

    /// A read found nothing (EAGAIN): not readable until the next edge, which the
    /// caller wants reported as a READ event.
    fn drained(s: *Socket) void {
        s.readable = false;
        s.want_read = true;
    }

    /// What a failed read or send reports, noting what it says of the connection (see
    /// `reset`): once reset, a send the kernel fails with EPIPE is that reset too.
    fn failure(s: *Socket, err: Error) Error {
        if (err == error.ConnectionReset) s.reset = true;
        return if (s.reset and err == error.BrokenPipe) error.ConnectionReset else err;
    }

    /// What a read that finds the end of stream returns: 0, or the reset it was.
    fn endOfStream(s: *const Socket) Error!usize {
        return if (s.reset) error.ConnectionReset else 0;
    }
};

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
    resume_due_ns: std.atomic.Value(i64) = .init(no_deadline),
    /// `zev_park` calls waiting on this loop's descriptor, on other threads: closing the
    /// loop or changing its backend wakes them and waits for them to leave first.
    parks: std.atomic.Value(u32) = .init(0),
    /// Tests only: how many of the next `watchStream` calls fail (as epoll's watch limit).
    test_fail_watch: if (builtin.is_test) u32 else void = if (builtin.is_test) 0 else {},
    /// Tests only: how many of the next cancels of a closing stream's operations fail.
    test_fail_cancel: if (builtin.is_test) u32 else void = if (builtin.is_test) 0 else {},
    /// Tests only: how many times the dirty list moved down (it filled behind its head).
    test_moved_down: if (builtin.is_test) u32 else void = if (builtin.is_test) 0 else {},
    /// Tests only: how many of the next re-arms of a resumed listener fail.
    test_fail_arm: if (builtin.is_test) u32 else void = if (builtin.is_test) 0 else {},
    /// The kernel-delivered wake (Linux with io_uring), made when the loop opens, or the
    /// reason there is none.
    ring_wake: if (sys.is_linux) Error!RingWake else Error!void = error.Unsupported,
    /// The io_uring backend's ring, or null on the poll backend.
    ring: ?*uring.Ring = null,
    /// io_uring: streams whose state changed since the last poll, and streams waiting for
    /// buffers (handles; stale ones are skipped). Each stream is on each list at most once.
    dirty: []u32 = &.{},
    dirty_len: usize = 0,
    /// Where the next poll resumes in `dirty` when the last one left streams over (so
    /// that a poll costs what it takes, not what is left).
    dirty_head: usize = 0,
    starving: []u32 = &.{},
    starving_len: usize = 0,
    /// io_uring: cancels a closed stream's operations still need (the ring took none when
    /// it closed), by user data: asked at the next poll, so that the kernel lets the
    /// socket go (and sends its FIN). Three per handle at most.
    owed: []u64 = &.{},
    owed_len: usize = 0,
    /// Buffers went back to the kernel since starving streams last asked for more.
    buffers_returned: bool = false,
    cqes: [limits.max_events_per_poll]Cqe = undefined,
    /// Why the loop runs on the poll backend although io_uring was asked for (`auto`).
    fallback: uring.Unavailable = .none,
    /// `stats.polls` when the last stall was counted: one count per park.
    stall_polls: u64 = std.math.maxInt(u64),

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
        var why: uring.Unavailable = .missing;
        self.startRing(&why) catch |err| {
            if (kind == .io_uring) return err;
            self.fallback = why;
        };
    }

    /// Sets up a ring as the backend would, and closes it: why it would fail, or `none`.
    pub fn probeRing() uring.Unavailable {
        if (!sys.is_linux) return .missing;
        var poller = backend.Poller.init() catch return .resources;
        defer poller.deinit();
        var why: uring.Unavailable = .none;
        const ring = uring.Ring.init(std.heap.page_allocator, poller.epfd, &why) catch return why;
        ring.deinit(std.heap.page_allocator);
        return .none;
    }

    fn startRing(self: *Loop, why: *uring.Unavailable) Error!void {
        if (!sys.is_linux) return error.Unsupported;
        const ring = try uring.Ring.init(self.allocator, self.poller.epfd, why);
        errdefer ring.deinit(self.allocator);
        const cap = self.sockets.capacity();
        self.dirty = self.allocator.alloc(u32, cap) catch return error.NoMemory;
        errdefer self.allocator.free(self.dirty);
        self.starving = self.allocator.alloc(u32, cap) catch return error.NoMemory;
        errdefer self.allocator.free(self.starving);
        self.owed = self.allocator.alloc(u64, 3 * cap) catch return error.NoMemory;
        self.owed_len = 0;
        self.dirty_len = 0;
        self.dirty_head = 0;
        self.starving_len = 0;
        self.buffers_returned = false;
        self.ring = ring;
    }

    fn stopRing(self: *Loop) void {
        if (!sys.is_linux) return;
        const r = self.ring orelse return;
        r.deinit(self.allocator);
        self.allocator.free(self.dirty);
        self.allocator.free(self.starving);
        self.allocator.free(self.owed);
        self.dirty = &.{};
        self.starving = &.{};
        self.owed = &.{};
        self.ring = null;
    }

    /// Moves an empty loop to another backend (`configure({ backend })` before the first
    /// socket). A park under way on the old backend is woken first, so none waits on a
    /// descriptor that is gone. `InvalidArgument` while any handle is open.
    pub fn switchBackend(self: *Loop, kind: Backend) Error!void {
        if (self.sockets.live != 0) return error.InvalidArgument;
        if (kind == self.backendKind() or (kind == .auto and self.ring != null and auto_picks_io_uring)) {
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
        return if (self.ring != null) .io_uring else .poll;
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

    fn get(self: *Loop, h: u32, kind: @FieldType(Socket, "kind")) Error!*Socket {
        const s = self.sockets.get(h) orelse return error.BadHandle;
        if (s.kind != kind) return error.WrongKind;
        return s;
    }

    // ---- listeners ---------------------------------------------------------------

    pub fn listen(self: *Loop, host: []const u8, port: u32, backlog: u32, opts: u32) Error!u32 {
        if (opts & ~Opt.all != 0) return error.InvalidArgument;
        const addr = try address.parse(host, port);
        const fd = try sys.socket(address.family(&addr));
        errdefer sys.close(fd);
        const posix = std.posix;
        try sys.setInt(fd, posix.SOL.SOCKET, posix.SO.REUSEADDR, 1);
        if (opts & Opt.reuse_port != 0) try sys.setInt(fd, posix.SOL.SOCKET, posix.SO.REUSEPORT, 1);
        // Accepted sockets inherit these from the listener: one call, not one per accept.
        try setStreamOptions(fd, opts);
        try sys.bind(fd, &addr.any, addr.getOsSockLen());
        try sys.listen(fd, backlogOf(backlog));
        const h = try self.sockets.insert(.{ .fd = fd, .kind = .listener });
        errdefer self.sockets.remove(h);
        try self.poller.addListener(fd, h, listener_edge_single);
        return h;
    }

    /// Listens on a Unix socket at `path`. A socket file already there that no process
    /// listens on (left by one that died) is `StaleSocket`, or is replaced if `opts` has
    /// `Opt.replace_stale`; a live listener or any other file there is `AddressInUse`.
    /// The file is removed when the listener closes, if it is still this listener's.
    pub fn listenUnix(self: *Loop, path: []const u8, backlog: u32, opts: u32) Error!u32 {
        if (opts & ~Opt.replace_stale != 0) return error.InvalidArgument;
        const addr = try address.parseUnix(path);
        const unix = self.allocator.create(UnixFile) catch return error.NoMemory;
        errdefer self.allocator.destroy(unix);
        const path_z = self.allocator.dupeZ(u8, path) catch return error.NoMemory;
        errdefer self.allocator.free(path_z);
        const fd = try sys.socket(std.posix.AF.UNIX);
        errdefer sys.close(fd);
        sys.bind(fd, &addr.any, addr.getOsSockLen()) catch |err| {
            if (err != error.AddressInUse or !try isStale(path_z)) return err;
            if (opts & Opt.replace_stale == 0) return error.StaleSocket;
            sys.unlink(path_z) catch |e| if (e != error.NotFound) return e;
            try sys.bind(fd, &addr.any, addr.getOsSockLen());
        };
        // The file is ours from here on: a failure below removes it.
        errdefer sys.unlink(path_z) catch {};
        unix.* = .{ .path = path_z, .id = (try sys.socketFileAt(path_z)) orelse return error.Unexpected };
        try sys.listen(fd, backlogOf(backlog));
        const h = try self.sockets.insert(.{ .fd = fd, .kind = .listener, .unix = unix });
        errdefer self.sockets.remove(h);
        try self.poller.addListener(fd, h, listener_edge_single);
        return h;
    }

    /// Accepts up to `out.len` (at most `accept_batch`) connections and writes their
    /// handles to `out`. Returns how many; `WouldBlock` when none is pending, after which
    /// an ACCEPT event tells when to call again.
    pub fn accept(self: *Loop, lh: u32, out: []u32) Error!usize {
        const l = try self.get(lh, .listener);
        if (out.len == 0) return error.InvalidArgument;
        // The caller accepts: report the next readiness. (A listener whose ACCEPT event
        // goes unanswered is disarmed by the next poll instead; see onListener.)
        l.want_accept = true;
        if (l.paused) return error.WouldBlock;
        var max: usize = @min(out.len, limits.accept_batch);
        if (listener_edge_single) {
            // Janet 1.32: one accept per readiness edge, then wait for the next edge.
            if (!l.acceptable) return error.WouldBlock;
            l.acceptable = false;
            max = 1;
        }
        var count: usize = 0;
        var attempts: usize = 0;
        while (attempts < max) : (attempts += 1) {
            var peer: std.posix.sockaddr.storage = undefined;
            const fd = sys.accept(l.fd, &peer) catch |err| switch (err) {
                error.WouldBlock => break,
                // The connection died between the handshake and accept, or the network
                // failed it (accept(2): treat these like EAGAIN): skip it, take the next.
                error.ConnectionReset, error.PermissionDenied, error.Unreachable, error.NetworkError => {
                    self.stats.accept_skipped += 1;
                    continue;
                },
                error.TooManyOpenFiles, error.NoMemory => {
                    self.pause(lh, l, err);
                    if (count == 0) return err;
                    break;
                },
                else => {
                    if (count == 0) return err;
                    break;
                },
            };
            const h = self.sockets.insert(.{ .fd = fd, .kind = .stream, .readable = true, .writable = true }) catch {
                // The table is full: the connection cannot be served, so close it rather
                // than leave it in the backlog, and back off like for EMFILE.
                sys.close(fd);
                self.stats.accept_rejected += 1;
                self.pause(lh, l, error.Limit);
                break;
            };
            const s = self.sockets.get(h).?;
            address.write(&peer, &s.peer) catch {};
            self.watchStream(s, h) catch |err| {
                // The kernel would not watch it (epoll's watch limit, no memory, no ring
                // slot): this connection is lost, and the next would be too while that
                // lasts, so count it and back off as for EMFILE: the rest wait in the
                // backlog, and the pause notice tells the caller why.
                self.sockets.remove(h);
                sys.close(fd);
                self.stats.accept_rejected += 1;
                self.pause(lh, l, err);
                break;
            };
            out[count] = h;
            count += 1;
        }
        self.stats.accepted += count;
        if (count > 0) l.backoff_ms = 0;
        if (!l.armed and !l.paused) {
            try self.poller.armListener(l.fd, lh, listener_edge_single, true);
            l.armed = true;
        }
        if (count == 0) return error.WouldBlock;
        return count;
    }

    /// Stops polling a listener that cannot accept (no descriptors), so that level
    /// triggering does not spin, and schedules a retry with a doubling backoff. The next
    /// poll tells the caller (`Flag.paused`), once per pause.
    pub fn pause(self: *Loop, lh: u32, l: *Socket, reason: Error) void {
        self.stats.accept_paused += 1;
        l.pause_reason = reason;
        l.pauses_untold +|= 1;
        if (!l.notice_pending) {
            l.notice_pending = true;
            l.notice_next = self.notices_head;
            self.notices_head = lh;
        }
        if (l.paused) return;
        l.backoff_ms = if (l.backoff_ms == 0) limits.accept_backoff_first_ms else @min(l.backoff_ms * 2, limits.accept_backoff_max_ms);
        l.resume_at_ns = sys.monotonicNs() + @as(i64, l.backoff_ms) * std.time.ns_per_ms;
        // If disarming fails the listener stays armed: the next poll reports it, and the
        // caller's accept pauses it again. Nothing is lost either way.
        if (l.armed) self.poller.armListener(l.fd, lh, listener_edge_single, false) catch {};
        l.armed = false;
        l.paused = true;
        l.next_paused = self.paused_head;
        self.paused_head = lh;
        self.updateResumeDue();
    }

    /// Resumes paused listeners that are due (all of them when `now` is maxInt).
    fn resumeDue(self: *Loop, now: i64) void {
        var prev: ?*Socket = null;
        var lh = self.paused_head;
        while (lh != 0) {
            const l = self.sockets.get(lh).?;
            const next = l.next_paused;
            if (l.resume_at_ns > now) {
                prev = l;
            } else {
                if (prev) |p| p.next_paused = next else self.paused_head = next;
                l.paused = false;
                l.next_paused = 0;
                if (self.armResumed(l, lh)) |_| {
                    l.armed = true;
                } else |err| {
                    // Neither armed nor paused, it would wait for an accept() that a
                    // caller waiting for its ACCEPT event never makes: pause it again,
                    // with the reason (unless it is closing).
                    if (now != std.math.minInt(i64)) {
                        self.pause(lh, l, err);
                        // `pause` put it back at the head, before `next`: the walk goes
                        // on from it, so that unlinking `next` keeps it linked.
                        if (prev == null) prev = l;
                    }
                }
            }
            lh = next;
        }
        self.updateResumeDue();
    }

    /// Tests only: whether the fault counted in `field` (a `test_fail_*`) happens now; it
    /// is then counted down. Always false outside tests.
    fn injected(self: *Loop, comptime field: []const u8) bool {
        if (builtin.is_test) {
            if (@field(self, field) == 0) return false;
            @field(self, field) -= 1;
            return true;
        }
        return false;
    }

    fn armResumed(self: *Loop, l: *Socket, lh: u32) Error!void {
        if (self.injected("test_fail_arm")) return error.NoMemory;
        try self.poller.armListener(l.fd, lh, listener_edge_single, true);
    }

    /// Takes a listener out of the paused and notice lists (it is closing).
    fn unlinkListener(self: *Loop, lh: u32, l: *Socket) void {
        if (l.paused) {
            l.resume_at_ns = std.math.minInt(i64);
            self.resumeDue(std.math.minInt(i64));
        }
        if (l.notice_pending) {
            var link = &self.notices_head;
            while (link.* != lh) link = &self.sockets.get(link.*).?.notice_next;
            link.* = l.notice_next;
            l.notice_pending = false;
        }
    }

    fn updateResumeDue(self: *Loop) void {
        var due: i64 = no_deadline;
        var lh = self.paused_head;
        while (lh != 0) {
            const l = self.sockets.get(lh).?;
            due = @min(due, l.resume_at_ns);
            lh = l.next_paused;
        }
        self.resume_due_ns.store(due, .release);
    }

    /// Why a listener was last paused (and forgets it), or null.
    pub fn pauseReason(self: *Loop, lh: u32) Error!?Error {
        const l = try self.get(lh, .listener);
        defer l.pause_reason = null;
        return l.pause_reason;
    }

    /// How many times a listener was paused since the last call (a `paused` notice may
    /// stand for several).
    pub fn pausesUntold(self: *Loop, lh: u32) Error!u32 {
        const l = try self.get(lh, .listener);
        defer l.pauses_untold = 0;
        // (Told as an i32 through the C ABI: a count past it is told as the largest.)
        return @min(l.pauses_untold, std.math.maxInt(i32));
    }

    // ---- streams -----------------------------------------------------------------

    /// Starts a nonblocking connect. The handle is usable at once; `status` tells whether
    /// the connect has finished (0), is under way (`WouldBlock`, and a WRITE event will
    /// follow) or failed.
    pub fn connect(self: *Loop, host: []const u8, port: u32, opts: u32) Error!u32 {
        if (opts & ~(Opt.delay | Opt.keep_alive) != 0) return error.InvalidArgument;
        const addr = try address.parse(host, port);
        if (port == 0) return error.InvalidArgument;
        const fd = try sys.socket(address.family(&addr));
        errdefer sys.close(fd);
        try setStreamOptions(fd, opts);
        var connecting = false;
        sys.connect(fd, &addr.any, addr.getOsSockLen()) catch |err| switch (err) {
            error.InProgress, error.WouldBlock => connecting = true,
            else => return err,
        };
        const h = try self.sockets.insert(.{ .fd = fd, .kind = .stream, .connecting = connecting, .writable = !connecting });
        errdefer self.sockets.remove(h);
        var storage: std.posix.sockaddr.storage = undefined;
        const len = addr.getOsSockLen();
        @memcpy(std.mem.asBytes(&storage)[0..len], @as([*]const u8, @ptrCast(&addr.any))[0..len]);
        try address.write(&storage, &self.sockets.get(h).?.peer);
        try self.watchStream(self.sockets.get(h).?, h);
        return h;
    }

    /// Starts connecting to the Unix socket at `path` (no options apply). `BacklogFull`
    /// when its listener's backlog is full: Linux then starts nothing to wait for.
    pub fn connectUnix(self: *Loop, path: []const u8, opts: u32) Error!u32 {
        if (opts != 0) return error.InvalidArgument;
        const addr = try address.parseUnix(path);
        const fd = try sys.socket(std.posix.AF.UNIX);
        errdefer sys.close(fd);
        var connecting = false;
        sys.connect(fd, &addr.any, addr.getOsSockLen()) catch |err| switch (err) {
            error.WouldBlock => return error.BacklogFull,
            error.InProgress => connecting = true,
            else => return err,
        };
        const h = try self.sockets.insert(.{ .fd = fd, .kind = .stream, .connecting = connecting, .writable = !connecting });
        errdefer self.sockets.remove(h);
        self.sockets.get(h).?.peer[0] = 1;
        try self.watchStream(self.sockets.get(h).?, h);
        return h;
    }

    /// A UDP socket bound to an IP literal and port (0: any free port); `Opt.reuse_port`
    /// is the only option.
    pub fn listenDatagram(self: *Loop, host: []const u8, port: u32, opts: u32) Error!u32 {
        if (opts & ~Opt.reuse_port != 0) return error.InvalidArgument;
        const addr = try address.parse(host, port);
        const fd = try sys.datagramSocket(address.family(&addr));
        errdefer sys.close(fd);
        const posix = std.posix;
        if (opts & Opt.reuse_port != 0) try sys.setInt(fd, posix.SOL.SOCKET, posix.SO.REUSEPORT, 1);
        try sys.bind(fd, &addr.any, addr.getOsSockLen());
        const h = try self.sockets.insert(.{ .fd = fd, .kind = .datagram, .readable = true, .writable = true });
        errdefer self.sockets.remove(h);
        try self.poller.addStream(fd, h);
        return h;
    }

    /// Takes one datagram into `buf` and returns its length (at most `buf.len`); writes
    /// the sender's address into `from` (ABI layout), with `from[1]` = 1 when the datagram
    /// was longer than `buf` (the kernel dropped the rest). `WouldBlock` when none is
    /// waiting: a READ event follows when one arrives.
    pub fn recvFrom(self: *Loop, h: u32, buf: []u8, from: *[address.abi_len]u8) Error!usize {
        const s = try self.get(h, .datagram);
        if (!s.readable) {
            s.want_read = true;
            return error.WouldBlock;
        }
        var storage: std.posix.sockaddr.storage = undefined;
        const got = sys.recvFrom(s.fd, buf, &storage) catch |err| {
            if (err == error.WouldBlock) s.drained();
            return err;
        };
        try address.write(&storage, from);
        from[1] = @intFromBool(got.truncated);
        return got.len;
    }

    /// Sends `data` as one datagram to an IP literal and port. `WouldBlock` when the
    /// kernel's send buffer is full: a WRITE event follows when it has room.
    pub fn sendTo(self: *Loop, h: u32, data: []const u8, host: []const u8, port: u32) Error!usize {
        const s = try self.get(h, .datagram);
        if (data.len > limits.max_datagram_bytes or port == 0) return error.InvalidArgument;
        const addr = try address.parse(host, port);
        if (!s.writable) {
            s.want_write = true;
            return error.WouldBlock;
        }
        return sys.sendTo(s.fd, data, &addr.any, addr.getOsSockLen()) catch |err| {
            if (err == error.WouldBlock) {
                s.writable = false;
                s.want_write = true;
            }
            return err;
        };
    }

    /// A stream: 0 when connected and healthy, `WouldBlock` while connecting, or the error
    /// that ended it. A listener: why it was last paused (once), or 0.
    pub fn status(self: *Loop, h: u32) Error!void {
        const any = self.sockets.get(h) orelse return error.BadHandle;
        if (any.kind == .listener) {
            if (try self.pauseReason(h)) |reason| return reason;
            return;
        }
        const s = try self.get(h, .stream);
        if (s.connecting) {
            s.want_write = true;
            return error.WouldBlock;
        }
        if (s.failed) |err| return s.failure(err);
    }

    /// Reads into `buf`. Returns the byte count, 0 at end of stream, or `WouldBlock`
    /// (and then a READ event follows when the stream is readable again).
    pub fn read(self: *Loop, h: u32, buf: []u8) Error!usize {
        const s = try self.get(h, .stream);
        if (buf.len == 0) return error.InvalidArgument;
        if (sys.is_linux) {
            if (self.ring) |r| return self.ringRead(r, s, buf);
        }
        if (s.connecting or (!s.readable and !s.hup)) {
            s.want_read = true;
            return error.WouldBlock;
        }
        const n = sys.read(s.fd, buf) catch |err| {
            if (err == error.WouldBlock) {
                s.drained();
                return err;
            }
            return s.failure(err);
        };
        if (n == 0) return s.endOfStream();
        // A short read took everything the socket held at that instant; data arriving
        // later raises a new edge. This saves the EAGAIN read per message that a strict
        // drain would cost. After a hangup, keep reading: the end of stream is pending.
        if (n < buf.len and !s.hup) s.readable = false;
        return n;
    }

    /// Sends `data`, queueing what the kernel does not take, up to the queue limit.
    /// Returns the bytes taken (sent or queued). When that is less than `data.len`, the
    /// caller waits for a WRITE event (the queue drained) and offers the rest.
    pub fn write(self: *Loop, h: u32, data: []const u8) Error!usize {
        const s = try self.get(h, .stream);
        if (s.shut_pending or s.shut_done) return error.Closed;
        if (s.failed) |err| return s.failure(err);
        if (s.connecting) return error.NotConnected;
        var done: usize = 0;
        if (s.queue.isEmpty() and s.writable) {
            while (done < data.len) {
                const n = sys.send(s.fd, data[done..]) catch |err| switch (err) {
                    error.WouldBlock => {
                        s.writable = false;
                        break;
                    },
                    else => {
                        s.failed = s.failure(err);
                        return s.failed.?;
                    },
                };
                done += n;
                // A short send means the send buffer is full: do not ask again for EAGAIN.
                if (done < data.len) {
                    s.writable = false;
                    break;
                }
            }
        }
        if (done < data.len) {
            const took = try s.queue.push(self.allocator, s.queue_limit, data[done..]);
            self.stats.queued_bytes += took;
            done += took;
        }
        if (done < data.len) s.want_write = true;
        if (!s.writable) self.watchWritableOrFail(s);
        return done;
    }

    /// Bytes still queued. When there are any, a WRITE event follows once they are sent.
    pub fn flush(self: *Loop, h: u32) Error!u32 {
        const s = try self.get(h, .stream);
        if (s.writable and !s.queue.isEmpty()) self.drainQueue(s);
        if (s.failed) |err| return s.failure(err);
        const left = s.queue.len();
        if (left > 0) {
            s.want_write = true;
            if (!s.writable) try self.watchWritable(s);
        }
        return left;
    }

    pub fn setQueueLimit(self: *Loop, h: u32, bytes: u32) Error!void {
        const s = try self.get(h, .stream);
        if (bytes == 0 or bytes > limits.max_write_queue_bytes) return error.InvalidArgument;
        s.queue_limit = bytes;
    }

    /// Shuts down the write side once everything queued has been sent.
    pub fn shutdown(self: *Loop, h: u32) Error!void {
        const s = try self.get(h, .stream);
        if (s.shut_done or s.shut_pending) return;
        if (s.connecting) return error.NotConnected;
        if (s.queue.isEmpty()) {
            s.shut_done = true;
            try sys.shutdownWrite(s.fd);
        } else {
            s.shut_pending = true;
        }
    }

    /// Closes a handle at once. Queued bytes are dropped: a caller that wants them sent
    /// waits for `flush` to reach 0 first (mod.ts does). `reset` sends RST instead of FIN.
    pub fn close(self: *Loop, h: u32, reset: bool) Error!void {
        const s = self.sockets.get(h) orelse return error.BadHandle;
        if (sys.is_linux) {
            if (self.ring) |r| {
                if (s.kind == .stream) {
                    self.ringForget(r, s);
                    self.feedStarvingIfFreed(r);
                }
            }
        }
        if (s.kind == .listener) self.unlinkListener(h, s);
        if (s.unix) |unix| {
            // Only if the file is still ours: another process may have replaced it.
            const now = sys.socketFileAt(unix.path) catch null;
            if (now != null and std.meta.eql(now.?, unix.id)) sys.unlink(unix.path) catch {};
            self.allocator.free(unix.path);
            self.allocator.destroy(unix);
            s.unix = null;
        }
        self.stats.queued_bytes -= s.queue.len();
        s.queue.deinit(self.allocator);
        if (reset and s.kind == .stream) sys.setLingerZero(s.fd) catch {};
        sys.close(s.fd);
        self.sockets.remove(h);
        // A descriptor came free: a listener paused for EMFILE can accept again now.
        if (self.paused_head != 0) self.resumeDue(std.math.maxInt(i64));
    }

    pub fn addressOf(self: *Loop, h: u32, peer: bool, out: *[address.abi_len]u8) Error!void {
        const s = self.sockets.get(h) orelse return error.BadHandle;
        if (peer and s.kind != .stream) return error.WrongKind;
        if (peer) {
            out.* = s.peer;
            return;
        }
        var storage: std.posix.sockaddr.storage = undefined;
        try sys.sockName(s.fd, &storage, peer);
        try address.write(&storage, out);
    }

    /// Sends what the queue holds until it is empty or the kernel pushes back.
    fn drainQueue(self: *Loop, s: *Socket) void {
        while (!s.queue.isEmpty()) {
            const pending = s.queue.pending();
            const n = sys.send(s.fd, pending) catch |err| {
                if (err == error.WouldBlock) {
                    s.writable = false;
                    self.watchWritableOrFail(s);
                } else {
                    self.failQueue(s, err); // undeliverable
                }
                return;
            };
            s.queue.consume(@intCast(n));
            self.stats.queued_bytes -= n;
            if (n < pending.len) {
                s.writable = false;
                self.watchWritableOrFail(s);
                return;
            }
        }
        if (s.shut_pending) {
            s.shut_pending = false;
            s.shut_done = true;
            sys.shutdownWrite(s.fd) catch |err| {
                s.failed = err;
            };
        }
    }

    // ---- the io_uring backend ------------------------------------------------------

    /// Starts watching a new stream: in the epoll set, or with a receive in the ring (a
    /// one-shot poll for writability first, while it connects).
    fn watchStream(self: *Loop, s: *Socket, h: u32) Error!void {
        if (self.injected("test_fail_watch")) return error.NoMemory;
        if (sys.is_linux) {
            if (self.ring) |r| {
                s.handle = h;
                if (s.connecting) {
                    try r.pollOut(s.fd, h);
                    s.pollout_armed = true;
                } else {
                    try r.armRecv(s.fd, h);
                    s.recv_armed = true;
                }
                return;
            }
        }
        try self.poller.addStream(s.fd, h);
    }

    /// A stream's send buffer is full: on io_uring, a one-shot poll says when it is not
    /// (epoll reports it anyway).
    fn watchWritable(self: *Loop, s: *Socket) Error!void {
        if (!sys.is_linux) return;
        const r = self.ring orelse return;
        if (s.pollout_armed or s.kind != .stream) return;
        if (self.injected("test_fail_watch")) return error.Limit;
        try r.pollOut(s.fd, s.handle);
        s.pollout_armed = true;
    }

    /// `watchWritable` where bytes are already taken: if the ring takes no more requests,
    /// nothing would ever tell when the queue can move, so the stream fails with the
    /// error (its queue dropped, as for a send that fails) and the next poll tells its
    /// writer with a WRITE event.
    fn watchWritableOrFail(self: *Loop, s: *Socket) void {
        self.watchWritable(s) catch |err| {
            self.failQueue(s, err);
            s.want_write = true;
            self.markDirty(s);
        };
    }

    /// The queue cannot be sent: drop it, and remember why for the writer.
    fn failQueue(self: *Loop, s: *Socket, err: Error) void {
        s.failed = s.failure(err);
        self.stats.queued_bytes -= s.queue.len();
        s.queue.consume(s.queue.len());
    }

    fn ringRead(self: *Loop, r: *uring.Ring, s: *Socket, buf: []u8) Error!usize {
        if (s.connecting) {
            s.want_read = true;
            return error.WouldBlock;
        }
        if (s.rx_count == 0) {
            if (s.rx_err) |err| {
                // Told once, as a read(2) tells it; then the end of the stream.
                s.rx_err = null;
                s.rx_eof = true;
                return s.failure(err);
            }
            if (s.rx_eof) return s.endOfStream();
            if (s.starving) return self.readDirect(r, s, buf);
            s.want_read = true;
            return error.WouldBlock;
        }
        var n: usize = 0;
        while (n < buf.len and s.rx_head != no_buffer) {
            const bid = s.rx_head;
            const data = r.buffer(bid)[s.rx_off..r.len[bid]];
            const take = @min(data.len, buf.len - n);
            @memcpy(buf[n..][0..take], data[0..take]);
            n += take;
            s.rx_off += @intCast(take);
            if (s.rx_off == r.len[bid]) self.popBuffer(r, s);
        }
        self.maybeRearm(r, s);
        self.feedStarvingIfFreed(r);
        return n;
    }

    /// A stream the ring has no buffer for reads with read(2), as on epoll, so that streams
    /// nobody reads, holding every buffer, cannot stop one that is read. (Nothing of it
    /// waits in the ring: no receive is armed, and its buffers are all read.) A
    /// readability poll tells when there is more.
    fn readDirect(self: *Loop, r: *uring.Ring, s: *Socket, buf: []u8) Error!usize {
        const n = sys.read(s.fd, buf) catch |err| {
            if (err != error.WouldBlock) {
                s.rx_eof = true; // told once, then the end, as a receive's error
                return s.failure(err);
            }
            s.readable = false;
            s.want_read = true;
            if (!s.pollin_armed) {
                if (self.injected("test_fail_watch")) return error.Limit;
                try r.pollIn(s.fd, s.handle);
                s.pollin_armed = true;
            }
            return err;
        };
        if (n == 0) {
            s.rx_eof = true;
            return s.endOfStream();
        }
        return n;
    }

    /// Gives a stream's oldest received buffer back to the kernel.
    fn popBuffer(self: *Loop, r: *uring.Ring, s: *Socket) void {
        const bid = s.rx_head;
        s.rx_head = r.next[bid];
        if (s.rx_head == no_buffer) s.rx_tail = no_buffer;
        s.rx_count -= 1;
        s.rx_off = 0;
        r.giveBack(bid);
        self.buffers_returned = true;
    }

    /// Receives again if the stream may: nothing ended it, and it holds less than its share.
    fn maybeRearm(self: *Loop, r: *uring.Ring, s: *Socket) void {
        if (s.recv_armed or s.rx_eof or s.rx_err != null or s.starving) return;
        if (s.rx_count >= limits.ring_buffers_per_stream) return;
        r.armRecv(s.fd, s.handle) catch {
            // No submission entry now: try again when buffers come back.
            self.starve(s);
            return;
        };
        s.recv_armed = true;
    }

    fn starve(self: *Loop, s: *Socket) void {
        if (s.starving) return;
        s.starving = true;
        self.listAppend(self.starving, &self.starving_len, s.handle, "starving");
    }

    fn markDirty(self: *Loop, s: *Socket) void {
        if (s.dirty) return;
        s.dirty = true;
        if (self.dirty_len == self.dirty.len and self.dirty_head > 0) {
            // Full: the entries before the head are done; move the rest down (at most
            // once per `dirty.len` appends).
            const left = self.dirty_len - self.dirty_head;
            std.mem.copyForwards(u32, self.dirty[0..left], self.dirty[self.dirty_head..self.dirty_len]);
            self.dirty_len = left;
            self.dirty_head = 0;
            if (builtin.is_test) self.test_moved_down += 1;
        }
        self.listAppend(self.dirty, &self.dirty_len, s.handle, "dirty");
    }

    /// Appends a handle to one of the lists of streams. A closed stream's entry stays until
    /// the list is next walked (it is skipped then), so a list can fill with such entries
    /// between polls: then it drops them first. Each live stream is in it at most once,
    /// so there is room after that.
    fn listAppend(self: *Loop, list: []u32, len: *usize, h: u32, comptime flag: []const u8) void {
        if (len.* == list.len) {
            var kept: usize = 0;
            for (list[0..len.*]) |other| {
                const o = self.sockets.get(other) orelse continue;
                if (o.kind != .stream or !@field(o, flag)) continue;
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
    fn feedStarvingIfFreed(self: *Loop, r: *uring.Ring) void {
        if (self.buffers_returned and self.starving_len > 0) self.feedStarving(r);
    }

    /// Buffers came back: streams that ran out receive again.
    fn feedStarving(self: *Loop, r: *uring.Ring) void {
        self.buffers_returned = false;
        const waiting = self.starving[0..self.starving_len];
        self.starving_len = 0;
        for (waiting) |h| {
            const s = self.sockets.get(h) orelse continue;
            if (s.kind != .stream or !s.starving) continue;
            s.starving = false;
            self.maybeRearm(r, s);
        }
    }

    /// Folds one completion into its stream's state.
    fn onCompletion(self: *Loop, r: *uring.Ring, cqe: Cqe) void {
        const linux = std.os.linux;
        const op = uring.opOf(cqe.user_data) orelse return;
        if (op == .epoll) {
            r.epoll_ready = true;
            if (cqe.flags & linux.IORING_CQE_F_MORE == 0) r.epoll_armed = false;
            return;
        }
        if (op == .cancel) return;
        const h = uring.tokenOf(cqe.user_data);
        const found = self.sockets.get(h);
        const s = if (found != null and found.?.kind == .stream) found.? else {
            // A stream closed since: its buffer goes back (its receive was cancelled), and
            // streams waiting for buffers may receive again, as after a read.
            if (cqe.flags & linux.IORING_CQE_F_BUFFER != 0) {
                r.giveBack(cqe.buffer_id() catch return);
                self.buffers_returned = true;
            }
            return;
        };
        switch (op) {
            .recv => {
                s.recv_armed = false;
                if (cqe.res > 0) {
                    const bid = cqe.buffer_id() catch return;
                    r.len[bid] = @intCast(cqe.res);
                    r.next[bid] = no_buffer;
                    if (s.rx_tail == no_buffer) s.rx_head = bid else r.next[s.rx_tail] = bid;
                    s.rx_tail = bid;
                    s.rx_count += 1;
                } else if (cqe.res == 0) {
                    s.rx_eof = true;
                } else {
                    const e: linux.E = @enumFromInt(-cqe.res);
                    switch (e) {
                        .NOBUFS => self.starve(s),
                        .CANCELED => {},
                        else => s.rx_err = errors.fromErrno(e),
                    }
                }
                self.maybeRearm(r, s);
            },
            .pollin => {
                s.pollin_armed = false;
                if (cqe.res == -@as(i32, @intFromEnum(linux.E.CANCELED))) return;
                s.readable = true;
            },
            .pollout => {
                s.pollout_armed = false;
                if (cqe.res == -@as(i32, @intFromEnum(linux.E.CANCELED))) return;
                s.writable = true;
                if (s.connecting) {
                    finishConnect(s);
                    if (s.failed == null) self.maybeRearm(r, s) else s.rx_eof = true;
                }
                if (!s.queue.isEmpty()) self.drainQueue(s);
            },
            .epoll, .cancel => unreachable,
        }
        self.markDirty(s);
    }

    /// Takes up to `batches` batches of completions off the ring and folds each into its
    /// stream; returns how many it took.
    fn takeCompletions(self: *Loop, r: *uring.Ring, batches: usize) usize {
        var taken: usize = 0;
        for (0..batches) |_| {
            const n = r.reap(&self.cqes);
            if (n == 0) break;
            taken += n;
            for (self.cqes[0..n]) |cqe| self.onCompletion(r, cqe);
        }
        return taken;
    }

    fn ringPoll(self: *Loop, r: *uring.Ring, out: []u32, timeout_ms: i32) Error!usize {
        r.batching = true;
        defer r.batching = false;
        r.running();
        try r.armEpoll();
        self.payOwed(r);
        var wait = timeout_ms;
        var looked_again = false;
        while (true) {
            // Streams that ran out of buffers receive again, in this `enter`, once reads
            // gave buffers back.
            self.feedStarvingIfFreed(r);
            // A poll that finds the ring idle makes no system call.
            if (wait != 0 or !r.idle()) _ = try r.enter(wait);
            wait = 0;
            // Bounded: what is left waits for the next poll.
            self.stats.events += self.takeCompletions(r, 4);
            var count: usize = 0;
            const cap = out.len / 2;
            // Streams whose state changed; those left over stay on the list.
            var i: usize = self.dirty_head;
            while (i < self.dirty_len and count < cap) : (i += 1) {
                const h = self.dirty[i];
                const s = self.sockets.get(h) orelse continue;
                if (s.kind != .stream or !s.dirty) continue;
                s.dirty = false;
                const can_read = s.rx_count > 0 or s.rx_eof or s.rx_err != null or (s.starving and s.readable);
                const flags = streamFlags(s, !s.connecting and can_read);
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
                const n = try self.poller.wait(self.events[0..@min(cap - count, self.events.len)], 0);
                // Level-triggered listeners stay ready without a new wake: look again
                // next time, until a wait finds nothing.
                r.epoll_ready = n > 0;
                count = self.readinessEvents(out, count, n);
            }
            count = self.notices(out, count);
            if (count > 0 or looked_again) return count;
            // Nothing: the caller may park. Signals on, and one last look.
            if (!try r.preparePark(!self.wakeDrains())) return 0;
            looked_again = true;
        }
    }

    fn owe(self: *Loop, user_data: u64) void {
        // (Three per handle: there is room, as a handle owes only until the next poll.)
        if (self.owed_len == self.owed.len) return;
        self.owed[self.owed_len] = user_data;
        self.owed_len += 1;
    }

    /// Asks the cancels owed; those the ring does not take stay owed.
    fn payOwed(self: *Loop, r: *uring.Ring) void {
        while (self.owed_len > 0) {
            r.cancelOp(self.owed[self.owed_len - 1]) catch return;
            self.owed_len -= 1;
        }
    }

    /// Before a stream closes: its operations in the ring cancelled and their last
    /// completions taken (the kernel holds the socket until then), its buffers given back.
    fn ringForget(self: *Loop, r: *uring.Ring, s: *Socket) void {
        s.rx_eof = true; // receives no more: a cancelled receive is not re-armed
        if (s.recv_armed or s.pollout_armed or s.pollin_armed) {
            // Without the cancel in the ring nothing ends its operations, and waiting for
            // them would block the JS thread for as long as the peer stays silent: then
            // the cancels are owed, asked by the next poll (their completions find no
            // stream, and give their buffers back).
            const cancelled = if (self.injected("test_fail_cancel")) false else if (r.cancelFd(s.fd)) |_| true else |_| false;
            var rounds: usize = 0;
            while (cancelled and (s.recv_armed or s.pollout_armed or s.pollin_armed) and rounds < 1000) : (rounds += 1) {
                _ = r.enter(-1) catch break;
                _ = self.takeCompletions(r, std.math.maxInt(usize));
            }
            if (!cancelled) {
                if (s.recv_armed) self.owe(uring.userData(.recv, s.handle));
                if (s.pollout_armed) self.owe(uring.userData(.pollout, s.handle));
                if (s.pollin_armed) self.owe(uring.userData(.pollin, s.handle));
            }
        }
        while (s.rx_head != no_buffer) self.popBuffer(r, s);
        s.starving = false;
        s.dirty = false;
    }

    // ---- the poll ----------------------------------------------------------------

    /// Waits up to `timeout_ms` (0: not at all) and writes (handle, flags) pairs into
    /// `out`, at most `out.len / 2` of them. Returns the number of pairs.
    pub fn poll(self: *Loop, out: []u32, timeout_ms: i32) Error!usize {
        self.stats.polls += 1;
        if (self.paused_head != 0) self.resumeDue(sys.monotonicNs());
        const cap = @min(out.len / 2, self.events.len);
        if (cap == 0) return error.InvalidArgument;
        const timeout = clampTimeout(timeout_ms, self.resume_due_ns.load(.acquire));
        if (sys.is_linux) {
            if (self.ring) |r| return self.ringPoll(r, out[0 .. @as(usize, cap) * 2], timeout);
        }
        const n = try self.poller.wait(self.events[0..cap], timeout);
        var count = self.readinessEvents(out, 0, n);
        count = self.notices(out, count);
        return count;
    }

    /// Turns `n` readiness events (in `self.events`) into (handle, flags) pairs in `out`,
    /// after the `start` pairs already there.
    fn readinessEvents(self: *Loop, out: []u32, start: usize, n: usize) usize {
        self.stats.events += n;
        var count: usize = start;
        for (self.events[0..n]) |ev| {
            const s = self.sockets.get(ev.token) orelse continue;
            const flags = switch (s.kind) {
                .listener => self.onListener(ev.token, s),
                .stream => self.onStream(s, ev),
                .datagram => onDatagram(s, ev),
            };
            if (flags == 0) continue;
            out[2 * count] = ev.token;
            out[2 * count + 1] = flags;
            count += 1;
        }
        return count;
    }

    /// Adds the pauses not yet told after `count` pairs, as far as `out` has room; the
    /// rest in the next poll.
    fn notices(self: *Loop, out: []u32, start: usize) usize {
        var count = start;
        while (self.notices_head != 0 and count < out.len / 2) {
            const lh = self.notices_head;
            const l = self.sockets.get(lh).?;
            self.notices_head = l.notice_next;
            l.notice_pending = false;
            l.notice_next = 0;
            out[2 * count] = lh;
            out[2 * count + 1] = Flag.paused;
            count += 1;
        }
        return count;
    }

    fn onListener(self: *Loop, lh: u32, l: *Socket) u32 {
        if (listener_edge_single) l.acceptable = true;
        if (l.want_accept) {
            l.want_accept = false;
            return Flag.accept;
        }
        // Nobody is accepting: stop a level-triggered listener from waking every poll.
        // The next accept() re-arms it; the kernel's backlog holds the connections.
        if (!listener_edge_single and l.armed) {
            self.poller.armListener(l.fd, lh, false, false) catch return 0;
            l.armed = false;
        }
        return 0;
    }

    fn onDatagram(s: *Socket, ev: backend.Event) u32 {
        // An error pending (ICMP on a connected socket) is taken by the next receive.
        if (ev.readable or ev.err) s.readable = true;
        if (ev.writable or ev.err) s.writable = true;
        var flags: u32 = 0;
        if (s.want_read and s.readable) {
            s.want_read = false;
            flags |= Flag.read;
        }
        if (s.want_write and s.writable) {
            s.want_write = false;
            flags |= Flag.write;
        }
        return flags;
    }

    fn onStream(self: *Loop, s: *Socket, ev: backend.Event) u32 {
        if (ev.readable) s.readable = true;
        if (ev.writable) s.writable = true;
        // Reads no longer block once the peer closed its side or an error is pending;
        // writes only once the connection is gone (or failed).
        if (ev.read_closed or ev.err) s.hup = true;
        if (ev.write_closed or ev.err) s.writable = true;
        if (s.connecting and (ev.writable or ev.err or ev.write_closed)) finishConnect(s);
        if (s.writable and !s.queue.isEmpty()) self.drainQueue(s);
        return streamFlags(s, s.readable or s.hup);
    }

    /// A connect under way has ended: the socket's pending error says how.
    fn finishConnect(s: *Socket) void {
        s.connecting = false;
        const posix = std.posix;
        if (sys.getInt(s.fd, posix.SOL.SOCKET, posix.SO.ERROR)) |so_error| {
            if (so_error != 0) s.failed = errors.fromErrno(@enumFromInt(so_error));
        } else |err| s.failed = err;
    }

    /// The events a stream is owed, on either backend: READ if it wanted to read and
    /// `can_read`, WRITE if it wanted to write and its queue drained (or it failed).
    fn streamFlags(s: *Socket, can_read: bool) u32 {
        var flags: u32 = 0;
        if (s.want_read and can_read) {
            s.want_read = false;
            flags |= Flag.read;
        }
        if (s.want_write and !s.connecting and (s.queue.isEmpty() or s.failed != null)) {
            s.want_write = false;
            flags |= Flag.write;
        }
        return flags;
    }

    /// Blocks the calling thread (never the JS thread) until the loop has events, the
    /// timeout passes, a paused listener is due, or `wake` is called. It takes no events:
    /// the owner's next `poll` does.
    pub fn park(self: *const Loop, timeout_ms: i32) Error!bool {
        return sys.pollReadable(self.parkFd(), self.parkTimeout(timeout_ms));
    }

    /// What a park waits on: the epoll set, or the io_uring backend's eventfd.
    pub fn parkFd(self: *const Loop) sys.fd_t {
        if (sys.is_linux) {
            if (self.ring) |r| return r.efd;
        }
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
                if (w.rx_taken) try w.arm(self.parkFd(), self.ring != null);
            } else |_| {}
        }
        return n;
    }

    /// Parks with the kernel-delivered wake: one byte arrives on the wake descriptor at the
    /// loop's next event, or at once if it has one now.
    pub fn armWake(self: *Loop) Error!void {
        if (!sys.is_linux) return error.Unsupported;
        const w = try self.wakeRing();
        if (self.ring) |r| {
            // The loop ran since its last poll, with completions signalling nothing.
            if (try r.preparePark(false)) r.signal();
        }
        try w.arm(self.parkFd(), self.ring != null);
    }

    /// The kernel's wake, armed on the ring's eventfd, drains it as it fires, so a park
    /// need not (a thread's park, which only polls the eventfd, needs the drain).
    fn wakeDrains(self: *Loop) bool {
        if (!sys.is_linux or self.ring == null) return false;
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
        const signalling = if (self.ring) |r| r.signalling() else false;
        if (!wake_armed and !signalling) return; // running, or nothing to look at
        var waiting = if (self.ring) |r| r.waiting() else false;
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
        if (sys.is_linux) {
            if (self.ring) |r| return r.signal();
        }
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
        while (lh != 0) : (lh = self.sockets.get(lh).?.next_paused) {
            const l = self.sockets.get(lh).?;
            assert(l.kind == .listener and l.paused and !l.armed);
            in_paused += 1;
        }
        var in_notices: u32 = 0;
        lh = self.notices_head;
        while (lh != 0) : (lh = self.sockets.get(lh).?.notice_next) {
            const l = self.sockets.get(lh).?;
            assert(l.kind == .listener and l.notice_pending);
            in_notices += 1;
        }
        var paused: u32 = 0;
        var noticed: u32 = 0;
        var queued: u64 = 0;
        var i: u32 = 0;
        while (i < self.sockets.capacity()) : (i += 1) {
            const h = self.sockets.liveHandle(i) orelse continue;
            const s = self.sockets.get(h).?;
            switch (s.kind) {
                .listener => {
                    paused += @intFromBool(s.paused);
                    noticed += @intFromBool(s.notice_pending);
                    if (s.notice_pending) assert(s.pauses_untold > 0);
                },
                .stream => {
                    queued += s.queue.len();
                    assert(s.queue.len() <= s.queue_limit);
                    if (s.shut_done or s.connecting) assert(s.queue.isEmpty());
                },
                .datagram => assert(s.queue.isEmpty()),
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

/// The backlog asked of the kernel: the caller's, or the default, at most the limit.
fn backlogOf(backlog: u32) u32 {
    return if (backlog == 0) limits.listen_backlog else @min(backlog, limits.listen_backlog);
}

/// Whether `path` is a socket file that no process listens on (a connect is refused).
fn isStale(path: [:0]const u8) Error!bool {
    if (sys.socketFileAt(path) catch |err| return err == error.NotFound) |_| {} else return false;
    const addr = try address.parseUnix(path);
    const probe = try sys.socket(std.posix.AF.UNIX);
    defer sys.close(probe);
    sys.connect(probe, &addr.any, addr.getOsSockLen()) catch |err| return err == error.ConnectionRefused;
    return false;
}

/// TCP_NODELAY unless `Opt.delay`, SO_KEEPALIVE if `Opt.keep_alive`.
fn setStreamOptions(fd: sys.fd_t, opts: u32) Error!void {
    const posix = std.posix;
    if (opts & Opt.delay == 0) try sys.setInt(fd, posix.IPPROTO.TCP, sys.tcp_nodelay, 1);
    if (opts & Opt.keep_alive != 0) try sys.setInt(fd, posix.SOL.SOCKET, posix.SO.KEEPALIVE, 1);
}

/// Shortens a timeout so that the wait ends when a paused listener is due.
fn clampTimeout(timeout_ms: i32, due_ns: i64) i32 {
    if (due_ns == no_deadline) return timeout_ms;
    const left_ns = due_ns - sys.monotonicNs();
    const left_ms: i32 = if (left_ns <= 0) 0 else @intCast(@min(@divTrunc(left_ns + std.time.ns_per_ms - 1, std.time.ns_per_ms), std.math.maxInt(i32)));
    return if (timeout_ms < 0) left_ms else @min(timeout_ms, left_ms);
}
