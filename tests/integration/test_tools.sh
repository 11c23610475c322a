#!/bin/bash
# The model generators: deterministic output, usage errors, clear failures; the
# --sentences whisper model transcribes audio in sentences (through CODICTATE);
# cleanup_lines (the training data's and the benches' view of the refine path).
#   test_tools.sh MKGGUF MKWHISPER CODICTATE AUDIO CLEANUP_LINES
set -u
mkgguf=$1 mkwhisper=$2 codictate=$3 audio=$4 cleanup_lines=$5
. "$(dirname "$0")/../sh_test.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

same_bytes() { cmp -s "$1" "$2"; }
exit_is() { # exit_is CODE COMMAND...
  want=$1
  shift
  "$@" >/dev/null 2>&1
  [ $? -eq "$want" ]
}

"$mkgguf" --preset tiny --type q8_0 --out "$tmp/a.gguf" 2>/dev/null
"$mkgguf" --preset tiny --type q8_0 --out "$tmp/b.gguf" 2>/dev/null
check "gguf is deterministic" same_bytes "$tmp/a.gguf" "$tmp/b.gguf"
"$mkgguf" --preset tiny --type q8_0 --seed 7 --out "$tmp/c.gguf" 2>/dev/null
check "gguf seed changes the weights" eval '! cmp -s "$tmp/a.gguf" "$tmp/c.gguf"'
check "gguf f16 works" exit_is 0 "$mkgguf" --preset tiny --type f16 --out "$tmp/f16.gguf"
check "gguf q4_k works" exit_is 0 "$mkgguf" --preset tiny --type q4_k --out "$tmp/q4.gguf"
check "gguf --help exits 0" exit_is 0 "$mkgguf" --help
check "gguf bad preset exits 2" exit_is 2 "$mkgguf" --preset huge --type q8_0 --out "$tmp/x.gguf"
check "gguf bad type exits 2" exit_is 2 "$mkgguf" --preset tiny --type q3 --out "$tmp/x.gguf"
check "gguf missing --out exits 2" exit_is 2 "$mkgguf" --preset tiny --type q8_0
check "gguf unwritable out exits 1" exit_is 1 "$mkgguf" --preset tiny --type q8_0 --out /no/such/dir/x.gguf

"$mkwhisper" --out "$tmp/a.bin" 2>/dev/null
"$mkwhisper" --out "$tmp/b.bin" 2>/dev/null
check "whisper model is deterministic" same_bytes "$tmp/a.bin" "$tmp/b.bin"
"$mkwhisper" --out "$tmp/s.bin" --sentences 2>/dev/null
"$mkwhisper" --out "$tmp/t.bin" --sentences 2>/dev/null
check "whisper --sentences is deterministic" same_bytes "$tmp/s.bin" "$tmp/t.bin"
check "whisper --sentences changes the model" exit_is 1 cmp -s "$tmp/a.bin" "$tmp/s.bin"
sentences() { # a sentence end with more text after it, in the transcript of $audio
  HF_HOME=$tmp/hf CODICTATE_DATA_DIR=$tmp/data "$codictate" transcribe "$audio" \
    --whisper-model "$1" --no-vad --threads 1 >"$tmp/said.txt" 2>/dev/null &&
    grep -q '[.] [^ ]' "$tmp/said.txt"
}
check "whisper --sentences transcribes in sentences" sentences "$tmp/s.bin"
check "whisper --help exits 0" exit_is 0 "$mkwhisper" --help
check "whisper missing --out exits 2" exit_is 2 "$mkwhisper"
check "whisper unwritable out exits 1" exit_is 1 "$mkwhisper" --out /no/such/dir/x.bin

printf '%s\n' '"um so the meeting is on tuesday"' '"The meeting is on Tuesday."' |
  "$cleanup_lines" >"$tmp/lines.jsonl" 2>/dev/null
lines_say() { # lines_say N PYTHON-EXPRESSION-OF-d: line N's object d
  python3 -c "import json,sys; d=[json.loads(l) for l in open(sys.argv[1])][$1]; sys.exit(0 if $2 else 1)" \
    "$tmp/lines.jsonl"
}
check "cleanup_lines: the pass's text and the prompt around it" \
  lines_say 0 '"um" not in d["cleaned"] and d["cleaned"] in d["prompt"]'
check "cleanup_lines: a transcript with a filler is not clean" lines_say 0 'd["is_clean"] is False'
check "cleanup_lines: a clean sentence is clean" lines_say 1 'd["is_clean"] is True'
check "cleanup_lines: not a JSON string exits 1" exit_is 1 sh -c "echo 'um' | '$cleanup_lines'"
finish
