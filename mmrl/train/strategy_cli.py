"""``mmrl train-strategy``: wired into the ``mmrl`` console script by :func:`add_commands`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_commands"]


def _train_strategy(args: argparse.Namespace) -> None:
    from mmrl.outputs import check_output
    from mmrl.train.strategy import StrategyPPOConfig, train_strategy

    config = StrategyPPOConfig.from_yaml(args.config, address=args.address, output_dir=args.out)
    check_output(Path(config.output_dir), inputs=[args.config], overwrite=args.overwrite, writes=("report.json", "checkpoint"))
    report = train_strategy(config)
    evaluation = report["evaluation"]
    summary = {name: round(result["mean_episode_reward"], 4) for name, result in evaluation["planners"].items()}
    print(
        json.dumps({"data": report["data"], f"{evaluation['split']}_mean_episode_reward": summary, "timings": report["timings"]}, indent=2)
    )
    print(f"report: {config.output_dir}/report.json; checkpoint: {report['checkpoint']}")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train-strategy --config YAML [--address ADDRESS] [--out DIR]``."""
    parser = subparsers.add_parser(
        "train-strategy",
        help="train the strategy planner (mmrl/Strategy-v0) with RLlib PPO and compare it with random and majority planners",
        description="RLlib PPO (new API stack) on mmrl/Strategy-v0; writes report.json and checkpoint/ to the output directory.",
    )
    parser.add_argument("--config", required=True, help="YAML of StrategyPPOConfig fields (e.g. experiments/strategy_ppo.yaml)")
    parser.add_argument("--address", default=None, help="Ray cluster to join ('auto' or 'ray://host:10001'); default: a local Ray")
    parser.add_argument("--out", default=None, help="output directory (overrides output_dir of the config)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the report and checkpoint of an earlier run in the output directory"
    )
    parser.set_defaults(func=_train_strategy)
