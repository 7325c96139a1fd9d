"""Issue 17 exploration (val only): a causal GRU or transformer over each MESC dialogue's frozen MiniLM turn embeddings.

One pass per dialogue: step t reads turn t's text embedding, speaker and surface cues plus turn t-1's
labels (strategy, emotion, last segment's strategy), so the state at a client turn predicts the next
therapist turn's strategy (and that client turn's emotion) from earlier turns only. Appends one JSON
line per configuration (per-seed val strategy weighted-F1, means) to ``--log``.
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

from mmrl.data import load_corpus
from mmrl.labels import EMOTIONS, STRATEGIES
from mmrl.predictor.encoders import TextEmbeddingCache

torch.set_num_threads(1)
NS, NE = len(STRATEGIES), len(EMOTIONS)


def prep(dialogues, cache):
    out = []
    for d in dialogues:
        turns = d.turns
        emb = cache.embed([t.text for t in turns])
        n = len(turns)
        speaker = np.array([0 if t.speaker == "client" else 1 for t in turns])
        strat = np.array([STRATEGIES.index(t.strategy) if t.strategy in STRATEGIES else NS for t in turns])
        emo = np.array([EMOTIONS.index(t.emotion) if t.emotion in EMOTIONS else NE for t in turns])
        last_seg = np.array(
            [
                STRATEGIES.index(t.segments[-1].strategy) if t.speaker == "therapist" and t.segments[-1].strategy in STRATEGIES else NS
                for t in turns
            ]
        )
        surface = np.array(
            [[np.log1p(len(t.text.split())), t.text.strip().endswith("?"), "?" in t.text, np.log1p(len(t.segments))] for t in turns],
            np.float32,
        )
        # targets: strategy of turn i predicted at step i-1; client emotion of client turn t at step t
        y_strat = np.full(n, -100)
        for i in range(1, n):
            if turns[i].speaker == "therapist" and strat[i] < NS:
                y_strat[i - 1] = strat[i]
        y_emo = np.full(n, -100)
        for i in range(1, n):
            if turns[i].speaker == "therapist" and turns[i - 1].speaker == "client" and emo[i - 1] < NE:
                y_emo[i - 1] = emo[i - 1]

        # previous-turn labels shifted by one: step t sees the labels of turn t-1
        def shift(a, fill):
            return np.concatenate([[fill], a[:-1]])

        out.append(
            dict(
                emb=emb,
                speaker=speaker,
                pstrat=shift(strat, NS),
                pemo=shift(emo, NE),
                plast=shift(last_seg, NS),
                surface=surface,
                y_strat=y_strat,
                y_emo=y_emo,
                n=n,
            )
        )
    return out


def pad(batch):
    L = max(b["n"] for b in batch)
    B = len(batch)

    def stack(key, fill, dtype):
        arr = np.full((B, L) + batch[0][key].shape[1:], fill, dtype)
        for i, b in enumerate(batch):
            arr[i, : b["n"]] = b[key]
        return torch.from_numpy(arr)

    return {
        "emb": stack("emb", 0.0, np.float32),
        "speaker": stack("speaker", 0, np.int64),
        "pstrat": stack("pstrat", NS, np.int64),
        "pemo": stack("pemo", NE, np.int64),
        "plast": stack("plast", NS, np.int64),
        "surface": stack("surface", 0.0, np.float32),
        "y_strat": stack("y_strat", -100, np.int64),
        "y_emo": stack("y_emo", -100, np.int64),
        "lengths": torch.tensor([b["n"] for b in batch]),
    }


class SeqModel(nn.Module):
    def __init__(self, d=128, kind="gru", layers=1, dropout=0.2, emb_dropout=0.1, labels=True):
        super().__init__()
        self.kind, self.labels = kind, labels
        self.proj = nn.Sequential(nn.Dropout(emb_dropout), nn.Linear(384, d), nn.LayerNorm(d))
        self.spk = nn.Embedding(2, d)
        self.pstrat = nn.Embedding(NS + 1, d)
        self.pemo = nn.Embedding(NE + 1, d)
        self.plast = nn.Embedding(NS + 1, d)
        self.surface = nn.Linear(4, d)
        self.drop = nn.Dropout(dropout)
        if kind == "gru":
            self.rnn = nn.GRU(d, d, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        elif kind == "transformer":
            self.pos = nn.Embedding(256, d)
            layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout, batch_first=True, norm_first=True)
            self.rnn = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head_s = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * d, NS))
        self.head_e = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * d, NE))

    def forward(self, b):
        x = self.proj(b["emb"]) + self.spk(b["speaker"]) + self.surface(b["surface"])
        if self.labels:
            x = x + self.pstrat(b["pstrat"]) + self.pemo(b["pemo"]) + self.plast(b["plast"])
        x0 = x
        x = self.drop(x)
        if self.kind == "gru":
            h, _ = self.rnn(x)
        else:
            L = x.shape[1]
            x = x + self.pos(torch.arange(L).clamp(max=255))[None]
            causal = torch.triu(torch.full((L, L), float("-inf")), 1)
            pad_mask = torch.arange(L)[None] >= b["lengths"][:, None]
            h = self.rnn(x, mask=causal, src_key_padding_mask=pad_mask)
        z = torch.cat([h, x0], -1)
        return self.head_s(z), self.head_e(z)


def class_weights(data, key, n, power):
    y = np.concatenate([d[key] for d in data])
    y = y[y >= 0]
    c = np.bincount(y, minlength=n).astype(float)
    w = np.ones(n)
    w[c > 0] = (len(y) / ((c > 0).sum() * c[c > 0])) ** power
    return torch.tensor(w, dtype=torch.float32)


def metrics(y, p):
    m = y >= 0
    return {"wf1": f1_score(y[m], p[m], average="weighted", zero_division=0), "acc": accuracy_score(y[m], p[m])}


@torch.no_grad()
def predict(model, data):
    model.eval()
    b = pad(data)
    ls, le = model(b)
    return ls, le, b["y_strat"], b["y_emo"]


def run(train, val, args, seed, test=None):
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = SeqModel(args.d, args.kind, args.layers, args.dropout, args.emb_dropout, not args.no_labels)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    ws = class_weights(train, "y_strat", NS, args.power)
    we = class_weights(train, "y_emo", NE, args.power)
    best = (-1, None, 0)
    rng = np.random.default_rng(seed)
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = rng.permutation(len(train))
        for k in range(0, len(order), args.bs):
            b = pad([train[i] for i in order[k : k + args.bs]])
            ls, le = model(b)
            loss = F.cross_entropy(ls.flatten(0, 1), b["y_strat"].flatten(), weight=ws, ignore_index=-100, label_smoothing=args.ls)
            loss = loss + args.emo_w * F.cross_entropy(le.flatten(0, 1), b["y_emo"].flatten(), weight=we, ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        ls, le, ys, ye = predict(model, val)
        ms = metrics(ys.flatten().numpy(), ls.argmax(-1).flatten().numpy())
        me = metrics(ye.flatten().numpy(), le.argmax(-1).flatten().numpy())
        score = ms["wf1"] if args.select == "strategy" else (ms["wf1"] + me["wf1"]) / 2
        if score > best[0]:
            best = (
                score,
                {"strategy": ms, "client_emotion": me, "epoch": epoch, "ps": ls.softmax(-1), "pe": le.softmax(-1), "ys": ys, "ye": ye},
                epoch,
            )
            best_state = copy.deepcopy(model.state_dict())
        if epoch - best[2] >= args.patience:
            break
    if test is not None:  # once, with the epoch chosen on val
        model.load_state_dict(best_state)
        ls, le, ys, ye = predict(model, test)
        best[1].update(test_ps=ls.softmax(-1), test_pe=le.softmax(-1), test_ys=ys, test_ye=ye)
    return best[1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kind", default="gru")
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--emb-dropout", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--wd", type=float, default=0.01)
    p.add_argument("--power", type=float, default=0.5)
    p.add_argument("--ls", type=float, default=0.0)
    p.add_argument("--emo-w", type=float, default=1.0)
    p.add_argument("--bs", type=int, default=16)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--patience", type=int, default=8)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--select", default="strategy")
    p.add_argument("--no-labels", action="store_true")
    p.add_argument("--tag", default="")
    p.add_argument("--data", default=os.environ.get("MMRL_MESC_DIR", "../shared/data/mesc"))
    p.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/mmrl/text-embeddings"))
    p.add_argument("--log", default="strategy_explore.jsonl")
    p.add_argument("--members", type=int, default=1)
    p.add_argument("--seed-stride", type=int, default=100, help="member m of seed s is seeded s * stride + m")
    p.add_argument("--test", action="store_true", help="score each model, at the epoch chosen on val, on test once")
    args = p.parse_args()
    corpus = load_corpus(args.data, "mesc")
    cache = TextEmbeddingCache("all-MiniLM-L6-v2", args.cache_dir)
    t0 = time.time()
    train, val = prep(corpus.split("train"), cache), prep(corpus.split("val"), cache)
    test = prep(corpus.split("test"), cache) if args.test else None
    results = []
    for seed in range(args.seeds):
        members = [run(train, val, args, seed * args.seed_stride + m, test) for m in range(args.members)]
        r = members[0]

        def scores(prefix):
            ps, pe = sum(m[f"{prefix}ps"] for m in members), sum(m[f"{prefix}pe"] for m in members)
            return {
                "strategy": metrics(r[f"{prefix}ys"].flatten().numpy(), ps.argmax(-1).flatten().numpy()),
                "client_emotion": metrics(r[f"{prefix}ye"].flatten().numpy(), pe.argmax(-1).flatten().numpy()),
            }

        results.append({**scores(""), "epoch": [m["epoch"] for m in members], "test": scores("test_") if args.test else None})
    s = np.array([r["strategy"]["wf1"] for r in results])
    a = np.array([r["strategy"]["acc"] for r in results])
    e = np.array([r["client_emotion"]["wf1"] for r in results])
    line = {
        "tag": args.tag,
        "args": {k: v for k, v in vars(args).items() if k != "tag"},
        "val_strategy_wf1": [round(x, 4) for x in s],
        "mean": round(s.mean(), 4),
        "acc_mean": round(a.mean(), 4),
        "emo_wf1_mean": round(e.mean(), 4),
        "epochs": [r["epoch"] for r in results],
        "seconds": round(time.time() - t0, 1),
    }
    if args.test:
        line["test"] = {
            "strategy_wf1": [round(r["test"]["strategy"]["wf1"], 4) for r in results],
            "strategy_acc": [round(r["test"]["strategy"]["acc"], 4) for r in results],
            "emo_wf1": [round(r["test"]["client_emotion"]["wf1"], 4) for r in results],
        }
    print(json.dumps(line))
    with open(args.log, "a") as f:
        f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
