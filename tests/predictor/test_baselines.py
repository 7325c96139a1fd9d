from __future__ import annotations

import numpy as np
import pytest

from mmrl.data import Dialogue, Segment, Turn
from mmrl.labels import EMOTIONS, STRATEGIES
from mmrl.predictor.baselines import (
    MajorityBaseline,
    PrevStrategyBaseline,
    TfidfBaseline,
    gold_labels,
)
from mmrl.predictor.evaluate import items_of, task_metrics


def _dialogue(name: str, split: str, rows) -> Dialogue:
    turns = tuple(Turn.from_segments(s, [Segment(t, e, st)]) for s, t, e, st in rows)
    return Dialogue(name, split, turns)


def _sessions(n: int, split: str) -> list[Dialogue]:
    """Angry clients shout about noise and get restatements; sad ones talk about loss and get questions."""
    out = []
    for k in range(n):
        angry = k % 2 == 0
        client = ("I am furious about the noise", "anger") if angry else ("I miss her so much since the funeral", "sadness")
        strategy = "Restatement" if angry else "Open question"
        rows = [("client", client[0], client[1], None), ("therapist", "I hear you", "neutral", strategy)] * 3
        out.append(_dialogue(f"{split}{k}", split, rows))
    return out


def test_baselines_on_a_separable_toy_corpus():
    train, val, test = _sessions(12, "train"), _sessions(4, "val"), _sessions(4, "test")
    items, gold = items_of(test), gold_labels(items_of(test))
    tfidf = TfidfBaseline().fit(items_of(train), items_of(val)).predict(items)
    assert task_metrics(gold["client_emotion"], tfidf["client_emotion"])["accuracy"] == 1.0
    assert task_metrics(gold["strategy"], tfidf["strategy"])["accuracy"] == 1.0
    majority = MajorityBaseline().fit(items_of(train)).predict(items)
    assert set(majority["therapist_emotion"]) == {EMOTIONS.index("neutral")}
    assert task_metrics(gold["client_emotion"], majority["client_emotion"])["accuracy"] == 0.5


def test_prev_strategy_copies_the_latest_earlier_therapist_strategy():
    rows = [
        ("client", "hi", "neutral", None),
        ("therapist", "a", "neutral", "Approval"),
        ("client", "b", "neutral", None),
        ("therapist", "c", "neutral", "Advisement"),
        ("client", "d", "neutral", None),
        ("therapist", "e", "neutral", "Others"),
    ]
    dialogue = _dialogue("x", "test", rows)
    train = items_of([_dialogue("t", "train", [("client", "x", "neutral", None), ("therapist", "y", "neutral", "Open question")] * 2)])
    predicted = PrevStrategyBaseline().fit(train).predict(items_of([dialogue]))["strategy"]
    assert [STRATEGIES[i] for i in predicted] == ["Open question", "Approval", "Advisement"]  # the first falls back to the train majority


def test_metrics_ignore_unknown_labels_and_are_fractions():
    m = task_metrics(np.array([0, 1, -100, 1]), np.array([0, 0, 5, 1]))
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert all(np.isnan(v) for v in task_metrics(np.array([-100]), np.array([0])).values())
