/* zev C ABI (zig/abi.zig). Results are int32: >= 0 success, < 0 an error code
 * (zig/errors.zig). Buffers are the caller's, borrowed for the call only. */
#ifndef ZEV_H
#define ZEV_H
#include <stdint.h>

#define ZEV_READ 1u   /* poll flag: a stream that wanted to read can read */
#define ZEV_WRITE 2u  /* poll flag: a stream that wanted to write can go on */
#define ZEV_ACCEPT 4u /* poll flag: a listener has connections pending */

#define ZEV_E_WOULD_BLOCK (-1)
#define ZEV_E_BAD_HANDLE (-2)
#define ZEV_E_BAD_LOOP (-3)
#define ZEV_E_WRONG_KIND (-4)
#define ZEV_E_CLOSED (-5)
#define ZEV_E_INVALID_ARGUMENT (-6)
#define ZEV_E_LIMIT (-7)
#define ZEV_E_TOO_MANY_OPEN_FILES (-14)

uint32_t zev_abi_version(void);
uint32_t zev_listener_mode(void);
int32_t zev_limit(uint32_t which);
int32_t zev_loop_open(uint32_t max_handles);
int32_t zev_loop_close(uint32_t loop);
int32_t zev_poll(uint32_t loop, uint32_t *out, uint32_t cap, int32_t timeout_ms);
int32_t zev_poll_park(uint32_t loop, uint32_t *out, uint32_t cap);
int32_t zev_park(uint32_t loop, int32_t timeout_ms);
int32_t zev_park_fd(uint32_t loop);
int32_t zev_park_timeout(uint32_t loop, int32_t timeout_ms);
int32_t zev_wake(uint32_t loop);
int32_t zev_wake_fd(uint32_t loop);
int32_t zev_wake_arm(uint32_t loop);
int32_t zev_listen(uint32_t loop, const uint8_t *host, uint32_t host_len, uint32_t port, uint32_t backlog);
int32_t zev_accept(uint32_t loop, uint32_t listener, uint32_t *out, uint32_t max);
int32_t zev_connect(uint32_t loop, const uint8_t *host, uint32_t host_len, uint32_t port);
int32_t zev_status(uint32_t loop, uint32_t h);
int32_t zev_read(uint32_t loop, uint32_t h, uint8_t *buf, uint32_t len);
int32_t zev_write(uint32_t loop, uint32_t h, const uint8_t *buf, uint32_t len);
int32_t zev_pauses(uint32_t loop, uint32_t h);
int32_t zev_flush(uint32_t loop, uint32_t h);
int32_t zev_shutdown(uint32_t loop, uint32_t h);
int32_t zev_close(uint32_t loop, uint32_t h, uint32_t reset);
int32_t zev_address(uint32_t loop, uint32_t h, uint32_t peer, uint8_t out[20]);
int32_t zev_set_queue_limit(uint32_t loop, uint32_t h, uint32_t bytes);
int32_t zev_stats(uint32_t loop, double *out, uint32_t n);
int32_t zev_queued(uint32_t loop);
int32_t zev_raise_fd_limit(uint32_t want);
int32_t zev_last_errno(void);

#endif
