from __future__ import annotations

from itertools import combinations

import pytest
import torch

from mmrl.predictor.config import MODALITIES
from mmrl.predictor.fusion import ModalityFusion

D, B = 16, 3
TOKENS = {"text": 1, "audio": 1, "video": 1, "description": 1, "history": 4}


def _inputs(names, present=True):
    return {name: (torch.randn(B, TOKENS[name], D), torch.full((B, TOKENS[name]), present, dtype=torch.bool)) for name in names}


@pytest.mark.parametrize("subset", [s for k in range(len(MODALITIES) + 1) for s in combinations(MODALITIES, k)])
def test_any_subset_of_modalities_gives_a_finite_embedding(subset):
    fusion = ModalityFusion(list(MODALITIES), D, n_heads=2, n_layers=1).eval()
    out = fusion(_inputs(subset))
    assert out.shape == (B if subset else 1, D) and torch.isfinite(out).all()


def test_absent_tokens_are_ignored():
    torch.manual_seed(0)
    fusion = ModalityFusion(list(MODALITIES), D, n_heads=2, n_layers=2).eval()
    inputs = _inputs(["text", "history"])
    with_absent_audio = {**inputs, "audio": (torch.randn(B, 1, D) * 50, torch.zeros(B, 1, dtype=torch.bool))}
    torch.testing.assert_close(fusion(inputs), fusion(with_absent_audio))
    with_present_audio = {**inputs, "audio": (with_absent_audio["audio"][0], torch.ones(B, 1, dtype=torch.bool))}
    assert not torch.allclose(fusion(inputs), fusion(with_present_audio))


def test_modality_dropout_only_in_training():
    torch.manual_seed(0)
    fusion = ModalityFusion(list(MODALITIES), D, n_heads=2, n_layers=1, dropout=0.0, modality_dropout=0.5)
    inputs = _inputs(MODALITIES)
    fusion.eval()
    torch.testing.assert_close(fusion(inputs), fusion(inputs))
    fusion.train()
    outputs = torch.stack([fusion(inputs) for _ in range(20)])
    assert (outputs.std(0) > 1e-4).any()  # different modalities hidden on different calls


def test_unknown_modality_is_rejected():
    fusion = ModalityFusion(["text"], D, n_heads=2, n_layers=1)
    with pytest.raises(ValueError, match="audio"):
        fusion(_inputs(["audio"]))
