# phivault: the README's commands. Each target installs what it needs first
# (scripts/install-deps.sh is idempotent), so they work on a fresh Debian 12.
.PHONY: deps demo build test test-asan fuzz-smoke bench ci clean

JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
BIN := build/release/src/cli/phivault

deps:
	bash scripts/install-deps.sh

build: deps
	cmake --preset release >/dev/null
	cmake --build build/release -j $(JOBS)

# A demo vault with the bundled sample patients, served on 127.0.0.1:8080.
demo: build
	$(BIN) demo

# Every test, in the release build (the binary the demo and benchmarks run).
test: build
	ctest --test-dir build/release --output-on-failure -j $(JOBS)

# The same suite under AddressSanitizer and UndefinedBehaviorSanitizer
# (clang-14; the same build also produces the fuzzers).
test-asan: deps
	cmake --preset asan >/dev/null
	cmake --build build/asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir build/asan --output-on-failure -j $(JOBS)

# Runs every libFuzzer target for FUZZ_SECONDS (builds only the fuzzers if
# test-asan has not built the tree already).
fuzz-smoke: deps
	cmake --preset asan >/dev/null
	cmake --build build/asan -j $(JOBS) --target fuzzers
	bash fuzz/run_all.sh build/asan $(FUZZ_SECONDS)

# Micro benchmarks and the loopback server benchmark (wrk vs nginx).
bench:
	bash scripts/install-deps.sh --bench
	cmake --preset release -DPHIVAULT_BENCH=ON >/dev/null
	cmake --build build/release -j $(JOBS)
	bash bench/run_all.sh build/release

ci: test test-asan fuzz-smoke

clean:
	rm -rf build
