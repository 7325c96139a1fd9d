"""What both environments share: their errors, argument and reset-option checks, dialogue picking,
the predictor's output checks, and what a NaN reward becomes.

Each env keeps its own spaces and dynamics; these helpers are the parts that must read and fail alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmrl.config import suggest
from mmrl.errors import ConfigError, MmrlError
from mmrl.labels import EMOTIONS, STRATEGIES
from mmrl.predictor import Components, EmotionPredictor
from rewards.base import RewardError

__all__ = [
    "RESET_OPTIONS",
    "ActionError",
    "ActionWarning",
    "EnvStateError",
    "check_components",
    "check_nan_reward",
    "check_optional_count",
    "check_predictor",
    "check_render_mode",
    "check_reset_options",
    "nan_reward_or_raise",
    "pick_dialogue",
]

#: The ``reset(options=...)`` keys both envs accept.
RESET_OPTIONS = ("dialogue_id", "dialogue_index")


class ActionError(MmrlError, TypeError):
    """An action outside the env's action space."""


class ActionWarning(UserWarning):
    """A reply was changed to fit the action space (clipped or stripped of characters outside the charset)."""


class EnvStateError(MmrlError):
    """A call out of order: ``step`` before ``reset`` or after the episode ended."""


def check_reset_options(options: Mapping[str, Any]) -> None:
    """Reject reset options other than :data:`RESET_OPTIONS`, with a did-you-mean."""
    unknown = [k for k in options if k not in RESET_OPTIONS]
    if unknown:
        raise ConfigError(f"unknown reset option {unknown[0]!r}{suggest(unknown[0], RESET_OPTIONS)} (options: {', '.join(RESET_OPTIONS)})")


def pick_dialogue(options: Mapping[str, Any], ids: Sequence[str], where: str = "this env") -> int | None:
    """The dialogue index ``options`` name (``dialogue_id`` or ``dialogue_index``), or None when they name none."""
    check_reset_options(options)
    if "dialogue_id" in options:
        wanted = options["dialogue_id"]
        if wanted not in ids:
            raise ConfigError(f"no dialogue {wanted!r} in {where}{suggest(wanted, ids)}")
        return list(ids).index(wanted)
    if "dialogue_index" in options:
        index = options["dialogue_index"]
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(ids):
            raise ConfigError(f"dialogue_index must be an integer in [0, {len(ids)}), got {index!r}")
        return int(index)
    return None


def check_nan_reward(nan_reward: Any) -> float | None:
    """``nan_reward`` if it is None (raise), NaN or a number; else a ConfigError."""
    if nan_reward is not None and (isinstance(nan_reward, bool) or not isinstance(nan_reward, (int, float))):
        raise ConfigError(f"nan_reward must be None (raise), float('nan') or a number, got {nan_reward!r}")
    return nan_reward


def nan_reward_or_raise(reward: float, nan_reward: float | None, what: str, hint: str) -> float:
    """``reward`` unless it is NaN; then ``nan_reward``, or (None) a RewardError saying ``what`` failed and ``hint``."""
    if not math.isnan(reward):
        return reward
    if nan_reward is None:
        raise RewardError(f"{what}; {hint}")
    return float(nan_reward)


def check_optional_count(name: str, value: Any) -> int | None:
    """``value`` if it is None or an integer >= 1 (``max_turns``, ``embedding_dim``); else a ConfigError."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{name} must be None or an integer >= 1, got {value!r}")
    return value


def check_render_mode(render_mode: str | None, modes: Sequence[str]) -> str | None:
    """``render_mode`` if it is None or one of ``modes``; else a ConfigError."""
    if render_mode is not None and render_mode not in modes:
        raise ConfigError(f"render_mode must be one of {list(modes)} or None, got {render_mode!r}")
    return render_mode


def check_predictor(predictor: Any) -> EmotionPredictor | None:
    """``predictor`` if it is None or follows ``mmrl.predictor.EmotionPredictor``; else a ConfigError."""
    if predictor is not None and not isinstance(predictor, EmotionPredictor):
        raise ConfigError(
            f"predictor must follow mmrl.predictor.EmotionPredictor (a predict(items) method), got {type(predictor).__name__}"
        )
    return predictor


def check_components(out: Any, n: int, embedding_dim: int | None = None) -> list[Components]:
    """The predictor's output for ``n`` turns: ``n`` Components with 7 / 7 / 10 probabilities and one embedding width
    (``embedding_dim``, or the first one's); anything else is a ConfigError naming what arrived."""
    out = list(out)
    if len(out) != n or not all(isinstance(c, Components) for c in out):
        raise ConfigError(f"the predictor must return {n} Components, got {len(out)} item(s) of {sorted({type(c).__name__ for c in out})}")
    if not out:
        return out
    width = embedding_dim or np.asarray(out[0].embedding).reshape(-1).size
    sizes = {"client_emotion": len(EMOTIONS), "therapist_emotion": len(EMOTIONS), "strategy": len(STRATEGIES), "embedding": width}
    for components in out:
        for name, size in sizes.items():
            shape = np.asarray(getattr(components, name)).shape
            if shape != (size,):
                raise ConfigError(
                    f"the predictor's {name} has shape {shape}, expected ({size},); set embedding_dim= to the predictor's width"
                )
    return out
