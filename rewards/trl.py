"""A Composite as TRL reward functions (``GRPOTrainer`` / ``RLOOTrainer``) or as a plain callable (Gymnasium, RLlib).

Column contract. TRL calls each reward function as ``f(prompts, completions, **columns)``, where
``columns`` are the dataset's other columns, one value per completion. The context of a completion
comes from, in order of preference:

- a ``context`` column holding :func:`context_json` of a :class:`~rewards.base.Context`, or
- the columns of :func:`mmrl.data.hf.targets_dataset` (``client_text``, ``history_speakers``,
  ``history_texts``, ``situation``, ``problem_type``, ``video_description``, ``client_emotion``,
  ``therapist_emotion``, ``strategy``, ``reference``, ``dialogue_id``, ``turn_index``).

A completion is a string, or TRL's conversational form ``[{"role": "assistant", "content": str}]``
(the assistant contents are joined).

What TRL optimises. TRL sums ``reward_weights[i] * f_i`` over functions with ``nansum``: a None
(NaN) component is dropped, not renormalised, and a row where every function returned None gets
no learning signal. That is exactly a Composite with ``mode="weighted"``, no gates,
``on_missing="skip"`` and no logged weight-0 components, so :func:`to_trl` then returns one function
per component, named after it, with the Composite's weights. Anything else (the ``"nan"`` default,
gates, ``"normalised"``, ``"min"``, logged weight-0 components) is not a per-function weighted sum,
so :func:`to_trl` returns a single function named ``total`` (weight 1.0) that computes the Composite
and reports every component through TRL's ``log_metric`` hook, under the same names TRL uses
(``rewards/<name>/mean|std``) plus ``rewards/<name>/failures`` and ``gates/<name>/violation_rate``;
per-completion component scores go to the completions table through ``log_extra``. A None total
makes TRL treat the completion as unscorable (zero advantage), never as a 0 reward.
``"normalised"`` with ``group_size`` needs whole GRPO groups in each call: true on one process
(TRL keeps a prompt's ``num_generations`` completions adjacent); on several processes, use the
per-component functions with TRL's ``multi_objective_aggregation="normalize_then_sum"`` instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from functools import lru_cache

import numpy as np

from rewards.base import Context, RewardError
from rewards.compose import Component, Composite

__all__ = ["to_trl", "as_callable", "context_json", "contexts_from_columns", "completion_text", "TARGET_COLUMNS"]

#: The ``targets_dataset`` columns a Context is built from when there is no ``context`` column.
TARGET_COLUMNS: tuple[str, ...] = (
    "client_text", "history_speakers", "history_texts", "situation", "problem_type", "video_description",
    "client_emotion", "therapist_emotion", "strategy", "reference", "dialogue_id", "turn_index",
)  # fmt: skip


def context_json(context: Context) -> str:
    """The ``context`` column value for a Context (round-trips through :func:`contexts_from_columns`)."""
    return json.dumps(asdict(context), ensure_ascii=False, sort_keys=True)


@lru_cache(maxsize=8192)
def _parse_context(text: str) -> Context:
    return Context.from_json(json.loads(text))


def _target_context(columns: Mapping[str, Sequence], i: int) -> Context:
    """The Context ``Context.from_dialogue`` builds for the same row of ``targets_dataset``."""

    def get(name: str):
        return columns[name][i] if name in columns else None

    return Context(
        client_utterance=get("client_text") or "",
        history=tuple(zip(get("history_speakers") or (), get("history_texts") or ())),
        situation=get("situation"),
        problem_type=get("problem_type"),
        video_description=get("video_description"),
        gold_client_emotion=get("client_emotion"),
        gold_therapist_emotion=get("therapist_emotion"),
        gold_strategy=get("strategy"),
        reference=get("reference"),
        dialogue_id=get("dialogue_id"),
        turn_index=get("turn_index"),
    )


def contexts_from_columns(n: int, columns: Mapping[str, Sequence]) -> list[Context]:
    """The ``n`` contexts of a TRL reward call, from its dataset columns (see the module docstring)."""
    if "context" in columns:
        try:
            return [_parse_context(text) for text in columns["context"]]
        except (TypeError, ValueError, AttributeError) as exc:
            raise RewardError(f"the 'context' column must hold context_json(Context) strings: {type(exc).__name__}: {exc}") from exc
    if "client_text" in columns:
        return [_target_context(columns, i) for i in range(n)]
    found = sorted(k for k in columns if k not in ("trainer_state", "log_extra", "log_metric", "completion_ids"))
    raise RewardError(
        f"reward functions need a 'context' column (context_json of a Context) or the targets_dataset columns "
        f"{list(TARGET_COLUMNS)}; the dataset has columns {found}: add one of them"
    )


def completion_text(completion: str | Sequence[Mapping[str, object]]) -> str:
    """A completion as text: a string as is, a conversational completion's assistant contents joined."""
    if isinstance(completion, str):
        return completion
    parts = [m.get("content") for m in completion if m.get("role") == "assistant"]
    if not all(isinstance(p, str) for p in parts):
        raise RewardError(f"expected assistant messages with string content, got {completion!r:.200}")
    return "".join(parts)


def _nullable(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in values]


class _ComponentFunction:
    """One component as a TRL reward function (picklable; ``__name__`` is the reward's name)."""

    def __init__(self, component: Component, max_failed_batches: int = 3) -> None:
        self.composite = Composite([component], on_missing="skip", max_failed_batches=max_failed_batches)
        self.__name__ = component.name

    def __call__(self, prompts: Sequence, completions: Sequence, **columns) -> list[float | None]:
        contexts = contexts_from_columns(len(completions), columns)
        result = self.composite(contexts, [completion_text(c) for c in completions])
        if columns.get("log_metric") is not None:
            columns["log_metric"](f"rewards/{self.__name__}/failures", float(len(result.failures[self.__name__])))
        return _nullable(result.scores[self.__name__])


class _TotalFunction:
    """The whole Composite as one TRL reward function named ``total`` (see the module docstring)."""

    __name__ = "total"

    def __init__(self, composite: Composite) -> None:
        self.composite = composite

    def __call__(self, prompts: Sequence, completions: Sequence, **columns) -> list[float | None]:
        contexts = contexts_from_columns(len(completions), columns)
        result = self.composite(contexts, [completion_text(c) for c in completions])
        log_metric, log_extra = columns.get("log_metric"), columns.get("log_extra")
        if log_metric is not None:
            for name, value in result.metrics().items():
                if name not in ("reward", "reward_std"):  # TRL logs those itself from this function's total
                    log_metric(name, value)
        if log_extra is not None:
            for name, scores in result.scores.items():
                log_extra(name, _nullable(scores))
        return _nullable(result.total)


def to_trl(composite: Composite) -> tuple[list[Callable[..., list[float | None]]], list[float]]:
    """``(reward_funcs, reward_weights)`` for ``GRPOTrainer(reward_funcs=...)`` and ``GRPOConfig(reward_weights=...)``.

    Per-component functions when TRL's weighted ``nansum`` equals the Composite, else one ``total``
    function (see the module docstring for the rule and the logging).
    """
    decomposable = (
        composite.mode == "weighted"
        and not composite.gated
        and composite.on_missing == "skip"
        and len(composite.computed) == len(composite.weighted)
    )
    if not decomposable:
        return [_TotalFunction(composite)], [1.0]
    functions = [_ComponentFunction(c, composite.max_failed_batches) for c in composite.weighted]
    return functions, [c.weight for c in composite.weighted]


class _CompositeCallable:
    def __init__(self, composite: Composite) -> None:
        self.composite = composite

    def __call__(self, contexts: Sequence[Context], completions: Sequence[str]) -> tuple[np.ndarray, dict]:
        result = self.composite(contexts, completions)
        info = {"scores": result.scores, "failures": result.failures, "violations": result.violations, "metrics": result.metrics()}
        return result.total, info


def as_callable(composite: Composite) -> Callable[[Sequence[Context], Sequence[str]], tuple[np.ndarray, dict]]:
    """A picklable ``(contexts, completions) -> (totals, info)``; ``info`` has ``scores``, ``failures``, ``violations``, ``metrics``."""
    return _CompositeCallable(composite)
