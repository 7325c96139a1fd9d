"""RLlib PPO (new API stack) on ``mmrl/Strategy-v0``, then the trained planner against two baselines on held-out dialogues.

Reads in the order it runs: config -> env factory (episode tables built once in the driver and
shipped to env runners in ``env_config``) -> algorithm (``PPOConfig``) -> training loop (per-component
reward metrics through :class:`RewardMetricsCallback`) -> evaluation of the trained (greedy),
uniform-random and always-majority planners on ``eval_split`` -> JSON report and checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
import typing
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback

from mmrl.config import YamlConfig, convert
from mmrl.errors import ConfigError, DataError
from mmrl.labels import STRATEGIES

__all__ = [
    "ENV_ID",
    "Planner",
    "RewardMetricsCallback",
    "StrategyPPOConfig",
    "evaluate_planner",
    "train_strategy",
]

#: The env id, in Gymnasium's registry (``envs``) and in Ray's (registered by :func:`train_strategy`).
ENV_ID = "mmrl/Strategy-v0"
#: A planner maps one Strategy-v0 observation to a strategy index.
Planner = Callable[[np.ndarray], int]


# --------------------------------------------------------------------------------------------
# Config.
# --------------------------------------------------------------------------------------------


@dataclass
class StrategyPPOConfig(YamlConfig):
    """Configuration of :func:`train_strategy` (YAML keys are the field names; unknown keys are errors).

    Parameters:
        > Data

        data (`str`, defaults to `"synth"`):
            A corpus ``mmrl.data.load_corpus`` reads (e.g. the MESC directory), or `"synth"`: the
            embedded synthetic corpus of `synth_dialogues` dialogues (generated once into the cache).
        data_format (`str` or `None`, defaults to `None`): format of `data` when it cannot be detected.
        synth_dialogues (`int`, defaults to `400`): size of the synthetic corpus (`data: synth` only).
        synth_seed (`int`, defaults to `0`): seed of the synthetic corpus (`data: synth` only).
        max_train_dialogues (`int` or `None`, defaults to `None`):
            Train on a seeded random subset of this many train dialogues (the realiser still indexes
            the whole train split). None: all.
        eval_split (`str`, defaults to `"val"`): held-out split the planners are compared on (`"val"` or `"test"`).
        max_eval_dialogues (`int` or `None`, defaults to `None`): evaluate on a seeded subset of this many.

        > Environment and reward

        reward_spec (`dict`, `str` or `None`, defaults to `None`):
            Reward spec mapping or YAML path (``rewards.spec``); None: ``envs.strategy.DEFAULT_REWARD_SPEC``
            (the mean of the seven trust criteria).
        match_weight (`float`, defaults to `1.0`): weight of the strategy-match term.
        predictor (`str` or `None`, defaults to `None`):
            Checkpoint directory of a trained ``mmrl.predictor.model.MultimodalPredictor`` (``mmrl
            predictor train``) filling the predictor slices; None: none (zeros, mask 0).
        max_turns (`int` or `None`, defaults to `None`): truncate training episodes after this many steps.
        nan_reward (`float` or `None`, defaults to `None`):
            Reward of a (turn, strategy) that could not be scored; None: such a failure stops the run
            (failures are listed in the env's ``info`` and counted in ``rewards/<name>/failures``).

        > PPO (CleanRL names; RLlib's in brackets)

        iterations (`int`, defaults to `15`): training iterations (``Algorithm.train()`` calls).
        train_batch_size (`int`, defaults to `2000`): env steps per iteration [``train_batch_size_per_learner``].
        minibatch_size (`int`, defaults to `256`): SGD minibatch [``minibatch_size``].
        num_epochs (`int`, defaults to `4`): SGD passes over each batch [``num_epochs``].
        learning_rate (`float`, defaults to `1e-3`): Adam step size [``lr``].
        gamma (`float`, defaults to `0.0`):
            Discount. The replayed client does not react to the planner, so each step's reward is all
            that an action changes; 0 gives the lowest-variance advantages (the objective, the mean
            episode reward, is the same).
        gae_lambda (`float`, defaults to `0.95`): GAE lambda [``lambda_``].
        clip_coef (`float`, defaults to `0.2`): PPO ratio clip [``clip_param``].
        ent_coef (`float`, defaults to `0.01`): entropy bonus [``entropy_coeff``].
        vf_coef (`float`, defaults to `0.5`): value-loss weight [``vf_loss_coeff``].
        hidden_sizes (`list[int]`, defaults to `[64, 64]`): policy/value MLP [``fcnet_hiddens``].

        > Run

        seed (`int`, defaults to `0`): the run's one seed (Python, NumPy, torch, RLlib, env resets, subsets).
        address (`str` or `None`, defaults to `None`):
            Ray cluster to join (`"auto"`, `"ray://host:10001"`); None: start a local Ray of `num_cpus` CPUs.
        num_cpus (`int`, defaults to `2`): CPUs of the local Ray (ignored with `address`).
        num_env_runners (`int`, defaults to `0`): remote env runners; 0 samples in the driver.
        num_envs (`int`, defaults to `8`): envs per env runner, stepped as one vector env [``num_envs_per_env_runner``].
        eval_random_repeats (`int`, defaults to `10`): passes of the uniform-random planner over the eval dialogues.
        output_dir (`str`, defaults to `"runs/strategy_ppo"`): where the report and the checkpoint go.
        progress (`bool`, defaults to `True`): show a progress bar.
    """

    data: str = field(default="synth", metadata={"help": "corpus path (e.g. the MESC directory) or 'synth'"})
    data_format: str | None = field(default=None, metadata={"help": "format of data when not detectable"})
    synth_dialogues: int = field(default=400, metadata={"help": "dialogues of the synthetic corpus (data: synth)"})
    synth_seed: int = field(default=0, metadata={"help": "seed of the synthetic corpus (data: synth)"})
    max_train_dialogues: int | None = field(default=None, metadata={"help": "seeded subset of train dialogues (None: all)"})
    eval_split: str = field(default="val", metadata={"help": "held-out split of the comparison: val or test"})
    max_eval_dialogues: int | None = field(default=None, metadata={"help": "seeded subset of eval dialogues (None: all)"})

    reward_spec: dict | str | None = field(
        default=None, metadata={"help": "reward spec mapping or YAML path (None: the seven trust criteria, mean)"}
    )
    match_weight: float = field(default=1.0, metadata={"help": "weight of the strategy-match term"})
    predictor: str | None = field(default=None, metadata={"help": "MultimodalPredictor checkpoint directory (None: no predictor)"})
    max_turns: int | None = field(default=None, metadata={"help": "truncate training episodes after this many steps"})
    nan_reward: float | None = field(default=None, metadata={"help": "reward of an unscorable step (None: failures stop the run)"})

    iterations: int = field(default=15, metadata={"help": "PPO iterations"})
    train_batch_size: int = field(default=2000, metadata={"help": "env steps per iteration"})
    minibatch_size: int = field(default=256, metadata={"help": "SGD minibatch size"})
    num_epochs: int = field(default=4, metadata={"help": "SGD passes over each batch"})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    gamma: float = field(default=0.0, metadata={"help": "discount (0: the replayed client ignores actions)"})
    gae_lambda: float = field(default=0.95, metadata={"help": "GAE lambda"})
    clip_coef: float = field(default=0.2, metadata={"help": "PPO ratio clip"})
    ent_coef: float = field(default=0.01, metadata={"help": "entropy bonus"})
    vf_coef: float = field(default=0.5, metadata={"help": "value-loss weight"})
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64], metadata={"help": "policy/value MLP widths"})

    seed: int = field(default=0, metadata={"help": "the run's one seed"})
    address: str | None = field(default=None, metadata={"help": "Ray cluster address ('auto', 'ray://host:10001'); None: local Ray"})
    num_cpus: int = field(default=2, metadata={"help": "CPUs of the local Ray"})
    num_env_runners: int = field(default=0, metadata={"help": "remote env runners (0: sample in the driver)"})
    num_envs: int = field(default=8, metadata={"help": "envs per env runner (one vector env)"})
    eval_random_repeats: int = field(default=10, metadata={"help": "passes of the random planner over the eval dialogues"})
    output_dir: str = field(default="runs/strategy_ppo", metadata={"help": "report and checkpoint directory"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            setattr(self, f.name, convert(f.name, getattr(self, f.name), hints[f.name]))
        for name in (
            "synth_dialogues",
            "iterations",
            "train_batch_size",
            "minibatch_size",
            "num_epochs",
            "num_cpus",
            "num_envs",
            "eval_random_repeats",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_train_dialogues", "max_eval_dialogues", "max_turns"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be null or >= 1, got {getattr(self, name)}")
        if self.synth_seed < 0 or self.seed < 0 or self.num_env_runners < 0:
            raise ConfigError(
                f"synth_seed, seed and num_env_runners must be >= 0, got {self.synth_seed}, {self.seed}, {self.num_env_runners}"
            )
        if self.eval_split not in ("val", "test"):
            raise ConfigError(f"eval_split must be 'val' or 'test' (held-out dialogues), got {self.eval_split!r}")
        if self.minibatch_size > self.train_batch_size:
            raise ConfigError(
                f"minibatch_size ({self.minibatch_size}) exceeds train_batch_size ({self.train_batch_size}); lower minibatch_size"
            )
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("learning_rate", "clip_coef"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ConfigError(f"{name} must be a positive number, got {getattr(self, name)}")
        if not all(math.isfinite(v) and v >= 0 for v in (self.ent_coef, self.vf_coef)) or not math.isfinite(self.match_weight):
            raise ConfigError(
                f"need ent_coef, vf_coef >= 0 and a finite match_weight, got {self.ent_coef}, {self.vf_coef}, {self.match_weight}"
            )
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            raise ConfigError(f"hidden_sizes must be a non-empty list of positive widths, got {self.hidden_sizes}")
        if self.data_format is not None and self.data == "synth":
            raise ConfigError("data_format applies to a corpus path; with data: synth drop data_format")
        if isinstance(self.reward_spec, dict):
            from rewards.spec import parse_spec

            self.reward_spec = parse_spec(self.reward_spec, source="reward_spec")


# --------------------------------------------------------------------------------------------
# Env factory: episode tables built once, in the driver.
# --------------------------------------------------------------------------------------------


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _subset(dialogues: list, limit: int | None, seed: int) -> list:
    if limit is None or limit >= len(dialogues):
        return dialogues
    keep = np.sort(np.random.default_rng(seed).choice(len(dialogues), size=limit, replace=False))
    return [dialogues[i] for i in keep]


def _load_corpus(config: StrategyPPOConfig):
    from mmrl.data.sources import load_source
    from mmrl.data.synth import demo_corpus

    if config.data == "synth":
        return load_source(demo_corpus(config.synth_dialogues, seed=config.synth_seed), format="synth")
    if not Path(config.data).exists():
        raise ConfigError(f"data {config.data!r} does not exist; give a corpus path (e.g. the MESC directory) or 'synth'")
    return load_source(config.data, format=config.data_format)


def _make_env(env_config: Mapping[str, Any]):
    """RLlib's env creator: a StrategyEnv over the prebuilt episodes in ``env_config``."""
    from envs.strategy import StrategyEnv

    return StrategyEnv(**env_config)


def _build_episodes(config: StrategyPPOConfig):
    """Train and eval episode tables (one realiser over the whole train split, one composite, one predictor)."""
    from envs.realiser import RetrievalRealiser
    from envs.strategy import DEFAULT_REWARD_SPEC, StrategyEpisodes
    from rewards.spec import build_composite

    corpus = _load_corpus(config)
    train_split, eval_split = corpus.split("train"), corpus.split(config.eval_split)
    if not train_split or not eval_split:
        raise DataError(f"{config.data}: need train and {config.eval_split} dialogues, got {len(train_split)} and {len(eval_split)}")
    predictor = None
    if config.predictor is not None:
        from mmrl.predictor.model import MultimodalPredictor

        predictor = MultimodalPredictor.load(config.predictor)
    composite = build_composite(DEFAULT_REWARD_SPEC if config.reward_spec is None else config.reward_spec)
    realiser = RetrievalRealiser(train_split)
    build = {"composite": composite, "realiser": realiser, "predictor": predictor}
    train = StrategyEpisodes.build(_subset(train_split, config.max_train_dialogues, config.seed), **build)
    held_out = StrategyEpisodes.build(_subset(eval_split, config.max_eval_dialogues, config.seed), **build)
    data = {
        "source": config.data,
        "format": corpus.format,
        "description": (
            f"the embedded synthetic corpus (mmrl.data.synth: {config.synth_dialogues} dialogues, seed {config.synth_seed})"
            if config.data == "synth"
            else f"the {corpus.format} corpus at {config.data}"
        ),
        "train_dialogues": len(train),
        "train_steps": train.n_steps,
        "eval_split": config.eval_split,
        "eval_dialogues": len(held_out),
        "eval_steps": held_out.n_steps,
        "realiser_index": len(realiser.entries),
    }
    return train, held_out, data


# --------------------------------------------------------------------------------------------
# Algorithm: PPO on the new API stack, per-component reward metrics from the env's info.
# --------------------------------------------------------------------------------------------


class RewardMetricsCallback(RLlibCallback):
    """Logs per iteration, from each step's ``info``: ``rewards/<name>/mean`` and ``rewards/<name>/failures``
    of every reward component (``strategy_match`` included), and ``reward`` (the optimised total, mean).
    Reads the reward vocabulary both envs share (``info["reward"]``, ``info["rewards"]``).

    A failed (NaN) score is counted in ``failures`` and left out of the mean, never logged as 0.
    """

    def on_episode_step(self, *, episode, metrics_logger=None, **kwargs) -> None:
        if metrics_logger is None:
            return
        info = episode.get_infos(-1)
        for name, score in info["rewards"].items():
            failed = score is None or math.isnan(score)
            metrics_logger.log_value(f"rewards/{name}/failures", float(failed), reduce="sum")
            if not failed:
                metrics_logger.log_value(f"rewards/{name}/mean", float(score), reduce="mean")
        if not math.isnan(info["reward"]):
            metrics_logger.log_value("reward", float(info["reward"]), reduce="mean")


def _algorithm(config: StrategyPPOConfig, env_config: dict):
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.tune.registry import register_env

    register_env(ENV_ID, _make_env)
    return (
        PPOConfig()
        .environment(ENV_ID, env_config=env_config)
        .env_runners(num_env_runners=config.num_env_runners, num_envs_per_env_runner=config.num_envs)
        .training(
            lr=config.learning_rate,
            gamma=config.gamma,
            lambda_=config.gae_lambda,
            clip_param=config.clip_coef,
            entropy_coeff=config.ent_coef,
            vf_loss_coeff=config.vf_coef,
            train_batch_size_per_learner=config.train_batch_size,
            minibatch_size=config.minibatch_size,
            num_epochs=config.num_epochs,
        )
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=list(config.hidden_sizes)))
        .callbacks(RewardMetricsCallback)
        .debugging(seed=config.seed)
        .build_algo()
    )


def _iteration(index: int, result: Mapping[str, Any]) -> dict[str, float]:
    runners = result.get("env_runners", {})
    learner = result.get("learners", {}).get("default_policy", {})
    row = {
        "iteration": index,
        "env_steps": runners.get("num_env_steps_sampled_lifetime"),
        "episode_return_mean": runners.get("episode_return_mean"),
    }
    row.update({k: v for k, v in runners.items() if k.startswith("rewards/") or k == "reward"})
    row.update({k: learner.get(k) for k in ("policy_loss", "vf_loss", "entropy")})
    return {k: (None if v is None else float(v)) for k, v in row.items()}


# --------------------------------------------------------------------------------------------
# Evaluation: planners on the held-out episodes.
# --------------------------------------------------------------------------------------------


def evaluate_planner(env, planner: Planner) -> dict[str, float]:
    """Play every dialogue of ``env`` once with ``planner``: mean (and std) episode reward, step-level means."""
    returns, steps = [], defaultdict(list)
    for index in range(len(env.episodes)):
        observation, _ = env.reset(options={"dialogue_index": index})
        episode_return, done = 0.0, False
        while not done:
            observation, reward, terminated, truncated, info = env.step(planner(observation))
            episode_return += reward
            done = terminated or truncated
            steps["reward"].append(reward)
            for name, score in info["rewards"].items():
                steps[f"rewards/{name}/mean"].append(score)
        returns.append(episode_return)
    out = {
        "episodes": len(returns),
        "steps": len(steps["reward"]),
        "mean_episode_reward": float(np.mean(returns)),
        "std_episode_reward": float(np.std(returns)),
    }
    out.update({"mean_step_reward" if k == "reward" else k: float(np.nanmean(v)) for k, v in steps.items()})
    return out


def _module_planner(module) -> Planner:
    """The trained policy, greedy: the action of highest logit."""
    import torch
    from ray.rllib.core.columns import Columns

    def plan(observation: np.ndarray) -> int:
        with torch.no_grad():
            out = module.forward_inference({Columns.OBS: torch.as_tensor(observation[None])})
        return int(out[Columns.ACTION_DIST_INPUTS][0].argmax())

    return plan


def _random_results(env, repeats: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    runs = [evaluate_planner(env, lambda _: int(rng.integers(env.action_space.n))) for _ in range(repeats)]
    out = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    out["repeats"] = repeats
    out["std_over_repeats"] = float(np.std([r["mean_episode_reward"] for r in runs]))
    return out


def _compare(module, held_out, majority: int, config: StrategyPPOConfig) -> dict:
    from envs.strategy import StrategyEnv

    env = StrategyEnv(episodes=held_out, match_weight=config.match_weight, nan_reward=config.nan_reward, order="sequential")
    planners = {
        "ppo": evaluate_planner(env, _module_planner(module)),
        "random": _random_results(env, config.eval_random_repeats, config.seed),
        "majority": evaluate_planner(env, lambda _: majority),
    }
    trained = planners["ppo"]["mean_episode_reward"]
    return {
        "split": config.eval_split,
        "planners": planners,
        "ppo_beats_random": trained > planners["random"]["mean_episode_reward"],
        "ppo_beats_majority": trained > planners["majority"]["mean_episode_reward"],
    }


# --------------------------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------------------------


def train_strategy(config: StrategyPPOConfig) -> dict:
    """Train the strategy planner with RLlib PPO, compare it on ``eval_split``, write ``report.json`` and ``checkpoint/``.

    Returns the report (also written to ``<output_dir>/report.json``).
    """
    import ray
    from tqdm.auto import tqdm

    from mmrl.train.distributed import connect_ray

    started = time.perf_counter()
    _seed_everything(config.seed)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    train, held_out, data = _build_episodes(config)
    majority = Counter(int(g) for g in train.gold if g >= 0).most_common(1)[0][0]
    built = time.perf_counter()

    own_ray = connect_ray(config.address, num_cpus=config.num_cpus)
    algo = None
    try:
        env_config = {
            "episodes": train,
            "match_weight": config.match_weight,
            "max_turns": config.max_turns,
            "nan_reward": config.nan_reward,
        }
        algo = _algorithm(config, env_config)
        history = []
        for index in tqdm(range(1, config.iterations + 1), desc="strategy PPO", disable=not config.progress):
            history.append(_iteration(index, algo.train()))
        trained = time.perf_counter()
        checkpoint = algo.save_to_path(str((out / "checkpoint").resolve()))
        evaluation = _compare(algo.get_module(), held_out, majority, config)
    finally:
        if algo is not None:
            algo.stop()
        if own_ray:
            ray.shutdown()
    report = {
        "data": data,
        "reward": {
            "components": list(train.component_names),
            "match_weight": config.match_weight,
            "spec": config.reward_spec or "envs.strategy.DEFAULT_REWARD_SPEC",
        },
        "predictor": config.predictor,
        "majority_strategy": STRATEGIES[majority],
        "evaluation": evaluation,
        "training": {"iterations": config.iterations, "env_steps": history[-1]["env_steps"], "history": history},
        "timings": {
            "episodes_s": round(built - started, 1),
            "train_s": round(trained - built, 1),
            "total_s": round(time.perf_counter() - started, 1),
        },
        "checkpoint": checkpoint,
        "config": dataclasses.asdict(config),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return report
