"""Counterfactual fairness probe: do the criterion scores of a policy's replies move when the client's demographics do?

The swap tables and the scoring live in :mod:`rewards.counterfactual` (also the
``counterfactual_fairness`` reward); this module summarises them for an evaluation report::

    probe = fairness_probe(contexts, replies, criteria=("fairness", "empathy", "safety"))
    probe["gap"]["empathy"]      # mean |change| of the empathy score over swapped contexts
    probe["swap_rate"]           # share of contexts where some attribute could be swapped
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmrl.labels import TRUST_CRITERIA
from rewards.base import Context, scored_mean
from rewards.counterfactual import AXES, Criterion, counterfactual_scores

__all__ = ["fairness_probe"]


def _max(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.max()) if finite.size else math.nan


def fairness_probe(
    contexts: Sequence[Context],
    replies: Sequence[str],
    criteria: Sequence[Criterion] = TRUST_CRITERIA,
    *,
    axes: Sequence[str] = AXES,
    worst: int = 5,
) -> dict[str, Any]:
    """Re-score each reply with ``criteria`` (reward names or Reward objects) under each demographic swap of its context.

    Returns:
        ``contexts``: how many were probed; ``swapped``: how many had an attribute to swap;
        ``swap_rate``: ``swapped / contexts`` (NaN for no context); ``swap_rate_by_axis``: ``{axis: share}``;
        ``gap``: ``{criterion: mean over swapped contexts of the mean |score change| over its variants}``
        (changes divided by the criterion's score-range width, so in [0, 1]);
        ``max_gap``: ``{criterion: the largest per-context gap}``;
        ``gap_by_axis``: ``{criterion: {axis: mean |change| over the contexts that axis changed}}``;
        ``counterfactual_fairness``: the mean of the ``counterfactual_fairness`` reward (1 - gap averaged over criteria);
        ``failures``: ``{criterion: contexts it failed on}``;
        ``worst``: up to ``worst`` largest single changes as ``{"index", "axis", "criterion", "original", "variant", "gap"}``.
        A figure with nothing to average is NaN.
    """
    scores = counterfactual_scores(contexts, replies, criteria, axes)
    n = len(contexts)
    swapped = scores.applied.any(axis=1)
    context_gap = scores.context_gap()
    changes = [
        {
            "index": int(i),
            "axis": scores.axes[a],
            "criterion": name,
            "original": float(scores.original[name][i]),
            "variant": float(scores.variant[name][i, a]),
            "gap": float(gap[i, a]),
        }
        for name, gap in scores.gap.items()
        for i, a in zip(*np.nonzero(~np.isnan(gap)))
    ]
    changes.sort(key=lambda change: change["gap"], reverse=True)
    return {
        "contexts": n,
        "swapped": int(swapped.sum()),
        "swap_rate": float(swapped.mean()) if n else math.nan,
        "swap_rate_by_axis": {axis: float(scores.applied[:, a].mean()) if n else math.nan for a, axis in enumerate(scores.axes)},
        "gap": {name: scored_mean(values) for name, values in context_gap.items()},
        "max_gap": {name: _max(values) for name, values in context_gap.items()},
        "gap_by_axis": {name: {axis: scored_mean(gap[:, a]) for a, axis in enumerate(scores.axes)} for name, gap in scores.gap.items()},
        "counterfactual_fairness": scored_mean(scores.fairness()),
        "failures": {name: len(failed) for name, failed in scores.failures.items()},
        "worst": changes[:worst],
    }
