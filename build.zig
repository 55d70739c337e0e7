//! zev's build. Steps:
//!   zig build            the libraries for this machine (Linux x86_64: glibc and musl)
//!   zig build cross      the libraries for every other platform (compile-only here)
//!   zig build dist       all seven libraries, stripped, into zig-out/dist/ (for `make dist`)
//!   zig build test       the reactor's tests, for x86_64-linux-gnu and x86_64-linux-musl, and bench/load's
//!   zig build test-aarch64 -fqemu   the same tests for aarch64-linux-musl, under qemu-user
//!   zig build tools      bench/load (load generator), bench/floor and bench/floor_uring (the Zig floors),
//!                        bench/bridge (the wake bridge's kernel cost), tests/no_io_uring (runs a
//!                        command where io_uring is forbidden)
//!   zig build abi        zig/zev.h and ffi/abi.ts from the Zig source (abi-check: verify them)
//! Option -Dlistener-mode=edge-single builds Janet 1.32's listener bug back in, only to
//! prove that the burst tests fail against it.

const std = @import("std");
const builtin = @import("builtin");

/// The one pinned Zig version lives in build.zig.zon; any other is refused.
const pinned_zig = @import("build.zig.zon").minimum_zig_version;

const Platform = struct {
    query: []const u8,
    /// File name stem: lib<name>.so / .dylib
    name: []const u8,
    /// glibc, macOS and FreeBSD are linked dynamically; musl links no libc at all, so the
    /// library cannot bring a second C library into the process that loads it.
    link_libc: bool,
};

const native_platforms = [_]Platform{
    .{ .query = "x86_64-linux-gnu", .name = "zev-linux-x86_64-gnu", .link_libc = true },
    .{ .query = "x86_64-linux-musl", .name = "zev-linux-x86_64-musl", .link_libc = false },
};

const cross_platforms = [_]Platform{
    .{ .query = "aarch64-linux-gnu", .name = "zev-linux-aarch64-gnu", .link_libc = true },
    .{ .query = "aarch64-linux-musl", .name = "zev-linux-aarch64-musl", .link_libc = false },
    .{ .query = "x86_64-macos", .name = "zev-macos-x86_64", .link_libc = true },
    .{ .query = "aarch64-macos", .name = "zev-macos-aarch64", .link_libc = true },
    .{ .query = "x86_64-freebsd", .name = "zev-freebsd-x86_64", .link_libc = true },
};

const aarch64_musl = cross_platforms[1];
comptime {
    std.debug.assert(std.mem.eql(u8, aarch64_musl.query, "aarch64-linux-musl"));
}

pub fn build(b: *std.Build) void {
    const pinned = std.SemanticVersion.parse(pinned_zig) catch unreachable;
    if (builtin.zig_version.order(pinned) != .eq) {
        std.debug.panic("zev builds with Zig {s} exactly (build.zig.zon); this is Zig {f}. Run `make setup`.", .{ pinned_zig, builtin.zig_version });
    }

    const optimize = b.option(std.builtin.OptimizeMode, "optimize", "Optimization mode (default ReleaseSafe)") orelse .ReleaseSafe;
    const listener_mode = b.option([]const u8, "listener-mode", "level-batch (default) or edge-single (Janet 1.32's bug)") orelse "level-batch";
    if (!std.mem.eql(u8, listener_mode, "level-batch") and !std.mem.eql(u8, listener_mode, "edge-single")) {
        std.debug.panic("-Dlistener-mode must be level-batch or edge-single, not '{s}'", .{listener_mode});
    }
    const options = b.addOptions();
    options.addOption([]const u8, "listener_mode", listener_mode);

    // Libraries.
    for (native_platforms) |p| b.getInstallStep().dependOn(&installLibrary(b, p, optimize, options).step);
    const cross = b.step("cross", "Build the libraries for every other platform");
    for (cross_platforms) |p| cross.dependOn(&installLibrary(b, p, optimize, options).step);
    // Every platform's library, stripped, for the packages (`make dist`), into zig-out/dist/.
    const dist = b.step("dist", "Build the seven libraries for the packages, stripped, into zig-out/dist/");
    for (native_platforms ++ cross_platforms) |p| {
        const lib = b.addLibrary(.{ .name = p.name, .linkage = .dynamic, .root_module = reactorModule(b, p, optimize, options, "zig/abi.zig") });
        lib.root_module.strip = true;
        dist.dependOn(&b.addInstallArtifact(lib, .{ .dest_dir = .{ .override = .{ .custom = "dist" } } }).step);
    }

    // The load generator, the floors and the helpers are static musl programs (no libc needed).
    const musl = b.resolveTargetQuery(std.Target.Query.parse(.{ .arch_os_abi = "x86_64-linux-musl" }) catch unreachable);

    // The reactor's tests, on both libcs of this machine.
    const test_step = b.step("test", "Run the reactor's tests (glibc and musl) and the load generator's");
    const filter = b.option([]const u8, "test-filter", "Run only the reactor tests whose names contain this");
    for (native_platforms) |p| test_step.dependOn(&reactorTests(b, p, options, filter).step);
    // And the load generator's own (its histogram, its pacing): benchmark figures rest on them.
    const load_tests = b.addTest(.{ .name = "test-load", .root_module = b.createModule(.{
        .root_source_file = b.path("bench/load.zig"),
        .target = musl,
    }) });
    test_step.dependOn(&b.addRunArtifact(load_tests).step);
    // The same tests for aarch64, run under qemu-user (`zig build test-aarch64 -fqemu`):
    // static musl needs no aarch64 libraries on this machine.
    const test_aarch64 = b.step("test-aarch64", "Run the reactor's tests for aarch64-linux-musl under qemu (-fqemu)");
    test_aarch64.dependOn(&reactorTests(b, aarch64_musl, options, filter).step);

    // The C and TypeScript declarations of the ABI, generated from the Zig source.
    const gen = b.addExecutable(.{
        .name = "zev-abi-gen",
        .root_module = b.createModule(.{
            .root_source_file = b.path("zig/abi_gen.zig"),
            .target = b.graph.host,
            .optimize = .Debug,
        }),
    });
    gen.root_module.addOptions("build_options", options);
    const abi_write = b.step("abi", "Write zig/zev.h and ffi/abi.ts from the Zig source");
    const abi_check = b.step("abi-check", "Fail if zig/zev.h or ffi/abi.ts differ from the Zig source");
    for ([_][2][]const u8{ .{ "c", "zig/zev.h" }, .{ "ts", "ffi/abi.ts" } }) |out| {
        for ([_]struct { *std.Build.Step, []const u8 }{ .{ abi_write, "--write" }, .{ abi_check, "--check" } }) |mode| {
            const run = b.addRunArtifact(gen);
            run.addArgs(&.{ out[0], mode[1], b.pathFromRoot(out[1]) });
            run.has_side_effects = true;
            mode[0].dependOn(&run.step);
        }
    }

    // Benchmark and load tools (Linux, no libc).
    const tools = b.step("tools", "Build bench/load, the floor servers (epoll, io_uring), bench/bridge and tests/no_io_uring");
    for ([_][]const u8{ "bench/load", "bench/floor", "bench/floor_uring", "bench/bridge", "tests/no_io_uring" }) |path| {
        const name = std.fs.path.basename(path);
        const exe = b.addExecutable(.{
            .name = b.fmt("zev-{s}", .{std.mem.replaceOwned(u8, b.allocator, name, "_", "-") catch @panic("OOM")}),
            .root_module = b.createModule(.{
                .root_source_file = b.path(b.fmt("{s}.zig", .{path})),
                .target = musl,
                .optimize = .ReleaseFast,
            }),
        });
        if (std.mem.eql(u8, name, "no_io_uring")) {
            exe.root_module.addImport("forbid_io_uring", b.createModule(.{
                .root_source_file = b.path("zig/forbid_io_uring.zig"),
                .target = musl,
                .optimize = .ReleaseFast,
            }));
        }
        tools.dependOn(&b.addInstallArtifact(exe, .{}).step);
    }
}

fn reactorTests(b: *std.Build, p: Platform, options: *std.Build.Step.Options, filter: ?[]const u8) *std.Build.Step.Run {
    const t = b.addTest(.{
        .name = b.fmt("test-{s}", .{p.name}),
        .root_module = reactorModule(b, p, .Debug, options, "zig/tests.zig"),
        .filters = if (filter) |f| b.dupeStrings(&.{f}) else &.{},
    });
    const run = b.addRunArtifact(t);
    run.has_side_effects = true;
    return run;
}

fn reactorModule(b: *std.Build, p: Platform, optimize: std.builtin.OptimizeMode, options: *std.Build.Step.Options, root: []const u8) *std.Build.Module {
    const query = std.Target.Query.parse(.{ .arch_os_abi = p.query }) catch unreachable;
    const mod = b.createModule(.{
        .root_source_file = b.path(root),
        .target = b.resolveTargetQuery(query),
        .optimize = optimize,
        .link_libc = p.link_libc,
    });
    mod.addOptions("build_options", options);
    return mod;
}

fn installLibrary(b: *std.Build, p: Platform, optimize: std.builtin.OptimizeMode, options: *std.Build.Step.Options) *std.Build.Step.InstallArtifact {
    const lib = b.addLibrary(.{
        .name = p.name,
        .linkage = .dynamic,
        .root_module = reactorModule(b, p, optimize, options, "zig/abi.zig"),
    });
    return b.addInstallArtifact(lib, .{ .dest_dir = .{ .override = .lib } });
}
