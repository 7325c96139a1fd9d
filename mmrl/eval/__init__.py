"""Evaluation: reports, comparisons, monitors and probes over policy replies.

- :mod:`mmrl.eval.metrics`: parse rate, component accuracy/F1, BLEU-2/ROUGE/METEOR/embedding similarity, trust scores.
- :mod:`mmrl.eval.policies`: the policy under evaluation (transformers model or OpenAI-compatible endpoint).
- :mod:`mmrl.eval.compare`: prompts -> completions -> report (JSON shape in its docstring); several policies compared.
- :mod:`mmrl.eval.report`: Markdown, CSV and PNG writers.
- :mod:`mmrl.eval.monitors`: reward-hacking monitors.
- :mod:`mmrl.eval.fairness`: counterfactual fairness probe.
- :mod:`mmrl.eval.cli`: ``mmrl eval`` and ``mmrl compare``.

Submodules import their heavy dependencies lazily; import them directly.
"""
