"""Real MESC, official splits: train with the default config and compare with the baselines on test."""

from __future__ import annotations

import json
import time

import pytest

from mmrl.predictor.config import PredictorConfig
from mmrl.predictor.evaluate import evaluation_report, items_of
from mmrl.predictor.train import train_predictor

pytestmark = pytest.mark.slow

TARGET_MARGIN = 0.05  # client emotion: weighted-F1 over the best baseline of the task
STRATEGY_TARGET_MARGIN = 0.03  # strategy (issue 17): weighted-F1 over the best baseline (the previous strategy on MESC)
TIME_BUDGET_S = 30 * 60  # training, text embeddings included, on 2 CPU cores


@pytest.fixture(scope="module")
def mesc_run(mesc_corpus, tmp_path_factory):
    started = time.perf_counter()
    config = PredictorConfig(cache_dir=str(tmp_path_factory.mktemp("text-cache")))  # cold cache: embeddings are timed too
    predictor, summary = train_predictor(
        config, mesc_corpus.split("train"), mesc_corpus.split("val"), tmp_path_factory.mktemp("ckpt"), progress=False
    )
    elapsed = time.perf_counter() - started
    train, val, test = (items_of(mesc_corpus.split(name)) for name in ("train", "val", "test"))
    report = evaluation_report(predictor, train, test, val)
    print(json.dumps({"train_seconds": round(elapsed, 1), "token_reduction": summary["token_reduction"], **report}, indent=2))
    return elapsed, report


def _margin(report: dict, task: str) -> float:
    best = max(baseline[task]["weighted_f1"] for baseline in report["baselines"].values() if task in baseline)
    return report["model"][task]["weighted_f1"] - best


def test_training_fits_the_time_budget(mesc_run):
    elapsed, _ = mesc_run
    assert elapsed < TIME_BUDGET_S


def test_client_emotion_beats_the_best_baseline(mesc_run):
    _, report = mesc_run
    assert _margin(report, "client_emotion") >= TARGET_MARGIN


@pytest.mark.xfail(
    reason="known gap (docs/results/strategy.md): test weighted-F1 0.310 +- 0.004 over 3 seeds (strategy GRU; 0.327 +- 0.014 "
    "with --fast) vs 0.346 for the previous-strategy baseline, target 0.376",
    strict=False,
)
def test_strategy_beats_the_best_baseline(mesc_run):
    _, report = mesc_run
    assert _margin(report, "strategy") >= STRATEGY_TARGET_MARGIN
