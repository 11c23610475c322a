# Thin driver around CMake. `make` builds everything into build/ (the engines are
# fetched and built once per machine, cached outside the checkout); `make test`
# builds and runs all tests; `make test SANITIZE=1` does the same with ASan+UBSan
# in build-asan/; `make run` builds and runs the main job; `make fuzz` builds the
# libFuzzer targets with clang in build-fuzz/ and runs each a million times; `make
# tsan` looks for data races with ThreadSanitizer in build-tsan/.

PREFIX   ?= /usr/local
SANITIZE ?= 0
# CI (CI=true) turns warnings into errors.
WERROR   ?= $(if $(filter true 1,$(CI)),1,0)
BUILD    ?= $(if $(filter 1,$(SANITIZE)),build-asan,build)
BUILD_TYPE ?= $(if $(filter 1,$(SANITIZE)),Debug,RelWithDebInfo)
CTEST_ARGS ?=

.PHONY: all deps engines configure run test fuzz tsan install clean format check-format

all: configure
	cmake --build $(BUILD)

deps:
	@scripts/deps.sh

# Configures when the build dir is new or the engine prefix / options changed.
configure: deps
	@set -e; engines=$$(scripts/engines.sh); \
	want="$$engines|$(SANITIZE)|$(WERROR)|$(BUILD_TYPE)"; \
	if [ ! -f $(BUILD)/CMakeCache.txt ] || [ "$$(cat $(BUILD)/.configured 2>/dev/null)" != "$$want" ]; then \
	  cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	    -DCODICTATE_ENGINES="$$engines" -DCODICTATE_SANITIZE=$(SANITIZE) \
	    -DCODICTATE_WERROR=$(WERROR) -DCMAKE_INSTALL_PREFIX=$(PREFIX); \
	  echo "$$want" > $(BUILD)/.configured; \
	fi

# The app: the web UI at http://127.0.0.1:11380/ (RUN_ARGS, e.g. RUN_ARGS="--port 8080").
RUN_ARGS ?=
run: all
	$(BUILD)/bin/codictate serve $(RUN_ARGS)

test: all
	cd $(BUILD) && ctest --output-on-failure --timeout 600 $(CTEST_ARGS)

# Fuzzing (tests/fuzz, scripts/fuzz.sh): each target FUZZ_RUNS times (default
# 1000000) or FUZZ_SECONDS (default 1800), whichever comes first; FUZZ_TARGETS picks
# some (FUZZ_TARGETS="fuzz_cleanup fuzz_guard"). Fails on a crash, leak or timeout.
# In build-fuzz/, or in BUILD when it is given on the command line (make fuzz
# BUILD=build-fuzz-mine: the fuzz build is a project of its own, never the main one).
FUZZ_TARGETS ?=
FUZZ_RUNS ?=
FUZZ_SECONDS ?=
FUZZ_BUILD ?= $(if $(filter command line,$(origin BUILD)),$(BUILD),build-fuzz)
fuzz: deps
	FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_TARGETS)

# Data races (scripts/tsan.sh): the threaded tests built with ThreadSanitizer; fails on
# a report, not on a test's own timing.
tsan: deps
	scripts/tsan.sh build-tsan

install: all
	cmake --install $(BUILD) --prefix $(PREFIX)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

check-format:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz
