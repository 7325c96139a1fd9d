"""Distilling the cross-encoder into the local criteria's learned term (:mod:`rewards.criteria.distilled`).

``mmrl rewards build --data MESC_DIR --distil`` runs :func:`build_distilled`:

1. :func:`teacher_rows`: (context, reply) pairs from MESC *train* only — for every target turn its real
   reply, two replies of other dialogues, one of another turn of the same dialogue, a training generic
   reply, the real reply with a training filler appended, its first half (eight words or more) and, for
   three turns in ten, the client's own words — plus every criterion's written training pairs and their
   augmentation (:func:`rewards.criteria.learned.augment`).
2. :func:`teacher_outputs`: the teacher's calibrated cross-encoder outputs and its two fit terms per row
   (about 25 minutes on 2 CPU cores for ~40,000 rows), cached under ``$MMRL_CACHE/distil/`` by a digest
   of the teacher and the rows; the targets are the ``cross_<criterion>`` log-odds and the fit log-odds.
3. :func:`train`: each of :data:`MEMBERS` networks (seeds apart) regresses the targets from
   :func:`rewards.criteria.distilled.inputs` (mean squared error) while a pairwise loss
   ``softplus(s(worse) − s(better))`` on each written pair's criterion and a listwise loss (the KL
   divergence of its softmax over one turn's rows from the teacher's, on fit and reliability) keep the
   orderings the teacher gets right; a few minutes. Width, epochs and loss weights were chosen on MESC val
   and the dev pairs, where one network's figures moved by a few points from seed to seed: the members'
   mean steadies them.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmrl.labels import TRUST_CRITERIA
from rewards.base import Context

__all__ = ["EPOCHS", "LISTWISE", "MEMBERS", "PAIRWISE", "build_distilled", "targets", "teacher_outputs", "teacher_rows", "train"]

EPOCHS = 20
MEMBERS = 3
PAIRWISE = 1.0
LISTWISE = 1.0
_BATCH = 256


def teacher_rows(mesc: Path, seed: int = 7) -> tuple[list[Context], list[str], np.ndarray, np.ndarray]:
    """Contexts, replies, each row's group (its MESC turn, or −1 for pair rows) and each row's pair criterion (index into
    ``TRUST_CRITERIA``; −1 outside pairs). Pair rows come as (better, worse) in consecutive rows."""
    from mmrl.data import load_corpus
    from rewards.criteria.learned import TRAINING_FILLERS, TRAINING_GENERICS, augment, load_pairs, mesc_contexts, pairs_path
    from rewards.probe import other_replies, probe_contexts

    rng = random.Random(seed)
    turns = probe_contexts(load_corpus(mesc, "mesc").split("train"), min_words=1)
    others = other_replies(turns, 2, rng)
    by_dialogue: dict[str | None, list[int]] = {}
    for i, turn in enumerate(turns):
        by_dialogue.setdefault(turn.dialogue_id, []).append(i)
    contexts: list[Context] = []
    replies: list[str] = []
    group: list[int] = []
    for i, turn in enumerate(turns):
        real = turn.reference or ""
        rows = [real, *others[i]]
        same = [j for j in by_dialogue[turn.dialogue_id] if j != i]
        if same:
            rows.append(turns[rng.choice(same)].reference or "")
        rows += [rng.choice(TRAINING_GENERICS), f"{real.rstrip()} {rng.choice(TRAINING_FILLERS)}"]
        if len(real.split()) >= 8:
            rows.append(" ".join(real.split()[: len(real.split()) // 2]))
        if rng.random() < 0.3:
            rows.append(turn.client_utterance)
        contexts += [turn] * len(rows)
        replies += rows
        group += [i] * len(rows)
    criterion = [-1] * len(replies)
    for k, name in enumerate(TRUST_CRITERIA):
        written = load_pairs(pairs_path(name, "train"), lambda: mesc_contexts(mesc))
        for context, better, worse in [*written, *augment(written, name)]:
            contexts += [context, context]
            replies += [better, worse]
            group += [-1, -1]
            criterion += [k, k]
    return contexts, replies, np.array(group), np.array(criterion)


def _teacher_digest(contexts: Sequence[Context], replies: Sequence[str]) -> str:
    from mmrl.errors import ConfigError
    from rewards import context_fit, cross_encoder, fit_encoder
    from rewards.criteria.learned import _code

    digest = hashlib.sha256()
    for path in (cross_encoder.ARTEFACT, fit_encoder.ARTEFACT, context_fit.ARTEFACT):
        if not path.is_file():
            raise ConfigError(f"distillation needs the teacher's artefact {path}; build it first (`mmrl rewards build --help`)")
        digest.update(path.read_bytes())
    for module in (cross_encoder.__file__, fit_encoder.__file__, context_fit.__file__):
        digest.update(_code(Path(module)))
    for context, reply in zip(contexts, replies, strict=True):  # what the teacher reads of each row
        digest.update(repr((context.history, context.client_utterance, context.situation, reply)).encode())
    return digest.hexdigest()[:24]


def teacher_outputs(contexts: Sequence[Context], replies: Sequence[str], progress: bool = True) -> np.ndarray:
    """``(n, 9)``: the cross-encoder's calibrated outputs, the static fit and the encoder fit per row (cached on disk)."""
    from mmrl.files import cache_root, cached_arrays

    def compute() -> dict[str, np.ndarray]:
        from tqdm.auto import tqdm

        from rewards.criteria.common import context_fit
        from rewards.cross_encoder import _batched_logits, load_model
        from rewards.fit_encoder import fit_log_odds

        model, parts = load_model(), []
        for start in tqdm(range(0, len(replies), 256), desc="teacher", disable=not progress):
            cs, rs = list(contexts[start : start + 256]), list(replies[start : start + 256])
            static = np.asarray(context_fit(cs, rs))
            parts.append(np.column_stack([_batched_logits(model, cs, rs), static, np.asarray(fit_log_odds(cs, rs)) - static]))
        return {"outputs": np.concatenate(parts).astype(np.float32)}

    path = cache_root() / "distil" / f"teacher-{_teacher_digest(contexts, replies)}.safetensors"
    return cached_arrays(path, ("outputs",), compute)["outputs"]


def targets(teacher: np.ndarray) -> np.ndarray:
    """``(n, 8)``: the ``cross_<criterion>`` log-odds (capped, weighted fit added) and the fit log-odds, from teacher outputs."""
    from rewards.cross_encoder import FIT_CAP, FIT_WEIGHTS

    fit = teacher[:, 7] + teacher[:, 8]
    weights = np.array([FIT_WEIGHTS.get(name, 0.0) for name in TRUST_CRITERIA])
    return np.column_stack([teacher[:, :7] + np.outer(np.minimum(fit, FIT_CAP), weights), fit])


def train(
    x: np.ndarray, y: np.ndarray, group: np.ndarray, criterion: np.ndarray, *, epochs: int = EPOCHS, members: int = MEMBERS, seed: int = 0
) -> dict:
    """Fit ``members`` networks (see the module docstring; seeds ``seed``, ``seed + 1``, ...) and return their stacked arrays
    for :mod:`rewards.criteria.distilled`, which averages their outputs."""
    parts = [_train_one(x, y, group, criterion, epochs, seed + m) for m in range(members)]
    mean, scale = _standardisation(x)
    stacked = {
        k: np.stack([p[k] for p in parts]).astype(np.float16 if k.startswith("w") else np.float32) for k in parts[0]
    }  # halves the file
    return {"mean": mean.astype(np.float32), "scale": scale.astype(np.float32)} | stacked


def _standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale per input column; a column constant in training keeps scale 1 (its noise is not blown up)."""
    std = x.std(0)
    return x.mean(0), np.where(std > 1e-6, std, 1.0)


def _train_one(x: np.ndarray, y: np.ndarray, group: np.ndarray, criterion: np.ndarray, epochs: int, seed: int) -> dict[str, np.ndarray]:
    import torch

    from rewards.criteria.distilled import HIDDEN, OUTPUTS

    torch.manual_seed(seed)
    mean, scale = _standardisation(x)
    xt, yt = torch.tensor((x - mean) / scale, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    in_pairs = np.flatnonzero(criterion >= 0)
    better = torch.tensor(in_pairs[::2])  # pair rows come as (better, worse)
    pair_criterion = torch.tensor(criterion[better.numpy()])
    turns = [np.flatnonzero(group == g) for g in np.unique(group[group >= 0])]
    width = max((len(t) for t in turns), default=1)
    padded = torch.tensor(np.array([np.pad(t, (0, width - len(t)), constant_values=-1) for t in turns]).reshape(-1, width))
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], HIDDEN), torch.nn.GELU(), torch.nn.Dropout(0.1), torch.nn.Linear(HIDDEN, len(OUTPUTS))
    )
    optimiser = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-2)
    listed = [OUTPUTS.index("fit"), OUTPUTS.index("reliability")]
    for _ in range(epochs):
        net.train()
        for batch in torch.randperm(len(xt)).split(_BATCH):
            loss = ((net(xt[batch]) - yt[batch]) ** 2).mean()
            if len(better):
                pick = torch.randint(0, len(better), (_BATCH // 2,))
                rows, column = better[pick], pair_criterion[pick]
                gap = net(xt[rows + 1]).gather(1, column[:, None]) - net(xt[rows]).gather(1, column[:, None])
                loss = loss + PAIRWISE * torch.nn.functional.softplus(gap).mean()
            if len(padded):
                chosen = padded[torch.randint(0, len(padded), (32,))]
                mask, index = chosen >= 0, chosen.clamp(min=0).reshape(-1)
                out = net(xt[index]).reshape(*chosen.shape, -1)[..., listed].masked_fill(~mask[..., None], -1e9)
                tgt = yt[index].reshape(*chosen.shape, -1)[..., listed].masked_fill(~mask[..., None], -1e9)
                kl = torch.nn.functional.kl_div(out.log_softmax(1), tgt.log_softmax(1), log_target=True, reduction="none")
                loss = loss + LISTWISE * (kl * mask[..., None]).sum() / len(chosen)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    net.eval()
    first, _, _, last = net
    arrays = {"w1": first.weight.T, "b1": first.bias, "w2": last.weight.T, "b2": last.bias}
    return {k: v.detach().numpy().copy() for k, v in arrays.items()}


def build_distilled(mesc: Path, *, epochs: int = EPOCHS, seed: int = 0, progress: bool = True) -> dict:
    """Label the rows with the teacher (cached), compute the local inputs, train, and write the shipped artefact."""
    from safetensors.numpy import save_file

    from mmrl.files import atomic_file
    from rewards.criteria import distilled

    contexts, replies, group, criterion = teacher_rows(mesc)
    y = targets(teacher_outputs(contexts, replies, progress))
    x = np.concatenate([distilled.inputs(contexts[i : i + 2048], replies[i : i + 2048]) for i in range(0, len(replies), 2048)])
    arrays = train(x, y, group, criterion, epochs=epochs, seed=seed)
    with atomic_file(distilled.ARTEFACT) as tmp:
        save_file(arrays, tmp, metadata={"key": distilled.key(), "data": "MESC train, written training pairs", "epochs": str(epochs)})
    distilled._network.cache_clear()
    distilled._MEMO.clear()
    return {"rows": len(replies), "turns": int(group.max() + 1), "pair_rows": int((criterion >= 0).sum())}
