/* The burst scenario in a musl process: a dynamically linked musl program dlopens
 * libzev-linux-x86_64-musl.so (a static musl program cannot dlopen) and serves N
 * connections that all arrive before the first poll. Exit 0 when every connection is
 * accepted and echoed within the deadline; 1 with "stall: ..." otherwise.
 *
 *   musl-gcc -O2 -o burst tests/musl/burst.c && ./burst LIB [N]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "../../zig/zev.h"

#define SYM(name) static __typeof__(&name) p_##name;
SYM(zev_abi_version) SYM(zev_listener_mode) SYM(zev_loop_open) SYM(zev_loop_close) SYM(zev_poll)
SYM(zev_listen) SYM(zev_accept) SYM(zev_read) SYM(zev_write) SYM(zev_address) SYM(zev_raise_fd_limit)

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void *need(void *lib, const char *name) {
  void *p = dlsym(lib, name);
  if (!p) { fprintf(stderr, "missing symbol %s: %s\n", name, dlerror()); exit(2); }
  return p;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: %s LIB [N]\n", argv[0]); return 2; }
  int n = argc > 2 ? atoi(argv[2]) : 1000;
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) { fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror()); return 2; }
#define LOAD(name) p_##name = need(lib, #name);
  LOAD(zev_abi_version) LOAD(zev_listener_mode) LOAD(zev_loop_open) LOAD(zev_loop_close) LOAD(zev_poll)
  LOAD(zev_listen) LOAD(zev_accept) LOAD(zev_read) LOAD(zev_write) LOAD(zev_address) LOAD(zev_raise_fd_limit)

  p_zev_raise_fd_limit(4 * n + 64);
  int loop = p_zev_loop_open(0);
  const char *host = "127.0.0.1";
  int l = p_zev_listen(loop, (const uint8_t *)host, strlen(host), 0, 0, 0);
  uint8_t addr[20];
  if (loop < 0 || l < 0 || p_zev_address(loop, l, 0, addr) < 0) { fprintf(stderr, "setup failed\n"); return 2; }
  int port = addr[2] | addr[3] << 8;
  printf("musl process, %s (abi %u, listener mode %s), port %d, %d connections\n", argv[1],
         p_zev_abi_version(), p_zev_listener_mode() ? "edge-single" : "level-batch", port, n);

  /* Every client connects before the loop polls once: the whole burst is one edge. */
  int *clients = calloc(n, sizeof(int));
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, host, &sa.sin_addr);
  struct timeval tv = {.tv_sec = 5};
  for (int i = 0; i < n; i++) {
    clients[i] = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(clients[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(clients[i], (struct sockaddr *)&sa, sizeof sa) < 0) { perror("connect"); return 2; }
    if (write(clients[i], "x", 1) != 1) { perror("write"); return 2; }
  }

  /* Serve as a zev caller does: accept on ACCEPT events, read on READ events. */
  uint32_t *conns = calloc(n, sizeof(uint32_t));
  int accepted = 0, echoed = 0;
  uint32_t events[2 * 256], batch[64];
  long deadline = now_ms() + 10000;
  int r = p_zev_accept(loop, l, batch, 64);
  while (echoed < n && now_ms() < deadline) {
    for (int i = 0; r > 0 && i < r; i++) conns[accepted++] = batch[i];
    r = 0;
    /* Echo whatever the accepted connections have. */
    for (int i = 0; i < accepted; i++) {
      if (!conns[i]) continue;
      uint8_t b[16];
      int got = p_zev_read(loop, conns[i], b, sizeof b);
      if (got > 0) { p_zev_write(loop, conns[i], b, got); conns[i] = 0; echoed++; }
    }
    int ne = p_zev_poll(loop, events, 256, 50);
    for (int i = 0; i < ne; i++) {
      if (events[2 * i] == (uint32_t)l && (events[2 * i + 1] & ZEV_ACCEPT)) r = p_zev_accept(loop, l, batch, 64);
    }
  }
  int ok = 0;
  for (int i = 0; i < n; i++) {
    char c;
    if (echoed == n && read(clients[i], &c, 1) == 1 && c == 'x') ok++;
    close(clients[i]);
  }
  p_zev_loop_close(loop);
  if (ok != n) {
    printf("stall: accepted %d, echoed %d, clients answered %d of %d\n", accepted, echoed, ok, n);
    return 1;
  }
  printf("served %d of %d\n", ok, n);
  return 0;
}
