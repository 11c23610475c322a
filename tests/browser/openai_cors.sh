#!/bin/bash
# CORS on the sidecar's /v1 from a real browser (issue 17 §2): Debian's chromium,
# headless, driven by playwright-core (tests/browser/openai_cors.test.mjs), against
# `codictate sidecar` with a token and the tiny model. A page on a loopback origin
# calls /v1 (preflight, token, streamed and plain answers); the same page on a
# foreign origin (mapped to 127.0.0.1 by chromium's resolver) is refused.
# Prints "N passed, N failed". Exit 77 (skipped) only where chromium cannot run,
# and never with CI=true (then it fails).
#   openai_cors.sh CODICTATE LLM_GGUF
set -u
bin=$1 llm=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../sh_test.sh"
. "$here/common.sh"
tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill_pid -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

browser_modules

token=cors-test-token
CODICTATE_SIDECAR_TOKEN=$token "$bin" sidecar --port-range 11400-11500 --model "$llm" \
  >"$tmp/out" 2>"$tmp/err" &
pid=$!
port=
for _ in $(seq 1 200); do
  port=$(sed -n '1s/^CODICTATE_SIDECAR_PORT=//p' "$tmp/out")
  [ -n "$port" ] && curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/status" |
    grep -q '"model_loaded":true' && break
  sleep 0.1
done
[ -n "$port" ] || fail "the sidecar did not start"

SIDECAR_URL=http://127.0.0.1:$port TOKEN=$token NODE_MODULES_DIR=$modules \
  node "$here/openai_cors.test.mjs"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
  echo "--- sidecar stderr (last 40 lines):" >&2
  tail -n 40 "$tmp/err" >&2
fi
[ $rc -eq 77 ] && skip "chromium could not start here"
exit $rc
