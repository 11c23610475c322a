#!/bin/bash
# `codictate refine --provider openai` against the real peer: llama-server (same
# llama.cpp build) on a free loopback port with a tiny random model. The model's
# output is garbage, so a guard must reject it: exit 0, the deterministic text,
# a guard reason (not a connection or HTTP error), usage tokens and the model name
# from /v1/models, and what a local server is sent (thinking off, max_tokens). Then
# llama-server killed: exit 0, the deterministic text, a connection reason.
#
# The fixture model emits tokens that are not whole UTF-8 (random weights), which
# llama-server refuses with HTTP 500; the main cases use the same tiny model
# generated with --no-partial-utf8, the fixture one only "words never lost".
#   test_refine_llama_server.sh CODICTATE LLAMA_SERVER MKGGUF FIXTURE_MODEL
set -u
bin=$1 server=$2 mkgguf=$3 fixture=$4
. "$(dirname "$0")/../sh_test.sh"
tmp=$(mktemp -d)
srvpid=
cleanup() {
  [ -n "$srvpid" ] && kill_pid -TERM "$srvpid" 2>/dev/null && wait "$srvpid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

export XDG_CONFIG_HOME=$tmp/config HF_HOME=$tmp/hf HOME=$tmp/home
unset OPENAI_API_KEY OPENAI_BASE_URL CODICTATE_CATALOG HF_HUB_CACHE
mkdir -p "$HOME"

has() { case "$1" in *"$2"*) return 0 ;; esac; echo "  '$1' lacks '$2'" >&2; return 1; }
lacks() { case "$1" in *"$2"*) echo "  '$1' has '$2'" >&2; return 1 ;; esac; return 0; }
is() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }
matches() { printf '%s' "$1" | grep -qE -- "$2" || { echo "  '$1' !~ /$2/" >&2; return 1; }; }
# field JSON KEY: the raw JSON value of a key of cJSON_Print's output (any depth).
field() { printf '%s\n' "$1" | sed -n "s/^\t*\"$2\":\t//p" | head -n 1 | sed 's/,$//'; }

port_in_use() {
  local hex
  printf -v hex '%04X' "$1"
  awk -v h=":$hex" 'FNR > 1 && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# start MODEL: llama-server on a free port; sets srvpid, port. 0 once /health is 200.
start() {
  local try i
  for try in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" && continue
    "$server" -m "$1" --host 127.0.0.1 --port "$port" -c 2048 -np 1 -t 1 -tb 1 --no-webui \
      >"$tmp/server.log" 2>&1 &
    srvpid=$!
    for i in $(seq 1 600); do
      curl -sf --noproxy '*' "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
      kill -0 "$srvpid" 2>/dev/null || break
      sleep 0.1
    done
    kill_pid -TERM "$srvpid" 2>/dev/null
    wait "$srvpid" 2>/dev/null
    srvpid=
    grep -qiE 'bind|address already in use' "$tmp/server.log" || break
  done
  echo "  llama-server did not start:" >&2
  tail -n 20 "$tmp/server.log" >&2
  return 1
}

stop() {
  kill_pid -TERM "$srvpid" 2>/dev/null
  wait "$srvpid" 2>/dev/null
  srvpid=
}

in="um so I I think comma we should uh ship it period"
clean='"So I think, we should ship it."'
guard='^"(truncated|guard_[a-z_]+)"$' # reason_code: a guard's, or cut off at the length limit

"$mkgguf" --preset tiny --type q8_0 --no-partial-utf8 --threads 1 --out "$tmp/tiny.gguf" >/dev/null 2>&1
check "model generated" test -s "$tmp/tiny.gguf"
check "llama-server up" start "$tmp/tiny.gguf" || { finish; exit 1; }
url=http://127.0.0.1:$port/v1
served=$(curl -s --noproxy '*' "$url/models" | sed -n 's/.*"data":\[{"id":"\([^"]*\)".*/\1/p')
check "/v1/models names the model" is "$served" "$tmp/tiny.gguf"

# The model answered; its garbage is rejected by a guard.
out=$("$bin" refine --provider openai --base-url "$url" --timeout-ms 120000 --json -- "$in" 2>"$tmp/err")
rc=$?
err=$(cat "$tmp/err")
check "exit 0" is "$rc" 0
check "deterministic text delivered" is "$(field "$out" refined)" "$clean"
check "raw is the input" is "$(field "$out" raw)" "\"$in\""
check "provider openai" is "$(field "$out" provider)" '"openai"'
check "model from /v1/models" is "$(field "$out" model)" "\"$tmp/tiny.gguf\""
check "a guard reason (not an HTTP or connection error, not the deadline)" matches "$(field "$out" reason_code)" "$guard"
check "a reason for people" matches "$(field "$out" fallback_reason)" '^"'
check "reason on stderr" has "$err" "delivering the deterministic cleanup"
gen=$(field "$out" generated_tokens)
check "usage: generated tokens ($gen)" test "${gen:-0}" -gt 0
check "usage: prompt tokens" test "$(field "$out" prompt_tokens)" -gt 0
# What llama-server was asked (its /slots shows the last request's parameters).
slots=$(curl -s --noproxy '*' "http://127.0.0.1:$port/slots")
check "thinking off (empty think block)" has "$slots" '"generation_prompt":"<|im_start|>assistant\n<think>\n\n</think>\n\n"'
check "max_tokens sent" matches "$slots" '"max_tokens":[1-9][0-9]*,'
check "temperature 0" has "$slots" '"temperature":0.0'
check "stopped at max_tokens, not the context's end ($gen tokens)" test "${gen:-0}" -lt 1800

# The other cases use short instructions: a smaller prompt, a smaller max_tokens,
# less garbage to generate on a busy machine.
printf 'Clean up the text.\n' >"$tmp/short.txt"
short=(--prompt "@$tmp/short.txt" --timeout-ms 120000)

# An explicit model name and plain output.
out=$("$bin" refine --base-url "$url" --openai-model anything "${short[@]}" --json -- "$in" 2>/dev/null)
check "--openai-model: named" is "$(field "$out" model)" '"anything"'
check "--openai-model: a guard reason" matches "$(field "$out" reason_code)" "$guard"
out=$("$bin" refine --base-url "$url/" "${short[@]}" -- "$in" 2>/dev/null)
check "plain output: the deterministic text" is "$out" "So I think, we should ship it."

# A question: still a cleanup or the deterministic text, never an answer.
q="what is the capital of France question mark"
out=$("$bin" refine --base-url "$url" "${short[@]}" --json -- "$q" 2>/dev/null)
check "question: exit 0" is "$?" 0
check "question: the question delivered" is "$(field "$out" refined)" '"What is the capital of France?"'

# llama-server gone: the words are delivered with the connection error.
stop
out=$("$bin" refine --provider openai --base-url "$url" --json -- "$in" 2>"$tmp/err")
rc=$?
check "server killed: exit 0" is "$rc" 0
check "server killed: deterministic text" is "$(field "$out" refined)" "$clean"
check "server killed: connection reason" has "$(field "$out" fallback_reason)" "openai endpoint: $url/chat/completions: "
check "server killed: reason_code" is "$(field "$out" reason_code)" '"provider_error"'
check "server killed: says it could not connect" matches "$(field "$out" fallback_reason)" "[Cc]ouldn't connect|[Cc]onnection refused"
check "server killed: reason on stderr" has "$(cat "$tmp/err")" "delivering the deterministic cleanup"

# The fixture model: whatever llama-server makes of its output, the words arrive.
if check "llama-server up (fixture model)" start "$fixture"; then
  out=$("$bin" refine --base-url "http://127.0.0.1:$port/v1" "${short[@]}" --json -- "$in" 2>/dev/null)
  check "fixture model: exit 0" is "$?" 0
  check "fixture model: deterministic text" is "$(field "$out" refined)" "$clean"
  check "fixture model: a reason" matches "$(field "$out" fallback_reason)" '^"'
  stop
fi

finish
