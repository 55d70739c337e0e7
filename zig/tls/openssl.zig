//! The OpenSSL 3 functions zev drives, as a table of pointers the runtime resolves from
//! the system's libssl.so.3 and libcrypto.so.3 and hands over (`zev_tls_engine`): the
//! library itself links nothing (the musl build has no libc and no dynamic loader), so
//! OpenSSL is found at run time, and a machine without it still loads zev.
//!
//! The fields' order is ABI: abi_gen.zig writes their names into ffi/abi.ts
//! (`OPENSSL_SYMBOLS`), and the loaders resolve them in that order. Constants are those of
//! OpenSSL 3.0's headers (macros over `*_ctrl` calls are spelled out here).

const std = @import("std");

pub const Ptr = ?*anyopaque;
pub const CPtr = ?*const anyopaque;

pub const AlpnSelect = *const fn (ssl: Ptr, out: *[*c]const u8, outlen: *u8, in: [*c]const u8, inlen: c_uint, arg: Ptr) callconv(.c) c_int;
pub const ServernameCb = *const fn (ssl: Ptr, alert: *c_int, arg: Ptr) callconv(.c) c_int;

pub const CTRL_SET_TLSEXT_SERVERNAME_ARG = 54;

pub const BioWrite = *const fn (bio: Ptr, buf: [*]const u8, len: c_int) callconv(.c) c_int;
pub const BioRead = *const fn (bio: Ptr, buf: [*]u8, len: c_int) callconv(.c) c_int;
pub const BioCtrl = *const fn (bio: Ptr, cmd: c_int, num: c_long, ptr: Ptr) callconv(.c) c_long;

pub const BIO_TYPE_SOURCE_SINK = 0x0400;
pub const BIO_CTRL_FLUSH = 11;
pub const BIO_FLAGS_READ = 0x01;
pub const BIO_FLAGS_WRITE = 0x02;
pub const BIO_FLAGS_RWS = 0x07;
pub const BIO_FLAGS_SHOULD_RETRY = 0x08;
pub const CTRL_SET_READ_AHEAD = 41;

/// The functions, in ABI order.
pub const Api = struct {
    OpenSSL_version: *const fn (c_int) callconv(.c) ?[*:0]const u8,
    TLS_server_method: *const fn () callconv(.c) CPtr,
    TLS_client_method: *const fn () callconv(.c) CPtr,
    SSL_CTX_new: *const fn (CPtr) callconv(.c) Ptr,
    SSL_CTX_free: *const fn (Ptr) callconv(.c) void,
    SSL_CTX_ctrl: *const fn (Ptr, c_int, c_long, Ptr) callconv(.c) c_long,
    SSL_CTX_callback_ctrl: *const fn (Ptr, c_int, CPtr) callconv(.c) c_long,
    SSL_CTX_set_options: *const fn (Ptr, u64) callconv(.c) u64,
    SSL_CTX_use_certificate: *const fn (Ptr, Ptr) callconv(.c) c_int,
    SSL_CTX_use_PrivateKey: *const fn (Ptr, Ptr) callconv(.c) c_int,
    SSL_CTX_check_private_key: *const fn (Ptr) callconv(.c) c_int,
    SSL_CTX_get_cert_store: *const fn (Ptr) callconv(.c) Ptr,
    SSL_CTX_set_default_verify_paths: *const fn (Ptr) callconv(.c) c_int,
    SSL_CTX_set_verify: *const fn (Ptr, c_int, CPtr) callconv(.c) void,
    SSL_CTX_set_alpn_select_cb: *const fn (Ptr, ?AlpnSelect, Ptr) callconv(.c) void,
    SSL_CTX_set_session_id_context: *const fn (Ptr, [*]const u8, c_uint) callconv(.c) c_int,
    SSL_new: *const fn (Ptr) callconv(.c) Ptr,
    SSL_free: *const fn (Ptr) callconv(.c) void,
    SSL_set_bio: *const fn (Ptr, Ptr, Ptr) callconv(.c) void,
    SSL_set_accept_state: *const fn (Ptr) callconv(.c) void,
    SSL_set_connect_state: *const fn (Ptr) callconv(.c) void,
    SSL_do_handshake: *const fn (Ptr) callconv(.c) c_int,
    SSL_read: *const fn (Ptr, [*]u8, c_int) callconv(.c) c_int,
    SSL_write: *const fn (Ptr, [*]const u8, c_int) callconv(.c) c_int,
    SSL_shutdown: *const fn (Ptr) callconv(.c) c_int,
    SSL_get_shutdown: *const fn (Ptr) callconv(.c) c_int,
    SSL_get_error: *const fn (Ptr, c_int) callconv(.c) c_int,
    SSL_ctrl: *const fn (Ptr, c_int, c_long, CPtr) callconv(.c) c_long,
    SSL_set1_host: *const fn (Ptr, [*:0]const u8) callconv(.c) c_int,
    SSL_set_alpn_protos: *const fn (Ptr, [*]const u8, c_uint) callconv(.c) c_int,
    SSL_get0_alpn_selected: *const fn (Ptr, *[*c]const u8, *c_uint) callconv(.c) void,
    SSL_get_version: *const fn (Ptr) callconv(.c) ?[*:0]const u8,
    SSL_get_current_cipher: *const fn (Ptr) callconv(.c) CPtr,
    SSL_CIPHER_get_name: *const fn (CPtr) callconv(.c) ?[*:0]const u8,
    SSL_get_servername: *const fn (Ptr, c_int) callconv(.c) ?[*:0]const u8,
    SSL_set_SSL_CTX: *const fn (Ptr, Ptr) callconv(.c) Ptr,
    SSL_get_verify_result: *const fn (Ptr) callconv(.c) c_long,
    SSL_get0_param: *const fn (Ptr) callconv(.c) Ptr,
    X509_VERIFY_PARAM_set1_ip_asc: *const fn (Ptr, [*:0]const u8) callconv(.c) c_int,
    SSL_get1_peer_certificate: *const fn (Ptr) callconv(.c) Ptr,
    SSL_session_reused: *const fn (Ptr) callconv(.c) c_int,
    SSL_select_next_proto: *const fn (*[*c]u8, *u8, [*]const u8, c_uint, [*]const u8, c_uint) callconv(.c) c_int,
    BIO_get_new_index: *const fn () callconv(.c) c_int,
    BIO_meth_new: *const fn (c_int, [*:0]const u8) callconv(.c) Ptr,
    BIO_meth_set_write: *const fn (Ptr, BioWrite) callconv(.c) c_int,
    BIO_meth_set_read: *const fn (Ptr, BioRead) callconv(.c) c_int,
    BIO_meth_set_ctrl: *const fn (Ptr, BioCtrl) callconv(.c) c_int,
    BIO_set_data: *const fn (Ptr, Ptr) callconv(.c) void,
    BIO_get_data: *const fn (Ptr) callconv(.c) Ptr,
    BIO_set_init: *const fn (Ptr, c_int) callconv(.c) void,
    BIO_set_flags: *const fn (Ptr, c_int) callconv(.c) void,
    BIO_clear_flags: *const fn (Ptr, c_int) callconv(.c) void,
    BIO_s_mem: *const fn () callconv(.c) CPtr,
    BIO_new: *const fn (CPtr) callconv(.c) Ptr,
    BIO_new_mem_buf: *const fn ([*]const u8, c_int) callconv(.c) Ptr,
    BIO_free: *const fn (Ptr) callconv(.c) c_int,
    BIO_read: *const fn (Ptr, [*]u8, c_int) callconv(.c) c_int,
    BIO_write: *const fn (Ptr, [*]const u8, c_int) callconv(.c) c_int,
    BIO_ctrl: *const fn (Ptr, c_int, c_long, Ptr) callconv(.c) c_long,
    BIO_ctrl_pending: *const fn (Ptr) callconv(.c) usize,
    PEM_read_bio_X509: *const fn (Ptr, Ptr, Ptr, Ptr) callconv(.c) Ptr,
    PEM_read_bio_PrivateKey: *const fn (Ptr, Ptr, Ptr, Ptr) callconv(.c) Ptr,
    X509_free: *const fn (Ptr) callconv(.c) void,
    EVP_PKEY_free: *const fn (Ptr) callconv(.c) void,
    X509_STORE_add_cert: *const fn (Ptr, Ptr) callconv(.c) c_int,
    X509_verify_cert_error_string: *const fn (c_long) callconv(.c) ?[*:0]const u8,
    i2d_X509: *const fn (Ptr, ?*[*]u8) callconv(.c) c_int,
    ERR_get_error: *const fn () callconv(.c) c_ulong,
    ERR_clear_error: *const fn () callconv(.c) void,
    ERR_error_string_n: *const fn (c_ulong, [*]u8, usize) callconv(.c) void,
};

pub const symbol_count = @typeInfo(Api).@"struct".fields.len;

/// The table, once the runtime has handed it over (process-wide: every loop and thread
/// uses the same library).
pub var api: ?*const Api = null;
var storage: Api = undefined;
var lock: std.Thread.Mutex = .{};

/// Takes the runtime's table (`ptrs[i]` the address of the i-th field's function). A
/// null pointer refuses the whole table; a second call keeps the first table.
pub fn install(ptrs: []const usize) bool {
    lock.lock();
    defer lock.unlock();
    if (api != null) return true;
    if (ptrs.len != symbol_count) return false;
    for (ptrs) |p| if (p == 0) return false;
    inline for (@typeInfo(Api).@"struct".fields, 0..) |f, i| {
        @field(storage, f.name) = @ptrFromInt(ptrs[i]);
    }
    @atomicStore(?*const Api, &api, &storage, .release);
    return true;
}

pub fn get() ?*const Api {
    return @atomicLoad(?*const Api, &api, .acquire);
}

pub const ERROR_NONE = 0;
pub const ERROR_SSL = 1;
pub const ERROR_WANT_READ = 2;
pub const ERROR_WANT_WRITE = 3;
pub const ERROR_SYSCALL = 5;
pub const ERROR_ZERO_RETURN = 6;

pub const CTRL_EXTRA_CHAIN_CERT = 14;
pub const CTRL_MODE = 33;
pub const CTRL_SET_SESS_CACHE_MODE = 44;
pub const CTRL_SET_TLSEXT_SERVERNAME_CB = 53;
pub const CTRL_SET_TLSEXT_HOSTNAME = 55;
pub const CTRL_SET_MIN_PROTO_VERSION = 123;
pub const BIO_C_SET_BUF_MEM_EOF_RETURN = 130;

pub const TLS1_2_VERSION = 0x0303;
pub const TLS1_3_VERSION = 0x0304;
pub const TLSEXT_NAMETYPE_host_name = 0;
pub const TLSEXT_ERR_OK = 0;
pub const TLSEXT_ERR_ALERT_FATAL = 2;
pub const TLSEXT_ERR_NOACK = 3;
pub const NPN_NEGOTIATED = 1;

pub const VERIFY_NONE = 0;
pub const VERIFY_PEER = 1;
pub const VERIFY_FAIL_IF_NO_PEER_CERT = 2;

pub const MODE_ENABLE_PARTIAL_WRITE = 0x1;
pub const MODE_ACCEPT_MOVING_WRITE_BUFFER = 0x2;
/// Frees a session's buffers (about 34 KiB) after every record. Not set: a bulk transfer
/// drains its socket at almost every record, and this cost it a quarter of its CPU
/// (2,490 against 1,930 µs per MB here); freeing at a read that finds nothing cost the same.
pub const MODE_RELEASE_BUFFERS = 0x10;

pub const OP_NO_COMPRESSION: u64 = 1 << 17;
pub const OP_NO_RENEGOTIATION: u64 = 1 << 30;

pub const SENT_SHUTDOWN = 1;
pub const RECEIVED_SHUTDOWN = 2;
