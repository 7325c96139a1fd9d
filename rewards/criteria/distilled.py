"""The learned term of the seven criteria: networks distilled from the cross-encoder, reading the local features.

The local criteria read words (static embeddings, cues); the opt-in ``cross_<criterion>`` scorer
(:mod:`rewards.cross_encoder`) reads context and reply together with a transformer and judges the
labelled pairs, templates and filler far better, at a tenth of the speed. This module carries what it
knows into the local criteria: a two-layer network (:data:`HIDDEN` GELU units; the mean of three trained
from different seeds) reads what the local criteria compute anyway — the static embeddings of the reply,
the client's utterance and the last two turns and the reply's products with both, every criterion's hand
features, hand log-odds and probe term, the static context fit — and outputs the seven
``cross_<criterion>`` log-odds plus the fit log-odds of ``cross_context_fit`` (an auxiliary target). With
``learned=True`` and the default embedding model, a criterion's score is ``logistic((1 − BLEND) · output +
BLEND · (hand log-odds + probe term))`` (one pass serves the seven criteria of a batch); ``learned=False``
keeps the hand-weighted features alone.

Training (:mod:`rewards.distil`, ``mmrl rewards build --data MESC_DIR --distil``) uses MESC *train* turns and the
written fitting pairs (``FIT_SPLITS``: ``train``, ``holdout4``, ``holdout5``; the last two over MESC test contexts, no
real test reply); choices were made on MESC val and the dev pairs. The weights (~3 MB,
float16, no MESC text) ship in ``rewards/models/distilled.safetensors`` and are used only while their key
matches today's inputs and teacher (:func:`key`); otherwise scoring is a ConfigError naming the rebuild.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib.resources import files
from pathlib import Path

import numpy as np

from mmrl.errors import ConfigError
from mmrl.labels import TRUST_CRITERIA
from rewards.base import Context
from rewards.criteria.common import CRITERIA_MODEL, calibrated, context_fit, embed, log_odds, logistic, normalise, silent

__all__ = [
    "ARTEFACT",
    "BLEND",
    "GUARDS",
    "HIDDEN",
    "OUTPUTS",
    "criterion_scores",
    "fingerprint",
    "forward",
    "inputs",
    "key",
    "log_odds_of",
    "scores",
    "uses_network",
]

ARTEFACT = Path(str(files("rewards") / "models" / "distilled.safetensors"))
HIDDEN = 256
#: The network's outputs: the seven criteria's log-odds, then the fit log-odds (an auxiliary training target).
OUTPUTS = (*TRUST_CRITERIA, "fit")
_PRODUCT_SCALE = 20.0  # puts products of unit embeddings (entries ~1/384) on the scale of the embeddings' entries
#: The weight of the hand features' and probe's log-odds beside the network's in a criterion's log-odds (chosen on MESC val,
#: the dev pairs and the criteria's documented examples: the teacher, and so the network alone, misses some cues that the
#: hand features name — a dismissive "it was just a dog", "three years" for three months, condolences for good news).
BLEND = 0.25
#: Hand features whose cue the teacher misses and which enter a criterion's log-odds in full, not only through the blend
#: (the teacher rates "That sounds infuriating" after "My cat died this morning." near "That sounds so sad").
GUARDS = {"empathy": ("names_emotion", "names_other_emotion")}
REBUILD = "rebuild it with `mmrl rewards build --data MESC_DIR --distil`, or score with learned=False"


def _recent(context: Context) -> str:
    return " ".join(text for _, text in context.history[-2:]) or context.client_utterance


def inputs(contexts: Sequence[Context], replies: Sequence[str]) -> np.ndarray:
    """The network's input per reply: embeddings (reply, utterance, last two turns, reply ⊙ each), then every criterion's hand
    features (sorted by name), the static context fit, log(1 + words), the seven hand log-odds, the seven probe terms and
    the seven guard terms (:data:`GUARDS`)."""
    from rewards.criteria import MODULES

    reply = embed([normalise(r) for r in replies])
    utterance = embed([c.client_utterance for c in contexts])
    recent = embed([_recent(c) for c in contexts])
    hand, hand_log_odds, probes, guards = [], [], [], []
    for name in TRUST_CRITERIA:
        module = MODULES[name]
        features = module.features(contexts, replies)
        hand.append(np.stack([np.asarray(features[f], dtype=np.float64) for f in sorted(features)], axis=1))
        hand_log_odds.append(log_odds(module.WEIGHTS, features))
        probes.append(np.asarray(module.LEARNED(contexts, replies)))
        guards.append(sum((module.WEIGHTS[f] * np.asarray(features[f]) for f in GUARDS.get(name, ())), np.zeros(len(replies))))
    words = np.log1p([len(r.split()) for r in replies])[:, None]
    fit = np.asarray(context_fit(contexts, replies))[:, None]
    embeddings = [reply, utterance, recent, _PRODUCT_SCALE * reply * utterance, _PRODUCT_SCALE * reply * recent]
    return np.hstack([*embeddings, *hand, fit, words, np.stack(hand_log_odds, 1), np.stack(probes, 1), np.stack(guards, 1)]).astype(
        np.float32
    )


def key() -> str:
    """A digest of what the shipped network depends on: the seven probes' keys (features, hand weights, pairs, context_fit,
    embedding model), the teacher's artefacts and fit weights, and the code of this module and of the distillation."""
    from rewards import context_fit, cross_encoder, distil, fit_encoder, lora
    from rewards.criteria import MODULES
    from rewards.criteria.learned import _code

    digest = hashlib.sha256()
    for name in TRUST_CRITERIA:
        digest.update(MODULES[name].LEARNED.key().encode() + b"\0")
    digest.update(repr((sorted(cross_encoder.FIT_WEIGHTS.items()), cross_encoder.FIT_CAP, HIDDEN)).encode())
    for path in (cross_encoder.ARTEFACT, fit_encoder.ARTEFACT):
        digest.update(path.read_bytes() if path.is_file() else b"missing")
    for module in (
        __file__,
        distil.__file__,
        context_fit.__file__,
        cross_encoder.__file__,
        fit_encoder.__file__,
        lora.__file__,
    ):  # inputs, training, teacher
        digest.update(_code(Path(module)))
    return digest.hexdigest()[:24]


def fingerprint() -> str:
    """The key plus a digest of the shipped weights (what cached scores of the learned criteria depend on)."""
    if not ARTEFACT.is_file():
        return key() + ":missing"
    stat = ARTEFACT.stat()
    return key() + ":" + _weights_digest(stat.st_mtime_ns, stat.st_size, stat.st_ino)


@cache
def _weights_digest(mtime: int, size: int, inode: int) -> str:  # hashed once per version of the file, not per get_reward
    return hashlib.sha256(ARTEFACT.read_bytes()).hexdigest()[:24]


def uses_network(model: str | None, learned: bool) -> bool:
    """Whether a criterion with these options scores with the distilled network (else hand features, plus a probe if learned)."""
    return learned and model == CRITERIA_MODEL


@cache
def _network(path: Path = ARTEFACT) -> dict[str, np.ndarray]:
    from mmrl.files import read_artefact

    meta, arrays = read_artefact(path, "distilled criteria weights", REBUILD)
    if meta.get("key") != key():
        raise ConfigError(f"distilled criteria weights {path} were built for other features, probes or teacher; {REBUILD}")
    if missing := {"mean", "scale", "w1", "b1", "w2", "b2"} - set(arrays):
        raise ConfigError(f"distilled criteria weights {path} lack {sorted(missing)}; {REBUILD}")
    return {name: array.astype(np.float32) for name, array in arrays.items()}  # the weights ship as float16


def log_odds_of(contexts: Sequence[Context], replies: Sequence[str], path: Path = ARTEFACT) -> np.ndarray:
    """``(n, 8)``: the networks' mean outputs (:data:`OUTPUTS`) per reply; the criteria's plus their guard terms, blended with
    the hand + probe log-odds (which hold the guard features too, so those count in full)."""
    x = inputs(contexts, replies)
    out = forward(_network(path), x)
    n = len(TRUST_CRITERIA)
    hand, probe, guard = x[:, -3 * n : -2 * n], x[:, -2 * n : -n], x[:, -n:]  # the inputs end with these
    out[:, :n] = (1 - BLEND) * (out[:, :n] + guard) + BLEND * (hand + probe)
    return out


def forward(net: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The members' mean output for inputs ``x`` (``net``: what :func:`rewards.distil.train` returns)."""
    from scipy.special import erf

    x = (x - net["mean"]) / net["scale"]
    hidden = np.matmul(x, net["w1"].astype(np.float32, copy=False)) + net["b1"][:, None, :]  # (members, n, hidden), on BLAS
    hidden = 0.5 * hidden * (1.0 + erf(hidden / np.sqrt(2.0)))  # GELU
    return (np.matmul(hidden, net["w2"].astype(np.float32, copy=False)) + net["b2"][:, None, :]).mean(axis=0)


_MEMO: list = []  # the last batch's outputs: the seven criteria scoring one batch share one pass
_LOCK = threading.Lock()


def scores(contexts: Sequence[Context], replies: Sequence[str], criterion: str) -> list[float]:
    """``criterion``'s scores in [0, 1] (a reply without a word scores 0, as in :func:`~rewards.criteria.common.calibrated`)."""
    key_ = (tuple(map(id, contexts)), tuple(replies))
    with _LOCK:
        if not (_MEMO and _MEMO[0][0] == key_):
            _MEMO[:] = [(key_, list(contexts), log_odds_of(contexts, replies))]  # holding the contexts keeps their ids unique
        values = _MEMO[0][2][:, OUTPUTS.index(criterion)]
    return np.where(silent(replies), 0.0, logistic(values)).tolist()


def criterion_scores(
    criterion: str,
    weights: Mapping[str, float],
    features: Callable[..., Mapping[str, np.ndarray]],
    probe: Callable[..., np.ndarray],
    contexts: Sequence[Context],
    replies: Sequence[str],
    *,
    model: str | None,
    learned: bool,
) -> list[float]:
    """A criterion's scores: :func:`scores` with ``learned`` and the default embedding model; otherwise its hand-weighted
    ``features`` (plus its ``probe`` term when ``learned``), through :func:`~rewards.criteria.common.calibrated`."""
    if uses_network(model, learned):
        return scores(contexts, replies, criterion)
    return calibrated(dict(weights), features(contexts, replies, model), replies, probe(contexts, replies, model) if learned else None)
