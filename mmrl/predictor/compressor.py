"""ConvCompressor: 1-D convolutions that squeeze the dialogue history into a few memory tokens.

The history (the turns before the most recent client turn; never the target turn) arrives as
``max_history_turns`` right-aligned slots, the most recent turn last. Each slot is its turn's text
embedding plus learned embeddings of its speaker, its position and, optionally, its labels (the
client's emotion; the therapist's emotion and strategy): these are the system's own past, so they
are allowed. A stack of stride-2 convolutions builds a temporal pyramid; memory token ``j`` is the
most recent position of level ``j`` (it summarises about the last ``2 ** (j + 1)`` turns) and the
last token pools the coarsest level over the whole window. Recent turns thus stay sharp while
older ones are summarised, in exactly ``memory_tokens`` tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmrl.data.schema import Turn
from mmrl.labels import EMOTIONS, STRATEGIES

__all__ = ["ConvCompressor", "token_reduction"]


class ConvCompressor(nn.Module):
    """``(B, L, text_dim)`` history slots + ids + mask -> ``(B, memory_tokens, d_model)`` tokens + mask.

    Label ids use ``len(EMOTIONS)`` / ``len(STRATEGIES)`` for "none" (client turns have no
    strategy; a turn may lack a label). With ``use_labels=False`` labels are ignored.
    """

    def __init__(
        self, text_dim: int, d_model: int, *, max_turns: int = 32, memory_tokens: int = 4, use_labels: bool = True, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.max_turns, self.memory_tokens, self.use_labels = max_turns, memory_tokens, use_labels
        self.text_proj = nn.Linear(text_dim, d_model)
        self.speaker = nn.Embedding(2, d_model)
        self.emotion = nn.Embedding(len(EMOTIONS) + 1, d_model)
        self.strategy = nn.Embedding(len(STRATEGIES) + 1, d_model)
        self.position = nn.Parameter(torch.zeros(max_turns, d_model))
        self.local = nn.Conv1d(d_model, d_model, kernel_size=3, padding=1)
        self.downsample = nn.ModuleList(nn.Conv1d(d_model, d_model, kernel_size=3, stride=2, padding=1) for _ in range(memory_tokens - 1))
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        text: torch.Tensor,
        speaker: torch.Tensor,
        emotion: torch.Tensor,
        strategy: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return memory tokens ``(B, memory_tokens, d_model)`` and their presence mask ``(B, memory_tokens)``."""
        slots = self.text_proj(text) + self.speaker(speaker) + self.position
        if self.use_labels:
            slots = slots + self.emotion(emotion) + self.strategy(strategy)
        present = mask.float().unsqueeze(1)  # (B, 1, L)
        hidden = F.gelu(self.local(self.dropout(slots).transpose(1, 2) * present)) * present  # (B, d, L)
        tokens, token_present = [], []
        for conv in self.downsample:
            tokens.append(hidden[..., -1])
            token_present.append(present[:, 0, -1])
            hidden = F.gelu(conv(hidden))
            present = F.max_pool1d(present, kernel_size=3, stride=2, padding=1)
            hidden = hidden * present
        tokens.append(hidden.sum(-1) / present.sum(-1).clamp_min(1.0))
        token_present.append(present.amax(-1)[:, 0])
        return self.norm(torch.stack(tokens, dim=1)), torch.stack(token_present, dim=1) > 0


def token_reduction(histories: Sequence[Sequence[Turn]], count_tokens: Callable[[str], int], memory_tokens: int) -> dict:
    """Compare feeding each history as text tokens with the compressor's ``memory_tokens`` tokens.

    ``count_tokens`` is the text model's tokenizer length (e.g. ``len(tokenizer(text).input_ids)``).
    Histories that are empty cost no memory tokens (the fusion masks them out).
    """
    text_tokens = np.array([sum(count_tokens(turn.text) for turn in history) for history in histories], dtype=float)
    memory = np.array([memory_tokens if history else 0 for history in histories], dtype=float)
    total_text, total_memory = float(text_tokens.sum()), float(memory.sum())
    return {
        "examples": len(histories),
        "mean_history_text_tokens": float(text_tokens.mean()) if len(histories) else 0.0,
        "max_history_text_tokens": float(text_tokens.max()) if len(histories) else 0.0,
        "memory_tokens": memory_tokens,
        "mean_memory_tokens": float(memory.mean()) if len(histories) else 0.0,
        "reduction_factor": total_text / total_memory if total_memory else float("inf"),
        "fraction_removed": 1.0 - total_memory / total_text if total_text else 0.0,
    }
