#!/bin/bash
# `codictate dictate` from the outside, on files (--input goes through the same
# path as captured audio): espeak-ng speech end to end with the tiny whisper model,
# the real Silero VAD and the tiny LLM; the recording saved before transcription
# and listed by `codictate history`; a failed transcription kept and redone with
# --retry-last; --copy and --type through stand-in clipboard/typing tools on PATH;
# no sound server → a clear error; bad files → exit 1 naming the file.
#   test_dictate_cli.sh CODICTATE WHISPER.bin VAD.bin LLM.gguf
set -u
bin=$1 model=$2 vad=$3 llm=$4
. "$(dirname "$0")/../sh_test.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PY=/usr/bin/python3
T=(--threads 1)

export HF_HOME=$tmp/hf-empty CODICTATE_DATA_DIR=$tmp/data XDG_RUNTIME_DIR=$tmp/run
unset HF_HUB_CACHE HF_TOKEN CODICTATE_CATALOG WAYLAND_DISPLAY DISPLAY OPENAI_API_KEY OPENAI_BASE_URL
mkdir -p "$tmp/run"

has() { case "$1" in *"$2"*) return 0 ;; esac; echo "  '$1' lacks '$2'" >&2; return 1; }
is() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }
# jget FILE EXPR: a Python expression over the JSON document d.
jget() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
hist() { "$bin" history --json 2>/dev/null >"$tmp/h.json"; jget "$tmp/h.json" "$1"; }

espeak-ng -w "$tmp/speech.wav" "Um, please send the quarterly report to the finance team by Friday." 2>/dev/null
check "espeak-ng wrote speech" [ -s "$tmp/speech.wav" ]

# --- espeak-ng speech, no LLM installed: the deterministic pass, the reason ---
"$bin" dictate --input "$tmp/speech.wav" --json "${T[@]}" --whisper-model "$model" --vad-model "$vad" \
  >"$tmp/a.json" 2>"$tmp/a.err"
check "speech, no LLM: exit 0" is "$?" 0
check "speech, no LLM: fallback reason" is "$(jget "$tmp/a.json" 'd["fallback_reason"]')" "no model installed"
check "speech, no LLM: reason on stderr" has "$(cat "$tmp/a.err")" "no model installed"
check "speech: raw transcript" [ -n "$(jget "$tmp/a.json" 'd["raw"]')" ]
check "speech: segments with start/end/text" is \
  "$(jget "$tmp/a.json" 'all(set(s)=={"start","end","text"} and s["start"]<=s["end"] for s in d["segments"]) and len(d["segments"])>0')" True
check "speech: source file" is "$(jget "$tmp/a.json" 'd["source"]')" file
rec=$(jget "$tmp/a.json" 'd["recording"]')
check "speech: the recording is saved as WAV" is "$(head -c4 "$rec" 2>/dev/null)" "RIFF"
check "speech: recording mode 0600" is "$(stat -c %a "$rec")" 600
check "speech: the VAD model was used" has "$(jget "$tmp/a.json" 'd["vad_model"]')" "silero"
check "speech: timings" is "$(jget "$tmp/a.json" 'all(k in d["timings"] for k in ("whisper_wait_ms","after_stop_ms","total_ms","refine_total_ms"))')" True
check "speech: timings per stage" is "$(jget "$tmp/a.json" 'all(k in d["timings"] for k in ("record_ms","raw_after_stop_ms","refine_ms","pieces","piece_ms","after_stop_ms"))')" True
check "speech: a file is not transcribed eagerly" is "$(jget "$tmp/a.json" 'd["timings"]["eager"], "chunks" in d["timings"]')" "(False, False)"
id1=$(jget "$tmp/a.json" 'd["id"]')
check "history: the dictation, done" is "$(hist '(len(d), d[0]["id"], d[0]["status"])')" "(1, '$id1', 'done')"
check "history: raw and refined kept" is "$(hist 'bool(d[0]["raw"]) and bool(d[0]["refined"])')" True
check "history: plain listing" has "$("$bin" history 2>&1)" "done"

# --- with the tiny LLM through the sidecar: delivered (model output or fallback) ---
"$bin" -v dictate --input "$tmp/speech.wav" --json "${T[@]}" --whisper-model "$model" --no-vad \
  --model "$llm" --timeout-ms 4000 >"$tmp/b.json" 2>"$tmp/b.err"
check "speech + LLM: exit 0" is "$?" 0
check "speech + LLM: the LLM was asked" is "$(jget "$tmp/b.json" 'd["model"]')" "$llm"
check "speech + LLM: text delivered" [ -n "$(jget "$tmp/b.json" 'd["refined"]')" ]
sidecar=$(sed -n 's/.*sidecar pid \([0-9]*\) on port.*/\1/p' "$tmp/b.err" | head -1)
check "speech + LLM: the sidecar was preloaded once" is "$(grep -c 'sidecar pid' "$tmp/b.err")" 1
# The preload computed the instructions' KV: the refine request reuses it.
cached=$(sed -n 's/.*generate .*cached=\([0-9]*\).*/\1/p' "$tmp/b.err" | head -1)
check "speech + LLM: the refine reused the warmed-up instructions (cached=$cached)" [ "${cached:-0}" -gt 50 ]
check "speech + LLM: the sidecar is gone afterwards" sh -c "[ -n '$sidecar' ] && ! kill -0 '$sidecar' 2>/dev/null"
id2=$(jget "$tmp/b.json" 'd["id"]')
check "history: newest first" is "$(hist '[e["id"] for e in d]')" "['$id2', '$id1']"

# --- plain text output: one line on stdout ---
out=$("$bin" dictate --input "$tmp/speech.wav" "${T[@]}" --whisper-model "$model" --no-vad 2>/dev/null)
check "text output: exit 0" is "$?" 0
check "text output: a line of text" [ -n "$out" ]

# --- a transcription failure keeps the recording; --retry-last redoes it ---
head -c 4096 /dev/urandom >"$tmp/broken.bin"
"$bin" dictate --input "$tmp/speech.wav" "${T[@]}" --whisper-model "$tmp/broken.bin" --no-vad \
  >"$tmp/c.out" 2>"$tmp/c.err"
check "broken whisper model: exit 1" is "$?" 1
check "broken whisper model: says the recording is kept" has "$(cat "$tmp/c.err")" "--retry-last"
check "broken whisper model: history says failed, with the WAV" is \
  "$(hist '(d[0]["status"], d[0]["audio_path"] is not None, d[0]["error"] is not None)')" "('failed', True, True)"
idf=$(hist 'd[0]["id"]')
n_before=$(hist 'len(d)')
"$bin" dictate --retry-last --json "${T[@]}" --whisper-model "$model" --no-vad >"$tmp/d.json" 2>"$tmp/d.err"
check "--retry-last: exit 0" is "$?" 0
check "--retry-last: the same dictation" is "$(jget "$tmp/d.json" 'd["id"]')" "$idf"
check "--retry-last: now done, not a new entry" is "$(hist '(len(d), d[0]["id"], d[0]["status"])')" "($n_before, '$idf', 'done')"
check "--retry-last: a transcript" [ -n "$(jget "$tmp/d.json" 'd["raw"]')" ]

# --- --copy and --type through stand-in tools ---
mkdir -p "$tmp/tools"
cat >"$tmp/tools/wl-copy" <<EOF
#!/bin/sh
cat >"$tmp/clip.txt"
# a real wl-copy stays behind serving the selection: it must not hold our stdout
(sleep 5) &
EOF
cat >"$tmp/tools/xdotool" <<EOF
#!/bin/sh
printf '%s\n' "\$@" >"$tmp/typed.txt"
EOF
chmod +x "$tmp/tools/wl-copy" "$tmp/tools/xdotool"
start=$(date +%s)
out=$(WAYLAND_DISPLAY=wayland-test PATH="$tmp/tools:$PATH" "$bin" dictate --input "$tmp/speech.wav" \
  --copy "${T[@]}" --whisper-model "$model" --no-vad 2>"$tmp/e.err")
check "--copy: exit 0" is "$?" 0
check "--copy: the clipboard got the text" is "$(cat "$tmp/clip.txt" 2>/dev/null)" "$out"
check "--copy: the clipboard tool does not hold stdout" [ $(($(date +%s) - start)) -lt 5 ]
out=$(DISPLAY=:99 PATH="$tmp/tools:$PATH" "$bin" dictate --input "$tmp/speech.wav" --type "${T[@]}" \
  --whisper-model "$model" --no-vad 2>"$tmp/f.err")
check "--type: exit 0" is "$?" 0
check "--type: xdotool typed the text" is "$(cat "$tmp/typed.txt" 2>/dev/null)" "$(printf 'type\n--clearmodifiers\n--\n%s' "$out")"
out=$(PATH=/usr/bin:/bin "$bin" dictate --input "$tmp/speech.wav" --type --copy "${T[@]}" \
  --whisper-model "$model" --no-vad 2>"$tmp/g.err")
check "--type/--copy without tools: still exit 0 with the text" [ $? -eq 0 ] && [ -n "$out" ]
check "--copy without a session: says why" has "$(cat "$tmp/g.err")" "--copy: no graphical session"
check "--type without tools: says what to install" has "$(cat "$tmp/g.err")" "install ydotool"

# --- no history possible: the text is still delivered ---
touch "$tmp/not-a-dir"
out=$(CODICTATE_DATA_DIR=$tmp/not-a-dir "$bin" dictate --input "$tmp/speech.wav" "${T[@]}" \
  --whisper-model "$model" --no-vad 2>"$tmp/h.err")
check "unusable data dir: exit 0 with the text" [ $? -eq 0 ] && [ -n "$out" ]
check "unusable data dir: a warning" has "$(cat "$tmp/h.err")" "no history"

# --- bad input ---
out=$("$bin" dictate --input "$tmp/nope.wav" --whisper-model "$model" 2>&1)
check "missing file: exit 1" is "$?" 1
check "missing file: named" has "$out" "$tmp/nope.wav"
echo "not audio" >"$tmp/notaudio.wav"
out=$("$bin" dictate --input "$tmp/notaudio.wav" --whisper-model "$model" --no-vad 2>&1)
check "not audio: exit 1" is "$?" 1
check "not audio: named" has "$out" "notaudio.wav"
"$bin" dictate --input "$tmp/speech.wav" --retry-last >/dev/null 2>&1
check "--input with --retry-last: usage error" is "$?" 2
"$bin" dictate --bogus >/dev/null 2>&1
check "unknown option: usage error" is "$?" 2
"$bin" dictate --input "$tmp/speech.wav" --max-seconds 0 >/dev/null 2>&1
check "--max-seconds 0: usage error" is "$?" 2
out=$("$bin" dictate --input "$tmp/speech.wav" --vocabulary "$(printf 'Anya\tPetrova')" 2>&1)
check "--vocabulary with a tab: usage error, before recording" is "$?" 2
check "--vocabulary with a tab: says why" has "$out" "without control characters"
out=$(CODICTATE_DATA_DIR=$tmp/empty-data "$bin" dictate --retry-last --whisper-model "$model" 2>&1)
check "--retry-last with no recording: exit 1" is "$?" 1
check "--retry-last with no recording: says so" has "$out" "no saved recording"

# --- the microphone with no sound server: a clear error, no hang ---
out=$(PULSE_SERVER=unix:$tmp/no-such-socket timeout 20 "$bin" dictate --whisper-model "$model" \
  --no-vad </dev/null 2>&1)
check "no sound server: exit 1" is "$?" 1
check "no sound server: says it cannot record" has "$out" "cannot record"

finish
