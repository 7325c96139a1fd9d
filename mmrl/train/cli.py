"""``mmrl sft --config YAML [--resume]`` and ``mmrl train --config YAML [--resume]``, local or on Ray Train.

``--num-workers K [--use-gpu] [--deepspeed JSON] [--address ADDRESS]`` runs the same trainer on K Ray
Train workers (``mmrl.train.distributed``); without ``--num-workers`` the run is local.
``add_commands(subparsers)`` adds both commands to the ``mmrl`` parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from mmrl.errors import ConfigError

if TYPE_CHECKING:
    from mmrl.train.config import RunConfig
    from mmrl.train.runs import RunResult

__all__ = ["add_commands"]


def _overrides(args: argparse.Namespace) -> dict:
    out = {} if args.on_error is None else {"on_error": args.on_error}
    if args.force_resume:
        return {**out, "resume": True, "force_resume": True}
    return {**out, "resume": True} if args.resume else out


def _run(config: RunConfig, args: argparse.Namespace) -> RunResult:
    """``config``'s run: on Ray Train workers with ``--num-workers``, else in this process."""
    if args.num_workers is None:
        given = [
            flag for flag, value in (("--use-gpu", args.use_gpu), ("--deepspeed", args.deepspeed), ("--address", args.address)) if value
        ]
        if given:
            raise ConfigError(
                f"{', '.join(given)} apply to a Ray Train run: add --num-workers K (K workers), or leave them out for a local run"
            )
        from mmrl.train.config import SFTRunConfig
        from mmrl.train.rl import run_rl
        from mmrl.train.sft import run_sft

        return run_sft(config) if isinstance(config, SFTRunConfig) else run_rl(config)
    from mmrl.train.distributed import DistributedOptions, run_distributed

    return run_distributed(config, DistributedOptions(args.num_workers, args.use_gpu, args.deepspeed, args.address))


def _where(result: RunResult) -> str:
    resumed = f" (resumed from {result.resumed_from.name})" if result.resumed_from else ""
    workers = f" on {len(result.workers)} Ray Train workers" if len(result.workers) > 1 else ""
    return f"at step {result.global_step}{workers}{resumed}"


def _sft(args: argparse.Namespace) -> None:
    from mmrl.train.config import SFTRunConfig

    result = _run(SFTRunConfig.from_yaml(args.config, **_overrides(args)), args)
    print(f"SFT finished {_where(result)}: policy in {result.model_dir}; checkpoints and logs in {result.output_dir}")


def _train(args: argparse.Namespace) -> None:
    from mmrl.train.config import RLRunConfig
    from mmrl.train.rl import EVAL_FILE

    config = RLRunConfig.from_yaml(args.config, **_overrides(args))
    result = _run(config, args)
    evaluation = result.evaluation or {}
    if evaluation.get("reward") is not None:
        scores = ", ".join(f"{name} {c['mean']:.3f}" for name, c in evaluation["rewards"].items() if c["mean"] is not None)
        print(
            f"val ({evaluation['prompts']} prompts): reward {evaluation['reward']:.3f}; {scores}; parse rate {evaluation['parse']['rate']:.2f}"
        )
    print(
        f"{config.algorithm.upper()} finished {_where(result)}: policy in {result.model_dir}; "
        f"val scores in {result.output_dir / EVAL_FILE}; checkpoints and TensorBoard logs in {result.output_dir}"
    )


def _add_run_options(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument("--config", type=Path, required=True, help=f"YAML with {example}")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last complete checkpoint in output_dir (same step count, optimizer and scheduler state)",
    )
    parser.add_argument(
        "--force-resume",
        action="store_true",
        help="resume even though the config differs from the one the run started with (both are recorded)",
    )
    parser.add_argument("--on-error", choices=("raise", "skip"), default=None,
                        help="a bad data record stops the run, or is skipped and counted in summary.json (default: the config's on_error, raise)")  # fmt: skip
    ray = parser.add_argument_group("Ray Train (docs/cluster.md)")
    ray.add_argument(
        "--num-workers",
        type=int,
        default=None,
        metavar="K",
        help="run on K Ray Train workers, one trainer each; without it the run is local",
    )
    ray.add_argument("--use-gpu", action="store_true", help="one GPU per worker (default: one CPU per worker)")
    ray.add_argument(
        "--deepspeed", type=Path, default=None, metavar="JSON", help="DeepSpeed config, e.g. experiments/deepspeed/zero2.json or zero3.json"
    )
    ray.add_argument("--address", default=None, help="an existing Ray cluster ('ray://head:10001' or 'auto'); default: a local Ray")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sft`` and ``train`` to an ``add_subparsers()`` object."""
    sft = subparsers.add_parser("sft", help="supervised fine-tuning of the policy on the train split (TRL SFTTrainer)")
    _add_run_options(sft, "SFTRunConfig fields (see experiments/sft_*.yaml)")
    sft.set_defaults(func=_sft)
    train = subparsers.add_parser("train", help="GRPO or RLOO of the policy on the composed rewards (TRL)")
    _add_run_options(train, "RLRunConfig fields (see experiments/grpo_*.yaml)")
    train.set_defaults(func=_train)
