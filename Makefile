# Set-up and everyday commands. `make demo` and `make test` are all a fresh
# Debian 12 machine needs (as root they install missing packages first).
BUILD    ?= build
MAKEFLAGS += --no-print-directory
JOBS     ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build demo test asan-test bench chaos format clean

all: build

deps:
	@./scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	@./examples/research/demo.sh $(BUILD)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

asan-test: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Asan $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

bench: build
	@./bench/run.sh $(BUILD)

chaos: build
	@cd $(BUILD) && AGENTD_CHAOS_INJECTIONS=$${AGENTD_CHAOS_INJECTIONS:-2000} ctest -R chaos --output-on-failure

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) build-asan
