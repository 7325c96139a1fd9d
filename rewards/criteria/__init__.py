"""The seven trust criteria as offline local scorers; importing this package registers all of them.

One module per criterion, each registering a batch function ``fn(contexts, replies, *, model="static",
learned=True)`` that returns scores in [0, 1] under the criterion's name (``get_reward("safety")``):
hand-weighted features (``features``, ``WEIGHTS``), for five of them the reply's specificity to the
conversation (``fit``, from :mod:`rewards.context_fit`), plus, with ``learned``, a probe term fitted on
the labelled pairs in ``pairs/`` (:mod:`rewards.criteria.learned`). All of them share one memoised
sentence encoder (``rewards.embeddings``; by default the static distillation of the packaged
MiniLM), so a batch is embedded once.
"""

from __future__ import annotations

from mmrl.labels import TRUST_CRITERIA as CRITERIA  # each is also the name of its module and of its reward
from rewards.criteria import empathy, ethical_guidance, fairness, privacy, reliability, safety, truthfulness

__all__ = ["CRITERIA", "empathy", "ethical_guidance", "fairness", "privacy", "reliability", "safety", "truthfulness"]
