"""Fitting the ``context_fit`` model on MESC (train split; choices on val) into its shipped artefact.

``mmrl rewards build --data MESC_DIR`` runs :func:`build_context_fit` and writes
``rewards/models/context_fit.safetensors`` (a few minutes on 2 cores). Steps:

1. IDF of each hashed word bucket over MESC train turns, the chance that a word slot holds it, the SIF weight
   ``SIF / (SIF + p(token))`` of each token of the static embeddings (``p``: its frequency in train turns), and per
   segment the mean SIF embedding of train contexts (the reference corpus of the specificity term).
2. The six feature weights and a gain per word bucket (``word_weights = idf · gain``) minimise an
   InfoNCE loss on the specificity ``s(c, r) − E_c' s(c', r)``: for each train target turn the real
   reply against the replies of the batch's other dialogues, two generic replies and the real reply
   with a generic filler appended; L2 on the log-gains. Tried and dropped (val recall@1 of the real
   reply among ten): replies of the same dialogue as negatives (0.47 → 0.32 in a first version) and
   the real reply truncated to half its words (a negative that rewards length).
3. The epoch with the best val recall@1 (the real reply among itself and nine replies of other
   dialogues) is kept; ``scale`` comes from logistic regression of real vs other-dialogue replies
   on train, ``shift`` = 0 so that a generic reply (pmi ≈ 0) scores 0.5.
"""

from __future__ import annotations

import dataclasses
import importlib
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmrl.data.schema import Dialogue
from mmrl.errors import ConfigError
from rewards.base import Context
from rewards.context_fit import BUCKETS, FEATURES, SEGMENTS, ContextFit, segments, sif_embed, word_buckets
from rewards.criteria.common import CRITERIA_MODEL
from rewards.criteria.learned import TRAINING_GENERICS
from rewards.embeddings import encoder
from rewards.probe import FILLERS, other_replies, probe_contexts

__all__ = ["build", "build_context_fit", "build_cross_encoder", "build_fit_encoder", "build_probes", "calibrate_on_mesc", "recall_at_1"]

POWER = 0.5
EPOCHS = 8
BATCH = 256
LR = 0.02
L2 = 1e-4
#: The ``a`` of the SIF token weights ``a / (a + p(token))`` (Arora et al., 2017's usual value; not tuned).
SIF = 1e-3


def _bags(texts: Sequence[str]):
    from scipy import sparse

    rows, cols = [], []
    for i, text in enumerate(texts):
        bucket = word_buckets(text)
        rows.extend([i] * len(bucket))
        cols.extend(bucket.tolist())
    return sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(texts), BUCKETS))


def _statistics(
    train: Sequence[Dialogue], contexts: Sequence[Context], model: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """IDF per bucket over train turns, the chance a word slot holds each bucket (``df / Σ bag sizes``), the SIF weight of
    each static token, and per segment the mean SIF embedding over train contexts."""
    texts = [t.text for d in train for t in d.turns]
    turns = _bags(texts)
    df = np.asarray(turns.sum(axis=0)).ravel()
    idf = np.log((turns.shape[0] + 1) / (df + 1))
    occurrence = (df + 0.5) / (turns.sum() + 0.5 * BUCKETS)
    static = encoder(model).static
    if static is None:
        raise ConfigError(f"context_fit is built on a static embedding model ('static'), got {model!r}")
    ids = static.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    counts = np.bincount([token for row in ids for token in row], minlength=static.vectors.shape[0])
    token_weights = (SIF / (SIF + counts / counts.sum())).astype(np.float32)
    token_weights[static.tokenizer.all_special_ids] = 0.0  # [UNK] (emoji, rare scripts) carries no meaning, only weight ~1
    parts = list(zip(*(segments(c) for c in contexts)))
    mean_vectors = np.stack([sif_embed(texts, token_weights, model).mean(axis=0) for texts in parts])
    return idf, occurrence, token_weights, mean_vectors


def recall_at_1(model: ContextFit, contexts: Sequence[Context], rng: random.Random, n_candidates: int = 10) -> float:
    """Share of contexts whose real reply has the highest pmi among itself and replies of other dialogues."""
    hits = 0
    for c, others in zip(contexts, other_replies(contexts, n_candidates - 1, rng)):
        pmi = model.pmi([c] * n_candidates, [c.reference or "", *others], reference="corpus")
        hits += int(pmi[0] > pmi[1:].max())
    return hits / len(contexts)


class _Batch:
    """Dense tensors of one batch: context segment bags and vectors, candidate reply bags and vectors."""

    def __init__(self, contexts: Sequence[Context], replies: Sequence[str], token_weights: np.ndarray, model: str | None) -> None:
        import torch

        parts = list(zip(*(segments(c) for c in contexts)))
        self.context_bags = [torch.from_numpy(_bags(texts).toarray()) for texts in parts]
        self.context_vectors = [torch.from_numpy(sif_embed(texts, token_weights, model)) for texts in parts]
        self.reply_bags = torch.from_numpy(_bags(replies).toarray())
        self.sizes = [self.context_bags[k].sum(dim=1) for k in range(len(SEGMENTS))]  # distinct words per context segment
        self.reply_vectors = torch.from_numpy(sif_embed(replies, token_weights, model))


def _logits(batch: _Batch, idf, occurrence, mean_vectors, log_gain, weights):
    """``(contexts, replies)`` specificity scores under the current parameters."""
    import torch

    word_weights = idf * torch.exp(log_gain)
    norms = (batch.reply_bags @ idf) ** POWER + 1.0
    out = 0.0
    for k in range(len(SEGMENTS)):
        shared = (batch.context_bags[k] * word_weights) @ batch.reply_bags.T
        chance = 1.0 - torch.exp(batch.sizes[k][:, None] * torch.log1p(-occurrence)[None, :])  # (contexts, buckets)
        expected = (chance * word_weights) @ batch.reply_bags.T
        out = out + weights[k] * (shared - expected) / norms[None, :]
        direction = mean_vectors[k] / mean_vectors[k].norm()
        cosine = batch.context_vectors[k] @ batch.reply_vectors.T - torch.outer(
            batch.context_vectors[k] @ direction, batch.reply_vectors @ direction
        )
        out = out + weights[len(SEGMENTS) + k] * cosine
    return out


def build_context_fit(
    train: Sequence[Dialogue], val: Sequence[Dialogue], *, model: str | None = CRITERIA_MODEL, seed: int = 0
) -> tuple[ContextFit, dict]:
    """Fit the model on ``train`` dialogues, keep the epoch best on ``val``; also return the selection figures."""
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    contexts = probe_contexts(train, min_words=1)  # every target turn with a non-empty real reply
    idf_np, occurrence_np, token_weights, mean_vectors_np = _statistics(train, contexts, model)
    idf, occurrence = torch.tensor(idf_np, dtype=torch.float32), torch.tensor(occurrence_np, dtype=torch.float32)
    mean_vectors = torch.tensor(mean_vectors_np, dtype=torch.float32)
    log_gain = torch.zeros(BUCKETS, requires_grad=True)
    weights = torch.ones(len(FEATURES), requires_grad=True)
    optimiser = torch.optim.Adam([log_gain, weights], lr=LR)
    val_contexts = probe_contexts(val)
    dialogue = np.array([c.dialogue_id for c in contexts])

    def fitted() -> ContextFit:
        word_weights = (idf * torch.exp(log_gain)).detach().numpy().astype(np.float64)
        return ContextFit(
            idf_np,
            word_weights,
            occurrence_np,
            token_weights,
            mean_vectors_np,
            weights.detach().numpy().astype(np.float64),
            POWER,
            1.0,
            0.0,
            model,
        )

    report: dict = {"train_contexts": len(contexts), "val_contexts": len(val_contexts), "val_recall_by_epoch": []}
    best: tuple[float, ContextFit] | None = None
    for epoch in range(EPOCHS):
        order = np.random.default_rng(seed + epoch).permutation(len(contexts))
        for start in range(0, len(order), BATCH):
            index = order[start : start + BATCH]
            rows = [contexts[i] for i in index]
            real = [c.reference or "" for c in rows]
            extra = [*rng.sample(TRAINING_GENERICS, 2), *(f"{r} {rng.choice(FILLERS)}" for r in real)]
            batch = _Batch(rows, real + extra, token_weights, model)
            logits = _logits(batch, idf, occurrence, mean_vectors, log_gain, weights)
            n = len(rows)
            mask = torch.zeros_like(logits, dtype=torch.bool)
            mask[:, :n] = torch.from_numpy(dialogue[index][:, None] == dialogue[index][None, :]) & ~torch.eye(n, dtype=torch.bool)
            own = torch.arange(n)
            mask[:, n + 2 :] = True  # each row keeps only its own padded reply
            mask[own, n + 2 + own] = False
            loss = torch.nn.functional.cross_entropy(logits.masked_fill(mask, -1e4), own) + L2 * (log_gain**2).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        recall = recall_at_1(fitted(), val_contexts, random.Random(seed))
        report["val_recall_by_epoch"].append(round(recall, 4))
        if best is None or recall > best[0]:
            best = (recall, fitted())
    assert best is not None
    scale = _calibration_scale(best[1], contexts, rng)
    final = dataclasses.replace(best[1], scale=scale)
    report.update(val_recall_at_1=best[0], scale=scale, weights=dict(zip(FEATURES, np.round(final.weights, 4).tolist())))
    return final, report


def _calibration_scale(model: ContextFit, contexts: Sequence[Context], rng: random.Random) -> float:
    """Logistic regression without intercept of real (1) vs other-dialogue replies (0) on pmi."""
    from sklearn.linear_model import LogisticRegression

    others = [row[0] for row in other_replies(contexts, 1, rng)]
    real = model.pmi(contexts, [c.reference or "" for c in contexts], reference="corpus")
    other = model.pmi(contexts, others, reference="corpus")
    x = np.concatenate([real, other])[:, None]
    y = np.concatenate([np.ones(len(real)), np.zeros(len(other))])
    return float(LogisticRegression(fit_intercept=False, C=10.0).fit(x, y).coef_[0, 0])


def build_probes(mesc: Path, path: Path | None = None) -> dict[str, float]:
    """Fit every criterion's probe on its training pairs (MESC references resolved in ``mesc``) into the shipped artefact.

    Run after the context_fit artefact is final: each probe's key covers it. Returns each probe's
    accuracy on its own training pairs (written and augmented).
    """
    from safetensors.numpy import save_file

    from mmrl.files import atomic_file
    from mmrl.labels import TRUST_CRITERIA
    from rewards.criteria.common import log_odds
    from rewards.criteria.learned import BOUND, PROBES, mesc_contexts

    path = path or PROBES
    arrays, keys, accuracy = {}, {}, {}
    for name in TRUST_CRITERIA:
        term = importlib.import_module(f"rewards.criteria.{name}").LEARNED
        pairs = term.training_pairs(lambda: mesc_contexts(mesc))
        weights, offset = term.fit(pairs)
        arrays[f"{name}.weights"], arrays[f"{name}.offset"] = weights.astype(np.float64), np.array([offset])
        keys[name] = term.key()
        contexts, better, worse = [c for c, _, _ in pairs], [b for _, b, _ in pairs], [w for _, _, w in pairs]

        def z(replies: list[str]) -> np.ndarray:
            probe = BOUND * np.tanh((term.phi(contexts, replies) @ weights - offset) / BOUND)
            return log_odds(term.weights, term.features(contexts, replies)) + probe

        accuracy[name] = float(np.mean(z(better) > z(worse)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        save_file(arrays, tmp, metadata=keys)
    return accuracy


def build(mesc: Path, *, seed: int = 0) -> dict:
    """Both shipped artefacts from MESC at ``mesc``: the context_fit model, then the criteria probes (whose keys cover it)."""
    from mmrl.data import load_corpus
    from rewards.context_fit import _LAST, ARTEFACT, load_model

    corpus = load_corpus(mesc, "mesc")
    model, report = build_context_fit(corpus.split("train"), corpus.split("val"), seed=seed)
    model.save(ARTEFACT, metadata={"data": "MESC train (val for selection)", "seed": str(seed)})
    load_model.cache_clear()
    _LAST.clear()  # the last batch's pmi came from the old model
    report["probe_training_accuracy"] = build_probes(mesc)
    return report


def build_cross_encoder(mesc: Path, *, epochs: int = 2, seed: int = 0, progress: bool = True) -> dict:
    """Train the opt-in cross-encoder (:mod:`rewards.cross_encoder`) on every criterion's training pairs, keep the epoch best
    on the dev pairs, calibrate it on real MESC train replies, and write its shipped artefact; returns the training report."""
    from mmrl.labels import TRUST_CRITERIA
    from rewards.criteria.learned import load_pairs, mesc_contexts, pairs_path
    from rewards.cross_encoder import ARTEFACT, load_model, save, train_cross_encoder

    def pairs(split: str) -> dict:
        return {name: load_pairs(pairs_path(name, split), lambda: mesc_contexts(mesc)) for name in TRUST_CRITERIA}

    model, report = train_cross_encoder(pairs("train"), pairs("dev"), epochs=epochs, seed=seed, progress=progress)
    report["calibration"] = calibrate_on_mesc(model, mesc, seed=seed)
    save(model, ARTEFACT, metadata={"data": "written training pairs (dev pairs for selection)", "seed": str(seed), "epochs": str(epochs)})
    load_model.cache_clear()
    return report


def build_fit_encoder(mesc: Path, *, epochs: int = 3, seed: int = 0, progress: bool = True) -> dict:
    """Train the opt-in fit encoder (:mod:`rewards.fit_encoder`) on every MESC train turn with a real reply, keep the epoch
    with the best recall@1 on MESC val, calibrate it on MESC train, and write its shipped artefact; returns the report."""
    from mmrl.data import load_corpus
    from rewards.fit_encoder import _MEMO, ARTEFACT, calibrate, load_model, save, train_fit_encoder

    corpus = load_corpus(mesc, "mesc")
    train = probe_contexts(corpus.split("train"), min_words=1)  # every target turn with a non-empty real reply
    model, report = train_fit_encoder(train, probe_contexts(corpus.split("val")), epochs=epochs, seed=seed, progress=progress)
    report["scale"] = calibrate(model, train, seed=seed)
    save(model, ARTEFACT, metadata={"data": "MESC train (val for selection)", "seed": str(seed), "epochs": str(epochs)})
    load_model.cache_clear()
    _MEMO.clear()
    return report


def calibrate_on_mesc(model, mesc: Path, *, n: int = 1000, seed: int = 0) -> dict:
    """Calibrate the cross-encoder (:func:`rewards.cross_encoder.calibrate`) on ``n`` seeded real counsellor replies of MESC train."""
    from mmrl.data import load_corpus
    from rewards.cross_encoder import calibrate

    train = load_corpus(mesc, "mesc").split("train")
    contexts = probe_contexts(train, min_words=1)  # every target turn with a non-empty real reply
    sample = random.Random(seed).sample(contexts, min(n, len(contexts)))
    return calibrate(model, sample, [c.reference or "" for c in sample])
