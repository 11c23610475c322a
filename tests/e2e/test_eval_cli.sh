#!/bin/bash
# `codictate eval` from the outside: a small case set with no model installed (every
# case falls back to the deterministic text, so the model column is the
# deterministic one), the same set through a stub OpenAI-compatible endpoint
# (tests/stubllm) that echoes (the model's output is delivered) or answers (the
# guards trip), --category / --limit / --verbose, the shipped set found in the
# source tree and after `make install`, malformed and missing case files (exit 1,
# file:line) and usage errors (exit 2).
#   test_eval_cli.sh CODICTATE STUBLLM BUILD_DIR
set -u
bin=$1 stub=$2 build=$3
. "$(dirname "$0")/../sh_test.sh"
PY=/usr/bin/python3
tmp=$(mktemp -d)
stubpid=
cleanup() {
  [ -n "$stubpid" ] && kill_pid -TERM "$stubpid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# A clean environment: no user config, no models, no keys.
export XDG_CONFIG_HOME=$tmp/config HF_HOME=$tmp/hf HOME=$tmp/home
unset OPENAI_API_KEY OPENAI_BASE_URL CODICTATE_CATALOG HF_HUB_CACHE XDG_RUNTIME_DIR
mkdir -p "$XDG_CONFIG_HOME" "$HF_HOME" "$HOME"

has() { case "$1" in *"$2"*) return 0 ;; esac; echo "  '$1' lacks '$2'" >&2; return 1; }
is() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }
# py JSON EXPR: evaluates a Python expression on the parsed JSON `j`.
py() { printf '%s' "$1" | "$PY" -c "import json,sys; j=json.load(sys.stdin); print($2)"; }
# run ARGS...: codictate eval ARGS; sets out, err, rc.
run() {
  out=$("$bin" eval "$@" 2>"$tmp/err")
  rc=$?
  err=$(cat "$tmp/err")
}

cases=$tmp/small.jsonl
cat >"$cases" <<'EOF'
{"id":"d1","category":"disfluency","input":"um so I I think comma we should uh ship it period","reference":"So I think we should ship it.","source":"test"}
{"id":"d2","category":"disfluency","input":"The, uh, the report is done.","reference":"The report is done."}

{"id":"c1","category":"clean","input":"Please lock the door when you leave.","reference":"Please lock the door when you leave."}
{"id":"n1","category":"numbers","input":"It costs five hundred dollars.","reference":"It costs $500."}
{"id":"e1","category":"empty","input":"   ","reference":""}
EOF

# The metrics every column has, compared between the two columns.
metrics='["wer","wer_insensitive","punct_f1","content_kept","changed","counts"]'

run --cases "$cases" --json
check "no model: exit 0" is "$rc" 0
check "no model: 5 cases" is "$(py "$out" 'j["cases"]')" 5
check "no model: categories in file order" is "$(py "$out" '",".join(c["category"] for c in j["categories"])')" \
  "disfluency,clean,numbers,empty"
check "no model: provider and model" is "$(py "$out" 'j["provider"], j["model"]')" "local None"
check "no model: the cases path" is "$(py "$out" 'j["cases_path"]')" "$cases"
# The clean case needs no model (already_clean): it is delivered as it is.
check "no model: every case falls back" is "$(py "$out" 'j["overall"]["model"]["reasons"]')" \
  "{'empty_input': 1, 'no_model': 3, 'already_clean': 1}"
check "no model: model column == deterministic column" is \
  "$(py "$out" "all(c['model'][k] == c['deterministic'][k] for c in j['categories'] + [j['overall']] for k in $metrics)")" True
check "no model: no guard trips, no answers" is "$(py "$out" 'j["overall"]["model"]["guard_trips"], j["overall"]["model"]["answered"]')" "0 0"
check "no model: the clean case is unchanged" is "$(py "$out" '[c["model"]["changed"] for c in j["categories"] if c["category"] == "clean"]')" "[0]"
check "no model: pass-through marked" is "$(py "$out" '[c["category"] for c in j["categories"] if c["pass_through"]]')" "['clean']"
check "no model: ratios in range" is "$(py "$out" 'all(0 <= c[col][k] <= 1 for c in j["categories"] for col in ("deterministic", "model") for k in ("punct_f1", "content_kept") if c[col][k] is not None)')" True
check "no model: WER sane" is "$(py "$out" 'all(0 <= c[col][k] < 2 for c in j["categories"] + [j["overall"]] for col in ("deterministic", "model") for k in ("wer", "wer_insensitive"))')" True
check "no model: numbers keep spoken numbers" is "$(py "$out" '[c["deterministic"]["content_kept"] for c in j["categories"] if c["category"] == "numbers"]')" "[0.5]"
check "no model: empty has no punctuation" is "$(py "$out" '[c["model"]["punct_f1"] for c in j["categories"] if c["category"] == "empty"]')" "[None]"
check "no model: latency p50 <= p95" is "$(py "$out" 'all(0 <= c["model"]["latency_ms"]["p50"] <= c["model"]["latency_ms"]["p95"] for c in j["categories"])')" True
check "no model: overall sums the categories" is "$(py "$out" 'sum(c["model"]["counts"]["ref_tokens"] for c in j["categories"]) == j["overall"]["model"]["counts"]["ref_tokens"]')" True
check "no model: no failures list without --verbose" is "$(py "$out" '"failures" in j')" False
check "no model: says what to pull" has "$err" "had no model"

run --cases "$cases"
check "table: exit 0" is "$rc" 0
check "table: header" has "$out" "category         cases     det  model"
check "table: a row per category and all" is "$(printf '%s\n' "$out" | grep -cE '^(disfluency|clean|numbers|empty|all) ')" 5

run --cases "$cases" --category disfluency --json --verbose
check "category: only its cases" is "$(py "$out" 'j["cases"], [c["category"] for c in j["categories"]]')" "2 ['disfluency']"
check "verbose: the failures" is "$(py "$out" '[(f["id"], f["line"], f["reason_code"]) for f in j["failures"]]')" \
  "[('d1', 1, 'no_model')]"
check "verbose: texts kept" is "$(py "$out" 'j["failures"][0]["model"] == j["failures"][0]["deterministic"]')" True
run --cases "$cases" --verbose --category disfluency
check "verbose table: the case" has "$out" "d1 [disfluency] $cases:1  no_model"
run --cases "$cases" --limit 1 --json
check "limit: one per category" is "$(py "$out" 'j["cases"], [c["cases"] for c in j["categories"]]')" "4 [1, 1, 1, 1]"
run --cases "$cases" --category nope
check "unknown category: exit 2" is "$rc" 2
check "unknown category: lists them" has "$err" "no case in category 'nope' (categories: disfluency, clean, numbers, empty)"

# The model's output through a stub endpoint.
start_stubllm "$stub" "$tmp/stub.out"
url=http://127.0.0.1:$port/v1
run --cases "$cases" --base-url "$url" --openai-model echo --json
check "stub echo: exit 0" is "$rc" 0
check "stub echo: the model's output delivered" is "$(py "$out" 'j["overall"]["model"]["reasons"], j["model"], j["provider"]')" \
  "{'ok': 3, 'empty_input': 1, 'already_clean': 1} echo openai"
check "stub echo: fallbacks only for the empty and clean cases" is "$(py "$out" 'j["overall"]["model"]["fallbacks"]')" 2
check "stub echo: latency measured" is "$(py "$out" 'j["overall"]["model"]["latency_ms"]["p95"] > 0')" True
run --cases "$cases" --base-url "$url" --openai-model answer --json
check "stub answer: exit 0" is "$rc" 0
check "stub answer: the guards trip" is "$(py "$out" 'j["overall"]["model"]["guard_trips"]')" 3
check "stub answer: counted as answered" is "$(py "$out" 'j["overall"]["model"]["answered"] >= 1')" True
check "stub answer: the user gets the deterministic text" is \
  "$(py "$out" "all(j['overall']['model'][k] == j['overall']['deterministic'][k] for k in $metrics)")" True
run --cases "$cases" --base-url "$url" --openai-model refusal --json
check "stub refusal: every case asked answered" is "$(py "$out" 'j["overall"]["model"]["reasons"].get("guard_refusal"), j["overall"]["model"]["answered"]')" "3 3"

# The shipped set: from the source tree, and next to an installed binary.
run --json --limit 1
check "shipped set: exit 0" is "$rc" 0
check "shipped set: the hand-written categories" is \
  "$(py "$out" 'sorted({"disfluency","self_correction","numbers","question","injection","non_english","clean","empty","long"} - {c["category"] for c in j["categories"]})')" "[]"
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1
check "install: exit 0" is "$?" 0
check "install: the cases" test -s "$tmp/prefix/share/codictate/eval/cases/handwritten.jsonl"
run_installed=$("$tmp/prefix/bin/codictate" eval --json --limit 1 2>/dev/null)
check "install: the installed set is used" is "$(py "$run_installed" 'j["cases_path"]')" \
  "$tmp/prefix/share/codictate/eval/cases"

# Bad case files: exit 1, the file and line named.
bad=$tmp/bad.jsonl
printf '%s\n%s\n' '{"id":"a","category":"x","input":"i","reference":"r"}' '{"id":"b","category":"x"' >"$bad"
run --cases "$bad"
check "malformed: exit 1" is "$rc" 1
check "malformed: file:line" has "$err" "codictate eval: $bad:2: not a JSON object on one line"
printf '%s\n' '{"id":"a","category":"x","input":"i"}' >"$bad"
run --cases "$bad" --json
check "missing field: exit 1" is "$rc" 1
check "missing field: named" has "$err" "$bad:1: no \"reference\""
check "missing field: nothing on stdout" is "$out" ""
run --cases "$tmp/none.jsonl"
check "missing file: exit 1" is "$rc" 1
check "missing file: says so" has "$err" "$tmp/none.jsonl: No such file or directory"
mkfifo "$tmp/fifo.jsonl"
run --cases "$tmp/fifo.jsonl"
check "a FIFO: exit 1, no hang" is "$rc" 1
check "a FIFO: says so" has "$err" "not a regular file"

# Usage.
run --limit 0
check "limit 0: exit 2" is "$rc" 2
run --bogus
check "unknown option: exit 2" is "$rc" 2
run extra
check "an argument: exit 2" is "$rc" 2
run --cases "$cases" --provider nope
check "bad provider: exit 2" is "$rc" 2
run --help
check "help: exit 0" is "$rc" 0
check "help: usage" has "$out" "usage: codictate eval"
check "listed in codictate --help" has "$("$bin" --help)" "eval"
finish
