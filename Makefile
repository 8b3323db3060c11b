# ogd — developer entry points. `make run` and `make test` are the two that matter.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS ?= $(shell nproc)

.PHONY: all deps build run test test-asan fuzz chaos bench format format-check clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@bash scripts/run-embedded.sh $(BUILD)/ogd

test: build
	@bash scripts/test.sh $(BUILD)

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DOGD_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	@OGD_SANITIZED=1 bash scripts/test.sh $(ASAN_BUILD)

# libFuzzer targets (tests/fuzz), clang-14 in $(FUZZ_BUILD), FUZZ_SECONDS (60) per target
fuzz: deps
	@FUZZ_BUILD=$(FUZZ_BUILD) bash scripts/fuzz.sh

# fault suite (not part of `make test`): faults under load on both back-end pairs, with
# the suite's own PostgreSQL and RGW (docs/reliability.md, "Fault suite")
chaos: build
	@bash scripts/chaos.sh $(BUILD)

bench: build
	@bash bench/run.sh $(BUILD)

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'bench/*.c')

format-check:
	clang-format --dry-run --Werror $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'bench/*.c')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
