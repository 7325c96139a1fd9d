"""From the counseling env to TRL: whole-episode GRPO rollouts against a (simulated) client.

One row per dialogue; each completion is a whole conversation with a simulated client::

    rollout = MultiTurnRollout(lambda: CounselingEnv(corpus, client=SimulatedClient(...), reward_spec=spec))
    GRPOTrainer(model, reward_funcs=rollout.reward_funcs(), train_dataset=rollout.dataset(), rollout_func=rollout, ...)

Single-turn training needs no env: its prompt dataset is ``mmrl.policy.dataset.prompt_dataset``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from datasets import Dataset

from envs.counseling import CounselingEnv
from mmrl.data import require_train
from mmrl.errors import ConfigError
from mmrl.policy.dataset import prompt_rows
from mmrl.policy.prompts import render_messages, render_turn
from rewards.base import scored_mean

__all__ = ["MultiTurnRollout", "EpisodeReturn"]


class EpisodeReturn:
    """The TRL reward function of :class:`MultiTurnRollout`: each completion's episode return.

    Reads the ``episode_return`` field the rollout adds (None where it is NaN: TRL then leaves the
    completion out); logs ``episode/turns``, ``episode/client_left_rate`` and the per-component
    means ``rewards/<name>/mean`` over the batch's episodes.
    """

    __name__ = "episode_return"

    def __call__(
        self, prompts: Sequence, completions: Sequence, episode_return: Sequence[float] | None = None, **columns: Any
    ) -> list[float | None]:
        if episode_return is None:
            raise ConfigError(
                "episode_return needs the 'episode_return' field of MultiTurnRollout: pass rollout_func=MultiTurnRollout(...)"
            )
        log_metric = columns.get("log_metric")
        if log_metric is not None:
            log_metric("episode/turns", float(np.mean(columns.get("episode_turns") or [math.nan])))
            log_metric(
                "episode/client_left_rate", float(np.mean([end == "client_left" for end in columns.get("episode_end") or []] or [math.nan]))
            )
            components: dict[str, list[float]] = {}
            for episode in columns.get("episode_components") or []:
                for name, value in episode.items():
                    components.setdefault(name, []).append(value)
            for name, values in components.items():
                log_metric(f"rewards/{name}/mean", scored_mean(values))
        return [None if math.isnan(value) else float(value) for value in episode_return]


def _suffix_ids(tokenizer: Any, text: str, template_kwargs: Mapping[str, Any]) -> list[int]:
    """The tokens a chat template puts between a finished assistant turn and the next assistant turn, around a user ``text``."""
    before = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    prefix = tokenizer.apply_chat_template(before, tokenize=True, return_dict=False, **template_kwargs)
    full = tokenizer.apply_chat_template(
        [*before, {"role": "user", "content": text}], add_generation_prompt=True, tokenize=True, return_dict=False, **template_kwargs
    )
    ends = [i for i, token in enumerate(prefix) if token == tokenizer.eos_token_id]
    prefix = prefix[: ends[-1] + 1] if ends else prefix
    if list(full[: len(prefix)]) != list(prefix):
        raise ConfigError("the chat template renders a conversation differently once a user turn follows: cannot append client turns")
    return list(full[len(prefix) :])


class MultiTurnRollout:
    """A GRPOTrainer ``rollout_func``: each prompt plays one whole episode against the env's client.

    Args:
        env_factory: builds a CounselingEnv (usually with a SimulatedClient and a ``reward_spec``);
            called once per concurrent episode, envs are reused. Build it with ``nan_reward=float("nan")``
            to let failed rewards reach TRL as None; the default raises.
        max_turns: most therapist turns per episode (default 3).
        max_new_tokens: most tokens per therapist turn (None: the trainer's ``max_completion_length``).
        aggregate: the episode return, ``"mean"`` (default) or ``"sum"`` of the step rewards; NaN if any is NaN.
        max_history_tokens, max_history_turns: ``render_messages`` history budget of the first prompt.

    Contract (TRL 1.16): ``rollout(prompts, trainer)`` receives the process's prompts, already
    repeated ``num_generations`` times, and returns one completion per prompt: ``prompt_ids`` (the
    env's first observation rendered with ``render_messages``), ``completion_ids`` (the therapist
    turns and, between them, the client turns in the chat template's form), ``logprobs`` (of the
    sampled tokens; 0.0 on client tokens), ``env_mask`` (1 on the policy's tokens, 0 on the
    client's: only the policy's tokens enter the loss) and the extra fields ``episode_return``,
    ``episode_turns``, ``episode_end``, ``episode_components`` for :class:`EpisodeReturn`. The
    dataset row of a prompt is found by its messages, so use :meth:`dataset`. Generation uses
    transformers (``use_vllm=False``) with the trainer's generation settings. Episode ``i`` of a
    step is reset with a seed from ``(args.seed, global_step, i)``.
    """

    def __init__(
        self,
        env_factory: Callable[[], CounselingEnv],
        *,
        max_turns: int = 3,
        max_new_tokens: int | None = None,
        aggregate: str = "mean",
        max_history_tokens: int = 1024,
        max_history_turns: int = 16,
    ) -> None:
        if aggregate not in ("mean", "sum"):
            raise ConfigError(f"aggregate must be 'mean' or 'sum', got {aggregate!r}")
        for name, value in (("max_turns", max_turns), ("max_new_tokens", max_new_tokens)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        self.env_factory, self.max_turns, self.max_new_tokens, self.aggregate = env_factory, max_turns, max_new_tokens, aggregate
        self.render = {"max_history_tokens": max_history_tokens, "max_history_turns": max_history_turns}
        self._envs: list[CounselingEnv] = []
        self._by_prompt: dict[tuple, str] | None = None

    def _env(self, i: int) -> CounselingEnv:
        while len(self._envs) <= i:
            env = getattr(self.env_factory(), "unwrapped", None)
            if not isinstance(env, CounselingEnv):
                raise ConfigError(f"env_factory must build a CounselingEnv, got {type(env).__name__}")
            if env.composite is None:
                raise ConfigError("the rollout's env has no reward_spec: an episode return needs rewards")
            self._envs.append(env)
        return self._envs[i]

    def dataset(self, *, tokenizer: Any = None) -> Dataset:
        """One row per dialogue of the env's split (train only): its first turn's prompt, context and id."""
        env = self._env(0)
        require_train(env.dialogues, purpose="a multi-turn RL training dataset")
        rows = prompt_rows(env.dialogues, env.predictor, first_only=True, tokenizer=tokenizer, **self.render)
        self._by_prompt = {}
        for row in rows:
            self._by_prompt.setdefault(_key(row["prompt"]), row["dialogue_id"])
        return Dataset.from_list(rows)

    def reward_funcs(self) -> list[EpisodeReturn]:
        """The reward functions to pass to GRPOTrainer with this rollout."""
        return [EpisodeReturn()]

    def __call__(self, prompts: list, trainer: Any) -> dict[str, list]:
        import torch
        from trl.models.utils import unwrap_model_for_generation

        if getattr(trainer, "use_vllm", False):
            raise ConfigError("MultiTurnRollout generates with transformers: set use_vllm=False")
        if self._by_prompt is None:
            self.dataset()
        assert self._by_prompt is not None
        tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
        template_kwargs = dict(getattr(trainer, "chat_template_kwargs", None) or {})
        config = copy.deepcopy(trainer.generation_config)
        config.max_new_tokens = self.max_new_tokens or trainer.args.max_completion_length
        config.output_scores = config.return_dict_in_generate = True
        eos = set(trainer.eos_token_ids)
        seed = int(trainer.args.seed) * 1_000_003 + int(trainer.state.global_step)

        episodes = []
        for i, prompt in enumerate(prompts):
            key = _key(prompt)
            if key not in self._by_prompt:
                raise ConfigError("a prompt is not from MultiTurnRollout.dataset(): train on the rows that dataset() returns")
            env = self._env(i)
            env.reset(seed=seed * 4099 + i, options={"dialogue_id": self._by_prompt[key]})
            assert env.context is not None
            messages = render_messages(env.context, tokenizer=tokenizer, **self.render)
            episodes.append(
                _Episode(
                    tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False, **template_kwargs)
                )
            )

        with (
            unwrap_model_for_generation(
                trainer.model_wrapped, trainer.accelerator, gather_deepspeed3_params=trainer.args.ds3_gather_for_generation
            ) as model,
            torch.no_grad(),
        ):
            for turn in range(self.max_turns):
                active = [i for i, e in enumerate(episodes) if e.end is None]
                if not active:
                    break
                generated = _generate(model, tokenizer, [episodes[i].prompt_ids + episodes[i].completion_ids for i in active], config, eos)
                for i, (tokens, logprobs) in zip(active, generated):
                    episode, env = episodes[i], self._envs[i]
                    episode.add(tokens, logprobs, policy=True)
                    _, reward, terminated, truncated, info = env.step(tokenizer.decode(tokens, skip_special_tokens=True))
                    episode.record(reward, info)
                    if terminated or truncated or turn == self.max_turns - 1:
                        episode.end = info["end_reason"] or "max_turns"
                        continue
                    closing = [] if tokens and tokens[-1] in eos else [tokenizer.eos_token_id]
                    assert env.context is not None
                    episode.add(closing + _suffix_ids(tokenizer, render_turn(env.context), template_kwargs), None, policy=False)

        returns = [e.episode_return(self.aggregate) for e in episodes]
        return {
            "prompt_ids": [e.prompt_ids for e in episodes],
            "completion_ids": [e.completion_ids for e in episodes],
            "logprobs": [e.logprobs for e in episodes],
            "env_mask": [e.mask for e in episodes],
            "episode_return": returns,
            "episode_turns": [len(e.rewards) for e in episodes],
            "episode_end": [e.end for e in episodes],
            "episode_components": [e.component_means() for e in episodes],
        }

    def __repr__(self) -> str:
        return f"MultiTurnRollout(max_turns={self.max_turns}, aggregate={self.aggregate!r})"


def _key(prompt: Sequence[Mapping[str, str]] | str) -> tuple:
    return (prompt,) if isinstance(prompt, str) else tuple((m["role"], m["content"]) for m in prompt)


class _Episode:
    """Token bookkeeping of one rollout."""

    def __init__(self, prompt_ids: list[int]) -> None:
        self.prompt_ids = list(prompt_ids)
        self.completion_ids: list[int] = []
        self.logprobs: list[float] = []
        self.mask: list[int] = []
        self.rewards: list[float] = []
        self.components: list[dict[str, float]] = []
        self.end: str | None = None

    def add(self, tokens: list[int], logprobs: list[float] | None, *, policy: bool) -> None:
        self.completion_ids += tokens
        self.logprobs += logprobs if logprobs is not None else [0.0] * len(tokens)
        self.mask += [int(policy)] * len(tokens)

    def record(self, reward: float, info: Mapping[str, Any]) -> None:
        self.rewards.append(float(reward))
        self.components.append(dict(info.get("rewards", {})))

    def episode_return(self, aggregate: str) -> float:
        if not self.rewards:
            return math.nan
        return float(np.sum(self.rewards) if aggregate == "sum" else np.mean(self.rewards))

    def component_means(self) -> dict[str, float]:
        out = {}
        for name in sorted({name for turn in self.components for name in turn}):
            scored = [turn[name] for turn in self.components if not math.isnan(turn.get(name, math.nan))]
            out[name] = float(np.mean(scored)) if scored else math.nan
        return out


def _generate(model: Any, tokenizer: Any, sequences: list[list[int]], config: Any, eos: set[int]) -> list[tuple[list[int], list[float]]]:
    """Left-padded batch generation; each row's new tokens up to and including its first EOS, with their logprobs."""
    import torch

    width = max(len(s) for s in sequences)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor([[pad] * (width - len(s)) + s for s in sequences], device=model.device)
    attention = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences], device=model.device)
    out = model.generate(input_ids=ids, attention_mask=attention, generation_config=config)
    new = out.sequences[:, width:]
    logps = torch.stack([torch.log_softmax(score.float(), dim=-1) for score in out.scores], dim=1)  # (B, T, V)
    chosen = logps.gather(-1, new.unsqueeze(-1)).squeeze(-1)
    results = []
    for row in range(len(sequences)):
        tokens = new[row].tolist()
        stop = next((t + 1 for t, token in enumerate(tokens) if token in eos), len(tokens))
        results.append((tokens[:stop], chosen[row, :stop].tolist()))
    return results
