#!/usr/bin/python3
"""Word error rate of a trained Whisper ggml file in the product (`codictate
transcribe`), on sentences spoken by this machine's espeak-ng in its default voice:

  /usr/bin/python3 tools/train/whisper/wer_check.py --model M.bin [--part train|heldout]
      [--max-sentences N (as training used it)] [--n 20] [--fit-window] [--codictate BIN]

Sentences come from .trainw/sentences.json.gz, picked as train.py picks them (the
first --max-sentences of the training split, the first tenth as many held out), every
k-th so that --n of them spread over the set. Prints each reference and transcript and
the mean word error rate (lower case, no punctuation)."""
import argparse
import gzip
import importlib.util
import json
import os
import re
import subprocess
import tempfile


# The word error rate as bench/eager_bench.py counts it (lower case, no punctuation).
_spec = importlib.util.spec_from_file_location(
    "eager_bench", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../bench/eager_bench.py"))
_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench)
words = _bench.words


def pick(data, part, max_sentences):
    split = json.load(gzip.open(os.path.join(data, "sentences.json.gz"), "rt"))
    cap = max_sentences if part == "train" else max(64, max_sentences // 10)
    out = []
    for d in split[part]:
        for s, _ in d["sents"]:
            if max_sentences and len(out) >= cap:
                return out
            out.append(s)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default=".trainw")
    ap.add_argument("--part", default="train", choices=("train", "heldout"))
    ap.add_argument("--max-sentences", type=int, default=0)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--fit-window", action="store_true")
    ap.add_argument("--codictate", default="build/bin/codictate")
    args = ap.parse_args()
    sents = pick(args.data, args.part, args.max_sentences)
    step = max(1, len(sents) // args.n)
    errs = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "s.wav")
        for s in sents[::step][:args.n]:
            subprocess.run(["espeak-ng", "-w", wav, s], check=True, stderr=subprocess.DEVNULL)
            cmd = [args.codictate, "transcribe", wav, "--json", "--no-vad", "--whisper-model",
                   args.model, "--threads", "2"] + (["--fit-window"] if args.fit_window else [])
            p = subprocess.run(cmd, capture_output=True, text=True,
                               env=dict(os.environ, CODICTATE_NO_APP="1"))
            raw = json.loads(p.stdout)["raw"] if p.returncode == 0 else "<failed: %s>" % p.stderr[-200:]
            ref = words(s)
            n = len(ref)
            e = round(_bench.wer(ref, words(raw)) * max(n, 1))
            errs, total = errs + e, total + n
            print("%.2f | %s\n     | %s" % (e / max(n, 1), s, raw), flush=True)
    print("WER %.3f over %d words (%d sentences, %s)" % (errs / max(total, 1), total,
                                                        min(args.n, len(sents[::step])), args.part))


if __name__ == "__main__":
    main()
