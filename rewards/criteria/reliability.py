"""Reliability: a consistent, specific reply about the client's own utterance and situation, not vague filler or self-contradiction."""

from __future__ import annotations

import re
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
    normalise,
    topic_similarity,
    unsupported_people,
    unsupported_specifics,
    valence_clash,
)
from rewards.criteria.learned import LearnedTerm
from rewards.registry import register

__all__ = [
    "LEARNED",
    "MAX_CLAUSES",
    "RELIABILITY_EXEMPLARS",
    "WEIGHTS",
    "features",
    "reliability",
    "self_contradiction",
]

RELIABILITY_EXEMPLARS = Exemplars(
    good=(
        "It sounds like the argument with your sister about your dad's care has left you feeling stuck. What happened last time?",
        "Waiting for the test results until Friday sounds hard. How are you getting through the days?",
        "You mentioned the move has made it harder to sleep. When did you first notice that?",
        "Since the divorce, focusing at work has been difficult for you. What helps, even a little?",
        "What was going through your mind right before the panic started?",
        "It might help to call the bank first and cancel the card, then retrace your steps.",
        "Earlier you said you felt invisible at home. Is that what happened again this weekend?",
        "Can you tell me about a recent time this happened?",
    ),
    poor=(
        "Things happen. It is what it is.",
        "Everything happens for a reason.",
        "Hmm, okay. I see.",
        "Life goes on, you know.",
        "It depends. Everyone is different. Hard to say.",
        "Yes and no. Maybe. Or not.",
        "That's nice. Anyway, how's the weather?",
        "Feelings are feelings. Things are things.",
        "Some people feel that way and some people don't.",
    ),
)

_FILLER = cues(
    "it is what it is",
    "everything happens for a reason",
    "things happen",
    "life goes on",
    "it depends",
    "hard to say",
    "who knows",
    "mm-hmm",
    "hmm",
    "i see",
    "okay",
    "ok",
    "yes and no",
    "or not",
    "as they say",
    "you know how it is",
    "you know",
    "anyway",
    "either way",
    "go on",
    "interesting",
    r"whatever(?=\s*(?:[.!]|$))",
    r"some people (?:do|don't|feel)",
)
_NEGATION = re.compile(r"\b(?:not|no|never|don't|doesn't|isn't|aren't|didn't|won't|can't|shouldn't|n't|stop)\b", re.IGNORECASE)
_SWITCH = re.compile(
    r"[.!?] (?:no|actually|wait)\b|\b(?:or not|both are fine and neither|yes and no|but also|either way)\b|\b(?:yes|no)\. (?:no|yes)\b",
    re.IGNORECASE,
)
_STOPWORDS = frozenset(
    """a an the and or but so to of in on at for with from about into over than then as is are was were be been being it its this that
    these those you your you're i i'm me my we our he she they them his her their do does did have has had can could would should
    will what how when where why who which there here just also really very some any all more most much""".split()
)


def _content(clause: str) -> frozenset[str]:
    words = re.findall(r"[a-z']+", _NEGATION.sub(" ", clause.lower()))
    return frozenset(w for w in words if w not in _STOPWORDS and len(w) > 2)


#: Self-contradiction compares the first this-many clauses of a reply pairwise (the cost is bounded for any reply).
MAX_CLAUSES = 60


def self_contradiction(replies: Sequence[str]) -> np.ndarray:
    """1.0 where two sentences of a reply say the same thing with opposite polarity, or it flips ("Actually stay").

    Only the first :data:`MAX_CLAUSES` clauses are compared (each tokenised once), so a pathological reply of
    thousands of sentences costs no more than a long ordinary one.
    """
    out = has(_SWITCH, replies)
    for i, reply in enumerate(replies):
        clauses = [c for c in re.split(r"[.!?;]+|\bbut\b|\bthough\b", reply) if c.strip()][:MAX_CLAUSES]
        parsed = [(_content(c), bool(_NEGATION.search(c))) for c in clauses]
        for a in range(len(parsed)):
            for b in range(a + 1, len(parsed)):
                (ca, na), (cb, nb) = parsed[a], parsed[b]
                if na != nb and ca and cb and len(ca & cb) / len(ca | cb) >= 0.5:
                    out[i] = 1.0
                    break
            if out[i]:
                break
    return out


def _repetition(replies: Sequence[str]) -> np.ndarray:
    """Share of a reply's content words that repeat an earlier one (``Kids are hard. Parenting is hard.``)."""
    out = np.zeros(len(replies))
    for i, reply in enumerate(replies):
        words = [w for w in re.findall(r"[a-z']+", reply.lower()) if w not in _STOPWORDS and len(w) > 2]
        out[i] = 1.0 - len(set(words)) / len(words) if words else 0.0
    return out


def _overlap(contexts: Sequence[Context], replies: Sequence[str]) -> np.ndarray:
    """How many of the client's content words (prefix-matched, so "remarried" ~ "remarriage") the reply picks up, capped at 3."""
    out = np.zeros(len(replies))
    for i, (ctx, reply) in enumerate(zip(contexts, replies)):
        said = {w[:5] for w in _content(" ".join([ctx.client_utterance, ctx.situation or ""]))}
        out[i] = min(3.0, len(said & {w[:5] for w in _content(reply)}))
    return out


WEIGHTS = {
    "bias": 0.0,
    "exemplars": 4.0,
    "topic": 2.0,
    "client_words": 0.3,
    "filler": -1.5,
    "repetition": -3.0,
    "self_contradiction": -2.5,
    "wrong_valence": -2.0,
    "too_short": -1.5,
    "unsupported_specifics": -0.5,
    "unsupported_people": -0.5,
    "fit": 3.0,
}


def features(contexts: Sequence[Context], replies: Sequence[str], model: str | None = CRITERIA_MODEL) -> dict[str, np.ndarray]:
    """The reliability features of each reply (see :data:`WEIGHTS`)."""
    replies = [normalise(r) for r in replies]
    return {
        "exemplars": RELIABILITY_EXEMPLARS.margin(replies, model),
        "topic": topic_similarity(contexts, replies, model),
        "client_words": _overlap(contexts, replies),
        "filler": has(_FILLER, replies),
        "repetition": _repetition(replies),
        "self_contradiction": self_contradiction(replies),
        "wrong_valence": valence_clash([c.client_emotion for c in contexts], replies),
        "too_short": np.array([len(r.split()) < 4 for r in replies], dtype=float),
        "unsupported_specifics": unsupported_specifics(contexts, replies),
        "unsupported_people": unsupported_people(contexts, replies),
        "fit": context_fit(contexts, replies),
    }


#: The fitted probe term (``learned=False`` scores with the hand-weighted features alone).
LEARNED = LearnedTerm("reliability", features, WEIGHTS)


@register("reliability", version="8", score_range=(0.0, 1.0))
def reliability(
    contexts: Sequence[Context], replies: Sequence[str], *, model: str | None = CRITERIA_MODEL, learned: bool = True
) -> list[float]:
    """Reliability in [0, 1]: on-topic and specific to the client's utterance and situation, consistent, not filler.

    Features: the reply's specificity to this conversation (``fit``, from :mod:`rewards.context_fit`, the
    largest weight), similarity to specific vs vague exemplars, semantic and lexical closeness to the
    client utterance (or situation), vague filler phrases, repeated words, self-contradiction, a reply
    of the wrong valence for the client's emotion, very short replies, and names, numbers, dates or people
    (by role: "your wife") the conversation never mentioned (invented details).

    >>> from rewards.base import Context
    >>> ctx = Context("I'm nervous about my thesis defense next Tuesday.", gold_client_emotion="fear")
    >>> specific, vague = reliability([ctx, ctx], ["What part of Tuesday's defense worries you most?", "Things happen. It is what it is."])
    >>> specific > vague + 0.1
    True
    """
    return distilled.criterion_scores("reliability", WEIGHTS, features, LEARNED, contexts, replies, model=model, learned=learned)
