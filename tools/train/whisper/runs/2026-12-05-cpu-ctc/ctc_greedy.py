"""Greedy CTC decoding of the --ctc head on the encoder's output, 3 training and 3
held-out short windows:  /usr/bin/python3 ctc_greedy.py CACHE MAX_SENTENCES"""
import os
import sys
here = os.path.dirname(os.path.abspath(__file__))
exec(open(os.path.join(here, "diag.py")).read().split("torch.manual_seed(0)")[0])
import torch.nn as nn
head_ = nn.Linear(SHAPE[0], len(T.CTC_CHARS) + 1).to(DEV); head_.load_state_dict(c["ctc"])
def ctc_greedy(lp):
    out, prev = [], 0
    for i in lp.argmax(-1).tolist():
        if i != prev and i != 0: out.append(T.CTC_CHARS[i - 1])
        prev = i
    return "".join(out)
with torch.no_grad():
    for part in ("train", "heldout"):
        win = T.Windows(docs[part], audio, vocab, random.Random(5)); win.text_of = texts
        feats, tok, lab, items, _, _ = T.batch(win, 4, mel, DEV, short=True)
        lp = head_(m.encoder(feats)).log_softmax(-1)
        for i in range(3):
            print(part, "REF:", " ".join(items[i][4].lower().split())[:110])
            print(part, "CTC:", ctc_greedy(lp[i])[:110])
