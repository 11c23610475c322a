#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan, and runs each
# over its seed corpus (tests/fuzz/corpus/<target>) plus the inputs it finds.
#   scripts/fuzz.sh [--quick] [BUILD_DIR] [TARGET ...]
# `make fuzz` runs it with FUZZ_RUNS executions per target (default 1,000,000) or for
# FUZZ_SECONDS each (default 1800), whichever comes first; --quick (the ctest
# `fuzz_targets`, in `make test`) runs each briefly: FUZZ_RUNS 2000, FUZZ_SECONDS 10.
# New inputs go to BUILD_DIR/corpus/<target>, never into the committed seeds. A crash,
# leak, UBSan report or timeout (FUZZ_TIMEOUT seconds for one input, default 10)
# fails, and leaves the input in BUILD_DIR/artifacts/<target>/.
# Exit 77 (skipped) when clang or its libFuzzer runtime is missing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
quick=0
if [ "${1:-}" = "--quick" ]; then
  quick=1
  shift
fi
build=${1:-$root/build-fuzz}
[ $# -gt 0 ] && shift
case "$build" in /*) ;; *) build=$PWD/$build ;; esac

if [ $quick = 1 ]; then
  runs=${FUZZ_RUNS:-2000}
  secs=${FUZZ_SECONDS:-10}
  # The HTTP targets' client gets a signal every millisecond (tests/fuzz/fuzz_http.h):
  # a blocking call that does not go on after EINTR fails here within a few inputs.
  export CODICTATE_FUZZ_SIGNAL_MS=${CODICTATE_FUZZ_SIGNAL_MS:-1}
else
  runs=${FUZZ_RUNS:-1000000}
  secs=${FUZZ_SECONDS:-1800}
fi
timeout=${FUZZ_TIMEOUT:-10}

cc=${FUZZ_CC:-clang}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "fuzz: skipped: no $cc (install Debian's clang: scripts/deps.sh)" >&2
  exit 77
fi
if ! rt=$("$cc" -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null) || [ ! -f "$rt" ]; then
  # Other architectures: ask the driver to link a program with libFuzzer.
  probe=$(mktemp -d)
  trap 'rm -rf "$probe"' EXIT
  printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
    >"$probe/p.c"
  if ! "$cc" -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
    echo "fuzz: skipped: $cc cannot link libFuzzer (-fsanitize=fuzzer)" >&2
    exit 77
  fi
fi

engines=${CODICTATE_ENGINES:-$("$root/scripts/engines.sh" | tail -1)}
if [ ! -f "$build/build.ninja" ] || [ "$(cat "$build/.configured" 2>/dev/null)" != "$engines|$cc" ]; then
  cmake -S "$root/tests/fuzz" -B "$build" -G Ninja -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_BUILD_TYPE= -DCODICTATE_ENGINES="$engines" >/dev/null
  echo "$engines|$cc" >"$build/.configured"
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$root"/tests/fuzz/fuzz_*.c; do
    targets+=("$(basename "$f" .c)")
  done
fi
cmake --build "$build" --target "${targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/lsan.supp:print_suppressions=0}

failed=()
for t in "${targets[@]}"; do
  seeds=$root/tests/fuzz/corpus/${t#fuzz_}
  work=$build/corpus/${t#fuzz_}
  art=$build/artifacts/${t#fuzz_}
  mkdir -p "$work" "$art"
  log=$build/$t.log
  # The guard reads both texts several times over (numbers, names, words): inputs of
  # a sentence or a paragraph, not pages, keep it at hundreds of runs a second.
  case "$t" in
    fuzz_guard) maxlen=${FUZZ_MAX_LEN:-1024} ;;
    fuzz_catalog) maxlen=${FUZZ_MAX_LEN:-16384} ;; # the shipped catalog is a seed
    *) maxlen=${FUZZ_MAX_LEN:-4096} ;;
  esac
  echo "fuzz: $t: up to $runs runs or ${secs}s over $seeds" >&2
  if "$build/$t" -runs="$runs" -max_total_time="$secs" -timeout="$timeout" \
    -rss_limit_mb=2048 -max_len="$maxlen" -print_final_stats=1 -artifact_prefix="$art/" \
    "$work" "$seeds" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    secs_taken=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log")
    size=$(find "$work" -type f | wc -l)
    echo "fuzz: $t: ok: $execs runs in ${secs_taken:-?} s, corpus $size found + $(find "$seeds" -type f | wc -l) seeds" >&2
  else
    tail -n 60 "$log" >&2
    echo "fuzz: $t: FAILED (log $log, inputs in $art)" >&2
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
