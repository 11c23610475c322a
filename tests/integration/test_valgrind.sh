#!/bin/bash
# valgrind (memcheck) on the CLI verbs over the test inputs (issue 14 §4): no
# invalid read or write, no use of uninitialised values, no definite or indirect
# leak, in the plain build (valgrind cannot run an ASan binary). Each verb runs under
#   valgrind --error-exitcode=99 --leak-check=full --suppressions=tests/valgrind.supp
# and must exit as it does without it. Child processes (the sidecar that refine
# spawns) run natively. Inputs are tiny: the whole test takes about a minute.
#   test_valgrind.sh CODICTATE FAKEHUB TINY_LLM WHISPER_BIN
set -u
bin=$1 fakehub=$2 llm=$3 whisper=$4
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../sh_test.sh"
. "$here/../serve_app.sh"
tmp=$(mktemp -d)
cleanup() {
  app_stop
  rm -rf "$tmp"
}
trap cleanup EXIT
VG=/usr/bin/valgrind
if ! [ -x "$VG" ]; then
  if [ "${CI:-}" = true ]; then
    echo "FAIL: no valgrind (scripts/deps.sh installs it)" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
  echo "SKIP: no valgrind"
  exit 77
fi
app_home "$tmp"
export CODICTATE_NO_APP=1 TZ=UTC
# main() sets OMP_WAIT_POLICY and runs /proc/self/exe again when it is unset; under
# valgrind that is valgrind's own tool binary, which refuses to start that way.
export OMP_WAIT_POLICY=PASSIVE
app_hub "$tmp" "$bin" "$fakehub" "$llm" "$whisper" || { echo "0 passed, 1 failed"; exit 1; }
n=0 skipped=0
# vg WANT_RC NAME ARGS...: the verb under memcheck exits WANT_RC, and memcheck is quiet.
vg() {
  local want=$1 name=$2 rc
  shift 2
  n=$((n + 1))
  "$VG" -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --num-callers=40 \
    --suppressions="$here/../valgrind.supp" --gen-suppressions=all \
    --log-file="$tmp/vg-$n.log" "$bin" "$@" >"$tmp/out-$n" 2>"$tmp/err-$n" </dev/null
  rc=$?
  # ggml is built -march=native: on a CPU with AVX-512 its kernels use instructions
  # valgrind 3.19 cannot run. That verb is then left out, said so, not failed.
  if [ "$rc" = 132 ] && grep -q 'Illegal opcode' "$tmp/vg-$n.log" &&
    grep -A1 'Illegal opcode' "$tmp/vg-$n.log" | grep -q ' at 0x[0-9A-F]*: ggml_'; then
    echo "  note: codictate $1: ggml's native kernels use instructions valgrind cannot run here; left out" >&2
    skipped=$((skipped + 1))
    return 0
  fi
  if [ "$rc" != "$want" ] || [ -s "$tmp/vg-$n.log" ]; then
    echo "  codictate $*: exit $rc (want $want); memcheck:" >&2
    head -c 6000 "$tmp/vg-$n.log" >&2
    echo "  stderr:" >&2
    tail -n 5 "$tmp/err-$n" >&2
    return 1
  fi
}

espeak-ng -w "$tmp/speech.wav" "Um, send the report by Friday." 2>/dev/null
printf '%s\n' '{"id":"v1","category":"disfluency","input":"Um, so I I think we should, uh, go.","reference":"So I think we should go.","source":"t"}' \
  '{"id":"v2","category":"punctuation","input":"hello comma world period new line bye","reference":"Hello, world.\nBye","source":"t"}' \
  >"$tmp/cases.jsonl"

check "version --json" vg 0 version version --json
check "usage error" vg 2 usage refine --no-such-option
check "refine --help" vg 0 help refine --help
# No model downloaded yet: refine is the deterministic pass.
check "refine (deterministic)" vg 0 refine refine "um so the the meeting is at three comma ok"
check "refine --json from stdin" bash -c "echo 'uh new line hello' | $(printf '%q' "$VG") -q --error-exitcode=99 \
  --leak-check=full --errors-for-leak-kinds=definite,indirect --suppressions=$(printf '%q' "$here/../valgrind.supp") \
  $(printf '%q' "$bin") refine --json - >/dev/null 2>&1"
check "eval (deterministic, 2 cases) --json" vg 0 eval eval --cases "$tmp/cases.jsonl" --json
check "models list --json" vg 0 list models list --json
check "models pull (fake hub)" vg 0 pull models pull test_llm_v1
check "models verify" vg 0 verify models verify test_llm_v1
check "models info --json" vg 0 info models info test_llm_v1 --json
check "models pull of a gated model (an error)" vg 1 gated models pull test_gated_v1
check "models verify of a model not downloaded (an error)" vg 1 verify-missing models verify test_whisper_v1
check "refine with the tiny model (sidecar child)" vg 0 refine-local refine --model "$llm" "um hello hello world"
check "transcribe (tiny whisper, 1 thread)" vg 0 transcribe transcribe "$tmp/speech.wav" \
  --whisper-model "$whisper" --no-vad --threads 1
check "dictate --input (tiny whisper, history)" vg 0 dictate dictate --input "$tmp/speech.wav" \
  --whisper-model "$whisper" --no-vad --threads 1 --provider openai --base-url http://127.0.0.1:9/v1 --json
# Their error paths, before any engine runs.
head -c 3000 /dev/urandom >"$tmp/noise.wav"
check "transcribe of a file that is not audio (an error)" vg 1 transcribe-bad transcribe "$tmp/noise.wav" \
  --whisper-model "$whisper" --no-vad
check "transcribe with a broken whisper model (an error)" vg 1 transcribe-badmodel transcribe "$tmp/speech.wav" \
  --whisper-model "$tmp/noise.wav" --no-vad
check "history --json" vg 0 history history --json
check "history -n 1" vg 0 history1 history -n 1
check "status (no app)" vg 1 status status
[ "$skipped" -gt 0 ] && echo "note: $skipped verb(s) left out: valgrind cannot run this CPU's ggml kernels" >&2
finish
