"""The reward contract: a Context per therapist turn, a RewardBatch per call, the Reward protocol."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from mmrl.data.schema import Dialogue
from mmrl.errors import MmrlError
from mmrl.labels import EMOTIONS, STRATEGIES

__all__ = ["Context", "RewardBatch", "Reward", "RewardError", "OnFailure", "scored_mean"]

OnFailure = Literal["record", "raise"]


class RewardError(MmrlError):
    """A reward could not score and the user asked for ``on_failure="raise"``."""


@dataclass(frozen=True)
class Context:
    """What a reward sees of the conversation at one therapist turn.

    ``history`` is ``(speaker, text)`` pairs before the client utterance; ``gold_*`` are dataset
    labels (None when unknown); ``predicted`` maps ``client_emotion`` / ``therapist_emotion`` /
    ``strategy`` to probability vectors over ``EMOTIONS`` / ``STRATEGIES`` from the emotion predictor.
    """

    client_utterance: str
    history: tuple[tuple[str, str], ...] = ()
    situation: str | None = None
    problem_type: str | None = None
    video_description: str | None = None
    gold_client_emotion: str | None = None
    gold_therapist_emotion: str | None = None
    gold_strategy: str | None = None
    predicted: Mapping[str, tuple[float, ...]] | None = None
    reference: str | None = None
    dialogue_id: str | None = None
    turn_index: int | None = None

    @classmethod
    def from_dialogue(cls, dialogue: Dialogue, index: int, predicted: Mapping[str, Sequence[float]] | None = None) -> Context:
        """The context of therapist turn ``index``: everything before it, its labels and its reply."""
        history, client, target = dialogue.context_at(index)
        return cls(
            client_utterance=client.text if client else "",
            history=tuple((t.speaker, t.text) for t in history),
            situation=dialogue.situation,
            problem_type=dialogue.problem_type,
            video_description=client.video_description if client else None,
            gold_client_emotion=client.emotion if client else None,
            gold_therapist_emotion=target.emotion,
            gold_strategy=target.strategy,
            predicted=None if predicted is None else {k: tuple(float(p) for p in v) for k, v in predicted.items()},
            reference=target.text,
            dialogue_id=dialogue.id,
            turn_index=index,
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Context:
        """A Context from its fields as JSON holds them: ``history`` as ``[speaker, text]`` pairs, ``predicted`` as lists.

        A missing ``client_utterance`` or an unknown field is a TypeError naming it.
        """
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(f"unknown Context field {unknown[0]!r}")
        values = dict(data)
        values["history"] = tuple((str(speaker), str(text)) for speaker, text in values.get("history") or ())
        if values.get("predicted") is not None:
            values["predicted"] = {k: tuple(float(p) for p in v) for k, v in values["predicted"].items()}
        return cls(**values)

    @property
    def client_emotion(self) -> str | None:
        """The predicted client emotion when a predictor ran, else the gold label."""
        if self.predicted and "client_emotion" in self.predicted:
            return EMOTIONS[int(np.argmax(self.predicted["client_emotion"]))]
        return self.gold_client_emotion

    @property
    def strategy(self) -> str | None:
        """The predicted strategy when a predictor ran, else the gold label."""
        if self.predicted and "strategy" in self.predicted:
            return STRATEGIES[int(np.argmax(self.predicted["strategy"]))]
        return self.gold_strategy

    def key(self) -> str:
        """A stable hash of every field (for caches)."""
        payload = asdict(self)
        payload["predicted"] = None if self.predicted is None else dict(sorted(self.predicted.items()))
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class RewardBatch:
    """Scores of one reward on a batch: NaN where it could not score, with the reason in ``failures``."""

    scores: np.ndarray
    failures: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float64)
        for index in self.failures:
            self.scores[index] = math.nan
        unexplained = [i for i in np.flatnonzero(np.isnan(self.scores)) if int(i) not in self.failures]
        if unexplained:
            raise MmrlError(f"reward returned NaN without a reason at indices {unexplained[:5]}")

    @classmethod
    def failed(cls, n: int, reason: str) -> RewardBatch:
        return cls(np.full(n, math.nan), {i: reason for i in range(n)})

    @property
    def ok(self) -> np.ndarray:
        return ~np.isnan(self.scores)


@runtime_checkable
class Reward(Protocol):
    """A named, versioned scorer of ``(contexts, replies)`` batches with a documented ``score_range``."""

    name: str
    version: str
    score_range: tuple[float, float]

    def __call__(self, contexts: Sequence[Context], replies: Sequence[str]) -> RewardBatch: ...


def scored_mean(values: Sequence[float] | np.ndarray) -> float:
    """The mean of the scored (non-NaN) ``values``: a failed score is left out, never counted as 0; NaN when none is scored."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan
