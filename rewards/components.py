"""Rewards on the policy's raw structured block: component match, format and reply length.

All three read the completion (``reads="completion"``), parsed with :func:`mmrl.policy.prompts.parse_output`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mmrl.errors import ConfigError
from mmrl.policy.prompts import OUTPUT_FIELDS, parse_output
from rewards.base import Context, RewardBatch
from rewards.registry import register

__all__ = ["MESC_REPLY_WORDS", "NO_GOLD", "component_match", "format_reward", "length", "length_score"]

#: The failure reason where a context has none of the three gold component labels.
NO_GOLD = "no gold component labels"

#: Default preferred reply length in words: MESC therapist turns (consecutive rows merged) have a
#: median of 8 words, quartiles 5 and 16, and a 90th percentile of 30.
MESC_REPLY_WORDS = (5, 30)


@register("component_match", version="1", score_range=(0.0, 1.0), reads="completion")
def component_match(contexts: Sequence[Context], replies: Sequence[str]) -> RewardBatch:
    """Share of the stated components (client emotion, therapist emotion, strategy) equal to the context's gold labels.

    Only gold labels that exist count. A component the output lacks or misspells is a wrong answer
    (it scores 0), not a failure; a context with no gold label at all fails ("no gold component labels").

    >>> from rewards.base import Context
    >>> ctx = Context("I feel so alone.", gold_client_emotion="sadness", gold_therapist_emotion="neutral", gold_strategy="Restatement")
    >>> block = "Client emotion: sadness\\nTherapist emotion: neutral\\nStrategy: Open question\\nReply: You feel alone?"
    >>> batch = component_match([ctx, ctx, Context("Hi.")], [block, "You feel alone?", block])
    >>> [round(float(s), 3) for s in batch.scores[:2]], batch.failures
    ([0.667, 0.0], {2: 'no gold component labels'})
    """
    scores = np.full(len(replies), np.nan)
    failures: dict[int, str] = {}
    for i, (ctx, text) in enumerate(zip(contexts, replies)):
        parsed = parse_output(text)
        pairs = [
            (gold, stated)
            for gold, stated in (
                (ctx.gold_client_emotion, parsed.client_emotion),
                (ctx.gold_therapist_emotion, parsed.therapist_emotion),
                (ctx.gold_strategy, parsed.strategy),
            )
            if gold is not None
        ]
        if not pairs:
            failures[i] = NO_GOLD
            continue
        scores[i] = sum(stated is not None and stated.lower() == gold.lower() for gold, stated in pairs) / len(pairs)
    return RewardBatch(scores, failures)


@register("format", version="1", score_range=(0.0, 1.0), reads="completion")
def format_reward(contexts: Sequence[Context], replies: Sequence[str]) -> list[float]:
    """Format in [0, 1]: 1.0 for a block that parses fully, else the share of its four fields that parse.

    >>> format_reward([Context("Hi.")] * 3, ["Client emotion: joy\\nTherapist emotion: joy\\nStrategy: Approval\\nReply: Great!", "Strategy: Approval\\nReply: Great!", "Great!"])
    [1.0, 0.5, 0.0]
    """
    out = []
    for text in replies:
        parsed = parse_output(text)
        found = (parsed.client_emotion, parsed.therapist_emotion, parsed.strategy, parsed.reply)
        out.append(sum(value is not None for value in found) / len(OUTPUT_FIELDS))
    return out


def length_score(words: int, min_words: int, max_words: int) -> float:
    """1.0 inside ``[min_words, max_words]``; ``(words / min_words) ** 2`` below; ``exp(-2 ((words - max) / max) ** 2)`` above.

    >>> [round(length_score(n, 5, 30), 2) for n in (0, 3, 5, 30, 45, 60)]
    [0.0, 0.36, 1.0, 1.0, 0.61, 0.14]
    """
    if words < min_words:
        return (words / min_words) ** 2
    if words > max_words:
        return math.exp(-2.0 * ((words - max_words) / max_words) ** 2)
    return 1.0


@register("length", version="1", score_range=(0.0, 1.0), reads="completion")
def length(
    contexts: Sequence[Context], replies: Sequence[str], *, min_words: int = MESC_REPLY_WORDS[0], max_words: int = MESC_REPLY_WORDS[1]
) -> list[float]:
    """Length in [0, 1]: prefers replies of ``min_words``..``max_words`` words (default 5..30, from MESC), smoothly.

    Counts the words of the parsed ``Reply:`` field, or of the whole completion when it has none.

    >>> scores = length([Context("Hi.")] * 3, ["Reply: That sounds really hard for you.", "Okay.", "Reply: " + "very " * 60])
    >>> [round(s, 3) for s in scores]
    [1.0, 0.04, 0.135]
    """
    if not 0 < min_words < max_words:
        raise ConfigError(f"length needs 0 < min_words < max_words, got min_words={min_words}, max_words={max_words}")
    counts = [len((parse_output(text).reply or text).split()) for text in replies]
    return [length_score(n, min_words, max_words) for n in counts]
