"""The seven trust criteria as offline local scorers; importing this package registers all of them.

One module per criterion, each registering a batch function ``fn(contexts, replies, *, model=None)``
that returns scores in [0, 1] under the criterion's name (``get_reward("safety")``). All of them
share one memoised sentence encoder (``rewards.embeddings``), so a batch is embedded once.
"""

from __future__ import annotations

from rewards.criteria import empathy, ethical_guidance, fairness, privacy, reliability, safety, truthfulness

from mmrl.labels import TRUST_CRITERIA as CRITERIA  # each is also the name of its module and of its reward

__all__ = ["CRITERIA", "empathy", "ethical_guidance", "fairness", "privacy", "reliability", "safety", "truthfulness"]
