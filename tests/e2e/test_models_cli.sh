#!/bin/bash
# `codictate models` from the outside against the fake hub (tests/fakehub) with a
# test catalog: list, pull into the Hugging Face cache layout, reuse, verify, rm,
# Ctrl-C then resume (only the missing bytes), a file damaged after its download
# (damaged; pull repairs it), gated, insufficient disk, wrong bytes.
#   test_models_cli.sh CODICTATE FAKEHUB MODEL_FILE
set -u
bin=$1 fakehub=$2 model=$3
. "$(dirname "$0")/../sh_test.sh"
tmp=$(mktemp -d)
hubpid=
cleanup() {
  [ -n "$hubpid" ] && kill_pid -TERM "$hubpid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

root=$tmp/hub
mkdir -p "$root/codictate-test/tiny" "$root/codictate-test/gated" "$root/codictate-test/bad"
cp "$model" "$root/codictate-test/tiny/model.gguf"
head -c 300000 /dev/urandom >"$root/codictate-test/gated/weights.bin"
head -c 200000 /dev/urandom >"$root/codictate-test/bad/weights.bin"
size=$(stat -c %s "$model")
sha=$(sha256sum "$model" | cut -d' ' -f1)
gsize=$(stat -c %s "$root/codictate-test/gated/weights.bin")
gsha=$(sha256sum "$root/codictate-test/gated/weights.bin" | cut -d' ' -f1)
cat >"$tmp/catalog.json" <<JSON
{ "version": 1, "models": [
  { "id": "test_llm_v1", "aliases": ["test_llm"], "kind": "llm", "name": "Test LLM",
    "best_for": "tests", "ram_mb": 100, "ram_tier": "le8",
    "files": [ { "name": "model.gguf", "size": $size, "sha256": "$sha" } ],
    "sources": [ { "type": "huggingface", "repo": "codictate-test/tiny", "revision": "main" } ] },
  { "id": "test_gated_v1", "kind": "llm", "name": "Gated", "best_for": "tests", "ram_mb": 1,
    "files": [ { "name": "weights.bin", "size": $gsize, "sha256": "$gsha" } ],
    "sources": [ { "type": "huggingface", "repo": "codictate-test/gated", "revision": "main" } ] },
  { "id": "test_huge_v1", "kind": "llm", "name": "Huge", "best_for": "tests", "ram_mb": 1,
    "files": [ { "name": "model.gguf", "size": 900000000000000, "sha256": "$sha" } ],
    "sources": [ { "type": "huggingface", "repo": "codictate-test/tiny", "revision": "main" } ] },
  { "id": "test_bad_v1", "kind": "llm", "name": "Bad bytes", "best_for": "tests", "ram_mb": 1,
    "files": [ { "name": "weights.bin", "size": 200000,
                 "sha256": "0000000000000000000000000000000000000000000000000000000000000000" } ],
    "sources": [ { "type": "huggingface", "repo": "codictate-test/bad", "revision": "main" } ] }
] }
JSON

"$fakehub" --root "$root" --gated codictate-test/gated --token s3cret --log "$tmp/hub.log" >"$tmp/hub.out" &
hubpid=$!
for _ in $(seq 1 100); do
  port=$(sed -n 's/^FAKEHUB_PORT=//p' "$tmp/hub.out")
  [ -n "$port" ] && break
  sleep 0.05
done
export HF_ENDPOINT=http://127.0.0.1:$port HF_HOME=$tmp/hf CODICTATE_CATALOG=$tmp/catalog.json
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HF_HUB_CACHE
served() { curl -s "$HF_ENDPOINT/_stats" | sed -n 's/.*"body_bytes":\([0-9]*\).*/\1/p'; }
control() { curl -s -o /dev/null -X POST --data "$1" "$HF_ENDPOINT/_control"; }
state() { "$bin" models list --json | tr -d ' \n\t' | grep -o "\"id\":\"$1\"[^}]*" | sed -n 's/.*"state":"\([a-z_]*\)".*/\1/p'; }
has() { case "$1" in *"$2"*) return 0 ;; esac; echo "  '$1' lacks '$2'" >&2; return 1; }
is() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }

check "list: not downloaded" is "$(state test_llm_v1)" not_downloaded
check "list: one line per model" is "$("$bin" models list | grep -c '^[* ] test_')" 4
out=$("$bin" models pull test_llm 2>"$tmp/pull.err")
check "pull: exit 0" is $? 0
snap=$(ls "$HF_HOME/hub/models--codictate-test--tiny/snapshots/"*/model.gguf 2>/dev/null)
check "pull: prints the snapshot path" is "$out" "$snap"
check "pull: snapshot links to blobs/<sha256>" is "$(readlink -f "$snap")" "$HF_HOME/hub/models--codictate-test--tiny/blobs/$sha"
check "pull: refs/main written" test -s "$HF_HOME/hub/models--codictate-test--tiny/refs/main"
check "pull: same bytes" cmp -s "$snap" "$model"
check "list: downloaded" is "$(state test_llm_v1)" downloaded
before=$(served)
"$bin" models pull test_llm_v1 >/dev/null 2>&1
check "pull again: nothing downloaded" is "$(served)" "$before"
check "verify: ok" eval '"$bin" models verify test_llm >/dev/null 2>&1'
check "info: shows the path" eval '"$bin" models info test_llm | grep -q "^path .*model.gguf"'
check "rm: exit 0" eval '"$bin" models rm test_llm >/dev/null 2>&1'
check "rm: files gone" test ! -e "$HF_HOME/hub/models--codictate-test--tiny/blobs/$sha"
check "list after rm: not downloaded" is "$(state test_llm_v1)" not_downloaded

# Ctrl-C keeps a resumable partial; the next pull fetches only what is missing.
control '{"reset":true,"rate":4000000}'
"$bin" models pull test_llm >/dev/null 2>"$tmp/cancel.err" &
pullpid=$!
sleep 1.5
kill_pid -INT "$pullpid"
wait "$pullpid"
check "Ctrl-C: exit 1" is $? 1
check "Ctrl-C: says resumable" has "$(cat "$tmp/cancel.err")" "partial download is kept"
partial=$(stat -c %s "$HF_HOME/hub/models--codictate-test--tiny/blobs/$sha.incomplete" 2>/dev/null || echo 0)
check "Ctrl-C: a partial is on disk" eval "[ $partial -gt 0 ] && [ $partial -lt $size ]"
check "list: partial shown" eval '"$bin" models list | grep test_llm_v1 | grep -q "resumable"'
sleep 0.5 # let the hub's throttled sender notice the closed connection
control '{"reset":true}'
"$bin" models pull test_llm >/dev/null 2>&1
check "resume: completes" is $? 0
check "resume: asked for the rest" has "$(curl -s "$HF_ENDPOINT/_stats")" "\"last_range\":\"bytes=$partial-"
check "resume: only the missing bytes were served" is "$(served)" "$((size - partial))"
check "resume: verified bytes" cmp -s "$(ls "$HF_HOME/hub/models--codictate-test--tiny/snapshots/"*/model.gguf)" "$model"

# Damaged after its download: cut short (power loss), longer, or other bytes of the
# same size. `list` says damaged (not "not downloaded") and how to repair it, verify
# says why with the sizes, and pull fetches it again.
blob=$(readlink -f "$(ls "$HF_HOME/hub/models--codictate-test--tiny/snapshots/"*/model.gguf)")
truncate -s $((size / 2)) "$blob"
check "cut short: list --json says damaged" is "$(state test_llm_v1)" damaged
check "cut short: --json detail has the sizes" has "$("$bin" models list --json | tr -d '\n')" "model.gguf has $((size / 2)) bytes, expected $size"
line=$("$bin" models list | grep test_llm_v1)
check "cut short: list says damaged and the sizes" has "$line" "damaged - model.gguf has $((size / 2)) bytes, expected $size"
check "cut short: list says how to repair" has "$line" "codictate models pull test_llm_v1"
check "cut short: info has no path" eval '! "$bin" models info test_llm | grep -q "^path"'
err=$("$bin" models verify test_llm 2>&1)
check "cut short: verify exit 1" eval '! "$bin" models verify test_llm >/dev/null 2>&1'
check "cut short: verify says damaged with the sizes" has "$err" "test_llm_v1 is damaged: model.gguf has $((size / 2)) bytes, expected $size"
control '{"reset":true}'
"$bin" models pull test_llm >/dev/null 2>"$tmp/repair.err"
check "cut short: pull repairs it" is $? 0
check "cut short: pull says it repairs" has "$(cat "$tmp/repair.err")" "test_llm_v1 is damaged on disk: its damaged file is deleted and downloaded again"
check "cut short: downloaded again" is "$(state test_llm_v1)" downloaded
check "cut short: the catalog's bytes" cmp -s "$(ls "$HF_HOME/hub/models--codictate-test--tiny/snapshots/"*/model.gguf)" "$model"
blob=$(readlink -f "$(ls "$HF_HOME/hub/models--codictate-test--tiny/snapshots/"*/model.gguf)")
head -c 4096 /dev/zero >>"$blob"
check "too long: list --json says damaged" is "$(state test_llm_v1)" damaged
check "too long: pull repairs it" eval '"$bin" models pull test_llm >/dev/null 2>&1'
check "too long: downloaded again" is "$(state test_llm_v1)" downloaded
blob=$(readlink -f "$(ls "$HF_HOME/hub/models--codictate-test--tiny/snapshots/"*/model.gguf)")
printf 'XXXXXXXX' | dd of="$blob" bs=1 seek=1000 conv=notrunc 2>/dev/null
err=$("$bin" models verify test_llm 2>&1)
check "other bytes: verify exit 1" eval '! "$bin" models verify test_llm >/dev/null 2>&1'
check "other bytes: verify says damaged (sha256)" has "$err" "test_llm_v1 is damaged: model.gguf: checksum mismatch"
check "other bytes: list says damaged after the verify (a later run)" is "$(state test_llm_v1)" damaged
check "other bytes: list says why" has "$("$bin" models list | grep test_llm_v1)" "damaged - model.gguf: checksum mismatch"
check "other bytes: pull repairs it" eval '"$bin" models pull test_llm >/dev/null 2>&1'
check "other bytes: the catalog's bytes" cmp -s "$(ls "$HF_HOME/hub/models--codictate-test--tiny/snapshots/"*/model.gguf)" "$model"
check "other bytes: verify ok" eval '"$bin" models verify test_llm >/dev/null 2>&1'
# rm of a damaged model says what it frees (the damaged file's bytes, not 0 B).
blob=$(readlink -f "$(ls "$HF_HOME/hub/models--codictate-test--tiny/snapshots/"*/model.gguf)")
truncate -s $((size / 2)) "$blob"
out=$("$bin" models rm test_llm 2>&1)
check "damaged rm: exit 0" is $? 0
check "damaged rm: says what it frees" eval 'echo "$out" | grep -q "removed test_llm_v1 (.* freed)" && ! echo "$out" | grep -q "(0 B freed)"'
check "damaged rm: the file is gone" eval '[ ! -e "$blob" ]'
check "damaged rm: not downloaded" is "$(state test_llm_v1)" not_downloaded
check "damaged rm: pull again" eval '"$bin" models pull test_llm >/dev/null 2>&1'

# Gated: a clear message without the token; works with it.
err=$("$bin" models pull test_gated_v1 2>&1 >/dev/null)
check "gated: exit 1" is $? 1
check "gated: says how" has "$err" "is gated: accept its license on Hugging Face and set HF_TOKEN"
check "gated: nothing kept" is "$(state test_gated_v1)" not_downloaded
check "gated: works with HF_TOKEN" eval 'HF_TOKEN=s3cret "$bin" models pull test_gated_v1 >/dev/null 2>&1'

# Insufficient disk is refused before any byte.
control '{"reset":true}'
err=$("$bin" models pull test_huge_v1 2>&1 >/dev/null)
check "disk: exit 1" is $? 1
check "disk: message" has "$err" "Insufficient disk space: need"
check "disk: no byte served" is "$(served)" 0

# Wrong bytes: download_failed, nothing left behind.
err=$("$bin" models pull test_bad_v1 2>&1 >/dev/null)
check "wrong bytes: exit 1" is $? 1
check "wrong bytes: says checksum" has "$err" "checksum mismatch"
check "wrong bytes: no file left" eval '[ -z "$(ls "$HF_HOME/hub/models--codictate-test--bad/blobs/" 2>/dev/null)" ]'
check "wrong bytes: state not_downloaded" is "$(state test_bad_v1)" not_downloaded

check "unknown model: exit 1" eval '! "$bin" models pull nope >/dev/null 2>&1'
check "usage: exit 2" eval '"$bin" models frob >/dev/null 2>&1; [ $? -eq 2 ]'
check "usage: pull without id exits 2" eval '"$bin" models pull >/dev/null 2>&1; [ $? -eq 2 ]'
finish
