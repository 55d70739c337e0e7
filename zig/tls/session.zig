//! A TLS stream's engine: an OpenSSL `SSL` between the socket and the caller. Its I/O
//! goes through a BIO of zev's own whose reads and writes are the stream's: the backend's
//! read (epoll's read(2), or the ring's buffers) and the stream's send with its bounded
//! queue. So the loop keeps every system call and its readiness rules, ciphertext is
//! never copied between buffers of ours, and only plaintext crosses the ABI. (Memory BIOs,
//! the first version, cost two more copies of every record: 1,930 against 1,550 µs of
//! server CPU per MB of echo here, in Bun.)
//!
//! Writes: plaintext is encrypted only while the write queue is under its limit, so the
//! ciphertext the kernel does not take stays bounded. A peer's end of stream without
//! close_notify is `TlsTruncated`, never a clean end: an attacker who cuts a connection
//! must not make a cut message look whole.

const std = @import("std");
const Error = @import("../errors.zig").Error;
const limits = @import("../limits.zig");
const ossl = @import("openssl.zig");
const contexts = @import("contexts.zig");
const Ptr = ossl.Ptr;
const loop_mod = @import("../loop.zig");
const Loop = loop_mod.Loop;
const stream = @import("../stream.zig");
const Stream = stream.Stream;

pub const Session = struct {
    ssl: Ptr,
    loop: *Loop,
    /// The stream this session is on (its slot in the handle table does not move).
    s: *Stream,
    established: bool = false,
    /// close_notify sent.
    notified: bool = false,
    /// The socket's end of stream came (with or without close_notify before it).
    eof: bool = false,
    /// The socket's own error (a reset), to report as itself rather than as TLS's.
    io_error: ?Error = null,
};

/// What `info` tells of a session.
pub const Info = enum(u32) { protocol = 0, cipher = 1, alpn = 2, servername = 3, peer_certificate = 4, resumed = 5 };

fn engine() Error!*const ossl.Api {
    return ossl.get() orelse error.Unsupported;
}

/// Puts a TLS session on a connected stream (`server`: the accepting side). A client
/// names the server it expects in `servername`: sent as SNI (unless an IP literal) and
/// checked against the certificate when the context verifies. The handshake is `handshake`.
pub fn start(loop: *Loop, h: u32, ctx_id: u32, servername: []const u8) Error!void {
    const o = try engine();
    const s = try loop.get(h, .stream);
    if (s.tls != null) return error.InvalidArgument;
    if (s.connecting) return error.NotConnected;
    const c = try contexts.get(ctx_id);
    if (servername.len > 255) return error.InvalidArgument;
    o.ERR_clear_error();
    const bio_method = try bioMethod(o);
    const ssl = o.SSL_new(c.ctx) orelse return error.NoMemory;
    errdefer o.SSL_free(ssl);
    const session = loop.allocator.create(Session) catch return error.NoMemory;
    errdefer loop.allocator.destroy(session);
    session.* = .{ .ssl = ssl, .loop = loop, .s = s };
    const bio = o.BIO_new(bio_method) orelse return error.NoMemory;
    o.BIO_set_data(bio, session);
    o.BIO_set_init(bio, 1);
    o.SSL_set_bio(ssl, bio, bio); // the SSL owns it from here
    if (c.server) {
        o.SSL_set_accept_state(ssl);
    } else {
        o.SSL_set_connect_state(ssl);
        if (c.alpn) |a| {
            if (o.SSL_set_alpn_protos(ssl, &a.bytes, a.len) != 0) return error.NoMemory;
        }
        if (servername.len > 0) {
            var name: [256]u8 = undefined;
            @memcpy(name[0..servername.len], servername);
            name[servername.len] = 0;
            const z: [*:0]const u8 = @ptrCast(&name);
            if (std.net.Address.parseIp(servername, 0)) |_| {
                if (o.X509_VERIFY_PARAM_set1_ip_asc(o.SSL_get0_param(ssl), z) != 1) return error.InvalidArgument;
            } else |_| {
                if (o.SSL_ctrl(ssl, ossl.CTRL_SET_TLSEXT_HOSTNAME, ossl.TLSEXT_NAMETYPE_host_name, z) != 1) return error.InvalidArgument;
                if (o.SSL_set1_host(ssl, z) != 1) return error.InvalidArgument;
            }
        }
    }
    s.tls = session;
}

var method_lock: std.Thread.Mutex = .{};
var shared_method: Ptr = null;

/// zev's BIO type, made once per process.
fn bioMethod(o: *const ossl.Api) Error!Ptr {
    method_lock.lock();
    defer method_lock.unlock();
    if (shared_method) |m| return m;
    const index = o.BIO_get_new_index();
    if (index < 0) return error.NoMemory;
    const m = o.BIO_meth_new(index | ossl.BIO_TYPE_SOURCE_SINK, "zev stream") orelse return error.NoMemory;
    _ = o.BIO_meth_set_write(m, bioWrite);
    _ = o.BIO_meth_set_read(m, bioRead);
    _ = o.BIO_meth_set_ctrl(m, bioCtrl);
    shared_method = m;
    return m;
}

/// OpenSSL reads ciphertext: from the socket, through the backend.
fn bioRead(bio: Ptr, buf: [*]u8, len: c_int) callconv(.c) c_int {
    const o = ossl.get().?;
    const t: *Session = @ptrCast(@alignCast(o.BIO_get_data(bio) orelse return -1));
    o.BIO_clear_flags(bio, ossl.BIO_FLAGS_RWS | ossl.BIO_FLAGS_SHOULD_RETRY);
    if (len <= 0) return 0;
    const n = stream.readRaw(t.loop, t.s, buf[0..@intCast(len)]) catch |err| {
        // Nothing now: the stream wants a READ event, and OpenSSL is told to retry.
        if (err == error.WouldBlock) o.BIO_set_flags(bio, ossl.BIO_FLAGS_READ | ossl.BIO_FLAGS_SHOULD_RETRY) else t.io_error = err;
        return -1;
    };
    if (n == 0) t.eof = true;
    return @intCast(n);
}

/// OpenSSL writes ciphertext: sent, or queued. The queue takes a record past the
/// stream's limit (the slack); the caller encrypts only while under it.
fn bioWrite(bio: Ptr, buf: [*]const u8, len: c_int) callconv(.c) c_int {
    const o = ossl.get().?;
    const t: *Session = @ptrCast(@alignCast(o.BIO_get_data(bio) orelse return -1));
    o.BIO_clear_flags(bio, ossl.BIO_FLAGS_RWS | ossl.BIO_FLAGS_SHOULD_RETRY);
    if (len <= 0) return 0;
    const data = buf[0..@intCast(len)];
    const took = stream.writeRaw(t.loop, t.s, data, t.s.queue_limit + limits.tls_queue_slack) catch |err| {
        t.io_error = err;
        return -1;
    };
    if (took < data.len) {
        // Ciphertext cannot be dropped: the stream cannot go on.
        t.s.failed = error.Limit;
        t.io_error = error.Limit;
        return -1;
    }
    return @intCast(took);
}

fn bioCtrl(_: Ptr, cmd: c_int, _: c_long, _: Ptr) callconv(.c) c_long {
    return if (cmd == ossl.BIO_CTRL_FLUSH) 1 else 0;
}

/// Frees a stream's session (it is closing).
pub fn free(loop: *Loop, s: *Stream) void {
    const t = s.tls orelse return;
    if (ossl.get()) |o| o.SSL_free(t.ssl);
    loop.allocator.destroy(t);
    s.tls = null;
}

/// Runs the handshake as far as it can: 0 once it is done; `WouldBlock` while it waits
/// for the peer (a READ event follows); `TlsFailed` or `TlsUnverified` (the reason in
/// `loop.tls_detail`) when it fails.
pub fn handshake(loop: *Loop, h: u32) Error!void {
    const o = try engine();
    const s = try loop.get(h, .stream);
    const t = s.tls orelse return error.InvalidArgument;
    if (t.established) return;
    o.ERR_clear_error();
    const r = o.SSL_do_handshake(t.ssl);
    if (r == 1) {
        t.established = true;
        return;
    }
    switch (o.SSL_get_error(t.ssl, r)) {
        ossl.ERROR_WANT_READ => return error.WouldBlock, // a READ event follows
        ossl.ERROR_WANT_WRITE => return error.WouldBlock,
        else => {
            if (t.io_error) |err| return failedIo(loop, t, err);
            if (t.eof) return failed(loop, t, error.TlsFailed, "the peer closed the connection during the handshake");
            const verify = o.SSL_get_verify_result(t.ssl);
            if (verify != 0) {
                const why = o.X509_verify_cert_error_string(verify) orelse "unknown";
                return failed(loop, t, error.TlsUnverified, std.mem.span(why));
            }
            return failed(loop, t, error.TlsFailed, null);
        },
    }
}

/// The socket's own error, as the stream reports it (a reset is a reset).
fn failedIo(loop: *Loop, t: *Session, err: Error) Error {
    loop.tls_detail_len = 0;
    if (ossl.get()) |o| o.ERR_clear_error();
    return t.s.failure(err);
}

/// Reads plaintext into `buf`: the bytes, 0 at the peer's close_notify, `WouldBlock`
/// (a READ event follows), or the error (`TlsTruncated`: the stream ended without close_notify).
pub fn read(loop: *Loop, s: *Stream, buf: []u8) Error!usize {
    const o = try engine();
    const t = s.tls.?;
    if (!t.established) return error.NotConnected;
    const want: c_int = @intCast(@min(buf.len, std.math.maxInt(c_int)));
    o.ERR_clear_error();
    const n = o.SSL_read(t.ssl, buf.ptr, want);
    if (n > 0) return @intCast(n);
    switch (o.SSL_get_error(t.ssl, n)) {
        ossl.ERROR_ZERO_RETURN => return 0,
        ossl.ERROR_WANT_READ, ossl.ERROR_WANT_WRITE => return error.WouldBlock,
        else => {
            if (t.io_error) |err| return failedIo(loop, t, err);
            if (t.eof) return failed(loop, t, error.TlsTruncated, null);
            return failed(loop, t, error.TlsFailed, null);
        },
    }
}

/// Encrypts and sends `data`, as much as the write queue has room for: the plaintext
/// bytes taken. Less than `data.len`: a WRITE event follows when the queue has drained.
pub fn write(loop: *Loop, s: *Stream, data: []const u8) Error!usize {
    const o = try engine();
    const t = s.tls.?;
    if (!t.established) return error.NotConnected;
    if (t.notified) return error.Closed;
    var done: usize = 0;
    while (done < data.len and s.queue.len() < s.queue_limit) {
        const n: c_int = @intCast(@min(data.len - done, 16 * 1024));
        o.ERR_clear_error();
        const r = o.SSL_write(t.ssl, data[done..].ptr, n);
        if (r <= 0) {
            if (t.io_error) |err| return failedIo(loop, t, err);
            return failed(loop, t, error.TlsFailed, null);
        }
        done += @intCast(r);
    }
    if (done < data.len) s.want_write = true;
    return done;
}

/// Sends close_notify (once): the peer then reads a clean end.
pub fn notify(s: *Stream) Error!void {
    const o = try engine();
    const t = s.tls orelse return;
    if (t.notified or !t.established) return;
    t.notified = true;
    o.ERR_clear_error();
    _ = o.SSL_shutdown(t.ssl);
    o.ERR_clear_error();
    if (t.io_error) |err| return t.s.failure(err);
}

/// Notes why a session failed (`loop.tls_detail`, for the error's message) and returns `err`.
fn failed(loop: *Loop, t: *Session, err: Error, why: ?[]const u8) Error {
    _ = t;
    const o = ossl.get().?;
    var len: usize = 0;
    if (why) |w| {
        len = @min(w.len, loop.tls_detail.len);
        @memcpy(loop.tls_detail[0..len], w[0..len]);
    } else {
        // OpenSSL's own reason: the last error of the queue ("...:certificate verify failed").
        var last: u64 = 0;
        while (true) {
            const e = o.ERR_get_error();
            if (e == 0) break;
            last = e;
        }
        if (last != 0) {
            o.ERR_error_string_n(last, &loop.tls_detail, loop.tls_detail.len);
            len = std.mem.indexOfScalar(u8, &loop.tls_detail, 0) orelse loop.tls_detail.len;
        }
    }
    loop.tls_detail_len = len;
    o.ERR_clear_error();
    return err;
}

/// Writes what `what` asks of a session into `out`: its length, or 0 when there is none
/// (no ALPN agreed, no certificate sent); `Limit` if `out` is too small.
pub fn info(loop: *Loop, h: u32, what: u32, out: []u8) Error!usize {
    const o = try engine();
    const s = try loop.get(h, .stream);
    const t = s.tls orelse return error.InvalidArgument;
    const kind = std.meta.intToEnum(Info, what) catch return error.InvalidArgument;
    var text: []const u8 = "";
    switch (kind) {
        .protocol => text = std.mem.span(o.SSL_get_version(t.ssl) orelse ""),
        .cipher => text = std.mem.span(o.SSL_CIPHER_get_name(o.SSL_get_current_cipher(t.ssl)) orelse ""),
        .alpn => {
            var p: [*c]const u8 = null;
            var len: c_uint = 0;
            o.SSL_get0_alpn_selected(t.ssl, &p, &len);
            if (p != null) text = p[0..len];
        },
        .servername => text = std.mem.span(o.SSL_get_servername(t.ssl, ossl.TLSEXT_NAMETYPE_host_name) orelse ""),
        .peer_certificate => {
            const x = o.SSL_get1_peer_certificate(t.ssl) orelse return 0;
            defer o.X509_free(x);
            const len = o.i2d_X509(x, null);
            if (len <= 0) return error.Unexpected;
            if (@as(usize, @intCast(len)) > out.len) return error.Limit;
            var p: [*]u8 = out.ptr;
            return @intCast(o.i2d_X509(x, &p));
        },
        .resumed => text = if (o.SSL_session_reused(t.ssl) == 1) "1" else "",
    }
    if (text.len > out.len) return error.Limit;
    @memcpy(out[0..text.len], text);
    return text.len;
}
