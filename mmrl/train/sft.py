"""Supervised fine-tuning of the policy (TRL ``SFTTrainer``) on the train split.

Each target therapist turn becomes one prompt-completion example: the prompt is the policy's chat
prompt (``mmrl.policy.prompts.render_messages``, via ``mmrl.policy.dataset.prompt_dataset``), the
completion the structured block ``format_output(gold client emotion, gold therapist emotion, gold
strategy, reference reply)``, so the policy learns the output format and the therapist's style.
The loss covers the completion only. Turns without all three labels and a reply are left out.

    config = SFTRunConfig.from_yaml("experiments/sft_tiny.yaml")
    result = run_sft(config)          # result.model_dir: the policy for `mmrl train`
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset

from mmrl.data import Dialogue, require_train
from mmrl.errors import DataError
from mmrl.outputs import disk_full_as_error
from mmrl.policy.models import load_policy
from mmrl.policy.prompts import format_output
from mmrl.train.config import SFTRunConfig
from mmrl.train.runs import (
    RunResult,
    finish_run,
    load_predictor,
    load_split,
    resume_checkpoint,
    trl_arguments,
)

__all__ = ["run_sft", "sft_dataset"]


def sft_dataset(dialogues: Sequence[Dialogue], *, tokenizer: Any = None, predictor: Any = None, max_history_tokens: int = 1024) -> Dataset:
    """``prompt`` (chat messages) / ``completion`` (the assistant's structured block) rows of train dialogues.

    Raises ``SplitLeakError`` for any val/test dialogue.
    """
    from mmrl.policy.dataset import prompt_dataset

    dialogues = require_train(dialogues, purpose="SFT")
    prompts = prompt_dataset(dialogues, split="train", predictor=predictor, tokenizer=tokenizer, max_history_tokens=max_history_tokens)
    rows, skipped = [], 0
    for row in prompts:
        context = json.loads(row["context"])
        labels = (context["gold_client_emotion"], context["gold_therapist_emotion"], context["gold_strategy"], context["reference"])
        if not all(labels):
            skipped += 1
            continue
        target = format_output(*labels)
        rows.append({"prompt": row["prompt"], "completion": [{"role": "assistant", "content": target}], "dialogue_id": row["dialogue_id"]})
    if skipped:
        warnings.warn(f"SFT: left out {skipped} of {len(prompts)} therapist turns lacking a label or a reply", stacklevel=2)
    if not rows:
        raise DataError(f"no therapist turn of the {len(dialogues)} train dialogues has all labels and a reply: nothing to learn from")
    return Dataset.from_list(rows)


def run_sft(config: SFTRunConfig, *, callbacks: Sequence[Any] = (), deepspeed: dict[str, Any] | None = None) -> RunResult:
    """Fine-tune ``config.policy`` on the train split; checkpoints every ``save_steps``; resumes with ``config.resume``.

    ``deepspeed``: a DeepSpeed config, in a Ray Train worker (``mmrl.train.distributed``).
    """
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    resume_from = resume_checkpoint(config)
    set_seed(config.seed)
    model, tokenizer = load_policy(config.policy, lora=config.lora, dtype=config.dtype, seed=config.seed)
    dataset = sft_dataset(
        load_split(config, "train"), tokenizer=tokenizer, predictor=load_predictor(config), max_history_tokens=config.max_history_tokens
    )
    args = SFTConfig(**trl_arguments(config, deepspeed, max_length=config.max_length, completion_only_loss=True))
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, callbacks=list(callbacks))
    with disk_full_as_error(Path(config.output_dir)):  # a full disk mid-run says so (torch reports it from inside torch.save)
        trainer.train(resume_from_checkpoint=None if resume_from is None else str(resume_from))
    return finish_run(trainer, config, resume_from)
