#!/bin/bash
# `codictate dictate` with eager transcription (issue 16), recording from a virtual
# microphone (tests/pulse_mic.sh) that speaks espeak-ng sentences with pauses, with the
# real Silero VAD and the tiny random whisper model (its text is noise: the checks are
# about the chunks, the saved recording and the timings). Checks: eager is the
# default and its chunks cover the recording exactly (no audio skipped past a cut);
# speech is transcribed while recording; the limit reached while chunks are in flight
# loses nothing; SIGTERM during eager transcription keeps the whole recording;
# --no-eager transcribes after stop. Exit 77 (skipped) when no pulseaudio can run,
# never with CI=true (then it fails).
#   test_dictate_eager.sh CODICTATE WHISPER.bin VAD.bin
set -u
bin=$1 model=$2 vad=$3
. "$(dirname "$0")/../sh_test.sh"
tmp=$(mktemp -d)
cleanup() {
  pulse_mic_stop
  rm -rf "$tmp"
}
trap cleanup EXIT
PY=/usr/bin/python3
T=(--threads 1 --whisper-model "$model" --vad-model "$vad")

skip() { # skipped (77), except with CI=true (CI never skips)
  if [ "${CI:-}" = true ]; then
    echo "FAIL: $1 (CI=true: not skipped)" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
  echo "SKIP: $1"
  exit 77
}
if ! command -v pulseaudio >/dev/null; then
  skip "no pulseaudio binary (scripts/deps.sh installs it) for a virtual microphone"
fi

export HF_HOME=$tmp/hf-empty CODICTATE_DATA_DIR=$tmp/data
unset HF_HUB_CACHE CODICTATE_CATALOG WAYLAND_DISPLAY DISPLAY OPENAI_API_KEY OPENAI_BASE_URL

is() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }
jget() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
hist() { "$bin" history --json 2>/dev/null >"$tmp/h.json"; jget "$tmp/h.json" "$1"; }
wav_s() { "$PY" -c 'import sys, wave; w=wave.open(sys.argv[1]); print(w.getnframes()/w.getframerate())' "$1"; }
# The chunks of a --json result partition [0, audio_seconds]: contiguous, from 0 to
# the end (the recording's every sample went to exactly one chunk).
partition() {
  "$PY" - "$1" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
c, n = d["timings"]["chunks"], d["audio_seconds"]
ok = len(c) >= 1 and c[0]["start"] == 0 and abs(c[-1]["end"] - n) < 0.002
ok = ok and all(abs(c[i]["start"] - c[i - 1]["end"]) < 1e-9 for i in range(1, len(c)))
if not ok:
    print("  chunks", [(x["start"], x["end"]) for x in c], "audio", n, file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
}

# Sentences with pauses; the microphone repeats them (a second of silence after each pass).
espeak-ng -w "$tmp/s1.wav" "Hello there, this is a dictation test." 2>/dev/null
espeak-ng -w "$tmp/s2.wav" "Please call me back tomorrow about the report." 2>/dev/null
"$PY" - "$tmp/s1.wav" "$tmp/s2.wav" "$tmp/speech.wav" <<'EOF'
import sys, wave
a, b = wave.open(sys.argv[1]), wave.open(sys.argv[2])
rate = a.getframerate()
pcm = a.readframes(a.getnframes()) + b"\0\0" * int(rate * 0.9) + b.readframes(b.getnframes())
o = wave.open(sys.argv[3], "wb")
o.setnchannels(1); o.setsampwidth(2); o.setframerate(rate); o.writeframes(pcm)
EOF

. "$(dirname "$0")/../pulse_mic.sh"
if ! pulse_mic_start "$tmp" "$tmp/speech.wav"; then
  cat "$tmp/pa.log"
  skip "the pulseaudio daemon did not start here"
fi
export PULSE_SERVER=unix:$tmp/pa/pulse.sock

# --- eager by default: chunks while recording, the tail after stop ---
# (12 s: the first sentence's chunk closes at ~3 s; even a slow, loaded machine with
# sanitizers has transcribed it by Enter)
(sleep 12; echo) | "$bin" dictate --json "${T[@]}" >"$tmp/a.json" 2>"$tmp/a.err"
check "eager: exit 0" is "$?" 0
check "eager: on by default" is "$(jget "$tmp/a.json" 'd["timings"]["eager"]')" True
check "eager: the chunks cover the recording" partition "$tmp/a.json"
check "eager: a chunk transcribed while recording" is \
  "$(jget "$tmp/a.json" 'any(c["speech"] and not c["after_stop"] for c in d["timings"]["chunks"])')" True
check "eager: speech in more than one chunk" is \
  "$(jget "$tmp/a.json" 'sum(c["speech"] for c in d["timings"]["chunks"]) >= 2')" True
check "eager: segments inside the recording" is \
  "$(jget "$tmp/a.json" 'all(0 <= s["start"] <= s["end"] <= d["audio_seconds"] + 0.01 for s in d["segments"])')" True
check "eager: per-stage timings" is \
  "$(jget "$tmp/a.json" 'all(k in d["timings"] for k in ("record_ms", "raw_after_stop_ms", "refine_ms", "after_stop_ms"))')" True
check "eager: the saved recording is the whole recording" is \
  "$(jget "$tmp/a.json" 'float(round(d["audio_seconds"], 2))')" "$("$PY" -c "print(float(round($(wav_s "$(jget "$tmp/a.json" 'd["recording"]')"), 2)))")"
# (refined only when the random model's transcript is not empty)
check "eager: the refine pieces say which were refined while recording" is \
  "$(jget "$tmp/a.json" '"pieces" not in d["timings"] or (0 <= d["timings"]["pieces_ahead"] <= d["timings"]["pieces"] and d["timings"]["pieces_ahead"] == sum(d["timings"]["piece_ahead"]) and len(d["timings"]["piece_ahead"]) == len(d["timings"]["piece_ms"]))')" True
check "eager: history has the chunks" is \
  "$(hist 'd[0]["status"], d[0]["timings"]["eager"], len(d[0]["timings"]["chunks"]) >= 2')" "('done', True, True)"

# --- the limit reached while chunks are in flight: nothing lost ---
"$bin" dictate --max-seconds 7 --json "${T[@]}" </dev/null >"$tmp/b.json" 2>"$tmp/b.err"
check "limit: exit 0" is "$?" 0
check "limit: stopped by itself" grep -q "the recording limit (0:07) was reached" "$tmp/b.err"
check "limit: eager" is "$(jget "$tmp/b.json" 'd["timings"]["eager"]')" True
check "limit: the chunks cover the recording" partition "$tmp/b.json"
check "limit: a transcript" is "$(jget "$tmp/b.json" 'len(d["raw"]) > 0')" True
check "limit: the saved recording is whole" is \
  "$(jget "$tmp/b.json" 'float(round(d["audio_seconds"], 2))')" "$("$PY" -c "print(float(round($(wav_s "$(jget "$tmp/b.json" 'd["recording"]')"), 2)))")"

# --- SIGTERM while chunks are being transcribed: cancelled, the recording whole ---
"$bin" dictate --json "${T[@]}" </dev/null >"$tmp/c.json" 2>"$tmp/c.err" &
p=$!
sleep 6
kill_pid -TERM $p
wait $p
check "cancel: exit 130" is "$?" 130
check "cancel: nothing on stdout" is "$(cat "$tmp/c.json")" ""
check "cancel: history says cancelled" is "$(hist 'd[0]["status"]')" cancelled
wav=$(hist 'd[0]["audio_path"]')
check "cancel: the recording is whole (its length as recorded)" is \
  "$("$PY" -c "print(float(round($(wav_s "$wav"), 2)))")" "$(hist 'float(round(d[0]["audio_seconds"], 2))')"
# (the pipe source may hold ~1.5 s queued before a recording starts)
check "cancel: ~6 s of it" "$PY" -c "import sys; v=$(wav_s "$wav"); print('  ', v, file=sys.stderr); sys.exit(0 if 4.5 <= v <= 10 else 1)"
"$bin" dictate --retry-last --json "${T[@]}" >"$tmp/r.json" 2>"$tmp/r.err"
check "cancel, then --retry-last: exit 0" is "$?" 0

# --- --no-eager: everything after stop ---
(sleep 3; echo) | "$bin" dictate --no-eager --json "${T[@]}" >"$tmp/d.json" 2>"$tmp/d.err"
check "--no-eager: exit 0" is "$?" 0
check "--no-eager: not eager, no chunks" is \
  "$(jget "$tmp/d.json" 'd["timings"]["eager"], "chunks" in d["timings"]')" "(False, False)"

# --- no VAD model: after stop, as before ---
(sleep 2; echo) | "$bin" dictate --no-vad --json --threads 1 --whisper-model "$model" >"$tmp/e.json" 2>"$tmp/e.err"
check "--no-vad: exit 0" is "$?" 0
check "--no-vad: not eager" is "$(jget "$tmp/e.json" 'd["timings"]["eager"]')" False

finish
