"""StrategyPPOConfig (YAML 1:1, unknown keys named) and train_strategy: a tiny RLlib PPO run, and the full experiment (slow)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from mmrl.data.jsonl import write_dialogues
from mmrl.errors import ConfigError
from mmrl.train.strategy import StrategyPPOConfig, train_strategy
from mmrl.train.strategy_cli import add_commands
from tests.envs.test_strategy_env import DIALOGUES

REPO = Path(__file__).resolve().parents[2]
EXPERIMENT = REPO / "experiments" / "strategy_ppo.yaml"


# -- config -------------------------------------------------------------------------------------


def test_the_experiment_yaml_loads_and_maps_one_to_one():
    config = StrategyPPOConfig.from_yaml(EXPERIMENT)
    assert config.eval_split == "val"
    assert isinstance(config.learning_rate, float)


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "ppo.yaml"
    path.write_text("iterations: 3\nlearning_rat: 0.001\n")
    with pytest.raises(ConfigError, match=r"ppo\.yaml: unknown key 'learning_rat'; did you mean 'learning_rate'"):
        StrategyPPOConfig.from_yaml(path)


def test_yaml_values_are_typed_and_checked(tmp_path):
    path = tmp_path / "ppo.yaml"
    path.write_text("learning_rate: 3e-4\nhidden_sizes: [32]\n")  # PyYAML reads 3e-4 as a string
    config = StrategyPPOConfig.from_yaml(path, output_dir=str(tmp_path / "run"), address=None)
    assert config.learning_rate == pytest.approx(3e-4) and config.output_dir == str(tmp_path / "run")
    path.write_text("iterations: many\n")
    with pytest.raises(ConfigError, match=r"ppo\.yaml: iterations: expected int, got .many."):
        StrategyPPOConfig.from_yaml(path)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"minibatch_size": 512, "train_batch_size": 256}, "exceeds train_batch_size"),
        ({"eval_split": "train"}, "held-out"),
        ({"gamma": 1.5}, r"gamma must be in \[0, 1\]"),
        ({"reward_spec": {"rewards": {"empaty": 1.0}}}, "did you mean 'empathy'"),
        ({"data_format": "mesc"}, "drop data_format"),
    ],
)
def test_conflicting_settings_say_what_to_change(values, message):
    with pytest.raises(ConfigError, match=message):
        StrategyPPOConfig.from_dict(values)


def test_the_cli_command_parses():
    parser = argparse.ArgumentParser(prog="mmrl")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train-strategy", "--config", str(EXPERIMENT), "--address", "auto", "--out", "x"])
    assert (args.config, args.address, args.out) == (str(EXPERIMENT), "auto", "x") and callable(args.func)


# -- a tiny PPO run -----------------------------------------------------------------------------


def test_tiny_ppo_run_writes_a_report_with_the_three_planners(tmp_path):
    data = write_dialogues(tmp_path / "corpus.jsonl", DIALOGUES)
    config = StrategyPPOConfig(
        data=str(data),
        reward_spec={"rewards": {"fairness": 1.0}},
        iterations=2,
        train_batch_size=64,
        minibatch_size=32,
        num_epochs=1,
        hidden_sizes=[16],
        eval_random_repeats=2,
        output_dir=str(tmp_path / "run"),
        progress=False,
    )
    report = train_strategy(config)

    assert json.loads((tmp_path / "run" / "report.json").read_text()) == json.loads(json.dumps(report, default=str))
    assert Path(report["checkpoint"]).is_dir() and any(Path(report["checkpoint"]).iterdir())
    assert report["data"] == {
        "source": str(data),
        "format": "jsonl",
        "description": f"the jsonl corpus at {data}",
        "train_dialogues": 8,
        "train_steps": 24,
        "eval_split": "val",
        "eval_dialogues": 2,
        "eval_steps": 6,
        "realiser_index": 24,
    }
    planners = report["evaluation"]["planners"]
    assert set(planners) == {"ppo", "random", "majority"}
    for result in planners.values():
        assert result["episodes"] == 2 and result["steps"] == 6
        assert set(result) >= {"mean_episode_reward", "rewards/fairness/mean", "rewards/strategy_match/mean"}
    assert planners["random"]["repeats"] == 2
    assert report["majority_strategy"] == "Interpretation"  # the first of the strategies tied at 3 train turns
    # The majority planner always plays it: its match rate is that strategy's share of the 6 val turns.
    assert planners["majority"]["rewards/strategy_match/mean"] == pytest.approx(1 / 6)
    history = report["training"]["history"]
    assert len(history) == 2 and history[-1]["env_steps"] >= 128
    assert {"rewards/fairness/mean", "rewards/strategy_match/mean", "rewards/fairness/failures", "reward"} <= set(history[-1])
    assert history[-1]["rewards/fairness/failures"] == 0.0


# -- the experiment -----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_experiment_beats_both_baselines_on_val(tmp_path):
    """``experiments/strategy_ppo.yaml`` as ``mmrl train-strategy`` runs it (several minutes on 2 cores)."""
    report = train_strategy(StrategyPPOConfig.from_yaml(EXPERIMENT, output_dir=str(tmp_path / "run"), progress=False))
    planners = report["evaluation"]["planners"]
    trained = planners["ppo"]["mean_episode_reward"]
    assert trained > planners["random"]["mean_episode_reward"] and trained > planners["majority"]["mean_episode_reward"]
    assert report["evaluation"]["ppo_beats_random"] and report["evaluation"]["ppo_beats_majority"]
