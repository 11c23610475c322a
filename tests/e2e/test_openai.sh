#!/bin/bash
# Runs the official OpenAI Node client (tests/e2e/openai) against a real sidecar
# serving the tiny model. The client is installed from the pinned lockfile with
# `npm ci` into WORKDIR.
#   test_openai.sh CODICTATE MODEL WORKDIR
set -u
bin=$1 model=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../sh_test.sh"
mkdir -p "$work"
cp "$here/openai/package.json" "$here/openai/package-lock.json" "$here/openai/test.mjs" "$work/"
if ! (cd "$work" && npm ci --silent --no-audit --no-fund >/dev/null 2>&1); then
  echo "npm ci failed (is the npm registry reachable?)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
out=$(mktemp)
# The token is the client's apiKey; test.mjs also tries a wrong one.
CODICTATE_SIDECAR_TOKEN=not-needed "$bin" sidecar --port-range 11400-11500 --model "$model" >"$out" 2>/dev/null &
pid=$!
trap 'kill_pid -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 1 100); do
  port=$(sed -n '1s/^CODICTATE_SIDECAR_PORT=//p' "$out")
  [ -n "$port" ] && curl -s -H 'Authorization: Bearer not-needed' "http://127.0.0.1:$port/status" | grep -q '"model_loaded":true' && break
  sleep 0.1
done
node "$work/test.mjs" "http://127.0.0.1:$port/v1"
