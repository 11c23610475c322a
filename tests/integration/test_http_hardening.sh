#!/bin/bash
# Hostile HTTP clients (issue 14 §0) against both servers on the shared HTTP layer:
# the sidecar (no model needed) and the app (`codictate serve`). Ambiguous or
# malformed requests get one 400 and a closed connection; /health and /api/status
# answer while 500 idle sockets and byte-a-second clients hang on; a half-closed
# client (`nc -N`) gets its generation (tests/integration/http_abuse.py; every
# wait bounded).
#   test_http_hardening.sh CODICTATE TINY_MODEL
set -u
bin=$1 model=$2
here=$(dirname "$0")
. "$here/../sh_test.sh"
. "$here/../serve_app.sh"
tmp=$(mktemp -d)
scpid=
cleanup() {
  [ -n "$scpid" ] && kill_pid -9 "$scpid" 2>/dev/null
  app_stop
  rm -rf "$tmp"
}
trap cleanup EXIT

"$bin" sidecar --port-range 21400-21500 >"$tmp/sidecar.out" 2>"$tmp/sidecar.err" &
scpid=$!
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's/^CODICTATE_SIDECAR_PORT=//p' "$tmp/sidecar.out")
  [ -n "$port" ] && break
  sleep 0.05
done
check "sidecar starts" test -n "$port"
[ -n "$port" ] && check "sidecar: hostile clients" timeout 300 python3 "$here/http_abuse.py" "$port" /health
[ -n "$port" ] && check "sidecar: half-closed clients" \
  timeout 300 python3 "$here/http_abuse.py" "$port" /health --halfclose "$model"
check "sidecar: alive after them" kill -0 "$scpid"

app_home "$tmp"
check "app starts" app_serve "$tmp" "$bin"
if [ -n "$url" ]; then
  aport=${url##*:}
  aport=${aport%/}
  check "app: hostile clients" timeout 300 python3 "$here/http_abuse.py" "$aport" /api/status
  check "app: alive after them" kill -0 "$servepid"
fi
finish
