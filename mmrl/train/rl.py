"""GRPO / RLOO of the policy (TRL ``GRPOTrainer`` / ``RLOOTrainer``) on the composed rewards.

Reads in the order it runs: rewards (spec -> Composite -> TRL reward functions and weights) ->
policy -> train-split prompts (``mmrl.policy.dataset.prompt_dataset``, predictor outputs included) ->
TRL trainer (checkpoints every ``save_steps``, resumable) -> greedy evaluation on val prompts.

TRL logs the per-component rewards as ``rewards/<name>/mean|std`` (plus ``reward``, ``reward_std``)
to TensorBoard by default. The evaluation, ``eval_val.json`` in the output directory, holds the mean
composite reward, each component's mean and failure count, and the parse rate of the structured
block over val prompts.

    config = RLRunConfig.from_yaml("experiments/grpo_tiny.yaml")
    result = run_rl(config)           # result.evaluation: the val scores
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset

from mmrl.eval.metrics import parse_stats
from mmrl.llm import generate
from mmrl.outputs import disk_full_as_error
from mmrl.train.config import RLRunConfig
from mmrl.train.runs import (
    RunResult,
    finish_run,
    is_main_process,
    load_predictor,
    load_split,
    resume_checkpoint,
    trl_arguments,
    wait_for_everyone,
)
from rewards.base import scored_mean
from rewards.compose import Composite
from rewards.trl import contexts_from_columns

__all__ = ["EVAL_FILE", "evaluate_policy", "evaluate_val", "run_rl"]

EVAL_FILE = "eval_val.json"


def run_rl(config: RLRunConfig, *, callbacks: Sequence[Any] = (), deepspeed: dict[str, Any] | None = None) -> RunResult:
    """Train ``config.policy`` with GRPO or RLOO on train-split prompts, then score it on val prompts.

    ``deepspeed``: a DeepSpeed config, in a Ray Train worker (``mmrl.train.distributed``). In a distributed
    run every worker scores the same val prompts (under ZeRO-3 generation needs them all) and rank 0 writes.
    """
    from transformers import set_seed

    from mmrl.eval.monitors import with_monitors
    from mmrl.policy.dataset import prompt_dataset
    from mmrl.policy.models import load_policy
    from rewards.spec import build_composite
    from rewards.trl import to_trl

    resume_from = resume_checkpoint(config)  # first: a bad output_dir or resume stops the run before anything loads
    # rewards: what the trainer optimises is exactly the composite's total
    spec = config.reward_spec_parsed()
    composite = build_composite(spec)
    if spec["mode"] == "normalised":
        print(f"rewards: mode normalised, each component standardised per group of {spec['group_size']} completions")
    # the reward-hacking monitors ride along at weight 0: logged as rewards/monitor_<name>/mean, never optimised
    reward_funcs, reward_weights = with_monitors(*to_trl(composite))

    # policy and prompts
    set_seed(config.seed)
    model, tokenizer = load_policy(config.policy, lora=config.lora, dtype=config.dtype, seed=config.seed)
    predictor = load_predictor(config)
    train_prompts = prompt_dataset(
        load_split(config, "train"),
        split="train",
        training=True,
        predictor=predictor,
        tokenizer=tokenizer,
        max_history_tokens=config.max_history_tokens,
    )

    # trainer
    specific: dict[str, Any] = {
        "num_generations": config.num_generations,
        "max_completion_length": config.max_completion_length,
        "temperature": config.temperature,
        "reward_weights": reward_weights,
    }
    if config.beta is not None:
        specific["beta"] = config.beta
    if config.loss_type is not None:
        specific["loss_type"] = config.loss_type
    trainer_cls, config_cls = config.trl_classes()
    args = config_cls(**trl_arguments(config, deepspeed, **specific))
    if args.beta > 0 and not hasattr(model, "peft_config"):
        _give_reference_path(model, tokenizer, Path(config.output_dir) / "reference_policy")
    trainer = trainer_cls(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=train_prompts,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    with disk_full_as_error(Path(config.output_dir)):  # a full disk mid-run says so (torch reports it from inside torch.save)
        trainer.train(resume_from_checkpoint=None if resume_from is None else str(resume_from))

    # evaluation on val prompts (never trained on)
    evaluation = evaluate_val(config, trainer.model, tokenizer, composite, predictor)
    if is_main_process():
        (Path(config.output_dir) / EVAL_FILE).write_text(json.dumps(evaluation, indent=2) + "\n", encoding="utf-8")
    return finish_run(trainer, config, resume_from, evaluation)


def _give_reference_path(model: Any, tokenizer: Any, directory: Path) -> None:
    """TRL builds the KL reference model from the policy's ``name_or_path``: save an in-memory policy (``tiny``) once."""
    if model.config._name_or_path:
        return
    if is_main_process() and not (directory / "config.json").is_file():  # on resume, the initial policy saved by the first run
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    wait_for_everyone()
    model.config._name_or_path = str(directory)


def evaluate_val(config: RLRunConfig, model: Any, tokenizer: Any, composite: Composite, predictor: Any = None) -> dict[str, Any]:
    """:func:`evaluate_policy` on the first ``config.eval_max_prompts`` val prompts, rendered as training renders them."""
    from mmrl.policy.dataset import prompt_dataset

    dialogues = load_split(config, "val")
    if not dialogues:  # said in the file rather than failing a finished run
        return {"split": "val", "skipped": "the data has no val-split dialogue"}
    prompts = prompt_dataset(
        dialogues, split="val", training=False, predictor=predictor, tokenizer=tokenizer, max_history_tokens=config.max_history_tokens
    )
    if config.eval_max_prompts is not None:
        prompts = prompts.select(range(min(config.eval_max_prompts, len(prompts))))
    return {"split": "val", **evaluate_policy(model, tokenizer, prompts, composite, max_new_tokens=config.max_completion_length)}


def _mean(values: np.ndarray) -> float | None:
    mean = scored_mean(values)
    return None if math.isnan(mean) else mean


def evaluate_policy(model: Any, tokenizer: Any, prompts: Dataset, composite: Composite, *, max_new_tokens: int) -> dict[str, Any]:
    """Score greedy completions of a ``prompt_dataset`` with ``composite``.

    In the names ``mmrl eval`` reports use: ``prompts``, ``reward`` (mean total over scorable completions),
    ``reward_failed`` (completions whose total failed), ``rewards`` (``{name: {"mean", "failures"}}``), ``parse``
    (``{"ok", "failed", "rate"}``: a parse failure is counted, never dropped) and the first three ``examples``.
    """
    completions = generate(model, tokenizer, prompts["prompt"], max_new_tokens=max_new_tokens)
    result = composite(contexts_from_columns(len(prompts), {"context": prompts["context"]}), completions)
    return {
        "prompts": len(completions),
        "reward": _mean(result.total),
        "reward_failed": int(np.isnan(result.total).sum()),
        "rewards": {
            name: {"mean": _mean(scores), "failures": len(result.failures.get(name, {}))} for name, scores in result.scores.items()
        },
        "parse": parse_stats(completions),
        "examples": completions[:3],
    }
