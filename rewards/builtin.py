"""Imports the modules whose ``@register`` calls define the built-in rewards (the registry imports this lazily)."""

from __future__ import annotations

import rewards.components  # noqa: F401  (component_match, format, length: they read the raw completion)
import rewards.context_fit  # noqa: F401  (context_fit: specificity of the reply to its conversation, learned from MESC)
import rewards.counterfactual  # noqa: F401  (counterfactual_fairness: criterion scores under demographic swaps)
import rewards.criteria  # noqa: F401  (the seven offline trust criteria, rewards.criteria.CRITERIA)
import rewards.cross_encoder  # noqa: F401  (cross_<criterion>: the seven criteria read by a fine-tuned cross-encoder, opt-in)
import rewards.fit_encoder  # noqa: F401  (cross_context_fit: context fit read by a MiniLM bi-encoder fine-tuned on MESC, opt-in)
import rewards.judge  # noqa: F401  (judge_<criterion>, one shared Judge call per reply)
import rewards.similarity  # noqa: F401  (similarity to the reference reply)

__all__: list[str] = []
