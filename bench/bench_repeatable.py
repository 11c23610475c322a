#!/usr/bin/python3
"""bench_repeatable.py: what repeatable output costs (issue 17 §3).

Runs two builds of the codictate sidecar side by side on the same model, requests
interleaved per prompt (order alternated): --base (before) and --bin (after), and
prints a Markdown report with each figure as a median and as the ratio after/before.

Workload: the refine path's requests (bench_speculation.py's copy set: transcripts
from eval/cases through tools/cleanup_lines and the refine prompt; temperature 0, raw,
the sidecar's default penalty). Before each timed request a 1-token request with
another transcript leaves the instruction block cached, as in a dictation session
("warm"). Measured per request: client wall time (warm refine latency), prompt_ms and
prompt tokens evaluated, decode tokens/s (the sidecar's timings), drafted and accepted
tokens. With --gen N the answers have exactly N tokens (ignore_eos), for random-weight
models whose answers are not text; otherwise max_tokens -1 (the seed's limit).

Repeatability: each of the first --repeat prompts is asked twice more, once right after
itself (its prompt cached but the last token) and once after an unrelated long prompt
(nothing of it cached); the three answers must be one. The unrelated prompt's own
evaluation (nothing cached) gives the prompt speed (tokens/s).

Load: the wall time of POST /load of the model (the file in the page cache), --loads
times per build, interleaved (the after build times its draft costs at load).

Usage: bench/bench_repeatable.py --base DIR --bin DIR [--model GGUF | --preset 0.6b
       --type q4_k] [--threads T] [--prompts N] [--repeat N] [--gen N] [--out FILE]
Needs /usr/bin/python3 and both builds (codictate; cleanup_lines in --bin; mkgguf for
--preset). Exit 0: report written; 1: a failure; 2: usage.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_speculation as B  # noqa: E402  (Server, post, prompts_from, copy_cases, builtin_model)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True, help="bin directory of the build before")
    ap.add_argument("--bin", required=True, help="bin directory of the build after")
    ap.add_argument("--model", help="GGUF (default: the built-in model of --bin's build)")
    ap.add_argument("--preset", help="mkgguf preset to generate instead (0.6b, 1.7b, ...)")
    ap.add_argument("--type", default="q4_k", help="mkgguf type with --preset")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=6)
    ap.add_argument("--gen", type=int, default=0)
    ap.add_argument("--loads", type=int, default=3)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--out")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="bench-repeatable-")
    model = a.model
    if a.preset:
        model = os.path.join(work, f"{a.preset}-{a.type}.gguf")
        subprocess.run([os.path.join(a.bin, "mkgguf"), "--preset", a.preset, "--type", a.type,
                        "--out", model], check=True, capture_output=True)
    elif not model:
        model = B.builtin_model(a.bin)
    cases = B.copy_cases(a.prompts + 1, a.seed)
    prompts = [p["prompt"] for p in
               B.prompts_from([c["input"] for c in cases], os.path.join(a.bin, "cleanup_lines"))]
    prime, prompts = prompts[0], prompts[1:]
    prime = prime[: len(prime) - 40] + " and so on"  # same instructions, another transcript
    unrelated = " ".join(f"item {i} of the list goes here" for i in range(120))

    builds = {"before": a.base, "after": a.bin}
    servers = {}
    t_start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        for name, d in builds.items():
            port = B.free_port()
            servers[name] = B.Server(name, [os.path.join(d, "codictate"), "sidecar", "--port",
                                            str(port), "--threads", str(a.threads), "--model",
                                            model, "--quiet"], port,
                                     os.path.join(work, f"{name}.log"), "/health")

        def gen(name, prompt, max_tokens):
            body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "raw": True}
            if a.gen and max_tokens == a.gen:
                body["ignore_eos"] = True
            r, wall = B.post(servers[name].port, "/generate", body)
            return r, wall

        loads = {n: [] for n in builds}
        for i in range(a.loads):
            for name in (list(builds) if i % 2 == 0 else list(builds)[::-1]):
                _, ms = B.post(servers[name].port, "/load", {"model_path": model})
                loads[name].append(ms)

        rows = {n: [] for n in builds}
        cold = {n: [] for n in builds}  # prompt tokens/s of the unrelated prompt, uncached
        same = {n: 0 for n in builds}
        asked = {n: 0 for n in builds}
        max_tokens = a.gen if a.gen else -1
        for i, p in enumerate(prompts):
            for name in (list(builds) if i % 2 == 0 else list(builds)[::-1]):
                gen(name, prime, 1)
                time.sleep(0.2)
                r, wall = gen(name, p, max_tokens)
                t = r["timings"]
                rows[name].append(dict(wall=wall, prompt_ms=t["prompt_ms"],
                                       evaluated=t["prompt_tokens_evaluated"],
                                       tps=t["tokens_per_second"], gen=t["generated_tokens"],
                                       drafted=t["draft_tokens"], accepted=t["accepted_tokens"]))
                if i < a.repeat:
                    texts = {r["response"]}
                    texts.add(gen(name, p, max_tokens)[0]["response"])
                    t = gen(name, unrelated, 1)[0]["timings"]
                    if t["prompt_ms"] > 0:
                        cold[name].append(t["prompt_tokens_evaluated"] * 1000.0 / t["prompt_ms"])
                    texts.add(gen(name, p, max_tokens)[0]["response"])
                    asked[name] += 1
                    same[name] += len(texts) == 1
    finally:
        for s in servers.values():
            s.stop()

    def ratio(key):
        rs = [x[key] / y[key] for x, y in zip(rows["after"], rows["before"]) if y[key] > 0]
        return med(rs)

    out = []
    out.append(f"### {os.path.basename(model)}, {a.threads} thread(s), {len(prompts)} prompts — {t_start}\n")
    out.append("| | before | after | after ÷ before |")
    out.append("|---|---|---|---|")
    out.append(f"| load (POST /load, ms, median of {a.loads}) | {med(loads['before']):.0f} | "
               f"{med(loads['after']):.0f} | {med(loads['after']) / med(loads['before']):.2f} |")
    for key, label, fmt in (("wall", "warm refine latency, ms", "{:.0f}"),
                            ("prompt_ms", "prompt time, ms", "{:.1f}"),
                            ("evaluated", "prompt tokens evaluated", "{:.0f}"),
                            ("tps", "decode tokens/s", "{:.1f}")):
        b = med(x[key] for x in rows["before"])
        f = med(x[key] for x in rows["after"])
        out.append(f"| {label} (median) | {fmt.format(b)} | {fmt.format(f)} | {ratio(key):.2f} |")
    cb, ca = med(cold["before"]), med(cold["after"])
    out.append(f"| uncached prompt ({len(unrelated.split())} words), tokens/s (median) | {cb:.0f} | "
               f"{ca:.0f} | {ca / cb:.2f} |")
    dr = {n: sum(x["drafted"] for x in rows[n]) for n in builds}
    ac = {n: sum(x["accepted"] for x in rows[n]) for n in builds}
    gt = {n: sum(x["gen"] for x in rows[n]) for n in builds}
    out.append(f"| drafted / accepted / generated tokens (total) | {dr['before']} / {ac['before']} / "
               f"{gt['before']} | {dr['after']} / {ac['after']} / {gt['after']} | |")
    out.append(f"| prompts whose 3 answers (warm, cached, cold) were one | {same['before']} of "
               f"{asked['before']} | {same['after']} of {asked['after']} | |")
    out.append("")
    out.append("Ratios: the median over prompts of after ÷ before on the same prompt (load: of "
               "the medians).")
    text = "\n".join(out) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
