"""Empathy: does the reply reflect and validate what the client feels, rather than dismiss, minimise or lecture?"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rewards.base import Context
from rewards.criteria import distilled
from rewards.criteria.common import (
    CRITERIA_MODEL,
    Exemplars,
    context_fit,
    cues,
    has,
    names_emotion,
    names_other_emotion,
    normalise,
    topic_similarity,
    valence_clash,
)
from rewards.criteria.learned import LearnedTerm
from rewards.registry import register

__all__ = ["LEARNED", "EMPATHY_EXEMPLARS", "WEIGHTS", "empathy", "features"]

EMPATHY_EXEMPLARS = Exemplars(
    good=(
        "It sounds like you've been carrying a lot of pain, and it makes sense that you feel this way.",
        "I'm so sorry. Losing someone you love is heartbreaking.",
        "That must have been really frightening for you.",
        "Of course you're upset; anyone would be after being treated like that.",
        "It sounds like you feel hurt and let down by someone you trusted.",
        "I can hear how exhausted you are, and your feelings are completely valid.",
        "That sounds incredibly hard, and I'm glad you told me.",
        "It's understandable to feel anxious when so much is uncertain.",
        "What wonderful news! You must feel so proud of yourself.",
        "It sounds like part of you feels guilty, and that shows how much you care.",
        "You've been through so much; no wonder you feel worn down.",
        "That must be so lonely, feeling like no one really sees you.",
        "I hear how angry you are, and that anger makes sense given what happened.",
        "It sounds like you're being very hard on yourself right now.",
        "Thank you for telling me. Can you tell me more about how that felt for you?",
    ),
    poor=(
        "Calm down, it's not a big deal.",
        "You're overreacting. Just get over it.",
        "At least it wasn't worse. Some people have it much harder than you.",
        "Stop worrying so much and move on.",
        "Well, you should have seen that coming.",
        "Look on the bright side and cheer up.",
        "That's life. Everyone goes through this.",
        "You need to toughen up and stop being so sensitive.",
        "It's your own fault, so there's no point complaining.",
        "Crying about it won't change anything.",
        "You need to do better. Research shows you are making mistakes.",
        "There's nothing to be scared of, it's silly.",
        "Okay. Anyway, what else is new?",
        "It was only a small thing, you can easily replace it.",
    ),
)

_DISMISSIVE = cues(
    "calm down",
    "get over it",
    r"(?:not|no) (?:such )?a big deal",
    r"stop (?:worrying|complaining|being|crying|needing)",
    "at least",
    r"you should(?:n't)? have",
    r"overreact\w*",
    "too sensitive",
    r"(?:it's|it was|is) (?:just|only) a",
    "could be worse",
    "cheer up",
    "bright side",
    "plenty (?:more|of) fish",
    "move on",
    "no reason to be",
    "nothing to be (?:scared|afraid|worried)",
    "toughen up",
    "thicker skin",
    "everyone (?:feels|gets|lies|goes)",
    "(?:these|such) things happen",
    "don't be so",
    "you're being dramatic",
    "what did you do",
    "overrated",
    "all the time",
    "stop thinking",
    r"won't change anything",
    "you knew",
)
_VALIDATING = cues(
    "makes sense",
    r"understandabl[ey]",
    r"must (?:be|have been|feel|have felt|have)",
    r"sounds? (?:like|really|so|incredibly|very|infuriating|frustrating|hurtful|exhausting|painful|frightening)",
    r"i'm (?:so |really )?sorry",
    r"i can (?:hear|see|imagine)",
    r"(?:it's|that's|is) (?:natural|normal|okay) to",
    "of course you",
    "no wonder",
    "valid",
    "i'm glad you",
    "it seems like",
    "how are you (?:feeling|holding|coping|doing)",
)


WEIGHTS = {
    "bias": -0.5,
    "exemplars": 9.0,
    "names_emotion": 1.0,
    "names_other_emotion": -1.0,
    "wrong_valence": -2.5,
    "validating": 1.0,
    "dismissive": -1.5,
    "topic": 2.0,
    "fit": 1.0,
}


def features(contexts: Sequence[Context], replies: Sequence[str], model: str | None = CRITERIA_MODEL) -> dict[str, np.ndarray]:
    """The empathy features of each reply (see :data:`WEIGHTS`)."""
    replies = [normalise(r) for r in replies]
    emotions = [c.client_emotion for c in contexts]
    dismissive = has(_DISMISSIVE, replies)
    return {
        "exemplars": EMPATHY_EXEMPLARS.margin(replies, model),
        "names_emotion": names_emotion(emotions, replies),
        "names_other_emotion": names_other_emotion(emotions, replies),
        "wrong_valence": valence_clash(emotions, replies),
        "validating": has(_VALIDATING, replies) * (1.0 - dismissive),  # validation beside a dismissal earns nothing
        "dismissive": dismissive,
        "topic": topic_similarity(contexts, replies, model),
        "fit": context_fit(contexts, replies),
    }


#: The fitted probe term (``learned=False`` scores with the hand-weighted features alone).
LEARNED = LearnedTerm("empathy", features, WEIGHTS)


@register("empathy", version="8", score_range=(0.0, 1.0))
def empathy(
    contexts: Sequence[Context], replies: Sequence[str], *, model: str | None = CRITERIA_MODEL, learned: bool = True
) -> list[float]:
    """Empathy in [0, 1]: reflects and validates the client's feelings (their emotion, their story) without dismissing them.

    Features: similarity to validating vs dismissing exemplars, naming the client's emotion
    (``ctx.client_emotion``), a reply of the wrong valence (condolences for good news), dismissive
    and validating phrases, how closely the reply engages with the client's own words, and its
    specificity to this conversation (``fit``: sympathy that would fit anyone reads as not listening).

    >>> from rewards.base import Context
    >>> ctx = Context("My dog died yesterday. He was with me for 14 years.", gold_client_emotion="sadness")
    >>> warm, cold = empathy([ctx, ctx], ["I'm so sorry. Fourteen years together; of course your heart aches.", "It was just a dog. Get another one."])
    >>> warm > cold + 0.1
    True
    """
    return distilled.criterion_scores("empathy", WEIGHTS, features, LEARNED, contexts, replies, model=model, learned=learned)
