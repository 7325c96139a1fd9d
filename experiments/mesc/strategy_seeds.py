"""Issue 17's figures: the default predictor trained with several seeds on real MESC, scored on val and test beside the baselines.

Each seed trains ``PredictorConfig(seed=s)`` (``--fast``: ``strategy_model: fusion``) on train,
early-stopped on val, and is scored on val and on test; the majority, TF-IDF and previous-strategy
baselines are fitted on train (TF-IDF tuned on val) and scored on both splits. Writes the per-seed
metrics and their mean, standard deviation, minimum and maximum as JSON.

    python experiments/mesc/strategy_seeds.py --data ../shared/data/mesc --out docs/results/strategy_test.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from mmrl.data import load_corpus
from mmrl.predictor import TASKS
from mmrl.predictor.config import PredictorConfig
from mmrl.predictor.evaluate import METRICS, evaluate_baselines, evaluate_model, items_of
from mmrl.predictor.train import train_predictor

SPLITS = ("val", "test")


def _spread(runs: list[dict]) -> dict:
    """``{split: {task: {metric: {mean, std, min, max}}}}`` over the seeds' metrics."""
    return {
        split: {
            task: {
                metric: {
                    name: round(float(fn([run[split][task][metric] for run in runs])), 4)
                    for name, fn in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max))
                }
                for metric in METRICS
            }
            for task in TASKS
        }
        for split in SPLITS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("MMRL_MESC_DIR", "../shared/data/mesc")), help="MESC directory")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fast", action="store_true", help="strategy_model: fusion")
    parser.add_argument("--cache-dir", default=PredictorConfig.cache_dir, help="text-embedding cache")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()
    corpus = load_corpus(args.data, "mesc")
    items = {split: items_of(corpus.split(split)) for split in ("train", *SPLITS)}
    runs = []
    for seed in args.seeds:
        started = time.perf_counter()
        config = PredictorConfig(seed=seed, cache_dir=args.cache_dir, strategy_model="fusion" if args.fast else "gru")
        predictor, summary = train_predictor(config, corpus.split("train"), corpus.split("val"), progress=False)
        runs.append(
            {
                "seed": seed,
                "train_seconds": round(time.perf_counter() - started, 1),
                "logit_adjustment_tau": summary.get("logit_adjustment_tau"),
                **{split: evaluate_model(predictor, items[split]) for split in SPLITS},
            }
        )
        print(json.dumps({k: runs[-1][k] for k in ("seed", "train_seconds")} | {"strategy": {s: runs[-1][s]["strategy"] for s in SPLITS}}))
    baselines = {split: evaluate_baselines(items["train"], items[split], items["val"]) for split in SPLITS}
    report = {"config": {"strategy_model": config.strategy_model}, "runs": runs, "summary": _spread(runs), "baselines": baselines}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for split in SPLITS:
        for task in ("client_emotion", "strategy"):
            m = report["summary"][split][task]
            rows = [f"model {m['weighted_f1']['mean']:.4f} ± {m['weighted_f1']['std']:.4f} (acc {m['accuracy']['mean']:.4f})"]
            rows += [f"{name} {b[task]['weighted_f1']:.4f}" for name, b in baselines[split].items() if task in b]
            print(f"{split} {task} weighted-F1: " + "; ".join(rows))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
