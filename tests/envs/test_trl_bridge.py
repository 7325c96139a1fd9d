"""The TRL bridge: prompt datasets (split guard, column contract) and real GRPOTrainer steps, single-turn and whole episodes."""

from __future__ import annotations

import math
import os

import pytest

from envs.clients import PersonaCard, SimulatedClient
from envs.counseling import CounselingEnv
from envs.trl_bridge import EpisodeReturn, MultiTurnRollout
from mmrl.errors import ConfigError, SplitLeakError
from mmrl.policy.dataset import prompt_dataset
from mmrl.policy.models import tiny_policy
from mmrl.policy.prompts import render_messages
from rewards.base import Context
from rewards.compose import Composite
from rewards.trl import contexts_from_columns, to_trl

from .conftest import length_reward
from .test_counseling import FakePredictor

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def _config(tmp_path, **overrides):
    from trl import GRPOConfig

    settings = {
        "output_dir": str(tmp_path / "out"), "use_cpu": True, "bf16": False, "fp16": False, "gradient_checkpointing": False,
        "per_device_train_batch_size": 2, "num_generations": 2, "max_completion_length": 8, "max_steps": 1,
        "logging_steps": 1, "report_to": "none", "save_strategy": "no", "seed": 0,
    }  # fmt: skip
    return GRPOConfig(**{**settings, **overrides})


# ----- datasets -----


def test_one_row_per_therapist_turn_whose_context_rebuilds_exactly(corpus):
    dataset = prompt_dataset(corpus, split="train")
    train = {d.id: d for d in corpus.split("train")}
    assert len(dataset) == sum(len(d.target_indices()) for d in train.values())
    assert set(dataset.column_names) == {"prompt", "context", "dialogue_id", "turn_index", "split"}
    for row in (dataset[0], dataset[len(dataset) - 1]):
        context = contexts_from_columns(1, {"context": [row["context"]]})[0]
        assert context == Context.from_dialogue(train[row["dialogue_id"]], row["turn_index"])
        assert row["prompt"] == render_messages(context) and row["split"] == "train"


def test_the_env_and_its_predictor_feed_the_dataset(corpus):
    env = CounselingEnv(corpus, media=False, predictor=FakePredictor())
    dataset = prompt_dataset(env)
    context = contexts_from_columns(1, {"context": [dataset[0]["context"]]})[0]
    assert context.predicted is not None and context.predicted["strategy"][context.turn_index % 10] == pytest.approx(0.82)
    assert "Emotion predictor" in dataset[0]["prompt"][1]["content"]


def test_val_and_test_are_refused_for_training(corpus):
    with pytest.raises(SplitLeakError, match="takes the train split, got split=.val.; for an evaluation dataset pass training=False"):
        prompt_dataset(corpus, split="val")
    with pytest.raises(SplitLeakError, match="test"):
        prompt_dataset(CounselingEnv(corpus, split="test", media=False))
    evaluation = prompt_dataset(corpus, split="val", training=False)
    assert set(evaluation["split"]) == {"val"}
    with pytest.raises(SplitLeakError):
        MultiTurnRollout(lambda: CounselingEnv(corpus, split="val", media=False, reward_spec=Composite([(length_reward(), 1.0)]))).dataset()


def test_reward_functions_score_the_dataset_rows(corpus):
    dataset = prompt_dataset(corpus).select(range(3))
    funcs, weights = to_trl(Composite([(length_reward(), 1.0)], on_missing="skip"))
    columns = {k: dataset[k] for k in dataset.column_names if k != "prompt"}
    assert funcs[0](dataset["prompt"], ["x" * 10, "x" * 20, "x" * 200], **columns) == [0.1, 0.2, 1.0] and weights == [1.0]


def test_episode_return_passes_nan_as_none():
    assert EpisodeReturn()([None, None], ["a", "b"], episode_return=[0.5, math.nan]) == [0.5, None]
    with pytest.raises(ConfigError, match="MultiTurnRollout"):
        EpisodeReturn()([None], ["a"])


# ----- GRPOTrainer -----


def test_grpo_trainer_steps_on_the_prompt_dataset(corpus, tmp_path):
    from trl import GRPOTrainer

    model, tokenizer = tiny_policy()
    dataset = prompt_dataset(corpus, tokenizer=tokenizer, max_history_tokens=64).select(range(4))
    funcs, weights = to_trl(Composite([(length_reward(), 1.0)], on_missing="skip"))
    trainer = GRPOTrainer(
        model, reward_funcs=funcs, args=_config(tmp_path, reward_weights=weights), train_dataset=dataset, processing_class=tokenizer
    )
    trainer.train()
    logged = trainer.state.log_history[0]
    assert 0.0 <= logged["rewards/length/mean"] <= 1.0 and logged["rewards/length/failures"] == 0.0


def test_grpo_trainer_steps_on_whole_episodes_with_a_simulated_client(corpus, tmp_path):
    from trl import GRPOTrainer

    client_model, client_tokenizer = tiny_policy(seed=1)
    composite = Composite([(length_reward(), 1.0)])

    def make_env():
        persona = PersonaCard("Grief", "Lost a parent.", emotions=("sadness",), leave_if=("goodbye",))
        client = SimulatedClient(client_model, client_tokenizer, persona=persona, max_new_tokens=6)
        return CounselingEnv(corpus, media=False, client=client, reward_spec=composite, nan_reward=math.nan)

    rollout = MultiTurnRollout(make_env, max_turns=2, max_new_tokens=6)
    model, tokenizer = tiny_policy()
    dataset = rollout.dataset().select(range(2))
    trainer = GRPOTrainer(
        model,
        reward_funcs=rollout.reward_funcs(),
        args=_config(tmp_path),
        train_dataset=dataset,
        processing_class=tokenizer,
        rollout_func=rollout,
    )
    trainer.train()
    logged = trainer.state.log_history[0]
    assert logged["episode/turns"] == 2.0 and 0.0 <= logged["rewards/episode_return/mean"] <= 1.0 and "rewards/length/mean" in logged

    out = rollout([dataset[0]["prompt"]], trainer)
    ids, mask, logprobs = out["completion_ids"][0], out["env_mask"][0], out["logprobs"][0]
    assert len(ids) == len(mask) == len(logprobs) and out["episode_turns"] == [2] and out["episode_end"] == ["max_turns"]
    first_client = mask.index(0)
    assert 0 < first_client and mask[-1] == 1 and sum(mask) <= 12  # two policy turns of at most 6 tokens
    client_text = tokenizer.decode([t for t, m in zip(ids, mask) if m == 0])
    assert "<|user|>" in client_text and 'The client now says: "' in client_text
    assert all(lp == 0.0 for lp, m in zip(logprobs, mask) if m == 0) and all(lp <= 0.0 for lp in logprobs)
    prompt = tokenizer.decode(out["prompt_ids"][0])
    assert "Situation: Lost a parent." in prompt  # rendered from the episode the env plays (the persona's)
    with pytest.raises(ConfigError, match="dataset"):
        rollout([[{"role": "user", "content": "not from the dataset"}]], trainer)
