#!/bin/bash
# Faults (issue 14 §3), each with the user's words or files checked after it:
#   - a model larger than RAM (a sparse 4 TiB GGUF): refused before loading, with
#     the numbers; a model truncated after download: `models verify` and the load
#     catch it, the refine delivers the deterministic text, `models pull` repairs it
#   - the disk full mid-download: a clear error, the partial kept, the next pull
#     fetches only the missing bytes, the other model and files undamaged
#   - the network flapping (the fake hub drops the connection 4 times): resumed
#     every time, not one byte fetched twice
#   - the disk full while saving a recording and the history: the text delivered,
#     the user told that the recording and the history are not kept, and why
#   - the app on the small disk: its download fails with the reason when the disk
#     fills, the partial kept and resumed; a dictation on the full disk delivers its
#     text with a notice that the recording is not kept, and why
#   - power loss: history.jsonl cut at every 11th byte of its last line reads back
#     as the file without that line (or the whole file); a dictation after a cut is
#     kept whole, the cut one as its earlier line says; a truncated settings.json: the app starts with the defaults
#     and says so
#   - the sidecar SIGKILLed mid-generation and mid-stream (the app's refine and a
#     dictation's streamed refine): the deterministic text with the reason, the next
#     request restarts it (tests/integration/faults.py)
# The small disk is a tmpfs in a private mount namespace (unshare -m as root, else a
# user namespace); where neither can be made, RLIMIT_FSIZE stands in for it (the
# error is then EFBIG, "File too large"). Never skipped.
#   test_faults.sh CODICTATE FAKEHUB TINY_MODEL WHISPER_BIN
set -u
bin=$1 fakehub=$2 model=$3 whisper=$4
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${CDT_FAULTS_DISK:-}" ]; then
  probe=$(mktemp -d)
  if unshare -m --propagation private sh -c "mount -t tmpfs -o size=1m tmpfs '$probe'" 2>/dev/null; then
    rmdir "$probe"
    CDT_FAULTS_DISK=tmpfs exec unshare -m --propagation private "$0" "$@"
  elif unshare -Urm sh -c "mount -t tmpfs -o size=1m tmpfs '$probe'" 2>/dev/null; then
    rmdir "$probe"
    CDT_FAULTS_DISK=tmpfs exec unshare -Urm "$0" "$@"
  fi
  rmdir "$probe"
  export CDT_FAULTS_DISK=rlimit
fi
. "$here/../sh_test.sh"
. "$here/../serve_app.sh"
tmp=$(mktemp -d)
scpid= pullpid=
cleanup() {
  [ -n "$scpid" ] && kill_pid -9 "$scpid" 2>/dev/null
  [ -n "$pullpid" ] && kill_pid -9 "$pullpid" 2>/dev/null
  app_stop
  wait 2>/dev/null
  [ "$CDT_FAULTS_DISK" = tmpfs ] && umount "$tmp/small" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
has() { case "$1" in *"$2"*) return 0 ;; esac; echo "  '$1' lacks '$2'" >&2; return 1; }
is() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }
size() { stat -c %s "$1" 2>/dev/null || echo -1; }
j() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>&1; }
stat_of() { curl -s "$HF_ENDPOINT/_stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
# fsize BYTES CMD...: CMD with a soft RLIMIT_FSIZE (SIGXFSZ ignored: writes fail with
# EFBIG). In the background, run "${fsize_cmd[@]}" BYTES CMD... & itself (as
# test_security.sh does with as_other_cmd): $! is then CMD's own pid (python execs
# it), which cleanup can kill; a backgrounded function's $! is a subshell's.
fsize_cmd=(python3 -c 'import os, resource, signal, sys
n = int(sys.argv[1]); signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (n, resource.getrlimit(resource.RLIMIT_FSIZE)[1])); os.execvp(sys.argv[2], sys.argv[2:])')
fsize() { "${fsize_cmd[@]}" "$@"; }
# hub_quiet: waits until the hub has stopped sending (a dropped response's thread
# may still count bytes a moment after its client is gone).
hub_quiet() {
  local a b
  a=$(stat_of body_bytes)
  for _ in $(seq 1 50); do
    sleep 0.2
    b=$(stat_of body_bytes)
    [ "$a" = "$b" ] && return 0
    a=$b
  done
}
# py_count CMD...: runs a faults.py step, adds its "N passed, N failed" to ours.
py_count() {
  local out p f
  out=$("$@" | tail -n 1)
  p=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' <<<"$out")
  f=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' <<<"$out")
  [ -n "$p" ] || { p=0 f=1; echo "FAIL $3 $4: ended without its count" >&2; }
  passed=$((passed + p)) failed=$((failed + f))
}
# fill: the small disk full (a file that takes what is left).
fill() { dd if=/dev/zero of="$small/filler" bs=64k 2>/dev/null; sync; }
echo "disk full by: $CDT_FAULTS_DISK" >&2

app_home "$tmp"
check "fake hub" app_hub "$tmp" "$bin" "$fakehub" "$model" "$whisper"
for id in test_llm_v1 test_whisper_v1; do
  check "pull $id" "$bin" models pull "$id"
done
if command -v espeak-ng >/dev/null; then
  espeak-ng -w "$tmp/speech.wav" "Hello there, this is a dictation test. Please call me back tomorrow." 2>/dev/null
else
  python3 -c 'import math, struct, wave
w = wave.open("'"$tmp"'/speech.wav", "wb"); w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 9.0))) for i in range(48000)))'
fi

# --- a model larger than RAM: refused before loading, with the numbers ---
python3 "$here/faults.py" biggguf "$tmp/huge.gguf" $((1 << 42))
"$bin" sidecar --port-range 21700-21800 >"$tmp/sidecar.out" 2>"$tmp/sidecar.err" &
scpid=$!
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's/^CODICTATE_SIDECAR_PORT=//p' "$tmp/sidecar.out")
  [ -n "$port" ] && break
  sleep 0.05
done
t0=$(date +%s%N)
out=$(curl -s -w ' %{http_code}' "127.0.0.1:$port/load" -d "{\"model_path\":\"$tmp/huge.gguf\"}")
ms=$((($(date +%s%N) - t0) / 1000000))
check "larger than RAM: 500" has "$out" " 500"
check "larger than RAM: says so with the numbers" has "$out" "larger than this machine's memory: its weights need 4.4 TB, the machine has "
echo "  $out ($ms ms)" >&2
check "larger than RAM: refused at once (under 5 s)" [ "$ms" -lt 5000 ]
check "larger than RAM: the sidecar serves on" is "$(curl -s "127.0.0.1:$port/health")" '{"status":"ok"}'
kill_pid -TERM "$scpid"
wait "$scpid" 2>/dev/null
scpid=

# --- a model truncated after download ---
blob=$(readlink -f "$("$bin" models info test_llm_v1 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["path"])')")
cp "$blob" "$tmp/blob.bak"
truncate -s $(($(size "$blob") / 2)) "$blob"
"$bin" models verify test_llm_v1 >"$tmp/verify.out" 2>"$tmp/verify.err"
check "truncated model: verify fails" is "$?" 1
check "truncated model: verify says why" has "$(cat "$tmp/verify.out" "$tmp/verify.err")" "has $(size "$blob") bytes, expected $(size "$tmp/blob.bak")"
"$bin" models list --json >"$tmp/list.json"
check "truncated model: models list says damaged" is "$(j "$tmp/list.json" '[m["state"] for m in d if m["id"] == "test_llm_v1"][0]')" damaged
"$bin" refine --model test_llm_v1 --json "um so the model file was cut in half" >"$tmp/r.json" 2>"$tmp/r.err"
check "truncated model: refine exits 0" is "$?" 0
check "truncated model: the deterministic text" is "$(j "$tmp/r.json" 'd["refined"]')" "So the model file was cut in half"
check "truncated model: the reason says it is damaged" has "$(j "$tmp/r.json" 'd["fallback_reason"]')" "model test_llm_v1 is damaged on disk"
check "truncated model: ... and names the fix" has "$(j "$tmp/r.json" 'd["fallback_reason"]')" "codictate models pull test_llm_v1 fetches it again"
# The file itself given to the sidecar: its load refuses it.
"$bin" refine --model "$blob" --json "um so the model file was cut in half" >"$tmp/r.json" 2>"$tmp/r.err"
check "truncated file: refine exits 0" is "$?" 0
check "truncated file: the deterministic text" is "$(j "$tmp/r.json" 'd["refined"]')" "So the model file was cut in half"
check "truncated file: the load's reason" has "$(j "$tmp/r.json" 'd["fallback_reason"]')" "truncated"
check "truncated model: pull repairs it" "$bin" models pull test_llm_v1
check "truncated model: verify passes again" "$bin" models verify test_llm_v1

# --- the disk full mid-download ---
small=$tmp/small
mkdir -p "$small"
[ "$CDT_FAULTS_DISK" = tmpfs ] && mount -t tmpfs -o size=140m tmpfs "$small"
sh_hf=$small/hf
check "small disk: another model in its cache" env HF_HOME="$sh_hf" "$bin" models pull test_llm_v1
mkdir -p "$small/data"
head -c 100000 /dev/urandom >"$small/data/other-file"
other_sha=$(sha256sum <"$small/data/other-file")
app_hub_control '{"reset":true,"rate":1000000}'
if [ "$CDT_FAULTS_DISK" = tmpfs ]; then
  HF_HOME=$sh_hf "$bin" models pull test_big_v1 >"$tmp/pull.out" 2>"$tmp/pull.err" &
else
  HF_HOME=$sh_hf "${fsize_cmd[@]}" 2000000 "$bin" models pull test_big_v1 \
    >"$tmp/pull.out" 2>"$tmp/pull.err" &
fi
pullpid=$!
part=
for _ in $(seq 1 300); do
  part=$(ls "$sh_hf"/hub/models--codictate-test--big/blobs/*.incomplete 2>/dev/null | head -1)
  [ -n "$part" ] && [ "$(size "$part")" -ge 1500000 ] && break
  sleep 0.1
done
check "disk full: the download was under way" [ -n "$part" ]
[ "$CDT_FAULTS_DISK" = tmpfs ] && fill
t0=$(date +%s)
wait "$pullpid"
rc=$? pullpid=
echo "  pull after the disk filled: exit $rc in $(($(date +%s) - t0)) s: $(tail -n 2 "$tmp/pull.err" | tr '\r' '\n' | tail -n 1)" >&2
check "disk full: the pull fails" is "$rc" 1
if [ "$CDT_FAULTS_DISK" = tmpfs ]; then
  check "disk full: says the disk is full" has "$(cat "$tmp/pull.err")" "No space left on device"
else
  check "disk full (RLIMIT_FSIZE): says the write failed" has "$(cat "$tmp/pull.err")" "File too large"
fi
check "disk full: says where" has "$(cat "$tmp/pull.err")" "$sh_hf"
check "disk full: the partial is kept" [ "$(size "$part")" -gt 0 ]
have=$(size "$part")
rm -f "$small/filler"
hub_quiet
app_hub_control '{"reset":true}'
check "disk full: the next pull completes" env HF_HOME="$sh_hf" "$bin" models pull test_big_v1
check "disk full: ... fetching only the missing bytes" is "$(stat_of body_bytes)" $((6000000 - have))
check "disk full: ... from where the partial ended" is "$(stat_of last_range)" "bytes=$have-"
check "disk full: the big model verifies" env HF_HOME="$sh_hf" "$bin" models verify test_big_v1
check "disk full: the other model is undamaged" env HF_HOME="$sh_hf" "$bin" models verify test_llm_v1
check "disk full: other files are undamaged" is "$(sha256sum <"$small/data/other-file")" "$other_sha"

# --- the network flapping: 4 dropped connections, each resumed ---
app_hub_control '{"reset":true,"drop_after":1200000,"times":4}'
HF_HOME=$tmp/flap "$bin" models pull test_big_v1 >"$tmp/flap.out" 2>"$tmp/flap.err"
check "flapping: the pull completes" is "$?" 0
check "flapping: dropped 4 times, resumed 4 times" is "$(stat_of cdn_gets)/$(stat_of range_gets)" "5/4"
check "flapping: not one byte fetched twice" is "$(stat_of body_bytes)" 6000000
check "flapping: the file verifies" env HF_HOME="$tmp/flap" "$bin" models verify test_big_v1
app_hub_control '{"reset":true}'

# --- the disk full while saving a recording and the history ---
rm -rf "$sh_hf" # room for the data only
mkdir -p "$small/rec"
if [ "$CDT_FAULTS_DISK" = tmpfs ]; then
  fill
  CODICTATE_DATA_DIR=$small/rec "$bin" dictate --input "$tmp/speech.wav" --json --no-vad \
    >"$tmp/d.json" 2>"$tmp/d.err"
else
  CODICTATE_DATA_DIR=$small/rec fsize 20000 "$bin" dictate --input "$tmp/speech.wav" --json --no-vad \
    >"$tmp/d.json" 2>"$tmp/d.err"
fi
rc=$?
echo "  dictate on a full disk: exit $rc; stderr: $(grep -v '^\s*$' "$tmp/d.err" | head -n 5)" >&2
check "full disk: the dictation delivers its text" is "$rc/$(j "$tmp/d.json" 'bool(d["raw"])')" "0/True"
check "full disk: the user is told the recording is not kept" has "$(cat "$tmp/d.err")" "the recording cannot be saved"
check "full disk: each warning is printed once" is "$(grep -c 'the recording cannot be saved' "$tmp/d.err")" 1
if [ "$CDT_FAULTS_DISK" = tmpfs ]; then
  check "full disk: ... and why" has "$(cat "$tmp/d.err")" "No space left on device"
  check "full disk: told the history is not written" has "$(cat "$tmp/d.err")" "could not write the history"
else # the history file stays under the limit
  check "full disk (RLIMIT_FSIZE): ... and why" has "$(cat "$tmp/d.err")" "File too large"
fi
rm -f "$small/filler"

# --- power loss: history.jsonl and settings.json cut mid-write ---
export CODICTATE_DATA_DIR=$tmp/plh
for _ in 1 2; do
  "$bin" dictate --input "$tmp/speech.wav" --no-vad >/dev/null 2>&1
done
hist=$CODICTATE_DATA_DIR/history.jsonl
check "power loss: two dictations in the history" is "$("$bin" history --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 2
cp "$hist" "$tmp/h.full"
head -n -1 "$tmp/h.full" >"$tmp/h.before"
full=$(size "$tmp/h.full") before=$(size "$tmp/h.before")
cp "$tmp/h.full" "$hist"
"$bin" history --json >"$tmp/list.full"
cp "$tmp/h.before" "$hist"
"$bin" history --json >"$tmp/list.before"
bad=0 cuts=0
for ((cut = before; cut < full; cut += 11)); do
  head -c "$cut" "$tmp/h.full" >"$hist"
  cuts=$((cuts + 1))
  if ! "$bin" history --json >"$tmp/list.cut" 2>/dev/null ||
    ! { cmp -s "$tmp/list.cut" "$tmp/list.before" || cmp -s "$tmp/list.cut" "$tmp/list.full"; }; then
    bad=$((bad + 1))
    [ "$bad" -eq 1 ] && echo "  cut at $cut of $full: $(head -c 300 "$tmp/list.cut")" >&2
  fi
done
check "power loss: $cuts cuts of the last line read back without it" is "$bad" 0
head -c $((before + (full - before) / 2)) "$tmp/h.full" >"$hist"
"$bin" dictate --input "$tmp/speech.wav" --no-vad >/dev/null 2>&1
check "power loss: a dictation after a cut is kept whole" is \
  "$("$bin" history --json | python3 -c 'import json,sys; e=json.load(sys.stdin); print(len(e), e[0]["status"], e[1]["status"])')" "3 done recorded"
unset CODICTATE_DATA_DIR
export CODICTATE_DATA_DIR=$tmp/data

# --- the app: the sidecar SIGKILLed mid-generation and mid-stream ---
check "app starts" app_serve "$tmp" "$bin"
if [ -n "$url" ]; then
  py_count timeout 400 python3 "$here/faults.py" sigkill "$url" "$bin" "$tmp/speech.wav"
  check "settings: saved" is "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    --data '{"idle_timeout_s": 600, "output": "none"}' "${url}api/settings")" 200
fi
kill_pid -TERM "$servepid"
wait "$servepid" 2>/dev/null
servepid=
cfg=$XDG_CONFIG_HOME/codictate/settings.json
check "settings: the file" [ -s "$cfg" ]
truncate -s $(($(size "$cfg") / 2)) "$cfg"
check "settings cut: the app starts" app_serve "$tmp" "$bin"
check "settings cut: it says the file is broken" has "$(cat "$tmp/serve.err")" "settings.json"
check "settings cut: the defaults" is "$(curl -s "${url}api/settings" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["idle_timeout_s"])')" 120
check "settings cut: saved again, whole" is "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
  --data '{"idle_timeout_s": 300}' "${url}api/settings")/$(j "$cfg" 'd["idle_timeout_s"]')" "200/300"

# --- the app on the small disk: a download and a dictation when it fills ---
kill_pid -TERM "$servepid"
wait "$servepid" 2>/dev/null
servepid=
rm -rf "${small:?}"/*
export HF_HOME=$small/hf CODICTATE_DATA_DIR=$small/appdata
for id in test_llm_v1 test_whisper_v1; do
  check "small disk: pull $id for the app" "$bin" models pull "$id"
done
if [ "$CDT_FAULTS_DISK" = tmpfs ]; then
  check "small disk: the app starts" app_serve "$tmp" "$bin"
else
  printf '#!/bin/sh\nexec python3 -c %s 3000000 %s "$@"\n' \
    "'import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.getrlimit(resource.RLIMIT_FSIZE)[1])); os.execv(sys.argv[2], sys.argv[2:])'" \
    "$bin" >"$tmp/codictate-fsize"
  chmod +x "$tmp/codictate-fsize"
  check "small disk (RLIMIT_FSIZE): the app starts" app_serve "$tmp" "$tmp/codictate-fsize"
fi
[ -n "$url" ] && py_count timeout 300 python3 "$here/faults.py" appdisk "$url" "$tmp/speech.wav" "$small" "$CDT_FAULTS_DISK"
finish
