#!/usr/bin/python3
"""draft_sim.py: how much better prompt-lookup drafts could be (issue 15 §4), offline.

Greedy decoding gives the same tokens with or without speculation, so the benefit of
a drafting rule can be computed from the outputs alone: at each step the rule drafts
up to --draft tokens (default 3) from the text so far (prompt and output), the
accepted ones are the draft's longest prefix that the output really continues with,
and the step advances by that plus one. Reported per rule: tokens per step (what a
fixed-shape GPU step of --draft + 1 gains, engine.c's CODICTATE_GPU_SPEC_BATCH) and
the share of drafted tokens
accepted, over the refine path's own requests (bench_speculation.py's copy-heavy set
and its random-letter set, kept where at most 10% of tokens would be accepted).

Rules: "sidecar" is speculative.c's spec_text_draft over engine.c's look_begin (since
2026-12-07): the prompt is looked up up to the end of the user's text, where the turn's
end token follows its last mark (the closing tag "</transcript>" and the newline before
it left out), then the output; the exact match of the last 3 or 2 tokens, else of the
last 3, 2, 1 words by key (letters and digits in lower case; punctuation skipped), else
of the last token (the GPU's fixed-shape rule; the CPU's planner looks words up from 2
on). "exact" is the rule before it (the exact lookup alone, over the prompt and the
output: the most recent match of the last 3, 2, then 1 tokens); "fold" matches on tokens folded to lower case without their
leading space; "fold+skip" also skips punctuation in the text so far; "+case" counts
a drafted token as right when only its case differs (an upper bound for a rule that
would fix the case). Outputs come from llama-server (the same llama.cpp) on the
built-in model: its /completion with the sidecar's sampling (temperature 0, repeat
penalty 1.15 over 64), its /tokenize and /detokenize.

  /usr/bin/python3 bench/draft_sim.py [--bin build/bin] [--model GGUF] [--copy 120]
      [--copy-min 0.9] [--draft 3] [--why]
"""
import argparse
import json
import os
import statistics
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_speculation as bs  # noqa: E402


def collect(a):
    _, copy = bs.copy_set(a.copy, 15, os.path.join(a.bin, "cleanup_lines"), a.copy_min)
    nodraft = bs.prompts_from(bs.nodraft_texts(40, 15), os.path.join(a.bin, "cleanup_lines"))
    port = bs.free_port()
    srv = bs.Server("llama-server", [os.path.join(a.bin, "llama-server"), "-m", a.model, "--port",
                                     str(port), "-t", "2", "-c", "4096", "--spec-type", "none",
                                     "-np", "1"], port, "/tmp/draft_sim_server.log", "/health")
    runs = []
    try:
        for kind, ps in (("copy", copy), ("nodraft", nodraft)):
            for p in ps:
                tk, _ = bs.post(port, "/tokenize", {"content": bs.CHATML.format(p["prompt"]),
                                                   "parse_special": True})
                toks = tk["tokens"]
                try:
                    r, _ = bs.post(port, "/completion", {
                        "prompt": toks, "temperature": 0, "repeat_penalty": bs.PENALTY,
                        "repeat_last_n": bs.PENALTY_N, "n_predict": max(64, -(-13 * len(toks) // 10)),
                        "return_tokens": True, "cache_prompt": False, "reasoning_format": "none"})
                except RuntimeError:
                    continue  # an answer llama-server's own parser refuses
                runs.append({"kind": kind, "prompt": toks, "out": r["tokens"]})
        ids = sorted({t for r in runs for t in r["prompt"] + r["out"]})
        pieces = {}
        for i in ids:
            d, _ = bs.post(port, "/detokenize", {"tokens": [i]})
            pieces[i] = d["content"]
    finally:
        srv.stop()
    return runs, pieces


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(bs.ROOT, "build", "bin"))
    ap.add_argument("--model", default=None)
    ap.add_argument("--copy", type=int, default=120)
    ap.add_argument("--draft", type=int, default=3,
                    help="tokens drafted a step (default 3: a fixed-shape GPU step of 4; the "
                         "engine's default step is 6 since 2026-12-07, --draft 5)")
    ap.add_argument("--why", action="store_true",
                    help="also: how each step of the sidecar rule on the copy set ended (the "
                         "whole draft accepted, no draft, or the first token it got wrong, by "
                         "kind)")
    ap.add_argument("--copy-min", type=float, default=0.0,
                    help="only cases whose reference copies this share of the input "
                         "(bench_speculation.py --copy-min)")
    a = ap.parse_args()
    a.model = os.path.abspath(a.model) if a.model else bs.builtin_model(a.bin)
    runs, P = collect(a)
    punct = {k for k, v in P.items()
             if v.strip() and all(unicodedata.category(ch).startswith("P") for ch in v.strip())}

    def fold(t):
        return P[t].strip().lower()

    def lookup(hist, k, key, skip):
        keys = [key(t) for t in hist]
        idx = [i for i in range(len(hist)) if keys[i] != "" and not (skip and hist[i] in punct)]
        n = len(idx)
        for g in range(min(n - 1, 3), 0, -1):
            tail = [keys[i] for i in idx[n - g:]]
            for j in range(n - g - 1, -1, -1):
                if [keys[i] for i in idx[j:j + g]] == tail:
                    start, out = idx[j + g - 1] + 1, []
                    for i in range(k):
                        at = start + i
                        out.append(hist[at] if at < len(hist) else out[at - len(hist)])
                    return out
        return []

    eog = next((k for k, v in P.items() if v == "<|im_end|>"), None)
    ids = {v: k for k, v in P.items()}

    def wkey(t):
        return "".join(ch for ch in P[t].lower() if ch.isalnum())

    def look_source(prompt):
        """engine.c's look_begin: the prompt up to the user's text's end, then the end token."""
        u = max((i for i, t in enumerate(prompt) if t == eog), default=-1)
        if u < 0:
            return list(prompt)
        c = u
        for j in range(u - 1, max(u - 9, -1), -1):
            if "".join(P[t] for t in prompt[j:u]).strip().startswith("</"):
                c = j
                break
        while c > 0 and not P[prompt[c - 1]].strip():
            c -= 1
        last = prompt[c - 1]
        last = ids.get(P[last].rstrip(), last)
        return list(prompt[:c - 1]) + [last, eog]

    def exact(hist, k):
        n = len(hist)
        for g in range(min(n - 1, 3), 0, -1):
            for j in range(n - g - 1, -1, -1):
                if hist[j:j + g] == hist[n - g:]:
                    out = []
                    for i in range(k):
                        at = j + g + i
                        out.append(hist[at] if at < n else out[at - n])
                    return out, g
        return [], 0

    def words(hist, k):
        kpos = [i for i, t in enumerate(hist) if wkey(t)]
        nk = len(kpos)
        for g in range(min(nk - 1, 3), 0, -1):
            tail = [wkey(hist[i]) for i in kpos[nk - g:]]
            for j in range(nk - 2, g - 2, -1):
                if [wkey(hist[i]) for i in kpos[j - g + 1:j + 1]] == tail:
                    at, trail = kpos[j] + 1, kpos[-1] + 1
                    while (trail < len(hist) and at < len(hist) and not wkey(hist[at])
                           and hist[at] == hist[trail]):
                        at, trail = at + 1, trail + 1
                    return hist[at:at + k]
        return []

    def sidecar(src, k):
        out, g = exact(src, k)
        if g >= 2:
            return out
        return words(src, k) or out

    rules = {
        "sidecar": None,
        "exact": (lambda t: t, False, False),
        "fold": (fold, False, False),
        "fold+skip": (fold, True, False),
        "fold+skip+case": (fold, True, True),
    }

    def simulate(r, key, skip, case, ends=None):
        """Replays output r under a rule; ends (a dict): also counts how each step
        ended (step_end)."""
        hist, out, j = list(r["prompt"]) + [r["out"][0]], r["out"], 0
        src = look_source(r["prompt"]) + [r["out"][0]]
        steps = drafted = accepted = 0
        while j < len(out) - 1:
            if key is None:
                d = sidecar(src, a.draft)[: len(out) - 1 - j]
            else:
                d = lookup(hist, a.draft, key, skip)[: len(out) - 1 - j]
            m = 0
            while m < len(d) and (d[m] == out[j + 1 + m] or (
                    case and fold(d[m]) == fold(out[j + 1 + m])
                    and P[d[m]].startswith(" ") == P[out[j + 1 + m]].startswith(" "))):
                m += 1
            steps, drafted, accepted = steps + 1, drafted + len(d), accepted + m
            if ends is not None:
                kind = step_end(d, m, out[j + 1 + m] if m < len(d) else None, P)
                ends[kind] = ends.get(kind, 0) + 1
            hist += out[j + 1:j + 2 + m]
            src += out[j + 1:j + 2 + m]
            j += m + 1
        return len(out) - 1, steps, drafted, accepted

    base = {id(r): simulate(r, lambda t: t, False, False) for r in runs}
    sets = {"copy": [r for r in runs if r["kind"] == "copy" and len(r["out"]) > 2],
            "nodraft": [r for r in runs if r["kind"] == "nodraft" and len(r["out"]) > 2
                        and base[id(r)][3] <= 0.1 * base[id(r)][0]]}
    print("| rule | set | outputs | tokens per step | median per output | drafted | accepted |")
    print("|---|---|---|---|---|---|---|")
    for name, rule in rules.items():
        key, skip, case = rule or (None, False, False)
        for s, rs in sets.items():
            tot = [simulate(r, key, skip, case) for r in rs]
            n, st = sum(x[0] for x in tot), sum(x[1] for x in tot)
            dr, ac = sum(x[2] for x in tot), sum(x[3] for x in tot)
            med = statistics.median(x[0] / x[1] for x in tot) if tot else float("nan")
            print(f"| {name} | {s} | {len(rs)} | {n / max(st, 1):.2f} | {med:.2f} | {dr} | "
                  f"{ac / max(dr, 1):.0%} |")
    if a.why:
        ends = {}
        for r in sets["copy"]:
            simulate(r, None, False, False, ends)
        total = sum(ends.values())
        print(f"\nsidecar rule, copy set: {total} steps, how each ended")
        print("| step ended with | steps | share |")
        print("|---|---|---|")
        for kind, n in sorted(ends.items(), key=lambda x: -x[1]):
            print(f"| {kind} | {n} | {n / max(total, 1):.0%} |")


def step_end(d, m, want, P):
    """How a step with draft d, of which m tokens were accepted, ended; want: the
    output's token where the draft went wrong (None: it did not)."""
    def alnum(x):
        return any(ch.isalnum() for ch in x)

    if not d:
        return "no draft"
    if m == len(d):
        return "whole draft accepted"
    want, got = P[want], P[d[m]]
    return ("the end token" if want == "<|im_end|>" else
            "only the case or the space differs" if want.strip().lower() == got.strip().lower() else
            "the output has a mark there" if want.strip() and not alnum(want) else
            "the draft has a mark there" if got.strip() and not alnum(got) else
            "another word")


if __name__ == "__main__":
    main()
