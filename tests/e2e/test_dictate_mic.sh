#!/bin/bash
# `codictate dictate` recording from a microphone: a private PulseAudio daemon with
# a virtual source (module-pipe-source) fed espeak-ng speech in real time. Checks
# the recording limit stopping by itself (with its warning), Enter on stdin
# stopping, SIGUSR1 stopping, SIGTERM cancelling (the recording kept for
# --retry-last), and the sound server dying mid-recording (what was recorded is
# still transcribed). Exit 77 (skipped) when no pulseaudio binary can run here.
#   test_dictate_mic.sh CODICTATE WHISPER.bin
set -u
bin=$1 model=$2
. "$(dirname "$0")/../sh_test.sh"
tmp=$(mktemp -d)
pa=
feeder=
cleanup() {
  [ -n "$feeder" ] && kill_pid -TERM "$feeder" 2>/dev/null
  [ -n "$pa" ] && kill_pid -TERM "$pa" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
PY=/usr/bin/python3
T=(--threads 1 --whisper-model "$model" --no-vad)

if ! command -v pulseaudio >/dev/null; then
  echo "SKIP: no pulseaudio binary (scripts/deps.sh installs it) for a virtual microphone"
  exit 77
fi

export HF_HOME=$tmp/hf-empty CODICTATE_DATA_DIR=$tmp/data
unset HF_HUB_CACHE CODICTATE_CATALOG WAYLAND_DISPLAY DISPLAY OPENAI_API_KEY OPENAI_BASE_URL

has() { case "$1" in *"$2"*) return 0 ;; esac; echo "  '$1' lacks '$2'" >&2; return 1; }
is() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }
jget() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
hist() { "$bin" history --json 2>/dev/null >"$tmp/h.json"; jget "$tmp/h.json" "$1"; }
between() { "$PY" -c 'import sys; v,lo,hi=map(float,sys.argv[1:]); sys.exit(0 if lo<=v<=hi else 1)' "$@" ||
  { echo "  $1 not in [$2, $3]" >&2; return 1; }; }

espeak-ng -w "$tmp/speech.wav" "Hello there, this is a dictation test. Please call me back tomorrow." 2>/dev/null

# --- the private sound server (tests/pulse_mic.sh) ---
. "$(dirname "$0")/../pulse_mic.sh"
pulse_start() { pulse_mic_start "$tmp" "$tmp/speech.wav"; }
pulse_stop() { pulse_mic_stop; }
if ! pulse_start; then
  echo "SKIP: the pulseaudio daemon did not start here:"
  cat "$tmp/pa.log"
  exit 77
fi
export PULSE_SERVER=unix:$tmp/pa/pulse.sock

# --- the limit stops the recording by itself, after its warning ---
"$bin" dictate --max-seconds 3 --json "${T[@]}" </dev/null >"$tmp/a.json" 2>"$tmp/a.err"
check "limit: exit 0" is "$?" 0
check "limit: the warning (limit under 30 s: at once)" has "$(cat "$tmp/a.err")" "3 s of recording left"
check "limit: stopped by itself" has "$(cat "$tmp/a.err")" "the recording limit (0:03) was reached"
check "limit: about 3 s recorded" between "$(jget "$tmp/a.json" 'd["audio_seconds"]')" 2.7 4.6
check "limit: source microphone" is "$(jget "$tmp/a.json" 'd["source"]')" microphone
check "limit: the recording saved" [ -s "$(jget "$tmp/a.json" 'd["recording"]')" ]
check "limit: the speech was heard (a transcript)" [ -n "$(jget "$tmp/a.json" 'd["raw"]')" ]

# --- Enter (a line on stdin) stops ---
# (The pipe source may hold up to ~1.5 s of audio queued before a recording
# starts, so the bounds below are loose; the limit is minutes away.)
(sleep 1.5; echo) | "$bin" dictate --json "${T[@]}" >"$tmp/b.json" 2>"$tmp/b.err"
check "Enter: exit 0" is "$?" 0
check "Enter: stopped after ~1.5 s" between "$(jget "$tmp/b.json" 'd["audio_seconds"]')" 0.8 4.5

# --- SIGUSR1 stops (for a hotkey daemon) ---
"$bin" dictate --json "${T[@]}" </dev/null >"$tmp/c.json" 2>"$tmp/c.err" &
p=$!
sleep 1.5
kill_pid -USR1 $p
wait $p
check "SIGUSR1: exit 0" is "$?" 0
check "SIGUSR1: stopped after ~1.5 s" between "$(jget "$tmp/c.json" 'd["audio_seconds"]')" 0.8 4.5

# --- SIGTERM cancels; the recording is kept and --retry-last redoes it ---
"$bin" dictate --json "${T[@]}" </dev/null >"$tmp/d.json" 2>"$tmp/d.err" &
p=$!
sleep 1.5
kill_pid -TERM $p
wait $p
check "SIGTERM: cancelled, exit 130" is "$?" 130
check "SIGTERM: says cancelled" has "$(cat "$tmp/d.err")" "cancelled"
check "SIGTERM: nothing on stdout" is "$(cat "$tmp/d.json")" ""
check "SIGTERM: history says cancelled, with the recording" is \
  "$(hist '(d[0]["status"], d[0]["audio_path"] is not None)')" "('cancelled', True)"
"$bin" dictate --retry-last --json "${T[@]}" >"$tmp/e.json" 2>"$tmp/e.err"
check "cancelled, then --retry-last: exit 0" is "$?" 0
check "cancelled, then --retry-last: done" is "$(hist 'd[0]["status"]')" done

# --- --toggle with no app: a background dictation, stopped by the next toggle ---
export XDG_RUNTIME_DIR=$tmp/run
"$bin" dictate --toggle "${T[@]}" >"$tmp/g1.out" 2>&1
check "toggle (no app) 1: exit 0" is "$?" 0
check "toggle (no app) 1: records in the background" has "$(cat "$tmp/g1.out")" "recording in the background"
check "toggle (no app) 1: its PID file" [ -s "$tmp/run/codictate/dictate-toggle.pid" ]
sleep 2
"$bin" dictate --toggle "${T[@]}" >"$tmp/g2.out" 2>&1
check "toggle (no app) 2: exit 0" is "$?" 0
check "toggle (no app) 2: stopped it" has "$(cat "$tmp/g2.out")" "stopped the background dictation"
for _ in $(seq 1 100); do
  [ -e "$tmp/run/codictate/dictate-toggle.pid" ] || break
  sleep 0.1
done
check "toggle (no app): the background dictation ended (PID file gone)" \
  [ ! -e "$tmp/run/codictate/dictate-toggle.pid" ]
check "toggle (no app): history has it, done, ~2 s" is \
  "$(hist '(d[0]["status"], d[0]["source"], 1.0 <= d[0]["audio_seconds"] <= 5)')" "('done', 'microphone', True)"
check "toggle (no app): --json refused" is "$("$bin" dictate --toggle --json >/dev/null 2>&1; echo $?)" 2

# --- the sound server dies mid-recording: what was recorded is transcribed ---
"$bin" dictate --json "${T[@]}" </dev/null >"$tmp/f.json" 2>"$tmp/f.err" &
p=$!
sleep 1.5
pulse_stop
wait $p
check "server gone: exit 0" is "$?" 0
check "server gone: says the recording stopped" has "$(cat "$tmp/f.err")" "recording stopped"
check "server gone: the audio so far kept" between "$(jget "$tmp/f.json" 'd["audio_seconds"]')" 0.5 4.5

finish
