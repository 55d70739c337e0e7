//! TLS contexts: what a listener's or a client's TLS streams share (their role, their
//! certificate and key, the CAs they trust, their ALPN protocols), as OpenSSL `SSL_CTX`s
//! behind generation-checked ids. Process-wide, as the engine is: a context made on one
//! thread may serve streams of any loop. A stream's session holds a reference of its own
//! (OpenSSL counts them), so freeing a context never pulls it from under a live stream.

const std = @import("std");
const handles = @import("../handles.zig");
const limits = @import("../limits.zig");
const Error = @import("../errors.zig").Error;
const ossl = @import("openssl.zig");
const Ptr = ossl.Ptr;

pub const Context = struct {
    ctx: Ptr,
    server: bool,
    /// ALPN protocols in wire format (length-prefixed), allocated apart so that the
    /// server's selection callback can hold a stable pointer to them.
    alpn: ?*Alpn = null,
    /// A server's certificates by host name (SNI), allocated apart for its callback.
    sni: ?*Sni = null,
};

/// A server's other certificates, each in a context of its own, by the host name a
/// client asks for (`*.example.com` matches one label); the context's own certificate
/// serves any other name, and clients that send none.
const Sni = struct {
    len: u32 = 0,
    names: [limits.max_sni_names][255]u8 = undefined,
    name_lens: [limits.max_sni_names]u8 = undefined,
    ctxs: [limits.max_sni_names]Ptr = undefined,
    /// Their ALPN lists (their callbacks' arguments), freed with them.
    alpns: [limits.max_sni_names]?*Alpn = undefined,

    fn find(self: *const Sni, host: []const u8) ?Ptr {
        for (0..self.len) |i| {
            const name = self.names[i][0..self.name_lens[i]];
            if (std.ascii.eqlIgnoreCase(name, host)) return self.ctxs[i];
        }
        // Wildcards after exact names: "*.example.com" for "a.example.com", not "a.b.example.com".
        const dot = std.mem.indexOfScalar(u8, host, '.') orelse return null;
        for (0..self.len) |i| {
            const name = self.names[i][0..self.name_lens[i]];
            if (name.len > 2 and name[0] == '*' and std.ascii.eqlIgnoreCase(name[1..], host[dot..])) return self.ctxs[i];
        }
        return null;
    }
};

const Alpn = struct { len: u32, bytes: [255 * 2]u8 };

/// Options of `create`, a bit set (the ABI mirrors them in ffi/abi.ts).
pub const Flag = struct {
    /// Verify the peer's certificate (clients by default; servers that request one).
    pub const verify_peer: u32 = 1;
    /// Servers: a client without a certificate fails the handshake.
    pub const require_peer_cert: u32 = 2;
    /// TLS 1.3 only (the default minimum is TLS 1.2).
    pub const tls13_only: u32 = 4;
    pub const all: u32 = verify_peer | require_peer_cert | tls13_only;
};

var table: ?handles.Table(Context) = null;
var lock: std.Thread.Mutex = .{};
const allocator = std.heap.page_allocator;

fn engine() Error!*const ossl.Api {
    return ossl.get() orelse error.Unsupported;
}

/// A new context for servers or clients: TLS 1.2 at least, no compression, no
/// renegotiation.
pub fn create(server: bool, flags: u32) Error!u32 {
    const o = try engine();
    if (flags & ~Flag.all != 0) return error.InvalidArgument;
    if (flags & Flag.require_peer_cert != 0 and (!server or flags & Flag.verify_peer == 0)) return error.InvalidArgument;
    o.ERR_clear_error();
    const ctx = o.SSL_CTX_new(if (server) o.TLS_server_method() else o.TLS_client_method()) orelse return error.NoMemory;
    errdefer o.SSL_CTX_free(ctx);
    const min: c_long = if (flags & Flag.tls13_only != 0) ossl.TLS1_3_VERSION else ossl.TLS1_2_VERSION;
    if (o.SSL_CTX_ctrl(ctx, ossl.CTRL_SET_MIN_PROTO_VERSION, min, null) != 1) return error.Unexpected;
    _ = o.SSL_CTX_set_options(ctx, ossl.OP_NO_COMPRESSION | ossl.OP_NO_RENEGOTIATION);
    _ = o.SSL_CTX_ctrl(ctx, ossl.CTRL_MODE, ossl.MODE_ACCEPT_MOVING_WRITE_BUFFER, null);
    // A socket read takes what a buffer holds, not a record's header and then its body.
    _ = o.SSL_CTX_ctrl(ctx, ossl.CTRL_SET_READ_AHEAD, 1, null);
    var mode: c_int = ossl.VERIFY_NONE;
    if (flags & Flag.verify_peer != 0) mode |= ossl.VERIFY_PEER;
    if (flags & Flag.require_peer_cert != 0) mode |= ossl.VERIFY_FAIL_IF_NO_PEER_CERT;
    o.SSL_CTX_set_verify(ctx, mode, null);
    // Sessions resumed on a server that verifies clients need an id context.
    if (server) _ = o.SSL_CTX_set_session_id_context(ctx, "zev", 3);
    lock.lock();
    defer lock.unlock();
    if (table == null) table = try handles.Table(Context).init(allocator, limits.max_tls_contexts);
    return table.?.insert(.{ .ctx = ctx, .server = server });
}

/// Frees a context (streams started with it keep their own reference).
pub fn destroy(id: u32) Error!void {
    const o = try engine();
    lock.lock();
    defer lock.unlock();
    const c = (if (table) |*t| t.get(id) else null) orelse return error.BadHandle;
    o.SSL_CTX_free(c.ctx);
    if (c.alpn) |a| allocator.destroy(a);
    if (c.sni) |sni| {
        for (sni.ctxs[0..sni.len], sni.alpns[0..sni.len]) |other, a| {
            o.SSL_CTX_free(other);
            if (a) |x| allocator.destroy(x);
        }
        allocator.destroy(sni);
    }
    table.?.remove(id);
}

/// The context behind `id`, for a stream to start a session with.
pub fn get(id: u32) Error!Context {
    lock.lock();
    defer lock.unlock();
    const c = (if (table) |*t| t.get(id) else null) orelse return error.BadHandle;
    return c.*;
}

/// Reads every PEM certificate in `pem`, calling `take` with each (which owns it).
fn eachCert(o: *const ossl.Api, pem: []const u8, take: anytype) Error!usize {
    if (pem.len == 0 or pem.len > std.math.maxInt(c_int)) return error.InvalidArgument;
    const bio = o.BIO_new_mem_buf(pem.ptr, @intCast(pem.len)) orelse return error.NoMemory;
    defer _ = o.BIO_free(bio);
    var n: usize = 0;
    while (o.PEM_read_bio_X509(bio, null, null, null)) |x| : (n += 1) try take.take(x, n);
    // The read past the last certificate leaves "no start line" in the error queue.
    o.ERR_clear_error();
    return n;
}

/// The certificate (then its chain, in order) and the private key of a server, or of a
/// client that presents one. `InvalidArgument` if either is not PEM or they do not match.
pub fn setCertificate(id: u32, cert_pem: []const u8, key_pem: []const u8) Error!void {
    const o = try engine();
    const c = try get(id);
    o.ERR_clear_error();
    const Chain = struct {
        o: *const ossl.Api,
        ctx: Ptr,
        fn take(self: @This(), x: Ptr, i: usize) Error!void {
            if (i == 0) {
                defer self.o.X509_free(x);
                if (self.o.SSL_CTX_use_certificate(self.ctx, x) != 1) return error.InvalidArgument;
            } else if (self.o.SSL_CTX_ctrl(self.ctx, ossl.CTRL_EXTRA_CHAIN_CERT, 0, x) != 1) {
                self.o.X509_free(x);
                return error.InvalidArgument;
            }
        }
    };
    if (try eachCert(o, cert_pem, Chain{ .o = o, .ctx = c.ctx }) == 0) return error.InvalidArgument;
    if (key_pem.len == 0 or key_pem.len > std.math.maxInt(c_int)) return error.InvalidArgument;
    const bio = o.BIO_new_mem_buf(key_pem.ptr, @intCast(key_pem.len)) orelse return error.NoMemory;
    defer _ = o.BIO_free(bio);
    const key = o.PEM_read_bio_PrivateKey(bio, null, null, null) orelse return error.InvalidArgument;
    defer o.EVP_PKEY_free(key);
    if (o.SSL_CTX_use_PrivateKey(c.ctx, key) != 1) return error.InvalidArgument;
    if (o.SSL_CTX_check_private_key(c.ctx) != 1) return error.InvalidArgument;
}

/// The CAs a context trusts: the PEM certificates in `pem`, or, when it is empty, the
/// system's store (OpenSSL's default paths).
pub fn setCa(id: u32, pem: []const u8) Error!void {
    const o = try engine();
    const c = try get(id);
    o.ERR_clear_error();
    if (pem.len == 0) {
        if (o.SSL_CTX_set_default_verify_paths(c.ctx) != 1) return error.Unexpected;
        return;
    }
    const Store = struct {
        o: *const ossl.Api,
        store: Ptr,
        fn take(self: @This(), x: Ptr, _: usize) Error!void {
            defer self.o.X509_free(x);
            if (self.o.X509_STORE_add_cert(self.store, x) != 1) return error.InvalidArgument;
        }
    };
    const store = o.SSL_CTX_get_cert_store(c.ctx) orelse return error.Unexpected;
    if (try eachCert(o, pem, Store{ .o = o, .store = store }) == 0) return error.InvalidArgument;
}

/// The ALPN protocols, in wire format (each a length byte, then the name), in order of
/// preference: a client offers them; a server picks the first of its own the client
/// offered, and refuses a client that offers protocols it has none of.
pub fn setAlpn(id: u32, wire: []const u8) Error!void {
    const o = try engine();
    if (wire.len == 0 or wire.len > @sizeOf(@FieldType(Alpn, "bytes"))) return error.InvalidArgument;
    var i: usize = 0;
    while (i < wire.len) i += 1 + @as(usize, wire[i]);
    if (i != wire.len) return error.InvalidArgument;
    lock.lock();
    defer lock.unlock();
    const c = (if (table) |*t| t.get(id) else null) orelse return error.BadHandle;
    const a = c.alpn orelse blk: {
        const fresh = allocator.create(Alpn) catch return error.NoMemory;
        c.alpn = fresh;
        break :blk fresh;
    };
    @memcpy(a.bytes[0..wire.len], wire);
    a.len = @intCast(wire.len);
    if (c.server) o.SSL_CTX_set_alpn_select_cb(c.ctx, selectAlpn, a);
}

/// Serves `name` (a host name, or `*.` and a domain) with the certificate of context
/// `other`, which this server context takes over (`other`'s id is gone after it).
pub fn addSni(id: u32, name: []const u8, other: u32) Error!void {
    const o = try engine();
    if (name.len == 0 or name.len > 255 or id == other) return error.InvalidArgument;
    lock.lock();
    defer lock.unlock();
    const t = if (table) |*t| t else return error.BadHandle;
    const c = t.get(id) orelse return error.BadHandle;
    const sub = t.get(other) orelse return error.BadHandle;
    if (!c.server or !sub.server or sub.sni != null) return error.InvalidArgument;
    const sni = c.sni orelse blk: {
        const fresh = allocator.create(Sni) catch return error.NoMemory;
        fresh.* = .{};
        c.sni = fresh;
        _ = o.SSL_CTX_callback_ctrl(c.ctx, ossl.CTRL_SET_TLSEXT_SERVERNAME_CB, @ptrCast(&selectCertificate));
        _ = o.SSL_CTX_ctrl(c.ctx, ossl.CTRL_SET_TLSEXT_SERVERNAME_ARG, 0, fresh);
        break :blk fresh;
    };
    if (sni.len == limits.max_sni_names) return error.Limit;
    @memcpy(sni.names[sni.len][0..name.len], name);
    sni.name_lens[sni.len] = @intCast(name.len);
    sni.ctxs[sni.len] = sub.ctx;
    sni.alpns[sni.len] = sub.alpn;
    sni.len += 1;
    t.remove(other);
}

/// The servername callback: the certificate for the name the client asked for.
fn selectCertificate(ssl: Ptr, _: *c_int, arg: Ptr) callconv(.c) c_int {
    const o = ossl.get() orelse return ossl.TLSEXT_ERR_ALERT_FATAL;
    const sni: *const Sni = @ptrCast(@alignCast(arg orelse return ossl.TLSEXT_ERR_NOACK));
    const host = std.mem.span(o.SSL_get_servername(ssl, ossl.TLSEXT_NAMETYPE_host_name) orelse return ossl.TLSEXT_ERR_NOACK);
    if (sni.find(host)) |ctx| _ = o.SSL_set_SSL_CTX(ssl, ctx);
    return ossl.TLSEXT_ERR_OK;
}

fn selectAlpn(_: Ptr, out: *[*c]const u8, outlen: *u8, in: [*c]const u8, inlen: c_uint, arg: Ptr) callconv(.c) c_int {
    const o = ossl.get() orelse return ossl.TLSEXT_ERR_ALERT_FATAL;
    const a: *const Alpn = @ptrCast(@alignCast(arg orelse return ossl.TLSEXT_ERR_NOACK));
    var chosen: [*c]u8 = null;
    // Server preference: the first of ours the client offered.
    const r = o.SSL_select_next_proto(&chosen, outlen, &a.bytes, a.len, in, inlen);
    if (r != ossl.NPN_NEGOTIATED) return ossl.TLSEXT_ERR_ALERT_FATAL;
    out.* = chosen;
    return ossl.TLSEXT_ERR_OK;
}
