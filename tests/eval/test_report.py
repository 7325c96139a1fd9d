"""Markdown, CSV and PNG writers on hand-made reports (missing figures included)."""

from __future__ import annotations

import csv

from mmrl.eval.compare import to_json
from mmrl.eval.report import eval_markdown, flatten, write_comparison


def _report(policy: str, rate: float | None, empathy: float | None) -> dict:
    scores = {"accuracy": 0.5, "weighted_f1": 0.4, "macro_f1": None, "labelled": 2, "unparsed": 1}
    return {
        "policy": policy,
        "data": "corpus",
        "split": "test",
        "prompts": 2,
        "parse": {"ok": 1, "failed": 1, "rate": rate},
        "components": {task: dict(scores) for task in ("client_emotion", "therapist_emotion", "strategy")},
        "text": {"bleu2": 0.25, "rouge1": 0.5, "rouge2": 0.0, "rougeL": 0.5, "meteor": 0.3, "embedding_similarity": None},
        "trust": {"empathy": {"mean": empathy, "std": None, "failures": 2}},
        "monitors": {"distinct_1": 0.75},
        "meta": {"selection": "all", "targets": 2, "max_new_tokens": 8, "meteor_matching": "exact+stem", "meteor_note": "no WordNet"},
    }


def test_to_json_turns_nan_and_numpy_into_strict_json():
    import numpy as np

    assert to_json({"a": np.float64("nan"), "b": [np.int64(2), np.float32(0.5)], "c": np.array([1.0, np.inf])}) == {
        "a": None, "b": [2, 0.5], "c": [1.0, None],
    }  # fmt: skip


def test_flatten_and_markdown_show_missing_figures_as_such():
    report = _report("tiny", 0.5, None)
    row = flatten(report)
    assert row["components/strategy/unparsed"] == 1 and row["trust/empathy/failures"] == 2 and row["monitors/distinct_1"] == 0.75
    text = eval_markdown(report)
    assert "| strategy | 0.500 | 0.400 | n/a | 2 | 1 |" in text
    assert "| empathy | n/a | n/a | 2 |" in text
    assert "METEOR matching: **exact+stem** (no WordNet)" in text


def test_comparison_files(tmp_path):
    paths = write_comparison([_report("a", 0.5, 0.8), _report("b|c", None, None)], tmp_path)
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [(r["policy"], r["parse/rate"], r["trust/empathy/mean"]) for r in rows] == [("a", "0.5", "0.8"), ("b|c", "", "")]
    table = paths["md"].read_text()
    assert "| empathy/mean | 0.800 | n/a |" in table and "`b\\|c`" in table
    assert paths["png"].stat().st_size > 10_000
