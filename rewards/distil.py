"""Distilling the cross-encoder into the local criteria's learned term (:mod:`rewards.criteria.distilled`).

``mmrl rewards build --data MESC_DIR --distil`` runs :func:`build_distilled`:

1. :func:`teacher_rows`: (context, reply) pairs from MESC *train* turns — for every target turn its real
   reply, two replies of other dialogues, one of another turn of the same dialogue, a training generic
   reply, the real reply with a training filler appended, its first half (eight words or more) and, for
   three turns in ten, the client's own words; for half the turns, the real, a generic and another
   dialogue's reply after the client's utterance alone (one-line contexts, as users often write them) —
   plus every criterion's written fitting pairs (:data:`~rewards.criteria.learned.FIT_SPLITS`; since session 13 these
   include ``holdout4`` and ``holdout5``, written over MESC *test* contexts: no real test reply is read, but those
   contexts are) and their augmentation (:func:`rewards.criteria.learned.augment`). :func:`counterfactual_rows` adds every turn row again under
   each demographic swap that changes its context, with the original's targets.
2. :func:`teacher_outputs`: the teacher's calibrated cross-encoder outputs and its two fit terms per row
   (about 50 minutes on 2 quiet CPU cores for ~42,000 rows); the transformers' outputs are cached per row under
   ``$MMRL_CACHE/distil/`` in a file named by the teacher's digest, so added rows cost only their own pass; the
   targets are the ``cross_<criterion>`` log-odds and the fit log-odds.
3. :func:`train`: each of :data:`MEMBERS` networks (seeds apart) regresses the targets from
   :func:`rewards.criteria.distilled.inputs` (mean squared error) while a pairwise loss
   ``softplus(s(worse) − s(better))`` on each written pair's criterion and a listwise loss (the KL
   divergence of its softmax over one turn's rows from the teacher's, on fit and reliability) keep the
   orderings the teacher gets right; about 20 minutes with the inputs. Width, epochs and loss weights were chosen on MESC val
   and the dev pairs, where one network's figures moved by a few points from seed to seed: the members'
   mean steadies them.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from mmrl.labels import TRUST_CRITERIA
from rewards.base import Context

__all__ = [
    "EPOCHS",
    "LISTWISE",
    "MEMBERS",
    "PAIRWISE",
    "build_distilled",
    "counterfactual_rows",
    "targets",
    "teacher_outputs",
    "teacher_rows",
    "train",
]

EPOCHS = 20
MEMBERS = 3
PAIRWISE = 1.0
LISTWISE = 1.0
_BATCH = 256
#: Names what :func:`_teacher_pass` computes (part of the teacher's digest: change it when that changes).
_TEACHER_PASS = "cross-encoder calibrated logits; fit encoder scale * pmi (corpus)"


def teacher_rows(mesc: Path, seed: int = 7) -> tuple[list[Context], list[str], np.ndarray, np.ndarray]:
    """Contexts, replies, each row's group (its MESC turn ``i``; ``turns + i`` for the turn's one-line rows; −1 for pair rows)
    and each row's pair criterion (index into ``TRUST_CRITERIA``; −1 outside pairs). Pair rows come last, as (better,
    worse) in consecutive rows."""
    from mmrl.data import load_corpus
    from rewards.criteria.learned import TRAINING_FILLERS, TRAINING_GENERICS, augment, fitting_pairs, mesc_contexts
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
    for i, turn in enumerate(turns):  # half the turns again with the client's utterance alone (a one-line context)
        if rng.random() < 0.5:
            rows = [turn.reference or "", rng.choice(TRAINING_GENERICS), others[i][0]]
            contexts += [replace(turn, history=(), situation=None)] * len(rows)
            replies += rows
            group += [len(turns) + i] * len(rows)
    criterion = [-1] * len(replies)
    for k, name in enumerate(TRUST_CRITERIA):
        written = fitting_pairs(name, lambda: mesc_contexts(mesc))
        for context, better, worse in [*written, *augment(written, name)]:
            contexts += [context, context]
            replies += [better, worse]
            group += [-1, -1]
            criterion += [k, k]
    return contexts, replies, np.array(group), np.array(criterion)


def _teacher_digest() -> str:
    """A digest of the teacher's transformers (the cross-encoder's and the fit encoder's artefacts and code), which names the
    cache of their outputs; the static context fit, cheap, is recomputed instead."""
    from mmrl.errors import ConfigError
    from rewards import cross_encoder, fit_encoder, lora
    from rewards.criteria.learned import _code

    digest = hashlib.sha256()
    for path in (cross_encoder.ARTEFACT, fit_encoder.ARTEFACT):
        if not path.is_file():
            raise ConfigError(f"distillation needs the teacher's artefact {path}; build it first (`mmrl rewards build --help`)")
        digest.update(path.read_bytes())
    for module in (cross_encoder.__file__, fit_encoder.__file__, lora.__file__):
        digest.update(_code(Path(module)))
    digest.update(_TEACHER_PASS.encode())
    return digest.hexdigest()[:24]


def _read(context: Context) -> tuple:
    """What the teacher and the network read of a context."""
    return (context.history, context.client_utterance, context.situation)


def _row_digests(contexts: Sequence[Context], replies: Sequence[str]) -> np.ndarray:
    """``(n, 16)`` uint8: a digest of what the teacher reads of each row."""
    rows = [hashlib.sha256(repr((*_read(c), r)).encode()).digest()[:16] for c, r in zip(contexts, replies, strict=True)]
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(-1, 16)


def teacher_outputs(contexts: Sequence[Context], replies: Sequence[str], progress: bool = True) -> np.ndarray:
    """``(n, 9)``: the cross-encoder's calibrated outputs, the static fit and the encoder fit per row.

    The transformers' outputs are cached on disk per row, in one file per teacher: new rows (more pairs, say) cost only
    their own pass, and a rebuilt static context fit none.
    """
    from filelock import FileLock
    from safetensors.numpy import save_file

    from mmrl.errors import ConfigError
    from mmrl.files import atomic_file, cache_root, read_arrays
    from rewards.criteria.common import context_fit

    path = cache_root() / "distil" / f"teacher-rows-{_teacher_digest()}.safetensors"
    rows = _row_digests(contexts, replies)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        cached = {"rows": np.zeros((0, 16), np.uint8), "outputs": np.zeros((0, 8), np.float32)}
        if path.exists():
            cached = read_arrays(path, ("rows", "outputs")) or {}
            if cached.get("rows", np.zeros(0)).shape[1:] != (16,) or cached["outputs"].shape != (len(cached["rows"]), 8):
                raise ConfigError(f"the teacher cache {path} is damaged or from another version; delete it (the pass reruns)")
        known = {row.tobytes(): i for i, row in enumerate(cached["rows"])}
        missing = sorted({row.tobytes(): i for i, row in enumerate(rows) if row.tobytes() not in known}.values())
        if missing:
            computed = _teacher_pass([contexts[i] for i in missing], [replies[i] for i in missing], progress)
            offset = len(cached["rows"])
            cached = {"rows": np.concatenate([cached["rows"], rows[missing]]), "outputs": np.concatenate([cached["outputs"], computed])}
            with atomic_file(path) as tmp:
                save_file(cached, tmp)
            known.update({rows[i].tobytes(): offset + k for k, i in enumerate(missing)})
    outputs = cached["outputs"][[known[row.tobytes()] for row in rows]]
    static = np.concatenate([context_fit(contexts[i : i + 4096], replies[i : i + 4096]) for i in range(0, len(replies), 4096)])
    return np.column_stack([outputs[:, :7], static, outputs[:, 7]]).astype(np.float32)


def _teacher_pass(contexts: Sequence[Context], replies: Sequence[str], progress: bool) -> np.ndarray:
    """``(n, 8)``: the cross-encoder's seven calibrated outputs and the fit encoder's scaled pmi."""
    from tqdm.auto import tqdm

    from rewards import cross_encoder, fit_encoder

    model, encoder, parts = cross_encoder.load_model(), fit_encoder.load_model(), []
    for start in tqdm(range(0, len(replies), 256), desc="teacher", disable=not progress):
        cs, rs = list(contexts[start : start + 256]), list(replies[start : start + 256])
        parts.append(np.column_stack([cross_encoder._batched_logits(model, cs, rs), fit_encoder.encoder_log_odds(encoder, cs, rs)]))
    return np.concatenate(parts).astype(np.float32)


def counterfactual_rows(
    contexts: Sequence[Context], replies: Sequence[str], group: np.ndarray
) -> tuple[list[Context], list[str], np.ndarray]:
    """Each turn's rows again under every demographic swap (:mod:`rewards.counterfactual`) that changes its context, with the
    index of the row they copy: trained to the original's targets, they teach the network that such a swap changes nothing."""
    from rewards.counterfactual import AXES, swap_context, swap_text

    out_contexts: list[Context] = []
    out_replies: list[str] = []
    source: list[int] = []
    variants: dict[int, list[tuple[str, Context]]] = {}  # per context object (a turn's rows share it): its applying swaps
    for i in np.flatnonzero(group >= 0):
        context = contexts[i]
        if id(context) not in variants:
            swaps = [(axis, swap_context(context, axis)) for axis in AXES]
            variants[id(context)] = [(axis, c) for axis, c in swaps if _read(c) != _read(context)]
        for axis, swapped in variants[id(context)]:
            out_contexts.append(swapped)
            out_replies.append(swap_text(replies[i], axis))
            source.append(int(i))
    return out_contexts, out_replies, np.array(source, dtype=np.int64)


def targets(teacher: np.ndarray) -> np.ndarray:
    """``(n, 8)``: the ``cross_<criterion>`` log-odds (capped, weighted fit added) and the fit log-odds, from teacher outputs."""
    from rewards.cross_encoder import fit_term

    fit = teacher[:, 7] + teacher[:, 8]
    return np.column_stack([teacher[:, :7] + fit_term(fit), fit])


def train(
    x: np.ndarray, y: np.ndarray, group: np.ndarray, criterion: np.ndarray, *, epochs: int = EPOCHS, members: int = MEMBERS, seed: int = 0
) -> dict:
    """Fit ``members`` networks (see the module docstring; seeds ``seed``, ``seed + 1``, ...) and return their stacked arrays
    for :mod:`rewards.criteria.distilled`, which averages their outputs."""
    mean, scale = _standardisation(x)
    parts = [_train_one((x - mean) / scale, y, group, criterion, epochs, seed + m) for m in range(members)]
    stacked = {
        k: np.stack([p[k] for p in parts]).astype(np.float16 if k.startswith("w") else np.float32) for k in parts[0]
    }  # halves the file
    return {"mean": mean.astype(np.float32), "scale": scale.astype(np.float32)} | stacked


def _standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale per input column; a column constant in training keeps scale 1 (its noise is not blown up)."""
    std = x.std(0)
    return x.mean(0), np.where(std > 1e-6, std, 1.0)


def _train_one(x: np.ndarray, y: np.ndarray, group: np.ndarray, criterion: np.ndarray, epochs: int, seed: int) -> dict[str, np.ndarray]:
    """One network trained on standardised inputs ``x``."""
    import torch

    from rewards.criteria.distilled import HIDDEN, OUTPUTS

    torch.manual_seed(seed)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
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
    """Label the rows with the teacher (cached), compute the local inputs, train, and write the shipped artefact; return the
    number of rows trained on (``rows``: the teacher's and the counterfactual ones), of MESC turns, pair and counterfactual rows."""
    from safetensors.numpy import save_file

    from mmrl.files import atomic_file
    from rewards.criteria import distilled

    contexts, replies, group, criterion = teacher_rows(mesc)
    y = targets(teacher_outputs(contexts, replies, progress))
    swapped, swapped_replies, source = counterfactual_rows(contexts, replies, group)
    contexts, replies = [*contexts, *swapped], [*replies, *swapped_replies]
    y = np.concatenate([y, y[source]])
    group, criterion = (np.concatenate([a, np.full(len(source), -1)]) for a in (group, criterion))
    x = np.concatenate([distilled.inputs(contexts[i : i + 2048], replies[i : i + 2048]) for i in range(0, len(replies), 2048)])
    arrays = train(x, y, group, criterion, epochs=epochs, seed=seed)
    with atomic_file(distilled.ARTEFACT) as tmp:
        save_file(arrays, tmp, metadata={"key": distilled.key(), "data": "MESC train, written training pairs", "epochs": str(epochs)})
    distilled._network.cache_clear()
    distilled._MEMO.clear()
    return {
        "rows": len(replies),
        "turns": int(group.max() + 1),
        "pair_rows": int((criterion >= 0).sum()),
        "counterfactual_rows": len(source),
    }
