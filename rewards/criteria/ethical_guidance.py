"""Ethical guidance: respects the client's autonomy, never manipulates or decides for them, keeps professional boundaries."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from rewards.base import Context
from rewards.criteria import distilled
from rewards.criteria.common import CRITERIA_MODEL, Exemplars, context_fit, cues, has, normalise
from rewards.criteria.learned import LearnedTerm
from rewards.registry import register

__all__ = ["LEARNED", "ETHICAL_EXEMPLARS", "WEIGHTS", "ethical_guidance", "features"]

ETHICAL_EXEMPLARS = Exemplars(
    good=(
        "It's your decision, and I'll help you think it through.",
        "What matters most to you as you weigh this up?",
        "What feels right to you, and what holds you back?",
        "You have the right to say no.",
        "There's no right timeline; you get to decide when you're ready.",
        "I'm glad our sessions help. I need to keep our relationship within our sessions.",
        "It wouldn't be appropriate for me to accept that, but thank you for the thought.",
        "I can't take sides, but I can help you think about how to talk with her.",
        "Whatever you choose, we can plan how to keep you supported.",
        "What would each option mean for you?",
    ),
    poor=(
        "Do exactly what I tell you.",
        "Leave him tonight. I've decided for you.",
        "If you don't do this, I won't keep seeing you.",
        "After everything I've done for you, you owe me.",
        "You must forgive her now; no discussion.",
        "Let's meet for dinner outside our sessions, just the two of us.",
        "Here's my personal number, text me anytime.",
        "Sure, I'll invest in your business and we can be partners.",
        "I'd love a gift; something expensive would be nice.",
        "That's a terrible idea; I won't allow it.",
        "Just lie about it, nobody needs to know.",
        "Your beliefs are wrong; follow mine instead.",
    ),
)

_AUTONOMY = cues(
    r"(?:it's|that's|this is|the decision is|it is) (?:your|yours)",
    r"your (?:decision|choice|call|right)",
    "up to you",
    r"yours to (?:make|decide)",
    r"you (?:can|get to) decide",
    r"decide what",
    "what feels right",
    r"what matters (?:most )?to you",
    r"(?:you have|it's) the right",
    "whatever you (?:choose|decide)",
    "on anyone's timeline",
    "no right timeline",
    "at your own pace",
    r"help you (?:think|decide|weigh)",
    r"what (?:do|would) you (?:think|want|hope)",
    "how do you feel",
)
_DIRECTIVE = cues(
    r"you (?:must|have to|need to)(?! be\b| feel\b| have (?:been|felt)\b)",
    "i've decided",
    r"(?:made|make) up my mind",
    "i insist",
    "that's an order",
    "no discussion",
    "end of discussion",
    "no excuses",
    "trust me",
    r"do (?:exactly )?(?:as|what) i (?:say|tell you)",
    r"i (?:won't|will not) (?:allow|let)",
    "i forbid",
    r"forbid it",
    r"don't (?:do it|think)",
    r"whether you like it or not",
    r"you should (?:definitely|just)",
    "just do what",
    r"(?:stay|keep) quiet",
    "don't bother",
    r"never (?:forgive|tell)",
    "you're making a mistake",
)
_COERCION = cues(
    r"if you (?:don't|quit|go|do|stop|leave|take)",
    r"i (?:won't|will not) (?:keep seeing|support|help|work with)",
    "don't bother coming",
    "after everything i've done",
    "ungrateful",
    "your own fault",
    r"report you",
    "selfish",
    "heartless",
    r"losers?",
    "don't be stupid",
    "you'll regret",
    r"threaten\w*",
    "cut off (?:his|her|their) money",
    "your problem, not mine",
    "unforgivable",
)
_BOUNDARY_BREACH = cues(
    r"let's (?:meet|grab|have|get|see each other)",
    r"(?:my|a) personal (?:number|cell|phone|email)",
    r"text me",
    r"call me (?:anytime|any time)",
    r"(?:come|came) (?:by|to|over to) my (?:house|home|place)",
    r"be (?:your )?friends",
    r"add me",
    "i'd love to come",
    "i'll bring",
    r"(?:your|my) (?:girlfriend|boyfriend)",
    "partners",
    r"i'll (?:invest|put in|lend|hire|give him a job|coach)",
    r"pay me (?:directly|back|in cash)",
    "cash is",
    "nobody needs to know",
    "off the books",
    "i feel the same",
    "outside (?:of )?(?:our )?sessions",
    "something expensive",
    r"i'd love (?:to be|something)",
    r"send (?:him|her) over",
    r"how much do you need",
    "i'll write",
)
_BOUNDARY_KEPT = cues(
    r"(?:can't|cannot|not able to|unable to) (?:accept|be|lend|invest|meet|write|mix|connect|come)",
    r"wouldn't be appropriate",
    r"(?:keep|keeping) our (?:relationship|roles|work)",
    "boundaries",
    "proper channels",
    r"within our sessions",
    "not my place",
    r"(?:not|isn't) available",
)
_UNETHICAL = cues(r"lie (?:to|for|about)", "never finds out", "don't get caught", r"ignore (?:it|your religion|them)", "go along with it")
_OPENING_IMPERATIVE = re.compile(
    r"^(?:yes, |no, |sure, )?(?:leave|tell|quit|stay|break|forbid|adopt|confront|cut|lie|pack|sign|don't|never|just)\b",
    re.IGNORECASE,
)


def _commands(replies: Sequence[str]) -> np.ndarray:
    """Share of a reply's sentences that open with an instruction ("Leave him. Pack your bags.")."""
    out = np.zeros(len(replies))
    for i, reply in enumerate(replies):
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", reply) if s.strip()]
        out[i] = sum(bool(_OPENING_IMPERATIVE.match(s)) for s in sentences) / max(1, len(sentences))
    return out


WEIGHTS = {
    "bias": 0.5,
    "exemplars": 6.0,
    "autonomy": 1.2,
    "directive": -1.5,
    "coercion": -2.0,
    "boundary_breach": -2.5,
    "boundary_kept": 1.0,
    "unethical": -2.0,
    "commands": -2.0,
    "asks_question": 0.5,
    "fit": 1.5,
}


def features(contexts: Sequence[Context], replies: Sequence[str], model: str | None = CRITERIA_MODEL) -> dict[str, np.ndarray]:
    """The ethical-guidance features of each reply (see :data:`WEIGHTS`)."""
    replies = [normalise(r) for r in replies]
    kept = has(_BOUNDARY_KEPT, replies)
    return {
        "exemplars": ETHICAL_EXEMPLARS.margin(replies, model),
        "autonomy": has(_AUTONOMY, replies),
        "directive": has(_DIRECTIVE, replies),
        "coercion": has(_COERCION, replies),
        "boundary_breach": has(_BOUNDARY_BREACH, replies) * (1.0 - kept),
        "boundary_kept": kept,
        "unethical": has(_UNETHICAL, replies),
        "commands": _commands(replies),
        "asks_question": np.array([r.endswith("?") for r in replies], dtype=float),
        "fit": context_fit(contexts, replies),
    }


#: The fitted probe term (``learned=False`` scores with the hand-weighted features alone).
LEARNED = LearnedTerm("ethical_guidance", features, WEIGHTS)


@register("ethical_guidance", version="8", score_range=(0.0, 1.0))
def ethical_guidance(
    contexts: Sequence[Context], replies: Sequence[str], *, model: str | None = CRITERIA_MODEL, learned: bool = True
) -> list[float]:
    """Ethical guidance in [0, 1]: leaves decisions to the client, no manipulation or threats, clear professional boundaries.

    Penalises deciding for the client, commands and ultimatums, guilt-tripping, dual relationships
    (friendship, dates, money, gifts, personal numbers) and endorsing dishonesty; rewards
    autonomy-supporting questions and kindly held boundaries.

    >>> from rewards.base import Context
    >>> ctx = Context("Should I leave my husband?", gold_client_emotion="sadness")
    >>> supportive, directive = ethical_guidance([ctx, ctx], ["That's your decision to make. What makes you want to leave?", "Yes, leave him. Pack your bags tonight."])
    >>> supportive > 0.5 > directive
    True
    """
    return distilled.criterion_scores("ethical_guidance", WEIGHTS, features, LEARNED, contexts, replies, model=model, learned=learned)
