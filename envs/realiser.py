"""Realisers for Strategy-v0: turn a chosen support strategy into the therapist reply the rewards score.

A realiser is any callable ``realiser(contexts, strategies) -> replies`` (:class:`Realiser`); the built-in
:class:`RetrievalRealiser` returns the real train-split reply of that strategy whose context is nearest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from mmrl.data.schema import Dialogue, require_train
from mmrl.errors import ConfigError, DataError
from mmrl.labels import STRATEGIES, normalise_strategy
from rewards.base import Context
from rewards.embeddings import encoder

__all__ = ["IndexEntry", "Realiser", "RetrievalRealiser", "context_text"]


def context_text(context: Context) -> str:
    """The text a context is retrieved by: the client utterance, else the latest history turn, else the situation."""
    if context.client_utterance.strip():
        return context.client_utterance
    if context.history:
        return context.history[-1][1]
    return context.situation or ""


@runtime_checkable
class Realiser(Protocol):
    """Writes the therapist reply for a chosen strategy: ``realiser(contexts, strategies) -> replies``.

    A reply of None means "could not realise" (a failure, never an empty reply). A realiser whose
    ``deterministic`` attribute is True gives the same reply for the same (context, strategy), so the
    env computes every outcome once, up front; any other (e.g. an LLM) is called at every step.
    """

    def __call__(self, contexts: Sequence[Context], strategies: Sequence[str]) -> Sequence[str | None]: ...


@dataclass(frozen=True)
class IndexEntry:
    """One therapist reply of the retrieval index: where it comes from and its gold strategy."""

    dialogue_id: str
    split: str
    turn_index: int
    strategy: str
    reply: str


class RetrievalRealiser:
    """The real train-split therapist reply of the chosen strategy whose context is closest to the query's.

    Every labelled target turn of the train dialogues is indexed by the sentence embedding of its
    :func:`context_text`; a query takes, among entries of the chosen strategy, the one of highest
    cosine similarity (ties: the first indexed). The query's own turn is never returned, and with
    ``exclude_own_dialogue`` (default) neither is any turn of its dialogue unless no other dialogue
    has a reply of that strategy, so a train episode does not get its own replies back. Val/test
    dialogues are refused for the index; a strategy without any entry gives None (a failure).

    Args:
        dialogues: train-split dialogues to index.
        model: sentence-transformers model (None: the packaged all-MiniLM-L6-v2).
        exclude_own_dialogue: prefer entries of other dialogues than the query's (default True).
    """

    deterministic = True

    def __init__(self, dialogues: Sequence[Dialogue], *, model: str | None = None, exclude_own_dialogue: bool = True) -> None:
        dialogues = require_train(dialogues, "the retrieval realiser's index")
        entries, keys = [], []
        for dialogue in dialogues:
            for index in dialogue.target_indices():
                target = dialogue.turns[index]
                if target.strategy is not None and target.text.strip():
                    entries.append(IndexEntry(dialogue.id, dialogue.split, index, target.strategy, target.text))
                    keys.append(context_text(Context.from_dialogue(dialogue, index)))
        if not entries:
            raise DataError("the retrieval realiser needs train dialogues with labelled therapist turns; got none")
        self.entries: tuple[IndexEntry, ...] = tuple(entries)
        self.model, self.exclude_own_dialogue = model, exclude_own_dialogue
        self._encoder = encoder(model)
        self._keys = self._encoder.encode(keys)
        self._strategies = np.array([STRATEGIES.index(e.strategy) for e in entries])
        self._dialogues = np.array([e.dialogue_id for e in entries])
        self._turns = np.array([e.turn_index for e in entries])

    def nearest(self, contexts: Sequence[Context], strategies: Sequence[str], *, chunk: int = 1024) -> list[int | None]:
        """Index into :attr:`entries` of each query's reply (None: no entry of that strategy)."""
        if len(contexts) != len(strategies):
            raise ConfigError(f"got {len(contexts)} contexts but {len(strategies)} strategies")
        wanted = np.array([STRATEGIES.index(normalise_strategy(s, field="strategy")) for s in strategies], dtype=np.int64)
        out: list[int | None] = []
        for start in range(0, len(contexts), chunk):
            part = contexts[start : start + chunk]
            similarity = self._encoder.encode([context_text(c) for c in part]) @ self._keys.T
            allowed = self._strategies[None, :] == wanted[start : start + chunk, None]
            own = self._dialogues[None, :] == np.array([c.dialogue_id or "" for c in part])[:, None]
            allowed &= ~(own & (self._turns[None, :] == np.array([-1 if c.turn_index is None else c.turn_index for c in part])[:, None]))
            if self.exclude_own_dialogue:
                others = allowed & ~own
                allowed = np.where(others.any(axis=1, keepdims=True), others, allowed)
            best = np.argmax(np.where(allowed, similarity, -np.inf), axis=1)
            out.extend(int(b) if ok else None for b, ok in zip(best, allowed.any(axis=1)))
        return out

    def __call__(self, contexts: Sequence[Context], strategies: Sequence[str]) -> list[str | None]:
        return [None if i is None else self.entries[i].reply for i in self.nearest(contexts, strategies)]

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_encoder"}  # the process-wide encoder is not copied

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._encoder = encoder(self.model)

    def __repr__(self) -> str:
        return f"RetrievalRealiser({len(self.entries)} train replies, model={self.model or 'packaged MiniLM'!r})"
