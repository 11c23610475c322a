#!/bin/bash
# The real `codictate sidecar` on a generated tiny Qwen3 model, from the outside
# with curl: port line, port taken, every endpoint and error code, queueing,
# cancel on disconnect, memory after unload, SIGTERM.
#   test_sidecar.sh CODICTATE TINY_MODEL MKGGUF WORKDIR
set -u
bin=$1 model=$2 mkgguf=$3 work=$4
. "$(dirname "$0")/../sh_test.sh"
mkdir -p "$work"
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill_pid -9 "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# start_sidecar NAME ARGS... : starts it, waits for the port line, sets $port, $pid
start_sidecar() {
  local name=$1
  shift
  "$bin" sidecar "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 100); do
    port=$(sed -n '1s/^CODICTATE_SIDECAR_PORT=\([0-9]*\)$/\1/p' "$tmp/$name.out")
    [ -n "$port" ] && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# req METHOD PATH [BODY] [curl args...] → $code and $body
req() {
  local method=$1 path=$2 data=${3-}
  shift 3 2>/dev/null || shift $#
  if [ -n "$data" ]; then
    body=$(curl -s -o - -w '\n%{http_code}' -X "$method" -H 'Content-Type: application/json' \
      --data-binary "$data" "$@" "http://127.0.0.1:$port$path")
  else
    body=$(curl -s -o - -w '\n%{http_code}' -X "$method" "$@" "http://127.0.0.1:$port$path")
  fi
  code=${body##*$'\n'}
  body=${body%$'\n'*}
}
is() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }
has() { case "$1" in *"$2"*) return 0 ;; esac; echo "  '$1' lacks '$2'" >&2; return 1; }
lacks() { case "$1" in *"$2"*) echo "  '$1' has '$2'" >&2; return 1 ;; esac; return 0; }
json_num() { sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p" <<<"$1"; }

# --- start, port line, status ---
check "starts and prints the port line first" start_sidecar main --port-range 11400-11500
check "port line is the only stdout" is "$(wc -l <"$tmp/main.out")" 1
main_port=$port main_pid=$pid
req GET /status
check "status 200" is "$code" 200
check "status without model" has "$body" '"model_loaded":false,"model_path":null'
check "status state idle" has "$body" '"state":"idle"'
rss0=$(json_num "$body" rss_bytes)
req GET /health
check "health ok" is "$code$body" '200{"status":"ok"}'

# --- port taken ---
start_sidecar taken --port "$main_port"
check "taken port: exit 1" eval "wait $pid; [ \$? -eq 1 ]"
check "taken port: message" has "$(cat "$tmp/taken.err")" "no free port in $main_port-$main_port"
start_sidecar next --port-range "$main_port-$((main_port + 20))"
check "range: takes the next free port" eval "[ '$port' -gt '$main_port' ]"
kill_pid -TERM "$pid"
wait "$pid"
port=$main_port pid=$main_pid

# --- errors before a model is loaded ---
req POST /generate '{"prompt":"hello"}'
check "generate without model: 400" is "$code" 400
check "generate without model: detail" has "$body" 'No model loaded. Call /load first.'
req POST /tokenize '{"content":"hello"}'
check "tokenize without model: 400, no model" is "$code $body" '400 {"detail":"No model loaded. Call /load first."}'
req POST /load '{}'
check "load without model_path: 422" is "$code" 422
check "load without model_path: names the field" has "$body" model_path
req POST /load "{\"model_path\":\"$tmp/missing.gguf\"}"
check "missing model: 500" is "$code" 500
check "missing model: reason" has "$body" "Failed to load model: "
printf 'this is not a model\n' >"$tmp/text.gguf"
req POST /load "{\"model_path\":\"$tmp/text.gguf\"}"
check "not a GGUF: 500 with reason" has "$code $body" '500 {"detail":"Failed to load model: '
head -c 300000 "$model" >"$tmp/truncated.gguf"
req POST /load "{\"model_path\":\"$tmp/truncated.gguf\"}"
check "truncated GGUF: 500" is "$code" 500
check "still serving after bad loads" eval 'req GET /health; [ "$code" = 200 ]'
req POST /load '{"model_path": '
check "malformed JSON: 400" is "$code" 400
check "malformed JSON: says where" has "$body" 'Malformed JSON at line 1'
# Strict bodies (issue 14): what follows the object, raw control characters in a
# string and \u0000 (it would cut the path short) are malformed too.
req POST /load "{\"model_path\":\"$tmp/missing.gguf\"} trailing"
check "trailing garbage: 400" is "$code" 400
req POST /load '{"model_path":"a"}{"model_path":"b"}'
check "two objects: 400" is "$code" 400
req POST /load "$(printf '{"model_path":"a\tb"}')"
check "a raw tab in a string: 400" is "$code" 400
req POST /load '{"model_path":"/dev/null\u0000.gguf"}'
check "\\u0000 in a string: 400" is "$code" 400
req GET /nope
check "unknown path: 404" is "$code" 404
req GET /load
check "wrong method: 405" is "$code" 405
req GET /status '' -H 'Host: evil.example'
check "foreign Host: 403" is "$code" 403
req GET /status '' -H 'Origin: http://evil.example'
check "foreign Origin: 403" is "$code" 403
head -c 1100000 /dev/zero | tr '\0' 'a' >"$tmp/big.json"
code=$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$tmp/big.json" "http://127.0.0.1:$port/generate")
check "body over 1 MiB: 413" is "$code" 413

# --- load, generate ---
req POST /load "{\"model_path\":\"$model\"}"
check "load: 200" is "$code" 200
check "load: body" has "$body" "{\"status\":\"loaded\",\"model_path\":\"$model\",\"speed\":{\"prefill_ms_per_token\":"
pre=$(json_num "$body" prefill_ms_per_token) dec=$(json_num "$body" decode_ms_per_token)
check "load: the speeds measured ($pre, $dec ms per token)" eval "[ -n '$pre' ] && [ -n '$dec' ] && [ '$pre' != 0 ] && [ '$dec' != 0 ]"
req GET /status
check "status: loaded" has "$body" "\"model_loaded\":true,\"model_path\":\"$model\""
check "status: ready" has "$body" '"state":"ready"'
check "status: architecture" has "$body" '"architecture":"qwen3"'
check "status: speed" has "$body" '"speed":{"prefill_ms_per_token":'
# /tokenize: the loaded model's count of a text as a message's content.
req POST /tokenize '{"content":"um so I I think it works"}'
check "tokenize: 200" is "$code" 200
ntok=$(json_num "$body" n_tokens)
check "tokenize: a count ($ntok tokens)" eval "[ -n '$ntok' ] && [ '$ntok' -ge 4 ] && [ '$ntok' -le 24 ]"
req POST /tokenize '{"content":""}'
check "tokenize: empty text is 0 tokens" is "$body" '{"n_tokens":0}'
req POST /tokenize '{"content":"<|im_end|>"}'
check "tokenize: a typed <|im_end|> is text, not one control token" eval "[ $(json_num "$body" n_tokens) -gt 1 ]"
req POST /tokenize '{"text":"hello"}'
check "tokenize without content: 422" is "$code" 422
req POST /tokenize '{"content":'
check "tokenize, malformed JSON: 400" is "$code" 400
req POST /generate '{"prompt":"um so I I think it works","temperature":0,"max_tokens":24,"seed":1}'
check "generate: 200" is "$code" 200
check "generate: response field" has "$body" '"response":'
check "generate: chat template used" has "$body" '"prompt_format_mode":"chat_template","prompt_format_fallback":false'
check "generate: timings" has "$body" '"timings":{"prompt_tokens":'
# The same request twice gives the same text on any CPU (the prompt is evaluated in
# the same chunks whatever the cache holds; test_repeatable.sh interleaves other
# requests, with speculation).
req POST /generate '{"prompt":"um so I I think it works","temperature":0,"max_tokens":24,"speculative":false}'
first=${body%%,\"timings\"*}
req POST /generate '{"prompt":"um so I I think it works","temperature":0,"max_tokens":24,"speculative":false}'
check "temperature 0 is deterministic" is "${body%%,\"timings\"*}" "$first"
req POST /generate '{"prompt":"x","ignore_eos":true,"max_tokens":40,"temperature":0.9}'
check "max_tokens honoured" is "$(json_num "$body" tokens_generated)" 40
req POST /generate '{"prompt":"x","temperature":"hot"}'
check "wrong type: 422 names the field" has "$code $body" '422 {"detail":"temperature'
long=$(head -c 30000 /dev/zero | tr '\0' 'x' | sed 's/xxxxx/word /g')
req POST /generate "{\"prompt\":\"$long\"}"
check "prompt too long: 400" is "$code" 400
check "prompt too long: detail" has "$body" 'Prompt too long: '
check "prompt too long: context" has "$body" ', context 4096'

# --- the fast refiner: prefix reuse, warm-up, deadline, streaming, speculation ---
# Longer than a prompt chunk of the engine (32 tokens): the cache is reused in whole
# chunks.
instr="You clean up dictated text. Fix punctuation and capitalisation, write numbers as \
digits, remove fillers such as um and uh, and keep only the correction when the speaker \
corrects themselves. Keep the words."
req POST /generate "{\"prompt\":\"$instr <transcript>one two three</transcript>\",\"temperature\":0,\"max_tokens\":8}"
req POST /generate "{\"prompt\":\"$instr <transcript>four five six</transcript>\",\"temperature\":0,\"max_tokens\":8}"
cached=$(json_num "$body" cached_tokens)
evaluated=$(json_num "$body" prompt_tokens_evaluated)
check "prefix reuse: shared instructions cached" eval "[ ${cached:-0} -ge 32 ]"
check "prefix reuse: only the rest evaluated" eval "[ ${evaluated:-99} -le 52 ]"
req POST /generate '{"prompt":"x","ignore_eos":true,"max_tokens":100000,"timeout_ms":300}'
check "deadline: 200" is "$code" 200
check "deadline: truncated" has "$body" '"truncated":"deadline"'
stream=$(curl -sN -H 'Content-Type: application/json' \
  --data '{"prompt":"hello","stream":true,"max_tokens":6,"temperature":0}' "http://127.0.0.1:$port/generate")
check "stream: text events" has "$stream" 'data: {"text":'
check "stream: final event" has "$stream" '"done":true'
check "stream: every event ends with a blank line" eval '[ "$(printf "%s" "$stream" | grep -c "^data: ")" -ge 2 ]'
# The field reaches the engine; that the greedy text is plain decoding's (up to
# a near-tie of the logits, on any CPU) is test_speculative.c's.
req POST /generate '{"prompt":"a b a b a b a b a b a b","temperature":0,"max_tokens":40,"ignore_eos":true}'
check "speculation: timings report drafts" has "$body" '"draft_tokens":'
check "speculation: on by default, drafts" eval "[ $(json_num "$body" draft_tokens) -gt 0 ]"
req POST /generate '{"prompt":"a b a b a b a b a b a b","temperature":0,"max_tokens":40,"ignore_eos":true,"speculative":false}'
check "speculation: off drafts nothing" has "$body" '"draft_tokens":0'
check "speculation: off, the same length" is "$(json_num "$body" tokens_generated)" 40
req POST /load "{\"model_path\":\"$model\",\"warmup_prompt\":\"$instr\"}"
check "warm-up load: 200" is "$code" 200
req POST /generate "{\"prompt\":\"$instr <transcript>seven eight</transcript>\",\"temperature\":0,\"max_tokens\":4}"
check "warm-up: first request reuses the instructions" eval "[ $(json_num "$body" cached_tokens) -ge 32 ]"

# --- concurrency: status answers during a generation; disconnect cancels ---
curl -s -o /dev/null --max-time 0.5 -H 'Content-Type: application/json' \
  --data '{"prompt":"go on","ignore_eos":true,"max_tokens":3000}' "http://127.0.0.1:$port/generate" &
bg=$!
sleep 0.2
t0=$(date +%s%N)
req GET /status
t1=$(date +%s%N)
check "status during generation: state generating" has "$body" '"state":"generating"'
check "status during generation: under 200 ms" eval "[ $(((t1 - t0) / 1000000)) -lt 200 ]"
wait "$bg"
sleep 0.2
req GET /status
check "client gone: generation cancelled" has "$body" '"state":"ready"'

# --- unload and memory ---
req POST /unload
check "unload" is "$body" '{"status":"unloaded","model_loaded":false,"model_path":null}'
req POST /unload
check "unload again" is "$body" '{"status":"no_model_loaded","model_loaded":false,"model_path":null}'

# --- SIGTERM ---
t0=$(date +%s%N)
kill_pid -TERM "$pid"
wait "$pid"
rc=$?
t1=$(date +%s%N)
check "SIGTERM: exit 0" is "$rc" 0
check "SIGTERM: within 2 s" eval "[ $(((t1 - t0) / 1000000)) -lt 2000 ]"

# --- memory returns after unload (a 0.6B-shape model, ~400 MB) ---
big="$work/qwen3-0.6b-q4_k.gguf"
[ -f "$big" ] || "$mkgguf" --preset 0.6b --type q4_k --out "$big" 2>/dev/null
start_sidecar mem
req GET /status
rss0=$(json_num "$body" rss_bytes)
req POST /load "{\"model_path\":\"$big\"}"
req POST /generate '{"prompt":"hello","max_tokens":8}'
req GET /status
rss1=$(json_num "$body" rss_bytes)
req POST /unload
req GET /status
rss2=$(json_num "$body" rss_bytes)
echo "  rss: before load $((rss0 >> 20)) MB, loaded $((rss1 >> 20)) MB, after unload $((rss2 >> 20)) MB" >&2
check "memory: loaded model is resident" eval "[ $((rss1 - rss0)) -gt $((200 << 20)) ]"
if [ -n "${CDT_SANITIZED:-}" ]; then
  echo "  (sanitizer build: ASan's quarantine holds freed memory; RSS checked in the plain build)" >&2
else
  check "memory: after unload within 32 MB of before" eval "[ $((rss2 - rss0)) -lt $((32 << 20)) ]"
fi

# --- SIGTERM mid-generation ---
curl -s -o "$tmp/term1.out" -H 'Content-Type: application/json' \
  --data '{"prompt":"go","ignore_eos":true,"max_tokens":3000}' "http://127.0.0.1:$port/generate" &
bg1=$!
req POST /load "{\"model_path\":\"$model\"}"
curl -s -o "$tmp/term2.out" -H 'Content-Type: application/json' \
  --data '{"prompt":"go","ignore_eos":true,"max_tokens":3000}' "http://127.0.0.1:$port/generate" &
bg2=$!
# One running (bg2) and one queued (bg3) when SIGTERM comes: wait until the
# sidecar says so rather than guessing with sleeps.
for _ in $(seq 1 60); do
  req GET /status
  case $body in *'"state":"generating"'*) break ;; esac
  sleep 0.05
done
curl -s -o "$tmp/term3.out" -H 'Content-Type: application/json' \
  --data '{"prompt":"go","ignore_eos":true,"max_tokens":3000}' "http://127.0.0.1:$port/generate" &
bg3=$!
for _ in $(seq 1 60); do
  req GET /status
  case $body in *'"waiting":1'*) break ;; esac
  sleep 0.05
done
t0=$(date +%s%N)
kill_pid -TERM "$pid"
wait "$pid"
rc=$?
t1=$(date +%s%N)
check "SIGTERM during generation: exit 0" is "$rc" 0
check "SIGTERM during generation: within 2 s" eval "[ $(((t1 - t0) / 1000000)) -lt 2000 ]"
wait "$bg1" "$bg2" "$bg3"
# The running and the queued request are told why (issue 14), not "Generation cancelled".
# A request answered at shutdown is told why; one whose connection the exiting
# sidecar closed first has no body at all (a known gap: issue 14).
told_why() { [ ! -s "$1" ] || grep -q "shutting down" "$1"; }
check "SIGTERM: the running request, if answered, says the sidecar is shutting down" \
  told_why "$tmp/term2.out"
check "SIGTERM: the queued request, if answered, says the sidecar is shutting down" \
  told_why "$tmp/term3.out"
# The queued one may not have reached the queue on a loaded machine: whatever it
# got, it is never told "Generation cancelled".
check "SIGTERM: no request is told 'Generation cancelled'" lacks \
  "$(cat "$tmp/term2.out" "$tmp/term3.out" 2>/dev/null)" "Generation cancelled"

# --- token ---
CODICTATE_SIDECAR_TOKEN=abc123 start_sidecar tok
req GET /status
check "token: 401 without" is "$code" 401
req GET /status '' -H 'Authorization: Bearer abc123'
check "token: 200 with" is "$code" 200
req GET /health
check "token: /health is open" is "$code" 200
# /v1 answers OpenAI's error object; the seed's endpoints keep {"detail"}.
req GET /v1/models
check "token: /v1 401 in OpenAI's shape" has "$code $body" '401 {"error":{"message":'
check "token: /v1 401 code" has "$body" '"type":"authentication_error","param":null,"code":"invalid_api_key"'
req GET /v1/nope '' -H 'Authorization: Bearer abc123'
check "/v1 unknown path: 404 in OpenAI's shape" has "$code $body" '404 {"error":'
req GET /v1/chat/completions '' -H 'Authorization: Bearer abc123'
check "/v1 wrong method: 405 in OpenAI's shape" has "$code $body" '405 {"error":'
req GET /v1/models '' -H 'Origin: http://evil.example' -H 'Authorization: Bearer abc123'
check "/v1 foreign Origin: 403 permission_error" has "$code $body" '403 {"error":'
check "/v1 foreign Origin: type" has "$body" '"type":"permission_error"'
req GET /status
check "seed 401 keeps detail" has "$code $body" '401 {"detail":'
# CORS for loopback origins on /v1: the preflight needs no token, the request does.
hdrs=$(curl -s -o /dev/null -D - -X OPTIONS -H 'Origin: http://localhost:5173' \
  -H 'Access-Control-Request-Method: POST' \
  -H 'Access-Control-Request-Headers: authorization, content-type' \
  "http://127.0.0.1:$port/v1/chat/completions" | tr -d '\r')
check "CORS preflight: 204" has "$hdrs" 'HTTP/1.1 204'
check "CORS preflight: origin echoed" has "$hdrs" 'Access-Control-Allow-Origin: http://localhost:5173'
check "CORS preflight: methods" has "$hdrs" 'Access-Control-Allow-Methods: GET, POST, OPTIONS'
check "CORS preflight: headers" has "$hdrs" 'Access-Control-Allow-Headers: Authorization, Content-Type'
check "CORS preflight: max age" has "$hdrs" 'Access-Control-Max-Age: 600'
hdrs=$(curl -s -o /dev/null -D - -X OPTIONS -H 'Origin: http://evil.example' \
  -H 'Access-Control-Request-Method: POST' "http://127.0.0.1:$port/v1/chat/completions" | tr -d '\r')
check "CORS preflight from a foreign origin: 403" has "$hdrs" 'HTTP/1.1 403'
check "CORS foreign origin: no ACAO" lacks "$hdrs" 'Access-Control-Allow-Origin'
hdrs=$(curl -s -D - -H 'Origin: http://[::1]:8080' -H 'Content-Type: application/json' \
  --data-binary '{"messages":[{"role":"user","content":"hi"}]}' \
  "http://127.0.0.1:$port/v1/chat/completions" | tr -d '\r')
check "CORS: the request still needs the token" has "$hdrs" 'HTTP/1.1 401'
check "CORS: its 401 carries the origin" has "$hdrs" 'Access-Control-Allow-Origin: http://[::1]:8080'
hdrs=$(curl -s -D - -H 'Origin: https://127.0.0.1:3000' -H 'Authorization: Bearer abc123' \
  -H 'Content-Type: application/json' --data-binary '{"messages":[{"role":"user","content":"hi"}]}' \
  "http://127.0.0.1:$port/v1/chat/completions" | tr -d '\r')
check "CORS: POST with the token from a loopback origin reaches the route" has "$hdrs" '"error":{"message":"No model loaded'
check "CORS: ACAO echoed on the POST" has "$hdrs" 'Access-Control-Allow-Origin: https://127.0.0.1:3000'
check "CORS: Vary: Origin" has "$hdrs" 'Vary: Origin'
kill_pid -TERM "$pid"
wait "$pid"

# --- --model loads at start ---
start_sidecar preload --model "$model"
for _ in $(seq 1 100); do
  req GET /status
  case "$body" in *'"model_loaded":true'*) break ;; esac
  sleep 0.05
done
check "--model loads at start" has "$body" '"model_loaded":true'
kill_pid -TERM "$pid"
wait "$pid"

# --- mkgguf --embed: the tiny model inside a wider, deeper shape (zeros around it)
# computes the same function: the first token's top logprobs agree ---
embed_lp() { # MODEL OUTFILE: the OpenAI answer's logprobs for a fixed prompt
  start_sidecar "embed$2" --model "$1" || return 1
  for _ in $(seq 1 200); do
    req GET /status
    case "$body" in *'"model_loaded":true'*) break ;; esac
    sleep 0.05
  done
  req POST /v1/chat/completions '{"messages":[{"role":"user","content":"the quick brown fox, um, jumps"}],"max_tokens":4,"temperature":0,"logprobs":true,"top_logprobs":5}'
  printf '%s' "$body" >"$tmp/lp.$2"
  kill_pid -TERM "$pid"
  wait "$pid"
  [ "$code" = 200 ]
}
# f16 both: q8_0 would add its own rounding where a 16-wide head shares a 32-value
# block with the next head (the built-in model's 64-wide heads fill whole blocks).
check "embed: mkgguf writes the tiny model in the tiny-wide shape" eval \
  '"$mkgguf" --preset tiny --type f16 --out "$tmp/tiny16.gguf" 2>/dev/null &&
   "$mkgguf" --preset tiny-wide --type f16 --embed "$tmp/tiny16.gguf" --out "$tmp/wide.gguf" 2>/dev/null'
check "embed: a model that does not fit is refused (exit 1)" eval \
  '"$mkgguf" --preset tiny --type q8_0 --embed "$tmp/wide.gguf" --out "$tmp/x.gguf" 2>/dev/null; [ $? -eq 1 ]'
check "embed: ... and nothing is left under its name" eval '[ ! -e "$tmp/x.gguf" ]' 
# A source whose metadata does not match its tensors (FFN 128 said to be 64) is refused.
python3 - "$tmp/tiny16.gguf" "$tmp/lie.gguf" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
i = d.index(b"qwen3.feed_forward_length") + len(b"qwen3.feed_forward_length")
struct.pack_into("<I", d, i + 4, 64)
open(sys.argv[2], "wb").write(d)
PY
check "embed: a source whose tensors contradict its metadata is refused (exit 1)" eval \
  '"$mkgguf" --preset tiny-wide --type f16 --embed "$tmp/lie.gguf" --out "$tmp/x.gguf" 2>/dev/null; [ $? -eq 1 ] && [ ! -e "$tmp/x.gguf" ]' 
check "embed: the source answers" embed_lp "$tmp/tiny16.gguf" src
check "embed: the embedded model answers" embed_lp "$tmp/wide.gguf" wide
check "embed: same first-token distribution (top 5 within 0.01)" python3 - "$tmp/lp.src" "$tmp/lp.wide" <<'PY'
import json, sys
a, b = (json.load(open(f))["choices"][0]["logprobs"]["content"][0] for f in sys.argv[1:])
ta = {t["token"]: t["logprob"] for t in a["top_logprobs"]}
tb = {t["token"]: t["logprob"] for t in b["top_logprobs"]}
print("  src", ta, "\n  wide", tb, file=sys.stderr)
best = max(ta, key=ta.get)
sys.exit(0 if best in tb and abs(ta[best] - tb[best]) < 0.01 and
         all(abs(ta[t] - tb[t]) < 0.01 for t in ta if t in tb) and len(set(ta) & set(tb)) >= 4 else 1)
PY

# --- --threads auto: a request takes the cores other processes leave free ---
check "threads auto: starts" start_sidecar auto --threads auto
req POST /load "{\"model_path\":\"$model\"}"
check "threads auto: loads" is "$code" 200
req POST /generate '{"prompt":"hello","max_tokens":4,"temperature":0}'
check "threads auto: generates" is "$code" 200
n=$(json_num "$body" threads)
check "threads auto: the request says its threads (1..nproc; the rule: integration_engine)" \
  eval '[ "${n:-0}" -ge 1 ] && [ "${n:-0}" -le "$(nproc)" ]'
check "threads: a fixed count is reported" start_sidecar fixed --threads 1
req POST /load "{\"model_path\":\"$model\"}"
req POST /generate '{"prompt":"hello","max_tokens":4,"temperature":0}'
check "threads 1: reported" is "$(json_num "$body" threads)" 1
check "threads: not a count or auto is a usage error" eval '"$bin" sidecar --threads some >/dev/null 2>&1; [ $? -eq 2 ]'

check "usage error: exit 2" eval '"$bin" sidecar --port abc >/dev/null 2>&1; [ $? -eq 2 ]'
check "non-loopback host refused" eval '"$bin" sidecar --host 10.9.8.7 >/dev/null 2>&1; [ $? -eq 1 ]'
finish
