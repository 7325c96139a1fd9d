"""DialogueGRU: a causal GRU over the dialogue's turns that predicts the therapist's next strategy.

Strategies follow one another in patterns (an open question, then a restatement, then approval...)
that a bag of dialogue-state cues over frozen features misses. The GRU reads the history slots oldest
first — each turn's text embedding, its speaker and its own labels (client emotion; therapist emotion
and strategy: the system's past, so allowed) — then the most recent client turn (text embedding and
surface cues, no label), and predicts the target turn's strategy from its last state and the client
turn's input.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from mmrl.labels import EMOTIONS, STRATEGIES
from mmrl.predictor.features import CLIENT_STATE_DIM, HISTORY_STATE_DIM, Batch

__all__ = ["DialogueGRU"]


class DialogueGRU(nn.Module):
    """History slots + client turn of a :class:`Batch` -> strategy logits ``(B, strategies)``.

    ``drop`` hides modalities as in the fusion: ``"history"`` leaves only the client turn, ``"text"``
    blanks the client turn's text and surface cues.
    """

    def __init__(self, text_dim: int, d: int, *, dropout: float = 0.3) -> None:
        super().__init__()
        self.text = nn.Sequential(nn.Dropout(dropout / 3), nn.Linear(text_dim, d), nn.LayerNorm(d))
        self.speaker = nn.Embedding(2, d)
        self.emotion = nn.Embedding(len(EMOTIONS) + 1, d)
        self.strategy = nn.Embedding(len(STRATEGIES) + 1, d)
        self.client = nn.Linear(CLIENT_STATE_DIM, d)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(d, d, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * d, len(STRATEGIES)))

    def forward(self, batch: Batch, drop: Iterable[str] = ()) -> torch.Tensor:
        drop = set(drop)
        history_turns = (batch.history_present & ("history" not in drop)).sum(1)
        client_text = (batch.text_present & ("text" not in drop)).float().unsqueeze(1)
        history = (
            self.text(batch.history_text)
            + self.speaker(batch.history_speaker)
            + self.emotion(batch.history_emotion)
            + self.strategy(batch.history_strategy)
        )  # (B, L, d), right-aligned
        client = (
            self.text(batch.text) * client_text
            + self.speaker.weight[0]
            + self.client(batch.state[:, HISTORY_STATE_DIM:] * client_text)
            + self.emotion.weight[-1]
            + self.strategy.weight[-1]
        )  # (B, d): the client turn, its labels unknown
        turns = torch.cat([history, client.unsqueeze(1)], dim=1)  # (B, L + 1, d)
        slots = history.shape[1]
        # left-align each example's present turns (its last history_turns slots, then the client turn) for packing
        first = (slots - history_turns).unsqueeze(1)
        order = (torch.arange(slots + 1).unsqueeze(0) + first).clamp(max=slots)
        turns = turns.gather(1, order.unsqueeze(-1).expand(-1, -1, turns.shape[-1]))
        packed = pack_padded_sequence(self.dropout(turns), (history_turns + 1).cpu(), batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed)
        return self.head(torch.cat([last[-1], client], dim=-1))
