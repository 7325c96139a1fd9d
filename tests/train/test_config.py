"""SFTRunConfig / RLRunConfig: YAML maps 1:1, unknown keys named with file and did-you-mean, cross-checks, TRL passthrough."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrl.errors import ConfigError
from mmrl.policy.models import LoraSettings
from mmrl.train.config import RLRunConfig, SFTRunConfig
from mmrl.train.runs import trl_arguments

from .conftest import LIGHT_SPEC

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_yaml_maps_one_to_one_and_reads_yaml_floats(write_config):
    path = write_config("sft.yaml", policy="tiny", learning_rate="1e-5", lora={"r": 4, "target_modules": "all-linear"}, report_to="none")
    config = SFTRunConfig.from_yaml(path)
    assert config.learning_rate == 1e-5 and config.report_to == ["none"]  # YAML reads `1e-5` as a string
    assert config.lora == LoraSettings(r=4, target_modules="all-linear")
    assert SFTRunConfig.from_yaml(path, resume=True).resume is True


def test_unknown_key_names_key_file_and_suggestion(write_config):
    path = write_config("bad.yaml", policy="tiny", learning_rat=1e-3)
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key 'learning_rat'; did you mean 'learning_rate'\?"):
        SFTRunConfig.from_yaml(path)
    path = write_config("lora.yaml", lora={"rr": 4})
    with pytest.raises(ConfigError, match=r"lora\.yaml: unknown key 'rr' in lora; did you mean 'r'\?"):
        SFTRunConfig.from_yaml(path)


def test_wrong_types_say_expected_and_actual(write_config):
    with pytest.raises(ConfigError, match=r"t\.yaml: max_steps: expected int, got 'ten'"):
        SFTRunConfig.from_yaml(write_config("t.yaml", max_steps="ten"))
    path = write_config("list.yaml")
    path.write_text("- policy: tiny\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"list\.yaml: a SFTRunConfig file must be a mapping of fields, got list"):
        SFTRunConfig.from_yaml(path)


def test_trl_args_pass_through_and_are_checked():
    config = SFTRunConfig(policy="tiny", trl_args={"warmup_steps": 3, "weight_decay": 0.1})
    assert trl_arguments(config)["warmup_steps"] == 3
    with pytest.raises(ConfigError, match=r"'warmup_step' is not a field of trl\.SFTConfig; did you mean 'warmup_steps'\?"):
        SFTRunConfig(trl_args={"warmup_step": 3})
    with pytest.raises(ConfigError, match="set 'seed' at the top level"):
        SFTRunConfig(trl_args={"seed": 1})
    with pytest.raises(ConfigError, match="set 'resume' at the top level"):
        SFTRunConfig(trl_args={"resume_from_checkpoint": True})
    with pytest.raises(ConfigError, match="weights come from reward_spec"):
        RLRunConfig(reward_spec=LIGHT_SPEC, trl_args={"reward_weights": [1.0, 1.0]})
    with pytest.raises(ConfigError, match=r"not a field of trl\.RLOOConfig"):
        RLRunConfig(reward_spec=LIGHT_SPEC, algorithm="rloo", trl_args={"scale_rewards": "group"})  # a GRPOConfig-only field


def test_cpu_defaults_and_trl_args_override():
    args = trl_arguments(SFTRunConfig(trl_args={"activation_checkpointing": True}))
    assert args["activation_checkpointing"] is True and args["bf16"] is False and args["report_to"] == ["tensorboard"]


def test_rl_cross_checks():
    with pytest.raises(ConfigError, match=r"algorithm must be one of \['grpo', 'rloo'\], got 'rlo'; did you mean 'rloo'\?"):
        RLRunConfig(reward_spec=LIGHT_SPEC, algorithm="rlo")
    with pytest.raises(ConfigError, match="loss_type is a GRPO setting"):
        RLRunConfig(reward_spec=LIGHT_SPEC, algorithm="rloo", loss_type="dapo")
    with pytest.raises(ConfigError, match=r"got 'dr-grpo'; did you mean 'dr_grpo'\?"):
        RLRunConfig(reward_spec=LIGHT_SPEC, loss_type="dr-grpo")
    with pytest.raises(ConfigError, match="= 6 completions per step is not a multiple of num_generations = 4"):
        RLRunConfig(reward_spec=LIGHT_SPEC, num_generations=4, per_device_train_batch_size=6)
    with pytest.raises(ConfigError, match="reward_spec is required"):
        RLRunConfig()


def test_reward_spec_inline_or_path_checked_at_load(write_config, tmp_path):
    path = write_config("rl.yaml", reward_spec={"rewards": {"formatt": 1.0}})
    with pytest.raises(ConfigError, match=r"rl\.yaml: unknown reward 'formatt' in rewards; did you mean 'format'\?"):
        RLRunConfig.from_yaml(path)
    spec = write_config("spec.yaml", **LIGHT_SPEC)
    config = RLRunConfig.from_yaml(write_config("rl2.yaml", reward_spec=str(spec), loss_type="dr_grpo"))
    assert set(config.reward_spec_parsed()["rewards"]) == {"format", "component_match"}
    from trl import GRPOConfig

    args = GRPOConfig(**trl_arguments(config, loss_type=config.loss_type))
    assert args.loss_type == "dr_grpo" and args.use_cpu and not args.activation_checkpointing


@pytest.mark.parametrize("name", sorted(p.name for p in EXPERIMENTS.glob("*.yaml") if p.name.startswith(("sft_", "grpo_", "rloo_"))))
def test_experiment_configs_parse(name):
    cls = SFTRunConfig if name.startswith("sft_") else RLRunConfig
    config = cls.from_yaml(EXPERIMENTS / name)
    assert config.output_dir.startswith("runs/")


def test_experiment_configs_exist():
    names = {p.name for p in EXPERIMENTS.glob("*.yaml")}
    assert {"sft_tiny.yaml", "sft_smollm2.yaml", "grpo_tiny.yaml", "grpo_smollm2.yaml", "rloo_tiny.yaml"} <= names


def test_normalised_rewards_default_to_grpo_groups():
    """Issue 13 item 10: normalised mode standardises per group of num_generations unless group_size says otherwise."""
    from mmrl.train.config import RLRunConfig

    spec = {"mode": "normalised", "rewards": {"format": 1.0, "length": 1.0}}
    assert RLRunConfig(reward_spec=spec, num_generations=4, per_device_train_batch_size=8).reward_spec_parsed()["group_size"] == 4
    explicit = {**spec, "group_size": 8}
    assert RLRunConfig(reward_spec=explicit, num_generations=4, per_device_train_batch_size=8).reward_spec_parsed()["group_size"] == 8
