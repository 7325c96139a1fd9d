"""The policy's prompt dataset: one row per target therapist turn, what TRL's trainers and ``mmrl eval`` read.

    dataset = prompt_dataset(corpus, split="train", predictor=predictor, tokenizer=tokenizer)
    reward_funcs, weights = rewards.trl.to_trl(build_composite(spec))
    GRPOTrainer(model, reward_funcs=reward_funcs, args=GRPOConfig(reward_weights=weights, ...), train_dataset=dataset)

Columns: ``prompt`` (chat messages from ``mmrl.policy.prompts.render_messages``, with the predictor's
outputs), ``context`` (``rewards.trl.context_json`` of the turn's Context, predicted probabilities
included: what the reward functions rebuild), ``dialogue_id``, ``turn_index``, ``split``. Training
datasets take the train split only (``mmrl.data.require_train``); ``training=False`` builds
evaluation datasets from val/test. Multi-turn episodes: ``envs.trl_bridge.MultiTurnRollout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datasets import Dataset

from mmrl.data import Dialogue, require_train
from mmrl.data.sources import DataSource, load_dialogues
from mmrl.errors import ConfigError, SplitLeakError
from mmrl.policy.prompts import render_messages
from mmrl.predictor import EmotionPredictor
from rewards.base import Context
from rewards.trl import context_json

__all__ = ["prompt_dataset", "prompt_rows"]


def prompt_rows(
    dialogues: Sequence[Dialogue],
    predictor: EmotionPredictor | None = None,
    *,
    first_only: bool = False,
    tokenizer: Any = None,
    max_history_tokens: int = 1024,
    max_history_turns: int = 16,
) -> list[dict]:
    """The dataset rows of every target therapist turn of ``dialogues`` (``first_only``: each dialogue's first)."""
    render = {"tokenizer": tokenizer, "max_history_tokens": max_history_tokens, "max_history_turns": max_history_turns}
    rows = []
    for dialogue in dialogues:
        targets = dialogue.target_indices()[:1] if first_only else dialogue.target_indices()
        if not targets:
            continue
        predicted = (
            [None] * len(targets) if predictor is None else [c.probabilities() for c in predictor.predict([(dialogue, i) for i in targets])]
        )
        for index, probabilities in zip(targets, predicted):
            context = Context.from_dialogue(dialogue, index, probabilities)
            rows.append(
                {
                    "prompt": render_messages(context, **render),
                    "context": context_json(context),
                    "dialogue_id": dialogue.id,
                    "turn_index": index,
                    "split": dialogue.split,
                }
            )
    return rows


def prompt_dataset(
    data: Any = None,
    *,
    format: str | None = None,
    split: str = "train",
    training: bool = True,
    predictor: EmotionPredictor | None = None,
    tokenizer: Any = None,
    max_history_tokens: int = 1024,
    max_history_turns: int = 16,
) -> Dataset:
    """One row per target therapist turn of ``split`` (see the module docstring for the columns).

    ``data`` is anything ``mmrl.data.sources.load_dialogues`` reads, or an env with ``dialogues`` and
    ``predictor`` (a CounselingEnv: its dialogues and, unless given, its predictor). ``training=True``
    refuses any dialogue outside the train split (``SplitLeakError``); pass ``training=False`` for an
    evaluation dataset. The history budget arguments go to ``render_messages``.
    """
    if training and split != "train":
        raise SplitLeakError(
            f"an RL training dataset takes the train split, got split={split!r}; for an evaluation dataset pass training=False (`mmrl env prompts --eval` on the command line)"
        )
    dialogues, predictor = _source(data, format, split, predictor)
    if training:
        require_train(dialogues, purpose="an RL training prompt dataset")
    rows = prompt_rows(
        dialogues, predictor, tokenizer=tokenizer, max_history_tokens=max_history_tokens, max_history_turns=max_history_turns
    )
    if not rows:
        raise ConfigError(f"no therapist turn to train on in {len(dialogues)} dialogue(s) of split {split!r}")
    return Dataset.from_list(rows)


def _source(
    data: Any, format: str | None, split: str, predictor: EmotionPredictor | None
) -> tuple[list[Dialogue], EmotionPredictor | None]:
    env = getattr(data, "unwrapped", None)
    if env is not None:  # a Gymnasium env over dialogues
        if not (hasattr(env, "dialogues") and hasattr(env, "predictor")):
            raise ConfigError(
                f"data is a {type(env).__name__}, an env without dialogues and a predictor; pass a CounselingEnv, a Corpus, a path or a list of Dialogue"
            )
        if format is not None:
            raise ConfigError("format= applies to a path, not to an env; drop it")
        return list(env.dialogues), predictor if predictor is not None else env.predictor
    source: DataSource | None = data
    return load_dialogues(source, format=format, split=split), predictor
