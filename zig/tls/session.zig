//! A TLS stream's engine: an OpenSSL `SSL` between the socket and the caller, fed through
//! memory BIOs, so that the loop keeps every system call (and its readiness rules) and
//! only plaintext crosses the ABI. Ciphertext the kernel does not take waits in the
//! stream's write queue, which bounds it as it bounds plaintext.
//!
//! Reads: ciphertext from the socket (through the backend's own read: epoll or the ring)
//! goes into the read BIO only when OpenSSL asks for more, at most 16 KiB at a time, so
//! the BIO holds at most one read ahead. Writes: plaintext is encrypted only while the
//! write queue is under its limit. A peer's end of stream without close_notify is
//! `TlsTruncated`, never a clean end: an attacker who cuts a connection must not make a
//! cut message look whole.

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

/// Ciphertext read from the socket at a time (one TLS record and its header fits).
const chunk = 16 * 1024 + 512;

pub const Session = struct {
    ssl: Ptr,
    rbio: Ptr,
    wbio: Ptr,
    server: bool,
    established: bool = false,
    /// close_notify sent.
    notified: bool = false,
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
    const ssl = o.SSL_new(c.ctx) orelse return error.NoMemory;
    errdefer o.SSL_free(ssl);
    const rbio = o.BIO_new(o.BIO_s_mem()) orelse return error.NoMemory;
    const wbio = o.BIO_new(o.BIO_s_mem()) orelse {
        _ = o.BIO_free(rbio);
        return error.NoMemory;
    };
    // An empty read BIO means "wait for more", not the end of the stream.
    _ = o.BIO_ctrl(rbio, ossl.BIO_C_SET_BUF_MEM_EOF_RETURN, -1, null);
    _ = o.BIO_ctrl(wbio, ossl.BIO_C_SET_BUF_MEM_EOF_RETURN, -1, null);
    o.SSL_set_bio(ssl, rbio, wbio); // the SSL owns them from here
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
    const session = loop.allocator.create(Session) catch return error.NoMemory;
    session.* = .{ .ssl = ssl, .rbio = rbio, .wbio = wbio, .server = c.server };
    s.tls = session;
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
    while (true) {
        o.ERR_clear_error();
        const r = o.SSL_do_handshake(t.ssl);
        try flushOut(loop, s, t);
        if (r == 1) {
            t.established = true;
            return;
        }
        switch (o.SSL_get_error(t.ssl, r)) {
            ossl.ERROR_WANT_READ => if (!try fillIn(loop, s, t)) {
                return failed(loop, t, error.TlsFailed, "the peer closed the connection during the handshake");
            },
            ossl.ERROR_WANT_WRITE => return error.WouldBlock,
            else => {
                const verify = o.SSL_get_verify_result(t.ssl);
                if (verify != 0) {
                    const why = o.X509_verify_cert_error_string(verify) orelse "unknown";
                    return failed(loop, t, error.TlsUnverified, std.mem.span(why));
                }
                return failed(loop, t, error.TlsFailed, null);
            },
        }
    }
}

/// Reads plaintext into `buf`: the bytes, 0 at the peer's close_notify, `WouldBlock`
/// (a READ event follows), or the error (`TlsTruncated`: the stream ended without close_notify).
pub fn read(loop: *Loop, s: *Stream, buf: []u8) Error!usize {
    const o = try engine();
    const t = s.tls.?;
    if (!t.established) return error.NotConnected;
    const want: c_int = @intCast(@min(buf.len, std.math.maxInt(c_int)));
    while (true) {
        o.ERR_clear_error();
        const n = o.SSL_read(t.ssl, buf.ptr, want);
        // A read may answer the peer (a key update): send it.
        flushOut(loop, s, t) catch {};
        if (n > 0) return @intCast(n);
        switch (o.SSL_get_error(t.ssl, n)) {
            ossl.ERROR_ZERO_RETURN => return 0,
            ossl.ERROR_WANT_READ => if (!try fillIn(loop, s, t)) {
                return failed(loop, t, error.TlsTruncated, null);
            },
            ossl.ERROR_WANT_WRITE => return error.WouldBlock,
            else => return failed(loop, t, error.TlsFailed, null),
        }
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
        if (r <= 0) return failed(loop, t, error.TlsFailed, null);
        done += @intCast(r);
        try flushOut(loop, s, t);
        if (s.failed) |err| return err;
    }
    if (done < data.len) s.want_write = true;
    return done;
}

/// Sends close_notify (once): the peer then reads a clean end.
pub fn notify(loop: *Loop, s: *Stream) Error!void {
    const o = try engine();
    const t = s.tls orelse return;
    if (t.notified or !t.established) return;
    t.notified = true;
    o.ERR_clear_error();
    _ = o.SSL_shutdown(t.ssl);
    o.ERR_clear_error();
    try flushOut(loop, s, t);
}

/// Moves the ciphertext OpenSSL wrote to the socket, or, what the kernel does not take,
/// to the write queue (the caller bounds it: it encrypts only under the queue's limit).
fn flushOut(loop: *Loop, s: *Stream, t: *Session) Error!void {
    const o = try engine();
    var buf: [chunk]u8 = undefined;
    while (o.BIO_ctrl_pending(t.wbio) > 0) {
        const n = o.BIO_read(t.wbio, &buf, buf.len);
        if (n <= 0) break;
        const bytes = buf[0..@intCast(n)];
        const took = try stream.writeRaw(loop, s, bytes, s.queue_limit + limits.tls_queue_slack);
        if (took < bytes.len) {
            // Ciphertext cannot be dropped: the stream cannot go on.
            s.failed = error.Limit;
            return error.Limit;
        }
    }
}

/// Reads ciphertext from the socket into the read BIO. True if some came; false at the
/// end of the stream; `WouldBlock` when there is none now (a READ event follows).
fn fillIn(loop: *Loop, s: *Stream, t: *Session) Error!bool {
    const o = try engine();
    var buf: [chunk]u8 = undefined;
    const n = try stream.readRaw(loop, s, &buf);
    if (n == 0) return false;
    if (o.BIO_write(t.rbio, &buf, @intCast(n)) != n) return error.NoMemory;
    return true;
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
