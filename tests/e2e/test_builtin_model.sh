#!/bin/bash
# The built-in refiner (catalog source "builtin", tools/train) from the outside: listed
# as downloaded with nothing downloaded, verified against the catalog, neither pulled
# nor removed, the default LLM when no other is downloaded, hidden by
# CODICTATE_NO_BUILTIN_MODEL=1, and refused when its file is missing or damaged. It
# refines for real, offline: the model's output is delivered (the guards pass it) for
# at least some of a few dictations. No assertion on the exact words: kernels round
# differently across CPUs.
#   test_builtin_model.sh CODICTATE CATALOG_JSON
set -u
bin=$1
catalog=$2
. "$(dirname "$0")/../sh_test.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HOME=$tmp/home XDG_CACHE_HOME=$tmp/cache XDG_CONFIG_HOME=$tmp/config \
  XDG_DATA_HOME=$tmp/data HF_HOME=$tmp/hf XDG_RUNTIME_DIR=$tmp/run
mkdir -p "$HOME" "$XDG_RUNTIME_DIR"
unset CODICTATE_NO_BUILTIN_MODEL CODICTATE_SHARE_DIR HF_HUB_CACHE LLAMA_CACHE
id=codictate_refiner_v1
file=codictate-refiner-v1-q8_0-embd-q4_0.gguf

json_field() { # json_field FILE EXPR: a Python expression over d
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}

"$bin" models list --json >"$tmp/list.json"
check "listed as downloaded with nothing downloaded" test "$(json_field "$tmp/list.json" \
  "[m['state'] for m in d if m['id'] == '$id'][0]")" = downloaded
check "verify: the shipped file matches the catalog" "$bin" models verify builtin
"$bin" models pull builtin >"$tmp/pull.out" 2>&1
check "pull: nothing to download" test $? -eq 0
"$bin" models rm builtin >"$tmp/rm.out" 2>&1
rc=$?
check "rm is refused" test "$rc" -ne 0
check "rm says why" grep -q "built into codictate and cannot be removed" "$tmp/rm.out"

# Refines for real: the default model when no other LLM is downloaded.
delivered=0
for text in "um so i think we should uh meet at three no wait at four period" \
  "the the report is due on friday period can you send it to me question mark" \
  "our budget for twenty twenty five is six hundred thousand dollars" \
  "i went to the store and bought some apples comma bananas and milk"; do
  "$bin" refine --timeout-ms 60000 --json "$text" >"$tmp/r.json" 2>"$tmp/r.err"
  check "refine uses the built-in model" test "$(json_field "$tmp/r.json" "d['model']")" = "$id"
  code=$(json_field "$tmp/r.json" "d['reason_code']")
  check "refine: no provider error ($code)" \
    test "$code" != no_model -a "$code" != sidecar_error -a "$code" != model_unavailable
  [ "$code" = None ] && delivered=$((delivered + 1))
done
check "the model's output is delivered for some dictations ($delivered of 4)" test "$delivered" -ge 1

# French, German and Italian: in its training data and its catalog entry, so a dictated
# one goes to the model, guarded as any other (written French is already_clean before
# the model is chosen).
fr="il y avait un employé qui faisait du thé sucré frais alors j'ai décidé de l'attendre"
"$bin" refine --timeout-ms 60000 --json "$fr" >"$tmp/fr.json" 2>/dev/null
code=$(json_field "$tmp/fr.json" "d['reason_code']")
check "non-English: given to the built-in model ($code)" \
  test "$code" != unsupported_language -a "$code" != sidecar_error -a "$code" != no_model
# The model's words differ by CPU (a spelling fix the guards allow may come out on one
# and not another), so: the model's text when it passed the guards, else the
# transcript as it was (the deterministic pass leaves this one alone).
check "non-English: the model's text or the transcript unchanged ($code)" \
  test "$code" = None -o "$(json_field "$tmp/fr.json" "d['refined']")" = "$fr"
# A model the catalog marks English-only is never given another language: the
# deterministic text at once, and no model call.
python3 -c 'import json, sys
c = json.load(open(sys.argv[1]))
for m in c["models"]:
    if m["id"] == sys.argv[2]:
        m["languages"] = ["en"]
json.dump(c, open(sys.argv[3], "w"))' "$catalog" "$id" "$tmp/en-only.json"
CODICTATE_CATALOG=$tmp/en-only.json "$bin" refine --json "$fr" >"$tmp/fr.json" 2>/dev/null
check "English-only model, non-English text: unsupported_language" \
  test "$(json_field "$tmp/fr.json" "d['reason_code']")" = unsupported_language
check "English-only model, non-English text: passed through unchanged" \
  test "$(json_field "$tmp/fr.json" "d['refined']")" = "$fr"
fr="Il y avait un employé qui faisait du thé sucré frais alors j'ai décidé de l'attendre."
"$bin" refine --json "$fr" >"$tmp/fr.json" 2>/dev/null
check "non-English written text: passed through unchanged" \
  test "$(json_field "$tmp/fr.json" "d['refined']")" = "$fr"

# Hidden, missing or damaged: never used.
CODICTATE_NO_BUILTIN_MODEL=1 "$bin" refine --json "hello there" >"$tmp/n.json" 2>/dev/null
check "CODICTATE_NO_BUILTIN_MODEL=1 hides it" \
  test "$(json_field "$tmp/n.json" "d['reason_code']")" = no_model
mkdir -p "$tmp/share/models"
CODICTATE_SHARE_DIR=$tmp/share "$bin" refine --json "hello there" >"$tmp/m.json" 2>/dev/null
check "missing file: no model" test "$(json_field "$tmp/m.json" "d['reason_code']")" = no_model
CODICTATE_SHARE_DIR=$tmp/share "$bin" models pull builtin >"$tmp/mp.out" 2>&1
rc=$?
check "missing file: pull fails" test "$rc" -ne 0
check "missing file: pull says reinstall" grep -q "reinstall" "$tmp/mp.out"
head -c 1000 /dev/zero >"$tmp/share/models/$file"
CODICTATE_SHARE_DIR=$tmp/share "$bin" models list --json >"$tmp/d.json"
check "damaged file (wrong size): not downloaded" test "$(json_field "$tmp/d.json" \
  "[m['state'] for m in d if m['id'] == '$id'][0]")" != downloaded
CODICTATE_SHARE_DIR=$tmp/share "$bin" refine --json "hello there" >"$tmp/dr.json" 2>/dev/null
check "damaged file: no model" test "$(json_field "$tmp/dr.json" "d['reason_code']")" = no_model
finish
