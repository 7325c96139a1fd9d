"""The learned term of each criterion: a linear probe on sentence embeddings, fitted on labelled reply pairs.

The curated pairs shipped in ``rewards/criteria/pairs/<criterion>.jsonl`` each say which of two
replies to one client context is better on one criterion. For a criterion with hand-weighted
log-odds ``z`` (:func:`~rewards.criteria.common.calibrated`), the probe ``w`` maximises the pairwise
likelihood ``P(better > worse) = logistic(Δz + w · Δφ)`` with an L2 penalty, so it learns what the
hand features miss. ``φ(context, reply) = [r, 20 · r ⊙ u]`` with ``r`` and ``u`` the unit embeddings
of the reply and the client utterance: the product makes the term context-aware. The term enters
the log-odds centred on the training replies (an average reply's calibration is unchanged) and
bounded to ±:data:`BOUND` (``BOUND · tanh(term / BOUND)``): replies unlike any training pair, such
as the short replies of human counsellors, cannot be pushed to the ends of the scale by it.

A probe belongs to one embedding model: it is fitted on first use for that model and cached as
safetensors under ``$MMRL_CACHE/probes/`` (default ``~/.cache/mmrl``), keyed by the model, the
pairs, the hand weights, the source of the hand features and :data:`FIT_VERSION`; a damaged cache
file is refitted, and processes starting together fit once (a file lock).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from importlib.resources import files
from pathlib import Path

import numpy as np

from mmrl.errors import DataError
from mmrl.files import cache_root, cached_arrays
from rewards.base import Context
from rewards.criteria.common import CRITERIA_MODEL, embed, log_odds, normalise

__all__ = ["BOUND", "FIT_VERSION", "L2", "LearnedTerm", "Pair", "load_pairs", "pairs_path"]

#: Changes whenever the fitting procedure does (invalidates every cached probe).
FIT_VERSION = "1"
#: The L2 penalty on the probe and the bound on its term in log-odds, chosen on pairs the probe was not fitted
#: on (accuracy) and on MESC counsellors' replies (the share scored below 0.2 stays that of the hand features).
L2 = 0.03
BOUND = 1.0
_PRODUCT_SCALE = 20.0  # puts r ⊙ u (entries ~1/384) on the scale of r's entries

Features = Callable[[Sequence[Context], Sequence[str], "str | None"], Mapping[str, np.ndarray]]
Pair = tuple[Context, str, str]


def pairs_path(criterion: str) -> Path:
    """The shipped labelled pairs of ``criterion``."""
    return Path(str(files("rewards.criteria") / "pairs" / f"{criterion}.jsonl"))


def load_pairs(path: Path) -> list[Pair]:
    """(context, better reply, worse reply) triples from a JSONL file; a malformed line is a DataError naming it."""
    pairs = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            context = record["context"]
            pairs.append(
                (
                    Context(
                        client_utterance=context["client_utterance"],
                        history=tuple((speaker, text) for speaker, text in context.get("history") or ()),
                        situation=context.get("situation"),
                        gold_client_emotion=context.get("gold_client_emotion"),
                    ),
                    str(record["better"]),
                    str(record["worse"]),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}:{number}: not a labelled pair ({type(exc).__name__}: {exc}); expected "
                            '{"context": {"client_utterance": ...}, "better": ..., "worse": ...}') from None
    return pairs


def _fit(dz: np.ndarray, dphi: np.ndarray, l2: float) -> np.ndarray:
    """argmin_w Σ log(1 + exp(−(dz + dphi·w))) + l2·|w|² (L-BFGS)."""
    from scipy.optimize import minimize

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        margin = dz + dphi @ w
        return float(np.logaddexp(0.0, -margin).sum() + l2 * w @ w), -(dphi.T @ (0.5 * (1.0 - np.tanh(margin / 2)))) + 2 * l2 * w

    return minimize(loss, np.zeros(dphi.shape[1]), jac=True, method="L-BFGS-B").x


class LearnedTerm:
    """The learned log-odds term of one criterion (see the module docstring).

    ``term(contexts, replies, model)`` returns one float per reply; the probe for ``model`` is
    fitted (or read from the cache) on first use.
    """

    def __init__(self, criterion: str, features: Features, weights: Mapping[str, float], *, l2: float = L2) -> None:
        self.criterion, self.features, self.weights, self.l2 = criterion, features, dict(weights), l2
        self._probes: dict[str | None, tuple[np.ndarray, float]] = {}
        self._lock = threading.Lock()

    @cached_property
    def pairs(self) -> list[Pair]:
        return load_pairs(pairs_path(self.criterion))

    def phi(self, contexts: Sequence[Context], replies: Sequence[str], model: str | None = CRITERIA_MODEL) -> np.ndarray:
        """The probe's input per reply: ``[r, 20 · r ⊙ u]``."""
        reply = embed([normalise(r) for r in replies], model)
        utterance = embed([c.client_utterance for c in contexts], model)
        return np.hstack([reply, _PRODUCT_SCALE * reply * utterance]).astype(np.float64)

    def __call__(self, contexts: Sequence[Context], replies: Sequence[str], model: str | None = CRITERIA_MODEL) -> np.ndarray:
        weights, offset = self.probe(model)
        return BOUND * np.tanh((self.phi(contexts, replies, model) @ weights - offset) / BOUND)

    def probe(self, model: str | None = CRITERIA_MODEL) -> tuple[np.ndarray, float]:
        """``(w, w · mean φ of the training replies)`` for ``model``: memoised, then the disk cache, else fitted once."""

        def fitted() -> dict[str, np.ndarray]:
            weights, offset = self.fit(self.pairs, model)
            return {"weights": weights.astype(np.float64), "offset": np.array([offset])}

        with self._lock:
            if model not in self._probes:
                arrays = cached_arrays(self._cache_path(model), ("weights", "offset"), fitted, metadata={"criterion": self.criterion})
                self._probes[model] = arrays["weights"].astype(np.float64), float(arrays["offset"][0])
            return self._probes[model]

    def fit(self, pairs: Sequence[Pair], model: str | None = CRITERIA_MODEL) -> tuple[np.ndarray, float]:
        """Fit the probe on ``pairs`` (no cache involved): the weights and the centring offset."""
        contexts = [p[0] for p in pairs]
        better, worse = [p[1] for p in pairs], [p[2] for p in pairs]
        dz = log_odds(self.weights, self.features(contexts, better, model)) - log_odds(self.weights, self.features(contexts, worse, model))
        phi_better, phi_worse = self.phi(contexts, better, model), self.phi(contexts, worse, model)
        weights = _fit(dz, phi_better - phi_worse, self.l2)
        return weights, float(np.vstack([phi_better, phi_worse]).mean(axis=0) @ weights)

    def _cache_path(self, model: str | None) -> Path:
        from rewards.embeddings import encoder

        digest = hashlib.sha256()
        for part in (FIT_VERSION, self.criterion, encoder(model).name, json.dumps(self.weights, sort_keys=True), repr(self.l2)):
            digest.update(part.encode() + b"\0")
        for source in {inspect.getsourcefile(self.features), inspect.getsourcefile(embed)}:  # the hand features' code
            digest.update(Path(source).read_bytes())
        digest.update(pairs_path(self.criterion).read_bytes())
        return cache_root() / "probes" / f"{self.criterion}-{digest.hexdigest()[:24]}.safetensors"
