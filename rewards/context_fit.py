"""``context_fit``: does a reply fit *this* conversation more than conversations in general? Learned from MESC.

A reply's match with a context is a linear score over six features: for each of three context
segments (the client's utterance; the last three turns and the utterance; the whole history and the
utterance), the IDF-weighted overlap of their words (``Σ idf(w)`` over shared word buckets, divided by
``(Σ idf(w) over the reply)^POWER``) and the cosine of their SIF embeddings (the static token vectors weighted by
``a / (a + p(token))``, ``p`` the token's frequency in MESC train turns: Arora et al., 2017; frequent words no longer
dominate the direction, which raised val recall@1 from 0.536 to 0.560). The weights (and a gain
per word) are fitted on MESC's train split with an InfoNCE loss (the real counsellor reply against
replies of other dialogues, generic replies and filler-padded replies), selected on val
(:mod:`rewards.build`).

**Specificity** is what the reward scores: ``pmi = s(c, r) − mean over other contexts c' of s(c', r)``,
in the spirit of maximum-mutual-information decoding against generic replies (Li et al., 2016). A
reply that would fit any conversation gets ``pmi ≈ 0``; one that picks up this conversation's
specifics gets ``pmi > 0``; one from another conversation ``pmi < 0``. Because ``s`` is linear in
per-context quantities, the mean over a reference corpus comes from stored statistics: the chance
that a word slot of a MESC train context holds each word bucket (so the expectation is taken over
contexts of the same size as this one: a generic reply scores the same after a short or a long
history) and each segment's mean embedding. With ``reference="batch"`` the other prompts of the
batch (a GRPO step) are the reference instead, exactly (their sizes may differ from this one's).

The artefact ``rewards/models/context_fit.safetensors`` (IDF table, token weights, segment statistics, weights,
calibration; ~1 MB, no MESC text) is built by ``mmrl rewards build --data MESC_DIR`` and
shipped: the reward needs no MESC at run time.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Literal

import numpy as np

from mmrl.errors import ConfigError
from rewards.base import Context
from rewards.criteria.common import CRITERIA_MODEL, logistic
from rewards.embeddings import encoder
from rewards.registry import register

__all__ = [
    "ARTEFACT",
    "BUCKETS",
    "FEATURES",
    "ContextFit",
    "Reference",
    "batch_pmi",
    "context_fit",
    "load_model",
    "segments",
    "sif_embed",
    "word_buckets",
]

#: Hashed word buckets of the IDF table (a word is its first six letters, hashed with CRC-32).
BUCKETS = 1 << 16
#: The context segments a reply is matched against.
SEGMENTS = ("client", "recent", "history")
FEATURES = tuple(f"{kind}_{segment}" for kind in ("words", "cosine") for segment in SEGMENTS)
ARTEFACT = Path(str(files("rewards") / "models" / "context_fit.safetensors"))
Reference = Literal["corpus", "batch"]
_WORD = re.compile(r"[a-z0-9']+")
_HISTORY_CHARS = 4000  # the whole-history segment keeps its most recent characters
_MAX_TOKENS = 1024  # a history segment of plain English (~900 tokens) is embedded whole, not cut at the model's 128 tokens


@lru_cache(maxsize=8192)
def word_buckets(text: str) -> np.ndarray:
    """The distinct hashed word buckets of ``text`` (lower case, words cut to six characters), sorted; read-only, as memoised
    (a batch's contexts and replies are read by several features and criteria)."""
    words = {w.strip("'")[:6] for w in _WORD.findall(text.lower())}
    bag = np.unique(np.array([zlib.crc32(w.encode()) % BUCKETS for w in words if w], dtype=np.uint16))  # BUCKETS = 2**16
    bag.flags.writeable = False
    return bag


def sif_embed(texts: Sequence[str], token_weights: np.ndarray, model: str | None = CRITERIA_MODEL) -> np.ndarray:
    """Unit embeddings of ``texts``: the static token vectors of ``model`` weighted by ``token_weights`` (one per vocabulary entry)."""
    static = encoder(model).static
    if static is None:
        raise ConfigError(f"context_fit weights static token vectors; embedding model {model!r} is not a static one (use 'static')")
    if token_weights.shape != (static.vectors.shape[0],):
        raise ConfigError(
            f"context_fit has {token_weights.shape[0]} token weights for a vocabulary of {static.vectors.shape[0]}: its artefact was "
            "built for another embedding model; rebuild it with `mmrl rewards build --data MESC_DIR`"
        )
    return static(list(texts), token_weights, _MAX_TOKENS)


def segments(context: Context) -> tuple[str, str, str]:
    """The client utterance; the last three turns with it; the whole history with it (most recent characters)."""
    recent = " ".join([*(text for _, text in context.history[-3:]), context.client_utterance])
    history = " ".join([*(text for _, text in context.history), context.client_utterance])
    if context.situation:
        history = f"{context.situation} {history}"
    return context.client_utterance, recent, history[-_HISTORY_CHARS:]


@dataclass(frozen=True)
class ContextFit:
    """The fitted model: IDF and word weights per bucket, reference-corpus statistics, feature weights and calibration."""

    idf: np.ndarray  # (BUCKETS,): the reply's IDF mass, divided out
    word_weights: np.ndarray  # (BUCKETS,): the weight of a shared word (IDF times a learned gain)
    occurrence: np.ndarray  # (BUCKETS,): per word slot of a context, the chance it holds the bucket (``df / Σ bag sizes``)
    token_weights: np.ndarray  # (vocabulary,): the SIF weight of each token of the static embeddings
    mean_vectors: np.ndarray  # (segments, dim): mean SIF embedding of each segment over the reference contexts
    weights: np.ndarray  # over FEATURES
    power: float  # the reply's IDF mass is divided out to this power
    scale: float  # calibration: context_fit = logistic(scale * pmi + shift)
    shift: float
    model: str | None = CRITERIA_MODEL

    def _bags(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [word_buckets(t) for t in texts]

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        return sif_embed(texts, self.token_weights, self.model)

    def _norms(self, bags: Sequence[np.ndarray]) -> np.ndarray:
        return np.array([self.idf[b].sum() for b in bags]) ** self.power + 1.0

    def features(self, contexts: Sequence[Context], replies: Sequence[str]) -> np.ndarray:
        """``(n, len(FEATURES))`` match features of each (context, reply)."""
        bags = self._bags(replies)
        norms = self._norms(bags)
        parts = list(zip(*(segments(c) for c in contexts))) if contexts else [()] * len(SEGMENTS)
        vectors = self._embed(replies)
        out = np.zeros((len(replies), len(FEATURES)))
        for k, texts in enumerate(parts):
            distinct = list(dict.fromkeys(texts))
            where = {text: j for j, text in enumerate(distinct)}
            context_bags = [word_buckets(text) for text in distinct]
            context_vectors = self._embed(distinct)
            for i, (text, bag) in enumerate(zip(texts, bags)):
                shared = np.intersect1d(bag, context_bags[where[text]], assume_unique=True)
                out[i, k] = self.word_weights[shared].sum() / norms[i]
            out[:, len(SEGMENTS) + k] = np.einsum("ij,ij->i", vectors, context_vectors[[where[text] for text in texts]])
        return out

    def corpus_features(self, contexts: Sequence[Context], replies: Sequence[str]) -> np.ndarray:
        """``(n, len(FEATURES))`` expected features of each reply over reference contexts of the same size as its own.

        A segment of ``L`` distinct words holds a word with chance ``1 − (1 − p)^L`` (``p`` = :attr:`occurrence`),
        so the expected overlap of a generic reply does not depend on how long the conversation is. The
        expected cosine is the product of the reply's and the segment's components along the mean
        direction of that segment over MESC train (for an average context, the cosine with the mean).
        """
        bags = self._bags(replies)
        norms = self._norms(bags)
        out = np.zeros((len(replies), len(FEATURES)))
        parts = list(zip(*(segments(c) for c in contexts))) if contexts else [()] * len(SEGMENTS)
        sizes = [{text: len(word_buckets(text)) for text in set(texts)} for texts in parts]  # distinct words per segment
        for i, bag in enumerate(bags):
            chance = 1.0 - np.power.outer(
                1.0 - self.occurrence[bag], [sizes[k][parts[k][i]] for k in range(len(SEGMENTS))]
            )  # (reply words, segments)
            out[i, : len(SEGMENTS)] = (self.word_weights[bag] @ chance) / norms[i]
        directions = self.mean_vectors / np.linalg.norm(self.mean_vectors, axis=1, keepdims=True)
        along = np.stack([self._embed(texts) @ directions[k] for k, texts in enumerate(parts)], axis=1)
        out[:, len(SEGMENTS) :] = (self._embed(replies) @ directions.T) * along
        return out

    def batch_features(self, contexts: Sequence[Context], replies: Sequence[str], own: np.ndarray | None = None) -> np.ndarray | None:
        """``(n, len(FEATURES))`` mean features of each reply over the *other* distinct contexts of the batch (None with fewer than two).

        The features are linear in the context's word bag and embedding, so the sum over all distinct
        contexts is one aggregate bag and one summed vector per segment; the reply's own context (its
        :meth:`features`, computed here unless given as ``own``) is subtracted.
        """
        distinct = list({c.key(): c for c in contexts}.values())
        if len(distinct) < 2:
            return None
        bags = self._bags(replies)
        norms = self._norms(bags)
        vectors = self._embed(replies)
        total = np.zeros((len(replies), len(FEATURES)))
        for k, texts in enumerate(zip(*(segments(c) for c in distinct))):
            counts = np.zeros(BUCKETS)
            for text in texts:
                counts[word_buckets(text)] += 1.0
            for i, bag in enumerate(bags):
                total[i, k] = (counts[bag] * self.word_weights[bag]).sum() / norms[i]
            total[:, len(SEGMENTS) + k] = vectors @ self._embed(texts).sum(axis=0)
        own = self.features(contexts, replies) if own is None else own
        return (total - own) / (len(distinct) - 1)

    def pmi(self, contexts: Sequence[Context], replies: Sequence[str], reference: Reference = "corpus") -> np.ndarray:
        """``s(c, r) − mean s(c', r)`` per reply: the mean over reference contexts of the same size (``"corpus"``) or over
        the batch's other contexts (``"batch"``; the corpus when the batch holds a single context)."""
        own = self.features(contexts, replies)
        expected = self.batch_features(contexts, replies, own) if reference == "batch" else None
        if expected is None:
            expected = self.corpus_features(contexts, replies)
        return (own - expected) @ self.weights

    def arrays(self) -> dict[str, np.ndarray]:
        """What the artefact stores."""
        return {
            "idf": self.idf.astype(np.float32),
            "word_weights": self.word_weights.astype(np.float32),
            "occurrence": self.occurrence.astype(np.float32),
            "token_weights": self.token_weights.astype(np.float32),
            "mean_vectors": self.mean_vectors.astype(np.float32),
            "weights": self.weights.astype(np.float64),
            "calibration": np.array([self.power, self.scale, self.shift], dtype=np.float64),
        }

    def save(self, path: Path, metadata: dict[str, str] | None = None) -> None:
        from safetensors.numpy import save_file

        from mmrl.files import atomic_file

        with atomic_file(path) as tmp:
            save_file(self.arrays(), tmp, metadata={"model": str(self.model), "features": ",".join(FEATURES), **(metadata or {})})


@cache
def load_model(path: Path = ARTEFACT) -> ContextFit:
    """The fitted model from its safetensors artefact (a missing or damaged file is a ConfigError naming the rebuild command)."""
    from mmrl.files import read_artefact

    rebuild = "rebuild it with `mmrl rewards build --data MESC_DIR`"
    meta, arrays = read_artefact(path, "context_fit model", rebuild)
    if meta.get("features") != ",".join(FEATURES) or arrays.get("idf", np.empty(0)).shape != (BUCKETS,):
        raise ConfigError(f"context_fit model {path} was built for other features; {rebuild}")
    if "token_weights" not in arrays:
        raise ConfigError(f"context_fit model {path} has no SIF token weights (built before context_fit v2); {rebuild}")
    power, scale, shift = (float(v) for v in arrays["calibration"])
    model = None if meta.get("model") == "None" else meta.get("model")
    return ContextFit(
        idf=arrays["idf"].astype(np.float64),
        word_weights=arrays["word_weights"].astype(np.float64),
        occurrence=arrays["occurrence"].astype(np.float64),
        token_weights=arrays["token_weights"].astype(np.float32),
        mean_vectors=arrays["mean_vectors"].astype(np.float32),
        weights=arrays["weights"].astype(np.float64),
        power=power,
        scale=scale,
        shift=shift,
        model=model,
    )


_LAST: list = []  # [(key, contexts, pmi)] of the last batch: context_fit and the seven criteria scoring one batch share it
_LOCK = threading.Lock()


def batch_pmi(contexts: Sequence[Context], replies: Sequence[str], reference: Reference = "corpus") -> np.ndarray:
    """The shipped model's :meth:`ContextFit.pmi`, kept for the last batch (read-only): every reward of a composite asks for it."""
    key = (tuple(map(id, contexts)), tuple(replies), reference)
    with _LOCK:
        if not (_LAST and _LAST[0][0] == key):
            values = load_model().pmi(contexts, replies, reference)
            values.flags.writeable = False
            _LAST[:] = [(key, list(contexts), values)]  # holding the contexts keeps their ids unique while memoised
        return _LAST[0][2]


@register("context_fit", version="3", score_range=(0.0, 1.0))
def context_fit(contexts: Sequence[Context], replies: Sequence[str], *, reference: Reference = "corpus") -> list[float]:
    """Context fit in [0, 1]: how much more the reply fits this conversation than conversations in general (learned from MESC).

    ``logistic(scale · pmi + shift)`` with ``pmi`` the fitted match score with this context minus its
    mean over other contexts: MESC train contexts of the same size (``reference="corpus"``) or the
    other prompts of the batch (``reference="batch"``). A generic reply scores near the middle, a
    reply from another conversation low.

    >>> from rewards.base import Context
    >>> ctx = Context("My sister still won't speak to me since the wedding.", history=(("therapist", "How was the wedding?"),))
    >>> fits, generic, elsewhere = context_fit([ctx] * 3, ["Your sister hasn't spoken to you since the wedding?",
    ...     "Can you tell me more about that?", "Did your boss yell at you again?"])
    >>> fits > generic > elsewhere
    True
    """
    if reference not in ("corpus", "batch"):
        raise ConfigError(f"context_fit: reference must be 'corpus' or 'batch', got {reference!r}")
    model = load_model()
    return logistic(model.scale * batch_pmi(contexts, replies, reference) + model.shift).tolist()


def _state_digest(reference: Reference = "corpus") -> str:
    """The shipped model and this module's code: what context_fit's scores depend on beyond ``reference``."""
    import hashlib

    return hashlib.sha256(ARTEFACT.read_bytes() + Path(__file__).read_bytes()).hexdigest()[:24]


context_fit.state_digest = _state_digest
