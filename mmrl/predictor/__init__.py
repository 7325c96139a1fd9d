"""The multimodal emotion predictor the policy sits on: the ``EmotionPredictor`` protocol and its outputs.

The env and the prompt renderer depend on :class:`EmotionPredictor` and :class:`Components` only;
:class:`mmrl.predictor.model.MultimodalPredictor` is one implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from mmrl.data.schema import Dialogue
from mmrl.labels import EMOTIONS, STRATEGIES

__all__ = ["TASKS", "TASK_LABELS", "Components", "EmotionPredictor"]

#: The three predicted tasks, in the order of :class:`Components` fields.
TASKS: tuple[str, ...] = ("client_emotion", "therapist_emotion", "strategy")
#: Class names of each task, in probability-vector order.
TASK_LABELS: dict[str, tuple[str, ...]] = {"client_emotion": EMOTIONS, "therapist_emotion": EMOTIONS, "strategy": STRATEGIES}


@dataclass(frozen=True)
class Components:
    """Predicted distributions at one target therapist turn, plus the fused embedding.

    ``client_emotion`` (7) is about the client turn just before the target, ``therapist_emotion`` (7)
    and ``strategy`` (10) about the target turn; vectors follow ``EMOTIONS`` / ``STRATEGIES`` order.
    """

    client_emotion: np.ndarray
    therapist_emotion: np.ndarray
    strategy: np.ndarray
    embedding: np.ndarray

    def label(self, task: str) -> str:
        """The most probable class name of ``task``."""
        return TASK_LABELS[task][int(np.argmax(getattr(self, task)))]

    def probabilities(self) -> dict[str, tuple[float, ...]]:
        """``{task: probabilities}``, the shape ``rewards.base.Context.predicted`` takes."""
        return {task: tuple(float(p) for p in getattr(self, task)) for task in TASKS}


@runtime_checkable
class EmotionPredictor(Protocol):
    """Anything that predicts :class:`Components` for (dialogue, target therapist-turn index) pairs."""

    def predict(self, items: Sequence[tuple[Dialogue, int]]) -> list[Components]: ...
