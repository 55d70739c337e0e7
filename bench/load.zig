//! load — zev's TCP load generator. Single-threaded epoll client, no libc.
//!
//!   load echo   --port P [--host H] [--connections N] [--size B] [--pipeline D]
//!               [--rate R] [--duration S] [--warmup S] [--json]
//!   load accept --port P [--host H] [--connections N] [--duration S] [--json]
//!   load rounds --port P [--host H] [--clients C] [--rounds R] [--deadline-ms MS]
//!               [--size B] [--json]
//!   load burst  --port P [--host H] [--connections N] [--deadline-ms MS] [--json]
//!   load hold   --port P [--host H] [--connections N] [--hold S] [--probes K]
//!               [--deadline-ms MS] [--json]
//!
//! Exit codes: 0 ok, 1 fatal error or (burst) not every connection served,
//! 2 usage error. Against a 127.x address, client sockets bind to source
//! addresses 127.0.0.2-17 in turn (see Dialer).
//!
//! Build: zig build-exe -O ReleaseFast -target x86_64-linux-musl bench/load.zig -femit-bin=OUT

const std = @import("std");
const linux = std.os.linux;
const io = @import("linux_io.zig");
const flags = @import("flags.zig");

const usage_text =
    \\usage:
    \\  load echo   --port P [--host 127.0.0.1] [--connections 1] [--size 64]
    \\              [--pipeline 1] [--rate 0] [--duration 5] [--warmup 0] [--json]
    \\      closed loop: each connection keeps PIPELINE messages of SIZE bytes in flight;
    \\      with --rate R (requests/s over all connections), paced instead: each
    \\      connection sends one message every CONNECTIONS/R s and waits for its echo
    \\  load accept --port P [--host 127.0.0.1] [--connections 1] [--duration 5] [--json]
    \\      each slot loops connect, send 64 B, read echo, close
    \\  load rounds --port P [--host 127.0.0.1] [--clients 20] [--rounds 100]
    \\              [--deadline-ms 2000] [--size 64] [--json]
    \\      per round CLIENTS connect at once, send SIZE bytes, read echo, close;
    \\      a round not done within the deadline counts as a stall
    \\  load burst  --port P [--host 127.0.0.1] [--connections 1000]
    \\              [--deadline-ms 10000] [--json]
    \\      open all connections, then send 64 B on each; exit 1 unless all are served
    \\  load hold  --port P [--host 127.0.0.1] [--connections 1000] [--hold 5] [--probes 200]
    \\              [--deadline-ms 60000] [--json]
    \\      open CONNECTIONS (at most 256 connecting at once) and one probe connection,
    \\      one 64 B echo on each, and keep them open; print a `held` line, stay idle for
    \\      HOLD s, then time PROBES round trips of 64 B on the probe connection and
    \\      check that every held connection is still open; exit 1 unless all are
    \\
    \\Flags take `--flag value` or `--flag=value`. Durations are seconds (fractions ok).
    \\Against 127.x, sockets bind to sources 127.0.0.2-17 in turn (TIME_WAIT spread).
    \\Exit codes: 0 ok, 1 fatal error or burst stall, 2 usage error.
    \\
;

// ---------------------------------------------------------------- options

const Mode = enum { echo, accept, rounds, burst, hold };

const Flag = enum { host, port, connections, size, pipeline, rate, duration, warmup, clients, rounds, deadline_ms, max_stalls, pause_ms, hold, probes, json };

const flag_names = [_]struct { []const u8, Flag }{
    .{ "--host", .host },               .{ "--port", .port },
    .{ "--connections", .connections }, .{ "--size", .size },
    .{ "--pipeline", .pipeline },       .{ "--duration", .duration },
    .{ "--rate", .rate },               .{ "--warmup", .warmup },
    .{ "--clients", .clients },         .{ "--rounds", .rounds },
    .{ "--deadline-ms", .deadline_ms }, .{ "--max-stalls", .max_stalls },
    .{ "--pause-ms", .pause_ms },       .{ "--json", .json },
    .{ "--hold", .hold },               .{ "--probes", .probes },
};

fn flagAllowed(mode: Mode, flag: Flag) bool {
    return switch (flag) {
        .host, .port, .json => true,
        .connections => mode != .rounds,
        .size => mode == .echo or mode == .rounds,
        .pipeline, .rate, .warmup => mode == .echo,
        .duration => mode == .echo or mode == .accept,
        .clients, .rounds, .max_stalls, .pause_ms => mode == .rounds,
        .deadline_ms => mode == .rounds or mode == .burst or mode == .hold,
        .hold, .probes => mode == .hold,
    };
}

const Opts = struct {
    mode: Mode,
    host: []const u8 = "127.0.0.1",
    port: u16 = 0,
    connections: u32 = 1,
    size: u32 = 64,
    pipeline: u32 = 1,
    /// echo: requests per second over all connections (0: closed loop).
    rate: u32 = 0,
    duration: f64 = 5,
    warmup: f64 = 0,
    clients: u32 = 20,
    rounds: u32 = 100,
    deadline_ms: u32 = 2000,
    /// rounds: stop after this many stalled rounds (0: never).
    max_stalls: u32 = 0,
    /// rounds: idle time between rounds, so that the server parks and is woken each round.
    pause_ms: u32 = 0,
    /// hold: idle seconds with every connection held, and round trips timed after.
    hold: f64 = 5,
    probes: u32 = 200,
    json: bool = false,
};

/// Payload size of accept and burst requests.
const small_msg = 64;
/// Upper bound on --size, so a typo cannot ask for gigabytes of buffer.
const max_size = 16 << 20;

fn usage(comptime fmt: []const u8, args: anytype) noreturn {
    std.debug.print("load: " ++ fmt ++ "\n" ++ usage_text, args);
    std.process.exit(2);
}

fn fatal(comptime fmt: []const u8, args: anytype) noreturn {
    std.debug.print("load: " ++ fmt ++ "\n", args);
    std.process.exit(1);
}

fn parseArgs() Opts {
    var args = std.process.args();
    _ = args.skip();
    const mode_arg = args.next() orelse usage("missing mode", .{});
    if (std.mem.eql(u8, mode_arg, "-h") or std.mem.eql(u8, mode_arg, "--help")) {
        std.fs.File.stdout().writeAll(usage_text) catch {};
        std.process.exit(0);
    }
    const mode = std.meta.stringToEnum(Mode, mode_arg) orelse usage("unknown mode '{s}'", .{mode_arg});
    var o = Opts{ .mode = mode };
    if (mode == .burst or mode == .hold) {
        o.connections = 1000;
        o.deadline_ms = if (mode == .hold) 60000 else 10000;
    }
    var have_port = false;
    while (args.next()) |arg| {
        if (std.mem.eql(u8, arg, "-h") or std.mem.eql(u8, arg, "--help")) {
            std.fs.File.stdout().writeAll(usage_text) catch {};
            std.process.exit(0);
        }
        const given = flags.split(arg);
        const name = given.name;
        const inline_value = given.value;
        const flag = for (flag_names) |f| {
            if (std.mem.eql(u8, f[0], name)) break f[1];
        } else usage("unknown flag '{s}'", .{arg});
        if (!flagAllowed(mode, flag)) usage("flag {s} does not apply to mode {t}", .{ name, mode });
        if (flag == .json) {
            if (inline_value != null) usage("--json takes no value", .{});
            o.json = true;
            continue;
        }
        const v = inline_value orelse args.next() orelse usage("missing value for {s}", .{name});
        switch (flag) {
            .host => o.host = v,
            .port => {
                o.port = parseUint(u16, name, v, 1);
                have_port = true;
            },
            // hold --connections 0: the probe alone, the baseline for its round trips.
            .connections => o.connections = parseUint(u32, name, v, if (mode == .hold) 0 else 1),
            .size => o.size = parseUint(u32, name, v, 1),
            .pipeline => o.pipeline = parseUint(u32, name, v, 1),
            // 0, the default, is the closed loop (as the usage says).
            .rate => o.rate = parseUint(u32, name, v, 0),
            .clients => o.clients = parseUint(u32, name, v, 1),
            .rounds => o.rounds = parseUint(u32, name, v, 1),
            .deadline_ms => o.deadline_ms = parseUint(u32, name, v, 1),
            .max_stalls => o.max_stalls = parseUint(u32, name, v, 0),
            .pause_ms => o.pause_ms = parseUint(u32, name, v, 0),
            .duration => o.duration = parseSeconds(name, v, false),
            .warmup => o.warmup = parseSeconds(name, v, true),
            .hold => o.hold = parseSeconds(name, v, true),
            .probes => o.probes = parseUint(u32, name, v, 1),
            .json => unreachable,
        }
    }
    if (!have_port) usage("--port is required", .{});
    if (o.size > max_size) usage("--size must be at most {d}", .{max_size});
    if (o.rate > 0 and o.pipeline != 1) usage("--rate needs --pipeline 1", .{});
    if (o.rate > 10_000_000) usage("--rate must be at most 10000000", .{});
    return o;
}

fn parseUint(comptime T: type, name: []const u8, v: []const u8, min: T) T {
    const n = std.fmt.parseInt(T, v, 10) catch usage("invalid value '{s}' for {s}", .{ v, name });
    if (n < min) usage("{s} must be at least {d}", .{ name, min });
    return n;
}

fn parseSeconds(name: []const u8, v: []const u8, allow_zero: bool) f64 {
    const s = std.fmt.parseFloat(f64, v) catch usage("invalid value '{s}' for {s}", .{ v, name });
    if (!std.math.isFinite(s) or s < 0 or (s == 0 and !allow_zero) or s > 1e6)
        usage("{s} must be a {s} number of seconds", .{ name, if (allow_zero) "non-negative" else "positive" });
    return s;
}

// ---------------------------------------------------------------- time

fn now() u64 {
    var ts: linux.timespec = undefined;
    _ = linux.clock_gettime(.MONOTONIC, &ts);
    return @as(u64, @intCast(ts.sec)) * std.time.ns_per_s + @as(u64, @intCast(ts.nsec));
}

fn secondsToNs(s: f64) u64 {
    return @intFromFloat(s * std.time.ns_per_s);
}

// ---------------------------------------------------------------- histogram

/// Log-linear latency histogram in nanoseconds: exact below 128 ns, then 64
/// linear buckets per power of two, so any reported value is within ~1.6%.
/// Fixed size (30 KiB), so recording never allocates.
const Histogram = struct {
    const sub_bits = 6;
    const sub = 1 << sub_bits;
    const n_buckets = (64 - sub_bits) * sub + sub;

    counts: [n_buckets]u64 = @splat(0),
    total: u64 = 0,
    max: u64 = 0,

    fn index(v: u64) usize {
        if (v < 2 * sub) return @intCast(v);
        const shift: u6 = @intCast(63 - @clz(v) - sub_bits);
        return @as(usize, shift) * sub + @as(usize, @intCast(v >> shift));
    }

    /// Midpoint of bucket i, i.e. the value reported for it.
    fn value(i: usize) u64 {
        if (i < 2 * sub) return i;
        const shift: u6 = @intCast(i / sub - 1);
        const lower = @as(u64, i % sub + sub) << shift;
        return lower + ((@as(u64, 1) << shift) - 1) / 2;
    }

    fn record(h: *Histogram, ns: u64) void {
        h.counts[index(ns)] += 1;
        h.total += 1;
        h.max = @max(h.max, ns);
    }

    /// q in (0,1]; returns microseconds, 0 when empty.
    fn quantileUs(h: *const Histogram, q: f64) f64 {
        if (h.total == 0) return 0;
        const rank: u64 = @max(1, @as(u64, @intFromFloat(@ceil(q * @as(f64, @floatFromInt(h.total))))));
        var seen: u64 = 0;
        for (h.counts, 0..) |c, i| {
            seen += c;
            if (seen >= rank) return nsToUs(@min(value(i), h.max));
        }
        return nsToUs(h.max);
    }

    fn maxUs(h: *const Histogram) f64 {
        return nsToUs(h.max);
    }
};

fn nsToUs(ns: u64) f64 {
    return @as(f64, @floatFromInt(ns)) / 1000.0;
}

/// Events per second; 0 rather than NaN for an empty interval (keeps JSON valid).
fn perSecond(count: u64, seconds: f64) f64 {
    return if (seconds > 0) @as(f64, @floatFromInt(count)) / seconds else 0;
}

test "histogram buckets are contiguous and within 1.6%" {
    var prev: usize = 0;
    var v: u64 = 1;
    while (v < 1 << 40) : (v += v / 7 + 1) {
        const i = Histogram.index(v);
        try std.testing.expect(i >= prev and i < Histogram.n_buckets);
        const rep: f64 = @floatFromInt(Histogram.value(i));
        try std.testing.expect(@abs(rep - @as(f64, @floatFromInt(v))) <= 0.016 * @as(f64, @floatFromInt(v)));
        prev = i;
    }
    try std.testing.expectEqual(Histogram.n_buckets - 1, Histogram.index(std.math.maxInt(u64)));

    var h = Histogram{};
    for (1..1001) |us| h.record(us * 1000);
    try std.testing.expectApproxEqRel(500.0, h.quantileUs(0.5), 0.016);
    try std.testing.expectApproxEqRel(990.0, h.quantileUs(0.99), 0.016);
    try std.testing.expectEqual(1000.0, h.maxUs());
}

// ---------------------------------------------------------------- payload

/// Payload bytes are windows into one random pattern whose period is prime,
/// so consecutive messages differ and echoed data can be checked with a
/// single memcmp against the window the bytes were sent from.
const pattern_period = 65521;
/// Largest read or write done at once; the pattern extends this far past the
/// period so every window is contiguous.
const io_chunk = 64 * 1024;

fn makePattern(gpa: std.mem.Allocator, max_window: usize) []u8 {
    const p = gpa.alloc(u8, pattern_period + @max(max_window, io_chunk)) catch fatal("out of memory", .{});
    var prng = std.Random.DefaultPrng.init(0x7a65_76);
    prng.random().bytes(p[0..pattern_period]);
    // The tail repeats the start, so pattern[i] == pattern[i % period] and a
    // window gives the same bytes however the stream was split into reads.
    for (p[pattern_period..], 0..) |*b, i| b.* = p[i % pattern_period];
    return p;
}

// ---------------------------------------------------------------- sockets

const IoResult = io.IoResult;
const recvSome = io.recvSome;
const sendSome = io.sendSome;
const setInt = io.setInt;

/// Pending error of a nonblocking connect; 0 when it succeeded.
fn soError(fd: i32) u32 {
    var err: c_int = 0;
    var len: linux.socklen_t = @sizeOf(c_int);
    const rc = linux.getsockopt(fd, linux.SOL.SOCKET, linux.SO.ERROR, std.mem.asBytes(&err), &len);
    if (linux.E.init(rc) != .SUCCESS) return 1;
    return @intCast(err);
}

const Connect = union(enum) { connected: i32, in_progress: i32, failed };

/// Opens client connections. For a loopback IPv4 target it rotates the source
/// address over 127.0.0.2-17: a client that closes first keeps its side in
/// TIME_WAIT, and the kernel will not reuse a port held by a TIME_WAIT younger
/// than a second, so with a single source address connect() spends its time
/// searching the ~28k ephemeral ports and caps the accept benchmark at the
/// client (measured: ~14k/s versus ~35k/s spread, same server).
const Dialer = struct {
    addr: std.net.Address,
    spread: bool,
    next_source: u32 = 0,

    const n_sources = 16;

    fn init(addr: std.net.Address) Dialer {
        const loopback = addr.any.family == linux.AF.INET and
            std.mem.bigToNative(u32, addr.in.sa.addr) >> 24 == 127;
        return .{ .addr = addr, .spread = loopback };
    }

    /// Starts a nonblocking connect and registers the socket with epoll
    /// (edge-triggered, in and out, so the connect completion and every later
    /// readiness change arrive as events).
    fn connect(d: *Dialer, epfd: i32, data: u64) Connect {
        const src = linux.socket(d.addr.any.family, linux.SOCK.STREAM | linux.SOCK.NONBLOCK | linux.SOCK.CLOEXEC, 0);
        if (linux.E.init(src) != .SUCCESS) return .failed;
        const fd: i32 = @intCast(src);
        setInt(fd, linux.IPPROTO.TCP, linux.TCP.NODELAY, 1);
        if (d.spread) {
            // NO_PORT defers the port choice to connect(), which only needs
            // the full 4-tuple to be unique.
            setInt(fd, linux.IPPROTO.IP, linux.IP.BIND_ADDRESS_NO_PORT, 1);
            const ip: u32 = 0x7f00_0002 + d.next_source % n_sources;
            d.next_source +%= 1;
            const sa = linux.sockaddr.in{ .port = 0, .addr = std.mem.nativeToBig(u32, ip) };
            if (linux.E.init(linux.bind(fd, @ptrCast(&sa), @sizeOf(linux.sockaddr.in))) != .SUCCESS) {
                _ = linux.close(fd);
                return .failed;
            }
        }
        const in_progress = while (true) {
            switch (linux.E.init(linux.connect(fd, &d.addr.any, d.addr.getOsSockLen()))) {
                .SUCCESS => break false,
                .INPROGRESS => break true,
                .INTR => continue,
                else => {
                    _ = linux.close(fd);
                    return .failed;
                },
            }
        };
        // Registered after connect(): an unconnected socket polls as HUP.
        var ev = linux.epoll_event{
            .events = linux.EPOLL.IN | linux.EPOLL.OUT | linux.EPOLL.RDHUP | linux.EPOLL.ET,
            .data = .{ .u64 = data },
        };
        if (linux.E.init(linux.epoll_ctl(epfd, linux.EPOLL.CTL_ADD, fd, &ev)) != .SUCCESS) {
            _ = linux.close(fd);
            return .failed;
        }
        return if (in_progress) .{ .in_progress = fd } else .{ .connected = fd };
    }
};

fn epollCreate() i32 {
    const rc = linux.epoll_create1(linux.EPOLL.CLOEXEC);
    if (linux.E.init(rc) != .SUCCESS) fatal("epoll_create1: {t}", .{linux.E.init(rc)});
    return @intCast(rc);
}

/// Waits for events until `deadline` (monotonic ns), at most `cap_ms`.
fn waitEvents(epfd: i32, events: []linux.epoll_event, deadline: u64, cap_ms: i32) []linux.epoll_event {
    const t = now();
    const left_ms: u64 = if (deadline > t) (deadline - t + std.time.ns_per_ms - 1) / std.time.ns_per_ms else 0;
    const timeout: i32 = @intCast(@min(left_ms, @as(u64, @intCast(cap_ms))));
    const rc = linux.epoll_wait(epfd, events.ptr, @intCast(events.len), timeout);
    switch (linux.E.init(rc)) {
        .SUCCESS => return events[0..rc],
        .INTR => return events[0..0],
        else => |e| fatal("epoll_wait: {t}", .{e}),
    }
}

const ev_fail = linux.EPOLL.ERR | linux.EPOLL.HUP;

const raiseNofile = io.raiseNofile;

// ---------------------------------------------------------------- echo mode

/// One persistent pipelined connection. Its outgoing bytes form an endless
/// stream: byte n is pattern[(base + n) % period], message k is bytes
/// [k*size, (k+1)*size). tx/rx count stream bytes sent/verified, so the
/// in-flight window is simply (rx/size + pipeline) * size - tx.
const EchoConn = struct {
    fd: i32 = -1,
    state: enum { closed, connecting, running } = .closed,
    base: usize = 0,
    tx: u64 = 0,
    rx: u64 = 0,
    /// Enqueue time of message k lives in sent_at[k % pipeline].
    sent_at: []u64 = &.{},
    /// Paced mode: stream offset where the message in flight ends (tx stops there),
    /// when the next one is due, and this connection's offset within the interval.
    msg_end: u64 = 0,
    next_send: u64 = 0,
    phase_ns: u64 = 0,
};

/// Paced mode: a connection whose slot was `due` sends at `t` (>= due); its next slot,
/// and whether this send was late (a whole interval behind, its echo came late). Slots
/// stay on the connection's own grid (due + k * interval), and a late connection sends
/// once, not a catch-up burst. Resetting the grid to `t` instead made connections that
/// fell behind together (as all do when a server stalls once, at start) send together
/// from then on: 8 connections at 5,000 requests/s became bursts of 8 at 625/s, in some
/// runs and not others, and CPU per request moved threefold between runs.
fn nextSlot(due: u64, t: u64, interval: u64) struct { next: u64, late: bool } {
    const missed = (t - due) / interval;
    return .{ .next = due + (missed + 1) * interval, .late = missed > 0 };
}

test "a paced connection keeps its phase when it falls behind" {
    // On time, and late by less than an interval: the next slot of the grid.
    try std.testing.expectEqual(@as(u64, 2000), nextSlot(1000, 1000, 1000).next);
    try std.testing.expect(!nextSlot(1000, 1999, 1000).late);
    try std.testing.expectEqual(@as(u64, 2000), nextSlot(1000, 1999, 1000).next);
    // 3.5 intervals behind: late, and the next slot is on its grid, after now.
    try std.testing.expect(nextSlot(1000, 4500, 1000).late);
    try std.testing.expectEqual(@as(u64, 5000), nextSlot(1000, 4500, 1000).next);
    // Eight connections spread over one interval all stall until the same moment: their
    // next slots stay spread, one eighth of an interval apart.
    const interval: u64 = 1_600_000;
    var phases: [8]u64 = undefined;
    for (&phases, 0..) |*p, i| {
        const next = nextSlot(interval * i / 8, 5 * interval + 7, interval).next;
        try std.testing.expect(next > 5 * interval + 7);
        p.* = next % interval;
    }
    std.mem.sort(u64, &phases, {}, std.sort.asc(u64));
    for (phases, 0..) |p, i| try std.testing.expectEqual(interval * i / 8, p);
}

/// epoll data of the paced mode's timer; connections use their index.
const timer_token = std.math.maxInt(u64);

const Echo = struct {
    epfd: i32,
    dialer: Dialer,
    size: u64,
    pipeline: u64,
    conns: []EchoConn,
    pattern: []const u8,
    rbuf: []u8,
    hist: *Histogram,
    /// Paced mode: each connection's send interval (0: closed loop) and the timer
    /// that wakes the client when the next send is due.
    interval_ns: u64 = 0,
    timerfd: i32 = -1,
    recording: bool = false,
    round_trips: u64 = 0,
    /// Paced mode: messages sent while recording, and sends that found the previous
    /// echo still missing when their slot came (they go out as soon as it arrives).
    sent: u64 = 0,
    late: u64 = 0,
    errors: u64 = 0,
    connecting: usize = 0,
    live: usize = 0,

    fn connectAll(e: *Echo) void {
        for (e.conns, 0..) |*c, i| {
            c.base = (i * 7919) % pattern_period;
            // Spread the connections' sends evenly over one interval.
            c.phase_ns = e.interval_ns * i / e.conns.len;
            switch (e.dialer.connect(e.epfd, i)) {
                .failed => e.errors += 1,
                .in_progress => |fd| {
                    c.fd = fd;
                    c.state = .connecting;
                    e.connecting += 1;
                    e.live += 1;
                },
                .connected => |fd| {
                    c.fd = fd;
                    e.live += 1;
                    e.onConnected(c);
                },
            }
        }
    }

    fn onConnected(e: *Echo, c: *EchoConn) void {
        c.state = .running;
        @memset(c.sent_at, now());
        c.next_send = now() + c.phase_ns;
        if (!e.flush(c)) e.fail(c);
    }

    fn fail(e: *Echo, c: *EchoConn) void {
        if (c.state == .connecting) e.connecting -= 1;
        e.errors += 1;
        e.close(c);
    }

    fn close(e: *Echo, c: *EchoConn) void {
        if (c.state == .closed) return;
        _ = linux.close(c.fd);
        c.state = .closed;
        e.live -= 1;
    }

    fn onEvent(e: *Echo, c: *EchoConn, events: u32) void {
        switch (c.state) {
            .closed => {},
            .connecting => {
                if (events & (linux.EPOLL.OUT | ev_fail) == 0) return;
                if (soError(c.fd) != 0) return e.fail(c);
                e.connecting -= 1;
                e.onConnected(c);
            },
            .running => {
                if (events & linux.EPOLL.ERR != 0) return e.fail(c);
                if (!e.drain(c) or !e.flush(c)) e.fail(c);
            },
        }
    }

    /// Reads until EAGAIN, verifying every byte and completing messages.
    fn drain(e: *Echo, c: *EchoConn) bool {
        while (true) {
            const n = switch (recvSome(c.fd, e.rbuf)) {
                .n => |n| n,
                .again => return true,
                .eof, .failed => return false,
            };
            if (c.rx + n > c.tx) return false; // echoed more than was sent
            const off: usize = @intCast((c.base + c.rx) % pattern_period);
            if (!std.mem.eql(u8, e.rbuf[0..n], e.pattern[off..][0..n])) return false;
            const first = c.rx / e.size;
            c.rx += n;
            const last = c.rx / e.size;
            if (last == first) continue;
            const t = now();
            var k = first;
            while (k < last) : (k += 1) {
                // Message k completed; its slot now times message k + pipeline,
                // which becomes sendable right now (closed loop).
                const slot = &c.sent_at[@intCast(k % e.pipeline)];
                if (e.recording) {
                    e.hist.record(t -| slot.*);
                    e.round_trips += 1;
                }
                slot.* = t;
            }
        }
    }

    /// Writes the in-flight window until done or EAGAIN.
    fn flush(e: *Echo, c: *EchoConn) bool {
        const limit = if (e.interval_ns > 0) c.msg_end else (c.rx / e.size + e.pipeline) * e.size;
        while (c.tx < limit) {
            const off: usize = @intCast((c.base + c.tx) % pattern_period);
            const len: usize = @intCast(@min(limit - c.tx, io_chunk));
            switch (sendSome(c.fd, e.pattern[off..][0..len])) {
                .n => |n| c.tx += n,
                .again => return true,
                .eof, .failed => return false,
            }
        }
        return true;
    }

    /// Paced mode: starts every message that is due on a connection whose previous
    /// echo is complete, and sets the timer for the earliest one still to come.
    fn pace(e: *Echo) void {
        const t = now();
        var next: u64 = std.math.maxInt(u64);
        for (e.conns) |*c| {
            if (c.state != .running or c.rx < c.msg_end) continue;
            if (c.next_send > t) {
                next = @min(next, c.next_send);
                continue;
            }
            const slot = nextSlot(c.next_send, t, e.interval_ns);
            if (slot.late and e.recording) e.late += 1;
            c.next_send = slot.next;
            next = @min(next, c.next_send);
            c.sent_at[0] = t;
            c.msg_end += e.size;
            if (e.recording) e.sent += 1;
            if (!e.flush(c)) e.fail(c);
        }
        if (next == std.math.maxInt(u64)) return;
        const spec = linux.itimerspec{
            .it_interval = .{ .sec = 0, .nsec = 0 },
            .it_value = .{ .sec = @intCast(next / std.time.ns_per_s), .nsec = @intCast(next % std.time.ns_per_s) },
        };
        const rc = linux.timerfd_settime(e.timerfd, .{ .ABSTIME = true }, &spec, null);
        if (linux.E.init(rc) != .SUCCESS) fatal("timerfd_settime: {t}", .{linux.E.init(rc)});
    }

    /// Runs the loop until `deadline`, or earlier once `stop` says so.
    fn run(e: *Echo, events: []linux.epoll_event, deadline: u64, comptime stop: fn (*Echo) bool) void {
        while (now() < deadline and !stop(e)) {
            for (waitEvents(e.epfd, events, deadline, std.math.maxInt(i32))) |ev| {
                if (ev.data.u64 == timer_token) {
                    var expirations: u64 = 0;
                    _ = linux.read(e.timerfd, std.mem.asBytes(&expirations), 8);
                    continue;
                }
                e.onEvent(&e.conns[@intCast(ev.data.u64)], ev.events);
            }
            if (e.interval_ns > 0) e.pace();
        }
    }

    fn connectsDone(e: *Echo) bool {
        return e.connecting == 0;
    }

    fn allDead(e: *Echo) bool {
        return e.live == 0;
    }
};

const connect_timeout_ns = 10 * std.time.ns_per_s;

fn runEcho(o: Opts, addr: std.net.Address, gpa: std.mem.Allocator, out: *std.Io.Writer) !void {
    const n: usize = o.connections;
    const conns = try gpa.alloc(EchoConn, n);
    const stamps = try gpa.alloc(u64, n * o.pipeline);
    for (conns, 0..) |*c, i| c.* = .{ .sent_at = stamps[i * o.pipeline ..][0..o.pipeline] };
    const hist = try gpa.create(Histogram);
    hist.* = .{};
    const events = try gpa.alloc(linux.epoll_event, 1024);

    var e = Echo{
        .epfd = epollCreate(),
        .dialer = Dialer.init(addr),
        .size = o.size,
        .pipeline = o.pipeline,
        .conns = conns,
        .pattern = makePattern(gpa, 0),
        .rbuf = try gpa.alloc(u8, io_chunk),
        .hist = hist,
    };
    if (o.rate > 0) {
        e.interval_ns = @max(1, std.time.ns_per_s * @as(u64, o.connections) / o.rate);
        const tfd = linux.timerfd_create(.MONOTONIC, .{ .CLOEXEC = true, .NONBLOCK = true });
        if (linux.E.init(tfd) != .SUCCESS) fatal("timerfd_create: {t}", .{linux.E.init(tfd)});
        e.timerfd = @intCast(tfd);
        var ev = linux.epoll_event{ .events = linux.EPOLL.IN, .data = .{ .u64 = timer_token } };
        if (linux.E.init(linux.epoll_ctl(e.epfd, linux.EPOLL.CTL_ADD, e.timerfd, &ev)) != .SUCCESS) fatal("epoll_ctl timerfd", .{});
    }

    // Connections are established (and start sending) before warmup; the
    // measured window starts only after warmup.
    e.connectAll();
    e.run(events, now() + connect_timeout_ns, Echo.connectsDone);
    for (e.conns) |*c| if (c.state == .connecting) e.fail(c);

    e.run(events, now() + secondsToNs(o.warmup), Echo.allDead);
    e.recording = true;
    const t0 = now();
    e.run(events, t0 + secondsToNs(o.duration), Echo.allDead);
    const elapsed_s = @as(f64, @floatFromInt(now() - t0)) / std.time.ns_per_s;
    e.recording = false;
    for (e.conns) |*c| e.close(c);

    const rtps = perSecond(e.round_trips, elapsed_s);
    const p50 = hist.quantileUs(0.50);
    const p99 = hist.quantileUs(0.99);
    if (o.json) {
        try out.print(
            "{{\"mode\":\"echo\",\"connections\":{d},\"size\":{d},\"pipeline\":{d},\"rate\":{d},\"duration_s\":{d},\"warmup_s\":{d}," ++
                "\"elapsed_s\":{d:.3},\"sent\":{d},\"late\":{d},\"round_trips\":{d},\"rtps\":{d:.1},\"p50_us\":{d:.1},\"p99_us\":{d:.1},\"max_us\":{d:.1},\"errors\":{d}}}\n",
            .{ o.connections, o.size, o.pipeline, o.rate, o.duration, o.warmup, elapsed_s, e.sent, e.late, e.round_trips, rtps, p50, p99, hist.maxUs(), e.errors },
        );
    } else {
        try out.print(
            "echo connections={d} size={d} pipeline={d} rate={d} duration_s={d:.2} sent={d} late={d} round_trips={d} rtps={d:.1} p50_us={d:.1} p99_us={d:.1} max_us={d:.1} errors={d}\n",
            .{ o.connections, o.size, o.pipeline, o.rate, elapsed_s, e.sent, e.late, e.round_trips, rtps, p50, p99, hist.maxUs(), e.errors },
        );
    }
}

// ---------------------------------------------------------------- one-shot requests

/// One connect → send → read echo → close request; used by accept, rounds
/// and burst. Slots are reused, so epoll data carries a generation to drop
/// events that belong to a slot's previous socket.
const Shot = struct {
    fd: i32 = -1,
    gen: u32 = 0,
    /// parked: connected, payload not sent yet (burst); held: echoed and kept open (hold).
    state: enum { idle, connecting, parked, active, held } = .idle,
    /// Pattern offset of this request's payload.
    off: usize = 0,
    tx: usize = 0,
    rx: usize = 0,
    t_start: u64 = 0, // connect() issued
    t_send: u64 = 0, // payload queued
    t_done: u64 = 0, // full echo read
    t_end: u64 = 0, // socket closed
};

const Outcome = enum { pending, done, failed };

const Shots = struct {
    epfd: i32,
    dialer: Dialer,
    size: usize,
    pattern: []const u8,
    rbuf: []u8,
    slots: []Shot,
    /// Burst mode: hold connections after connect until release() is called.
    hold: bool = false,
    /// Hold mode: a slot whose echo is done stays open (`held`) instead of closing.
    keep: bool = false,
    seq: usize = 0,

    fn init(gpa: std.mem.Allocator, addr: std.net.Address, n: usize, size: usize) !Shots {
        const slots = try gpa.alloc(Shot, n);
        @memset(slots, .{});
        return .{
            .epfd = epollCreate(),
            .dialer = Dialer.init(addr),
            .size = size,
            .pattern = makePattern(gpa, size),
            .rbuf = try gpa.alloc(u8, io_chunk),
            .slots = slots,
        };
    }

    fn start(s: *Shots, i: usize) Outcome {
        const shot = &s.slots[i];
        shot.t_start = now();
        shot.gen +%= 1;
        switch (s.dialer.connect(s.epfd, @as(u64, shot.gen) << 32 | i)) {
            .failed => return .failed,
            .in_progress => |fd| {
                shot.fd = fd;
                shot.state = .connecting;
                return .pending;
            },
            .connected => |fd| {
                shot.fd = fd;
                return s.connected(i);
            },
        }
    }

    fn connected(s: *Shots, i: usize) Outcome {
        if (s.hold) {
            s.slots[i].state = .parked;
            return .pending;
        }
        return s.release(i);
    }

    /// Sends the payload; for parked slots this ends the hold.
    fn release(s: *Shots, i: usize) Outcome {
        const shot = &s.slots[i];
        shot.state = .active;
        shot.off = (i *% 7919 +% s.seq *% 104729) % pattern_period;
        s.seq +%= 1;
        shot.tx = 0;
        shot.rx = 0;
        shot.t_send = now();
        return s.pump(i);
    }

    /// Maps an epoll event to its slot, or null if it is stale.
    fn slotOf(s: *Shots, data: u64) ?usize {
        const i: usize = @intCast(data & 0xffff_ffff);
        const shot = &s.slots[i];
        if (shot.state == .idle or shot.gen != @as(u32, @intCast(data >> 32))) return null;
        return i;
    }

    fn onEvent(s: *Shots, i: usize, events: u32) Outcome {
        const shot = &s.slots[i];
        switch (shot.state) {
            .idle => return .pending,
            .connecting => {
                if (events & (linux.EPOLL.OUT | ev_fail) == 0) return .pending;
                if (soError(shot.fd) != 0) return s.finish(i, .failed);
                return s.connected(i);
            },
            .parked => return if (events & linux.EPOLL.ERR != 0) s.finish(i, .failed) else .pending,
            // Checked once at the end (stillOpen): a hold must not count its own probes.
            .held => return .pending,
            .active => {
                if (events & linux.EPOLL.ERR != 0) return s.finish(i, .failed);
                return s.pump(i);
            },
        }
    }

    fn pump(s: *Shots, i: usize) Outcome {
        const shot = &s.slots[i];
        const payload = s.pattern[shot.off..][0..s.size];
        while (shot.tx < s.size) {
            switch (sendSome(shot.fd, payload[shot.tx..@min(s.size, shot.tx + io_chunk)])) {
                .n => |n| shot.tx += n,
                .again => break,
                .eof, .failed => return s.finish(i, .failed),
            }
        }
        while (true) {
            const n = switch (recvSome(shot.fd, s.rbuf)) {
                .n => |n| n,
                .again => return .pending,
                .eof, .failed => return s.finish(i, .failed),
            };
            if (shot.rx + n > shot.tx) return s.finish(i, .failed); // more than was sent
            if (!std.mem.eql(u8, s.rbuf[0..n], payload[shot.rx..][0..n])) return s.finish(i, .failed);
            shot.rx += n;
            if (shot.rx == s.size) {
                shot.t_done = now();
                return s.finish(i, .done);
            }
        }
    }

    /// Whether a held connection is still open with nothing unread (the server
    /// neither closed it nor sent anything unasked).
    fn stillOpen(s: *Shots, i: usize) bool {
        const shot = &s.slots[i];
        if (shot.state != .held) return false;
        var byte: [1]u8 = undefined;
        const rc = linux.recvfrom(shot.fd, &byte, 1, linux.MSG.DONTWAIT | linux.MSG.PEEK, null, null);
        return linux.E.init(rc) == .AGAIN;
    }

    /// Closes every open slot without counting it.
    fn abandonAll(s: *Shots) void {
        for (0..s.slots.len) |i| _ = s.finish(i, .pending);
    }

    fn count(s: *const Shots, state: @FieldType(Shot, "state")) usize {
        var n: usize = 0;
        for (s.slots) |shot| n += @intFromBool(shot.state == state);
        return n;
    }

    /// Closes the slot's socket (also dropping it from epoll).
    fn finish(s: *Shots, i: usize, outcome: Outcome) Outcome {
        const shot = &s.slots[i];
        if (outcome == .done and s.keep) {
            shot.state = .held;
            return outcome;
        }
        if (shot.state != .idle) _ = linux.close(shot.fd);
        shot.state = .idle;
        shot.fd = -1;
        shot.t_end = now();
        return outcome;
    }
};

/// Counts finished shots and records their latency.
const Tally = struct {
    hist: *Histogram,
    /// Which interval of a shot's life is its latency.
    span: enum { cycle, request, echo },
    done: u64 = 0,
    errors: u64 = 0,

    /// Returns whether the shot finished (its slot is idle again).
    fn settle(t: *Tally, shot: *const Shot, outcome: Outcome) bool {
        switch (outcome) {
            .pending => return false,
            .failed => t.errors += 1,
            .done => {
                t.done += 1;
                t.hist.record(switch (t.span) {
                    .cycle => shot.t_end - shot.t_start, // connect → echo → close
                    .request => shot.t_done - shot.t_start, // connect → echo
                    .echo => shot.t_done - shot.t_send, // send → echo
                });
            },
        }
        return true;
    }
};

fn runAccept(o: Opts, addr: std.net.Address, gpa: std.mem.Allocator, out: *std.Io.Writer) !void {
    const n: usize = o.connections;
    var s = try Shots.init(gpa, addr, n, small_msg);
    const hist = try gpa.create(Histogram);
    hist.* = .{};
    var tally = Tally{ .hist = hist, .span = .cycle };
    const events = try gpa.alloc(linux.epoll_event, 1024);
    // Slots waiting to (re)start, compacted in place below.
    const idle = try gpa.alloc(usize, n);
    for (idle, 0..) |*x, i| x.* = i;
    var n_idle = n;

    const t0 = now();
    const deadline = t0 + secondsToNs(o.duration);
    while (true) {
        // One attempt per idle slot per iteration: a slot whose connect fails
        // synchronously stays idle until the next one, so a dead server
        // cannot trap us here past the deadline.
        const k = n_idle;
        n_idle = 0;
        for (idle[0..k]) |i| {
            if (tally.settle(&s.slots[i], s.start(i))) {
                idle[n_idle] = i;
                n_idle += 1;
            }
        }
        if (now() >= deadline) break;
        // Back off 1 ms when attempts fail immediately instead of spinning.
        const cap_ms: i32 = if (n_idle > 0) 1 else std.math.maxInt(i32);
        for (waitEvents(s.epfd, events, deadline, cap_ms)) |ev| {
            const i = s.slotOf(ev.data.u64) orelse continue;
            if (tally.settle(&s.slots[i], s.onEvent(i, ev.events))) {
                idle[n_idle] = i;
                n_idle += 1;
            }
        }
    }
    const elapsed_s = @as(f64, @floatFromInt(now() - t0)) / std.time.ns_per_s;
    s.abandonAll(); // cycles still in flight are not counted

    const cps = perSecond(tally.done, elapsed_s);
    const p50 = hist.quantileUs(0.50);
    const p99 = hist.quantileUs(0.99);
    if (o.json) {
        try out.print(
            "{{\"mode\":\"accept\",\"connections\":{d},\"duration_s\":{d},\"elapsed_s\":{d:.3},\"cycles\":{d}," ++
                "\"cps\":{d:.1},\"p50_us\":{d:.1},\"p99_us\":{d:.1},\"max_us\":{d:.1},\"errors\":{d}}}\n",
            .{ o.connections, o.duration, elapsed_s, tally.done, cps, p50, p99, hist.maxUs(), tally.errors },
        );
    } else {
        try out.print(
            "accept connections={d} duration_s={d:.2} cycles={d} cps={d:.1} p50_us={d:.1} p99_us={d:.1} max_us={d:.1} errors={d}\n",
            .{ o.connections, elapsed_s, tally.done, cps, p50, p99, hist.maxUs(), tally.errors },
        );
    }
}

fn runRounds(o: Opts, addr: std.net.Address, gpa: std.mem.Allocator, out: *std.Io.Writer) !void {
    const c: usize = o.clients;
    var s = try Shots.init(gpa, addr, c, o.size);
    const hist = try gpa.create(Histogram);
    hist.* = .{};
    var tally = Tally{ .hist = hist, .span = .request };
    const events = try gpa.alloc(linux.epoll_event, 1024);
    var stalls: u64 = 0;
    var timed_out: u64 = 0;

    const t0 = now();
    var rounds_run: u64 = 0;
    for (0..o.rounds) |_| {
        if (o.max_stalls > 0 and stalls >= o.max_stalls) break;
        if (o.pause_ms > 0 and rounds_run > 0) std.Thread.sleep(@as(u64, o.pause_ms) * std.time.ns_per_ms);
        rounds_run += 1;
        var active: usize = 0;
        for (0..c) |i| {
            if (!tally.settle(&s.slots[i], s.start(i))) active += 1;
        }
        const deadline = now() + @as(u64, o.deadline_ms) * std.time.ns_per_ms;
        while (active > 0 and now() < deadline) {
            for (waitEvents(s.epfd, events, deadline, std.math.maxInt(i32))) |ev| {
                const i = s.slotOf(ev.data.u64) orelse continue;
                if (tally.settle(&s.slots[i], s.onEvent(i, ev.events))) active -= 1;
            }
        }
        if (active > 0) {
            stalls += 1;
            timed_out += active;
            s.abandonAll();
        }
    }
    const elapsed_s = @as(f64, @floatFromInt(now() - t0)) / std.time.ns_per_s;

    const p50 = hist.quantileUs(0.50);
    const p99 = hist.quantileUs(0.99);
    if (o.json) {
        try out.print(
            "{{\"mode\":\"rounds\",\"clients\":{d},\"rounds\":{d},\"rounds_run\":{d},\"size\":{d},\"deadline_ms\":{d},\"elapsed_s\":{d:.3}," ++
                "\"requests\":{d},\"stalls\":{d},\"timed_out\":{d},\"p50_us\":{d:.1},\"p99_us\":{d:.1},\"max_us\":{d:.1},\"errors\":{d}}}\n",
            .{ o.clients, o.rounds, rounds_run, o.size, o.deadline_ms, elapsed_s, tally.done, stalls, timed_out, p50, p99, hist.maxUs(), tally.errors },
        );
    } else {
        try out.print(
            "rounds clients={d} rounds={d} rounds_run={d} size={d} elapsed_s={d:.2} requests={d} stalls={d} timed_out={d} p50_us={d:.1} p99_us={d:.1} max_us={d:.1} errors={d}\n",
            .{ o.clients, o.rounds, rounds_run, o.size, elapsed_s, tally.done, stalls, timed_out, p50, p99, hist.maxUs(), tally.errors },
        );
    }
}

/// Returns whether every connection was served.
fn runBurst(o: Opts, addr: std.net.Address, gpa: std.mem.Allocator, out: *std.Io.Writer) !bool {
    const n: usize = o.connections;
    var s = try Shots.init(gpa, addr, n, small_msg);
    s.hold = true;
    const hist = try gpa.create(Histogram);
    hist.* = .{};
    var tally = Tally{ .hist = hist, .span = .echo };
    const events = try gpa.alloc(linux.epoll_event, 1024);

    const t0 = now();
    const deadline = t0 + @as(u64, o.deadline_ms) * std.time.ns_per_ms;

    // Phase 1: every connect, no payload yet (held slots never finish with
    // .done here, only .failed).
    for (0..n) |i| _ = tally.settle(&s.slots[i], s.start(i));
    var connecting = s.count(.connecting);
    while (connecting > 0 and now() < deadline) {
        for (waitEvents(s.epfd, events, deadline, std.math.maxInt(i32))) |ev| {
            const i = s.slotOf(ev.data.u64) orelse continue;
            _ = tally.settle(&s.slots[i], s.onEvent(i, ev.events));
        }
        connecting = s.count(.connecting);
    }
    const t_connected = now();
    const connected = s.count(.parked);

    // Phase 2: one request per connection, all released at once. Skipped if
    // the deadline passed with connects outstanding.
    s.hold = false;
    var active: usize = 0;
    if (connecting == 0) {
        for (s.slots, 0..) |shot, i| {
            if (shot.state != .parked) continue;
            if (!tally.settle(&s.slots[i], s.release(i))) active += 1;
        }
    }
    while (active > 0 and now() < deadline) {
        for (waitEvents(s.epfd, events, deadline, std.math.maxInt(i32))) |ev| {
            const i = s.slotOf(ev.data.u64) orelse continue;
            if (tally.settle(&s.slots[i], s.onEvent(i, ev.events))) active -= 1;
        }
    }
    const t_end = now();
    s.abandonAll();

    const served = tally.done;
    const connect_ms = @as(f64, @floatFromInt(t_connected - t0)) / std.time.ns_per_ms;
    const elapsed_ms = @as(f64, @floatFromInt(t_end - t0)) / std.time.ns_per_ms;
    const p50 = hist.quantileUs(0.50);
    const p99 = hist.quantileUs(0.99);
    const ok = served == n;
    if (o.json) {
        try out.print(
            "{{\"mode\":\"burst\",\"connections\":{d},\"deadline_ms\":{d},\"connected\":{d},\"served\":{d},\"stalled\":{},\"connect_ms\":{d:.1}," ++
                "\"elapsed_ms\":{d:.1},\"p50_us\":{d:.1},\"p99_us\":{d:.1},\"max_us\":{d:.1},\"errors\":{d}}}\n",
            .{ o.connections, o.deadline_ms, connected, served, !ok, connect_ms, elapsed_ms, p50, p99, hist.maxUs(), tally.errors },
        );
    } else {
        try out.print(
            "burst connections={d} connected={d} served={d} connect_ms={d:.1} elapsed_ms={d:.1} p50_us={d:.1} p99_us={d:.1} max_us={d:.1} errors={d}\n",
            .{ o.connections, connected, served, connect_ms, elapsed_ms, p50, p99, hist.maxUs(), tally.errors },
        );
    }
    if (!ok) {
        // Keep stdout pure JSON in --json mode.
        if (o.json) {
            std.debug.print("stall: served {d} of {d}\n", .{ served, n });
        } else {
            try out.print("stall: served {d} of {d}\n", .{ served, n });
        }
    }
    return ok;
}

/// Connections connecting at once in hold mode: enough to open 15,000 in about a
/// second, few enough that no listen backlog overflows into SYN retries (which would
/// measure the kernel's 1 s retry timer, not the server).
const hold_window = 256;

/// Returns whether every connection was opened, echoed and still open at the end.
fn runHold(o: Opts, addr: std.net.Address, gpa: std.mem.Allocator, out: *std.Io.Writer) !bool {
    const n: usize = o.connections;
    const probe = n; // the last slot
    var s = try Shots.init(gpa, addr, n + 1, small_msg);
    s.keep = true;
    const open_hist = try gpa.create(Histogram);
    open_hist.* = .{};
    var opened = Tally{ .hist = open_hist, .span = .request };
    const events = try gpa.alloc(linux.epoll_event, 1024);

    // Phase 1: open every connection and echo once on each, hold_window at a time.
    const t0 = now();
    const deadline = t0 + @as(u64, o.deadline_ms) * std.time.ns_per_ms;
    var next: usize = 0;
    var active: usize = 0;
    while ((next <= n or active > 0) and now() < deadline) {
        while (next <= n and active < hold_window) : (next += 1) {
            if (!opened.settle(&s.slots[next], s.start(next))) active += 1;
        }
        for (waitEvents(s.epfd, events, deadline, 100)) |ev| {
            const i = s.slotOf(ev.data.u64) orelse continue;
            if (opened.settle(&s.slots[i], s.onEvent(i, ev.events))) active -= 1;
        }
    }
    const open_ms = @as(f64, @floatFromInt(now() - t0)) / std.time.ns_per_ms;
    const held = s.count(.held);
    const all_open = held == n + 1;
    if (o.json) {
        try out.print("{{\"mode\":\"hold\",\"phase\":\"held\",\"connections\":{d},\"held\":{d},\"open_ms\":{d:.1},\"errors\":{d}}}\n", .{ n, held -| 1, open_ms, opened.errors });
    } else {
        try out.print("held connections={d} held={d} open_ms={d:.1} errors={d}\n", .{ n, held -| 1, open_ms, opened.errors });
    }
    try out.flush();

    // Phase 2: idle, then round trips on the probe connection, one at a time.
    const probe_hist = try gpa.create(Histogram);
    probe_hist.* = .{};
    var probes = Tally{ .hist = probe_hist, .span = .echo };
    if (all_open) {
        std.Thread.sleep(secondsToNs(o.hold));
        const probe_deadline = now() + @as(u64, o.deadline_ms) * std.time.ns_per_ms;
        for (0..o.probes) |_| {
            var done = probes.settle(&s.slots[probe], s.release(probe));
            while (!done and now() < probe_deadline) {
                for (waitEvents(s.epfd, events, probe_deadline, 100)) |ev| {
                    const i = s.slotOf(ev.data.u64) orelse continue;
                    if (i == probe and probes.settle(&s.slots[i], s.onEvent(i, ev.events))) done = true;
                }
            }
            if (!done or s.slots[probe].state != .held) break;
        }
    }
    var still: usize = 0;
    for (0..n) |i| still += @intFromBool(s.stillOpen(i));
    s.abandonAll();

    const ok = all_open and probes.done == o.probes and still == n;
    if (o.json) {
        try out.print(
            "{{\"mode\":\"hold\",\"phase\":\"done\",\"connections\":{d},\"held\":{d},\"still_open\":{d},\"open_ms\":{d:.1},\"probes\":{d}," ++
                "\"p50_us\":{d:.1},\"p99_us\":{d:.1},\"max_us\":{d:.1},\"errors\":{d}}}\n",
            .{ n, held -| 1, still, open_ms, probes.done, probe_hist.quantileUs(0.50), probe_hist.quantileUs(0.99), probe_hist.maxUs(), opened.errors + probes.errors },
        );
    } else {
        try out.print(
            "hold connections={d} held={d} still_open={d} open_ms={d:.1} probes={d} p50_us={d:.1} p99_us={d:.1} max_us={d:.1} errors={d}\n",
            .{ n, held -| 1, still, open_ms, probes.done, probe_hist.quantileUs(0.50), probe_hist.quantileUs(0.99), probe_hist.maxUs(), opened.errors + probes.errors },
        );
    }
    if (!ok) std.debug.print("hold: {d} of {d} opened, {d} still open, {d} of {d} probes\n", .{ held, n + 1, still, probes.done, o.probes });
    return ok;
}

// ---------------------------------------------------------------- main

pub fn main() !void {
    const o = parseArgs();
    const addr = std.net.Address.parseIp(o.host, o.port) catch
        usage("invalid --host '{s}' (numeric IPv4/IPv6 only)", .{o.host});

    const nofile = raiseNofile();
    const sockets: u64 = switch (o.mode) {
        .rounds => o.clients,
        .hold => @as(u64, o.connections) + 1,
        else => o.connections,
    };
    if (sockets + 16 > nofile)
        usage("{d} sockets need a higher RLIMIT_NOFILE (hard limit is {d})", .{ sockets, nofile });

    const gpa = std.heap.page_allocator;
    var out_buf: [1024]u8 = undefined;
    // Streaming, not positional: stdout may be a file shared with others.
    var stdout = std.fs.File.stdout().writerStreaming(&out_buf);
    const out = &stdout.interface;
    var ok = true;
    switch (o.mode) {
        .echo => try runEcho(o, addr, gpa, out),
        .accept => try runAccept(o, addr, gpa, out),
        .rounds => try runRounds(o, addr, gpa, out),
        .burst => ok = try runBurst(o, addr, gpa, out),
        .hold => ok = try runHold(o, addr, gpa, out),
    }
    try out.flush();
    if (!ok) std.process.exit(1);
}
