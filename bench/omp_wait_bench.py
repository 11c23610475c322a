#!/usr/bin/env python3
"""omp_wait_bench.py: what OpenMP's wait policy costs or saves a refine.

ggml's CPU backend runs each graph in an OpenMP parallel region. Between regions
(between decode steps, while the sidecar samples and drafts) libgomp's default
policy keeps the worker threads spinning for a while; OMP_WAIT_POLICY=PASSIVE puts
them to sleep at once. On a quiet machine spinning saves a futex wake per step; on a
busy one the spinning threads take the CPU from the thread that has work.

One sidecar per setting (default: libgomp's default, i.e. no OMP_WAIT_POLICY and its
default spin count 300000, which codictate leaves alone only when GOMP_SPINCOUNT is
set; OMP_WAIT_POLICY=PASSIVE, codictate's default from this bench to 2026-12-04; and
spin1k, GOMP_SPINCOUNT=1000, codictate's default from then to 2026-12-06 (since: 3000,
spin3k:GOMP_SPINCOUNT=3000);
--setting LABEL:VAR=VAL[,VAR=VAL] adds others, e.g. spin:GOMP_SPINCOUNT=10000), all
with the same model pinned to the same CPUs, answer the same refine prompts in
rotating order; optionally BUSY busy-loop processes
pinned to those CPUs play the rest of a loaded laptop. Prints one line per setting:
median and p90 latency of a refine request, median decode tokens/s.

  bench/omp_wait_bench.py --bin build/bin/codictate --model M.gguf \
      [--cpus 0,1] [--threads 2] [--rounds 8] [--busy 0] [--setting L:VAR=VAL ...]
"""
import argparse
import collections
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_speculation as B  # noqa: E402  (free_port, post, prompts_from)

TRANSCRIPTS = [
    "um so the the report is due friday and we need the numbers for the meeting",
    "i think we should move the launch to next tuesday comma no wait wednesday period",
    "can you send me the slides from yesterday question mark thanks",
]


def start(args, extra_env):
    port = B.free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(extra_env)
    threads = env.pop("THREADS", str(args.threads))  # a setting's own thread count
    cmd = ["taskset", "-c", args.cpus, args.bin, "sidecar", "--port", str(port), "--model",
           args.model, "--threads", threads, "--quiet"]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1) as r:
                if json.load(r).get("model_loaded"):
                    return p, port
        except OSError:
            pass
        time.sleep(0.1)
    p.kill()
    sys.exit("omp_wait_bench: the sidecar did not load the model in 120 s")


def prompts(args):
    helper = os.path.join(os.path.dirname(args.bin), "cleanup_lines")
    return [x["prompt"] for x in B.prompts_from(TRANSCRIPTS, helper)]


def generate(port, prompt):
    d, ms = B.post(port, "/generate", {"prompt": prompt, "max_tokens": 64, "temperature": 0,
                                       "raw": True})
    return ms, d["timings"]["tokens_per_second"], d["timings"].get("threads", 0)


def spin():
    while True:
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--cpus", default="0,1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--busy", type=int, default=0, help="busy-loop processes on the same CPUs")
    ap.add_argument("--setting", action="append", default=[], metavar="LABEL:VAR=VAL[,VAR=VAL]",
                    help="another sidecar with these variables; THREADS=N is its --threads")
    ap.add_argument("--only", action="store_true", help="only the --setting sidecars")
    args = ap.parse_args()

    ps = prompts(args)
    settings = {"default": {"GOMP_SPINCOUNT": "300000"}, "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
                "spin1k": {"GOMP_SPINCOUNT": "1000"}}
    if args.only:
        settings = {}
    for s in args.setting:
        label, _, assigns = s.partition(":")
        settings[label] = dict(a.split("=", 1) for a in assigns.split(",") if a)
    servers = {name: start(args, env) for name, env in settings.items()}
    busy = []
    cpus = {int(c) for c in args.cpus.split(",")}
    for _ in range(args.busy):
        b = multiprocessing.Process(target=spin, daemon=True)
        b.start()
        os.sched_setaffinity(b.pid, cpus)
        busy.append(b)
    res = {k: [] for k in servers}
    try:
        for name in servers:  # warm-up: the first request fills the prefix cache
            generate(servers[name][1], ps[0])
        for i in range(args.rounds):
            names = list(servers)
            order = names[i % len(names):] + names[:i % len(names)]
            for name in order:
                for pr in ps:
                    res[name].append(generate(servers[name][1], pr))
    finally:
        for b in busy:
            b.terminate()
        for p, _ in servers.values():
            p.terminate()
    print(f"cpus {args.cpus}, threads {args.threads}, busy {args.busy}, "
          f"{args.rounds} rounds x {len(ps)} prompts")
    for name, v in res.items():
        lat = sorted(x[0] for x in v)
        print(f"{name:8s} latency ms median {statistics.median(lat):.0f} "
              f"p90 {lat[int(len(lat) * 0.9)]:.0f}  decode tok/s median "
              f"{statistics.median(x[1] for x in v):.1f}  threads "
              f"{dict(sorted(collections.Counter(x[2] for x in v).items()))}")


if __name__ == "__main__":
    main()
