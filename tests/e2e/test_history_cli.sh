#!/bin/bash
# `codictate history` from the outside, on a seeded data dir: a corrupt line, a
# superseded id and a truncated last line; plain and --json output, -n, --clear,
# an empty history, a data dir that is a file, usage errors.
#   test_history_cli.sh CODICTATE
set -u
bin=$1
. "$(dirname "$0")/../sh_test.sh"
PY=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

export TZ=UTC CODICTATE_DATA_DIR=$tmp/data HOME=$tmp/home
unset XDG_DATA_HOME NO_COLOR
mkdir -p "$CODICTATE_DATA_DIR/recordings" "$HOME"

has() { case "$1" in *"$2"*) return 0 ;; esac; echo "  '$1' lacks '$2'" >&2; return 1; }
lacks() { case "$1" in *"$2"*) echo "  '$1' has '$2'" >&2; return 1 ;; esac; return 0; }
is() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }
# py JSON EXPR: evaluates a Python expression on the parsed JSON `j`.
py() { printf '%s' "$1" | "$PY" -c "import json,sys; j=json.load(sys.stdin); print($2)"; }

a=20260101-100000-000-11 b=20260102-093000-500-12 c=20260102-120000-000-13
cat >"$CODICTATE_DATA_DIR/history.jsonl" <<EOF
{"id":"$a","time_ms":1767261600000,"status":"recorded","source":"microphone","audio_path":"$CODICTATE_DATA_DIR/recordings/$a.wav","audio_seconds":3.5,"raw":null,"refined":null,"fallback_reason":null,"error":null,"model":null,"whisper_model":null,"timings":null}
this line is not JSON
{"id":"$b","time_ms":1767346200500,"status":"failed","source":"file","audio_path":null,"audio_seconds":75,"raw":null,"refined":null,"fallback_reason":null,"error":"whisper model missing","model":null,"whisper_model":null,"timings":null}

{"id":"$a","time_ms":1767261600000,"status":"done","source":"microphone","audio_path":"$CODICTATE_DATA_DIR/recordings/$a.wav","audio_seconds":3.5,"raw":"um hello world new line second line","refined":"Hello world.\nSecond line.","fallback_reason":null,"error":null,"model":"qwen3_base_1.7b_v1","whisper_model":"whisper_base.en_v1","timings":{"transcribe_ms":120,"refine_ms":300}}
{"id":"$c","time_ms":1767355200000,"status":"done","source":"retry","audio_path":null,"audio_seconds":1.25,"raw":"so it goes","refined":"So it goes.","fallback_reason":"output too long","error":null,"model":null,"whisper_model":"whisper_tiny.en_v1","timings":{"refine_ms":2}}
EOF
printf '{"id":"20260103-000000-000-14","time_ms":17674' >>"$CODICTATE_DATA_DIR/history.jsonl" # a crash mid-write
: >"$CODICTATE_DATA_DIR/recordings/$a.wav"

# Plain: newest first, one block each.
out=$("$bin" history 2>"$tmp/err")
check "plain: exit 0" is "$?" 0
check "plain: corrupt lines reported" has "$(cat "$tmp/err")" "skipped 2 corrupt lines"
check "plain: newest first" is "$(printf '%s\n' "$out" | grep -E '^[0-9]{4}-' | cut -c1-19 | tr '\n' ,)" \
  "2026-01-02 12:00:00,2026-01-02 09:30:00,2026-01-01 10:00:00,"
check "plain: header" has "$out" "2026-01-01 10:00:00  done  3.5 s  qwen3_base_1.7b_v1  $a"
check "plain: refined text, indented" has "$out" "$(printf '    Hello world.\n    Second line.')"
check "plain: superseded line gone" lacks "$out" "recorded"
check "plain: minutes" has "$out" "failed  1:15  no LLM  $b"
check "plain: the error" has "$out" "    error: whisper model missing"
check "plain: fallback reason" has "$out" "(LLM output not used: output too long)"
check "plain: no colour when piped" lacks "$out" $'\033'
check "plain: blocks separated" is "$(printf '%s\n' "$out" | grep -c '^$')" 2

# JSON: every field, timings as an object, null for missing.
out=$("$bin" history --json 2>/dev/null)
check "json: exit 0" is "$?" 0
check "json: three entries" is "$(py "$out" 'len(j)')" 3
check "json: order" is "$(py "$out" '",".join(e["id"] for e in j)')" "$c,$b,$a"
check "json: all fields" is "$(py "$out" 'sorted(j[0].keys())')" \
  "['audio_path', 'audio_seconds', 'error', 'fallback_reason', 'id', 'model', 'raw', 'reason_code', 'refined', 'source', 'status', 'time', 'time_ms', 'timings', 'whisper_model']"
check "json: reason_code null in a line written before it existed" is "$(py "$out" 'repr(j[2]["reason_code"])')" None
check "json: last line of an id wins" is "$(py "$out" 'repr((j[2]["status"], j[2]["refined"]))')" \
  "('done', 'Hello world.\\nSecond line.')"
check "json: timings object" is "$(py "$out" 'j[2]["timings"]["refine_ms"]')" 300
check "json: null timings" is "$(py "$out" 'repr((j[1]["timings"], j[1]["raw"], j[1]["model"]))')" "(None, None, None)"
check "json: time_ms" is "$(py "$out" 'j[1]["time_ms"]')" 1767346200500
check "json: time" is "$(py "$out" 'j[1]["time"]')" "2026-01-02T09:30:00.500Z"
check "json: audio_seconds" is "$(py "$out" 'j[0]["audio_seconds"]')" 1.25
check "json: whisper_model" is "$(py "$out" 'j[0]["whisper_model"]')" "whisper_tiny.en_v1"

# -n / --limit.
out=$("$bin" history -n 1 2>/dev/null)
check "-n 1: one block" is "$(printf '%s\n' "$out" | grep -cE '^[0-9]{4}-')" 1
check "-n 1: the newest" has "$out" "$c"
out=$("$bin" history --limit 2 --json 2>/dev/null)
check "--limit 2 --json" is "$(py "$out" '",".join(e["id"] for e in j)')" "$c,$b"
out=$("$bin" history -n 99 --json 2>/dev/null)
check "-n over the count" is "$(py "$out" 'len(j)')" 3

# Usage errors.
"$bin" history -n 0 >/dev/null 2>&1
check "usage: -n 0" is "$?" 2
"$bin" history -n abc >/dev/null 2>&1
check "usage: -n abc" is "$?" 2
"$bin" history --bogus >/dev/null 2>&1
check "usage: unknown option" is "$?" 2
"$bin" history extra >/dev/null 2>&1
check "usage: extra argument" is "$?" 2
"$bin" history --clear --json >/dev/null 2>&1
check "usage: --clear with --json" is "$?" 2
check "usage: nothing cleared by a usage error" test -s "$CODICTATE_DATA_DIR/history.jsonl"
check "help: exit 0" eval '"$bin" history --help | grep -q "^usage: codictate history"'
check "listed in --help" eval '"$bin" --help | grep -E "^  history " | grep -vq "not in this build"'

# --clear: the file and the recordings go, the dirs stay.
err=$("$bin" history --clear 2>&1 >/dev/null)
check "clear: exit 0" is "$?" 0
check "clear: says what" has "$err" "cleared 3 dictations"
check "clear: file gone" test ! -e "$CODICTATE_DATA_DIR/history.jsonl"
check "clear: recordings gone" test ! -e "$CODICTATE_DATA_DIR/recordings/$a.wav"
check "clear: dir kept" test -d "$CODICTATE_DATA_DIR/recordings"

# Empty history.
out=$("$bin" history 2>"$tmp/err")
check "empty: exit 0" is "$?" 0
check "empty: nothing on stdout" is "$out" ""
check "empty: message" is "$(cat "$tmp/err")" "no dictations yet"
out=$("$bin" history --json 2>/dev/null)
check "empty json: exit 0" is "$?" 0
check "empty json: []" is "$out" "[]"

# A data dir that does not exist yet is created private; one that is a file fails.
out=$(CODICTATE_DATA_DIR=$tmp/new/data "$bin" history --json 2>/dev/null)
check "new dir: []" is "$out" "[]"
check "new dir: 0700" is "$(stat -c %a "$tmp/new/data")" 700
: >"$tmp/file"
err=$(CODICTATE_DATA_DIR=$tmp/file "$bin" history 2>&1)
check "dir is a file: exit 1" is "$?" 1
check "dir is a file: says so" has "$err" "$tmp/file exists and is not a directory"

# Stored text is data: escape sequences in it never reach the terminal (issue 14).
mkdir -p "$tmp/esc"
printf '%s\n' '{"id":"20260104-000000-000-15","time_ms":1767484800000,"status":"done","source":"file","audio_path":null,"audio_seconds":1,"raw":"x","refined":"clear \u001b[2J\u001b]0;pwned\u0007 \u009b31m red","fallback_reason":null,"error":null,"model":"m\u001b[1m","whisper_model":null,"timings":null}' \
  >"$tmp/esc/history.jsonl"
CODICTATE_DATA_DIR=$tmp/esc "$bin" history >"$tmp/esc.out" 2>&1
check "escapes: exit 0" is "$?" 0
check "escapes: no ESC, BEL or CSI byte printed" eval "! LC_ALL=C grep -q \$'[\\x1b\\x07]\\|\\xc2\\x9b' '$tmp/esc.out'"
check "escapes: shown as \\x1b" has "$(cat "$tmp/esc.out")" 'clear \x1b[2J\x1b]0;pwned\x07 \u009b31m red'
check "escapes: --json keeps the text as stored" has "$(CODICTATE_DATA_DIR=$tmp/esc "$bin" history --json)" '\u001b[2J'

# The default location: $XDG_DATA_HOME/codictate, else ~/.local/share/codictate.
unset CODICTATE_DATA_DIR
"$bin" history >/dev/null 2>&1
check "default: ~/.local/share/codictate" test -d "$HOME/.local/share/codictate/recordings"
XDG_DATA_HOME=$tmp/xdg "$bin" history >/dev/null 2>&1
check "default: XDG_DATA_HOME" test -d "$tmp/xdg/codictate/recordings"

finish
