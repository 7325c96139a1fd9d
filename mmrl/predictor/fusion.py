"""Cross-modal attention fusion over modality tokens, with a presence mask and modality dropout.

Each modality contributes one or more ``d_model`` tokens (text, audio, video, video description:
one each; history: the ConvCompressor's memory tokens). A learned fusion token attends with them
through a small transformer encoder in which absent tokens are masked out of every attention;
its output is the fused embedding. Any subset of modalities, including none, is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["ModalityFusion"]


class ModalityFusion(nn.Module):
    """``{modality: (tokens (B, n, d), present (B, n))}`` -> fused embedding ``(B, d)``.

    In training, each present modality of each example is hidden with probability
    ``modality_dropout`` (all its tokens together), so the model learns to do without any of them.
    """

    def __init__(
        self,
        modalities: list[str],
        d_model: int,
        *,
        n_heads: int = 4,
        n_layers: int = 2,
        dropout: float = 0.1,
        modality_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.modality_dropout = modality_dropout
        self.type_embedding = nn.ParameterDict({m: nn.Parameter(torch.randn(d_model) * 0.02) for m in self.modalities})
        self.fusion_token = nn.Parameter(torch.randn(d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=2 * d_model, dropout=dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, inputs: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        unknown = [m for m in inputs if m not in self.type_embedding]
        if unknown:
            raise ValueError(f"fusion got modalities {unknown} it was not built for ({self.modalities})")
        batch = next(iter(inputs.values()))[0].shape[0] if inputs else 1
        tokens = [self.fusion_token.expand(batch, 1, -1)]
        present = [torch.ones(batch, 1, dtype=torch.bool, device=self.fusion_token.device)]
        for name in self.modalities:
            if name not in inputs:
                continue
            modality_tokens, modality_present = inputs[name]
            if self.training and self.modality_dropout > 0:
                kept = torch.rand(batch, 1, device=modality_present.device) >= self.modality_dropout
                modality_present = modality_present & kept
            tokens.append(modality_tokens + self.type_embedding[name])
            present.append(modality_present.bool())
        hidden = self.encoder(torch.cat(tokens, dim=1), src_key_padding_mask=~torch.cat(present, dim=1))
        return self.norm(hidden[:, 0])
