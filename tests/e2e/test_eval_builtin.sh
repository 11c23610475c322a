#!/bin/bash
# `codictate eval` with the built-in refiner on a slice of the shipped set (the first
# few cases of each category), against the numbers recorded in eval/baseline-builtin.json:
# the deterministic column exactly (it is C code, the same on every machine), the
# model column within a margin (llama.cpp's kernels round differently across CPUs, so
# the model's words may differ): word error rate (case and punctuation insensitive)
# at most MARGIN above the recorded one and content words kept at most MARGIN below,
# overall and per category — where the recorded figure is the worse of the model's
# and the deterministic pass's, since a case whose output the guards reject on another
# CPU is delivered as the deterministic text (a safe outcome, not a regression). The model answers for real: it is codictate_refiner_v1,
# no provider error, and not every case falls back.
#   test_eval_builtin.sh CODICTATE BASELINE            check
#   test_eval_builtin.sh CODICTATE BASELINE --record   run the slice, write BASELINE
set -u
bin=$1 baseline=$2 mode=${3:-}
. "$(dirname "$0")/../sh_test.sh"
PY=/usr/bin/python3
LIMIT=3
MARGIN=0.10
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HOME=$tmp/home XDG_CACHE_HOME=$tmp/cache XDG_CONFIG_HOME=$tmp/config \
  XDG_DATA_HOME=$tmp/data HF_HOME=$tmp/hf XDG_RUNTIME_DIR=$tmp/run CODICTATE_NO_APP=1
mkdir -p "$HOME" "$XDG_RUNTIME_DIR"
unset CODICTATE_NO_BUILTIN_MODEL CODICTATE_SHARE_DIR HF_HUB_CACHE LLAMA_CACHE

# A loaded CI machine must not turn the model's answers into deadline fallbacks.
"$bin" eval --model builtin --limit "$LIMIT" --timeout-ms 60000 --json >"$tmp/out.json" 2>"$tmp/err"
rc=$?
check "eval: exit 0" test "$rc" -eq 0 || cat "$tmp/err" >&2

if [ "$mode" = --record ]; then
  "$PY" - "$tmp/out.json" "$baseline" "$LIMIT" <<'EOF'
import json, sys
run, dest, limit = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
def row(c):
    d, m = c["deterministic"], c["model"]
    return {"cases": c["cases"],
            "deterministic": {k: d[k] for k in ("wer", "wer_insensitive", "punct_f1",
                                                "content_kept", "changed", "counts")},
            "model": {k: m[k] for k in ("wer_insensitive", "content_kept", "fallbacks")}}
out = {"about": "codictate eval --model builtin --limit %d --timeout-ms 60000 on the "
                "shipped set; checked by tests/e2e/test_eval_builtin.sh (re-record with "
                "its --record after changing the cases, the deterministic pass, the "
                "guards or the model)" % limit,
       "model": run["model"], "limit": limit, "cases": run["cases"],
       "overall": row(run["overall"]),
       "categories": {c["category"]: row(c) for c in run["categories"]}}
with open(dest, "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
    f.write("\n")
EOF
  check "record: $baseline written" test $? -eq 0
  finish
  exit
fi

# One line per check, "ok|FAIL<TAB>name", from the comparison.
"$PY" - "$tmp/out.json" "$baseline" "$MARGIN" >"$tmp/checks" <<'EOF'
import json, sys
run, base, margin = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), float(sys.argv[3])
def say(ok, name):
    print("%s\t%s" % ("ok" if ok else "FAIL", name))
say(run["model"] == "codictate_refiner_v1", "the model is codictate_refiner_v1 (%s)" % run["model"])
say(run["model"] == base["model"], "the recorded model is the one run (%s)" % base["model"])
say(run["cases"] == base["cases"], "the slice has %s cases (recorded %s)" % (run["cases"], base["cases"]))
say(run["cases_path"].endswith("/share/codictate/eval/cases"),
    "the shipped set is found in the share directory (%s)" % run["cases_path"])
o = run["overall"]["model"]
say(o["fallbacks"] < run["cases"], "not every case fell back (%d of %d)" % (o["fallbacks"], run["cases"]))
bad = {r: n for r, n in o["reasons"].items()
       if r in ("no_model", "model_unavailable", "sidecar_error", "provider_error")}
say(not bad, "no provider error (%s)" % bad)
cats = {c["category"]: c for c in run["categories"]}
say(sorted(cats) == sorted(base["categories"]), "the recorded categories (%s)" % sorted(cats))
rows = [("all", run["overall"], base["overall"])] + \
       [(n, cats[n], base["categories"][n]) for n in sorted(base["categories"]) if n in cats]
for name, got, want in rows:
    d, wd = got["deterministic"], want["deterministic"]
    same = all(d[k] == wd[k] for k in wd)
    say(same, "%s: the deterministic pass as recorded%s" % (
        name, "" if same else " (%s, recorded %s)" % ({k: d[k] for k in wd}, wd)))
    m, wm = got["model"], want["model"]
    # null: nothing to measure (an empty reference has no content words), as recorded.
    for key, sign, what in (("wer_insensitive", 1, "WER nocase"), ("content_kept", -1, "content kept")):
        g, w = m[key], wm[key]
        if w is None or g is None:
            say(g == w, "%s: model %s %s, recorded %s" % (name, what, g, w))
        else:
            # A case that falls back on this CPU scores as the deterministic pass: the
            # bound is the worse of the recorded model figure and the pass's.
            dv = d[key] if d[key] is not None else w
            bound = max(w, dv) if sign > 0 else min(w, dv)
            say(sign * (g - bound) <= margin + 1e-9, "%s: model %s %.4f, recorded %.4f "
                "(deterministic %.4f) %s %.2f" % (name, what, g, w, dv, "+" if sign > 0 else "-",
                                                 margin))
EOF
check "compare: ran" test $? -eq 0
while IFS=$'\t' read -r status name; do
  check "$name" test "$status" = ok
done <"$tmp/checks"
finish
