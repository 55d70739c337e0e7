//! Root of `zig build test`: every module's inline tests, and the reactor's socket tests.

test {
    _ = @import("errors.zig");
    _ = @import("handles.zig");
    _ = @import("write_queue.zig");
    _ = @import("address.zig");
    _ = @import("loop_test.zig");
    _ = @import("listener_test.zig");
    _ = @import("ring_test.zig");
    _ = @import("backend_test.zig");
    _ = @import("ring_wake.zig");
    _ = @import("backends/io_uring.zig");
    _ = @import("abi.zig");
    _ = @import("abi_test.zig");
}
