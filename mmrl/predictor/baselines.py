"""Baselines fitted on the train split: majority class, TF-IDF + logistic regression, previous strategy.

The TF-IDF baseline reads the same text the model reads: the most recent client utterance and the
history turns' texts (two vectorizers, so the client's words and the history's stay apart). Its
regularisation and class weighting are picked on the validation split when one is given.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from threadpoolctl import threadpool_limits

from mmrl.data.schema import Dialogue
from mmrl.labels import STRATEGIES
from mmrl.predictor import TASK_LABELS, TASKS
from mmrl.predictor.features import IGNORE, label_index

__all__ = ["Item", "MajorityBaseline", "PrevStrategyBaseline", "TfidfBaseline", "gold_labels"]

Item = tuple[Dialogue, int]


def gold_labels(items: Sequence[Item]) -> dict[str, np.ndarray]:
    """``{task: label ids}`` of each item (:data:`IGNORE` where the label is unknown)."""
    columns: dict[str, list[int]] = {task: [] for task in TASKS}
    for dialogue, index in items:
        _, client, target = dialogue.context_at(index)
        where = {"record": f"{dialogue.id} turn {index}"}
        columns["client_emotion"].append(
            label_index(client.emotion if client else None, TASK_LABELS["client_emotion"], field="client emotion", **where)
        )
        columns["therapist_emotion"].append(
            label_index(target.emotion, TASK_LABELS["therapist_emotion"], field="therapist emotion", **where)
        )
        columns["strategy"].append(label_index(target.strategy, STRATEGIES, field="strategy", **where))
    return {task: np.array(ids, dtype=np.int64) for task, ids in columns.items()}


def _majority(labels: np.ndarray) -> int:
    known = labels[labels != IGNORE]
    return Counter(known.tolist()).most_common(1)[0][0] if len(known) else 0


class MajorityBaseline:
    """Always the most frequent train label of each task."""

    def fit(self, items: Sequence[Item]) -> MajorityBaseline:
        self.labels = {task: _majority(ids) for task, ids in gold_labels(items).items()}
        return self

    def predict(self, items: Sequence[Item]) -> dict[str, np.ndarray]:
        return {task: np.full(len(items), label) for task, label in self.labels.items()}


def _texts(items: Sequence[Item], max_history_turns: int) -> tuple[list[str], list[str]]:
    clients, histories = [], []
    for dialogue, index in items:
        history, client, _ = dialogue.context_at(index)
        clients.append(client.text if client else "")
        histories.append(" ".join(f"{turn.speaker}: {turn.text}" for turn in history[-max_history_turns:]))
    return clients, histories


class TfidfBaseline:
    """Per task, logistic regression on TF-IDF (1-2 grams) of the client utterance and of the history."""

    grid = tuple((c, weight) for c in (0.3, 1.0, 3.0, 10.0) for weight in (None, "balanced"))

    def __init__(self, max_history_turns: int = 32, seed: int = 0) -> None:
        self.max_history_turns = max_history_turns
        self.seed = seed

    def _features(self, items: Sequence[Item], fit: bool = False):
        clients, histories = _texts(items, self.max_history_turns)
        if fit:
            self.client_vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit(clients)
            self.history_vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=50_000).fit(histories)
        return hstack([self.client_vectorizer.transform(clients), self.history_vectorizer.transform(histories)]).tocsr()

    def fit(self, items: Sequence[Item], val_items: Sequence[Item] = ()) -> TfidfBaseline:
        with threadpool_limits(limits=1):  # multi-threaded BLAS spins for minutes on a shared CPU
            return self._fit(items, val_items)

    def _fit(self, items: Sequence[Item], val_items: Sequence[Item]) -> TfidfBaseline:
        features, labels = self._features(items, fit=True), gold_labels(items)
        val_features = self._features(val_items) if val_items else None
        val_labels = gold_labels(val_items) if val_items else None
        self.models: dict[str, LogisticRegression | int] = {}
        self.chosen: dict[str, dict] = {}
        for task in TASKS:
            known = labels[task] != IGNORE
            if len(set(labels[task][known].tolist())) < 2:
                self.models[task] = _majority(labels[task])
                continue
            candidates = self.grid if val_features is not None else [(1.0, None)]
            best = None
            for c, weight in candidates:
                model = LogisticRegression(C=c, class_weight=weight, max_iter=2000, random_state=self.seed).fit(
                    features[known], labels[task][known]
                )
                score = 0.0
                if val_features is not None:
                    val_known = val_labels[task] != IGNORE
                    score = f1_score(
                        val_labels[task][val_known], model.predict(val_features[val_known]), average="weighted", zero_division=0
                    )
                if best is None or score > best[0]:
                    best = (score, model, {"C": c, "class_weight": weight})
            self.models[task], self.chosen[task] = best[1], best[2]
        return self

    def predict(self, items: Sequence[Item]) -> dict[str, np.ndarray]:
        features = self._features(items)
        return {
            task: np.full(len(items), model) if isinstance(model, int) else model.predict(features) for task, model in self.models.items()
        }


class PrevStrategyBaseline:
    """Strategy only: the strategy of the latest earlier therapist turn (train majority when none)."""

    def fit(self, items: Sequence[Item]) -> PrevStrategyBaseline:
        self.fallback = _majority(gold_labels(items)["strategy"])
        return self

    def predict(self, items: Sequence[Item]) -> dict[str, np.ndarray]:
        predictions = []
        for dialogue, index in items:
            earlier = [t.strategy for t in dialogue.turns[:index] if t.speaker == "therapist" and t.strategy is not None]
            predictions.append(STRATEGIES.index(earlier[-1]) if earlier else self.fallback)
        return {"strategy": np.array(predictions, dtype=np.int64)}
