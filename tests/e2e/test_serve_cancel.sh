#!/bin/bash
# The app's cancel route reaches a refinement under way (issue 16): `codictate serve`
# refining through an OpenAI-compatible endpoint (tests/stubllm's "slow" model answers
# after 3 s), a dictation of a file (POST /api/transcribe) is cancelled with POST
# /api/dictation/cancel while it refines. Checks: the route answers 200 (it refused
# anything but a recording before), the session is over within a second (its
# history entry "cancelled", with the raw text and the audio), the app is free for
# the next dictation at once, and that one, not cancelled, waits the 3 s and is done.
#   test_serve_cancel.sh CODICTATE FAKEHUB LLM_GGUF WHISPER_BIN STUBLLM
set -u
bin=$1 fakehub=$2 llm=$3 whisper=$4 stub=$5
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../sh_test.sh"
. "$here/../serve_app.sh"
tmp=$(mktemp -d)
stubpid= dpid=
cleanup() {
  [ -n "$dpid" ] && kill_pid -9 "$dpid" 2>/dev/null
  app_stop
  [ -n "$stubpid" ] && kill_pid -TERM "$stubpid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
PY=/usr/bin/python3
fail() {
  echo "FAIL: $1" >&2
  echo "0 passed, 1 failed"
  exit 1
}
is() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }
j() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>&1; }
get() { curl -s -o "$tmp/r.json" -w '%{http_code}' "${url}$1"; }
post() { curl -s -o "$tmp/r.json" -w '%{http_code}' -H 'Content-Type: application/json' --data "$2" "${url}$1"; }
transcribe() { curl -s -o "$tmp/r.json" -w '%{http_code}' -H 'Content-Type: audio/wav' --data-binary "@$1" "${url}api/transcribe"; }
now_ms() { date +%s%3N; }
# state: the dictation's state now.
state() { get api/dictation >/dev/null; j "$tmp/r.json" 'd["state"]'; }
# newest: an expression on the newest history entry (e).
newest() { get api/history >/dev/null; j "$tmp/r.json" "(lambda e: $1)(d['entries'][0]) if d['entries'] else None"; }

app_home "$tmp"
app_hub "$tmp" "$bin" "$fakehub" "$llm" "$whisper" || fail "the fake hub"
"$bin" models pull test_whisper_v1 >/dev/null 2>"$tmp/pull.err" || { cat "$tmp/pull.err" >&2; fail "models pull"; }
start_stubllm "$stub" "$tmp/stub.out" --log "$tmp/stub.log"
[ -n "$port" ] || fail "stubllm did not start"
stub_url=http://127.0.0.1:$port/v1
espeak-ng -w "$tmp/speech.wav" "Please send the quarterly report to the finance team by Friday." 2>/dev/null ||
  fail "espeak-ng could not speak"
# The app logs at info (-v): what it did with the refine of a client that went.
printf '#!/bin/sh\nexec "%s" -v "$@"\n' "$bin" >"$tmp/codictate-v"
chmod +x "$tmp/codictate-v"
app_serve "$tmp" "$tmp/codictate-v" || fail "codictate serve did not start"
# The openai provider on the slow stub; custom instructions, so the model is asked
# whatever the (noise) transcript of the tiny whisper model says.
check "settings: openai on the slow stub" is \
  "$(post api/settings "{\"provider\": \"openai\", \"openai_base_url\": \"$stub_url\", \"openai_model\": \"slow\", \"prompt\": \"Rewrite the transcript.\"}")" 200

# --- cancel while refining ---
lines=$(wc -l <"$tmp/stub.log" 2>/dev/null || echo 0)
check "transcribe: accepted" is "$(transcribe "$tmp/speech.wav")" 202
for _ in $(seq 1 200); do # the chat request is in (the stub logs its body on arrival)
  [ "$(wc -l <"$tmp/stub.log" 2>/dev/null || echo 0)" -gt "$lines" ] && break
  sleep 0.05
done
check "the dictation refines" is "$(state)" refining
sleep 0.3
t0=$(now_ms)
check "cancel while refining: 200" is "$(post api/dictation/cancel '{}')" 200
check "cancel while refining: the answer says cancelled" is "$(j "$tmp/r.json" 'd["state"]')" cancelled
# The history file is written when the session is over (curl and grep only: the
# loop's own cost stays out of the time).
hist=$CODICTATE_DATA_DIR/history.jsonl
for _ in $(seq 1 200); do
  [ "$(tail -n 1 "$hist" 2>/dev/null | grep -c '"status":"cancelled"')" = 1 ] && break
  sleep 0.01
done
t1=$(now_ms)
echo "  cancel -> the session over in $((t1 - t0)) ms" >&2
check "cancel while refining: the session is over within 1 s" [ $((t1 - t0)) -lt 1000 ]
check "cancel while refining: history cancelled, raw text and audio kept" is \
  "$(newest '(e["status"], bool(e["raw"]), e["has_audio"])')" "('cancelled', True, True)"
check "cancel while refining: the view says cancelled, nothing refined" is \
  "$(get api/dictation >/dev/null; j "$tmp/r.json" '(d["state"], d["refined"])')" "('cancelled', None)"
check "cancel with nothing running: 409" is "$(post api/dictation/cancel '{}')" 409

# --- the next dictation starts at once, and uncancelled it is done after the 3 s ---
t0=$(now_ms)
check "next dictation: accepted at once" is "$(transcribe "$tmp/speech.wav")" 202
for _ in $(seq 1 200); do
  case $(state) in done | failed | cancelled) break ;; esac
  sleep 0.05
done
t1=$(now_ms)
check "next dictation: done" is "$(state)" done
check "next dictation: waited for the slow model (3 s)" [ $((t1 - t0)) -ge 3000 ]

# --- `codictate dictate` refining through the app, cancelled (SIGTERM) meanwhile ---
# The CLI closes its connection to the app's POST /api/refine, and the app (which
# polls its client) abandons the slow model call.
lines=$(wc -l <"$tmp/stub.log" 2>/dev/null || echo 0)
"$bin" -v dictate --input "$tmp/speech.wav" --no-vad --threads 1 >"$tmp/d.out" 2>"$tmp/d.err" &
dpid=$!
for _ in $(seq 1 200); do
  [ "$(wc -l <"$tmp/stub.log" 2>/dev/null || echo 0)" -gt "$lines" ] && break
  sleep 0.05
done
sleep 0.3
t0=$(now_ms)
kill_pid -TERM "$dpid"
wait "$dpid"
rc=$?
t1=$(now_ms)
echo "  dictate through the app: SIGTERM -> exit $rc in $((t1 - t0)) ms" >&2
check "dictate through the app: it refined there" grep -q "through the running app" "$tmp/d.err"
check "dictate through the app, SIGTERM while refining: exit 130 within 1 s" \
  [ "$rc" = 130 ] && [ $((t1 - t0)) -lt 1000 ]
check "dictate through the app, SIGTERM: history cancelled" is "$(newest 'e["status"]')" cancelled
for _ in $(seq 1 100); do # the app's refine ends with its client, not after the 3 s
  grep -q "client went away" "$tmp/serve.err" && break
  sleep 0.02
done
t2=$(now_ms)
echo "  the app abandoned its refine $((t2 - t0)) ms after the SIGTERM" >&2
check "the app abandoned the refine of the client that went (within 1 s)" \
  [ $((t2 - t0)) -lt 1000 ] && grep -q "client went away" "$tmp/serve.err"

[ "$failed" -eq 0 ] || tail -n 30 "$tmp/serve.err" >&2
finish
