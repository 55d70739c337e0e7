# zev — every command a newcomer needs. Each target installs what it uses:
#   make demo    the seed scenario, told as a table (installs everything it needs)
#   make check   the loop after each change (a few minutes): lint, the import graph, the
#                Zig tests, and the TypeScript once under Deno and once under Bun
#   make test    every test: Zig reactor, C in a musl process, TypeScript under Deno and Bun,
#                against the glibc and the musl library, and the proof that the burst tests
#                fail against Janet 1.32's listener behaviour
#   make bench   the performance comparison (writes bench/RESULTS.md, bench/curve.svg, bench/TLS.md
#                and bench/IDLE.md)
#   make bench-bridge  what the kernel charges for the wake bridge, with no runtime (2.5 min)
#   make mutate  mutation testing: reactor mutants and StrykerJS over src/ (long)
#   make dist    the seven libraries and the npm and JSR packages, into dist/
#   make lib     the libraries for this machine, into zig-out/lib/
#   make lib-edge  the `edge-single` regression libraries, into zig-out-edge/lib/

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test
.DELETE_ON_ERROR:

# The one pinned Zig version is in build.zig.zon.
ZIG_VERSION := $(shell sed -n 's/.*minimum_zig_version = "\([^"]*\)".*/\1/p' build.zig.zon)
VENV := .tools/venv
ZIG := $(VENV)/bin/python -m ziglang
DENO := node_modules/.bin/deno
BUN := node_modules/.bin/bun
BUN_MUSL := .tools/bun-musl/bin/bun

LIB_GNU := zig-out/lib/libzev-linux-x86_64-gnu.so
LIB_MUSL := zig-out/lib/libzev-linux-x86_64-musl.so
EDGE_GNU := zig-out-edge/lib/libzev-linux-x86_64-gnu.so
EDGE_MUSL := zig-out-edge/lib/libzev-linux-x86_64-musl.so
ZIG_SOURCES := build.zig build.zig.zon $(shell find zig -name "*.zig")

DENO_TEST := $(DENO) test --allow-all
BUN_TEST = $(1) test --timeout 120000
TS_TESTS := $(sort $(wildcard tests/*/*.test.ts))
BURST_TESTS := tests/server/burst.test.ts

.PHONY: check check-ts setup lib lib-edge cross abi tools dist test test-lint test-install test-mutants mutate test-zig test-musl-c test-ts test-edge test-bun-musl test-soak demo bench bench-bridge clean

# ---- setup: the tools, installed into the project (Debian packages system-wide) ----------

setup: $(VENV)/.zig-$(ZIG_VERSION) node_modules/.installed .tools/debs-test

$(VENV)/.zig-$(ZIG_VERSION): build.zig.zon
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check ziglang==$(ZIG_VERSION)
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	test -x $(DENO) && test -x $(BUN)
	touch $@

.tools/debs-test: tools/install-debs.sh
	tools/install-debs.sh musl-gcc:musl-tools qemu-aarch64:qemu-user openssl:openssl curl:curl
	mkdir -p .tools && touch $@

.tools/debs-bench: tools/install-debs.sh
	tools/install-debs.sh wrk:wrk
	mkdir -p .tools && touch $@

$(BUN_MUSL): tools/install-bun-musl.sh package.json
	tools/install-bun-musl.sh .tools/bun-musl

# ---- builds -------------------------------------------------------------------------------

lib: $(LIB_GNU) $(LIB_MUSL)
$(LIB_GNU) $(LIB_MUSL) &: $(ZIG_SOURCES) | $(VENV)/.zig-$(ZIG_VERSION)
	$(ZIG) build
	touch $(LIB_GNU) $(LIB_MUSL)

lib-edge: $(EDGE_GNU) $(EDGE_MUSL)
$(EDGE_GNU) $(EDGE_MUSL) &: $(ZIG_SOURCES) | $(VENV)/.zig-$(ZIG_VERSION)
	$(ZIG) build -Dlistener-mode=edge-single --prefix zig-out-edge
	touch $(EDGE_GNU) $(EDGE_MUSL)

cross: | $(VENV)/.zig-$(ZIG_VERSION)
	$(ZIG) build cross

# zig/zev.h and ffi/abi.ts, generated from the Zig source (make test checks them).
abi: | $(VENV)/.zig-$(ZIG_VERSION)
	$(ZIG) build abi

tools: | $(VENV)/.zig-$(ZIG_VERSION)
	$(ZIG) build tools

tests/out/burst-musl: tests/musl/burst.c zig/zev.h | .tools/debs-test
	mkdir -p tests/out
	musl-gcc -O2 -Wall -Werror -o $@ tests/musl/burst.c

# ---- tests --------------------------------------------------------------------------------

# The quick loop: what a change most often breaks, in a few minutes.
check: setup
	$(MAKE) --no-print-directory test-lint check-ts
	$(ZIG) build abi-check
	$(ZIG) build test --summary all
	@echo "make check: all passed"

check-ts: lib tools node_modules/.installed
	@echo "== deno, $(LIB_GNU)"; ZEV_LIB=$(LIB_GNU) $(DENO_TEST) $(TS_TESTS)
	@echo "== bun, $(LIB_GNU)"; ZEV_LIB=$(LIB_GNU) $(call BUN_TEST,$(BUN)) $(TS_TESTS)

test: setup
	$(MAKE) --no-print-directory test-lint test-zig cross test-musl-c test-ts test-edge test-bun-musl test-install test-mutants test-soak
	@echo "make test: all passed"

# The habits of the ecosystem: formatting, lint, documentation lint (what JSR scores),
# the type check of every TypeScript file, and zig fmt.
TS_ALL := mod.ts $(wildcard src/*/*.ts ffi/*.ts tests/*/*.ts tests/*/*/*.ts bench/*.ts examples/*.ts tools/*.ts)
test-lint: node_modules/.installed | $(VENV)/.zig-$(ZIG_VERSION)
	$(DENO) fmt --check
	$(DENO) lint
	$(DENO) doc --lint mod.ts
	$(DENO) check $(filter-out ffi/bun.ts ffi/park_worker.ts,$(TS_ALL))
	node_modules/.bin/tsc -p tools/tsconfig.bun.json
	$(ZIG) fmt --check zig bench build.zig build.zig.zon
	$(BUN) tools/check_imports.ts
	@# The root is no package: `deno publish` there must fail (the package is dist/jsr).
	@mkdir -p tests/out
	if $(DENO) publish --dry-run > tests/out/publish.log 2>&1; then \
	  echo "FAIL: deno publish at the root would publish a package"; exit 1; fi
	grep -q "Missing 'name' field" tests/out/publish.log

# Installed as users install it: npm (Verdaccio on loopback, bun add, npm:zev), JSR
# (dist/jsr served over HTTP), the libc choice, every error path (tests/install/run.ts).
test-install: dist $(BUN_MUSL)
	$(BUN) tests/install/run.ts

# Reactor mutants (tests/mutants/reactor.ts): each a small break of zig/ in a copy of the
# tree; every one must be killed by the tests that guard it.
test-mutants: node_modules/.installed | $(VENV)/.zig-$(ZIG_VERSION)
	$(BUN) tests/mutants/reactor.ts

# The reactor's tests natively for glibc and musl (on epoll, then again on io_uring), and
# for aarch64 musl under qemu-user.
test-zig: tools | $(VENV)/.zig-$(ZIG_VERSION) .tools/debs-test
	$(ZIG) build abi-check
	$(ZIG) build test --summary all
	ZEV_BACKEND=io_uring $(ZIG) build test --summary all
	$(ZIG) build test-aarch64 -fqemu --summary all
	@# The wake bridge's benchmark still runs (a round too short to mean anything).
	zig-out/bin/zev-bridge --rounds 1 --wakes 20 > /dev/null

# The musl library must be static: no NEEDED entry at all; the glibc one links libc.so.6.
test-musl-c: lib lib-edge tests/out/burst-musl
	! readelf -d $(LIB_MUSL) | grep -q NEEDED
	readelf -d $(LIB_GNU) | grep -q 'NEEDED.*libc.so.6'
	tests/out/burst-musl $(LIB_MUSL) 1000
	@echo "-- the same musl program against the edge-single musl library must stall:"
	if tests/out/burst-musl $(EDGE_MUSL) 1000 > tests/out/burst-musl-edge.log; then \
	  cat tests/out/burst-musl-edge.log; echo "FAIL: no stall against $(EDGE_MUSL)"; exit 1; fi
	cat tests/out/burst-musl-edge.log
	grep -q '^stall:' tests/out/burst-musl-edge.log

# Every suite under Deno and Bun, with each library, each wake and each backend: six runs
# that cover every pair of them (a runtime with each library, each wake and each backend;
# each library with each wake and backend). Bun's own musl build is one more (test-bun-musl).
test-ts: lib tools node_modules/.installed
	@echo "== deno, $(LIB_GNU)"; ZEV_LIB=$(LIB_GNU) $(DENO_TEST) $(TS_TESTS)
	@echo "== bun, $(LIB_MUSL)"; ZEV_LIB=$(LIB_MUSL) $(call BUN_TEST,$(BUN)) $(TS_TESTS)
	@echo "== deno, $(LIB_MUSL), ZEV_WAKE=thread"; ZEV_WAKE=thread ZEV_LIB=$(LIB_MUSL) $(DENO_TEST) $(TS_TESTS)
	@echo "== bun, $(LIB_GNU), ZEV_WAKE=thread"; ZEV_WAKE=thread ZEV_LIB=$(LIB_GNU) $(call BUN_TEST,$(BUN)) $(TS_TESTS)
	@echo "== deno, $(LIB_MUSL), ZEV_BACKEND=io_uring"; ZEV_BACKEND=io_uring ZEV_LIB=$(LIB_MUSL) $(DENO_TEST) $(TS_TESTS)
	@echo "== bun, $(LIB_GNU), ZEV_BACKEND=io_uring, ZEV_WAKE=thread"; ZEV_BACKEND=io_uring ZEV_WAKE=thread ZEV_LIB=$(LIB_GNU) $(call BUN_TEST,$(BUN)) $(TS_TESTS)

# The proof that the burst tests test something: against Janet 1.32's listener
# behaviour they must fail, and fail by stalling.
test-edge: lib-edge node_modules/.installed
	@mkdir -p tests/out
	@for lib in $(EDGE_GNU) $(EDGE_MUSL); do \
	  for rt in deno bun; do \
	    echo "== $$rt, $$lib: the burst tests must stall"; \
	    if [ $$rt = deno ]; then cmd="$(DENO_TEST)"; else cmd="$(call BUN_TEST,$(BUN))"; fi; \
	    if ZEV_LIB=$$lib $$cmd $(BURST_TESTS) > tests/out/edge.log 2>&1; then \
	      cat tests/out/edge.log; echo "FAIL: the burst tests passed against $$lib"; exit 1; fi; \
	    stalls=$$(grep -c 'stall:' tests/out/edge.log || true); \
	    if [ "$$stalls" -lt 4 ]; then cat tests/out/edge.log; echo "FAIL: expected 4 stalls, saw $$stalls"; exit 1; fi; \
	    echo "   ok: $$stalls stalled tests, as Janet 1.32 would"; \
	  done; \
	done

# Bun's own musl build, in a real musl process, with the musl library found on its own.
test-bun-musl: lib tools $(BUN_MUSL)
	ZEV_OPENSSL=$(abspath .tools/bun-musl/lib/libssl.so.3) $(call BUN_TEST,$(BUN_MUSL)) $(TS_TESTS)

# 75 s of churn, traffic and park/wake cycles per runtime and library, once with the
# fallback parker and once on io_uring, all five at once (each watches its own server);
# fails on death, errors, or memory or descriptors that keep growing.
# `bun bench/soak.ts --seconds N` runs longer.
SOAK_SECONDS ?= 75
test-soak: lib tools $(BUN_MUSL)
	@mkdir -p tests/out
	$(BUN) bench/soak.ts --runtime deno --seconds $(SOAK_SECONDS) --lib $(LIB_GNU) > tests/out/soak1.log 2>&1 & p1=$$!; \
	$(BUN) bench/soak.ts --runtime bun --seconds $(SOAK_SECONDS) --lib $(LIB_GNU) > tests/out/soak2.log 2>&1 & p2=$$!; \
	$(BUN) bench/soak.ts --runtime bun --seconds $(SOAK_SECONDS) --exec $(BUN_MUSL) --lib $(LIB_MUSL) > tests/out/soak3.log 2>&1 & p3=$$!; \
	ZEV_WAKE=thread $(BUN) bench/soak.ts --runtime deno --seconds $(SOAK_SECONDS) --lib $(LIB_MUSL) > tests/out/soak4.log 2>&1 & p4=$$!; \
	ZEV_BACKEND=io_uring $(BUN) bench/soak.ts --runtime bun --seconds $(SOAK_SECONDS) --lib $(LIB_GNU) > tests/out/soak5.log 2>&1 & p5=$$!; \
	failed=0; for p in $$p1 $$p2 $$p3 $$p4 $$p5; do wait $$p || failed=1; done; \
	for i in 1 2 3 4 5; do tail -n 4 tests/out/soak$$i.log; done; \
	if [ $$failed -ne 0 ]; then cat tests/out/soak*.log; echo "FAIL: a soak failed"; exit 1; fi

# Mutation testing: the reactor mutants, then StrykerJS over src/ (long: before a release).
tools/stryker/node_modules/.installed: tools/stryker/package.json tools/stryker/package-lock.json
	cd tools/stryker && npm ci --no-audit --no-fund --loglevel=error
	touch $@

mutate: setup lib tools/stryker/node_modules/.installed
	$(BUN) tests/mutants/reactor.ts
	$(BUN) tests/mutants/stryker.ts

# ---- packages ------------------------------------------------------------------------------

# The seven libraries (release, stripped) and the npm and JSR packages, into dist/.
dist: setup
	$(ZIG) build dist
	$(BUN) tools/dist.ts

# ---- demo and benchmarks ------------------------------------------------------------------

demo: setup lib lib-edge tools
	$(BUN) bench/demo.ts

bench: setup lib tools .tools/debs-bench
	$(BUN) bench/run.ts
	$(BUN) bench/tls.ts
	$(BUN) bench/idle.ts
	$(BUN) bench/heap.ts
	$(BUN) bench/read_idioms.ts

# The kernel's price for the wake bridge, with no runtime (bench/bridge.zig, docs/design/WAKE.md).
bench-bridge: tools
	zig-out/bin/zev-bridge --rounds 10

clean:
	rm -rf zig-out zig-out-edge .zig-cache tests/out bench/out dist
