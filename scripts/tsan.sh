#!/usr/bin/env bash
# Data races: builds everything with ThreadSanitizer (gcc -fsanitize=thread) in
# BUILD_DIR (default build-tsan/) and runs the tests that run threads of ours (eager
# transcription, refinement ahead, the HTTP servers, the app with its streams, the
# sidecar client and manager, dictate and models pull), then fails when TSan reported
# a race, a lock-order inversion or a use after free in any process they started.
#   scripts/tsan.sh [BUILD_DIR] [CTEST_REGEX]
# `make tsan` runs it. Under TSan everything runs 5-20x slower, so a test may fail on
# its own timing; that is not counted: only TSan's reports are (written to
# BUILD_DIR/tsan/r.<pid>, one file per process that had one). The engines' OpenMP
# threads and PulseAudio's client library are suppressed (tests/tsan.supp: neither is
# instrumented). A test's own time limit is 4x here (tests/CMakeLists.txt, cdt_test).
# Takes about an hour on 2 cores.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-tsan}
case "$build" in /*) ;; *) build=$PWD/$build ;; esac
tests=${2:-"^(unit_httpd|unit_sidecar_http|unit_sidecar_client|unit_refine_ahead|unit_refiner_app|integration_sidecar|integration_manager|integration_refine_sidecar|integration_eager_dictation|integration_dictation_cancel|integration_load|e2e_serve_api|e2e_serve_cancel|e2e_dictate_eager|e2e_dictate_cancel|e2e_models_cli)$"}

engines=${CODICTATE_ENGINES:-$("$root/scripts/engines.sh" | tail -1)}
if [ ! -f "$build/build.ninja" ] || [ "$(cat "$build/.configured" 2>/dev/null)" != "$engines|tsan" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCODICTATE_ENGINES="$engines" -DCODICTATE_TSAN=ON >/dev/null
  echo "$engines|tsan" >"$build/.configured"
fi
cmake --build "$build"

reports=$build/tsan
rm -rf "$reports"
mkdir -p "$reports"
export TSAN_OPTIONS="suppressions=$root/tests/tsan.supp:halt_on_error=0:report_signal_unsafe=0:history_size=4:exitcode=0:log_path=$reports/r"
(cd "$build" && ctest -R "$tests" --timeout 1800 >"$reports/ctest.log" 2>&1) || true
grep -E "tests passed|Failed|\(Timeout\)" "$reports/ctest.log" | sed 's/^/ctest (timing under TSan, not counted): /' || true

n=0
for f in "$reports"/r.*; do
  [ -e "$f" ] || continue
  n=$((n + $(grep -c "^WARNING: ThreadSanitizer" "$f" || true)))
  echo "--- $f"
  grep -E "^WARNING|^    #[0-5] |^  (Read|Write|Previous|Location|Mutex)" "$f" | head -40
done
echo "$n ThreadSanitizer reports"
if [ "$n" -gt 0 ]; then
  echo "0 passed, 1 failed"
  exit 1
fi
echo "1 passed, 0 failed"
