#!/bin/bash
# `codictate transcribe` from the outside: the tiny random whisper model on
# samples/jfk.mp3 and on espeak-ng speech (--json: valid JSON, segments ordered and
# inside the audio), the real Silero VAD, models by catalog id through a fake Hugging
# Face Hub (pull, then transcribe by id; the catalog's VAD by default), and the
# error cases (exit 1 and a message naming the file; usage errors exit 2).
# --refine hands the transcript to the refinement pipeline (no LLM installed: the
# deterministic pass with its reason; a GGUF: the local LLM through the sidecar).
#   test_transcribe_cli.sh CODICTATE FAKEHUB WHISPER.bin VAD.bin JFK.mp3 LLM.gguf
set -u
bin=$1 fakehub=$2 model=$3 vad=$4 jfk=$5 llm=$6
. "$(dirname "$0")/../sh_test.sh"
tmp=$(mktemp -d)
hubpid=
cleanup() {
  [ -n "$hubpid" ] && kill_pid -TERM "$hubpid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
PY=/usr/bin/python3
# Busy CI machines: ggml's spinning threads fight over cores; one thread is fastest.
T=(--threads 1)

# No catalog model is downloaded unless a test says so.
export HF_HOME=$tmp/hf-empty
unset HF_HUB_CACHE HF_TOKEN HUGGING_FACE_HUB_TOKEN CODICTATE_CATALOG

has() { case "$1" in *"$2"*) return 0 ;; esac; echo "  '$1' lacks '$2'" >&2; return 1; }
is() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }

# check_json FILE DURATION [MIN_START]: valid JSON of the pipeline's shape, segments
# present, ordered, inside the audio.
check_json() {
  "$PY" - "$@" <<'PYEOF'
import json, sys
path, duration = sys.argv[1], float(sys.argv[2])
min_start = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
with open(path, encoding="utf-8") as f:
    d = json.load(f)
def fail(msg):
    print("  " + msg, file=sys.stderr)
    sys.exit(1)
for k in ("raw", "refined", "fallback_reason", "segments", "language", "timings"):
    if k not in d:
        fail(f"missing key {k}")
if "refined_expected" not in sys.argv[4:5] and (d["refined"] is not None or d["fallback_reason"] is not None):
    fail("refined/fallback_reason should be null without --refine")
if not isinstance(d["raw"], str) or not d["raw"]:
    fail("raw is empty")
segs = d["segments"]
if not segs:
    fail("no segments")
prev = -1.0
for s in segs:
    if set(s) != {"start", "end", "text"}:
        fail(f"segment keys {sorted(s)}")
    if not (0 <= s["start"] <= s["end"] <= duration + 0.01):
        fail(f"segment {s['start']}-{s['end']} outside 0-{duration}")
    if s["start"] < prev:
        fail(f"segments out of order at {s['start']}")
    if s["start"] < min_start:
        fail(f"segment starts at {s['start']}, before {min_start}")
    prev = s["start"]
if abs(d["audio_seconds"] - duration) > 0.1:
    fail(f"audio_seconds {d['audio_seconds']}, want {duration}")
for k in ("load_ms", "audio_ms", "prepare_ms", "encode_ms", "decode_ms", "total_ms"):
    if not isinstance(d["timings"].get(k), (int, float)) or d["timings"][k] < 0:
        fail(f"timings.{k} = {d['timings'].get(k)}")
if d["language"] != "en":
    fail(f"language {d['language']}")
PYEOF
}
duration_of() { "$PY" -c 'import sys, wave; w = wave.open(sys.argv[1]); print(w.getnframes() / w.getframerate())' "$1"; }

# --- jfk.mp3 ---
"$bin" transcribe "$jfk" --json "${T[@]}" --whisper-model "$model" --no-vad >"$tmp/jfk.json" 2>"$tmp/jfk.err"
check "jfk --json --no-vad: exit 0" is "$?" 0
check "jfk --json --no-vad: valid JSON, segments in order, inside 11 s" check_json "$tmp/jfk.json" 11.0
check "jfk --no-vad: no VAD note" is "$(grep -c 'VAD is off' "$tmp/jfk.err")" 0

"$bin" transcribe "$jfk" --json "${T[@]}" --whisper-model "$model" --vad-model "$vad" >"$tmp/jfk-vad.json" 2>"$tmp/jfk-vad.err"
check "jfk --json with VAD: exit 0" is "$?" 0
check "jfk with VAD: valid JSON, segments in order, inside 11 s" check_json "$tmp/jfk-vad.json" 11.0
check "jfk with VAD: names the VAD model" has "$(cat "$tmp/jfk-vad.json")" "\"vad_model\":"

out=$("$bin" transcribe "$jfk" "${T[@]}" --whisper-model "$model" 2>"$tmp/text.err")
check "jfk text output: exit 0" is "$?" 0
one_line() { [ -n "$1" ] && [ "$(printf '%s\n' "$1" | wc -l)" -eq 1 ]; }
check "jfk text output: one line of text" one_line "$out"
check "no VAD model downloaded: a note, VAD off" has "$(cat "$tmp/text.err")" "VAD is off"

# --- espeak-ng speech ---
espeak-ng -w "$tmp/speech.wav" "Please send the quarterly report to the finance team by Friday afternoon." 2>/dev/null
check "espeak-ng wrote speech" [ -s "$tmp/speech.wav" ]
dur=$(duration_of "$tmp/speech.wav")
"$bin" transcribe "$tmp/speech.wav" --json "${T[@]}" --whisper-model "$model" --vad-model "$vad" --language en >"$tmp/speech.json" 2>"$tmp/speech.err"
check "espeak speech --json with VAD: exit 0" is "$?" 0
check "espeak speech: valid JSON, segments inside ${dur} s" check_json "$tmp/speech.json" "$dur"
"$bin" transcribe "$tmp/speech.wav" --json "${T[@]}" --whisper-model "$model" --no-vad >"$tmp/speech2.json" 2>/dev/null
check "espeak speech --no-vad: valid JSON" check_json "$tmp/speech2.json" "$dur"
# The same after 3 s of silence: with VAD the silence is skipped but for the 0.4 s
# of padding before the speech, and times stay the file's.
"$PY" - "$tmp/speech.wav" "$tmp/late.wav" <<'PYEOF'
import sys, wave
w = wave.open(sys.argv[1])
o = wave.open(sys.argv[2], "wb")
o.setparams(w.getparams())
o.writeframes(b"\0" * (3 * w.getframerate() * w.getsampwidth() * w.getnchannels()) + w.readframes(w.getnframes()))
PYEOF
late_dur=$(duration_of "$tmp/late.wav")
"$bin" transcribe "$tmp/late.wav" --json "${T[@]}" --whisper-model "$model" --vad-model "$vad" --language en >"$tmp/late.json" 2>"$tmp/late.err"
check "3 s of silence first, with VAD: segments start after the silence" check_json "$tmp/late.json" "$late_dur" 2.5

# --- models by catalog id, through a fake Hugging Face Hub ---
root=$tmp/hub
mkdir -p "$root/codictate-test/whisper" "$root/codictate-test/vad"
cp "$model" "$root/codictate-test/whisper/ggml-tiny-test.bin"
cp "$vad" "$root/codictate-test/vad/ggml-silero-test.bin"
sz() { stat -c %s "$1"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
cat >"$tmp/catalog.json" <<JSON
{ "version": 1, "models": [
  { "id": "test_whisper_v1", "aliases": ["test_whisper"], "kind": "whisper", "name": "Test whisper",
    "languages": ["en"],
    "files": [ { "name": "ggml-tiny-test.bin", "size": $(sz "$model"), "sha256": "$(sha "$model")" } ],
    "sources": [ { "type": "huggingface", "repo": "codictate-test/whisper", "revision": "main" } ] },
  { "id": "test_llm_v1", "kind": "llm", "name": "Not a whisper model",
    "files": [ { "name": "x.gguf", "size": 1 } ],
    "sources": [ { "type": "huggingface", "repo": "codictate-test/llm", "revision": "main" } ] },
  { "id": "test_vad_v1", "kind": "vad", "name": "Test VAD",
    "files": [ { "name": "ggml-silero-test.bin", "size": $(sz "$vad"), "sha256": "$(sha "$vad")" } ],
    "sources": [ { "type": "huggingface", "repo": "codictate-test/vad", "revision": "main" } ] }
] }
JSON
"$fakehub" --root "$root" --log "$tmp/hub.log" >"$tmp/hub.out" &
hubpid=$!
port=
for _ in $(seq 1 100); do
  port=$(sed -n 's/^FAKEHUB_PORT=//p' "$tmp/hub.out")
  [ -n "$port" ] && break
  sleep 0.05
done
export HF_ENDPOINT=http://127.0.0.1:$port HF_HOME=$tmp/hf CODICTATE_CATALOG=$tmp/catalog.json

out=$("$bin" transcribe "$jfk" "${T[@]}" 2>&1)
check "no whisper model downloaded: exit 1" is "$?" 1
check "no whisper model downloaded: says what to pull" has "$out" "codictate models pull test_whisper_v1"
out=$("$bin" transcribe "$jfk" "${T[@]}" --whisper-model test_whisper 2>&1)
check "catalog id not downloaded: exit 1" is "$?" 1
check "catalog id not downloaded: says what to pull" has "$out" "is not downloaded: run \`codictate models pull test_whisper_v1\`"
out=$("$bin" transcribe "$jfk" "${T[@]}" --whisper-model test_llm_v1 2>&1)
check "an LLM as --whisper-model: exit 1" is "$?" 1
check "an LLM as --whisper-model: says so" has "$out" "is a llm model, not a whisper model"

"$bin" models pull test_whisper >/dev/null 2>&1
check "pull the whisper model from the fake hub" is "$?" 0
out=$("$bin" transcribe "$jfk" --json "${T[@]}" 2>"$tmp/def.err")
check "default whisper model = the downloaded one: exit 0" is "$?" 0
check "default whisper model is the catalog's file" has "$out" "ggml-tiny-test.bin"
check "catalog VAD not downloaded: note names it" has "$(cat "$tmp/def.err")" "codictate models pull test_vad_v1"
"$bin" models pull test_vad_v1 >/dev/null 2>&1
check "pull the VAD model from the fake hub" is "$?" 0
"$bin" transcribe "$tmp/late.wav" --json "${T[@]}" --whisper-model test_whisper_v1 --language en >"$tmp/byid.json" 2>"$tmp/byid.err"
check "by catalog id, catalog VAD by default: exit 0" is "$?" 0
check "by catalog id: VAD on by default, segments after the silence" check_json "$tmp/byid.json" "$late_dur" 2.5
check "by catalog id: the catalog's VAD file" has "$(cat "$tmp/byid.json")" "ggml-silero-test.bin"
check "VAD downloaded: no note" is "$(grep -c 'VAD is off' "$tmp/byid.err")" 0
"$bin" transcribe "$jfk" --json "${T[@]}" --vad-model test_vad_v1 >/dev/null 2>&1
check "--vad-model by catalog id: exit 0" is "$?" 0
"$bin" transcribe "$jfk" --json "${T[@]}" --no-vad >"$tmp/novad.json" 2>/dev/null
check "--no-vad turns the catalog's VAD off" grep -q '"vad_model":[[:space:]]*null' "$tmp/novad.json"
kill_pid -TERM "$hubpid" 2>/dev/null
hubpid=
export HF_HOME=$tmp/hf-empty
unset CODICTATE_CATALOG HF_ENDPOINT

# --- errors: exit 1 and a message that names the file and the problem ---
out=$("$bin" transcribe "$tmp/missing.wav" "${T[@]}" --whisper-model "$model" --no-vad 2>&1)
check "missing audio file: exit 1" is "$?" 1
check "missing audio file: names it" has "$out" "$tmp/missing.wav: No such file or directory"

echo "shopping list: eggs, milk" >"$tmp/list.txt"
out=$("$bin" transcribe "$tmp/list.txt" "${T[@]}" --whisper-model "$model" --no-vad 2>&1)
check "text file as audio: exit 1" is "$?" 1
check "text file as audio: names it and the problem" has "$out" "$tmp/list.txt: not a readable audio file"

out=$("$bin" transcribe "$jfk" "${T[@]}" --whisper-model "$tmp/nope/ggml-base.en.bin" 2>&1)
check "missing whisper model: exit 1" is "$?" 1
check "missing whisper model: names it" has "$out" "whisper model not found: $tmp/nope/ggml-base.en.bin"

out=$("$bin" transcribe "$jfk" "${T[@]}" --whisper-model no_such_model_id 2>&1)
check "unknown model id: exit 1" is "$?" 1
check "unknown model id: says so" has "$out" "no catalog model of that name"

head -c 3000000 "$model" >"$tmp/corrupt.bin"
out=$("$bin" transcribe "$jfk" "${T[@]}" --whisper-model "$tmp/corrupt.bin" 2>&1)
check "truncated whisper model: exit 1" is "$?" 1
check "truncated whisper model: names it" has "$out" "$tmp/corrupt.bin: truncated whisper model"

out=$("$bin" transcribe "$jfk" "${T[@]}" --whisper-model "$tmp/list.txt" 2>&1)
check "text file as whisper model: exit 1" is "$?" 1
check "text file as whisper model: says so" has "$out" "$tmp/list.txt: not a whisper.cpp model"

out=$("$bin" transcribe "$jfk" "${T[@]}" --whisper-model "$model" --vad-model "$model" 2>&1)
check "whisper model as VAD model: exit 1" is "$?" 1
check "whisper model as VAD model: says so" has "$out" "not a Silero VAD model"

# --- usage ---
"$bin" transcribe --help >"$tmp/help.out" 2>&1
check "--help: exit 0" is "$?" 0
check "--help lists the options" has "$(cat "$tmp/help.out")" "--whisper-model ID|PATH"
"$bin" transcribe >/dev/null 2>&1
check "no file: exit 2" is "$?" 2
"$bin" transcribe "$jfk" --threads zero >/dev/null 2>&1
check "bad --threads: exit 2" is "$?" 2
"$bin" transcribe "$jfk" --whisper-model "$model" --language xx "${T[@]}" >/dev/null 2>&1
check "unknown --language: exit 2" is "$?" 2
out=$("$bin" transcribe "$jfk" --whisper-model "$model" --vocabulary "$(printf '%0301d' 0)" "${T[@]}" 2>&1 >/dev/null)
check "--vocabulary over 300 bytes: exit 2" is "$?" 2
check "--vocabulary over 300 bytes: says so" has "$out" "vocabulary: at most 300 bytes"
"$bin" transcribe "$jfk" --whisper-model "$model" --no-vad --vocabulary "Kubernetes, Anya Petrova" "${T[@]}" >/dev/null 2>&1
check "--vocabulary: exit 0" is "$?" 0
"$bin" transcribe "$jfk" --no-vad --vad-model "$vad" >/dev/null 2>&1
check "--no-vad with --vad-model: exit 2" is "$?" 2
"$bin" transcribe "$jfk" --refine --whisper-model "$model" --json "${T[@]}" >"$tmp/ref.json" 2>"$tmp/ref.err"
check "--refine without an LLM: exit 0" is "$?" 0
check "--refine without an LLM: reason" has "$(cat "$tmp/ref.json")" '"fallback_reason":	"no model installed"'
check "--refine without an LLM: refined text present" eval '"$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d[\"refined\"] and d[\"raw\"] else 1)" "$tmp/ref.json"'
"$bin" transcribe "$jfk" --refine --model "$llm" --whisper-model "$model" --json "${T[@]}" >"$tmp/ref2.json" 2>"$tmp/ref2.err"
check "--refine with a local LLM: exit 0" is "$?" 0
check "--refine with a local LLM: model named" has "$(cat "$tmp/ref2.json")" "qwen3-tiny-q8_0.gguf"
check "--refine with a local LLM: segments kept" has "$(cat "$tmp/ref2.json")" '"segments":'
"$bin" transcribe "$tmp/speech.wav" --refine --model "$llm" --whisper-model "$model" --no-vad --json \
  --timeout-ms 4000 "${T[@]}" >"$tmp/ref3.json" 2>"$tmp/ref3.err"
check "espeak speech --refine with a local LLM: exit 0" is "$?" 0
check "espeak speech --refine: raw, refined and segments" eval '"$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d[\"refined\"] and d[\"raw\"] and d[\"segments\"] else 1)" "$tmp/ref3.json"'
"$bin" transcribe "$jfk" --model "$llm" >/dev/null 2>&1
check "LLM options without --refine: exit 2" is "$?" 2
finish
