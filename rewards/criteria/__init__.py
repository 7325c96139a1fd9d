"""The seven trust criteria as offline local scorers; importing this package registers all of them.

One module per criterion, each registering a batch function ``fn(contexts, replies, *, model="static",
learned=True)`` that returns scores in [0, 1] under the criterion's name (``get_reward("safety")``).
With ``learned=True`` and the default embedding model, the score blends (¾) the mean output of three
small networks distilled from the cross-encoder (:mod:`rewards.criteria.distilled`), which read every
criterion's hand features, probe term and the static embeddings of the reply and the conversation, with
(¼) the criterion's hand-weighted features and probe term. With
``learned=False`` it is the criterion's hand-weighted features alone (``features``, ``WEIGHTS``; for
five of them the reply's specificity to the conversation, ``fit``, from :mod:`rewards.context_fit`);
with another embedding model, those plus a probe term fitted on the labelled pairs in ``pairs/``
(:mod:`rewards.criteria.learned`). All of them share one memoised sentence encoder
(``rewards.embeddings``; by default the static distillation of the packaged MiniLM), so a batch is
embedded once.
"""

from __future__ import annotations

import importlib

from mmrl.labels import (
    TRUST_CRITERIA as CRITERIA,  # each is also the name of its module and of its reward
)
from rewards.criteria.common import CRITERIA_MODEL

__all__ = ["CRITERIA", "MODULES"]

#: The scorer module of each criterion of ``mmrl.labels.TRUST_RUBRIC``, imported (and so registered) by name.
MODULES = {name: importlib.import_module(f"rewards.criteria.{name}") for name in CRITERIA}


def _state_digest(module):
    """What a criterion's scores depend on beyond its options: the distilled network (default model, ``learned``), else the
    probe key (features code, hand weights, pairs, context-fit model, embedding model), ``:hand`` marking ``learned=False``."""

    def digest(model=CRITERIA_MODEL, learned=True) -> str:
        from rewards.criteria.distilled import fingerprint, uses_network

        if uses_network(model, learned):
            return fingerprint()
        return module.LEARNED.key(model) if learned else module.LEARNED.key(model) + ":hand"

    return digest


for _name, _module in MODULES.items():
    getattr(_module, _name).state_digest = _state_digest(_module)
