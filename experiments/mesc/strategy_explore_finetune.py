"""Issue 17 exploration (val only): fine-tune MiniLM end to end on (previous therapist turn, client turn) -> strategy.

The pair is tokenised to ``--max-len`` tokens (cut from the left), mean-pooled, and joined with learnt
embeddings of the previous therapist turn's strategy and last segment's strategy; client emotion is
a second head. Prints and logs val figures after each epoch.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score
from torch import nn
from transformers import AutoModel, AutoTokenizer

from mmrl.data import load_corpus
from mmrl.labels import EMOTIONS, STRATEGIES
from mmrl.predictor.encoders import resolve_text_model
from mmrl.predictor.evaluate import items_of

NS, NE = len(STRATEGIES), len(EMOTIONS)
ENCODE = None  # the tokenising function main() builds


def examples(dialogues):
    rows = []
    for d, i in items_of(dialogues):
        history, client, target = d.context_at(i)
        ther = [t for t in history if t.speaker == "therapist"]
        prev = ther[-1] if ther else None
        rows.append(
            dict(
                a=prev.text if prev else "",
                b=client.text if client else "",
                pstrat=STRATEGIES.index(prev.strategy) if prev and prev.strategy in STRATEGIES else NS,
                plast=STRATEGIES.index(prev.segments[-1].strategy) if prev and prev.segments[-1].strategy in STRATEGIES else NS,
                y=STRATEGIES.index(target.strategy) if target.strategy in STRATEGIES else -100,
                ye=EMOTIONS.index(client.emotion) if client and client.emotion in EMOTIONS else -100,
            )
        )
    return rows


class Model(nn.Module):
    def __init__(self, path, d_label=32, dropout=0.1):
        super().__init__()
        self.enc = AutoModel.from_pretrained(path)
        h = self.enc.config.hidden_size
        self.pstrat = nn.Embedding(NS + 1, d_label)
        self.plast = nn.Embedding(NS + 1, d_label)
        self.drop = nn.Dropout(dropout)
        self.head_s = nn.Linear(h + 2 * d_label, NS)
        self.head_e = nn.Linear(h, NE)

    def forward(self, enc, pstrat, plast):
        out = self.enc(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (out * m).sum(1) / m.sum(1)
        z = self.drop(pooled)
        return self.head_s(torch.cat([z, self.pstrat(pstrat), self.plast(plast)], -1)), self.head_e(z)


def weights(y, n, power):
    y = y[y >= 0]
    c = np.bincount(y, minlength=n).astype(float)
    w = np.ones(n)
    w[c > 0] = (len(y) / ((c > 0).sum() * c[c > 0])) ** power
    return torch.tensor(w, dtype=torch.float32)


@torch.no_grad()
def score(model, rows_all, batch=64):
    """Val/test strategy weighted-F1 and accuracy, client-emotion weighted-F1."""
    model.eval()
    preds, pe = [], []
    for k in range(0, len(rows_all), batch):
        rows = rows_all[k : k + batch]
        ls, le = model(ENCODE(rows), torch.tensor([r["pstrat"] for r in rows]), torch.tensor([r["plast"] for r in rows]))
        preds.append(ls.argmax(-1).numpy())
        pe.append(le.argmax(-1).numpy())
    pr, pe = np.concatenate(preds), np.concatenate(pe)
    y, ye = np.array([r["y"] for r in rows_all]), np.array([r["ye"] for r in rows_all])
    m = ye >= 0
    return {
        "wf1": round(f1_score(y, pr, average="weighted"), 4),
        "acc": round(accuracy_score(y, pr), 4),
        "emo_wf1": round(f1_score(ye[m], pe[m], average="weighted"), 4),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--max-len", type=int, default=96)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--head-lr", type=float, default=1e-3)
    p.add_argument("--bs", type=int, default=16)
    p.add_argument("--power", type=float, default=0.5)
    p.add_argument("--emo-w", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--tag", default="")
    p.add_argument("--test", action="store_true", help="score the epoch chosen on val on test, once")
    p.add_argument("--data", default=os.environ.get("MMRL_MESC_DIR", "../shared/data/mesc"))
    p.add_argument("--log", default="strategy_explore.jsonl")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    corpus = load_corpus(args.data, "mesc")
    train, val = examples(corpus.split("train")), examples(corpus.split("val"))
    if args.limit:
        train = train[: args.limit]
    path = resolve_text_model("all-MiniLM-L6-v2")
    tok = AutoTokenizer.from_pretrained(path)
    tok.truncation_side = "left"

    def encode(rows):
        return tok(
            [r["a"] for r in rows],
            [r["b"] for r in rows],
            truncation="longest_first",
            max_length=args.max_len,
            padding=True,
            return_tensors="pt",
        )

    global ENCODE
    ENCODE = encode
    model = Model(path)
    head_params = [p for n, p in model.named_parameters() if not n.startswith("enc.")]
    opt = torch.optim.AdamW(
        [{"params": model.enc.parameters(), "lr": args.lr}, {"params": head_params, "lr": args.head_lr}], weight_decay=0.01
    )
    n_steps = args.epochs * ((len(train) + args.bs - 1) // args.bs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, s / max(1, 0.1 * n_steps)) * max(0.0, (n_steps - s) / n_steps))
    ys = np.array([r["y"] for r in train])
    ws, we = weights(ys, NS, args.power), weights(np.array([r["ye"] for r in train]), NE, args.power)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    history = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = rng.permutation(len(train))
        for k in range(0, len(order), args.bs):
            rows = [train[i] for i in order[k : k + args.bs]]
            ls, le = model(encode(rows), torch.tensor([r["pstrat"] for r in rows]), torch.tensor([r["plast"] for r in rows]))
            loss = F.cross_entropy(ls, torch.tensor([r["y"] for r in rows]), weight=ws, ignore_index=-100)
            loss = loss + args.emo_w * F.cross_entropy(le, torch.tensor([r["ye"] for r in rows]), weight=we, ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
        rec = {"epoch": epoch, **score(model, val), "seconds": round(time.time() - t0, 1)}
        if not history or rec["wf1"] > max(h["wf1"] for h in history):
            best = copy.deepcopy(model.state_dict())
        history.append(rec)
        print(json.dumps(rec), flush=True)
    line = {"tag": args.tag, "args": vars(args), "history": history}
    if args.test:  # once, with the epoch chosen on val
        model.load_state_dict(best)
        line["test"] = score(model, examples(corpus.split("test")))
        print(json.dumps({"test": line["test"]}), flush=True)
    with open(args.log, "a") as f:
        f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
