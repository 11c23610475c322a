#!/usr/bin/python3
"""Train a small English Whisper on espeak-ng speech and write it as a whisper.cpp ggml file.

  python3 tools/train/whisper/train.py --data .trainw --out DIR [--minutes 10] [--seed 1]

On the GPU machine (PyTorch, numpy), with what tools/train/whisper/prepare.py gathered in
--data. Steps:
  1. speech: every sentence spoken by the bundled espeak-ng (16 processes), one voice,
     speed and pitch per sentence drawn from the seed (a third in espeak's default
     voice, as the benchmarks speak), resampled to 16 kHz, silence trimmed;
  2. training: windows of consecutive sentences of one document with pauses, as the
     product hands them to whisper.cpp: the full 30 s window (sometimes with the next
     sentence cut at its end, which the target leaves out, as whisper.cpp's seeking
     expects) or a fitted window (audio_ctx = the audio + 2.56 s); targets in Whisper's
     format with timestamps (or <|notimestamps|>), with the text before as a prompt
     half the time (<|startofprev|>, tokenised as whisper.cpp tokenises prompts);
     log-mel computed on the GPU as Whisper computes it;
  3. held-out: greedy decoding of windows from held-out documents, word error rate;
  4. DIR/codictate-whisper-espeak.bin (f16 matrices, as whisper.cpp loads them), the
     log and metrics.json.
Deterministic given --seed up to GPU kernel nondeterminism.
"""
import argparse
import gzip
import json
import math
import os
import random
import re
import struct
import subprocess
import sys
import time
from multiprocessing import Pool

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SR = 16000
N_VOCAB = 51864
EOT, SOT, PREV, NOT, BEG = 50256, 50257, 50360, 50362, 50363
N_AUDIO_CTX, N_TEXT_CTX = 1500, 448
FIT_MARGIN_S = 2.56  # CDT_TRANSCRIBE_FIT_MARGIN_S
PROMPT_MAX_TOKENS = 96  # --prompt-tokens' default (the product gives up to 600 bytes)
VOICES = ["en+m1", "en+m2", "en+m3", "en+m4", "en+m5", "en+m6", "en+m7", "en+f1", "en+f2",
          "en+f3", "en+f4", "en-us", "en-us+m3", "en-us+f2", "en-gb-x-rp", "en-029"]

CTC_CHARS = " 'abcdefghijklmnopqrstuvwxyz0123456789"  # --ctc's classes, after a blank

LOG = None


def log(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)
    if LOG:
        LOG.write(s + "\n")
        LOG.flush()


# ---------------------------------------------------------------- speech

ESPEAK = None


def voice_of(i, seed):
    r = random.Random(seed * 1000003 + i)
    if r.random() < 0.34:
        return "en", 175, 50
    return r.choice(VOICES), r.randint(140, 205), r.randint(30, 70)


def resample(x, sr_in):
    n = len(x)
    m = int(round(n * SR / sr_in))
    X = np.fft.rfft(x)
    keep = m // 2 + 1
    Y = np.zeros(keep, dtype=np.complex128)
    Y[:min(keep, len(X))] = X[:min(keep, len(X))]
    return np.fft.irfft(Y, m) * (m / n)


def speak(job):
    i, text, seed = job
    voice, speed, pitch = voice_of(i, seed)
    env = dict(os.environ, ESPEAK_DATA_PATH=ESPEAK, LD_LIBRARY_PATH=os.path.join(ESPEAK, "lib"))
    out = subprocess.run([os.path.join(ESPEAK, "espeak-ng"), "-v", voice, "-s", str(speed),
                          "-p", str(pitch), "--stdout", text], capture_output=True, env=env)
    wav = out.stdout
    k = wav.find(b"data")
    if out.returncode != 0 or k < 0:
        return i, None
    sr = struct.unpack_from("<I", wav, 24)[0]
    x = np.frombuffer(wav[k + 8:len(wav) - (len(wav) - k - 8) % 2], dtype="<i2").astype(np.float64)
    y = resample(x, sr)
    loud = np.nonzero(np.abs(y) > 300)[0]
    if len(loud) == 0:
        return i, None
    a, b = max(0, loud[0] - 160), min(len(y), loud[-1] + 160)
    return i, np.clip(np.round(y[a:b]), -32768, 32767).astype(np.int16)


def synthesize(texts, seed, procs):
    audio = [None] * len(texts)
    with Pool(procs) as pool:
        for i, a in pool.imap_unordered(speak, [(i, t, seed) for i, t in enumerate(texts)],
                                        chunksize=64):
            audio[i] = a
    return audio


# ---------------------------------------------------------------- vocabulary / prompts

def read_head(path):
    data = open(path, "rb").read()
    n_mel, n_fft = struct.unpack_from("<ii", data, 0)
    filters = np.frombuffer(data, dtype="<f4", count=n_mel * n_fft, offset=8).reshape(n_mel, n_fft)
    off = 8 + n_mel * n_fft * 4
    n = struct.unpack_from("<i", data, off)[0]
    off += 4
    vocab = {}
    for t in range(n):
        ln = struct.unpack_from("<i", data, off)[0]
        vocab[data[off + 4:off + 4 + ln]] = t
        off += 4 + ln
    return data, filters.copy(), vocab


WORDS = re.compile(rb"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")


def greedy_tokens(vocab, text):
    """whisper.cpp's tokenize(): the longest vocabulary entries that form each word."""
    out = []
    for w in WORDS.findall(text.encode()):
        i = 0
        while i < len(w):
            for j in range(len(w), i, -1):
                t = vocab.get(w[i:j])
                if t is not None:
                    out.append(t)
                    i = j
                    break
            else:
                i += 1
    return out


# ---------------------------------------------------------------- model (openai/whisper's)

class Attention(nn.Module):
    def __init__(self, n, h):
        super().__init__()
        self.h = h
        self.query, self.key = nn.Linear(n, n), nn.Linear(n, n, bias=False)
        self.value, self.out = nn.Linear(n, n), nn.Linear(n, n)

    def forward(self, x, xa=None, causal=False):
        src = x if xa is None else xa
        B, T, C = x.shape
        q = self.query(x).view(B, T, self.h, -1).transpose(1, 2)
        k = self.key(src).view(B, src.shape[1], self.h, -1).transpose(1, 2)
        v = self.value(src).view(B, src.shape[1], self.h, -1).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.out(o.transpose(1, 2).reshape(B, T, C))


def gelu(x):
    return F.gelu(x, approximate="tanh")  # ggml_gelu


class Block(nn.Module):
    def __init__(self, n, h, cross):
        super().__init__()
        self.attn_ln, self.attn = nn.LayerNorm(n), Attention(n, h)
        self.cross = cross
        if cross:
            self.cross_attn_ln, self.cross_attn = nn.LayerNorm(n), Attention(n, h)
        self.mlp_ln = nn.LayerNorm(n)
        self.mlp = nn.Sequential(nn.Linear(n, 4 * n), nn.GELU(approximate="tanh"), nn.Linear(4 * n, n))

    def forward(self, x, xa=None, causal=False):
        x = x + self.attn(self.attn_ln(x), causal=causal)
        if self.cross:
            x = x + self.cross_attn(self.cross_attn_ln(x), xa)
        return x + self.mlp(self.mlp_ln(x))


def sinusoids(length, n):
    inc = math.log(10000) / (n // 2 - 1)
    inv = torch.exp(-inc * torch.arange(n // 2, dtype=torch.float64))
    t = torch.arange(length, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1).float()


class Encoder(nn.Module):
    def __init__(self, n, h, layers):
        super().__init__()
        self.conv1 = nn.Conv1d(80, n, 3, padding=1)
        self.conv2 = nn.Conv1d(n, n, 3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(N_AUDIO_CTX, n))
        self.blocks = nn.ModuleList([Block(n, h, False) for _ in range(layers)])
        self.ln_post = nn.LayerNorm(n)

    def forward(self, mel):
        x = gelu(self.conv2(gelu(self.conv1(mel)))).transpose(1, 2)
        x = x + self.positional_embedding[:x.shape[1]]
        for b in self.blocks:
            x = b(x)
        return self.ln_post(x)


class Decoder(nn.Module):
    def __init__(self, n, h, layers):
        super().__init__()
        self.token_embedding = nn.Embedding(N_VOCAB, n)
        nn.init.normal_(self.token_embedding.weight, std=0.02)  # tied: logits start near 0
        self.positional_embedding = nn.Parameter(torch.randn(N_TEXT_CTX, n) * 0.01)
        self.blocks = nn.ModuleList([Block(n, h, True) for _ in range(layers)])
        self.ln = nn.LayerNorm(n)

    def forward(self, tokens, xa):
        x = self.token_embedding(tokens) + self.positional_embedding[:tokens.shape[1]]
        for b in self.blocks:
            x = b(x, xa, causal=True)
        return self.ln(x) @ self.token_embedding.weight.T


class Whisper(nn.Module):
    def __init__(self, n, h, enc_layers, dec_layers):
        super().__init__()
        self.dims = (n, h, enc_layers, dec_layers)
        self.encoder = Encoder(n, h, enc_layers)
        self.decoder = Decoder(n, h, dec_layers)


# ---------------------------------------------------------------- features

class Mel:
    def __init__(self, filters, dev):
        self.filters = torch.tensor(filters, device=dev)
        self.window = torch.hann_window(400, device=dev)

    def __call__(self, audio, frames):
        """audio (B, N) float in [-1, 1], zero-padded; the first `frames` mel frames."""
        st = torch.stft(audio, 400, 160, window=self.window, return_complex=True)
        mag = st[..., :-1].abs() ** 2
        m = torch.clamp(self.filters @ mag, min=1e-10).log10()
        m = torch.maximum(m, m.amax(dim=(1, 2), keepdim=True) - 8.0)
        return ((m + 4.0) / 4.0)[..., :frames]


# ---------------------------------------------------------------- windows

class Windows:
    def __init__(self, docs, audio, vocab, rng):
        self.docs = [d for d in docs if d]
        self.weights = np.cumsum([len(d) for d in self.docs])
        self.audio, self.vocab, self.rng = audio, vocab, rng
        # (share of windows with a prompt, most sentences before, most prompt tokens)
        self.prompt_cfg = (0.5, 3, PROMPT_MAX_TOKENS)

    def _doc(self):
        k = int(np.searchsorted(self.weights, self.rng.random() * self.weights[-1], side="right"))
        return self.docs[min(k, len(self.docs) - 1)]

    def one(self, budget_s, full, timestamps, cut_ok, prompts=True):
        r = self.rng
        for _ in range(20):
            doc = self._doc()
            start = r.randrange(len(doc))
            if self.audio[doc[start][0]] is not None and len(self.audio[doc[start][0]]) / SR < budget_s - 0.8:
                break
        else:
            return None
        t = r.uniform(0.05, 0.8)
        pieces, segs, k = [], [], start
        while k < len(doc):
            idx, toks = doc[k]
            a = self.audio[idx]
            if a is None:
                break
            d = len(a) / SR
            if t + d > budget_s:
                if full and cut_ok and r.random() < 0.5 and budget_s - t > 0.3:
                    pieces.append((t, a[:int((budget_s - t) * SR)]))  # cut: not in the target
                break
            pieces.append((t, a))
            segs.append((t, t + d, toks))
            t += d + r.uniform(0.15, 1.5)
            k += 1
        if not segs:
            return None
        end = max(p[0] + len(p[1]) / SR for p in pieces)
        n = int(math.ceil(end * SR)) + 1
        x = np.zeros(n, dtype=np.float32)
        for s, a in pieces:
            o = int(s * SR)
            x[o:o + len(a)] += a.astype(np.float32) / 32768.0
        x *= r.uniform(0.3, 1.6)
        if r.random() < 0.5:
            x += np.float32(10 ** (r.uniform(-80, -40) / 20)) * np.random.default_rng(r.randrange(1 << 30)).standard_normal(n).astype(np.float32)
        prompt = []
        p_share, p_sents, p_tokens = self.prompt_cfg
        if prompts and start > 0 and r.random() < p_share:
            before = " ".join(self.sents_text(doc, max(0, start - r.randint(1, p_sents)), start))
            prompt = [PREV] + greedy_tokens(self.vocab, before)[-p_tokens:]
        if timestamps:
            body = []
            for s, e, toks in segs:
                body += [BEG + min(1500, int(round(s / 0.02)))] + toks + [BEG + min(1500, int(round(e / 0.02)))]
            body = [SOT] + body + [EOT]
        else:
            body = [SOT, NOT] + [t for _, _, toks in segs for t in toks] + [EOT]
        seq = (prompt + body)[-N_TEXT_CTX:]
        return x, seq, len(seq) - len(body), end, " ".join(self.text_of[doc[j][0]] for j in range(start, start + len(segs)))

    def sents_text(self, doc, a, b):
        return [self.text_of[doc[j][0]] for j in range(a, b)]


def ctc_ids(text):
    """The text as --ctc's classes: lower case letters, digits, apostrophes, single spaces."""
    t = re.sub(r" +", " ", re.sub(r"[^a-z0-9' ]", " ", text.lower())).strip()
    return [CTC_CHARS.index(c) + 1 for c in t]


def batch_cpu(win, bs, short=False):
    """One batch on the CPU: (audio (bs, frames * 160 + 400) float32, frames, tok, lab,
    items, chars, char_len): chars (bs, longest) the window's text as ctc_ids.
    short: fitted windows of one or two sentences and no prompt (the curriculum's
    first steps, where the cross-attention learns to align)."""
    r = win.rng
    full = not short and r.random() < 0.5
    budget = 30.0 if full else r.uniform(4.0, 12.0) if short else r.uniform(3.0, 29.0)
    items = []
    while len(items) < bs:
        w = win.one(budget, full, r.random() < 0.85, True, prompts=not short)
        if w:
            items.append(w)
    if full:
        frames = 3000
    else:
        longest = max(w[3] for w in items)
        frames = 2 * int(math.ceil((longest + FIT_MARGIN_S) * 50))
        frames = min(3000, frames)
    n = frames * 160 + 400  # the samples the first `frames` mel frames see (30 s + 400)
    audio = torch.zeros(bs, n)
    for i, w in enumerate(items):
        audio[i, :min(n, len(w[0]))] = torch.from_numpy(w[0][:n])
    L = max(len(w[1]) for w in items)
    tok = torch.full((bs, L), EOT, dtype=torch.long)
    lab = torch.full((bs, L), -100, dtype=torch.long)
    for i, w in enumerate(items):
        s = torch.tensor(w[1])
        tok[i, :len(s)] = s
        lab[i, w[2]:len(s) - 1] = s[w[2] + 1:]
    ids = [ctc_ids(w[4]) for w in items]
    chars = torch.zeros(bs, max(1, max(len(c) for c in ids)), dtype=torch.long)
    for i, c in enumerate(ids):
        chars[i, :len(c)] = torch.tensor(c, dtype=torch.long)
    clen = torch.tensor([len(c) for c in ids], dtype=torch.long)
    return audio, frames, tok[:, :-1], lab[:, :-1], items, chars, clen


def to_device(cpu, mel, dev):
    """(feats, tok, lab, items, chars, char_len) on dev."""
    audio, frames, tok, lab, items, chars, clen = cpu
    feats = mel(audio.to(dev, non_blocking=True), frames)
    return (feats, tok.to(dev, non_blocking=True), lab.to(dev, non_blocking=True), items,
            chars.to(dev, non_blocking=True), clen.to(dev, non_blocking=True))


def batch(win, bs, mel, dev, short=False):
    return to_device(batch_cpu(win, bs, short), mel, dev)


class Batches(torch.utils.data.IterableDataset):
    """Training batches made in worker processes (torch's DataLoader takes them from
    the workers in turn, so the order is fixed): worker k of W makes the batches
    first + k, first + k + W, …, from its own generator seeded by (seed, first, k).
    Deterministic given the seed, the worker count and the steps a run starts at."""

    def __init__(self, docs, audio, vocab, texts, seed, first, bs, short_until, prompt_cfg):
        self.args = docs, audio, vocab, texts
        self.prompt_cfg = prompt_cfg
        self.seed, self.first, self.bs, self.short_until = seed, first, bs, short_until

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        k, w = (info.id, info.num_workers) if info else (0, 1)
        docs, audio, vocab, texts = self.args
        rng = random.Random((self.seed * 1000003 + self.first) * 64 + k)
        np.random.seed(rng.randrange(1 << 30))
        win = Windows(docs, audio, vocab, rng)
        win.text_of = texts
        win.prompt_cfg = self.prompt_cfg
        step = self.first + k
        while True:
            audio_b, frames, tok, lab, _, chars, clen = batch_cpu(win, self.bs, step < self.short_until)
            yield audio_b, frames, tok, lab, chars, clen
            step += w


# ---------------------------------------------------------------- evaluation

def wer(ref, hyp):
    norm = lambda s: re.sub(r"[^a-z0-9' ]", " ", s.lower()).split()
    a, b = norm(ref), norm(hyp)
    d = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(b) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] != b[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(b)], len(a)


@torch.no_grad()
def greedy(model, feats, max_len=200, prefix=()):
    """Greedy text (no timestamps) of each window; prefix: a prompt before SOT (one
    for the whole batch)."""
    xa = model.encoder(feats)
    head = list(prefix) + [SOT, NOT]
    tok = torch.tensor([head] * feats.shape[0], dtype=torch.long, device=feats.device)
    done = torch.zeros(feats.shape[0], dtype=torch.bool, device=feats.device)
    for _ in range(max_len):
        logits = model.decoder(tok, xa)[:, -1].float()
        logits[:, EOT + 1:] = -1e9  # text only (no timestamps in this check)
        nxt = logits.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, EOT), nxt)
        tok = torch.cat([tok, nxt[:, None]], 1)
        done |= nxt == EOT
        if bool(done.all()):
            break
    return tok[:, len(head):].tolist()


def evaluate(model, win, mel, dev, decode, n=256):
    model.eval()
    errs = words = 0
    samples = []
    state = win.rng.getstate()
    win.rng.seed(12345)
    bs = min(64, n)
    for _ in range(n // bs):
        feats, _, _, items, _, _ = batch(win, bs, mel, dev)
        with torch.autocast(dev, dtype=torch.bfloat16):
            out = greedy(model, feats)
        for w, o in zip(items, out):
            o = o[:o.index(EOT)] if EOT in o else o
            hyp = decode(o)
            e, k = wer(w[4], hyp)
            errs, words = errs + e, words + k
            if len(samples) < 6:
                samples.append({"ref": w[4], "hyp": hyp})
    win.rng.setstate(state)
    model.train()
    return errs / max(1, words), samples


def evaluate_prompted(model, win, mel, dev, decode, n=64):
    """Held-out WER of n windows each after a prompt of the sentences before (up to 8,
    cut to the longest prompt trained with), as the eager path prompts whisper.cpp:
    one window at a time (prompts differ in length)."""
    model.eval()
    errs = words = 0
    state, cfg = win.rng.getstate(), win.prompt_cfg
    win.rng.seed(54321)
    win.prompt_cfg = (1.0, 8, cfg[2])
    for _ in range(n):
        feats, _, _, items, _, _ = batch(win, 1, mel, dev)
        w = items[0]
        with torch.autocast(dev, dtype=torch.bfloat16):
            o = greedy(model, feats, prefix=w[1][:w[2]])[0]
        o = o[:o.index(EOT)] if EOT in o else o
        e, k = wer(w[4], decode(o))
        errs, words = errs + e, words + k
    win.rng.setstate(state)
    win.prompt_cfg = cfg
    model.train()
    return errs / max(1, words)


# ---------------------------------------------------------------- writing

def write_ggml(model, head, path, used):
    n, h, el, dl = model.dims
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    te = sd["decoder.token_embedding.weight"]
    unused = torch.ones(N_VOCAB, dtype=torch.bool)
    unused[list(used)] = False
    unused[EOT:] = False
    if unused.any():  # one shared row: compresses, and still scores as "never"
        te[unused] = te[unused].mean(0)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<I", 0x67676d6c))
        f.write(struct.pack("<11i", N_VOCAB, N_AUDIO_CTX, n, h, el, N_TEXT_CTX, n, h, dl, 80, 1))
        f.write(head)
        for name, t in sd.items():
            half = (name.endswith(".weight") and t.dim() >= 2) or name == "decoder.token_embedding.weight"
            if name.endswith("conv1.bias") or name.endswith("conv2.bias"):
                t = t.view(n, 1)
            arr = t.numpy().astype(np.float16 if half else np.float32)
            ne = list(reversed(arr.shape))
            nb = name.encode()
            f.write(struct.pack("<iii", len(ne), len(nb), 1 if half else 0))
            f.write(struct.pack("<%di" % len(ne), *ne))
            f.write(nb)
            f.write(arr.tobytes())
    os.replace(path + ".tmp", path)


# ---------------------------------------------------------------- main

def main():
    global ESPEAK, LOG
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=8.0, help="training time in this run")
    ap.add_argument("--total-minutes", type=float, default=16.0, help="for the schedule")
    ap.add_argument("--resume", action="store_true", help="go on from the checkpoint")
    ap.add_argument("--cache", required=True, help="speech and checkpoints are kept here")
    ap.add_argument("--speech-only", action="store_true", help="make the speech and stop")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--prompt-share", type=float, default=0.5,
                    help="share of windows (after the short ones) with the text before as a prompt")
    ap.add_argument("--prompt-sents", type=int, default=3, help="most sentences in a prompt")
    ap.add_argument("--prompt-tokens", type=int, default=PROMPT_MAX_TOKENS,
                    help="most tokens in a prompt (the product's 600 bytes are ~130)")
    ap.add_argument("--width", type=int, default=384)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--enc-layers", type=int, default=4)
    ap.add_argument("--dec-layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-sentences", type=int, default=0)
    ap.add_argument("--procs", type=int, default=16)
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke test")
    ap.add_argument("--eval-windows", type=int, default=384, help="held-out windows at the end")
    ap.add_argument("--steps", type=int, default=0,
                    help="the schedule in steps (0: in time, --total-minutes); a run stops there")
    ap.add_argument("--short-until", type=int, default=0,
                    help="steps of short fitted windows without prompts first (curriculum)")
    ap.add_argument("--workers", type=int, default=8, help="processes making batches (0: inline)")
    ap.add_argument("--token-drop", type=float, default=0.0,
                    help="share of the decoder's text inputs replaced by a random text token, "
                         "so it cannot transcribe from the text before alone")
    ap.add_argument("--ctc", type=float, default=0.0,
                    help="weight of an auxiliary CTC loss on the encoder's output (letters; "
                         "a head that the ggml file leaves out), so the encoder learns "
                         "the speech before the decoder learns to lean on it")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    LOG = open(os.path.join(args.out, "train.log"), "a")
    log("args", vars(args))
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    ESPEAK = os.path.abspath(os.path.join(args.data, "espeak"))
    dev = args.device

    head, filters, vocab = read_head(os.path.join(args.data, "head.bin"))
    inv = {t: b for b, t in vocab.items()}
    decode = lambda ids: b"".join(inv.get(t, b"") for t in ids if t < EOT).decode("utf-8", "replace").strip()
    split = json.load(gzip.open(os.path.join(args.data, "sentences.json.gz"), "rt"))
    texts, docs = [], {"train": [], "heldout": []}
    for part in ("train", "heldout"):
        cap = args.max_sentences if part == "train" else max(64, args.max_sentences // 10)
        n = 0
        for d in split[part]:
            ids = []
            for s, toks in d["sents"]:
                if args.max_sentences and n >= cap:
                    break
                ids.append((len(texts), toks))
                texts.append(s)
                n += 1
            docs[part].append(ids)
    t0 = time.time()
    cache = os.path.join(args.cache, "speech-%d-%d.npz" % (args.seed, len(texts)))
    if os.path.exists(cache):
        z = np.load(cache)
        cat, off = z["cat"], z["off"]
        audio = [cat[off[i]:off[i + 1]] if off[i + 1] > off[i] else None for i in range(len(texts))]
    else:
        audio = synthesize(texts, args.seed, args.procs)
        off = np.zeros(len(texts) + 1, dtype=np.int64)
        off[1:] = np.cumsum([0 if a is None else len(a) for a in audio])
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        np.savez(cache + ".tmp.npz", cat=np.concatenate([a for a in audio if a is not None]), off=off)
        os.replace(cache + ".tmp.npz", cache)
    secs = sum(len(a) for a in audio if a is not None) / SR
    log("speech: %d sentences, %.1f h, %d failed, %.0f s" %
        (len(texts), secs / 3600, sum(a is None for a in audio), time.time() - t0))

    if args.speech_only:
        return
    used = {t for d in split["train"] for _, toks in d["sents"] for t in toks}
    mel = Mel(filters, dev)
    rng = random.Random(args.seed)
    train = Windows(docs["train"], audio, vocab, rng)
    held = Windows(docs["heldout"], audio, vocab, random.Random(7))
    train.text_of = held.text_of = texts
    train.prompt_cfg = held.prompt_cfg = (args.prompt_share, args.prompt_sents, args.prompt_tokens)

    model = Whisper(args.width, args.heads, args.enc_layers, args.dec_layers).to(dev)
    log("parameters: %.1fM" % (sum(p.numel() for p in model.parameters()) / 1e6))
    ctc_head = nn.Linear(args.width, len(CTC_CHARS) + 1).to(dev)  # not in the model file
    params = list(model.parameters()) + (list(ctc_head.parameters()) if args.ctc > 0 else [])
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-6,
                            **({"fused": True} if dev == "cuda" else {}))
    ckpt = os.path.join(args.cache, "ckpt-%d-%d.pt" % (args.seed, len(texts)))
    step, ema, done_s, ctc_ema = 0, None, 0.0, None
    if args.resume and os.path.exists(ckpt):
        c = torch.load(ckpt, map_location=dev)
        model.load_state_dict(c["model"])
        if "ctc" in c:
            ctc_head.load_state_dict(c["ctc"])
        opt.load_state_dict(c["opt"])
        step, ema, done_s = c["step"], c["ema"], c["done_s"]
        rng.setstate(c["rng"])
        log("resumed at step %d (%.0f s trained)" % (step, done_s))
    total = args.total_minutes * 60
    budget = min(args.minutes * 60, total - done_s) if not args.steps else args.minutes * 60
    if args.workers:
        loader = iter(torch.utils.data.DataLoader(
            Batches(docs["train"], audio, vocab, texts, args.seed, step, args.batch, args.short_until,
                    train.prompt_cfg),
            batch_size=None, num_workers=args.workers, prefetch_factor=2, pin_memory=dev == "cuda"))
    t0 = time.time()
    warm = 400
    while True:
        el = time.time() - t0
        if el > budget or (args.steps and step >= args.steps):
            break
        frac = min(1.0, step / args.steps if args.steps else (done_s + el) / total)
        lr = args.lr * min(1.0, (step + 1) / warm) * (0.5 * (1 + math.cos(math.pi * frac)) * 0.95 + 0.05)
        for g in opt.param_groups:
            g["lr"] = lr
        if args.workers:
            audio_b, frames, tok, lab, chars, clen = next(loader)
            feats, tok, lab, _, chars, clen = to_device((audio_b, frames, tok, lab, None, chars, clen), mel, dev)
        else:
            feats, tok, lab, _, chars, clen = batch(train, args.batch, mel, dev, step < args.short_until)
        if args.token_drop > 0:  # text inputs only (below EOT), never the labels
            swap = (torch.rand(tok.shape, device=tok.device) < args.token_drop) & (tok < EOT)
            tok = torch.where(swap, torch.randint_like(tok, 0, EOT), tok)
        with torch.autocast(dev, dtype=torch.bfloat16):
            xa = model.encoder(feats)
            logits = model.decoder(tok, xa)
        loss = F.cross_entropy(logits.float().reshape(-1, N_VOCAB), lab.reshape(-1), ignore_index=-100)
        if args.ctc > 0:
            lp = ctc_head(xa.float()).log_softmax(-1).transpose(0, 1)  # (T, B, classes)
            lens = torch.full((lp.shape[1],), lp.shape[0], dtype=torch.long, device=lp.device)
            ctc = F.ctc_loss(lp, chars, lens, clen, blank=0, zero_infinity=True)
            ctc_ema = ctc.item() if ctc_ema is None else 0.98 * ctc_ema + 0.02 * ctc.item()
            loss = loss + args.ctc * ctc
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()  # with ctc's share
        step += 1
        if step % 100 == 0:
            log("step %d  %.0f s  lr %.2e  loss %.4f%s%s" % (step, time.time() - t0, lr, ema,
                "  ctc %.4f" % ctc_ema if ctc_ema is not None else "",
                "  (short)" if step < args.short_until else ""))
        if step % 1000 == 0:
            w, s = evaluate(model, held, mel, dev, decode, min(128, args.eval_windows))
            model.train()
            log("step %d held-out WER %.3f (%d windows)  e.g. %s" % (step, w, min(128, args.eval_windows), json.dumps(s[:2])))
    done_s += time.time() - t0
    torch.save({"model": model.state_dict(), "ctc": ctc_head.state_dict(), "opt": opt.state_dict(),
                "step": step, "ema": ema,
                "done_s": done_s, "rng": rng.getstate()}, ckpt + ".tmp")
    os.replace(ckpt + ".tmp", ckpt)
    w, samples = evaluate(model, held, mel, dev, decode, args.eval_windows)
    log("final: step %d, loss %.4f, held-out WER %.4f (%d windows, greedy, no timestamps)" % (step, ema, w, args.eval_windows))
    wp = evaluate_prompted(model, held, mel, dev, decode, min(64, args.eval_windows))
    log("final: held-out WER %.4f after prompts of up to 8 sentences, %d tokens (%d windows)" %
        (wp, args.prompt_tokens, min(64, args.eval_windows)))
    path = os.path.join(args.out, "codictate-whisper-espeak.bin")
    write_ggml(model, head, path, used)
    json.dump({"steps": step, "loss": ema, "heldout_wer": w, "heldout_wer_prompted": wp, "samples": samples,
               "trained_s": done_s, "speech_hours": secs / 3600, "sentences": len(texts), "args": vars(args)},
              open(os.path.join(args.out, "metrics.json"), "w"), indent=1)
    log("wrote", path, os.path.getsize(path))


if __name__ == "__main__":
    main()
