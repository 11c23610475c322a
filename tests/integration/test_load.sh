#!/bin/bash
# Load (issue 14 §2), bounded: the sidecar on the tiny model under 100 concurrent
# /generate, /status and /health timed during a long generation, 1,000 keep-alive and
# 1,000 new connections among byte-a-second and vanishing clients (descriptors and
# threads counted before and after); the app with a download from the fake hub, a
# dictation and API polling at once (tests/integration/load.py does the clients).
# Bigger runs: CODICTATE_LOAD_CONCURRENT, CODICTATE_LOAD_REQUESTS, CODICTATE_LOAD_SLOW;
# CODICTATE_LOAD_SIDECAR_ARGS: more sidecar options (e.g. "--threads 2", to compare)
# (README "Reliability"). The "figure:" lines are the measurements.
#   test_load.sh CODICTATE FAKEHUB TINY_MODEL WHISPER_BIN
set -u
bin=$1 fakehub=$2 model=$3 whisper=$4
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../sh_test.sh"
. "$here/../serve_app.sh"
tmp=$(mktemp -d)
scpid=
cleanup() {
  [ -n "$scpid" ] && kill_pid -9 "$scpid" 2>/dev/null
  app_stop
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
is() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }
# py NAME ARGS...: runs load.py, adds its "N passed, N failed" to ours.
py() {
  local name=$1 out p f
  shift
  out=$(timeout 400 python3 "$here/load.py" "$@" | tail -n 1)
  p=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' <<<"$out")
  f=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' <<<"$out")
  if [ -z "$p" ]; then
    echo "FAIL $name: load.py ended without its count" >&2
    failed=$((failed + 1))
    return
  fi
  passed=$((passed + p)) failed=$((failed + f))
}

# --- the sidecar: a queue of 64, so that 100 at once meet both answers ---
# shellcheck disable=SC2086 # options, split on purpose
"$bin" sidecar --queue 64 --port-range 21600-21700 ${CODICTATE_LOAD_SIDECAR_ARGS:-} \
  >"$tmp/sidecar.out" 2>"$tmp/sidecar.err" &
scpid=$!
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's/^CODICTATE_SIDECAR_PORT=//p' "$tmp/sidecar.out")
  [ -n "$port" ] && break
  sleep 0.05
done
check "sidecar starts" test -n "$port"
[ -n "$port" ] && py sidecar sidecar "$port" "$scpid" "$model"
check "sidecar: alive after the load" kill -0 "$scpid"
kill_pid -TERM "$scpid"
wait "$scpid" 2>/dev/null
check "sidecar: exits 0 on SIGTERM after the load (no sanitizer report)" is "$?" 0
scpid=

# --- the app: the test catalog on the fake hub, the tiny models pulled ---
app_home "$tmp"
check "fake hub" app_hub "$tmp" "$bin" "$fakehub" "$model" "$whisper"
for id in test_llm_v1 test_whisper_v1; do
  check "pull $id" "$bin" models pull "$id"
done
if command -v espeak-ng >/dev/null; then
  espeak-ng -w "$tmp/speech.wav" "Hello there, this is a dictation under load. Call me back tomorrow." 2>/dev/null
else # a tone: the tiny whisper model transcribes anything into words
  python3 -c 'import math, struct, wave
w = wave.open("'"$tmp"'/speech.wav", "wb"); w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 9.0))) for i in range(48000)))'
fi
check "app starts" app_serve "$tmp" "$bin"
[ -n "$url" ] && py app app "$url" "$servepid" "$tmp/speech.wav"
check "app: alive after the load" kill -0 "$servepid"
kill_pid -TERM "$servepid"
wait "$servepid" 2>/dev/null
check "app: exits 0 on SIGTERM after the load (no sanitizer report)" is "$?" 0
servepid=
check "no sanitizer report in the servers' logs" \
  eval '! grep -l "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" "$tmp"/*.err'
finish
