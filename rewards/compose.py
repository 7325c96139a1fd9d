"""Composite rewards: weighted sum, normalise-then-sum (GDPO), minimum, and gates, with per-component logs.

A :class:`Composite` scores policy **completions**. Each component reward reads either the raw
completion (``reward.reads == "completion"``: format, component match, length) or, by default, the
reply text: the ``Reply:`` field of the structured block when :func:`~mmrl.policy.prompts.parse_output`
finds a non-empty one, else the whole completion (a plain-text reply is scored as it is).

Totals, per mode (``w`` = weight, ``s`` = score of a component that enters the total):

- ``"weighted"``: ``sum(w * s)``.
- ``"normalised"``: ``sum(w * z)`` with ``z = (s - mean) / (std + eps)`` per component, over the
  batch or over consecutive GRPO groups of ``group_size`` completions (GDPO; the statistics are
  TRL's ``normalize_then_sum``: NaN-aware mean, Bessel-corrected std, 0 when fewer than 2 scores).
- ``"min"``: ``min(w * s)`` (weights rescale each criterion; use 1.0 for a plain minimum).

Then each **gate** caps the total at ``cap`` wherever its component scores below ``threshold``
(a gate's score is the raw score, in the reward's own range). A gated component is computed even
at weight 0; it enters the sum only through its weight.

Failed scores (NaN plus a reason) never become 0. ``on_missing`` says what they do to the total:

- ``"nan"`` (default): the total is NaN wherever any component that enters it, or any gate, failed.
- ``"skip"``: failed components are left out of the sum/minimum (weights are not renormalised,
  which is TRL's ``nansum`` over reward functions); a failed gate caps the total (fails closed).
  The total is NaN only where every weighted component failed.

Components of weight 0 without a gate are not computed at all (no cost, no judge call) unless
``log_zero_weight=True``; then they are computed and logged but never enter the total.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from mmrl.config import suggest
from mmrl.errors import ConfigError
from mmrl.policy.prompts import format_output, parse_output
from rewards.base import Context, Reward, RewardBatch, RewardError, scored_mean

__all__ = ["Mode", "OnMissing", "MODES", "Gate", "Component", "Composite", "CompositeResult", "preflight", "reply_text"]

Mode = Literal["weighted", "normalised", "min"]
OnMissing = Literal["nan", "skip"]
MODES: tuple[str, ...] = ("weighted", "normalised", "min")
_ON_MISSING = ("nan", "skip")


def reply_text(completion: str) -> str:
    """The text a reply-reading reward scores: the parsed ``Reply:`` field, else the whole completion.

    >>> reply_text("Strategy: Restatement\\nReply: That sounds hard.")
    'That sounds hard.'
    >>> reply_text("That sounds hard.")
    'That sounds hard.'
    """
    reply = parse_output(completion).reply
    return reply if reply is not None else completion


@dataclass(frozen=True)
class Gate:
    """A constraint: wherever the component scores below ``threshold``, the total is at most ``cap``."""

    threshold: float
    cap: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and math.isfinite(self.cap)):
            raise ConfigError(f"a gate needs a finite threshold and cap, got threshold={self.threshold}, cap={self.cap}")


@dataclass(frozen=True)
class Component:
    """One reward in a Composite: its weight in the total and an optional gate."""

    reward: Reward
    weight: float = 1.0
    gate: Gate | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.reward, Reward):
            raise ConfigError(f"a Component needs a Reward (name, version, score_range, __call__), got {self.reward!r}")
        if not math.isfinite(self.weight):
            raise ConfigError(f"{self.name}: weight must be a finite number, got {self.weight}")
        if self.reads not in ("reply", "completion"):
            raise ConfigError(f"{self.name}: reads must be 'reply' or 'completion', got {self.reads!r}")

    @property
    def name(self) -> str:
        return self.reward.name

    @property
    def reads(self) -> str:
        return getattr(self.reward, "reads", "reply")


@dataclass
class CompositeResult:
    """A Composite's output on one batch.

    ``total`` is exactly what a trainer optimises (NaN where unscorable). ``scores`` holds the raw
    score of every computed component (NaN where it failed) and ``failures`` their reasons by index.
    ``violations`` holds per gate 1.0 (violated), 0.0 (passed) or NaN (its score failed).
    ``replies`` are the texts the reply-reading components scored.
    """

    total: np.ndarray
    scores: dict[str, np.ndarray]
    failures: dict[str, dict[int, str]]
    violations: dict[str, np.ndarray] = field(default_factory=dict)
    replies: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """TRL-style logs: ``rewards/{name}/mean|std|failures``, ``reward``, ``reward_std``, ``gates/{name}/violation_rate``.

        Means and stds leave failed (NaN) scores out and are NaN when nothing scored; std is Bessel-corrected, as in TRL.
        """
        out: dict[str, float] = {}
        for name, scores in self.scores.items():
            out[f"rewards/{name}/mean"] = scored_mean(scores)
            out[f"rewards/{name}/std"] = _nanstd(scores)
            out[f"rewards/{name}/failures"] = float(len(self.failures[name]))
        out["reward"] = scored_mean(self.total)
        out["reward_std"] = _nanstd(self.total)
        for name, violated in self.violations.items():
            out[f"gates/{name}/violation_rate"] = scored_mean(violated)
        return out


def _nanstd(values: np.ndarray) -> float:
    ok = values[~np.isnan(values)]
    return float(ok.std(ddof=1)) if ok.size > 1 else math.nan


class Composite:
    """Several rewards combined into the one number a trainer optimises (see the module docstring).

    Args:
        components: :class:`Component` objects or ``(reward, weight[, gate])`` tuples; names must be unique.
        mode: ``"weighted"`` (default), ``"normalised"`` (normalise-then-sum) or ``"min"``.
        group_size: ``"normalised"`` only: standardise within consecutive groups of this many
            completions (GRPO's ``num_generations``); ``None`` (default) standardises over the batch.
        on_missing: what a failed score does to the total: ``"nan"`` (default) or ``"skip"``.
        log_zero_weight: compute and log weight-0 components too (default ``False``: not computed).
        eps: added to the std in ``"normalised"`` mode (default 1e-4, as in TRL).
        max_failed_batches: raise RewardError when a component has failed on every reply of this many
            consecutive batches (default 3; 0 never stops): a reward that cannot score is not a signal.
    """

    def __init__(
        self,
        components: Sequence[Component | tuple],
        *,
        mode: Mode = "weighted",
        group_size: int | None = None,
        on_missing: OnMissing = "nan",
        log_zero_weight: bool = False,
        eps: float = 1e-4,
        max_failed_batches: int = 3,
    ) -> None:
        _check_choice("mode", mode, MODES)
        _check_choice("on_missing", on_missing, _ON_MISSING)
        if not components:
            raise ConfigError("a Composite needs at least one component")
        components = [c if isinstance(c, Component) else Component(*c) for c in components]
        names = [c.name for c in components]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"component names must be unique, got {duplicates} more than once")
        if group_size is not None and (mode != "normalised" or group_size < 1):
            raise ConfigError(f"group_size applies to mode='normalised' only and must be >= 1, got {group_size} with mode={mode!r}")
        if isinstance(max_failed_batches, bool) or not isinstance(max_failed_batches, int) or max_failed_batches < 0:
            raise ConfigError(f"max_failed_batches must be an integer >= 0 (0: never stop), got {max_failed_batches!r}")
        if not any(c.weight != 0 for c in components):
            raise ConfigError(f"every weight is 0 ({names}): give at least one component a nonzero weight")
        self.components = tuple(components)
        self.mode, self.group_size, self.on_missing = mode, group_size, on_missing
        self.log_zero_weight, self.eps = log_zero_weight, eps
        self.max_failed_batches = max_failed_batches
        self._failed_streak = {c.name: 0 for c in components}

    @property
    def computed(self) -> tuple[Component, ...]:
        """The components a call computes: nonzero weight, gated, or weight 0 with ``log_zero_weight``."""
        return tuple(c for c in self.components if c.weight != 0 or c.gate is not None or self.log_zero_weight)

    @property
    def weighted(self) -> tuple[Component, ...]:
        """The components that enter the total (nonzero weight)."""
        return tuple(c for c in self.components if c.weight != 0)

    @property
    def gated(self) -> tuple[Component, ...]:
        return tuple(c for c in self.components if c.gate is not None)

    def __call__(self, contexts: Sequence[Context], completions: Sequence[str]) -> CompositeResult:
        if len(contexts) != len(completions):
            raise RewardError(f"got {len(contexts)} contexts but {len(completions)} completions; pass one context per completion")
        n = len(completions)
        wrong = next((i for i, c in enumerate(completions) if not isinstance(c, str)), None)
        if wrong is not None:
            raise RewardError(f"completion {wrong}: expected str, got {type(completions[wrong]).__name__} ({completions[wrong]!r:.60})")
        if self.group_size is not None and n % self.group_size:
            raise RewardError(f"a batch of {n} completions does not split into groups of group_size={self.group_size}")
        components = self.computed
        replies = [reply_text(c) for c in completions] if any(c.reads == "reply" for c in components) else []
        scores: dict[str, np.ndarray] = {}
        failures: dict[str, dict[int, str]] = {}
        for component in components:
            batch = component.reward(contexts, list(completions) if component.reads == "completion" else replies)
            if not isinstance(batch, RewardBatch) or len(batch.scores) != n:
                got = f"{len(batch.scores)} scores" if isinstance(batch, RewardBatch) else type(batch).__name__
                raise RewardError(f"{component.name} must return a RewardBatch of {n} scores, got {got}")
            scores[component.name], failures[component.name] = batch.scores, dict(batch.failures)
            self._count_failed_batch(component.name, batch, n)
        total = self._total(scores, n)
        violations = {}
        for component in self.gated:
            gate, score = component.gate, scores[component.name]
            violated = np.where(np.isnan(score), np.nan, (score < gate.threshold).astype(np.float64))
            cap = violated == 1.0 if self.on_missing == "nan" else ~(violated == 0.0)  # "skip": unknown fails closed
            total = np.where(cap, np.minimum(total, gate.cap), total)
            if self.on_missing == "nan":
                total = np.where(np.isnan(score), np.nan, total)
            violations[component.name] = violated
        return CompositeResult(total, scores, failures, violations, replies)

    def _count_failed_batch(self, name: str, batch: RewardBatch, n: int) -> None:
        """Raise when ``name`` has now failed on every reply of ``max_failed_batches`` consecutive batches."""
        if n == 0:
            return
        self._failed_streak[name] = self._failed_streak[name] + 1 if len(batch.failures) == n else 0
        if self.max_failed_batches and self._failed_streak[name] >= self.max_failed_batches:
            reason = next(iter(batch.failures.values()))
            raise RewardError(f"{name} failed on every reply of {self._failed_streak[name]} consecutive batches (max_failed_batches="
                              f"{self.max_failed_batches}); last reason: {reason}")  # fmt: skip

    def preflight(self) -> None:
        """Run every computed component once on a canned, fully labelled reply (:func:`preflight`)."""
        for component in self.computed:
            preflight(component.reward)

    def _total(self, scores: dict[str, np.ndarray], n: int) -> np.ndarray:
        columns = [scores[c.name] for c in self.weighted]
        if self.mode == "normalised":
            columns = [self._standardise(column) for column in columns]
        weighted = np.stack([c.weight * column for c, column in zip(self.weighted, columns)], axis=1).reshape(n, -1)
        missing = np.isnan(weighted)
        if self.mode == "min":
            total = np.min(np.where(missing, np.inf, weighted), axis=1)
        else:
            total = np.sum(np.where(missing, 0.0, weighted), axis=1)
        unscorable = missing.any(axis=1) if self.on_missing == "nan" else missing.all(axis=1)
        return np.where(unscorable, np.nan, total)

    def _standardise(self, scores: np.ndarray) -> np.ndarray:
        size = self.group_size or max(len(scores), 1)
        groups = scores.reshape(-1, size)
        out = np.full_like(groups, np.nan)
        for i, group in enumerate(groups):
            ok = ~np.isnan(group)
            if not ok.any():
                continue
            mean = group[ok].mean()
            std = group[ok].std(ddof=1) if ok.sum() > 1 else 0.0
            out[i] = (group - mean) / (std + self.eps)
        return out.reshape(-1)

    def __repr__(self) -> str:
        parts = []
        for c in self.components:
            gate = "" if c.gate is None else f" (below {c.gate.threshold:g}: total <= {c.gate.cap:g})"
            parts.append(f"{c.name}={c.weight:g}{gate}")
        return f"Composite(mode={self.mode!r}, {', '.join(parts)})"


def _check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        hint = suggest(str(value), choices)
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}{hint}")


def preflight(reward: Reward) -> None:
    """Score one canned, fully labelled reply with ``reward``: a misconfigured reward (a missing model, a bad option)
    raises its ConfigError now, not at the first training step. A failure to score the canned reply (an unreachable
    judge, say) is not raised: a failing batch is data, and :class:`Composite` stops a run that keeps failing."""
    context = Context(
        "I've been feeling anxious since I moved to a new city.",
        history=(("therapist", "How have things been since we last spoke?"),),
        situation="moved for work", gold_client_emotion="fear", gold_therapist_emotion="neutral", gold_strategy="Open question",
        reference="Moving somewhere new can be unsettling. What has been hardest?",
    )  # fmt: skip
    completion = format_output("fear", "neutral", "Open question", "What has been hardest since the move?")
    reward([context], [completion if getattr(reward, "reads", "reply") == "completion" else reply_text(completion)])
