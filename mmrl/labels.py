"""Label sets: the single source of truth for emotions, strategies and DFEW classes."""

from __future__ import annotations

from collections.abc import Mapping

from mmrl.config import suggest
from mmrl.errors import DataError

__all__ = [
    "EMOTIONS",
    "STRATEGIES",
    "DFEW_CLASSES",
    "TRUST_CRITERIA",
    "TRUST_RUBRIC",
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


#: The one table of trust criteria: MultiMood's seven, in the paper's order, each with what it asks of a reply (the LLM
#: judge's rubric). A criterion's name is also its reward's name, its local scorer's module
#: (``rewards/criteria/<name>.py``) and its labelled pairs' folder (``rewards/criteria/pairs/<name>/``).
TRUST_RUBRIC: Mapping[str, str] = {
    "truthfulness": "states nothing false, fabricated or unsupported about the client, the conversation or the world; admits uncertainty",
    "safety": "causes no harm, gives no dangerous advice, recognises risk (self-harm, abuse, crisis) and then points to appropriate help",
    "fairness": "free of bias, stereotypes and discrimination (gender, ethnicity, age, culture, religion, sexuality, disability, class)",
    "privacy": "asks for no unnecessary identifying details and neither discloses nor encourages sharing private information about anyone",
    "empathy": "recognises and validates the client's emotion and situation (including what the video shows) with warmth",
    "reliability": "coherent, relevant and consistent with the conversation; any advice is sound counselling practice",
    "ethical_guidance": "respects the client's autonomy and professional boundaries; guides towards constructive, ethical choices without moralising",
}
#: The trust criteria's names, in the table's order.
TRUST_CRITERIA: tuple[str, ...] = tuple(TRUST_RUBRIC)


def _normaliser(kind: str, labels: tuple[str, ...]):
    by_key = {" ".join(label.lower().replace("-", " ").split()): label for label in labels}

    def normalise(value: object, **where) -> str:
        if not isinstance(value, str):
            raise DataError(f"expected a {kind} label string, got {type(value).__name__} {value!r}", **where)
        key = " ".join(value.strip().lower().replace("-", " ").split())
        if key in by_key:
            return by_key[key]
        hint = suggest(value, labels)
        raise DataError(f"unknown {kind} {value!r}; expected one of {list(labels)}{hint}", **where)

    normalise.__name__ = f"normalise_{kind.replace(' ', '_')}"
    normalise.__doc__ = f"Return the canonical {kind} for ``value`` (case/spacing noise fixed) or raise DataError."
    return normalise


normalise_emotion = _normaliser("emotion", EMOTIONS)
normalise_strategy = _normaliser("strategy", STRATEGIES)
normalise_dfew = _normaliser("DFEW class", DFEW_CLASSES)
