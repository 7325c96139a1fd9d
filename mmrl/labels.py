"""Label sets: the single source of truth for emotions, strategies and DFEW classes."""

from __future__ import annotations

import difflib

from mmrl.errors import DataError

__all__ = [
    "EMOTIONS",
    "STRATEGIES",
    "DFEW_CLASSES",
    "TRUST_CRITERIA",
    "normalise_emotion",
    "normalise_strategy",
    "normalise_dfew",
]

#: The 7 MESC emotions, for client and therapist alike (index order is the model's class order).
EMOTIONS: tuple[str, ...] = ("neutral", "depression", "anger", "disgust", "joy", "sadness", "fear")

#: The 10 MESC therapist strategies.
STRATEGIES: tuple[str, ...] = (
    "Interpretation",
    "Open question",
    "Self-disclosure",
    "Restatement",
    "Approval",
    "Communication Skills",
    "Advisement",
    "Guiding the Pace and Depth of the Conversation",
    "Structuring the therapy",
    "Others",
)

#: DFEW's 7 classes; official label ids are 1..7 in this order.
DFEW_CLASSES: tuple[str, ...] = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")


#: The seven MultiMood trust criteria, in the paper's order (reward names and judge criteria).
TRUST_CRITERIA: tuple[str, ...] = (
    "truthfulness",
    "safety",
    "fairness",
    "privacy",
    "empathy",
    "reliability",
    "ethical_guidance",
)


def _normaliser(kind: str, labels: tuple[str, ...]):
    by_key = {" ".join(label.lower().replace("-", " ").split()): label for label in labels}

    def normalise(value: object, **where) -> str:
        if not isinstance(value, str):
            raise DataError(f"expected a {kind} label string, got {type(value).__name__} {value!r}", **where)
        key = " ".join(value.strip().lower().replace("-", " ").split())
        if key in by_key:
            return by_key[key]
        close = difflib.get_close_matches(value, labels, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(f"unknown {kind} {value!r}; expected one of {list(labels)}{hint}", **where)

    normalise.__name__ = f"normalise_{kind.replace(' ', '_')}"
    normalise.__doc__ = f"Return the canonical {kind} for ``value`` (case/spacing noise fixed) or raise DataError."
    return normalise


normalise_emotion = _normaliser("emotion", EMOTIONS)
normalise_strategy = _normaliser("strategy", STRATEGIES)
normalise_dfew = _normaliser("DFEW class", DFEW_CLASSES)
