#!/bin/bash
# Security (issue 14 §4) against both servers and the CLI, from the outside:
#   origin    Host and Origin rules on the sidecar and the app (DNS rebinding:
#             Host: evil.example to 127.0.0.1; other origins, "null", another port);
#             the sidecar's bearer token
#   users     another local user (nobody, through setpriv; root only) cannot use the
#             app or the sidecar, cannot read the sidecar's token, and a server of
#             theirs on a port the CLI is pointed at gets nothing from it; a /tmp
#             state dir they made first is not used; dictate --toggle signals no
#             process but its own background dictation; the modes of the runtime,
#             config and data dirs and of the files in them
#   paths     path traversal: the app's static files, history ids and audio paths,
#             model ids, model paths given to the app and to the sidecar's /load
#   secrets   a recognisable HF token and API key never appear in logs, errors,
#             --json, the app's API answers, history or the data dirs, nor (as
#             --api-key) in a running verb's command line
#   words     no transcript or prompt text on stderr at the default level (nor at
#             -v): the CLI verbs, the sidecar and the app, greps every log
#   test_security.sh CODICTATE FAKEHUB STUBLLM TINY_LLM WHISPER_BIN
set -u
bin=$1 fakehub=$2 stub=$3 llm=$4 whisper=$5
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../sh_test.sh"
. "$here/../serve_app.sh"
tmp=$(mktemp -d)
chmod 755 "$tmp" # the other user reaches the scripts it runs (not the homes)
scpid= stubpid= foreignpid=
cleanup() {
  [ -n "$scpid" ] && kill_pid -9 "$scpid" 2>/dev/null
  [ -n "$stubpid" ] && kill_pid -TERM "$stubpid" 2>/dev/null
  [ -n "$foreignpid" ] && kill_pid -9 "$foreignpid" 2>/dev/null
  app_stop
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
PY=/usr/bin/python3
is() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }
has() { case "$1" in *"$2"*) return 0 ;; esac; echo "  '${1:0:300}' lacks '$2'" >&2; return 1; }
lacks() { case "$1" in *"$2"*) echo "  '${1:0:300}' has '$2'" >&2; return 1 ;; esac; return 0; }
# nowhere WORD FILES...: no file holds WORD (names the ones that do).
nowhere() {
  local w=$1 f bad=0
  shift
  for f in "$@"; do
    [ -f "$f" ] || continue
    if grep -qaF -- "$w" "$f"; then
      echo "  '$w' in $f: $(grep -aF -- "$w" "$f" | head -2 | cut -c1-200)" >&2
      bad=1
    fi
  done
  return $bad
}
mode() { stat -c %a "$1" 2>/dev/null; }
# req URL [curl args...] → $code, $body (raw: --path-as-is, nothing re-encoded)
req() {
  local u=$1
  shift
  body=$(curl -s --path-as-is -o - -w '\n%{http_code}' --max-time 20 "$@" "$u")
  code=${body##*$'\n'}
  body=${body%$'\n'*}
}

# Recognisable words: a transcript and a prompt, a Hugging Face token, an API key.
W1=zebrafinch W2=quokkalantern W3=marmosetvelvet
SPEECH="um so the $W1 meeting is moved to the $W2 room on Friday"
HFTOK=hf_SECRETtok3nQ9zXv SKEY=sk-SECRETkey7Wm4Lp

app_home "$tmp"
export TZ=UTC
app_hub "$tmp" "$bin" "$fakehub" "$llm" "$whisper" || { echo "the fake hub did not start"; finish; exit 1; }
start_stubllm "$stub" "$tmp/stub.out" --log "$tmp/stub.log"
stubport=$port
check "stub LLM starts" test -n "$stubport"
for id in test_llm_v1 test_whisper_v1; do
  "$bin" models pull "$id" >/dev/null 2>"$tmp/pull-$id.err"
  check "models pull $id" is "$?" 0
done
gguf=$("$bin" models info test_llm_v1 --json 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["path"])' 2>/dev/null)
check "the pulled model's path" test -f "$gguf"

# --- a sidecar with a token (as the manager spawns it), and the app ---
CODICTATE_SIDECAR_TOKEN=tok-4f9a "$bin" sidecar --port-range 24400-24600 >"$tmp/sidecar.out" 2>"$tmp/sidecar.err" &
scpid=$!
sport=
for _ in $(seq 1 200); do
  sport=$(sed -n 's/^CODICTATE_SIDECAR_PORT=//p' "$tmp/sidecar.out")
  [ -n "$sport" ] && break
  sleep 0.05
done
check "sidecar starts" test -n "$sport"
S=http://127.0.0.1:$sport
AUTH=(-H 'Authorization: Bearer tok-4f9a')
check "app starts" app_serve "$tmp" "$bin"
aport=${url#http://127.0.0.1:}
aport=${aport%/}
A=http://127.0.0.1:$aport

# ================= origin: Host, Origin, token =================
for target in "sidecar $S/status" "app $A/api/status" "app-page $A/"; do
  set -- $target
  name=$1 u=$2
  extra=()
  [ "$name" = sidecar ] && extra=("${AUTH[@]}")
  req "$u" "${extra[@]}"
  check "$name: a loopback request is 200" is "$code" 200
  for h in 'Host: evil.example' 'Host: evil.example:'"${u#http://127.0.0.1:}" 'Host: 127.0.0.1.nip.io' \
    'Host: localhost.evil.example' 'Host: 127.0.0.1@evil.example' 'Host: 10.0.0.1'; do
    req "$u" "${extra[@]}" -H "$h"
    check "$name: '$h' refused (DNS rebinding)" is "$code" 403
  done
  req "$u" "${extra[@]}" -H 'Host:' --http1.0
  check "$name: no Host (HTTP/1.0) refused" is "$code" 403
  for o in 'Origin: http://evil.example' 'Origin: null' 'Origin: http://127.0.0.1.evil.example' \
    'Origin: file://' 'Origin: http://localhost@evil.example'; do
    req "$u" "${extra[@]}" -H "$o"
    check "$name: '$o' refused" is "$code" 403
  done
done
# The app's own page only: a loopback page on another port is another site.
req "$A/api/status" -H "Origin: http://127.0.0.1:$((aport + 1))"
check "app: Origin of another loopback port refused" is "$code" 403
req "$A/api/status" -H "Origin: http://localhost:$aport"
check "app: its own Origin (localhost) accepted" is "$code" 200
# A cross-site POST cannot change anything: not from another origin, and a form's
# content types are refused.
req "$A/api/settings" -H 'Origin: http://evil.example' -H 'Content-Type: application/json' --data '{"output":"none"}'
check "app: cross-site POST /api/settings refused" is "$code" 403
req "$A/api/settings" -H 'Content-Type: text/plain' --data '{"output":"none"}'
check "app: a form-like POST (text/plain) refused" is "$code" 415
req "$A/api/dictation/start" -H 'Content-Type: application/x-www-form-urlencoded' --data 'a=b'
check "app: a form POST cannot start a recording" is "$code" 415
# The sidecar's token: on every route but /health.
for r in "GET /status" "GET /v1/models" "POST /generate" "POST /load" "POST /unload" "POST /v1/chat/completions"; do
  set -- $r
  req "$S$2" -X "$1" -H 'Content-Type: application/json' --data '{}'
  check "sidecar: $1 $2 without the token is 401" is "$code" 401
  req "$S$2" -X "$1" -H 'Content-Type: application/json' --data '{}' -H 'Authorization: Bearer tok-4f9b'
  check "sidecar: $1 $2 with a wrong token is 401" is "$code" 401
done
req "$S/status" -H 'Authorization: Bearer tok-4f9a0'
check "sidecar: a token with a suffix is 401" is "$code" 401
req "$S/status" -H 'Authorization: Basic tok-4f9a'
check "sidecar: the token in another scheme is 401" is "$code" 401
req "$S/health"
check "sidecar: /health needs no token" is "$code" 200
check "sidecar: the token is not on its command line" lacks "$(tr '\0' ' ' </proc/$scpid/cmdline)" tok-4f9a

# ================= users: another local user =================
other=
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  if id nobody >/dev/null 2>&1; then
    other=nobody
  elif command -v useradd >/dev/null && useradd -M -r -s /usr/sbin/nologin codictate-other 2>/dev/null; then
    other=codictate-other
  fi
fi
if [ -n "$other" ]; then
  # The command prefix that runs as the other user; started in the background it is
  # used directly (a backgrounded function runs in a subshell, whose PID kill_pid
  # would end while the command it started lived on).
  as_other_cmd=(setpriv --reuid="$other" --regid="$(id -g "$other")" --clear-groups --reset-env)
  as_other() { "${as_other_cmd[@]}" "$@"; }
  for u in "$A/api/status" "$A/api/history" "$A/api/settings" "$A/"; do
    code=$(as_other curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$u")
    check "other user: GET ${u#$A} of the app is 403" is "$code" 403
  done
  code=$(as_other curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
    --data '{"provider":"openai","openai_base_url":"http://127.0.0.1:9/v1"}' "$A/api/settings")
  check "other user: POST /api/settings is 403" is "$code" 403
  code=$(as_other curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
    --data '{}' "$A/api/dictation/start")
  check "other user: cannot start a recording" is "$code" 403
  out=$(as_other curl -s --max-time 10 -H 'Content-Type: application/json' --data '{"text":"x"}' "$A/api/refine")
  check "other user: POST /api/refine says why" has "$out" "belongs to another user"
  code=$(as_other curl -s -o /dev/null -w '%{http_code}' --max-time 10 "${AUTH[@]}" "$S/status")
  check "other user: the sidecar, even with its token, is 403" is "$code" 403
  code=$(as_other curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$S/health")
  check "other user: the sidecar's /health is 403" is "$code" 403
  check "other user: cannot read the sidecar's environment (its token)" \
    bash -c "! setpriv --reuid=$other --regid=$(id -g "$other") --clear-groups cat /proc/$scpid/environ >/dev/null 2>&1"
  if as_other test -x "$bin"; then
    out=$(as_other env CODICTATE_APP_PORT="$aport" "$bin" status 2>&1)
    check "other user: codictate status does not use someone's app" lacks "$out" "running, http"
    check "other user: ... and says it is not running" has "$out" "not running"
  else
    echo "note: $other cannot run $bin (its directory is closed): that check is left out" >&2
  fi
  # A server of the other user's on the port the CLI is pointed at (as if it had
  # taken the app's port first) gets no request: no transcript reaches it.
  cat >"$tmp/foreign.py" <<'EOF'
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        sys.stderr.write("REQUEST %s %s\n" % (self.requestline, body[:200]))
        sys.stderr.flush()
        b = json.dumps({"dictation": {"state": "idle"}, "version": "x", "text": "pwned"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    do_GET = do_POST = answer
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
EOF
  chmod 644 "$tmp/foreign.py"
  "${as_other_cmd[@]}" "$PY" "$tmp/foreign.py" >"$tmp/foreign.out" 2>"$tmp/foreign.err" &
  foreignpid=$!
  fport=
  for _ in $(seq 1 100); do
    fport=$(head -1 "$tmp/foreign.out" 2>/dev/null)
    [ -n "$fport" ] && break
    sleep 0.05
  done
  check "other user's server starts" test -n "$fport"
  out=$(CODICTATE_APP_PORT=$fport "$bin" status 2>&1)
  check "codictate status ignores another user's server" lacks "$out" "running, http"
  out=$(CODICTATE_APP_PORT=$fport "$bin" refine --provider none "$SPEECH" 2>&1)
  check "codictate refine does not send to another user's server" lacks "$out" pwned
  check "another user's server got no request" is "$(grep -c REQUEST "$tmp/foreign.err")" 0
  kill_pid -9 "$foreignpid"
  wait "$foreignpid" 2>/dev/null
  foreignpid=
else
  echo "note: not root (or no setpriv): the other-user checks are left out; modes below" >&2
fi
# A stale PID file of a background dictation (killed, its number since reused by
# another program of the user's) must not get that program a SIGUSR1, which ends it.
sleep 120 &
sleeper=$!
echo "$sleeper" >"$XDG_RUNTIME_DIR/codictate/dictate-toggle.pid"
CODICTATE_NO_APP=1 PULSE_SERVER=unix:$tmp/no-pulse "$bin" dictate --toggle --whisper-model "$whisper" \
  --provider openai --base-url http://127.0.0.1:9/v1 --api-key "$SKEY" >"$tmp/toggle.out" 2>"$tmp/toggle.err"
bg=$(cat "$XDG_RUNTIME_DIR/codictate/dictate-toggle.pid" 2>/dev/null)
bgcmd= bgenv=
# (its PID file is gone already when it has ended: nothing to read then)
[ -n "$bg" ] && for _ in $(seq 1 20); do # past its exec (posix_spawn), while it runs
  bgcmd=$(tr '\0' ' ' </proc/$bg/cmdline 2>/dev/null)
  bgenv=$(tr '\0' '\n' </proc/$bg/environ 2>/dev/null)
  case $bgcmd in '' | *' dictate '*) break ;; esac
  sleep 0.05
done
sleep 0.3
check "dictate --toggle: a stale PID file's process is not signalled" kill -0 "$sleeper"
check "dictate --toggle: started a background dictation instead" has "$(cat "$tmp/toggle.out")" "background"
# (the background dictation may have ended already: no sound server here)
if [ -n "$bgcmd" ]; then
  check "dictate --toggle --api-key: the background dictation's command line" has "$bgcmd" "dictate"
  check "dictate --toggle --api-key: ... holds no key" lacks "$bgcmd" "$SKEY"
else
  echo "note: the background dictation ended before its command line was read" >&2
fi
[ -n "$bgenv" ] && check "dictate --toggle --api-key: ... which it has in its environment" has "$bgenv" "OPENAI_API_KEY=$SKEY"
kill_pid -9 "$sleeper"
wait "$sleeper" 2>/dev/null
[ -n "$bg" ] && [ "$bg" != "$sleeper" ] && kill_pid -TERM "$bg" 2>/dev/null
if [ -n "$other" ]; then
  # Without XDG_RUNTIME_DIR and HOME the state dir is /tmp/codictate-<uid>: one that
  # another user made first (open to all, a PID file naming our process) is not used.
  sd=/tmp/codictate-$(id -u)
  if [ ! -e "$sd" ]; then
    as_other mkdir -m 777 "$sd"
    sleep 120 &
    sleeper=$!
    as_other sh -c "echo $sleeper >$sd/dictate-toggle.pid"
    env -u XDG_RUNTIME_DIR -u HOME CODICTATE_NO_APP=1 PULSE_SERVER=unix:$tmp/no-pulse "$bin" dictate --toggle \
      --whisper-model "$whisper" >"$tmp/toggle2.out" 2>"$tmp/toggle2.err"
    env -u XDG_RUNTIME_DIR -u HOME CODICTATE_NO_APP=1 "$bin" refine --model "$llm" "hello there" \
      >"$tmp/refine-tmpdir.out" 2>"$tmp/refine-tmpdir.err"
    sleep 0.3
    check "another user's /tmp state dir: their PID file is not acted on" kill -0 "$sleeper"
    check "another user's /tmp state dir: nothing of ours written there" is "$(find "$sd" -user "$(id -u)" | head -3)" ""
    check "another user's /tmp state dir: refine still works" has "$(cat "$tmp/refine-tmpdir.out")" "ello"
    kill_pid -9 "$sleeper"
    wait "$sleeper" 2>/dev/null
    rm -rf "$sd"
  else
    echo "note: $sd exists: the foreign /tmp state dir check is left out" >&2
  fi
fi
# Where secrets and transcripts live, and their modes (whatever the umask).
run=$XDG_RUNTIME_DIR/codictate cfg=$XDG_CONFIG_HOME/codictate data=$CODICTATE_DATA_DIR
check "runtime dir $run is 0700" is "$(mode "$run")" 700
check "app.port is 0600" is "$(mode "$run/app.port")" 600

# ================= paths: traversal =================
req "$A/"
page=$body
check "app: / is the page" has "$page" "<html"
for p in '/../../../../etc/passwd' '/%2e%2e/%2e%2e/%2e%2e/etc/passwd' '/..%2f..%2f..%2fetc%2fpasswd' \
  '/%2e%2e%2f%2e%2e%2fetc%2fpasswd' '//etc/passwd' '/etc/passwd' '/index.html/../../../etc/passwd' \
  '/app.js/..%2f..%2f..%2fetc%2fpasswd' '/..%5c..%5cetc%5cpasswd' '/%252e%252e/%252e%252e/etc/passwd' \
  '/.%2e/.%2e/etc/passwd' '/api/../../../../etc/passwd' "/$tmp/hf/token" '/%00/etc/passwd' \
  '/~root/.bashrc' "/$CODICTATE_DATA_DIR/history.jsonl"; do
  req "$A$p"
  # (%00 ends the decoded path: "/", the page itself)
  check "app static: $p not served" bash -c "[ '$code' = 404 ] || [ '$code' = 400 ] || [ '$code' = 403 ] || [ \"\$1\" = \"\$2\" ]" _ "$body" "$page"
  check "app static: $p no file content" lacks "$body" "root:x:0"
done
# History ids and their audio.
echo "{\"id\":\"20260101-000000-000-1\",\"time_ms\":1767225600000,\"status\":\"done\",\"source\":\"file\",\"audio_path\":\"/etc/passwd\",\"audio_seconds\":1,\"raw\":\"a\",\"refined\":\"a\",\"fallback_reason\":null,\"error\":null,\"model\":null,\"whisper_model\":null,\"timings\":null}" >>"$data/history.jsonl"
mkdir -p "$data/recordings"
for p in '/api/history/..%2f..%2f..%2f..%2fetc%2fpasswd/audio' '/api/history/../../../../etc/passwd/audio' \
  '/api/history/%2e%2e/audio' '/api/history/..%2F..%2Fetc%2Fpasswd/audio' \
  '/api/history/20260101-000000-000-1%2f..%2f..%2f..%2fetc%2fpasswd/audio'; do
  req "$A$p"
  check "history audio: $p is 404" is "$code" 404
  check "history audio: $p no file content" lacks "$body" "root:x:0"
done
req "$A/api/history/20260101-000000-000-1/audio"
check "history audio: an entry whose audio_path is outside the recordings is not served" is "$code" 404
check "history audio: ... and not its content" lacks "$body" "root:x:0"
cp /etc/hostname "$tmp/outside.wav"
echo "{\"id\":\"20260101-000000-000-2\",\"time_ms\":1767225600001,\"status\":\"done\",\"source\":\"file\",\"audio_path\":\"$data/recordings/../../outside.wav\",\"audio_seconds\":1,\"raw\":\"a\",\"refined\":\"a\",\"fallback_reason\":null,\"error\":null,\"model\":null,\"whisper_model\":null,\"timings\":null}" >>"$data/history.jsonl"
req "$A/api/history/20260101-000000-000-2/audio"
check "history audio: recordings/../../ is not served" is "$code" 404
cp /etc/hostname "$tmp/victim"
for p in '/api/history/..%2f..%2fvictim/delete' '/api/history/../../victim/delete' \
  '/api/models/..%2f..%2f..%2fetc%2fpasswd/delete' '/api/models/../../../../etc/passwd/delete' \
  '/api/models/%2e%2e/delete' '/api/history/..%2f..%2fvictim/retry'; do
  req "$A$p" -H 'Content-Type: application/json' --data '{}'
  check "app: POST $p is 404" is "$code" 404
done
check "app: nothing outside was deleted" test -f "$tmp/victim"
check "app: /etc/passwd intact" test -s /etc/passwd
# Model ids and paths given to the app and the CLI.
for m in '../../../../etc/passwd' '/etc/passwd' "$tmp/victim" '..' '/dev/zero'; do
  req "$A/api/settings" -H 'Content-Type: application/json' --data "{\"llm_model\":\"$m\"}"
  check "app settings: llm_model '$m' refused" is "$code" 400
  req "$A/api/settings" -H 'Content-Type: application/json' --data "{\"whisper_model\":\"$m\"}"
  check "app settings: whisper_model '$m' refused" is "$code" 400
  req "$A/api/refine" -H 'Content-Type: application/json' --data "{\"text\":\"hello there\",\"model\":\"$m\"}"
  check "app refine: model '$m' is not loaded" lacks "$code" 200
  check "app refine: model '$m': no file content" lacks "$body" "root:x:0"
done
out=$("$bin" models rm ../../../etc/passwd 2>&1)
check "models rm ../../../etc/passwd: refused" bash -c "[ -s /etc/passwd ]"
check "models rm ../../../etc/passwd: says unknown" has "$out" "unknown"
# The sidecar's /load: a path is the client's to give (the token guards it), but
# nothing of a file that is not a model comes back, and nothing hangs.
mkfifo "$tmp/fifo"
for p in /etc/passwd ../../../../../../etc/passwd /dev/zero /dev/urandom "$tmp/fifo" / /proc/self/mem "$tmp/nonexistent"; do
  t0=$(date +%s)
  req "$S/load" "${AUTH[@]}" -H 'Content-Type: application/json' --data "{\"model_path\":\"$p\"}"
  check "sidecar /load $p: an error" bash -c "[ '$code' -ge 400 ] && [ '$code' -lt 600 ]"
  check "sidecar /load $p: within 10 s" test $(($(date +%s) - t0)) -le 10
  check "sidecar /load $p: no file content" lacks "$body" "root:x:0"
done
check "sidecar alive after the /loads" kill -0 "$scpid"

# ================= secrets =================
# The HF token: a gated model pulled with a wrong token (CLI, env and --json), and
# through the app's API.
HF_TOKEN=$HFTOK "$bin" models pull test_gated_v1 >"$tmp/s-pull.out" 2>"$tmp/s-pull.err"
check "gated pull with a wrong token fails" is "$?" 1
check "gated pull: says gated" has "$(cat "$tmp/s-pull.err")" "gated"
HF_TOKEN=$HFTOK "$bin" -v models pull test_gated_v1 --json >"$tmp/s-pullj.out" 2>"$tmp/s-pullj.err"
HF_TOKEN=$HFTOK "$bin" -v models info test_gated_v1 --json >"$tmp/s-info.out" 2>"$tmp/s-info.err"
HF_TOKEN=$HFTOK "$bin" -v models list --json >"$tmp/s-list.out" 2>"$tmp/s-list.err"
HF_TOKEN=$HFTOK "$bin" version --json >"$tmp/s-version.out" 2>"$tmp/s-version.err"
req "$A/api/models/test_gated_v1/download" -H 'Content-Type: application/json' --data "{\"token\":\"$HFTOK\"}"
echo "$body" >"$tmp/s-app-dl.json"
for _ in $(seq 1 100); do
  st=$(curl -s "$A/api/models" | "$PY" -c 'import json,sys; print([m["state"] for m in json.load(sys.stdin)["models"] if m["id"]=="test_gated_v1"][0])' 2>/dev/null)
  [ "$st" = downloading ] || break
  sleep 0.1
done
check "app: the gated download ends (failed)" is "$st" download_failed
curl -s "$A/api/models" >"$tmp/s-app-models.json"
# The API key: in settings through the API, then refine through the stub with it
# (the stub's "auth" model refuses it: an upstream 401), and on the CLI.
req "$A/api/settings" -H 'Content-Type: application/json' \
  --data "{\"provider\":\"openai\",\"openai_base_url\":\"http://127.0.0.1:$stubport/v1\",\"openai_model\":\"auth\",\"api_key\":\"$SKEY\"}"
check "app settings: the key is accepted" is "$code" 200
echo "$body" >"$tmp/s-app-settings-post.json"
curl -s "$A/api/settings" >"$tmp/s-app-settings.json"
curl -s "$A/api/status" >"$tmp/s-app-status.json"
check "app settings: says a key is set" has "$(cat "$tmp/s-app-settings.json")" '"api_key_set":true'
check "app settings: key file is 0600" is "$(mode "$cfg/api_key")" 600
check "app settings: settings.json is 0600" is "$(mode "$cfg/settings.json")" 600
check "config dir is 0700" is "$(mode "$cfg")" 700
req "$A/api/refine" -H 'Content-Type: application/json' --data "{\"text\":\"$SPEECH\"}"
echo "$body" >"$tmp/s-app-refine.json"
check "app refine with a refused key: the raw words" has "$body" "$W1"
check "the key did reach the endpoint (the test sees it)" has "$(cat "$tmp/stub.log")" "$SKEY"
"$bin" -v refine --provider openai --base-url "http://127.0.0.1:$stubport/v1" --api-key "$SKEY" \
  --openai-model auth --json "$SPEECH" >"$tmp/s-refine.out" 2>"$tmp/s-refine.err"
OPENAI_API_KEY=$SKEY "$bin" -v refine --provider openai --base-url "http://127.0.0.1:$stubport/v1" \
  --openai-model error500 "$SPEECH" >"$tmp/s-refine2.out" 2>"$tmp/s-refine2.err"
"$bin" -v refine --provider openai --base-url "http://127.0.0.1:9/v1" --api-key "$SKEY" \
  --openai-model auth "$SPEECH" >"$tmp/s-refine3.out" 2>"$tmp/s-refine3.err"
printf '{"id":"s1","category":"disfluency","input":"%s","reference":"x","source":"t"}\n' "$SPEECH" >"$tmp/cases.jsonl"
"$bin" -v eval --cases "$tmp/cases.jsonl" --provider openai --base-url "http://127.0.0.1:$stubport/v1" \
  --api-key "$SKEY" --openai-model auth --json --verbose >"$tmp/s-eval.out" 2>"$tmp/s-eval.err"
"$bin" history --json >"$tmp/s-history.out" 2>"$tmp/s-history.err"
# --api-key on the command line: /proc/PID/cmdline is every user's to read (ps).
: >"$tmp/stub.log"
"$bin" refine --provider openai --base-url "http://127.0.0.1:$stubport/v1" --api-key "$SKEY" \
  --openai-model slow --timeout-ms 20000 "$SPEECH" >"$tmp/s-refine4.out" 2>"$tmp/s-refine4.err" &
rpid=$!
for _ in $(seq 1 200); do # its request reached the stub: the options are parsed
  [ -s "$tmp/stub.log" ] && break
  sleep 0.05
done
cmdline=$(tr '\0' ' ' </proc/$rpid/cmdline 2>/dev/null)
check "refine --api-key: running (its command line read)" has "$cmdline" "refine"
check "refine --api-key: the key is not in its command line" lacks "$cmdline" "$SKEY"
wait "$rpid"
check "refine --api-key: the key was still sent" has "$(cat "$tmp/stub.log")" "Bearer $SKEY"
# Back to the local provider for what follows (the key stays set).
req "$A/api/settings" -H 'Content-Type: application/json' --data '{"provider":"local","llm_model":"test_llm_v1"}'
check "app settings: back to local" is "$code" 200
for secret in "$HFTOK" "$SKEY"; do
  files=("$tmp"/s-* "$tmp/serve.err" "$tmp/serve.out" "$tmp/sidecar.err")
  mapfile -t -O ${#files[@]} files < <(find "$run" "$cfg" "$data" "$XDG_CACHE_HOME" -type f ! -name api_key 2>/dev/null)
  check "secret ${secret:0:9}…: in no output, log, API answer, history or state file" nowhere "$secret" "${files[@]}"
done
check "the HF token file was not written" test ! -e "$HF_HOME/token"

# ================= words: no transcript in logs =================
# Every verb and server at the default level and at -v, with the transcript words:
# their stderr (and the app's, whose sidecar shares it) must not hold them.
espeak-ng -w "$tmp/speech.wav" "$SPEECH" 2>/dev/null
mkdir -p "$tmp/no-models"
for v in "" -v; do
  n=w${v:-0}
  # No model downloaded: the deterministic pass alone.
  HF_HOME=$tmp/no-models "$bin" $v refine "$SPEECH" >"$tmp/$n-refine-det.out" 2>"$tmp/$n-refine-det.err"
  check "refine, no model$v: the words on stdout" has "$(cat "$tmp/$n-refine-det.out")" "$W1"
  echo "$SPEECH" | "$bin" $v refine --model "$llm" --json - >"$tmp/$n-refine-local.out" 2>"$tmp/$n-refine-local.err"
  "$bin" $v refine --provider openai --base-url "http://127.0.0.1:$stubport/v1" --openai-model echo \
    "$SPEECH" >"$tmp/$n-refine-openai.out" 2>"$tmp/$n-refine-openai.err"
  "$bin" $v transcribe "$tmp/speech.wav" --whisper-model "$whisper" --no-vad --refine --provider openai \
    --base-url "http://127.0.0.1:$stubport/v1" --openai-model echo >"$tmp/$n-transcribe.out" 2>"$tmp/$n-transcribe.err"
  "$bin" $v dictate --input "$tmp/speech.wav" --whisper-model "$whisper" --no-vad --provider openai \
    --base-url "http://127.0.0.1:$stubport/v1" --openai-model echo --json >"$tmp/$n-dictate.out" 2>"$tmp/$n-dictate.err"
  HF_HOME=$tmp/no-models "$bin" $v eval --cases "$tmp/cases.jsonl" --verbose >"$tmp/$n-eval.out" 2>"$tmp/$n-eval.err"
  "$bin" $v history >"$tmp/$n-history.out" 2>"$tmp/$n-history.err"
  # Through the running app (refine finds it), and its API.
  env -u CODICTATE_NO_APP "$bin" $v refine "$SPEECH $W3" >"$tmp/$n-refine-app.out" 2>"$tmp/$n-refine-app.err"
done
check "refine through the app: the words delivered" has "$(cat "$tmp/w0-refine-app.out")" "$W3"
req "$A/api/refine" -H 'Content-Type: application/json' --data "{\"text\":\"$SPEECH\"}"
check "app refine (local model): 200" is "$code" 200
nhist() { curl -s "$A/api/history" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(sum(1 for e in d["entries"] if e["status"] in ("done","failed")))' 2>/dev/null; }
h0=$(nhist)
curl -s -o /dev/null -H 'Content-Type: audio/wav' --data-binary "@$tmp/speech.wav" "$A/api/transcribe"
for _ in $(seq 1 300); do
  [ "$(nhist)" != "$h0" ] && break
  sleep 0.1
done
check "app: the dropped file was transcribed (a new history entry)" test "$(nhist)" != "$h0"
# The sidecar: /generate, a stream and /v1 with the words in the prompt.
req "$S/load" "${AUTH[@]}" -H 'Content-Type: application/json' --data "{\"model_path\":\"$llm\"}"
check "sidecar: the tiny model loads" is "$code" 200
req "$S/generate" "${AUTH[@]}" -H 'Content-Type: application/json' \
  --data "{\"prompt\":\"Clean this: $SPEECH\",\"max_tokens\":8,\"temperature\":0}"
check "sidecar: /generate 200" is "$code" 200
req "$S/generate" "${AUTH[@]}" -H 'Content-Type: application/json' \
  --data "{\"prompt\":\"Clean this: $SPEECH\",\"max_tokens\":8,\"stream\":true}"
req "$S/v1/chat/completions" "${AUTH[@]}" -H 'Content-Type: application/json' \
  --data "{\"messages\":[{\"role\":\"system\",\"content\":\"$W3\"},{\"role\":\"user\",\"content\":\"$SPEECH\"}],\"max_tokens\":8}"
check "sidecar: /v1/chat/completions 200" is "$code" 200
# A prompt too long and a bad body: errors must not quote the text either.
long=$("$PY" -c "print(' '.join(['$W1'] * 6000))")
req "$S/generate" "${AUTH[@]}" -H 'Content-Type: application/json' --data "{\"prompt\":\"$long\"}"
check "sidecar: a too-long prompt is an error" bash -c "[ '$code' -ge 400 ]"
check "sidecar: its error does not quote the prompt" lacks "$body" "$W1"
req "$S/generate" "${AUTH[@]}" -H 'Content-Type: application/json' --data "{\"prompt\":\"$W2 \" \"x\"}"
check "sidecar: a malformed body is 400" is "$code" 400
check "sidecar: its error does not quote the body" lacks "$body" "$W2"
# Every log: the CLI verbs' stderr, the servers' stderr (the app's spawned sidecar
# writes there too), the state dir (the background dictation's log).
logs=("$tmp"/w*.err "$tmp/serve.err" "$tmp/serve.out" "$tmp/sidecar.err" "$tmp/sidecar.out")
mapfile -t -O ${#logs[@]} logs < <(find "$run" -type f 2>/dev/null)
# The tiny random whisper model hears other words: the longest of what it wrote.
heard=$("$PY" -c 'import json,sys,re; d=json.load(open(sys.argv[1])); w=sorted(re.findall(r"[A-Za-z]{6,}", d.get("raw") or ""), key=len); print(w[-1] if w else "")' "$tmp/w0-dictate.out" 2>/dev/null)
check "dictate heard something (a word to look for)" test -n "$heard"
for w in "$W1" "$W2" "$W3" $heard; do
  check "transcript word $w: in no log" nowhere "$w" "${logs[@]}"
done
check "the verbs ran: refine through the sidecar delivered the words" has "$(cat "$tmp/w0-refine-local.out")" "$W1"
check "the verbs ran: transcribe printed a transcript" test -s "$tmp/w0-transcribe.out"
check "the verbs ran: dictate's words are in the history" has "$(cat "$tmp/w0-history.out")" "$heard"
check "data dir is 0700" is "$(mode "$data")" 700
check "history.jsonl is 0600" is "$(mode "$data/history.jsonl")" 600
check "recordings dir is 0700" is "$(mode "$data/recordings")" 700
bad=$(find "$data/recordings" -type f -perm /077 2>/dev/null | head -3)
check "recordings are 0600" is "$bad" ""
finish
