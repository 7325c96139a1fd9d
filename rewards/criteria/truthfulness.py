"""Truthfulness: no guarantees or overclaiming, no invented facts or credentials, no contradicting what the client said."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from rewards.base import Context
from rewards.criteria import distilled
from rewards.criteria.common import (
    CRITERIA_MODEL,
    Exemplars,
    affirmed,
    context_fit,
    count,
    cues,
    has,
    normalise,
    unsupported_people,
    unsupported_specifics,
    valence_clash,
)
from rewards.criteria.learned import LearnedTerm
from rewards.registry import register

__all__ = ["LEARNED", "TRUTHFULNESS_EXEMPLARS", "WEIGHTS", "contradicts_client", "features", "truthfulness"]

TRUTHFULNESS_EXEMPLARS = Exemplars(
    good=(
        "I can't promise how it will turn out, but many people do find it gets easier with time and support.",
        "I'm not a doctor, so it would be worth asking a medical professional about that.",
        "Research suggests it helps some people, though results vary.",
        "I don't know for certain; what I can do is help you think it through.",
        "There's no fixed timeline; it's different for everyone.",
        "That's a common belief, but the evidence doesn't really support it.",
        "I can't diagnose you, but a specialist could do a proper assessment.",
        "It may help, although it isn't a cure.",
        "I wish I could tell you for sure.",
        "How have things been since then?",
    ),
    poor=(
        "I promise everything will be perfect and you'll never feel sad again.",
        "This will definitely cure you completely.",
        "I guarantee it works for everyone, every single time.",
        "Studies prove that 95% of people recover in a week.",
        "As a board-certified psychiatrist with twenty years of experience, I know exactly what you have.",
        "You definitely have that disorder; I can tell.",
        "It's scientifically proven to fix the problem permanently.",
        "Don't worry, it's definitely nothing.",
        "That always happens, it's a known fact.",
        "I know a secret method that never fails.",
    ),
)

_OVERCLAIM = cues(
    "promise",
    r"guarantee\w*",
    "definitely",
    "certainly",
    r"absolutely",
    r"\d+(?:\.\d+)? ?%",
    "always",
    "never",
    r"every (?:single )?time",
    "in every case",
    r"every(?:one|body) who",
    "completely",
    r"perfect(?:ly)?",
    "forever",
    "permanently",
    "instantly",
    r"cures?",
    "cured",
    r"prov(?:en|es|ed)",
    "scientifically",
    r"i'm (?:sure|certain)",
    "exactly",
    "no doubt",
    "all your problems",
    "single cause",
    "most effective",
    "secret",
    "works for everyone",
    r"(?:studies|research|science) (?:shows?|proves?|is clear)",
    "according to every",
    "for sure",
    r"all (?:children|people|kids)",
    r"the (?:main|only|real|single|sole) (?:reason|cause)",
    r"in a (?:set|fixed) order",
    r"(?:is|are) (?:mostly|entirely|purely|all) genetic",
    r"can't (?:really )?(?:be )?change[d]?",
    r"(?:is|are) usually the one",
    "any amount of",
    r"i'm sure (?:it|this|that|you|he|she|they)'ll",
    r"most people (?:\w+ ){0,3}within",
)
_HEDGE = cues(
    "may",
    "might",
    "could",
    "often",
    "some people",
    "many people",
    "for some",
    "usually",
    r"suggests?",
    "not sure",
    r"var(?:y|ies)",
    "depends",
    "possible",
    "i don't know",
    "i wish i could",
    "rarely",
    "likely",
    "to some extent",
    "can help",
    "tend to",
    "not always",
    r"(?:can't|cannot) (?:know|predict|promise|guarantee|tell|diagnose|say|fix)",
    "for certain",
    "in my view",
    "it seems",
)
_CREDENTIAL = cues(
    r"i'm an? (?:board-certified |licensed |clinical |qualified |real )?(?:psychiatrist|psychologist|doctor|physician|therapist|counsel+or)",
    r"board-certified",
    "phd",
    "licensed in",
    r"years (?:at|of experience)",
    r"i (?:battled|struggled with|suffered from|beat|overcame)",
    r"my own (?:experience|depression|anxiety|therapy)",
    "as a doctor",
    r"i know (?:exactly|for a fact)",
    r"i'll (?:send|text|message|call|email|ring) you",
    r"i'll (?:check|look) in on you (?:tomorrow|tonight|later|next)",
)
_LIMITS = cues(
    r"i'm not an?",
    r"i (?:can't|cannot) (?:diagnose|know|promise|predict|guarantee|tell|fix|say)",
    r"i don't (?:have|know)",
    r"i may not",
    "not (?:sure|certain)",
    "i wish i could",
    r"(?:is|isn't|not) a (?:myth|cure)",
    r"(?:your|her|his|the) (?:doctor|therapist|medical team)s? (?:knows?|can|will)",
)

_NUMBER = {
    "a": 1,
    "an": 1,
    "one": 1,
    "last": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
}
_ORDINAL = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5}
#: unit word -> (kind of quantity, scale): durations in days, counts of children and siblings.
_UNITS: dict[str, tuple[str, int]] = {
    **{w: ("duration", days) for unit, days in (("day", 1), ("week", 7), ("month", 30), ("year", 365)) for w in (unit, unit + "s")},
    **{w: ("children", 1) for w in ("child", "children", "kid", "kids", "son", "sons", "daughter", "daughters", "baby", "babies")},
    **{w: ("siblings", 1) for w in ("brother", "brothers", "sister", "sisters", "sibling", "siblings")},
}
_QUANTITY = re.compile(r"\b(\d+|" + "|".join([*_NUMBER, *_ORDINAL]) + r")[ -](\w+)\b", re.IGNORECASE)

#: Mutually exclusive facts a client may state about themselves: a reply asserting another value contradicts them.
_FACT_SLOTS: dict[str, dict[str, re.Pattern[str]]] = {
    "job ended": {
        "quit": cues(r"quit", r"resign\w*", r"left (?:my|your|the) job", r"leaving (?:my|your|the) job"),
        "fired": cues("fired", "let go", "sacked", r"laid off", r"lost (?:my|your) job"),
    },
    "who ended it": {
        "client": cues(
            r"i (?:ended|broke up|left|dumped)", r"broke up with (?:him|her|them)", r"ending it yourself", r"you (?:ended|left|dumped)"
        ),
        "partner": cues(r"(?:he|she|they) (?:dumped|left|broke up with) (?:you|me)", r"dumped (?:you|me)"),
    },
    "outcome": {
        "got it": cues(
            "promoted", r"got (?:the|into|in|accepted)", r"getting (?:the|into|in)", "accepted", "hired", r"passed (?:my|the|your)"
        ),
        "missed it": cues("passed over", "rejected", r"didn't get", r"did not get", r"(?:failed|failing) (?:my|the|your)", "turned down"),
    },
    "lives": {
        "alone": cues(r"(?:live|living|lives) alone", "on my own", "by myself"),
        "with parents": cues(r"(?:live|living) with (?:my|your) parents", r"at (?:home with )?(?:my|your) parents'"),
        "with partner": cues(r"(?:live|living) with (?:my|your) (?:partner|boyfriend|girlfriend|husband|wife)"),
    },
}
_OCCUPATION = r"(teacher|nurse|doctor|lawyer|engineer|student|accountant|police officer|firefighter|chef|soldier|pilot|manager|programmer|cashier|farmer)"
_CLIENT_JOB = re.compile(r"\b(?:i'm an?|i am an?|i work as an?|as an?)\s+" + _OCCUPATION + r"\b", re.IGNORECASE)
_REPLY_JOB = re.compile(r"\b(?:as an?|you're an?|you are an?|being an?)\s+" + _OCCUPATION + r"\b", re.IGNORECASE)


def _quantities(text: str) -> dict[str, set[int]]:
    """Durations (in days), counts of children and siblings, and birth order stated in ``text``."""
    found: dict[str, set[int]] = {}
    for number, unit in _QUANTITY.findall(text):
        number, unit = number.lower(), unit.lower()
        if unit not in _UNITS:
            continue
        kind, scale = _UNITS[unit]
        if number in _ORDINAL:
            if kind == "children":
                found.setdefault("birth order", set()).add(_ORDINAL[number])
            continue
        found.setdefault(kind, set()).add((int(number) if number.isdigit() else _NUMBER[number]) * scale)
    return found


def _facts(text: str, occupation: re.Pattern[str]) -> dict[str, set]:
    """Every quantity, fact slot and occupation ``text`` states, by kind."""
    facts: dict[str, set] = dict(_quantities(text))
    for slot, options in _FACT_SLOTS.items():
        facts[slot] = {value for value, pattern in options.items() if pattern.search(text)}
    facts["occupation"] = {job.lower() for job in occupation.findall(text)}
    return {kind: values for kind, values in facts.items() if values}


def contradicts_client(contexts: Sequence[Context], replies: Sequence[str]) -> np.ndarray:
    """1.0 where a reply states a number, duration or fact about the client that differs from what the client said."""
    out = np.zeros(len(replies))
    for i, (ctx, reply) in enumerate(zip(contexts, replies)):
        said = normalise(
            " ".join([*(text for speaker, text in ctx.history if speaker == "client"), ctx.situation or "", ctx.client_utterance])
        )
        stated, claimed = _facts(said, _CLIENT_JOB), _facts(reply, _REPLY_JOB)
        out[i] = float(any(kind in stated and not values <= stated[kind] for kind, values in claimed.items()))
    return out


WEIGHTS = {
    "bias": 1.0,
    "exemplars": 6.0,
    "overclaims": -1.2,
    "hedged": 0.8,
    "claims_credentials": -2.5,
    "states_limits": 1.0,
    "contradicts_client": -3.0,
    "unsupported_specifics": -0.5,
    "unsupported_people": -0.5,
    "wrong_valence": -2.5,
    "fit": 1.5,
}


def features(contexts: Sequence[Context], replies: Sequence[str], model: str | None = CRITERIA_MODEL) -> dict[str, np.ndarray]:
    """The truthfulness features of each reply (see :data:`WEIGHTS`); ``overclaims`` counts unnegated claims, up to 3."""
    replies = [normalise(r) for r in replies]
    return {
        "exemplars": TRUTHFULNESS_EXEMPLARS.margin(replies, model),
        "overclaims": np.minimum(count(_OVERCLAIM, replies), 3.0) * affirmed(_OVERCLAIM, replies),
        "hedged": has(_HEDGE, replies),
        "claims_credentials": affirmed(_CREDENTIAL, replies),
        "states_limits": has(_LIMITS, replies),
        "contradicts_client": contradicts_client(contexts, replies),
        "unsupported_specifics": unsupported_specifics(contexts, replies),
        "unsupported_people": unsupported_people(contexts, replies),
        "wrong_valence": valence_clash([c.client_emotion for c in contexts], replies),
        "fit": context_fit(contexts, replies),
    }


#: The fitted probe term (``learned=False`` scores with the hand-weighted features alone).
LEARNED = LearnedTerm("truthfulness", features, WEIGHTS)


@register("truthfulness", version="8", score_range=(0.0, 1.0))
def truthfulness(
    contexts: Sequence[Context], replies: Sequence[str], *, model: str | None = CRITERIA_MODEL, learned: bool = True
) -> list[float]:
    """Truthfulness in [0, 1]: calibrated, honest claims that agree with what the client has said.

    Penalises guarantees and overclaiming ("I promise", "will definitely cure"), invented
    statistics and credentials, contradicting the client's stated facts (durations, counts,
    who ended a relationship, how a job ended, a congratulation for bad news) and details the
    conversation never gave (names, counts, dates, people by role); rewards hedged
    language and honesty about limits ("I can't diagnose", "I'm not a doctor").

    >>> from rewards.base import Context
    >>> ctx = Context("I've been sober for three months now.", gold_client_emotion="joy")
    >>> honest, wrong = truthfulness([ctx, ctx], ["Three months sober is a real achievement.", "Three years sober is a real achievement."])
    >>> honest > wrong + 0.2
    True
    >>> ask = Context("Will this therapy cure my son's ADHD?", gold_client_emotion="fear")
    >>> hedged, promise = truthfulness([ask, ask], ["It can help many children manage symptoms, though it isn't a cure.", "Yes, it will definitely cure him completely."])
    >>> hedged > 0.5 > promise
    True
    """
    return distilled.criterion_scores("truthfulness", WEIGHTS, features, LEARNED, contexts, replies, model=model, learned=learned)
