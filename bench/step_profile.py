#!/usr/bin/python3
"""step_profile.py: where the sidecar's decode time goes, from its debug log.

The engine logs, after each generation at debug level (`codictate sidecar -v`):
  generated N tokens in T ms (…; draft D, accepted A), prompt …
  steps S, rows R: llama_decode X ms, rows read Y ms, KV trimmed Z ms
This sums those lines over the generations of at least --min tokens, split into
generations that verified drafts (R > S) and plain ones (R == S), and prints per
step and per generated token: llama_decode, reading the rows (sampling,
verification), trimming the KV cache, and the rest (draft lookup, text, callbacks).

Usage: bench/step_profile.py LOG [--min 8]
"""
import argparse
import re
import sys

GEN = re.compile(r"generated (\d+) tokens in ([\d.]+) ms .*draft (\d+), accepted (\d+)")
STEPS = re.compile(r"steps (\d+), rows (\d+): llama_decode ([\d.]+) ms, rows read ([\d.]+) ms, "
                   r"KV trimmed ([\d.]+) ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--min", type=int, default=8, help="leave out generations of fewer tokens")
    a = ap.parse_args()
    sums = {}
    gen = None
    with open(a.log, errors="replace") as f:
        for line in f:
            m = GEN.search(line)
            if m:
                gen = [int(m[1]), float(m[2]), int(m[3]), int(m[4])]
                continue
            m = STEPS.search(line)
            if m and gen and gen[0] >= a.min:
                s, r = int(m[1]), int(m[2])
                kind = "with drafts" if r > s else "plain"
                t = sums.setdefault(kind, [0] * 9)
                for i, v in enumerate([1, gen[0], gen[1], gen[2], gen[3], s, r,
                                       float(m[3]), float(m[4]) + float(m[5])]):
                    t[i] += v
            gen = None
    if not sums:
        sys.exit("step_profile: no 'steps' lines (run the sidecar with -v)")
    print("| generations | n | tokens | steps | rows/step | tokens/step | accepted | ms/token | "
          "llama_decode ms/step | rows+trim ms/step | rest ms/step |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind, (n, tok, ms, dr, acc, st, rows, dec, other) in sorted(sums.items()):
        rest = ms - dec - other
        print(f"| {kind} | {n} | {tok} | {st} | {rows / st:.2f} | {tok / st:.2f} | "
              f"{(acc / dr if dr else 0):.0%} | {ms / tok:.2f} | {dec / st:.2f} | "
              f"{other / st:.2f} | {rest / st:.2f} |")


if __name__ == "__main__":
    main()
