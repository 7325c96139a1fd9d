"""``cross_context_fit``: context fit read by the packaged MiniLM as a bi-encoder fine-tuned on real MESC dialogues (opt-in).

The context (:func:`rewards.cross_encoder.context_text`: the last two turns and the client's utterance)
and the reply are embedded apart by the packaged all-MiniLM-L6-v2 with LoRA adapters (rank :data:`RANK`
on every linear layer), mean-pooled and normalised. Training (:func:`train_fit_encoder`) uses MESC train
only: an InfoNCE loss on ``SCALE · cosine`` ranks each context's real counsellor reply above the batch's
replies from other dialogues, a few generic replies and real replies with a generic filler appended; the
epoch with the best recall@1 on MESC val is kept.

What it scores is **specificity**, as :mod:`rewards.context_fit` does with static features:
``pmi = r · (c − μ)``, the cosine of the reply with this context minus its mean cosine with reference
contexts (exact, since the mean of dot products is the dot product with the mean): ``μ`` is the mean
embedding of MESC train contexts (``reference="corpus"``) or of the batch's other distinct contexts
(``"batch"``); ``scale`` comes from a logistic regression of real against other-dialogue replies on MESC
train. ``cross_context_fit = logistic(scale · pmi + static)``, with ``static`` the bounded log-odds of
:mod:`rewards.context_fit` (same reference): the two read different things (meaning; shared rare words)
and their sum ranked the real reply first more often on MESC val than either alone (0.576 of 250
contexts against 0.548 and 0.536, with ``context_fit`` v1). A reply that fits any conversation scores about 0.5.

The adapters, ``μ`` and ``scale`` (~2.7 MB, no MESC text) ship in ``rewards/models/fit_encoder.safetensors``,
built by ``mmrl rewards build --data MESC_DIR --fit-encoder`` (3 epochs, about 30 minutes on 2 CPU cores). It costs
one short transformer forward per reply and one per distinct context; the cross-encoder's criteria
(:mod:`rewards.cross_encoder`) read it as their fit term.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmrl.errors import ConfigError
from rewards.base import Context
from rewards.context_fit import Reference
from rewards.criteria.common import logistic
from rewards.criteria.learned import TRAINING_FILLERS, TRAINING_GENERICS
from rewards.cross_encoder import context_text
from rewards.lora import RANK, adapted, load_trained, mean_pool, optimiser, packaged_minilm, trained_state
from rewards.registry import register

if TYPE_CHECKING:
    import torch

__all__ = [
    "ARTEFACT",
    "RANK",
    "SCALE",
    "FitEncoder",
    "calibrate",
    "encoder_log_odds",
    "fit_log_odds",
    "load_model",
    "pmi",
    "recall_at_1",
    "save",
    "train_fit_encoder",
]

ARTEFACT = Path(str(files("rewards") / "models" / "fit_encoder.safetensors"))
#: Inverse temperature of the InfoNCE loss on cosines.
SCALE = 20.0
CONTEXT_TOKENS, REPLY_TOKENS = 128, 64
#: Per training batch: generic replies shared by every context, and real replies of the batch with a filler appended (each a
#: negative for its own context only).
GENERICS_PER_BATCH, PADDED_PER_BATCH = 4, 8


def _build_module(base, tokenizer):
    import torch

    class FitEncoder(torch.nn.Module):
        """MiniLM (or any BERT-like ``base``) with LoRA adapters and mean pooling; buffers ``mean`` (μ) and ``scale``."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = adapted(base)
            self.tokenizer = tokenizer
            self.register_buffer("mean", torch.zeros(base.config.hidden_size))
            self.register_buffer("scale", torch.ones(1))

        def forward(self, texts: Sequence[str], max_length: int) -> torch.Tensor:
            """``(n, hidden)`` normalised mean-pooled embeddings."""
            batch = self.tokenizer([t or "" for t in texts], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            pooled = mean_pool(self.encoder(**batch).last_hidden_state, batch["attention_mask"])
            return torch.nn.functional.normalize(pooled, dim=-1)

        def trained_state(self) -> dict[str, torch.Tensor]:
            """What training and calibration change (adapters, ``mean``, ``scale``): what the artefact stores."""
            return trained_state(self, ("mean", "scale"))

    return FitEncoder()


def FitEncoder(base=None, tokenizer=None):  # noqa: N802  (a factory: torch and peft load only when a model is built)
    """A fresh fit encoder over ``base``/``tokenizer`` (default: the packaged all-MiniLM-L6-v2, no download)."""
    if base is None:
        base, tokenizer = packaged_minilm()
    return _build_module(base, tokenizer)


def _vectors(model, texts: Sequence[str], max_length: int, size: int = 64) -> np.ndarray:
    """Embeddings of the distinct ``texts``, in order, without gradients."""
    import torch

    distinct = list(dict.fromkeys(texts))
    model.eval()
    with torch.no_grad():
        parts = [model(distinct[i : i + size], max_length).numpy() for i in range(0, len(distinct), size)]
    table = np.concatenate(parts) if parts else np.zeros((0, model.mean.shape[0]), dtype=np.float32)
    where = {text: i for i, text in enumerate(distinct)}
    return table[[where[t] for t in texts]] if texts else table


def pmi(model, contexts: Sequence[Context], replies: Sequence[str], reference: Reference = "corpus") -> np.ndarray:
    """``r · (c − μ)`` per reply: μ the stored mean of MESC train contexts, or (``"batch"``, with at least two distinct
    contexts) the mean of the batch's other distinct contexts."""
    if len(contexts) != len(replies):
        raise ConfigError(f"cross_context_fit: {len(contexts)} contexts but {len(replies)} replies")
    texts = [context_text(c) for c in contexts]
    c = _vectors(model, texts, CONTEXT_TOKENS)
    r = _vectors(model, list(replies), REPLY_TOKENS)
    distinct = {text: i for i, text in enumerate(texts)}  # one row per distinct context
    if reference == "batch" and len(distinct) > 1:
        total = c[list(distinct.values())].sum(axis=0)
        mean = (total[None, :] - c) / (len(distinct) - 1)
    else:
        mean = model.mean.numpy()[None, :]
    return np.einsum("ij,ij->i", r, c - mean)


def _need_two_dialogues(contexts: Sequence[Context], what: str) -> None:
    if len({c.dialogue_id for c in contexts}) < 2:
        raise ConfigError(f"{what} needs contexts from at least two dialogues (the others give the negatives)")


def recall_at_1(model, contexts: Sequence[Context], n_candidates: int = 10, seed: int = 0) -> float:
    """Share of ``contexts`` whose real reply has the highest pmi among itself and replies of other dialogues."""
    from rewards.probe import other_replies

    others = other_replies(contexts, n_candidates - 1, random.Random(seed))
    real = pmi(model, contexts, [c.reference or "" for c in contexts])
    best = np.max([pmi(model, contexts, [row[j] for row in others]) for j in range(n_candidates - 1)], axis=0)
    return float(np.mean(real > best))


def train_fit_encoder(
    dialogues: Sequence[Context],
    val: Sequence[Context] = (),
    *,
    model=None,
    epochs: int = 2,
    batch_size: int = 32,
    lr: float = 5e-4,
    seed: int = 0,
    progress: bool = False,
) -> tuple[object, dict]:
    """Train on ``dialogues`` (contexts with their real ``reference`` reply and ``dialogue_id``); keep the epoch with the best
    recall@1 on ``val`` (the last without it). ``mean`` is set from the training contexts; call :func:`calibrate` after."""
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = model if model is not None else FitEncoder()
    dialogues = [c for c in dialogues if (c.reference or "").strip()]
    _need_two_dialogues(dialogues, "fit-encoder training")
    if val:
        _need_two_dialogues(val, "fit-encoder validation")
    if epochs < 1 or batch_size < 2:
        raise ConfigError(f"fit-encoder training needs epochs >= 1 and batch_size >= 2, got {epochs} and {batch_size}")
    size = min(batch_size, len(dialogues))
    padded = min(PADDED_PER_BATCH, size)
    adamw, schedule = optimiser(model, lr, epochs * (len(dialogues) // size))
    dialogue = np.array([c.dialogue_id for c in dialogues])
    report: dict = {"contexts": len(dialogues), "val_contexts": len(val), "epochs": []}
    best: tuple[float, dict] | None = None
    for epoch in range(epochs):
        model.train()
        order = np.random.default_rng(seed + epoch).permutation(len(dialogues))
        losses = []
        for start in range(0, len(order) - size + 1, size):
            index = order[start : start + size]
            rows = [dialogues[i] for i in index]
            extra = [
                *rng.sample(TRAINING_GENERICS, GENERICS_PER_BATCH),
                *(f"{c.reference.rstrip()} {rng.choice(TRAINING_FILLERS)}" for c in rows[:padded]),
            ]
            logits = (
                SCALE * model([context_text(c) for c in rows], CONTEXT_TOKENS) @ model([c.reference for c in rows] + extra, REPLY_TOKENS).T
            )
            mask = torch.zeros_like(logits, dtype=torch.bool)
            mask[:, :size] = torch.from_numpy(dialogue[index][:, None] == dialogue[index][None, :]) & ~torch.eye(size, dtype=torch.bool)
            own = torch.ones(size, padded, dtype=torch.bool)  # a padded reply is a negative for its own context only
            own[torch.arange(padded), torch.arange(padded)] = False
            mask[:, size + GENERICS_PER_BATCH :] = own
            loss = torch.nn.functional.cross_entropy(logits.masked_fill(mask, -1e4), torch.arange(size))
            adamw.zero_grad()
            loss.backward()
            adamw.step()
            schedule.step()
            losses.append(loss.item())
            if progress and len(losses) % 20 == 0:
                print(f"epoch {epoch} step {len(losses)} loss {np.mean(losses[-20:]):.3f}", flush=True)
        with torch.no_grad():
            model.mean.copy_(torch.from_numpy(_vectors(model, [context_text(c) for c in dialogues], CONTEXT_TOKENS).mean(axis=0)))
        entry = {"epoch": epoch, "train_loss": float(np.mean(losses))}
        if val:
            entry["val_recall_at_1"] = recall_at_1(model, val)
        report["epochs"].append(entry)
        if progress:
            print(json.dumps(entry), flush=True)
        score = entry.get("val_recall_at_1", float(epoch))
        if best is None or score > best[0]:
            best = (score, model.trained_state())
    assert best is not None
    model.load_state_dict(best[1], strict=False)
    report["kept_epoch"] = max(range(epochs), key=lambda e: report["epochs"][e].get("val_recall_at_1", e))
    return model, report


def calibrate(model, contexts: Sequence[Context], seed: int = 0) -> float:
    """Set ``scale`` by logistic regression (no intercept) of real (1) against other-dialogue replies (0) on pmi; returns it."""
    from sklearn.linear_model import LogisticRegression

    from rewards.probe import other_replies

    others = [row[0] for row in other_replies(contexts, 1, random.Random(seed))]
    x = np.concatenate([pmi(model, contexts, [c.reference or "" for c in contexts]), pmi(model, contexts, others)])[:, None]
    y = np.concatenate([np.ones(len(contexts)), np.zeros(len(contexts))])
    scale = float(LogisticRegression(fit_intercept=False, C=10.0).fit(x, y).coef_[0, 0])
    model.scale.fill_(scale)
    return scale


def save(model, path: Path = ARTEFACT, metadata: dict[str, str] | None = None) -> None:
    """Write the trained state (adapters, ``mean``, ``scale``) to a safetensors file."""
    from safetensors.torch import save_file

    from mmrl.files import atomic_file

    with atomic_file(path) as tmp:
        save_file(model.trained_state(), tmp, metadata={"rank": str(RANK), **(metadata or {})})


@cache
def load_model(path: Path = ARTEFACT):
    """The shipped fit encoder, adapters merged for inference (a missing, damaged or mismatched artefact is a ConfigError naming
    the build command)."""
    from mmrl.files import read_artefact

    rebuild = "build it with `mmrl rewards build --data MESC_DIR --fit-encoder`"
    meta, state = read_artefact(path, "fit-encoder weights", rebuild, framework="pt")
    if meta.get("rank") != str(RANK):
        raise ConfigError(f"fit-encoder weights {path} were built with adapters of rank {meta.get('rank')}, not {RANK}; {rebuild}")
    return load_trained(FitEncoder(), state, path, "fit-encoder weights", rebuild)


_MEMO: list = []  # the last batch's log-odds: the cross_* criteria scoring one batch share them
_LOCK = threading.Lock()


def encoder_log_odds(model, contexts: Sequence[Context], replies: Sequence[str], reference: Reference = "corpus") -> np.ndarray:
    """The encoder's part of the fit log-odds, ``scale · pmi`` (:func:`fit_log_odds` adds the static context fit)."""
    return float(model.scale) * np.asarray(pmi(model, contexts, replies, reference))


def fit_log_odds(contexts: Sequence[Context], replies: Sequence[str], reference: Reference = "corpus") -> np.ndarray:
    """``scale · pmi`` of the shipped encoder plus the static context fit's bounded log-odds, per reply (last batch memoised)."""
    from rewards.criteria.common import context_fit

    if reference not in ("corpus", "batch"):
        raise ConfigError(f"cross_context_fit: reference must be 'corpus' or 'batch', got {reference!r}")
    key = (tuple(map(id, contexts)), tuple(replies), reference)
    with _LOCK:
        if _MEMO and _MEMO[0][0] == key:
            return _MEMO[0][2]
        model = load_model()
        values = encoder_log_odds(model, contexts, replies, reference) + context_fit(contexts, replies, reference)
        _MEMO[:] = [(key, list(contexts), values)]  # holding the contexts keeps their ids unique while memoised
        return values


@register("cross_context_fit", version="2", score_range=(0.0, 1.0))
def cross_context_fit(contexts: Sequence[Context], replies: Sequence[str], *, reference: Reference = "corpus") -> list[float]:
    """Context fit in (0, 1): the MiniLM bi-encoder fine-tuned on MESC dialogues plus the static context fit (opt-in).

    ``logistic(scale · pmi + static)``; ``reference`` as for ``context_fit``.
    """
    return logistic(fit_log_odds(contexts, replies, reference)).tolist()


def _state_digest(reference: Reference = "corpus") -> str:
    import hashlib

    import rewards.context_fit
    import rewards.criteria.common
    import rewards.cross_encoder

    code = [Path(module.__file__) for module in (rewards.context_fit, rewards.criteria.common, rewards.cross_encoder)]
    files = [ARTEFACT, rewards.context_fit.ARTEFACT, Path(__file__), *code]  # weights, and the code that reads the contexts
    return hashlib.sha256(b"".join(f.read_bytes() if f.is_file() else b"missing" for f in files)).hexdigest()[:24]


cross_context_fit.state_digest = _state_digest
