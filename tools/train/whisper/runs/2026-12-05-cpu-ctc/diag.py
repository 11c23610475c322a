"""Loss on short windows with the real audio, another window's (rolled) and silence,
and greedy WER on 8 windows, for a width-128, 4-head, 2 + 2 layer checkpoint:
  /usr/bin/python3 diag.py CACHE MAX_SENTENCES   (from the repository's root)
Other shapes and the GPU: DIAG_SHAPE=384,6,4,4 DIAG_DEVICE=cuda python3 diag.py …
Debian's PyTorch 1.13 lacks scaled_dot_product_attention: it is supplied there."""
import os
import sys, math, json, gzip, random, numpy as np, torch, torch.nn.functional as F
def sdpa(q, k, v, is_causal=False):
    a = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if is_causal:
        T, S = a.shape[-2], a.shape[-1]
        a = a.masked_fill(torch.ones(T, S, dtype=torch.bool, device=a.device).triu(1), float("-inf"))
    return a.softmax(-1) @ v
if not hasattr(F, "scaled_dot_product_attention"):
    F.scaled_dot_product_attention = sdpa
sys.path.insert(0, "tools/train/whisper")
import train as T
cachedir, maxs = sys.argv[1], int(sys.argv[2])
d = ".trainw"
head, filters, vocab = T.read_head(d + "/head.bin")
inv = {t: b for b, t in vocab.items()}
decode = lambda ids: b"".join(inv.get(t, b"") for t in ids if t < T.EOT).decode("utf-8", "replace").strip()
split = json.load(gzip.open(d + "/sentences.json.gz", "rt"))
texts, docs = [], {"train": [], "heldout": []}
for part in ("train", "heldout"):
    cap = maxs if part == "train" else max(64, maxs // 10)
    n = 0
    for dd in split[part]:
        ids = []
        for s, toks in dd["sents"]:
            if n >= cap: break
            ids.append((len(texts), toks)); texts.append(s); n += 1
        docs[part].append(ids)
z = np.load("%s/speech-1-%d.npz" % (cachedir, len(texts)))
cat, off = z["cat"], z["off"]
audio = [cat[off[i]:off[i + 1]] if off[i + 1] > off[i] else None for i in range(len(texts))]
DEV = os.environ.get("DIAG_DEVICE", "cpu")
SHAPE = [int(x) for x in os.environ.get("DIAG_SHAPE", "128,4,2,2").split(",")]
mel = T.Mel(filters, DEV)
c = torch.load("%s/ckpt-1-%d.pt" % (cachedir, len(texts)), map_location=DEV)
m = T.Whisper(*SHAPE).to(DEV)
m.load_state_dict(c["model"]); m.eval()
print("step", c["step"])
torch.manual_seed(0)
with torch.no_grad():
    for part in ("train", "heldout"):
        win = T.Windows(docs[part], audio, vocab, random.Random(99)); win.text_of = texts
        res = {"real": [], "rolled": [], "zero": []}
        for k in range(4):
            feats, tok, lab, items, _, _ = T.batch(win, 16, mel, DEV, short=True)
            for name, f in (("real", feats), ("rolled", feats.roll(1, 0)), ("zero", torch.zeros_like(feats))):
                lg = m.decoder(tok, m.encoder(f))
                res[name].append(float(F.cross_entropy(lg.float().reshape(-1, lg.shape[-1]), lab.reshape(-1), ignore_index=-100)))
        print(part, {k: round(sum(v) / len(v), 3) for k, v in res.items()})
        feats, tok, lab, items, _, _ = T.batch(win, 8, mel, DEV, short=True)
        out = T.greedy(m, feats)
        errs = words = 0
        for w, o in zip(items, out):
            o = o[:o.index(T.EOT)] if T.EOT in o else o
            e, kk = T.wer(w[4], decode(o)); errs += e; words += kk
        print(part, "WER %.3f" % (errs / words), "|", items[0][4][:80], "->", decode(out[0][:out[0].index(T.EOT)] if T.EOT in out[0] else out[0])[:80])
