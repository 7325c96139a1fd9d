"""``mmrl sft --config YAML [--resume]`` and ``mmrl train --config YAML [--resume]``.

``add_commands(subparsers)`` adds both to the ``mmrl`` parser; ``python -m mmrl.train.cli`` runs them alone.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mmrl.errors import MmrlError

__all__ = ["add_commands", "main"]


def _overrides(args: argparse.Namespace) -> dict:
    return {"resume": True} if args.resume else {}


def _sft(args: argparse.Namespace) -> None:
    from mmrl.train.config import SFTRunConfig
    from mmrl.train.sft import run_sft

    result = run_sft(SFTRunConfig.from_yaml(args.config, **_overrides(args)))
    resumed = f" (resumed from {result.resumed_from.name})" if result.resumed_from else ""
    print(f"SFT finished at step {result.global_step}{resumed}: policy in {result.model_dir}; checkpoints and logs in {result.output_dir}")


def _train(args: argparse.Namespace) -> None:
    from mmrl.train.config import RLRunConfig
    from mmrl.train.rl import EVAL_FILE, run_rl

    config = RLRunConfig.from_yaml(args.config, **_overrides(args))
    result = run_rl(config)
    resumed = f" (resumed from {result.resumed_from.name})" if result.resumed_from else ""
    evaluation = result.evaluation or {}
    if evaluation.get("reward") is not None:
        scores = ", ".join(f"{name} {c['mean']:.3f}" for name, c in evaluation["components"].items() if c["mean"] is not None)
        print(f"val ({evaluation['prompts']} prompts): reward {evaluation['reward']:.3f}; {scores}; parse rate {evaluation['parse_rate']:.2f}")
    print(
        f"{config.algorithm.upper()} finished at step {result.global_step}{resumed}: policy in {result.model_dir}; "
        f"val scores in {result.output_dir / EVAL_FILE}; checkpoints and TensorBoard logs in {result.output_dir}"
    )


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sft`` and ``train`` to an ``add_subparsers()`` object."""
    resume_help = "continue from the last complete checkpoint in output_dir (same step count, optimizer and scheduler state)"
    sft = subparsers.add_parser("sft", help="supervised fine-tuning of the policy on the train split (TRL SFTTrainer)")
    sft.add_argument("--config", type=Path, required=True, help="YAML with SFTRunConfig fields (see experiments/sft_*.yaml)")
    sft.add_argument("--resume", action="store_true", help=resume_help)
    sft.set_defaults(func=_sft)
    train = subparsers.add_parser("train", help="GRPO or RLOO of the policy on the composed rewards (TRL)")
    train.add_argument("--config", type=Path, required=True, help="YAML with RLRunConfig fields (see experiments/grpo_*.yaml)")
    train.add_argument("--resume", action="store_true", help=resume_help)
    train.set_defaults(func=_train)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sft`` or ``train`` alone (what ``mmrl sft`` / ``mmrl train`` do once wired into ``mmrl.cli``)."""
    parser = argparse.ArgumentParser(prog="python -m mmrl.train.cli", description="Train the policy LLM with TRL.")
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except MmrlError as err:
        print(f"mmrl: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
