#!/usr/bin/env python3
"""The tail's wait: whisper's encoder on a window fitted to the audio vs the full 30 s.

After stop, eager transcription (issue 16) leaves one chunk: the words spoken since the
last pause. whisper.cpp encodes a full 30 s window whatever the chunk's length, which on
a 2-core machine with base.en takes longer than the 1.5 s the user should wait; the
chunks transcribed after stop are therefore encoded on a window fitted to them
(CDT_TRANSCRIBE_FIT_WINDOW: length + 2.56 s). This measures what that buys, through
the product's own path (`codictate transcribe --json [--fit-window]`, VAD on, greedy),
beside whisper-cli built from the same sources with `-ac 0` and with the same fitted
`-ac`, for tails of about 2, 5, 10 and 20 s of espeak-ng speech, interleaved, median
of --reps.

Weights: the timings of the encoder do not depend on them, so a random model of
base.en's shape stands in (`--whisper`); its decoder emits noise, so the decode time
and the text are not a real model's: the table gives encode and "prepare" (mel, VAD)
time, and the total only for reference.

Usage: bench/window_bench.py --whisper MODEL.bin [--build build] [--reps 3]
"""
import argparse
import glob
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eager_bench import dictation, say_all  # noqa: E402

MARGIN_S = 2.56  # CDT_TRANSCRIBE_FIT_MARGIN_S


def ours(args, wav, fit):
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)  # codictate sets PASSIVE itself
    cmd = [args.bin, "transcribe", wav, "--json", "--whisper-model", args.whisper,
           "--vad-model", args.vad, "--threads", str(args.threads)]
    if fit:
        cmd.append("--fit-window")
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=env)
    if p.returncode != 0:
        sys.exit(f"codictate transcribe failed: {p.stderr[-2000:]}")
    j = json.loads(p.stdout)
    t = j["timings"]
    return {"encode_ms": t["encode_ms"], "prepare_ms": t["prepare_ms"],
            "total_ms": t["total_ms"] - t["load_ms"], "window_s": j.get("window_seconds")}


def peer(args, wav, ac):
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")  # as codictate runs
    p = subprocess.run([args.whisper_cli, "-m", args.whisper, "-f", wav, "-t", str(args.threads),
                        "--vad", "-vm", args.vad, "-bs", "1", "-bo", "1", "-ac", str(ac)],
                       capture_output=True, text=True, errors="replace", env=env)
    if p.returncode != 0:
        sys.exit(f"whisper-cli failed: {p.stderr[-2000:]}")
    enc = re.search(r"encode time\s*=\s*([\d.]+) ms", p.stderr)
    return {"encode_ms": float(enc.group(1)) if enc else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--whisper", required=True)
    ap.add_argument("--vad")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--lengths", default="2,5,10,20")
    ap.add_argument("--out")
    args = ap.parse_args()
    args.bin = os.path.abspath(os.path.join(args.build, "bin", "codictate"))
    args.whisper = os.path.abspath(args.whisper)
    args.vad = os.path.abspath(args.vad or os.path.join(args.build, "test-models",
                                                        "ggml-silero-npm.bin"))
    clis = sorted(glob.glob(os.path.expanduser("~/.cache/codictate/engines/*/bin/whisper-cli")))
    args.whisper_cli = clis[-1] if clis else shutil.which("whisper-cli")
    for f in (args.bin, args.whisper, args.vad, args.whisper_cli):
        if not f or not os.path.exists(f):
            sys.exit(f"missing: {f}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rate, pcms = say_all(tmp)
        for length in [float(x) for x in args.lengths.split(",")]:
            wav, secs = dictation(tmp, rate, pcms, length)
            ac = math.ceil((secs + MARGIN_S) * 50)
            runs = {"full": [], "fit": [], "cli_full": [], "cli_fit": []}
            for _ in range(args.reps):
                runs["full"].append(ours(args, wav, False))
                runs["fit"].append(ours(args, wav, True))
                runs["cli_full"].append(peer(args, wav, 0))
                runs["cli_fit"].append(peer(args, wav, min(ac, 1500)))
            med = {k: {f: statistics.median(r[f] for r in v if r.get(f) is not None)
                       for f in v[0] if v[0][f] is not None} for k, v in runs.items()}
            row = {"audio_s": round(secs, 2), "ac": ac, **med}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    print("| tail | window (fitted) | ours full: encode / prepare / total ms | ours fitted: "
          "encode / prepare / total ms | encode full ÷ fitted | whisper-cli encode -ac 0 / "
          "fitted ms | ours ÷ whisper-cli encode (fitted) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        f, t, cf, ct = r["full"], r["fit"], r["cli_full"], r["cli_fit"]
        print(f"| {r['audio_s']:.1f} s | {t['window_s']:.2f} s ({r['ac']} frames) "
              f"| {f['encode_ms']:.0f} / {f['prepare_ms']:.0f} / {f['total_ms']:.0f} "
              f"| {t['encode_ms']:.0f} / {t['prepare_ms']:.0f} / {t['total_ms']:.0f} "
              f"| {f['encode_ms'] / max(t['encode_ms'], 1e-3):.1f}× "
              f"| {cf.get('encode_ms', float('nan')):.0f} / {ct.get('encode_ms', float('nan')):.0f} "
              f"| {t['encode_ms'] / max(ct.get('encode_ms', 1e-3), 1e-3):.2f}× |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
