# The two commands from the README. Everything else is CMake.
BUILD ?= build
JOBS  ?= $(shell nproc)
# seconds each fuzz harness runs in fuzz-smoke
FUZZ_SECONDS ?= 10
VALGRIND = valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99

.PHONY: all deps build test check lint sanitize fuzz-smoke valgrind demo clean format package

all: build

deps:
	@scripts/deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

# The suite, then the checks CI runs after it (.ci/run calls only `make test`).
test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	$(MAKE) --no-print-directory check

check: lint sanitize fuzz-smoke

# cppcheck + clang-tidy over common/, proto/, services/ (.clang-tidy,
# .cppcheck-suppressions).
lint: deps
	scripts/lint.sh build-lint

demo: build
	scripts/demo.sh $(BUILD)

sanitize: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DEC_SANITIZE=ON >/dev/null
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ctest --output-on-failure -j$(JOBS)

# libFuzzer harnesses (fuzz/), built with clang, each run FUZZ_SECONDS on its corpus.
fuzz-smoke: deps
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DEC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build-fuzz --target fuzzers -j$(JOBS)
	fuzz/smoke.sh build-fuzz $(FUZZ_SECONDS)

# The cascade integration test with every service under valgrind memcheck
# (not part of `make test`: about a minute on 2 cores).
valgrind: build
	cd $(BUILD) && EC_SERVICE_WRAPPER="$(VALGRIND)" ctest -R integration.test_cascade --output-on-failure

# The Debian package: $(BUILD)/edgecascade_<version>_<arch>.deb (deploy/CMakeLists.txt).
package: build
	cd $(BUILD) && cpack -G DEB

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-asan build-fuzz build-lint
