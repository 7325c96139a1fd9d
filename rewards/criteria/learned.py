"""The learned term of each criterion: a linear probe on sentence embeddings, fitted on labelled reply pairs.

The pairs in ``rewards/criteria/pairs/{train,dev,test,holdout,...,holdout7}/<criterion>.jsonl`` each say which of two
replies to one client context is better on one criterion; a context is written inline or refers to
a MESC target turn (``"mesc": "train:332:4"``; MESC itself is never copied). In every split the
better reply is the shorter one in about half of the pairs, so length is no shortcut. The fitting pairs
(:data:`FIT_SPLITS`: ``train`` and, since session 13, ``holdout4`` and ``holdout5``) plus their adversarial augmentation
(:func:`augment`: filler, off-topic sentences, generic replies) fit the probes; ``dev`` pairs were used for choices;
``test`` and the ``holdout`` sets were written over MESC test contexts (``holdout7`` over MESC val contexts) by writers
who saw neither the scorers nor the other pairs; since session 11 ``holdout`` to ``holdout3``, each read before, are used
for choices beside ``dev``; ``holdout6`` and ``holdout7`` only report (see :func:`pairs_path`).

For a criterion with hand-weighted log-odds ``z`` (:func:`~rewards.criteria.common.calibrated`), the
probe ``w`` maximises the pairwise likelihood ``P(better > worse) = logistic(Δz + w · Δφ)`` with an L2
penalty, so it learns what the hand features miss. ``φ(context, reply) = [r, 20 · r ⊙ u]`` with ``r``
and ``u`` the unit embeddings of the reply and the client utterance: the product makes the term
context-aware. The term enters the log-odds centred on the training replies and bounded to
±:data:`BOUND` (``BOUND · tanh(term / BOUND)``): replies unlike any training pair, such as the short
replies of human counsellors, cannot be pushed to the ends of the scale by it.

The probes of the default embedding model ship in ``rewards/models/probes.safetensors`` (built by
``mmrl rewards build --data MESC_DIR``, keyed by everything they depend on: :meth:`LearnedTerm.key`).
For another model, or after a change that alters the key, a probe is fitted on first use (this needs
MESC: ``$MMRL_MESC_DIR``) and cached under ``$MMRL_CACHE/probes/``; a damaged cache file is refitted,
and processes starting together fit once (a file lock).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import random
import textwrap
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import cache
from importlib.resources import files
from pathlib import Path

import numpy as np

from mmrl.errors import ConfigError, DataError
from mmrl.files import cache_root, cached_arrays
from rewards.base import Context
from rewards.criteria.common import CRITERIA_MODEL, embed, log_odds, normalise
from rewards.probe import GENERIC_REPLIES

__all__ = [
    "BOUND",
    "FIT_VERSION",
    "GENERIC_WORSE",
    "L2",
    "PROBES",
    "FIT_SPLITS",
    "SPLITS",
    "TRAINING_FILLERS",
    "TRAINING_GENERICS",
    "LearnedTerm",
    "Pair",
    "augment",
    "fitting_pairs",
    "load_pairs",
    "mesc_contexts",
    "mesc_dir",
    "pairs_path",
    "shipped_probe",
]

#: Changes whenever the fitting procedure does (invalidates every cached probe).
FIT_VERSION = "2"
#: The L2 penalty on the probe and the bound on its term in log-odds, chosen on pairs the probe was not fitted
#: on (accuracy) and on MESC counsellors' replies (the share scored below 0.2 stays that of the hand features).
L2 = 0.03
BOUND = 1.0
_PRODUCT_SCALE = 20.0  # puts r ⊙ u (entries ~1/384) on the scale of r's entries

Features = Callable[[Sequence[Context], Sequence[str], "str | None"], Mapping[str, np.ndarray]]
Pair = tuple[Context, str, str]


SPLITS = ("train", "dev", "test", "holdout", "holdout2", "holdout3", "holdout4", "holdout5", "holdout6", "holdout7")
#: The splits the probes and the distilled network are fitted on: ``train`` and, since session 13, the two holdout sets
#: that had been read for figures (``holdout4``, ``holdout5``), whose writers' styles the criteria generalised to least.
FIT_SPLITS = ("train", "holdout4", "holdout5")


def pairs_path(criterion: str, split: str = "train") -> Path:
    """The shipped labelled pairs of ``criterion``: ``train`` and, since session 13, ``holdout4`` and ``holdout5`` (fitting:
    :data:`FIT_SPLITS`), ``dev`` and, since session 11, ``holdout`` to ``holdout3`` (selection), ``test``, ``holdout6`` and
    ``holdout7`` (reporting only).

    ``test`` was read while the criteria were being built; ``holdout`` (session 7, over MESC test contexts no other pair
    uses) once per reported configuration; ``holdout2`` (session 9, 30 pairs per criterion over the MESC test contexts
    then unused, written with on-topic but wrong worse replies in mind) for the final figures of session 9 and then, in
    session 10, its failures were read; ``holdout3`` (session 10, 20 pairs per criterion over MESC test contexts, new
    replies by new writers) for the final figures of session 10; ``holdout4`` (session 11, 20 pairs per criterion over
    MESC test contexts no earlier holdout uses, new writers) for the final figures of session 11 and reported beside
    ``holdout5`` since; ``holdout5`` (session 12, 20 pairs per criterion over MESC test contexts no other pair uses, two new
    writers, labels checked blind by a third helper) once, for the final figures of session 12; ``holdout6`` (session 13,
    20 pairs per criterion over the last MESC test contexts no other pair uses, three new writers, labels checked blind)
    once, for the final figures of session 13; ``holdout7`` (session 14, 20 pairs per criterion over MESC *val* contexts no
    other pair uses, since no test context was left; three new writers, labels checked blind) once per scorer, for the
    final figures of session 14. MESC val's real replies serve selection; no pair over these contexts was read before.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return Path(str(files("rewards.criteria") / "pairs" / split / f"{criterion}.jsonl"))


def fitting_pairs(criterion: str, contexts: Callable[[], Mapping[str, Context]]) -> list[Pair]:
    """The written pairs of ``criterion`` that the probes and the distilled network are fitted on (:data:`FIT_SPLITS`)."""
    return [pair for split in FIT_SPLITS for pair in load_pairs(pairs_path(criterion, split), contexts)]


def mesc_dir() -> Path | None:
    """MESC's directory from ``$MMRL_MESC_DIR``, else ``../shared/data/mesc`` beside the checkout, when it exists."""
    candidates = [os.environ.get("MMRL_MESC_DIR"), Path(__file__).resolve().parents[3] / "shared" / "data" / "mesc"]
    return next((Path(c) for c in candidates if c and (Path(c) / "MESC.csv").is_file()), None)


@cache
def mesc_contexts(directory: Path | None = None) -> dict[str, Context]:
    """Every MESC target turn's context by reference ``"<split>:<dialogue id>:<turn index>"`` (no reference reply)."""
    from mmrl.data import load_corpus

    directory = directory or mesc_dir()
    if directory is None:
        raise ConfigError("labelled pairs over MESC contexts need the MESC directory: set MMRL_MESC_DIR")
    corpus = load_corpus(directory, "mesc")
    out = {}
    for dialogue in corpus.dialogues:
        for index in dialogue.target_indices():
            context = Context.from_dialogue(dialogue, index)
            out[f"{dialogue.split}:{dialogue.id}:{index}"] = replace(context, reference=None)
    return out


def _context(record: dict, resolve: Callable[[], Mapping[str, Context]]) -> Context:
    if "mesc" in record:
        contexts = resolve()
        if record["mesc"] not in contexts:
            raise KeyError(f"no MESC target turn {record['mesc']!r}")
        return contexts[record["mesc"]]
    context = record["context"]
    return Context.from_json({k: context[k] for k in ("client_utterance", "history", "situation", "gold_client_emotion") if k in context})


def load_pairs(path: Path, contexts: Callable[[], Mapping[str, Context]] = mesc_contexts) -> list[Pair]:
    """(context, better reply, worse reply) triples from a JSONL file; a malformed line is a DataError naming it.

    A line gives its context inline (``"context": {"client_utterance": ..., "history": ...}``) or as a
    MESC reference (``"mesc": "train:332:4"``), resolved through ``contexts()`` (MESC itself is never
    copied into the pair files).
    """
    pairs = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            pairs.append((_context(record, contexts), str(record["better"]), str(record["worse"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"{path}:{number}: not a labelled pair ({type(exc).__name__}: {exc}); expected "
                '{"context": {"client_utterance": ...} or "mesc": "<split>:<dialogue>:<turn>", "better": ..., "worse": ...}'
            ) from None
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

    def training_pairs(self, contexts: Callable[[], Mapping[str, Context]] = mesc_contexts) -> list[Pair]:
        """The criterion's fitting pairs (:func:`fitting_pairs`) plus their adversarial augmentation (:func:`augment`)."""
        written = fitting_pairs(self.criterion, contexts)
        return written + augment(written, self.criterion)

    def phi(self, contexts: Sequence[Context], replies: Sequence[str], model: str | None = CRITERIA_MODEL) -> np.ndarray:
        """The probe's input per reply: ``[r, 20 · r ⊙ u]``."""
        reply = embed([normalise(r) for r in replies], model)
        utterance = embed([c.client_utterance for c in contexts], model)
        return np.hstack([reply, _PRODUCT_SCALE * reply * utterance]).astype(np.float64)

    def __call__(self, contexts: Sequence[Context], replies: Sequence[str], model: str | None = CRITERIA_MODEL) -> np.ndarray:
        weights, offset = self.probe(model)
        return BOUND * np.tanh((self.phi(contexts, replies, model) @ weights - offset) / BOUND)

    def probe(self, model: str | None = CRITERIA_MODEL) -> tuple[np.ndarray, float]:
        """``(w, w · mean φ of the training replies)`` for ``model``: memoised, the shipped artefact, the disk cache, else fitted once.

        The shipped artefact (:data:`PROBES`, built by ``mmrl rewards build --data MESC_DIR``) holds the
        probes of the default embedding model; it is used only while its key matches the current
        features, weights, pairs and ``context_fit`` model. Fitting needs MESC (the pairs refer to it).
        """

        def fitted() -> dict[str, np.ndarray]:
            weights, offset = self.fit(self.training_pairs(), model)
            return {"weights": weights.astype(np.float64), "offset": np.array([offset])}

        with self._lock:
            if model not in self._probes:
                key = self.key(model)
                shipped = shipped_probe(self.criterion, key)
                if shipped is None:
                    shipped = cached_arrays(cache_root() / "probes" / f"{self.criterion}-{key}.safetensors", ("weights", "offset"), fitted,
                                            metadata={"criterion": self.criterion})  # fmt: skip
                self._probes[model] = shipped["weights"].astype(np.float64), float(shipped["offset"][0])
            return self._probes[model]

    def fit(self, pairs: Sequence[Pair], model: str | None = CRITERIA_MODEL) -> tuple[np.ndarray, float]:
        """Fit the probe on ``pairs`` (no cache involved): the weights and the centring offset."""
        contexts = [p[0] for p in pairs]
        better, worse = [p[1] for p in pairs], [p[2] for p in pairs]
        dz = log_odds(self.weights, self.features(contexts, better, model)) - log_odds(self.weights, self.features(contexts, worse, model))
        phi_better, phi_worse = self.phi(contexts, better, model), self.phi(contexts, worse, model)
        weights = _fit(dz, phi_better - phi_worse, self.l2)
        return weights, float(np.vstack([phi_better, phi_worse]).mean(axis=0) @ weights)

    def key(self, model: str | None = CRITERIA_MODEL) -> str:
        """A digest of everything the probe depends on: fit version, embedding model, hand weights and code, pairs, context_fit model."""
        from rewards import context_fit
        from rewards.embeddings import StaticEncoder, encoder

        digest = hashlib.sha256()
        for part in (FIT_VERSION, self.criterion, encoder(model).name, json.dumps(self.weights, sort_keys=True), repr(self.l2)):
            digest.update(part.encode() + b"\0")
        sources = {inspect.getsourcefile(self.features), inspect.getsourcefile(embed), __file__, context_fit.__file__}
        for source in sorted(sources):  # features, augmentation and the context fit they read
            digest.update(_code(Path(source)))
        digest.update(_code(StaticEncoder))  # the default embeddings (not the rest of their module: the ONNX path, say)
        for split in FIT_SPLITS:
            digest.update(pairs_path(self.criterion, split).read_bytes())
        digest.update(context_fit.ARTEFACT.read_bytes())
        return digest.hexdigest()[:24]


def _code(source: Path | type) -> bytes:
    """What a source file (or a class) computes, not how it is laid out or documented: its syntax tree without docstrings
    (formatting, comments, docstrings and doctests do not change it)."""
    text = source.read_text(encoding="utf-8") if isinstance(source, Path) else textwrap.dedent(inspect.getsource(source))
    tree = ast.parse(text)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree).encode()


#: The shipped probes of the default embedding model (``mmrl rewards build`` writes them).
PROBES = Path(str(files("rewards") / "models" / "probes.safetensors"))


def shipped_probe(criterion: str, key: str) -> dict[str, np.ndarray] | None:
    """The shipped probe of ``criterion`` when the artefact holds one with this ``key``, else None."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(PROBES), framework="numpy") as f:
            if (f.metadata() or {}).get(criterion) != key:
                return None
            return {"weights": f.get_tensor(f"{criterion}.weights"), "offset": f.get_tensor(f"{criterion}.offset")}
    except (OSError, SafetensorError):
        return None


#: Criteria whose probes learn that a generic reply (or an echo of the client) is worse than a written better reply: without
#: it their probes read supportive boilerplate as good practice (the worse replies of their pairs are rarely boilerplate).
#: Chosen on the dev pairs: for truthfulness, safety and ethical guidance it cost dev accuracy, and their context-fit
#: feature already keeps generic replies down.
GENERIC_WORSE = ("empathy", "reliability", "fairness", "privacy")
#: Generic replies: negatives in training only (the probe command's own ones plus more), for the probes and for context_fit.
TRAINING_GENERICS: tuple[str, ...] = (
    *(reply for replies in GENERIC_REPLIES.values() for reply in replies),
    "I understand how you feel.",
    "Go on.",
    "What do you think about that?",
    "That must have been very difficult for you.",
    "Let's talk about what's going on for you right now.",
    "How are you feeling today?",
)
#: Generic sentences appended in training augmentation (the probe command checks others: ``rewards.probe.FILLERS``).
TRAINING_FILLERS: tuple[str, ...] = (
    "Please know that I'm here to listen whenever you need.",
    "I hear you. I'm so sorry. That must be so hard. Your feelings matter.",
    "It's completely understandable to feel the way you do.",
    "You don't have to go through this alone; help is always available.",
    "Can you tell me more about what that was like for you?",
    "Thank you for trusting me with this. I really appreciate your openness.",
    "Be kind to yourself and take things one step at a time.",
    "If things ever feel like too much, talking to a professional can help.",
)


def augment(pairs: Sequence[Pair], criterion: str, seed: int = 0) -> list[Pair]:
    """Adversarial training pairs from written ones: filler or an off-topic sentence appended to the worse reply never lifts
    it, filler appended to the better one never sinks it, and (for :data:`GENERIC_WORSE`) a generic reply or a copy of the
    client's words is worse than the written better reply."""
    rng = random.Random(seed)
    out: list[Pair] = []
    for context, better, worse in pairs:
        other = rng.choice(pairs)[1]
        out.append((context, better, f"{worse.rstrip()} {rng.choice(TRAINING_FILLERS)}"))
        out.append((context, f"{better.rstrip()} {rng.choice(TRAINING_FILLERS)}", worse))
        if other != better:
            out.append((context, better, f"{worse.rstrip()} {other}"))
        if criterion in GENERIC_WORSE:
            out.append((context, better, rng.choice(TRAINING_GENERICS)))
            out.append((context, better, context.client_utterance))
    return out
