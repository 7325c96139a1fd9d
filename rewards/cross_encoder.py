"""``cross_<criterion>``: the seven trust criteria read by one cross-encoder fine-tuned on the labelled pairs (opt-in).

The local criteria (:mod:`rewards.criteria`) read words: static embeddings, cues and a linear probe. This
scorer reads the context and the reply *together*: the packaged MiniLM transformer runs over
``"<last two turns> Client: <utterance>" [SEP] <reply>``, and its mean-pooled output goes through one
linear head with an output per criterion. LoRA adapters (rank :data:`RANK` on every linear layer of the
transformer) and the head are trained on the written training pairs of all seven criteria at once with
the pairwise loss ``softplus(s(worse) − s(better))`` on the pair's criterion (half of the worse replies
get a generic filler appended); the epoch with the best dev-pair accuracy is kept.

The pairs never contrast one reply across two conversations, so the outputs judge a reply's quality
but hardly its fit: a reply from another dialogue scores like the real one. So ``cross_<criterion>`` is
``logistic(t · (output − m) + FIT_WEIGHTS[criterion] · min(fit, FIT_CAP))``, with ``fit`` the log-odds of
``cross_context_fit`` (:mod:`rewards.fit_encoder`: a MiniLM bi-encoder fine-tuned on MESC dialogues plus
the static :mod:`rewards.context_fit`), and ``m``, ``t`` calibrated on real MESC train counsellor replies
before fit is added (their median output gets log-odds 0, their :data:`QUANTILE` quantile a score of 0.2).
Fit is capped: it tells a reply that misses this conversation (another dialogue's, a generic one: fit
mostly below the cap) from one that addresses it, but among replies that all address it, the better
one is not the more on-topic one (a wrong reply can quote the client), so above the cap fit adds
nothing and the criterion's own output decides. Cap and weights were chosen on MESC val and the dev
pairs: without the cap, fit bought context at a cost on reliability's pairs; with it, reliability,
safety, ethical guidance and (less) empathy and truthfulness read fit, fairness and privacy do not.

Trained weights (adapters, head, calibration; ~2.7 MB, no MESC text) ship in
``rewards/models/cross_encoder.safetensors``, built by ``mmrl rewards build --data MESC_DIR
--cross-encoder`` (about 15 minutes on 2 CPU cores). It costs a cross-encoder forward per reply, and the
fit encoder's forwards per reply and distinct context — about 30 replies per second on 2 CPU cores, far
more on a GPU — so it is not part of the default reward set; the seven ``cross_*`` rewards scoring one
batch share those forwards.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Mapping, Sequence
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmrl.errors import ConfigError
from mmrl.labels import TRUST_CRITERIA
from rewards.base import Context
from rewards.criteria.common import logistic
from rewards.criteria.learned import TRAINING_FILLERS, Pair
from rewards.lora import RANK, adapted, load_trained, mean_pool, optimiser, packaged_minilm, trained_state
from rewards.registry import register

if TYPE_CHECKING:
    import torch

__all__ = [
    "ARTEFACT",
    "CROSS_REWARDS",
    "FIT_CAP",
    "FIT_WEIGHTS",
    "QUANTILE",
    "RANK",
    "CrossEncoder",
    "calibrate",
    "context_text",
    "fit_term",
    "load_model",
    "pair_accuracy",
    "save",
    "scores",
    "train_cross_encoder",
]

ARTEFACT = Path(str(files("rewards") / "models" / "cross_encoder.safetensors"))
MAX_LENGTH = 160
#: Weight of the capped fit log-odds (``rewards.fit_encoder.fit_log_odds``) per criterion, and the cap (chosen on MESC val
#: and the dev pairs).
FIT_WEIGHTS = {"reliability": 2.0, "safety": 0.5, "ethical_guidance": 0.5, "empathy": 0.5, "truthfulness": 0.25}
FIT_CAP = 3.5
#: Calibration: this quantile of real MESC train counsellor replies scores 0.2 on every criterion (the median 0.5).
QUANTILE = 0.025
_HISTORY_CHARS = 300


def context_text(context: Context) -> str:
    """What the cross-encoder reads of a context: the last two turns (their last characters) and the client's utterance."""
    history = " ".join(text for _, text in context.history[-2:])[-_HISTORY_CHARS:]
    return f"{history} Client: {context.client_utterance}".strip()


def _build_module(base, tokenizer):
    import torch

    class CrossEncoder(torch.nn.Module):
        """MiniLM (or any BERT-like ``base``) with LoRA adapters, mean pooling and one linear output per trust criterion."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = adapted(base)
            self.tokenizer = tokenizer
            self.head = torch.nn.Linear(base.config.hidden_size, len(TRUST_CRITERIA))
            self.register_buffer("offset", torch.zeros(len(TRUST_CRITERIA)))
            self.register_buffer("temperature", torch.ones(len(TRUST_CRITERIA)))

        def forward(self, contexts: Sequence[Context], replies: Sequence[str]) -> torch.Tensor:
            """``(n, 7)`` calibrated log-odds ``t · (output − m)``, one column per criterion of ``TRUST_CRITERIA``."""
            batch = self.tokenizer(
                [context_text(c) for c in contexts], [r or "" for r in replies], truncation="longest_first",
                max_length=MAX_LENGTH, padding=True, return_tensors="pt",
            )  # fmt: skip
            pooled = mean_pool(self.encoder(**batch).last_hidden_state, batch["attention_mask"])
            return (self.head(pooled) - self.offset) * self.temperature

        def trained_state(self) -> dict[str, torch.Tensor]:
            """What training and calibration change (adapters, head, offset, temperature): what the artefact stores."""
            return trained_state(self, ("head.", "offset", "temperature"))

    return CrossEncoder()


def CrossEncoder(base=None, tokenizer=None):  # noqa: N802  (a factory: torch and peft load only when a model is built)
    """A fresh cross-encoder over ``base``/``tokenizer`` (default: the packaged all-MiniLM-L6-v2, no download)."""
    if base is None:
        base, tokenizer = packaged_minilm()
    return _build_module(base, tokenizer)


def _batched_logits(model, contexts: Sequence[Context], replies: Sequence[str], size: int = 64) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        parts = [model(contexts[i : i + size], replies[i : i + size]).numpy() for i in range(0, len(replies), size)]
    return np.concatenate(parts) if parts else np.zeros((0, len(TRUST_CRITERIA)))


def pair_accuracy(model, pairs: Mapping[str, Sequence[Pair]]) -> dict[str, float]:
    """Per criterion, the share of its pairs whose better reply gets the higher output."""
    out = {}
    for name, items in pairs.items():
        column = TRUST_CRITERIA.index(name)
        contexts = [c for c, _, _ in items]
        better = _batched_logits(model, contexts, [b for _, b, _ in items])[:, column]
        worse = _batched_logits(model, contexts, [w for _, _, w in items])[:, column]
        out[name] = float(np.mean(better > worse))
    return out


def train_cross_encoder(
    pairs: Mapping[str, Sequence[Pair]],
    dev: Mapping[str, Sequence[Pair]] | None = None,
    *,
    model=None,
    epochs: int = 2,
    batch_size: int = 16,
    lr: float = 5e-4,
    seed: int = 0,
    progress: bool = False,
) -> tuple[object, dict]:
    """Train on ``pairs`` (criterion → (context, better, worse)); keep the epoch best on ``dev`` (the last without it)."""
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = model if model is not None else CrossEncoder()
    if epochs < 1 or batch_size < 1:
        raise ConfigError(f"cross-encoder training needs epochs >= 1 and batch_size >= 1, got {epochs} and {batch_size}")
    unknown = sorted(set(pairs) - set(TRUST_CRITERIA))
    if unknown:
        raise ConfigError(f"cross-encoder pairs for unknown criteria {unknown}; expected some of {list(TRUST_CRITERIA)}")
    items = [(TRUST_CRITERIA.index(name), *pair) for name, group in pairs.items() for pair in group]
    if not items:
        raise ConfigError("cross-encoder training needs at least one labelled pair")
    adamw, schedule = optimiser(model, lr, epochs * max(1, len(items) // batch_size))
    report: dict = {"pairs": len(items), "epochs": []}
    best: tuple[float, dict] | None = None
    for epoch in range(epochs):
        model.train()
        rng.shuffle(items)
        losses = []
        for start in range(0, max(1, len(items) - batch_size + 1), batch_size):  # full batches only (one when fewer pairs)
            batch = items[start : start + batch_size]
            worse = [w if rng.random() < 0.5 else f"{w.rstrip()} {rng.choice(TRAINING_FILLERS)}" for _, _, _, w in batch]
            logits = model([c for _, c, _, _ in batch] * 2, [b for _, _, b, _ in batch] + worse)
            column = torch.tensor([k for k, _, _, _ in batch])
            rows = torch.arange(len(batch))
            loss = torch.nn.functional.softplus(logits[len(batch) + rows, column] - logits[rows, column]).mean()
            adamw.zero_grad()
            loss.backward()
            adamw.step()
            schedule.step()
            losses.append(loss.item())
            if progress and len(losses) % 20 == 0:
                print(f"epoch {epoch} step {len(losses)} loss {np.mean(losses[-20:]):.3f}", flush=True)
        entry = {"epoch": epoch, "train_loss": float(np.mean(losses))}
        if dev:
            entry["dev_accuracy"] = pair_accuracy(model, dev)
            entry["dev_mean"] = float(np.mean(list(entry["dev_accuracy"].values())))
        report["epochs"].append(entry)
        if progress:
            print(json.dumps(entry), flush=True)
        score = entry.get("dev_mean", float(epoch))
        if best is None or score > best[0]:
            best = (score, model.trained_state())
    assert best is not None
    model.load_state_dict(best[1], strict=False)
    report["kept_epoch"] = max(range(epochs), key=lambda e: report["epochs"][e].get("dev_mean", e))
    return model, report


def calibrate(model, contexts: Sequence[Context], replies: Sequence[str], quantile: float = QUANTILE) -> dict[str, list[float]]:
    """Set ``m`` (the median output) and ``t`` (so that the ``quantile`` quantile maps to log-odds ln(1/4), a score of 0.2) from
    reference replies, e.g. real counsellors'; returns both."""
    import torch

    with torch.no_grad():
        model.offset.zero_()
        model.temperature.fill_(1.0)
        raw = _batched_logits(model, list(contexts), list(replies))
        median, low = np.median(raw, axis=0), np.quantile(raw, quantile, axis=0)
        model.offset.copy_(torch.from_numpy(median).float())
        model.temperature.copy_(torch.from_numpy(np.log(4.0) / np.maximum(median - low, 1e-6)).float())
    return {"median": median.tolist(), "temperature": model.temperature.tolist()}


def save(model, path: Path = ARTEFACT, metadata: Mapping[str, str] | None = None) -> None:
    """Write the trained state (adapters, head, offsets) to a safetensors file."""
    from safetensors.torch import save_file

    from mmrl.files import atomic_file

    with atomic_file(path) as tmp:
        save_file(model.trained_state(), tmp, metadata={"criteria": ",".join(TRUST_CRITERIA), "rank": str(RANK), **(metadata or {})})


@cache
def load_model(path: Path = ARTEFACT):
    """The shipped cross-encoder, adapters merged for inference (a missing, damaged or mismatched artefact is a ConfigError naming
    the build command)."""
    from mmrl.files import read_artefact

    rebuild = "build it with `mmrl rewards build --data MESC_DIR --cross-encoder`"
    meta, state = read_artefact(path, "cross-encoder weights", rebuild, framework="pt")
    if meta.get("criteria") != ",".join(TRUST_CRITERIA) or meta.get("rank") != str(RANK):
        raise ConfigError(f"cross-encoder weights {path} were built for other criteria or adapters; {rebuild}")
    return load_trained(CrossEncoder(), state, path, "cross-encoder weights", rebuild)


def fit_term(fit: np.ndarray) -> np.ndarray:
    """``(n, 7)``: what the fit log-odds ``fit`` add to each criterion's log-odds, ``FIT_WEIGHTS[criterion] · min(fit, FIT_CAP)``."""
    return np.outer(np.minimum(fit, FIT_CAP), [FIT_WEIGHTS.get(name, 0.0) for name in TRUST_CRITERIA])


_MEMO: list = []  # the last batch's outputs: the seven cross_* rewards scoring one batch share one forward
_LOCK = threading.Lock()


def scores(contexts: Sequence[Context], replies: Sequence[str]) -> np.ndarray:
    """``(n, 7)`` scores in (0, 1) of the shipped cross-encoder, one column per criterion (the last batch is memoised)."""
    key = (tuple(map(id, contexts)), tuple(replies))
    with _LOCK:
        if _MEMO and _MEMO[0][0] == key:
            return _MEMO[0][2]
        from rewards.fit_encoder import fit_log_odds

        values = logistic(_batched_logits(load_model(), list(contexts), list(replies)) + fit_term(fit_log_odds(contexts, replies)))
        _MEMO[:] = [(key, list(contexts), values)]  # holding the contexts keeps their ids unique while memoised
        return values


def _state_digest() -> str:
    import hashlib

    from rewards.fit_encoder import _state_digest as fit_digest

    own = ARTEFACT.read_bytes() if ARTEFACT.is_file() else b"missing"
    return hashlib.sha256(own + Path(__file__).read_bytes() + fit_digest().encode()).hexdigest()[:24]


def _criterion_reward(name: str):
    column = TRUST_CRITERIA.index(name)

    def reward(contexts: Sequence[Context], replies: Sequence[str]) -> list[float]:
        return scores(contexts, replies)[:, column].tolist()

    reward.__name__ = f"cross_{name}"
    reward.__doc__ = (
        f"{name.replace('_', ' ').capitalize()} in (0, 1) read by the fine-tuned cross-encoder (opt-in; MiniLM forwards per reply)."
    )
    reward.state_digest = _state_digest
    return register(f"cross_{name}", version="5", score_range=(0.0, 1.0))(reward)


CROSS_REWARDS = {name: _criterion_reward(name) for name in TRUST_CRITERIA}
