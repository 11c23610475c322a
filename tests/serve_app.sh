# Sourced by tests of `codictate serve` (after sh_test.sh, for kill_pid): a private
# home, the fake Hugging Face hub (tests/fakehub) with a test catalog, and the app.
#   app_home DIR              exports HOME, XDG_*, CODICTATE_DATA_DIR, HF_HOME under DIR
#   app_hub DIR CODICTATE FAKEHUB LLM_GGUF WHISPER_BIN
#                             starts the hub (sets hubpid; exports HF_ENDPOINT,
#                             CODICTATE_CATALOG). The catalog:
#       test_llm_v1      the tiny GGUF, recommended for this machine's RAM tier
#       test_big_v1      6 MB of random bytes with a license link: a download to
#                        watch (throttle it with: app_hub_control '{"rate":N}')
#       test_gated_v1    a gated repository (the hub wants the token hf_test_token)
#       test_bad_v1      bytes that do not match the catalog's sha256
#       test_whisper_v1  the tiny whisper model
#   app_hub_control JSON      POST the fake hub's /_control
#   app_serve DIR CODICTATE [ARGS...]
#                             `codictate serve --port <free> ARGS` (sets servepid and
#                             url, "http://127.0.0.1:PORT/"); returns 1, with its
#                             output on stderr, when GET /api/status does not answer
#   app_stop                  stops the app and the hub
hubpid=
servepid=
url=
app_home() {
  export HOME=$1/home XDG_CONFIG_HOME=$1/home/.config XDG_CACHE_HOME=$1/home/.cache \
    XDG_RUNTIME_DIR=$1/home/run CODICTATE_DATA_DIR=$1/data HF_HOME=$1/hf
  mkdir -p "$HOME" "$XDG_CONFIG_HOME" "$XDG_RUNTIME_DIR"
  chmod 700 "$XDG_RUNTIME_DIR"
  unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HF_HUB_CACHE WAYLAND_DISPLAY DISPLAY OPENAI_API_KEY OPENAI_BASE_URL
  # The CLI finds the app through its port file in the private XDG_RUNTIME_DIR:
  # only this test's app can be found there.
  unset CODICTATE_NO_APP CODICTATE_APP_PORT
}
app_hub() {
  local dir=$1 bin=$2 fakehub=$3 llm=$4 whisper=$5 root=$1/hub tier big port=
  mkdir -p "$root/codictate-test/tiny" "$root/codictate-test/big" "$root/codictate-test/whisper" \
    "$root/codictate-test/gated" "$root/codictate-test/bad"
  head -c 300000 /dev/urandom >"$root/codictate-test/gated/weights.bin"
  head -c 200000 /dev/urandom >"$root/codictate-test/bad/weights.bin"
  cp "$llm" "$root/codictate-test/tiny/model.gguf"
  big=$root/codictate-test/big/model.gguf
  head -c 6000000 /dev/urandom >"$big"
  cp "$whisper" "$root/codictate-test/whisper/ggml-tiny-test.bin"
  tier=$("$bin" version 2>/dev/null | sed -n 's/^ram .* tier \([a-z0-9]*\) .*/\1/p')
  [ -n "$tier" ] || { echo "app_hub: 'codictate version' shows no RAM tier" >&2; return 1; }
  cat >"$dir/catalog.json" <<JSON
{ "version": 1, "models": [
  { "id": "test_llm_v1", "aliases": ["test_llm"], "kind": "llm", "name": "Test LLM",
    "best_for": "tests", "ram_mb": 100, "ram_tier": "$tier",
    "files": [ { "name": "model.gguf", "size": $(stat -c %s "$llm"),
                 "sha256": "$(sha256sum "$llm" | cut -d' ' -f1)" } ],
    "sources": [ { "type": "huggingface", "repo": "codictate-test/tiny", "revision": "main" } ] },
  { "id": "test_big_v1", "kind": "llm", "name": "Big test LLM", "best_for": "watching a download",
    "ram_mb": 200, "license": "test", "license_url": "https://example.com/license",
    "files": [ { "name": "model.gguf", "size": $(stat -c %s "$big"),
                 "sha256": "$(sha256sum "$big" | cut -d' ' -f1)" } ],
    "sources": [ { "type": "huggingface", "repo": "codictate-test/big", "revision": "main" } ] },
  { "id": "test_gated_v1", "kind": "llm", "name": "Gated test LLM", "best_for": "tests", "ram_mb": 1,
    "files": [ { "name": "weights.bin", "size": 300000,
                 "sha256": "$(sha256sum "$root/codictate-test/gated/weights.bin" | cut -d' ' -f1)" } ],
    "sources": [ { "type": "huggingface", "repo": "codictate-test/gated", "revision": "main" } ] },
  { "id": "test_bad_v1", "kind": "llm", "name": "Bad bytes", "best_for": "tests", "ram_mb": 1,
    "files": [ { "name": "weights.bin", "size": 200000,
                 "sha256": "0000000000000000000000000000000000000000000000000000000000000000" } ],
    "sources": [ { "type": "huggingface", "repo": "codictate-test/bad", "revision": "main" } ] },
  { "id": "test_whisper_v1", "aliases": ["test_whisper"], "kind": "whisper", "name": "Test whisper",
    "best_for": "tests", "ram_mb": 100, "languages": ["en"],
    "files": [ { "name": "ggml-tiny-test.bin", "size": $(stat -c %s "$whisper"),
                 "sha256": "$(sha256sum "$whisper" | cut -d' ' -f1)" } ],
    "sources": [ { "type": "huggingface", "repo": "codictate-test/whisper", "revision": "main" } ] }
] }
JSON
  "$fakehub" --root "$root" --gated codictate-test/gated --token hf_test_token \
    --log "$dir/hub.log" >"$dir/hub.out" &
  hubpid=$!
  for _ in $(seq 1 100); do
    port=$(sed -n 's/^FAKEHUB_PORT=//p' "$dir/hub.out")
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "app_hub: the fake hub did not start" >&2; return 1; }
  export HF_ENDPOINT=http://127.0.0.1:$port CODICTATE_CATALOG=$dir/catalog.json
}
app_hub_control() { curl -sf -o /dev/null -X POST --data "$1" "$HF_ENDPOINT/_control"; }
app_serve() {
  local dir=$1 bin=$2 port
  shift 2
  port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$bin" serve --port "$port" "$@" >"$dir/serve.out" 2>"$dir/serve.err" &
  servepid=$!
  url=
  for _ in $(seq 1 300); do
    url=$(sed -n 's|^codictate: serving \(http://127\.0\.0\.1:[0-9]*/\).*|\1|p' "$dir/serve.out" | head -1)
    [ -n "$url" ] && curl -sf -o /dev/null "${url}api/status" && return 0
    kill -0 "$servepid" 2>/dev/null || break
    sleep 0.05
  done
  echo "app_serve: codictate serve did not answer GET /api/status (url '$url')" >&2
  echo "--- serve stdout:" >&2
  cat "$dir/serve.out" >&2
  echo "--- serve stderr:" >&2
  tail -n 50 "$dir/serve.err" >&2
  return 1
}
app_stop() {
  if [ -n "$servepid" ]; then
    kill_pid -TERM "$servepid" 2>/dev/null
    wait "$servepid" 2>/dev/null
  fi
  if [ -n "$hubpid" ]; then
    kill_pid -TERM "$hubpid" 2>/dev/null
    wait "$hubpid" 2>/dev/null
  fi
  servepid= hubpid=
}
