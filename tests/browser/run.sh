#!/bin/bash
# `codictate serve`'s web UI in a real browser: Debian's chromium (headless),
# driven by playwright-core (tests/browser/app.test.mjs), against the app with a
# fake Hugging Face hub and a test catalog (tests/serve_app.sh) and a private
# PulseAudio daemon whose microphone says an espeak-ng sentence (tests/pulse_mic.sh).
# Screenshots of each page go to $TEST_OUT, else $CODICTATE_BROWSER_SHOTS, else
# ./browser-shots. Prints "N passed, N failed". Exit 77 (skipped) only where
# chromium or pulseaudio cannot run, and never with CI=true (then it fails).
#   run.sh CODICTATE FAKEHUB LLM_GGUF WHISPER_BIN
set -u
bin=$1 fakehub=$2 llm=$3 whisper=$4
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../sh_test.sh"
. "$here/common.sh"
. "$here/../pulse_mic.sh"
. "$here/../serve_app.sh"
shots=${TEST_OUT:-${CODICTATE_BROWSER_SHOTS:-$PWD/browser-shots}}
tmp=$(mktemp -d)
cleanup() {
  app_stop
  pulse_mic_stop
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

command -v pulseaudio >/dev/null || skip "no pulseaudio binary (scripts/deps.sh installs it)"
# playwright-core from the pinned lockfile, cached outside the checkout (before
# HOME moves to the temp dir).
browser_modules

app_home "$tmp"
app_hub "$tmp" "$bin" "$fakehub" "$llm" "$whisper" || fail "the fake hub"
# The small models are pulled before the app starts; the big one is the UI's.
for id in test_llm_v1 test_whisper_v1; do
  "$bin" models pull "$id" >/dev/null 2>"$tmp/pull.err" || { cat "$tmp/pull.err" >&2; fail "models pull $id"; }
done

espeak-ng -w "$tmp/speech.wav" "Hello there, this is a dictation test. Please call me back tomorrow." 2>/dev/null ||
  fail "espeak-ng could not speak"
if ! pulse_mic_start "$tmp" "$tmp/speech.wav"; then
  cat "$tmp/pa.log" >&2
  skip "the pulseaudio daemon did not start here"
fi
export PULSE_SERVER=unix:$tmp/pa/pulse.sock

app_serve "$tmp" "$bin" --recording-limit 35 || fail "codictate serve did not start"

mkdir -p "$shots"
CODICTATE_URL=$url FAKEHUB_URL=$HF_ENDPOINT SHOTS_DIR=$shots NODE_MODULES_DIR=$modules SPEECH_WAV=$tmp/speech.wav \
  node "$here/app.test.mjs"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
  echo "--- serve stderr (last 80 lines):" >&2
  tail -n 80 "$tmp/serve.err" >&2
fi
[ $rc -eq 77 ] && skip "chromium could not start here"
echo "screenshots: $shots" >&2
exit $rc
