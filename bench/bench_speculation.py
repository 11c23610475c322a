#!/usr/bin/python3
"""bench_speculation.py: prompt-lookup speculation on a model that copies (issue 15 §4).

Runs the refine path's requests through the codictate sidecar with speculation off
and on, and through llama-server on the same GGUF without speculation and with its
n-gram drafting, side by side in one run (variants interleaved per prompt, order
rotated), and prints a Markdown report: acceptance of drafted tokens, decode
tokens/s, refine latency, each as a median and as a ratio to the sidecar with
speculation off.

Two prompt sets, both through the refine prompt (tools/cleanup_lines prints the
deterministic pass's text and cdt_refine_build_prompt's prompt for it):
  copy    transcripts from eval/cases/heldout.jsonl and handwritten.jsonl (every
          category but 'empty'): the answer mostly copies the transcript;
  nodraft random letter strings: the model answers with text that is not in the
          prompt, so drafts fail (the cost of speculation when nothing is accepted).

Requests are the refine path's (src/lib/refine_providers.c): temperature 0,
max_tokens -1 (the sidecar's ceil(1.3 x prompt tokens), at least 64), raw, the
sidecar's default repetition penalty 1.15 over the last 64 tokens. llama-server gets
the same prompt formatted with the Qwen3 chat template (thinking off) on /completion,
temperature 0, repeat_penalty 1.15, repeat_last_n 64, n_predict = the sidecar's
max_tokens, cache_prompt. Before every timed request the server gets a 1-token
request with another transcript, so every variant starts from the same cache state
(the instruction block cached, the transcript not).

Usage: bench/bench_speculation.py [--threads 1,2] [--copy N] [--nodraft N]
       [--reps R] [--bin DIR] [--model GGUF] [--out FILE]
Needs /usr/bin/python3 (standard library only) and a build (codictate, cleanup_lines,
llama-server in --bin). Exit 0: report written; 1: a failure (server log tail on
stderr); 2: usage.
"""
import argparse
import difflib
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PENALTY, PENALTY_N = 1.15, 64  # the sidecar's defaults, which the refine path keeps
CHATML = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"

# llama-server configurations: name -> extra arguments. 'ngram-simple' is its
# default n-gram drafting (12-token lookup, 48-token draft); '-3/16' looks up the
# last 3 tokens like the sidecar does and drafts up to 16.
LLAMA_VARIANTS = {
    "llama-server": ["--spec-type", "none"],
    "llama-server ngram-simple": ["--spec-type", "ngram-simple"],
    "llama-server ngram-simple 3/16": ["--spec-type", "ngram-simple",
                                       "--spec-ngram-simple-size-n", "3",
                                       "--spec-ngram-simple-size-m", "16"],
    "llama-server ngram-map-k 3/16": ["--spec-type", "ngram-map-k",
                                      "--spec-ngram-map-k-size-n", "3",
                                      "--spec-ngram-map-k-size-m", "16"],
}


class Interrupted(Exception):
    """SIGTERM or SIGINT during the measurements."""


def fail(msg, logf=None):
    print(f"\nbench_speculation: FAILED: {msg}", file=sys.stderr)
    if logf and os.path.exists(logf):
        with open(logf, errors="replace") as f:
            tail = f.readlines()[-25:]
        print(f"--- last lines of {logf} ---\n{''.join(tail)}---", file=sys.stderr)
    sys.exit(1)


def builtin_model(bin_dir):
    """The built-in refiner's GGUF in a build (bin_dir's ../share/codictate/models), named
    as catalog/catalog.json names it (model codictate_refiner_v1)."""
    with open(os.path.join(ROOT, "catalog", "catalog.json")) as f:
        files = [m["files"][0]["name"] for m in json.load(f)["models"]
                 if m["id"] == "codictate_refiner_v1"]
    return os.path.abspath(os.path.join(bin_dir, "..", "share", "codictate", "models", files[0]))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, path, body, timeout=600):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            out = json.load(r)
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"HTTP {e.code} from :{port}{path}: {e.read()[:300]!r}")
    return out, (time.monotonic() - t0) * 1000.0


def cpu_total():
    """(busy, all) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return int(v[11]) + int(v[12])  # utime + stime


class Server:
    def __init__(self, name, argv, port, logf, health):
        self.name, self.port, self.logf = name, port, logf
        self.log = open(logf, "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                fail(f"{name} exited ({self.proc.returncode})", logf)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{health}", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                pass
            time.sleep(0.1)
        fail(f"{name} did not become healthy in 120 s", logf)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def prompts_from(texts, cleanup_lines):
    inp = "".join(json.dumps(t) + "\n" for t in texts)
    r = subprocess.run([cleanup_lines], input=inp, capture_output=True, text=True, check=True)
    return [json.loads(l) for l in r.stdout.splitlines()]


def copy_cases(n, seed):
    cases = []
    for f in ("heldout.jsonl", "handwritten.jsonl"):
        with open(os.path.join(ROOT, "eval", "cases", f)) as fh:
            cases += [json.loads(l) for l in fh if l.strip()]
    cases = [c for c in cases if c["category"] != "empty" and c["input"].strip()]
    rng = random.Random(seed)
    # Round-robin over categories, so that every category is in a small sample.
    bycat = {}
    for c in cases:
        bycat.setdefault((c["source"] == "handwritten", c["category"]), []).append(c)
    for v in bycat.values():
        rng.shuffle(v)
    out, keys = [], sorted(bycat)
    while len(out) < n and any(bycat.values()):
        for k in keys:
            if bycat[k] and len(out) < n:
                out.append(bycat[k].pop())
    return out


def copy_share(text, reference):
    """The share of the reference's words (as written: case and punctuation count)
    that it copies from text unchanged and in order: how much of the answer a perfect
    prompt-lookup draft could take from the prompt. Judged on the case's reference,
    not on any model's answer."""
    ref = reference.split()
    sm = difflib.SequenceMatcher(None, text.split(), ref, autojunk=False)
    return sum(b.size for b in sm.get_matching_blocks()) / max(len(ref), 1)


def reaches_no_model(text, p):
    """Whether the refine path would deliver the deterministic text without asking the
    model: cleanup_lines' is_clean (cdt_refine_is_clean) and the pass changed nothing
    but white space (src/lib/refine.c's same_but_space, which split() matches)."""
    return p.get("is_clean", False) and text.split() == p["cleaned"].split()


def copy_set(n, seed, cleanup_lines, share):
    """n cases (round-robin over categories, as copy_cases) and their prompts; with
    share > 0 only cases whose reference copies at least that share of the model's
    input (the deterministic pass's text) and that the refine path would send to the
    model: cleanups that are copy-heavy by their reference, whatever the category."""
    cases = copy_cases(n if share <= 0 else 1 << 30, seed)
    prompts = prompts_from([c["input"] for c in cases], cleanup_lines)
    keep = [(c, p) for c, p in zip(cases, prompts)
            if share <= 0 or (copy_share(p["cleaned"], c["reference"]) >= share
                              and not reaches_no_model(c["input"], p))][:n]
    return [c for c, _ in keep], [p for _, p in keep]


def nodraft_texts(n, seed):
    rng = random.Random(seed + 1)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [" ".join("".join(rng.choice(letters) for _ in range(rng.randint(2, 9)))
                     for _ in range(rng.randint(25, 45))) for _ in range(n)]


def screen_nodraft(port, candidates, n, screened):
    keep = []
    for p in candidates:
        if len(keep) >= n:
            break
        r, _ = post(port, "/generate", {"prompt": p["prompt"], "max_tokens": -1, "temperature": 0,
                                        "raw": True, "speculative": True})
        t = r["timings"]
        screened.append((t["generated_tokens"], t["accepted_tokens"]))
        if t["accepted_tokens"] <= 0.1 * t["generated_tokens"]:
            keep.append(p)
    return keep


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--copy", type=int, default=40, help="copy-heavy prompts (default 40)")
    ap.add_argument("--copy-min", type=float, default=0.0,
                    help="only cases whose reference copies at least this share of the model's "
                         "input, words unchanged and in order (e.g. 0.9; default 0: every case)")
    ap.add_argument("--nodraft", type=int, default=12, help="random-text prompts (default 12)")
    ap.add_argument("--candidates", type=int, default=0,
                    help="random-text candidates screened for --nodraft (default 4 x --nodraft)")
    ap.add_argument("--reps", type=int, default=1, help="passes over the prompts (default 1)")
    ap.add_argument("--llama", default=",".join(LLAMA_VARIANTS),
                    help="llama-server variants, comma-separated (default all: "
                         + ", ".join(LLAMA_VARIANTS) + ")")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--model", default=None,
                    help="GGUF (default: the built-in refiner in <bin>/../share/codictate/models)")
    ap.add_argument("--gap", type=float, default=0.2, help="pause before each timed request, s")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--out", default=None, help="also write the report here")
    ap.add_argument("--llama-args", default="", help="more llama-server arguments, e.g. '-ngl 99'")
    ap.add_argument("--keep-work", action="store_true")
    ap.add_argument("--sidecar-args", default="--quiet",
                    help="the sidecar's logging arguments (default --quiet; -v: the debug log, "
                         "whose 'steps' lines bench/step_profile.py sums up; with --keep-work)")
    a = ap.parse_args()
    try:
        threads = [int(t) for t in a.threads.split(",")]
    except ValueError:
        ap.error("--threads is a comma-separated list of integers")
    llama_names = [x for x in a.llama.split(",") if x]
    for x in llama_names:
        if x not in LLAMA_VARIANTS:
            ap.error(f"unknown llama-server variant: {x}")
    if a.copy < 1 or a.nodraft < 0 or a.reps < 1 or min(threads) < 1:
        ap.error("--copy, --reps and --threads need positive numbers")
    model = os.path.abspath(a.model) if a.model else builtin_model(a.bin)
    for p in (os.path.join(a.bin, "codictate"), os.path.join(a.bin, "cleanup_lines"),
              os.path.join(a.bin, "llama-server"), model):
        if not os.path.exists(p):
            fail(f"{p} is missing (build first, or pass --bin / --model)")

    # SIGTERM/SIGINT unwind through the finally below, which stops every server.
    def on_signal(signum, frame):
        raise Interrupted(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    work = tempfile.mkdtemp(prefix="bench_spec.")
    t_start = time.time()
    load_start = os.getloadavg()

    cases, copy_prompts = copy_set(a.copy, a.seed, os.path.join(a.bin, "cleanup_lines"), a.copy_min)
    if not cases:
        fail(f"no case's reference copies {a.copy_min:.0%} of its input")
    sets = {"copy": copy_prompts, "nodraft": []}
    a.copy = len(cases)  # fewer than asked when fewer cases qualify
    # Random letters sometimes make the model loop ("000000…"), which prompt lookup
    # drafts well; the no-draft set keeps the candidates whose answer, generated once
    # with speculation on before the timed passes, accepted at most 10% of its tokens.
    candidates = prompts_from(nodraft_texts(a.candidates or 4 * a.nodraft, a.seed),
                              os.path.join(a.bin, "cleanup_lines"))
    screened = []
    cats = [c["category"] for c in cases]
    prime = prompts_from(["Please call me back when you are free this afternoon."],
                         os.path.join(a.bin, "cleanup_lines"))[0]["prompt"]

    rows = []  # dicts: threads set idx rep variant + figures
    interrupted = None
    checks = []
    servers = []
    try:
        for T in threads:
            servers = []
            sc_port = free_port()
            sc = Server("sidecar", [os.path.join(a.bin, "codictate"), "sidecar", "--port", str(sc_port),
                                    "--threads", str(T), "--model", model] + a.sidecar_args.split(),
                        sc_port, os.path.join(work, f"sidecar_t{T}.log"), "/health")
            servers.append(sc)
            ls = {}
            for name in llama_names:
                port = free_port()
                ls[name] = Server(name, [os.path.join(a.bin, "llama-server"), "-m", model, "--port",
                                         str(port), "-t", str(T), "-tb", str(T), "-c", "4096",
                                         "-np", "1", "--no-webui"] + a.llama_args.split() + LLAMA_VARIANTS[name],
                                  port, os.path.join(work, f"{name.replace(' ', '_').replace('/', '-')}_t{T}.log"),
                                  "/health")
                servers.append(ls[name])

            def run(variant, prompt, max_tokens):
                """One timed request (after a priming one); returns a row dict."""
                if variant.startswith("sidecar"):
                    srv, spec = sc, variant == "sidecar spec on"
                    post(srv.port, "/generate", {"prompt": prime, "max_tokens": 1, "temperature": 0,
                                                 "raw": True, "speculative": spec})
                    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "raw": True,
                            "speculative": spec}
                    path = "/generate"
                else:
                    srv = ls[variant]
                    post(srv.port, "/completion", {"prompt": CHATML.format(prime), "n_predict": 1,
                                                   "temperature": 0, "cache_prompt": True})
                    body = {"prompt": CHATML.format(prompt), "n_predict": max_tokens, "temperature": 0,
                            "repeat_penalty": PENALTY, "repeat_last_n": PENALTY_N, "seed": 42,
                            "cache_prompt": True}
                    path = "/completion"
                time.sleep(a.gap)
                b0, a0 = cpu_total()
                p0 = cpu_of(srv.proc.pid)
                r, wall = post(srv.port, path, body)
                b1, a1 = cpu_total()
                p1 = cpu_of(srv.proc.pid)
                other = max(0.0, ((b1 - b0) - (p1 - p0)) / max(1, a1 - a0))
                if path == "/generate":
                    t = r["timings"]
                    return dict(text=r["response"], gen=t["generated_tokens"], gen_ms=t["generation_ms"],
                                tps=t["tokens_per_second"], prompt_tokens=t["prompt_tokens"],
                                prompt_ms=t["prompt_ms"], evaluated=t["prompt_tokens_evaluated"],
                                drafted=t["draft_tokens"],
                                accepted=t["accepted_tokens"], wall=wall, other=other)
                t = r["timings"]
                return dict(text=r["content"], gen=t["predicted_n"], gen_ms=t["predicted_ms"],
                            tps=t["predicted_per_second"], prompt_tokens=r["tokens_evaluated"],
                            prompt_ms=t["prompt_ms"], evaluated=t["prompt_n"],
                            drafted=t.get("draft_n", 0),
                            accepted=t.get("draft_n_accepted", 0), wall=wall, other=other)

            # Warm-up: every prompt once through every server (1 token), which also
            # gives the sidecar's prompt token count, hence the max_tokens the refine
            # path's -1 means (cdt_limits_max_tokens, 16 GB tier), for llama-server.
            if T == threads[0] and a.nodraft:
                sets["nodraft"] = screen_nodraft(sc.port, candidates, a.nodraft, screened)
            for plist in sets.values():
                for p in plist:
                    r, _ = post(sc.port, "/generate", {"prompt": p["prompt"], "max_tokens": 1,
                                                       "temperature": 0, "raw": True})
                    n = r["timings"]["prompt_tokens"]
                    p["cap"] = max(64, min(2048, (n * 13 + 9) // 10))
                    p["n_prompt"] = n
                    for srv in ls.values():
                        post(srv.port, "/completion", {"prompt": CHATML.format(p["prompt"]),
                                                       "n_predict": 1, "temperature": 0,
                                                       "cache_prompt": True})
            variants = ["sidecar spec off", "sidecar spec on"] + llama_names
            for rep in range(a.reps):
                for sname, plist in sets.items():
                    for i, p in enumerate(plist):
                        k = (i + rep) % len(variants)
                        for v in variants[k:] + variants[:k]:
                            try:
                                row = run(v, p["prompt"], -1 if v.startswith("sidecar") else p["cap"])
                            except RuntimeError as e:
                                # llama-server answers 500 when the model's output is not
                                # valid UTF-8 at its end ("does not match the expected
                                # Content-only format"): noted, that pair left out.
                                if v.startswith("sidecar"):
                                    raise
                                checks.append(f"{v} t{T} {sname}#{i}: {str(e)[:160]}")
                                continue
                            row.update(threads=T, set=sname, idx=i, rep=rep, variant=v,
                                       n_prompt=p["n_prompt"],
                                       category=cats[i] if sname == "copy" else "random")
                            if row["prompt_tokens"] != p["n_prompt"]:
                                checks.append(f"{v} t{T} {sname}#{i}: {row['prompt_tokens']} prompt "
                                              f"tokens, the sidecar counts {p['n_prompt']}")
                            rows.append(row)
                        print(f"[{time.strftime('%H:%M:%S')}] t{T} rep {rep} {sname} {i + 1}/{len(plist)}",
                              file=sys.stderr)
            for s_ in servers:
                s_.stop()
            servers = []
    except Interrupted as e:
        # Interrupted: the rows measured so far still make a (marked) report.
        interrupted = str(e)
    finally:
        for s in servers:
            s.stop()

    with open(os.path.join(work, "rows.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    kept = sum(1 for g, acc in screened if acc <= 0.1 * g)
    checks.append(f"no-draft set: {kept} of {len(screened)} random-letter candidates screened had at most "
                  "10% of their tokens accepted and were kept")
    if interrupted:
        checks.insert(0, f"INTERRUPTED ({interrupted}): a partial report of the requests measured so far")
    report = render(a, rows, checks, threads, variants_of(llama_names), load_start, t_start, model)
    print(report)
    if a.out:
        with open(a.out, "w") as f:
            f.write(report + "\n")
    if a.keep_work:
        print(f"bench_speculation: raw rows and logs in {work}", file=sys.stderr)
    else:
        subprocess.run(["rm", "-rf", work])
    if interrupted:
        sys.exit(1)


def variants_of(llama_names):
    return ["sidecar spec off", "sidecar spec on"] + llama_names


def fmt(x, d=0):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def best_ratios(rows, base):
    """Per prompt, the fastest decode (tokens/s) of a variant over the passes ÷ the
    fastest of the baseline's: a pause of the machine (this VM stalls a request now and
    then by 20-40 ms, either variant) costs a short answer most of its speed, and over
    passes the fastest is the one it did not hit."""
    def fastest(rs):
        f = {}
        for r in rs:
            f[r["idx"]] = max(f.get(r["idx"], 0.0), r["tps"])
        return f

    fast, fast_base = fastest(rows), fastest(base)
    return [t / fast_base[i] for i, t in fast.items() if fast_base.get(i, 0) > 0]


def render(a, rows, checks, threads, variants, load_start, t_start, model):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load_end = os.getloadavg()
    out = []
    w = out.append
    w(f"- Command: `bench/bench_speculation.py {' '.join(sys.argv[1:])}`")
    w(f"- Run: {time.strftime('%Y-%m-%d %H:%M', time.gmtime(t_start))}–"
      f"{time.strftime('%H:%M UTC', time.gmtime())}; model `{os.path.basename(model)}`")
    w(f"- Machine: {cpu}, {os.cpu_count()} CPUs; load average at start "
      f"{load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}, at end "
      f"{load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f}")
    w(f"- Threads: {', '.join(map(str, threads))} (sidecar `--threads T`, llama-server `-t T -tb T`)")
    chosen = (f"whose reference copies at least {a.copy_min:.0%} of the model's input, "
              "words unchanged and in order" if a.copy_min > 0 else "no 'empty'")
    w(f"- Prompts: {a.copy} copy-heavy (eval/cases heldout + handwritten, {chosen}), "
      f"{a.nodraft} random-letter transcripts (screened: see Checks); {a.reps} pass(es); variants interleaved per "
      "prompt, order rotated; a 1-token priming request before each")
    w("")
    for T in threads:
        for sname in ("copy", "nodraft"):
            rs = [r for r in rows if r["threads"] == T and r["set"] == sname]
            if not rs:
                continue
            other = med([r["other"] for r in rs]) * 100
            w(f"#### {T} thread{'s' if T > 1 else ''}, "
              f"{'copy-heavy cleanups' if sname == 'copy' else 'text it cannot draft (random letters)'}"
              f" — other processes' CPU during requests: median {other:.0f}% of all CPUs")
            w("")
            w("| variant | tokens (median) | drafted | accepted | acceptance | decode tok/s (median) "
              "| decode ÷ sidecar off (median of pairs) | decode ÷ off (median over prompts, fastest pass each) "
              "| decode ÷ off (total tokens ÷ total time) "
              "| latency ms (median) | latency ÷ sidecar off (median of pairs) "
              "| prompt tokens evaluated (median) | prompt ms (median) |")
            w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            base = {(r["idx"], r["rep"]): r for r in rs if r["variant"] == "sidecar spec off"}
            if not base:
                continue
            btot = sum(r["gen"] for r in base.values()) / max(1e-9, sum(r["gen_ms"] for r in base.values()))
            for v in variants:
                vr = [r for r in rs if r["variant"] == v and (r["idx"], r["rep"]) in base]
                if not vr:
                    continue
                dr, ac = sum(r["drafted"] for r in vr), sum(r["accepted"] for r in vr)
                ratio = med([r["tps"] / base[(r["idx"], r["rep"])]["tps"] for r in vr
                             if base[(r["idx"], r["rep"])]["tps"] > 0])
                lat = med([r["wall"] / base[(r["idx"], r["rep"])]["wall"] for r in vr])
                tot = sum(r["gen"] for r in vr) / max(1e-9, sum(r["gen_ms"] for r in vr)) / btot
                best = med(best_ratios(vr, base.values()))
                w(f"| {v} | {fmt(med([r['gen'] for r in vr]))} | {dr} | {ac} | "
                  f"{fmt(100 * ac / dr) + '%' if dr else '–'} | {fmt(med([r['tps'] for r in vr]))} | "
                  f"{fmt(ratio, 2)}× | {fmt(best, 2)}× | {fmt(tot, 2)}× | {fmt(med([r['wall'] for r in vr]))} | "
                  f"{fmt(lat, 2)}× | "
                  f"{fmt(med([r.get('evaluated') for r in vr]))} | {fmt(med([r['prompt_ms'] for r in vr]))} |")
            on = {(r["idx"], r["rep"]): r for r in rs if r["variant"] == "sidecar spec on"}
            on = {k: r for k, r in on.items() if k in base}
            same = sum(1 for k, r in on.items() if r["text"].strip() == base[k]["text"].strip())
            w("")
            w(f"Sidecar greedy output identical with speculation on and off: {same}/{len(on)}.")
            for v in variants[2:]:
                vr = {(r["idx"], r["rep"]): r for r in rs if r["variant"] == v and (r["idx"], r["rep"]) in base}
                if vr:
                    same = sum(1 for k, r in vr.items() if r["text"].strip() == base[k]["text"].strip())
                    w(f"{v} output identical to the sidecar's (speculation off): {same}/{len(vr)}.")
            if sname == "copy":
                w("")
                w("| category | prompts | tokens (median) | sidecar acceptance | decode on ÷ off (median) |")
                w("|---|---|---|---|---|")
                for cat in sorted({r["category"] for r in rs}):
                    cr = [r for r in on.values() if r["category"] == cat]
                    dr, ac = sum(r["drafted"] for r in cr), sum(r["accepted"] for r in cr)
                    w(f"| {cat} | {len(cr)} | {fmt(med([r['gen'] for r in cr]))} | "
                      f"{fmt(100 * ac / dr) + '%' if dr else '–'} | "
                      f"{fmt(med([r['tps'] / base[(r['idx'], r['rep'])]['tps'] for r in cr]), 2)}× |")
            w("")
    w("Checks: " + ("; ".join(checks) if checks else
                    "every server counted the sidecar's prompt tokens for every prompt."))
    return "\n".join(out)


if __name__ == "__main__":
    main()
