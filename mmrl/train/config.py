"""Run configs of ``mmrl sft`` and ``mmrl train``: one dataclass per trainer, YAML keys equal to field names.

``SFTRunConfig.from_yaml(path)`` / ``RLRunConfig.from_yaml(path)`` read a YAML file; an unknown key
is an error naming the key, the file and the closest field. Every error of a file-loaded config
names the file. Any other field of TRL's own config (``SFTConfig``, ``GRPOConfig``, ``RLOOConfig``)
goes through ``trl_args``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mmrl.config import YamlConfig, convert, suggest
from mmrl.errors import ConfigError
from mmrl.policy.models import DEFAULT_POLICY, LoraSettings

__all__ = ["ALGORITHMS", "GRPO_LOSS_TYPES", "RLRunConfig", "RunConfig", "SFTRunConfig"]

#: The online RL algorithms ``mmrl train`` runs: name -> (TRL trainer class, TRL config class). Adding one of TRL's
#: reward-function trainers is one line here.
ALGORITHMS: dict[str, tuple[str, str]] = {"grpo": ("GRPOTrainer", "GRPOConfig"), "rloo": ("RLOOTrainer", "RLOOConfig")}
#: ``GRPOConfig.loss_type`` values of TRL 1.16.
GRPO_LOSS_TYPES: tuple[str, ...] = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
_REPORT_TO = ("none", "all", "tensorboard", "wandb", "mlflow", "comet_ml", "trackio", "clearml", "dvclive", "swanlab")


def _positive_int(name: str, value: object, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass
class RunConfig(YamlConfig):
    """Fields shared by :class:`SFTRunConfig` and :class:`RLRunConfig` (see their docstrings)."""

    # > Data
    data: str | None = field(
        default=None, metadata={"help": "dialogue data path (mesc dir, synth dir, jsonl, multimood); null: the embedded synthetic corpus"}
    )
    data_format: str | None = field(default=None, metadata={"help": "mesc | synth | jsonl | multimood; null: detected"})
    on_error: str = field(
        default="raise", metadata={"help": "a bad data record stops the run (raise) or is skipped and counted in summary.json (skip)"}
    )
    predictor: str | None = field(
        default=None, metadata={"help": "MultimodalPredictor checkpoint whose outputs go into the prompts; null: none"}
    )
    max_history_tokens: int = field(
        default=1024, metadata={"help": "prompt history budget in policy tokens (whole turns are cut, oldest first)"}
    )
    # > Policy
    policy: str = field(default=DEFAULT_POLICY, metadata={"help": "'tiny', 'smollm2' (packaged), a local model directory or a hub id"})
    lora: LoraSettings | None = field(
        default=None, metadata={"help": "LoRA adapter settings {r, alpha, dropout, target_modules}; null: full fine-tuning"}
    )
    dtype: str = field(default="float32", metadata={"help": "weights dtype: float32 | bfloat16 | float16"})
    # > Optimisation
    learning_rate: float = field(default=2e-5, metadata={"help": "AdamW learning rate"})
    max_steps: int = field(default=100, metadata={"help": "optimizer steps"})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "examples (RL: completions) per device per step"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    seed: int = field(default=0, metadata={"help": "one seed for Python, numpy, torch, data order and sampling"})
    # > Checkpoints and logging
    output_dir: str = field(default="runs/mmrl", metadata={"help": "checkpoints, TensorBoard logs, final model and evaluation"})
    save_steps: int = field(default=50, metadata={"help": "checkpoint every N steps (a killed run loses at most N)"})
    save_total_limit: int | None = field(default=2, metadata={"help": "checkpoints kept (oldest deleted); null: all"})
    resume: bool = field(default=False, metadata={"help": "continue from the last complete checkpoint in output_dir"})
    force_resume: bool = field(
        default=False, metadata={"help": "resume even where the config differs from the run's start (both are recorded)"}
    )
    logging_steps: int = field(default=1, metadata={"help": "log metrics every N steps"})
    report_to: list[str] = field(
        default_factory=lambda: ["tensorboard"], metadata={"help": "TRL/transformers report_to: tensorboard (default), wandb, none, ..."}
    )
    trl_args: dict[str, Any] = field(default_factory=dict, metadata={"help": "any other field of TRL's config, passed through"})

    def __post_init__(self) -> None:
        if isinstance(self.lora, Mapping):
            self.lora = convert("lora", self.lora, LoraSettings)
        if isinstance(self.report_to, str):
            self.report_to = [self.report_to]
        for target in self.report_to:
            if target not in _REPORT_TO:
                raise ConfigError(f"report_to: unknown target {target!r}{suggest(target, _REPORT_TO)} (one of {', '.join(_REPORT_TO)})")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        if self.on_error not in ("raise", "skip"):
            raise ConfigError(f"on_error must be 'raise' or 'skip', got {self.on_error!r}")
        for name in ("max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "save_steps", "logging_steps"):
            _positive_int(name, getattr(self, name))
        _positive_int("max_history_tokens", self.max_history_tokens, 0)
        _positive_int("seed", self.seed, 0)
        if self.save_total_limit is not None:
            _positive_int("save_total_limit", self.save_total_limit)
        if isinstance(self.learning_rate, bool) or not isinstance(self.learning_rate, (int, float)) or self.learning_rate < 0:
            raise ConfigError(f"learning_rate must be a number >= 0, got {self.learning_rate!r}")
        self.learning_rate = float(self.learning_rate)
        self._check_trl_args()

    def _check_trl_args(self) -> None:
        trl_config = self.trl_config()
        if not isinstance(self.trl_args, Mapping):
            raise ConfigError(f"trl_args must be a mapping of trl.{trl_config.__name__} fields, got {type(self.trl_args).__name__}")
        own = {f.name for f in dataclasses.fields(self)}
        managed = {
            "resume_from_checkpoint": "set 'resume' at the top level instead",
            "gradient_checkpointing": "it is a deprecated alias: set trl_args.activation_checkpointing instead",
            **self.managed_trl_fields(),
        }
        trl_fields = {f.name for f in dataclasses.fields(trl_config)}
        for key in self.trl_args:
            if key in own or key in managed:
                raise ConfigError(
                    f"trl_args.{key} cannot be set there: {managed.get(key, f'it is a field of this config, set {key!r} at the top level instead')}"
                )
            if key not in trl_fields:
                raise ConfigError(f"trl_args: {key!r} is not a field of trl.{trl_config.__name__}{suggest(key, trl_fields)}")

    def trl_config(self) -> type:
        """TRL's config class whose other fields ``trl_args`` may set."""
        raise NotImplementedError

    def managed_trl_fields(self) -> dict[str, str]:
        """TRL fields this config sets from another field (TRL name -> what to set instead)."""
        return {}


@dataclass
class SFTRunConfig(RunConfig):
    """Supervised fine-tuning of the policy on the train split: the structured block of the gold labels + reference reply.

    Parameters:
        > Data

        data (`str` or `None`, defaults to `None`): dialogue data path; None is the embedded synthetic corpus.
        data_format (`str` or `None`, defaults to `None`): `mesc`, `synth`, `jsonl` or `multimood`; None detects it.
        on_error (`str`, defaults to `"raise"`): a bad data record stops the run (`raise`) or is skipped and counted in
            `summary.json` (`skip`).
        predictor (`str` or `None`, defaults to `None`): a MultimodalPredictor checkpoint whose outputs go into the prompts.
        max_history_tokens (`int`, defaults to `1024`): prompt history budget in policy tokens (whole turns cut).
        max_length (`int`, defaults to `2048`): longest prompt + target in tokens; longer examples are truncated (TRL).

        > Policy

        policy (`str`, defaults to `"smollm2"`): `tiny`, `smollm2`, a local model directory or a hub id.
        lora (`LoraSettings` or `None`, defaults to `None`): LoRA adapter; None fine-tunes every weight.
        dtype (`str`, defaults to `"float32"`): weights dtype.

        > Optimisation

        learning_rate (`float`, defaults to `2e-5`): AdamW learning rate (TRL's SFT default).
        max_steps (`int`, defaults to `100`): optimizer steps.
        per_device_train_batch_size (`int`, defaults to `8`), gradient_accumulation_steps (`int`, defaults to `1`).
        seed (`int`, defaults to `0`): the run's one seed.

        > Checkpoints and logging

        output_dir (`str`, defaults to `"runs/mmrl"`): checkpoints, TensorBoard logs, the final ``model/``.
        save_steps (`int`, defaults to `50`): checkpoint every N steps; save_total_limit (`int`, defaults to `2`).
        resume (`bool`, defaults to `False`): continue from the last complete checkpoint in output_dir.
        logging_steps (`int`, defaults to `1`); report_to (`list[str]`, defaults to `["tensorboard"]`).
        trl_args (`dict`, defaults to `{}`): any other ``trl.SFTConfig`` field.
    """

    max_length: int = field(default=2048, metadata={"help": "longest prompt + target in tokens (TRL truncates longer examples)"})

    def __post_init__(self) -> None:
        _positive_int("max_length", self.max_length)
        super().__post_init__()

    def trl_config(self) -> type:
        from trl import SFTConfig

        return SFTConfig


@dataclass
class RLRunConfig(RunConfig):
    """GRPO or RLOO (TRL) of the policy on train-split prompts, rewarded by a composed reward spec.

    Parameters:
        > Data, Policy, Optimisation, Checkpoints and logging

        As :class:`SFTRunConfig` (without ``max_length``); ``learning_rate`` defaults to `1e-6` (TRL's GRPO
        default) and ``per_device_train_batch_size`` counts completions (a multiple of ``num_generations``).

        > Rewards

        reward_spec (`dict` or `str`): a reward spec (``rewards.spec``) inline, or the path of its YAML file.

        > Algorithm

        algorithm (`str`, defaults to `"grpo"`): `grpo` (``trl.GRPOTrainer``) or `rloo` (``trl.RLOOTrainer``).
        loss_type (`str` or `None`, defaults to `None`): GRPO only: `grpo`, `dr_grpo`, `dapo`, `bnpo`, `cispo`,
            `sapo`, `luspo` or `vespo`; None keeps TRL's default (`dapo`).
        num_generations (`int`, defaults to `8`): completions per prompt (the group).
        max_completion_length (`int`, defaults to `256`): most generated tokens per completion.
        temperature (`float`, defaults to `1.0`): sampling temperature of the rollouts.
        beta (`float` or `None`, defaults to `None`): KL coefficient; None keeps TRL's default (GRPO 0.0, RLOO 0.05).

        > Evaluation

        eval_max_prompts (`int` or `None`, defaults to `None`): val prompts scored at the end (greedy); None: all.
    """

    learning_rate: float = field(default=1e-6, metadata={"help": "AdamW learning rate (TRL's GRPO default)"})
    reward_spec: dict[str, Any] | str | None = field(
        default=None, metadata={"help": "reward spec inline, or the path of its YAML file (required)"}
    )
    algorithm: str = field(default="grpo", metadata={"help": " | ".join(ALGORITHMS)})
    loss_type: str | None = field(
        default=None, metadata={"help": "GRPO loss: grpo, dr_grpo, dapo, bnpo, cispo, sapo, luspo, vespo; null: TRL's default"}
    )
    num_generations: int = field(default=8, metadata={"help": "completions per prompt"})
    max_completion_length: int = field(default=256, metadata={"help": "most generated tokens per completion"})
    temperature: float = field(default=1.0, metadata={"help": "rollout sampling temperature"})
    beta: float | None = field(default=None, metadata={"help": "KL coefficient; null: TRL's default"})
    eval_max_prompts: int | None = field(default=None, metadata={"help": "val prompts scored at the end; null: all"})

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"algorithm must be one of {list(ALGORITHMS)}, got {self.algorithm!r}{suggest(self.algorithm, ALGORITHMS)}")
        if self.loss_type is not None:
            if self.algorithm != "grpo":
                raise ConfigError(
                    f"loss_type is a GRPO setting; algorithm {self.algorithm!r} has none: remove loss_type or set algorithm: grpo"
                )
            if self.loss_type not in GRPO_LOSS_TYPES:
                raise ConfigError(
                    f"loss_type must be one of {list(GRPO_LOSS_TYPES)}, got {self.loss_type!r}{suggest(self.loss_type, GRPO_LOSS_TYPES)}"
                )
        if self.reward_spec is None:
            raise ConfigError(
                "reward_spec is required: a spec mapping (e.g. {rewards: {format: 1.0, component_match: 1.0}}) or the path of a spec YAML"
            )
        _positive_int("num_generations", self.num_generations, 2)
        _positive_int("max_completion_length", self.max_completion_length)
        if self.eval_max_prompts is not None:
            _positive_int("eval_max_prompts", self.eval_max_prompts, 0)
        self.temperature = float(self.temperature)
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature!r}")
        if self.beta is not None:
            self.beta = float(self.beta)
            if not self.beta >= 0:
                raise ConfigError(f"beta must be >= 0, got {self.beta!r}")
        batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if batch % self.num_generations:
            raise ConfigError(
                f"per_device_train_batch_size * gradient_accumulation_steps = {batch} completions per step is not a multiple of "
                f"num_generations = {self.num_generations}: set per_device_train_batch_size to a multiple of {self.num_generations}"
            )
        super().__post_init__()
        self.reward_spec_parsed()  # fail now on an unknown reward or key, not after loading the model

    def trl_classes(self) -> tuple[type, type]:
        """The TRL trainer and config classes of ``algorithm`` (:data:`ALGORITHMS`)."""
        import trl

        trainer, config = ALGORITHMS[self.algorithm]
        return getattr(trl, trainer), getattr(trl, config)

    def trl_config(self) -> type:
        return self.trl_classes()[1]

    def managed_trl_fields(self) -> dict[str, str]:
        return {"reward_weights": "the weights come from reward_spec, set them there"}

    def reward_spec_parsed(self) -> dict:
        """The canonical reward spec (``rewards.spec.parse_spec``; a path is read with ``load_spec``).

        In ``normalised`` mode without a ``group_size`` the scores are standardised per GRPO group
        (``num_generations`` completions of one prompt), not over the whole batch.
        """
        from rewards.spec import load_spec, parse_spec

        spec = load_spec(self.reward_spec) if isinstance(self.reward_spec, str) else parse_spec(self.reward_spec)
        if spec["mode"] == "normalised" and spec["group_size"] is None:
            spec["group_size"] = self.num_generations
        return spec
