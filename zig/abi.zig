//! The C ABI: every function zev exports, and nothing else.
//!
//! Plain integers in and out; buffers are owned by the caller and only borrowed for the
//! duration of a call. Results are `i32`: zero or more is success, negative is an error
//! code from errors.zig. Loops and handles are generation-checked integers, so a stale,
//! forged or already-closed one gets `BadLoop` / `BadHandle` rather than a crash.
//! The declarations for C callers are in zev.h; the JS symbol table is ffi/abi.ts (both generated
//! from this file by abi_gen.zig).
//!
//! Threads: a loop belongs to the thread that opened it. Only `zev_park` and `zev_wake`
//! may be called from another thread, and that is what they are for.

const std = @import("std");
const limits = @import("limits.zig");
const errors = @import("errors.zig");
const sys = @import("sys.zig");
const address = @import("address.zig");
const Loop = @import("loop.zig").Loop;
const openssl = @import("tls/openssl.zig");
const tls_contexts = @import("tls/contexts.zig");
const tls_session = @import("tls/session.zig");
const Backend = @import("loop.zig").Backend;
const listener_edge_single = @import("loop.zig").listener_edge_single;

pub const abi_version: u32 = 9;

/// Allocator for loops, handle tables and write queues (tests swap in a checking one).
pub var allocator: std.mem.Allocator = std.heap.page_allocator;

// ---- the loop registry -------------------------------------------------------------

const loop_index_bits = 6;
comptime {
    std.debug.assert(limits.max_loops == 1 << loop_index_bits);
}

var registry_lock: std.Thread.Mutex = .{};
var loops: [limits.max_loops]?*Loop = .{null} ** limits.max_loops;
var loop_gens: [limits.max_loops]u16 = .{1} ** limits.max_loops;

pub fn lookup(id: u32) ?*Loop {
    const i = id & (limits.max_loops - 1);
    const gen = id >> loop_index_bits;
    if (gen == 0 or gen != loop_gens[i]) return null;
    return @atomicLoad(?*Loop, &loops[i], .acquire);
}

fn result(r: anytype) i32 {
    const n = r catch |err| return errors.code(err);
    return @intCast(n);
}

fn fail(err: errors.Error) i32 {
    return errors.code(err);
}

/// Borrows a caller's buffer; a null pointer is only valid with length 0.
fn bytes(ptr: ?[*]const u8, len: u32) ?[]const u8 {
    const p = ptr orelse return if (len == 0) &.{} else null;
    return p[0..len];
}

fn bytesMut(ptr: ?[*]u8, len: u32) ?[]u8 {
    const p = ptr orelse return if (len == 0) &.{} else null;
    return p[0..@min(len, std.math.maxInt(i32))];
}

// ---- exports -------------------------------------------------------------------------

pub export fn zev_abi_version() u32 {
    return abi_version;
}

/// 0 for the normal build; 1 for the `edge-single` regression build.
pub export fn zev_listener_mode() u32 {
    return @intFromBool(listener_edge_single);
}

/// The bounds of limits.zig that callers size by and document, in selector order: the
/// selector of `zev_limit` is the index here (ffi/abi.ts is generated from this table).
pub const limit_table = .{
    .{ "eventsPerPoll", limits.max_events_per_poll },
    .{ "acceptBatch", limits.accept_batch },
    .{ "defaultMaxHandles", limits.default_max_handles },
    .{ "maxHandles", limits.max_handles },
    .{ "defaultWriteQueueBytes", limits.default_write_queue_bytes },
    .{ "maxWriteQueueBytes", limits.max_write_queue_bytes },
    .{ "listenBacklog", limits.listen_backlog },
    .{ "acceptBackoffMaxMs", limits.accept_backoff_max_ms },
    .{ "maxLoops", limits.max_loops },
    .{ "maxPendingWrites", limits.max_pending_writes },
    .{ "maxUnixPath", address.max_unix_path },
    .{ "maxDatagramBytes", limits.max_datagram_bytes },
};

/// One bound of limits.zig by its selector (see `limit_table`).
pub export fn zev_limit(which: u32) i32 {
    inline for (limit_table, 0..) |entry, i| {
        if (which == i) return @intCast(@as(u32, entry[1]));
    }
    return fail(error.InvalidArgument);
}

/// Opens a loop able to hold `max_handles` handles (0: the default), on the poll backend
/// (epoll, kqueue). Returns its id.
pub export fn zev_loop_open(max_handles: u32) i32 {
    return zev_loop_open_backend(max_handles, @intFromEnum(Backend.poll));
}

/// Opens a loop on `backend`: 0 the poll backend (epoll, kqueue), 1 io_uring (Linux 6.0;
/// `Unsupported` where the kernel lacks it or forbids it), 2 the one zev picks (the poll
/// backend for now; `zev_backend_fallback` says why). Returns its id.
pub export fn zev_loop_open_backend(max_handles: u32, backend: u32) i32 {
    const kind = std.meta.intToEnum(Backend, backend) catch return fail(error.InvalidArgument);
    const cap = if (max_handles == 0) limits.default_max_handles else max_handles;
    if (cap > limits.max_handles) return fail(error.InvalidArgument);
    registry_lock.lock();
    defer registry_lock.unlock();
    for (&loops, 0..) |*slot, i| {
        if (slot.* != null) continue;
        const loop = Loop.create(allocator, cap, kind) catch |err| return fail(err);
        @atomicStore(?*Loop, slot, loop, .release);
        return @intCast((@as(u32, loop_gens[i]) << loop_index_bits) | @as(u32, @intCast(i)));
    }
    return fail(error.Limit);
}

/// The backend a loop runs on: 0 the poll backend (epoll, kqueue), 1 io_uring.
pub export fn zev_backend(id: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    return @intCast(@intFromEnum(loop.backendKind()));
}

/// Why a loop that asked for the backend zev picks (2) runs on the poll backend: 0 it
/// does not, 1 the kernel has no io_uring, 2 forbidden (seccomp, io_uring_disabled),
/// 3 a kernel before Linux 6.0, 4 no provided buffer rings, 5 out of memory or
/// descriptors, 6 another failure, 7 zev picks epoll (io_uring is not yet level with it).
pub export fn zev_backend_fallback(id: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    return @intCast(@intFromEnum(loop.fallback));
}

/// Why io_uring would not run here, as `zev_backend_fallback` codes (0: it would): a ring
/// like the backend's is set up and closed again. Names the reason when io_uring is
/// asked for by name and refused.
pub export fn zev_io_uring_unavailable() i32 {
    return @intCast(@intFromEnum(Loop.probeRing()));
}

/// Moves a loop with no handle open to `backend` (as in `zev_loop_open_backend`);
/// `InvalidArgument` while a handle is open. On failure the loop keeps its backend.
pub export fn zev_loop_switch_backend(id: u32, backend: u32) i32 {
    const kind = std.meta.intToEnum(Backend, backend) catch return fail(error.InvalidArgument);
    // Held so that no park starts on the old backend's descriptor while it closes.
    registry_lock.lock();
    defer registry_lock.unlock();
    const loop = lookup(id) orelse return fail(error.BadLoop);
    loop.switchBackend(kind) catch |err| return fail(err);
    return 0;
}

/// Closes every handle of the loop, then the loop. The id becomes stale. A `zev_park`
/// under way on another thread is woken (it returns 1) before the loop's descriptors close.
pub export fn zev_loop_close(id: u32) i32 {
    const loop = blk: {
        registry_lock.lock();
        defer registry_lock.unlock();
        const loop = lookup(id) orelse return fail(error.BadLoop);
        const i = id & (limits.max_loops - 1);
        @atomicStore(?*Loop, &loops[i], null, .release);
        loop_gens[i] = if (loop_gens[i] == std.math.maxInt(u16) >> loop_index_bits) 1 else loop_gens[i] + 1;
        break :blk loop;
    };
    // Out of the registry, so no park or wake can reach it any more; destroying it waits
    // for the parks under way, unlocked, as they leave without the lock.
    loop.destroy();
    return 0;
}

/// Takes up to `cap` events, waiting up to `timeout_ms` (0: not at all; -1: forever),
/// as (handle, flags) pairs of u32 in `out`. Returns the number of pairs.
pub export fn zev_poll(id: u32, out: ?[*]u32, cap: u32, timeout_ms: i32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    const p = out orelse return fail(error.InvalidArgument);
    return result(loop.poll(p[0 .. @as(usize, cap) * 2], timeout_ms));
}

/// `zev_poll` with timeout 0 that, when it finds no event, parks the loop with the
/// kernel-delivered wake (`zev_wake_arm`), if `zev_wake_fd` was taken. Returns the number
/// of pairs; 0 means parked.
pub export fn zev_poll_park(id: u32, out: ?[*]u32, cap: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    const p = out orelse return fail(error.InvalidArgument);
    return result(loop.pollPark(p[0 .. @as(usize, cap) * 2]));
}

/// Called from a thread other than the loop's: blocks until the loop has events, or
/// `timeout_ms` passes, or `zev_wake`. Takes no events. Returns 1 if events are ready.
pub export fn zev_park(id: u32, timeout_ms: i32) i32 {
    var fd: sys.fd_t = undefined;
    var timeout: i32 = undefined;
    const parked = blk: {
        // Held only while reading the loop, so that a concurrent close cannot free it
        // under us; the wait itself runs unlocked on the descriptor.
        registry_lock.lock();
        defer registry_lock.unlock();
        const loop = lookup(id) orelse return fail(error.BadLoop);
        fd = loop.parkFd();
        timeout = loop.parkTimeout(timeout_ms);
        // Counted while the lock is held: a close or a switch of backend sees this park,
        // wakes it and waits for it before the descriptor goes.
        _ = loop.parks.fetchAdd(1, .acq_rel);
        break :blk loop;
    };
    const ready = sys.pollReadable(fd, timeout);
    // The last touch of the loop: a close may free it from here on.
    _ = parked.parks.fetchSub(1, .release);
    return @intFromBool(ready catch |err| return fail(err));
}

/// The descriptor `zev_park` waits on (readable while the loop has events), for a
/// caller that waits with its own poll(2): a runtime that may unload this library at exit
/// must not have a thread blocked inside it.
pub export fn zev_park_fd(id: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    return loop.parkFd();
}

/// `timeout_ms` (-1: none), shortened to when a paused listener is due: the timeout to
/// give poll(2) on `zev_park_fd`.
pub export fn zev_park_timeout(id: u32, timeout_ms: i32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    return loop.parkTimeout(timeout_ms);
}

/// Hands over the descriptor of the loop's kernel-delivered wake (zig/ring_wake.zig) for
/// the runtime to watch; the caller closes it. `Unsupported` where io_uring is missing or
/// forbidden: then the caller parks with `zev_park` on a thread instead.
pub export fn zev_wake_fd(id: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    return result(loop.takeWakeFd());
}

/// Parks with the kernel-delivered wake: one byte arrives on the wake descriptor at the
/// loop's next event (at once if it has one now).
pub export fn zev_wake_arm(id: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    loop.armWake() catch |err| return fail(err);
    return 0;
}

/// Ends a `zev_park` under way on another thread. Safe from any thread.
pub export fn zev_wake(id: u32) i32 {
    registry_lock.lock();
    defer registry_lock.unlock();
    const loop = lookup(id) orelse return fail(error.BadLoop);
    loop.wake();
    return 0;
}

/// Listens on an IP literal and port (0: any free port), with socket options (`OPT_*`).
/// Returns the listener handle.
pub export fn zev_listen(id: u32, host: ?[*]const u8, host_len: u32, port: u32, backlog: u32, options: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    const h = bytes(host, host_len) orelse return fail(error.InvalidArgument);
    return result(loop.listen(h, port, backlog, options));
}

/// Listens on a Unix socket at `path` (`OPT_REPLACE_STALE` the only option). Returns the
/// listener handle; closing it removes the socket file, if it is still this one.
pub export fn zev_listen_unix(id: u32, path: ?[*]const u8, path_len: u32, backlog: u32, options: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    const p = bytes(path, path_len) orelse return fail(error.InvalidArgument);
    return result(loop.listenUnix(p, backlog, options));
}

/// Binds a UDP socket to an IP literal and port (0: any free port), with `OPT_REUSE_PORT`
/// or 0. Returns its handle.
pub export fn zev_listen_datagram(id: u32, host: ?[*]const u8, host_len: u32, port: u32, options: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    const h = bytes(host, host_len) orelse return fail(error.InvalidArgument);
    return result(loop.listenDatagram(h, port, options));
}

/// Receives one datagram into `buf`: its length (at most `len`), or WouldBlock (a READ
/// event follows). The sender's address goes to the 20 bytes at `from`; `from[1]` is 1
/// when the datagram was longer than `len` and the rest was dropped.
pub export fn zev_recv_from(id: u32, h: u32, buf: ?[*]u8, len: u32, from: ?[*]u8) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    const b = bytesMut(buf, len) orelse return fail(error.InvalidArgument);
    const f = from orelse return fail(error.InvalidArgument);
    return result(loop.recvFrom(h, b, f[0..address.abi_len]));
}

/// Sends `buf` as one datagram to an IP literal and port: the bytes sent, or WouldBlock
/// (a WRITE event follows when the kernel has room).
pub export fn zev_send_to(id: u32, h: u32, buf: ?[*]const u8, len: u32, host: ?[*]const u8, host_len: u32, port: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    const b = bytes(buf, len) orelse return fail(error.InvalidArgument);
    const to = bytes(host, host_len) orelse return fail(error.InvalidArgument);
    return result(loop.sendTo(h, b, to, port));
}

/// Accepts up to `max` pending connections into `out`. Returns how many (at least 1), or
/// WouldBlock, after which an ACCEPT event says when to call again.
pub export fn zev_accept(id: u32, listener: u32, out: ?[*]u32, max: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    const p = out orelse return fail(error.InvalidArgument);
    return result(loop.accept(listener, p[0..max]));
}

/// Starts connecting to an IP literal and port, with socket options (`OPT_DELAY`,
/// `OPT_KEEP_ALIVE`). Returns the stream handle at once; `zev_status` tells when the
/// connection is established.
pub export fn zev_connect(id: u32, host: ?[*]const u8, host_len: u32, port: u32, options: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    const h = bytes(host, host_len) orelse return fail(error.InvalidArgument);
    return result(loop.connect(h, port, options));
}

/// Starts connecting to the Unix socket at `path` (no options: 0). Returns the stream
/// handle; `zev_status` tells when the connection is established.
pub export fn zev_connect_unix(id: u32, path: ?[*]const u8, path_len: u32, options: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    const p = bytes(path, path_len) orelse return fail(error.InvalidArgument);
    return result(loop.connectUnix(p, options));
}

/// 0 when connected and healthy; WouldBlock while connecting (a WRITE event follows);
/// otherwise the error that ended the connection.
pub export fn zev_status(id: u32, h: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    loop.status(h) catch |err| return fail(err);
    return 0;
}

/// Reads into `buf`: bytes read, 0 at end of stream, or WouldBlock (a READ event follows).
pub export fn zev_read(id: u32, h: u32, buf: ?[*]u8, len: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    const b = bytesMut(buf, len) orelse return fail(error.InvalidArgument);
    return result(loop.read(h, b));
}

/// Writes `buf`: returns the bytes taken (sent or queued within the stream's limit). Fewer
/// than `len` means the queue is full: wait for a WRITE event and offer the rest.
pub export fn zev_write(id: u32, h: u32, buf: ?[*]const u8, len: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    const b = bytes(buf, @min(len, std.math.maxInt(i32))) orelse return fail(error.InvalidArgument);
    return result(loop.write(h, b));
}

/// Pauses of a listener since the last call (each `PAUSED` notice stands for at least
/// one); `zev_status` on the listener tells the last one's reason.
pub export fn zev_pauses(id: u32, h: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    return result(loop.pausesUntold(h));
}

/// Bytes still queued; when not 0, a WRITE event follows once they are sent.
pub export fn zev_flush(id: u32, h: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    return result(loop.flush(h));
}

/// Shuts the write side down (after the queued bytes are sent).
pub export fn zev_shutdown(id: u32, h: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    loop.shutdown(h) catch |err| return fail(err);
    return 0;
}

/// Closes a listener or stream now, dropping queued bytes; `reset` != 0 sends RST.
pub export fn zev_close(id: u32, h: u32, reset: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    loop.close(h, reset != 0) catch |err| return fail(err);
    return 0;
}

/// Writes the local (`peer` = 0) or remote address of a handle into 20 bytes at `out`.
pub export fn zev_address(id: u32, h: u32, peer: u32, out: ?[*]u8) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    const p = out orelse return fail(error.InvalidArgument);
    loop.addressOf(h, peer != 0, p[0..address.abi_len]) catch |err| return fail(err);
    return 0;
}

/// Sets a stream's write queue limit in bytes.
pub export fn zev_set_queue_limit(id: u32, h: u32, bytes_limit: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    loop.setQueueLimit(h, bytes_limit) catch |err| return fail(err);
    return 0;
}

/// Writes up to `n` counters (loop.zig `Stats`, in order) as f64. Returns how many.
/// Looks for a stall first (a parked loop with work and no wake on its way).
pub export fn zev_stats(id: u32, out: ?[*]f64, n: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    const p = out orelse return fail(error.InvalidArgument);
    loop.lookForStall();
    const st = loop.snapshot();
    const fields = @typeInfo(@TypeOf(st)).@"struct".fields;
    var written: u32 = 0;
    inline for (fields) |f| {
        if (written < n) {
            p[written] = @floatFromInt(@field(st, f.name));
            written += 1;
        }
    }
    return @intCast(written);
}

/// Bytes held in the loop's write queues (at most maxInt(i32)): while there are any, the
/// process should stay alive to send them.
pub export fn zev_queued(id: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    return @intCast(@min(loop.stats.queued_bytes, std.math.maxInt(i32)));
}

/// Raises this process's soft descriptor limit toward `want`; returns the new limit.
pub export fn zev_raise_fd_limit(want: u32) i32 {
    const got = sys.raiseFdLimit(want) catch |err| return fail(err);
    return @intCast(@min(got, std.math.maxInt(i32)));
}

/// The errno behind the last `Unexpected` (-99) result, for diagnostics.
pub export fn zev_last_errno() i32 {
    return errors.last_unexpected_errno.load(.monotonic);
}

// ---- TLS (zig/tls/): the system's OpenSSL 3, driven inside the loop -------------------

/// Hands the library the OpenSSL functions the runtime resolved: `count` addresses (each
/// 8 bytes, little-endian) in the order of `OPENSSL_SYMBOLS` (zig/tls/openssl.zig `Api`).
/// Process-wide, once; a later call keeps the first table. `InvalidArgument` if any is missing.
pub export fn zev_tls_engine(table: ?[*]const u8, count: u32) i32 {
    if (count != openssl.symbol_count) return fail(error.InvalidArgument);
    const t = bytes(table, count * 8) orelse return fail(error.InvalidArgument);
    var ptrs: [openssl.symbol_count]usize = undefined;
    for (&ptrs, 0..) |*p, i| p.* = @intCast(std.mem.readInt(u64, t[i * 8 ..][0..8], .little));
    if (!openssl.install(&ptrs)) return fail(error.InvalidArgument);
    return 0;
}

/// The engine's version ("OpenSSL 3.0.19 27 Jan 2026") into `out`: its length.
pub export fn zev_tls_engine_version(out: ?[*]u8, cap: u32) i32 {
    const o = openssl.get() orelse return fail(error.Unsupported);
    const b = bytesMut(out, cap) orelse return fail(error.InvalidArgument);
    const v = std.mem.span(o.OpenSSL_version(0) orelse "");
    const n = @min(v.len, b.len);
    @memcpy(b[0..n], v[0..n]);
    return @intCast(n);
}

/// A TLS context for servers (`server` 1) or clients (0), with `TLS_FLAG_*` options.
/// Returns its id (process-wide).
pub export fn zev_tls_context(server: u32, flags: u32) i32 {
    return result(tls_contexts.create(server != 0, flags));
}

/// Frees a TLS context; streams started with it keep working.
pub export fn zev_tls_context_free(ctx: u32) i32 {
    tls_contexts.destroy(ctx) catch |err| return fail(err);
    return 0;
}

/// A context's certificate chain and private key, both PEM.
pub export fn zev_tls_context_cert(ctx: u32, cert: ?[*]const u8, cert_len: u32, key: ?[*]const u8, key_len: u32) i32 {
    const c = bytes(cert, cert_len) orelse return fail(error.InvalidArgument);
    const k = bytes(key, key_len) orelse return fail(error.InvalidArgument);
    tls_contexts.setCertificate(ctx, c, k) catch |err| return fail(err);
    return 0;
}

/// The CAs a context trusts (PEM), or with `len` 0 the system's store.
pub export fn zev_tls_context_ca(ctx: u32, pem: ?[*]const u8, len: u32) i32 {
    const p = bytes(pem, len) orelse return fail(error.InvalidArgument);
    tls_contexts.setCa(ctx, p) catch |err| return fail(err);
    return 0;
}

/// A context's ALPN protocols, in wire format (length-prefixed names, preferred first).
pub export fn zev_tls_context_alpn(ctx: u32, wire: ?[*]const u8, len: u32) i32 {
    const w = bytes(wire, len) orelse return fail(error.InvalidArgument);
    tls_contexts.setAlpn(ctx, w) catch |err| return fail(err);
    return 0;
}

/// Serves host `name` (or `*.domain`) with the certificate of server context `other`,
/// which `ctx` takes over (`other`'s id is then gone).
pub export fn zev_tls_context_sni(ctx: u32, name: ?[*]const u8, name_len: u32, other: u32) i32 {
    const n = bytes(name, name_len) orelse return fail(error.InvalidArgument);
    tls_contexts.addSni(ctx, n, other) catch |err| return fail(err);
    return 0;
}

/// Puts a TLS session of context `ctx` on a connected stream; a client names the server
/// (SNI, and the name its certificate must carry). Then `zev_tls_handshake`.
pub export fn zev_tls_start(id: u32, h: u32, ctx: u32, name: ?[*]const u8, name_len: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    const n = bytes(name, name_len) orelse return fail(error.InvalidArgument);
    tls_session.start(loop, h, ctx, n) catch |err| return fail(err);
    return 0;
}

/// Runs a stream's handshake as far as it can: 0 done, WouldBlock (a READ event
/// follows), or the error (`zev_tls_detail` says why).
pub export fn zev_tls_handshake(id: u32, h: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    tls_session.handshake(loop, h) catch |err| return fail(err);
    return 0;
}

/// What a TLS stream agreed (`TLS_INFO_*`) into `out`: its length (0: none).
pub export fn zev_tls_info(id: u32, h: u32, what: u32, out: ?[*]u8, cap: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    const b = bytesMut(out, cap) orelse return fail(error.InvalidArgument);
    return result(tls_session.info(loop, h, what, b));
}

/// Why the loop's last TLS call failed (OpenSSL's reason) into `out`, once: its length.
pub export fn zev_tls_detail(id: u32, out: ?[*]u8, cap: u32) i32 {
    const loop = lookup(id) orelse return fail(error.BadLoop);
    const b = bytesMut(out, cap) orelse return fail(error.InvalidArgument);
    const n = @min(loop.tls_detail_len, b.len);
    @memcpy(b[0..n], loop.tls_detail[0..n]);
    loop.tls_detail_len = 0; // told once: a later, unrelated error must not carry it
    return @intCast(n);
}
