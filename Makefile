# Thin wrapper over CMake. `make` builds into build/, `make check` runs every test,
# `make check-asan` does both again with AddressSanitizer + UBSan in build-asan/.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all check check-asan deps clean format demo bench

all:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

check: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

check-asan:
	$(MAKE) BUILD=build-asan CMAKE_EXTRA=-DS2S_SANITIZE=ON asan-build
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

asan-build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Debug $(CMAKE_EXTRA) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

deps:
	bash scripts/install-deps.sh

demo: all
	bash scripts/demo.sh

format:
	clang-format -i libs2s/*.c libs2s/s2s/*.h tools/*.c synth/*.c scorer/*.c tests/unit/*.c

clean:
	rm -rf build build-asan
