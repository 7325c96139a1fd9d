"""Metrics of the predictor and its baselines (accuracy, weighted-F1, macro-F1) and DFEW UAR/WAR per fold.

The eval JSON is ``{"model": T, "baselines": {"majority": T, "tfidf_lr": T, "prev_strategy":
{"strategy": M}}}`` with ``T = {task: M}`` and ``M = {"accuracy", "weighted_f1", "macro_f1"}`` as
fractions; examples whose label is unknown are left out of that task's metrics. Macro-F1 averages
over the classes present in the gold or predicted labels (scikit-learn's default).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from mmrl.data.dfew import DFEW_FOLDS, load_dfew, uar, war
from mmrl.data.schema import Dialogue
from mmrl.errors import DataError
from mmrl.labels import DFEW_CLASSES
from mmrl.predictor import TASKS
from mmrl.predictor.baselines import (
    Item,
    MajorityBaseline,
    PrevStrategyBaseline,
    TfidfBaseline,
    gold_labels,
)
from mmrl.predictor.features import IGNORE
from mmrl.predictor.model import ClipClassifier, MultimodalPredictor

__all__ = [
    "METRICS",
    "evaluate_baselines",
    "evaluate_dfew",
    "evaluate_model",
    "evaluation_report",
    "items_of",
    "score_predictions",
    "task_metrics",
]

METRICS: tuple[str, ...] = ("accuracy", "weighted_f1", "macro_f1")


def items_of(dialogues: Sequence[Dialogue]) -> list[Item]:
    """Every (dialogue, target therapist-turn index) pair of the dialogues, in order."""
    return [(dialogue, index) for dialogue in dialogues for index in dialogue.target_indices()]


def task_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy, weighted-F1 and macro-F1 over the examples with a known label (NaN when there are none)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    known = y_true != IGNORE
    if not known.any():
        return {name: float("nan") for name in METRICS}
    y_true, y_pred = y_true[known], y_pred[known]
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def score_predictions(gold: Mapping[str, np.ndarray], predicted: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """``{task: M}`` for every task in ``predicted``."""
    return {task: task_metrics(gold[task], predicted[task]) for task in TASKS if task in predicted}


def evaluate_model(predictor: MultimodalPredictor, items: Sequence[Item], *, drop: Sequence[str] = ()) -> dict[str, dict[str, float]]:
    """``{task: M}`` of the predictor's argmax predictions on ``items``."""
    probabilities, _ = predictor.predict_features(predictor.featurizer.build(items), drop=drop)
    return score_predictions(gold_labels(items), {task: p.argmax(-1) for task, p in probabilities.items()})


def evaluate_baselines(
    train: Sequence[Item], items: Sequence[Item], val: Sequence[Item] = (), *, max_history_turns: int = 32, seed: int = 0
) -> dict:
    """Fit the baselines on ``train`` (TF-IDF tuned on ``val``) and score them on ``items``."""
    gold = gold_labels(items)
    return {
        "majority": score_predictions(gold, MajorityBaseline().fit(train).predict(items)),
        "tfidf_lr": score_predictions(gold, TfidfBaseline(max_history_turns, seed).fit(train, val).predict(items)),
        "prev_strategy": score_predictions(gold, PrevStrategyBaseline().fit(train).predict(items)),
    }


def evaluation_report(predictor: MultimodalPredictor, train: Sequence[Item], items: Sequence[Item], val: Sequence[Item] = ()) -> dict:
    """The eval JSON: the model and the baselines on ``items``."""
    return {
        "model": evaluate_model(predictor, items),
        "baselines": evaluate_baselines(
            train, items, val, max_history_turns=predictor.config.max_history_turns, seed=predictor.config.seed
        ),
    }


def evaluate_dfew(checkpoint_dir: str | Path, root: str | Path) -> dict:
    """UAR/WAR of each ``checkpoint_dir/fold{k}`` classifier on fold k's test clips, and their means."""
    checkpoint_dir = Path(checkpoint_dir)
    folds = [k for k in DFEW_FOLDS if (checkpoint_dir / f"fold{k}").is_dir()]
    if not folds:
        raise DataError("no fold{k} checkpoints here; train them with `mmrl predictor train --format dfew`", path=checkpoint_dir)
    results = {}
    for fold in folds:
        model = ClipClassifier.load(checkpoint_dir / f"fold{fold}")
        test = [clip for clip in load_dfew(root, folds=[fold])[fold] if clip.split == "test"]
        predicted = [DFEW_CLASSES[i] for i in model.predict_clips(model.clip_tensors(test))]
        gold = [clip.label for clip in test]
        results[str(fold)] = {"uar": uar(gold, predicted), "war": war(gold, predicted), "test_clips": len(test)}
    return {"folds": results, "mean": {k: float(np.mean([r[k] for r in results.values()])) for k in ("uar", "war")}}
