#!/bin/bash
# `codictate serve`'s JSON API from curl (the contract the web UI and the CLI
# verbs use): status, models (a downloaded one cut short on disk: damaged, then
# repaired by the app's download), the settings round trip (the API key never echoed,
# settings.json and the key file 0600), bad values, the event stream (hello, model
# progress during a throttled download at most ~10 events a second), `codictate
# status` while the app runs, and `codictate dictate --toggle` twice (start, then
# stop) against the app recording a virtual microphone (tests/pulse_mic.sh). The
# app runs against the fake hub with the test catalog of tests/serve_app.sh.
# Exit 77 (skipped) only where pulseaudio cannot run, and never with CI=true.
#   test_serve_api.sh CODICTATE FAKEHUB LLM_GGUF WHISPER_BIN
set -u
bin=$1 fakehub=$2 llm=$3 whisper=$4
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../sh_test.sh"
. "$here/../pulse_mic.sh"
. "$here/../serve_app.sh"
tmp=$(mktemp -d)
ssepid=
dssepid=
cleanup() {
  [ -n "$ssepid" ] && kill_pid -TERM "$ssepid" 2>/dev/null
  [ -n "$dssepid" ] && kill_pid -TERM "$dssepid" 2>/dev/null
  app_stop
  pulse_mic_stop
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
PY=/usr/bin/python3
skip() {
  if [ "${CI:-}" = true ]; then
    echo "FAIL: $1 (CI=true: not skipped)" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
  echo "SKIP: $1"
  exit 77
}
fail() {
  echo "FAIL: $1" >&2
  echo "0 passed, 1 failed"
  exit 1
}
has() { case "$1" in *"$2"*) return 0 ;; esac; echo "  '$1' lacks '$2'" >&2; return 1; }
lacks() { case "$1" in *"$2"*) echo "  '$1' has '$2'" >&2; return 1 ;; esac; return 0; }
is() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }
# j FILE EXPR: a Python expression on the JSON in FILE (as d)
j() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>&1; }
# get PATH / post PATH JSON: the body to $tmp/r.json, the status code printed
get() { curl -s -o "$tmp/r.json" -w '%{http_code}' "${url}$1"; }
post() { curl -s -o "$tmp/r.json" -w '%{http_code}' -H 'Content-Type: application/json' --data "$2" "${url}$1"; }

command -v pulseaudio >/dev/null || skip "no pulseaudio binary (scripts/deps.sh installs it)"
app_home "$tmp"
app_hub "$tmp" "$bin" "$fakehub" "$llm" "$whisper" || fail "the fake hub"
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
port=${url#http://127.0.0.1:}
port=${port%/}
cfg=$XDG_CONFIG_HOME/codictate

# --- status ---
check "status: 200" is "$(get api/status)" 200
check "status: pid, port, limit" is "$(j "$tmp/r.json" '(d["pid"], d["port"], d["recording_limit_s"] == 35)')" \
  "($servepid, $port, True)"
check "status: tier and RAM" is "$(j "$tmp/r.json" 'isinstance(d["ram_gb"], int) and d["tier"] in ("le8","9to16","gt16")')" True
check "status: sidecar, dictation idle, settings" is \
  "$(j "$tmp/r.json" '(d["sidecar"]["state"] in ("stopped","starting","running"), d["dictation"]["state"], "output" in d["settings"])')" \
  "(True, 'idle', True)"

# --- models ---
check "models: 200" is "$(get api/models)" 200
check "models: catalog order, LLMs first" is "$(j "$tmp/r.json" '[m["id"] for m in d["models"]]')" \
  "['test_llm_v1', 'test_big_v1', 'test_gated_v1', 'test_bad_v1', 'test_whisper_v1']"
check "models: recommended LLM" is "$(j "$tmp/r.json" 'd["recommended"]["llm"]')" test_llm_v1
check "models: states" is "$(j "$tmp/r.json" '[m["state"] for m in d["models"]]')" \
  "['downloaded', 'not_downloaded', 'not_downloaded', 'not_downloaded', 'downloaded']"
check "models: fields" is "$(j "$tmp/r.json" '[sorted(k for k in ("id","name","kind","size_bytes","ram_gb","best_for","recommended","gated","license_url","state","detail","bytes_done","bytes_total","in_use") if k not in m) for m in d["models"]]')" \
  "[[], [], [], [], []]"
check "models: the big one: bytes, license link" is \
  "$(j "$tmp/r.json" '(d["models"][1]["bytes_done"], d["models"][1]["bytes_total"], d["models"][1]["license_url"], d["models"][1]["recommended"])')" \
  "(0, 6000000, 'https://example.com/license', False)"
check "models: unknown id -> 404" is "$(post api/models/nope/download '{}')" 404
# A downloaded model cut short on disk (a power loss): damaged, with the sizes and the
# fix; the app's download repairs it.
get api/models >/dev/null
blob=$(readlink -f "$(j "$tmp/r.json" 'd["models"][0]["path"]')")
bsize=$(stat -c %s "$blob")
truncate -s $((bsize / 2)) "$blob"
check "models: cut short -> damaged" is "$(get api/models; j "$tmp/r.json" '(d["models"][0]["state"], d["models"][0]["path"])')" \
  "200('damaged', None)"
check "models: damaged: the detail says why and the fix" has "$(j "$tmp/r.json" 'd["models"][0]["detail"]')" \
  "has $((bsize / 2)) bytes, expected $bsize; codictate models pull test_llm_v1 fetches it again"
check "models: damaged: download -> 202" is "$(post api/models/test_llm_v1/download '{}')" 202
for _ in $(seq 1 100); do
  [ "$(get api/models >/dev/null; j "$tmp/r.json" 'd["models"][0]["state"]')" = downloaded ] && break
  sleep 0.1
done
check "models: damaged: the download repairs it" is "$(j "$tmp/r.json" 'd["models"][0]["state"]')" downloaded
check "models: damaged: the catalog's bytes again" cmp -s "$(readlink -f "$(j "$tmp/r.json" 'd["models"][0]["path"]')")" "$llm"

# --- settings round trip ---
key=sk-test-serve-api-4711
check "settings: 200" is "$(get api/settings)" 200
check "settings: defaults" is "$(j "$tmp/r.json" '(d["idle_timeout_s"], d["api_key_set"], d["provider"], bool(d["default_prompt"]), d["whisper_context"])')" \
  "(120, False, 'local', True, True)"
check "settings: POST 200" is "$(post api/settings "{\"idle_timeout_s\": 600, \"output\": \"none\", \"language\": \"en\", \"api_key\": \"$key\", \"no_such_field\": 1}")" 200
check "settings: the answer has the values" is "$(j "$tmp/r.json" '(d["idle_timeout_s"], d["output"], d["language"], d["api_key_set"])')" \
  "(600, 'none', 'en', True)"
check "settings: the key is not echoed" lacks "$(cat "$tmp/r.json")" "$key"
get api/settings >/dev/null
check "settings: GET after POST" is "$(j "$tmp/r.json" '(d["idle_timeout_s"], d["output"], d["language"], d["api_key_set"])')" \
  "(600, 'none', 'en', True)"
check "settings: GET does not echo the key" lacks "$(cat "$tmp/r.json")" "$key"
get api/status >/dev/null
check "status: does not echo the key" lacks "$(cat "$tmp/r.json")" "$key"
check "settings: settings.json is 0600" is "$(stat -c %a "$cfg/settings.json" 2>&1)" 600
check "settings: settings.json has the values" is "$(j "$cfg/settings.json" '(d["idle_timeout_s"], d["output"])')" "(600, 'none')"
check "settings: whisper_context false" is "$(post api/settings '{"whisper_context": false}' >/dev/null; j "$tmp/r.json" 'd["whisper_context"]')" False
check "settings: ... saved" is "$(j "$cfg/settings.json" 'd["whisper_context"]')" False
check "settings: whisper_context \"no\" -> 400" is "$(post api/settings '{"whisper_context": "no"}')" 400
check "settings: vocabulary" is "$(post api/settings '{"vocabulary": "Kubernetes, Anya Petrova"}' >/dev/null; j "$tmp/r.json" 'd["vocabulary"]')" "Kubernetes, Anya Petrova"
check "settings: vocabulary over 300 bytes -> 400" is "$(post api/settings "{\"vocabulary\": \"$(printf '%0301d' 0)\"}")" 400
check "settings: vocabulary null clears it" is "$(post api/settings '{"vocabulary": null}' >/dev/null; j "$tmp/r.json" 'd["vocabulary"]')" None
check "settings: whisper_context true again" is "$(post api/settings '{"whisper_context": true}' >/dev/null; j "$tmp/r.json" 'd["whisper_context"]')" True
check "settings: settings.json does not hold the key" lacks "$(cat "$cfg/settings.json" 2>/dev/null)" "$key"
keyfile=$(grep -rl -- "$key" "$cfg" 2>/dev/null | head -1)
check "settings: the key is in a file under $cfg" [ -n "$keyfile" ]
check "settings: the key file is named api_key" is "$(basename "${keyfile:-none}")" api_key
check "settings: the key file is 0600" is "$(stat -c %a "${keyfile:-/nonexistent}" 2>&1)" 600
check "settings: a bad value -> 400" is "$(post api/settings '{"idle_timeout_s": 7}')" 400
check "settings: ... with a detail" is "$(j "$tmp/r.json" 'bool(d["detail"])')" True
check "settings: a bad output -> 400" is "$(post api/settings '{"output": "shout"}')" 400
check "settings: trailing garbage -> 400" is "$(post api/settings '{"output": "copy"} x')" 400
check "settings: \\u0000 -> 400" is "$(post api/settings '{"prompt": "a\u0000b"}')" 400
get api/settings >/dev/null
check "settings: unchanged by bad values" is "$(j "$tmp/r.json" '(d["idle_timeout_s"], d["output"])')" "(600, 'none')"
check "settings: text/plain -> 415" is \
  "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: text/plain' --data '{}' "${url}api/settings")" 415
check "settings: an empty key clears it" is "$(post api/settings '{"api_key": ""}' >/dev/null; j "$tmp/r.json" 'd["api_key_set"]')" False
post api/settings '{"output": "none", "idle_timeout_s": 120}' >/dev/null

# --- the event stream: hello, then model progress during a throttled download ---
# Each line with the monotonic time it arrived.
"$PY" - "${url}api/events" >"$tmp/sse.txt" 2>"$tmp/sse.err" <<'PYEOF' &
import sys, time, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=60) as r:
    print("content-type", r.headers.get("Content-Type"), flush=True)
    for line in r:
        print("%.3f %s" % (time.monotonic(), line.decode().rstrip("\n")), flush=True)
PYEOF
ssepid=$!
for _ in $(seq 1 50); do
  grep -q ' event: hello' "$tmp/sse.txt" 2>/dev/null && break
  sleep 0.1
done
check "events: text/event-stream" has "$(head -1 "$tmp/sse.txt")" "text/event-stream"
check "events: hello first" is "$(grep -m1 ' event: ' "$tmp/sse.txt" | cut -d' ' -f2-)" "event: hello"
check "events: hello carries the status" is \
  "$("$PY" -c '
import json, sys
lines = [l.split(" ", 1)[1] for l in open(sys.argv[1]).read().splitlines()[1:] if " " in l]
i = lines.index("event: hello")
print(json.loads(lines[i + 1][len("data: "):])["status"]["pid"])' "$tmp/sse.txt" 2>&1)" "$servepid"
# curl -N sees it too.
curl -sN --max-time 2 "${url}api/events" >"$tmp/curl-sse.txt" 2>/dev/null
check "events: curl -N receives event: hello" grep -q '^event: hello' "$tmp/curl-sse.txt"
# A quiet stream whose client has left ends within a second or two, not at the next
# ping (15 s): three clients leave after 1 s; the app's threads come back.
nthreads() { ls "/proc/$servepid/task" | wc -l; }
sleep 1.5 # the stream of the curl above has ended
before=$(nthreads)
for _ in 1 2 3; do curl -sN --max-time 1 "${url}api/events" >/dev/null 2>&1 & done
wait_for=$(( $(date +%s) + 6 ))
sleep 1.2
while [ "$(nthreads)" -gt "$before" ] && [ "$(date +%s)" -lt "$wait_for" ]; do sleep 0.2; done
check "events: streams whose client left end before the next ping" is "$(nthreads)" "$before"

app_hub_control '{"reset":true,"rate":1500000}'
check "download: 202" is "$(post api/models/test_big_v1/download '{}')" 202
check "download: the answer" is "$(j "$tmp/r.json" '(d["id"], d["state"])')" "('test_big_v1', 'downloading')"
check "download: again while downloading -> 409 busy" is \
  "$(post api/models/test_big_v1/download '{}'; echo " $(j "$tmp/r.json" 'd.get("code")')")" "409 busy"
for _ in $(seq 1 300); do
  get api/models >/dev/null
  [ "$(j "$tmp/r.json" '[m["state"] for m in d["models"] if m["id"] == "test_big_v1"][0]')" = downloading ] || break
  sleep 0.1
done
check "download: downloaded" is "$(j "$tmp/r.json" '[m["state"] for m in d["models"] if m["id"] == "test_big_v1"][0]')" downloaded
app_hub_control '{"reset":true}'

# --- download failures say what kind they are; a gated model takes a token ---
# wait_model ID: until it is no longer downloading; prints "state code".
wait_model() {
  for _ in $(seq 1 200); do
    get api/models >/dev/null
    [ "$(j "$tmp/r.json" "[m['state'] for m in d['models'] if m['id'] == '$1'][0]")" = downloading ] || break
    sleep 0.1
  done
  j "$tmp/r.json" "[(m['state'] + ' ' + str(m['code'])) for m in d['models'] if m['id'] == '$1'][0]"
}
check "gated: 202" is "$(post api/models/test_gated_v1/download '{}')" 202
check "gated: fails with code gated" is "$(wait_model test_gated_v1)" "download_failed gated"
check "gated: the detail names the gate" has "$(j "$tmp/r.json" "[m['detail'] for m in d['models'] if m['id'] == 'test_gated_v1'][0]")" gated
check "gated: with the token, 202" is "$(post api/models/test_gated_v1/download '{"token": "hf_test_token"}')" 202
check "gated: with the token, downloaded" is "$(wait_model test_gated_v1)" "downloaded None"
check "gated: the token is not logged" lacks "$(cat "$tmp/serve.err" 2>/dev/null)" hf_test_token
check "wrong bytes: 202" is "$(post api/models/test_bad_v1/download '{}')" 202
check "wrong bytes: fails with code checksum" is "$(wait_model test_bad_v1)" "download_failed checksum"
sleep 0.5
kill_pid -TERM "$ssepid" 2>/dev/null
wait "$ssepid" 2>/dev/null
ssepid=
"$PY" - "$tmp/sse.txt" >"$tmp/sse.check" 2>&1 <<'PYEOF'
import json, sys
ev, out = None, []
for l in open(sys.argv[1]).read().splitlines()[1:]:
    t, _, line = l.partition(" ")
    if line.startswith("event: "):
        ev = line[7:]
    elif line.startswith("data: ") and ev == "model":
        d = json.loads(line[6:])
        if d.get("id") == "test_big_v1":
            out.append((float(t), d))
prog = [(t, d) for t, d in out if d["state"] == "downloading"]
times = [t for t, _ in prog]
peak = max((sum(1 for u in times if s <= u < s + 1.0) for s in times), default=0)
done = [d.get("bytes_done", -1) for _, d in prog]
print("events", len(out))
print("progress", len(prog))
print("peak_per_s", peak)
print("monotonic", all(a <= b for a, b in zip(done, done[1:])))
print("fields", all(all(k in d for k in ("kind", "bytes_done", "bytes_total", "speed_bps", "eta_s")) for _, d in prog))
print("last", out[-1][1]["state"] if out else None)
PYEOF
sse() { sed -n "s/^$1 //p" "$tmp/sse.check"; }
check "events: model progress during the download (>= 5 in ~4 s)" [ "$(sse progress || echo 0)" -ge 5 ]
check "events: at most ~10 progress events a second (peak $(sse peak_per_s))" [ "$(sse peak_per_s || echo 99)" -le 11 ]
check "events: bytes_done never goes back" is "$(sse monotonic)" True
check "events: model events carry kind, bytes, speed, eta" is "$(sse fields)" True
check "events: the last model event says downloaded" is "$(sse last)" downloaded
[ "$failed" -eq 0 ] || cat "$tmp/sse.check" "$tmp/sse.err" >&2

# --- `codictate status` while the app runs ---
out=$("$bin" status 2>&1)
check "codictate status: exit 0" is $? 0
check "codictate status: names the running app (its port)" has "$out" "$port"

# --- `codictate refine` and `transcribe --refine` use the running app ---
"$bin" -v refine --json "um so the meeting is at three" >"$tmp/rf.json" 2>"$tmp/rf.err"
check "refine via the app: exit 0" is "$?" 0
check "refine via the app: it says so (-v)" has "$(cat "$tmp/rf.err")" "through the running app"
check "refine via the app: the result" is "$(j "$tmp/rf.json" '(d["provider"], bool(d["refined"]), d["model"])')" \
  "('local', True, 'test_llm_v1')"
check "refine via the app: the app's pieces in the timings" is \
  "$(j "$tmp/rf.json" '(d["timings"]["pieces"], len(d["timings"]["piece_ms"]), d["timings"]["pieces_ahead"])')" "(1, 1, 0)"
"$bin" -v transcribe --refine --no-vad "$tmp/speech.wav" >/dev/null 2>"$tmp/tr.err"
check "transcribe --refine via the app: exit 0" is "$?" 0
check "transcribe --refine via the app: it says so" has "$(cat "$tmp/tr.err")" "through the running app"
"$bin" -v dictate --input "$tmp/speech.wav" --json --threads 1 --no-vad >"$tmp/dc.json" 2>"$tmp/dc.err"
check "dictate's LLM step via the app: exit 0" is "$?" 0
check "dictate's LLM step via the app: it says so" has "$(cat "$tmp/dc.err")" "through the running app"
check "dictate's LLM step via the app: the model" is "$(j "$tmp/dc.json" 'd["model"]')" test_llm_v1
# --timeout-ms reaches the app: 1 ms cannot be met, so the deterministic text and why
# (the app used its own 10 s before and the model answered).
"$bin" -v refine --json --timeout-ms 1 "um so the meeting is at three" >"$tmp/rt.json" 2>"$tmp/rt.err"
check "refine --timeout-ms via the app: exit 0" is "$?" 0
check "refine --timeout-ms via the app: through the app" has "$(cat "$tmp/rt.err")" "through the running app"
check "refine --timeout-ms via the app: its deadline" is "$(j "$tmp/rt.json" '(d["reason_code"], bool(d["refined"]))')" \
  "('timeout', True)"
check "refine: timeout_ms a string -> 400" is "$(post api/refine '{"text": "hello", "timeout_ms": "5"}')" 400
check "refine: the 400 names timeout_ms" has "$(cat "$tmp/r.json")" "timeout_ms"
check "refine: timeout_ms 0 -> 400" is "$(post api/refine '{"text": "hello", "timeout_ms": 0}')" 400
check "refine: timeout_ms 1.5 -> 400" is "$(post api/refine '{"text": "hello", "timeout_ms": 1.5}')" 400
check "refine: timeout_ms 60000 -> 200" is "$(post api/refine '{"text": "um hello", "timeout_ms": 60000}')" 200
# --- refinement ahead for a verb that dictates (`dictate` through the app) ---
# (over 120 words: refined in pieces, of which all but the last are finished early)
para="so the first thing is the budget for next year and we need to look at it again. then the
second thing is hiring where we want two engineers and one designer. after that the office move
which is in march. and last the launch date which moves to june."
long="$para $para $para $para please send me your notes before friday."
check "ahead: POST /api/refine/ahead -> 200" is "$(post api/refine/ahead '{"timeout_ms": 60000}')" 200
aid=$(j "$tmp/r.json" 'd["id"]')
check "ahead: an id of 32 hex digits" "$PY" -c "import re, sys; sys.exit(0 if re.fullmatch('[0-9a-f]{32}', '$aid') else 1)"
offer_body=$("$PY" -c 'import json, sys; print(json.dumps({"text": sys.argv[1]}))' "$long")
pieces=0
for _ in $(seq 1 300); do
  [ "$(post "api/refine/ahead/$aid/offer" "$offer_body")" = 200 ] || break
  pieces=$(j "$tmp/r.json" 'd["pieces"]')
  [ "$pieces" -ge 1 ] 2>/dev/null && break
  sleep 0.2
done
check "ahead: the finished pieces are refined while the text grows" "$PY" -c "import sys; sys.exit(0 if int('$pieces') >= 1 else 1)"
run_body=$("$PY" -c 'import json, sys; print(json.dumps({"text": sys.argv[1], "ahead": sys.argv[2]}))' "$long" "$aid")
check "ahead: POST /api/refine with it -> 200" is "$(post api/refine "$run_body")" 200
check "ahead: the run took the pieces refined ahead" is \
  "$(j "$tmp/r.json" '(d["timings"]["pieces_ahead"] >= 1, d["timings"]["pieces_ahead"] == sum(d["timings"]["piece_ahead"]))')" "(True, True)"
check "ahead: every word of the transcript is in the text" is \
  "$(j "$tmp/r.json" 'all(w in d["refined"].lower() for w in ("budget", "hiring", "designer", "march", "june", "friday"))')" True
check "ahead: taken by the run (gone after it)" is "$(post "api/refine/ahead/$aid/offer" "$offer_body")" 404
check "ahead: an id that is gone still refines (all now)" is "$(post api/refine "$run_body")" 200
check "ahead: ... with none taken ahead" is "$(j "$tmp/r.json" 'd["timings"]["pieces_ahead"]')" 0
check "ahead: \"ahead\" a number -> 400" is "$(post api/refine '{"text": "hello", "ahead": 5}')" 400
check "ahead: a bad timeout_ms -> 400" is "$(post api/refine/ahead '{"timeout_ms": -1}')" 400
post api/refine/ahead '{}' >/dev/null
aid2=$(j "$tmp/r.json" 'd["id"]')
check "ahead: delete -> 200" is "$(post "api/refine/ahead/$aid2/delete" '{}')" 200
check "ahead: deleted (offer -> 404)" is "$(post "api/refine/ahead/$aid2/offer" '{"text": "x"}')" 404
check "ahead: delete again -> 404" is "$(post "api/refine/ahead/$aid2/delete" '{}')" 404
post api/refine/ahead '{}' >/dev/null
aid3=$(j "$tmp/r.json" 'd["id"]')
check "ahead: offer without text -> 400" is "$(post "api/refine/ahead/$aid3/offer" '{}')" 400
check "ahead: an unknown action -> 404" is "$(post "api/refine/ahead/$aid2/nope" '{}')" 404
# The model's text streams through the app too: POST /api/refine with "stream": true
# answers the sidecar's events ({"text"} pieces, then {"done": true, ...the result}),
# and `refine` on a terminal shows them as they come (dimmed), then the result.
curl -sN --max-time 120 -H 'Content-Type: application/json' \
  --data '{"text": "um so the meeting is at three", "stream": true}' "${url}api/refine" >"$tmp/rs.txt"
stream_check() {
  "$PY" -c '
import json, sys
ev = [json.loads(l[6:]) for l in open(sys.argv[1]).read().splitlines() if l.startswith("data: ")]
print(eval(sys.argv[2]))' "$tmp/rs.txt" "$1" 2>&1
}
check "stream: pieces of the model's text first" is "$(stream_check 'sum(1 for e in ev[:-1] if e.get("text")) >= 1')" True
check "stream: the result last, as without stream" is \
  "$(stream_check '(ev[-1].get("done"), isinstance(ev[-1].get("refined"), str), ev[-1].get("model"))')" \
  "(True, True, 'test_llm_v1')"
want=$("$bin" refine --json "um so the meeting is at three" 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["refined"])')
script -qc "$(printf '%q ' "$bin" refine "um so the meeting is at three")" /dev/null >"$tmp/tty.out" 2>/dev/null </dev/null
check "refine on a terminal via the app: the model's text dimmed as it comes" grep -q "$(printf '\033\\[2m')" "$tmp/tty.out"
check "refine on a terminal via the app: the result last" is "$(tail -n 1 "$tmp/tty.out" | tr -d '\r')" "$want"
check "refine with another provider stays in-process" lacks \
  "$("$bin" -v refine --base-url http://127.0.0.1:9/v1 "hello" 2>&1)" "through the running app"

# --- `codictate dictate --toggle`: start, then stop, in the running app ---
# Its events recorded too: the refined text streams (`refined` {id, delta} pieces
# while the model generates, then {id, final: true, text}).
curl -sN --max-time 120 "${url}api/events" >"$tmp/dict-sse.txt" 2>/dev/null &
dssepid=$!
for _ in $(seq 1 50); do
  grep -q '^event: hello' "$tmp/dict-sse.txt" 2>/dev/null && break
  sleep 0.1
done
"$bin" dictate --toggle >"$tmp/t1.out" 2>&1
check "toggle 1: exit 0" is $? 0
get api/dictation >/dev/null
check "toggle 1: the app records" is "$(j "$tmp/r.json" '(d["state"], d["source"])')" "('recording', 'microphone')"
sleep 3
"$bin" dictate --toggle >"$tmp/t2.out" 2>&1
check "toggle 2: exit 0" is $? 0
for _ in $(seq 1 300); do
  get api/dictation >/dev/null
  case $(j "$tmp/r.json" 'd["state"]') in done | failed | cancelled) break ;; esac
  sleep 0.1
done
check "toggle 2: stopped and finished" is "$(j "$tmp/r.json" 'd["state"]')" done
check "toggle 2: about 3 s recorded" is "$(j "$tmp/r.json" '2 <= d["elapsed_s"] <= 6')" True
check "toggle 2: a transcript" is "$(j "$tmp/r.json" 'bool(d["raw"])')" True
id=$(j "$tmp/r.json" 'd["id"]')
refined=$(j "$tmp/r.json" 'json.dumps(d["refined"])')
for _ in $(seq 1 50); do
  grep -q '"final":true' "$tmp/dict-sse.txt" 2>/dev/null && break
  sleep 0.1
done
kill_pid -TERM "$dssepid" 2>/dev/null
# refined_sse EXPR: an expression on the dictation's `refined` events (ev, in order).
refined_sse() {
  "$PY" -c '
import json, sys
ev, name = [], None
for line in open(sys.argv[1], encoding="utf-8").read().splitlines():
    if line.startswith("event: "):
        name = line[len("event: "):]
    elif line.startswith("data: ") and name == "refined":
        o = json.loads(line[len("data: "):])
        if o.get("id") == sys.argv[2]:
            ev.append(o)
fin = [i for i, e in enumerate(ev) if e.get("final") is True]
deltas = [e["delta"] for e in ev[: fin[0] if fin else len(ev)] if isinstance(e.get("delta"), str)]
print(eval(sys.argv[3]))' "$tmp/dict-sse.txt" "$id" "$1" 2>&1
}
check "stream: refined deltas before the final text" is "$(refined_sse 'sum(1 for x in deltas if x) >= 1')" True
check "stream: the deltas joined are not empty" is "$(refined_sse 'len("".join(deltas).strip()) > 0')" True
check "stream: one final refined event, last" is "$(refined_sse 'fin == [len(ev) - 1]')" True
check "stream: the final text is the dictation's refined text" is \
  "$(refined_sse 'json.dumps(ev[fin[0]]["text"]) if fin else None')" "$refined"
get api/history >/dev/null
check "history: the toggled dictation is the newest" is "$(j "$tmp/r.json" '(d["entries"][0]["id"], d["entries"][0]["source"], d["entries"][0]["has_audio"])')" \
  "('$id', 'microphone', True)"
check "history: its audio is a WAV" is "$(curl -s "${url}api/history/$id/audio" | head -c 4)" RIFF

# --- a vocabulary for one refinement (the CLI's `refine --vocabulary` through the app) ---
check "refine: a vocabulary -> 200" is "$(post api/refine '{"text": "um anya said hello", "vocabulary": "Anya"}')" 200
check "refine: a vocabulary with a tab -> 400" is "$(post api/refine '{"text": "hello", "vocabulary": "a\tb"}')" 400
check "refine: the 400 says why" has "$(cat "$tmp/r.json")" "vocabulary"

# --- the idle timeout: the model stays warm between uses, or unloads ---
loaded() { get api/status >/dev/null; j "$tmp/r.json" 'd["sidecar"]["model"]'; }
check "idle: never (-1) -> 200" is "$(post api/settings '{"idle_timeout_s": -1}')" 200
post api/refine '{"text": "um one two three"}' >/dev/null
sleep 2
check "idle never: the model stays loaded after a refine" is "$(loaded)" test_llm_v1
check "idle: immediately (0) -> 200" is "$(post api/settings '{"idle_timeout_s": 0}')" 200
post api/refine '{"text": "um four five six"}' >/dev/null
for _ in $(seq 1 50); do [ "$(loaded)" = None ] && break; sleep 0.1; done
check "idle immediately: unloaded right after the refine" is "$(loaded)" None
check "idle: the sidecar process stays (only the model goes)" is \
  "$(get api/status >/dev/null; j "$tmp/r.json" 'd["sidecar"]["pid"] > 0')" True
[ "$failed" -eq 0 ] || { echo "--- toggle output:" >&2; cat "$tmp/t1.out" "$tmp/t2.out" >&2; tail -n 40 "$tmp/serve.err" >&2; }
finish
