//! Every bound of the reactor, in one place. Nothing in zev grows without one of these.
//! README.md ("Limits") documents them for users; keep the two in step.

/// Kernel events taken by one `zev_poll` call. A busy loop polls again at once, so this
/// bounds the latency one poll adds to the JS thread, not the throughput.
pub const max_events_per_poll: u32 = 256;

/// Connections accepted by one `zev_accept` call. The listener is level-triggered, so
/// whatever the batch leaves in the backlog is reported again by the next poll: a burst
/// cannot be lost, and it cannot starve the connections already open either.
pub const accept_batch: u32 = 64;

/// Handles (listeners and streams) one loop can hold, by default and at most. The most is
/// set by the handle encoding (see handles.zig).
pub const default_max_handles: u32 = 65536;
pub const max_handles: u32 = 1 << 18;

/// Loops one process can open (one per JS thread that uses zev).
pub const max_loops: u32 = 64;

/// Bytes a stream may hold in its write queue, once the kernel's send buffer is full.
/// `zev_write` accepts no more than this; the caller waits for the queue to drain.
pub const default_write_queue_bytes: u32 = 256 * 1024;
pub const max_write_queue_bytes: u32 = 64 * 1024 * 1024;

/// Listen backlog asked of the kernel (which caps it at net.core.somaxconn).
pub const listen_backlog: u32 = 4096;

/// When accept fails for lack of descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM), the
/// level-triggered listener would report the same pending connection forever: it is
/// paused, and retried after a backoff that doubles from the first to the last value,
/// or at once when the loop closes a descriptor.
pub const accept_backoff_first_ms: u32 = 1;
pub const accept_backoff_max_ms: u32 = 100;

/// Bytes one UDP datagram may carry (the most an IPv4 datagram holds; 64 KiB less headers).
/// `send` refuses more; `receive` reports a datagram longer than its buffer as truncated.
pub const max_datagram_bytes: u32 = 65507;

/// Write calls one stream may have waiting at once (src/net/stream.ts): each holds the caller's
/// buffer, so their number is bounded too. Past it, `write` rejects with `Limit`.
pub const max_pending_writes: u32 = 1024;

/// The io_uring backend (`ZEV_BACKEND=io_uring`, zig/backends/io_uring.zig): receive buffers the
/// loop provides to the kernel, their size, and how many one stream may hold unread (past
/// it, its receive stops until it is read); submission and completion queue entries.
pub const ring_buffers: u16 = 512;
pub const ring_buffer_bytes: u32 = 4096;
pub const ring_buffers_per_stream: u16 = 8;
pub const ring_sq_entries: u16 = 1024;
pub const ring_cq_entries: u32 = 8192;

/// TLS contexts in the process (listeners' and clients' settings, shared by their streams).
pub const max_tls_contexts: u32 = 1024;
/// Ciphertext a TLS stream may queue past its write queue limit: what one record and a
/// handshake flight add after the plaintext that filled the queue (it encrypts only under
/// the limit, and ciphertext, once made, cannot be dropped).
pub const tls_queue_slack: u32 = 64 * 1024;
/// Host names (SNI) one TLS server context serves with certificates of their own.
pub const max_sni_names: u32 = 64;
