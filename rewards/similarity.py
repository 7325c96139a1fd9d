"""Reference similarity: how close the reply is in meaning to the dataset's own therapist reply."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rewards.base import Context, RewardBatch
from rewards.embeddings import encoder
from rewards.registry import register

__all__ = ["NO_REFERENCE", "similarity"]

#: The failure reason where a context carries no reference reply.
NO_REFERENCE = "no reference reply"


@register("similarity", version="1", score_range=(0.0, 1.0))
def similarity(contexts: Sequence[Context], replies: Sequence[str], *, model: str | None = None) -> RewardBatch:
    """Reference similarity in [0, 1]: cosine of the reply's and ``ctx.reference``'s sentence embeddings, clipped at 0.

    ``model`` names any sentence-transformers model (hub id or local dir; default the packaged
    all-MiniLM-L6-v2). A context without a reference fails (NaN, reason "no reference reply"),
    never 0. Unrelated sentences land near 0.1, paraphrases above 0.7.

    >>> from rewards.base import Context
    >>> ctx = Context("I lost my job today.", reference="Losing your job must be a real shock.")
    >>> batch = similarity([ctx, ctx, Context("Hi.")], ["That must be such a shock, losing your job.", "I like pizza.", "Hello."])
    >>> bool(batch.scores[0] > 0.6 > 0.2 > batch.scores[1]), batch.failures
    (True, {2: 'no reference reply'})
    """
    scores = np.full(len(replies), np.nan)
    scorable = [i for i, ctx in enumerate(contexts) if ctx.reference and ctx.reference.strip()]
    if scorable:
        embed = encoder(model).encode
        cosines = np.einsum("ij,ij->i", embed([replies[i] for i in scorable]), embed([contexts[i].reference for i in scorable]))
        scores[scorable] = np.clip(cosines, 0.0, 1.0)
    return RewardBatch(scores, {i: NO_REFERENCE for i in sorted(set(range(len(replies))) - set(scorable))})
