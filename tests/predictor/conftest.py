"""Shared fixtures: one synthetic corpus and one text-embedding cache per session (MiniLM loads at most once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrl.data import Dialogue, load_corpus
from mmrl.data.synth import generate
from mmrl.predictor.config import PredictorConfig
from mmrl.predictor.encoders import TextEmbeddingCache

#: Dialogues in the session's synthetic corpus (about 90 target turns held out in val + test).
SYNTH_DIALOGUES = 100


@pytest.fixture(scope="session")
def text_cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("text-cache")


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory, text_cache_dir) -> Path:
    """The synthetic corpus, its texts already in the session's embedding cache."""
    out = generate(tmp_path_factory.mktemp("synth"), n_dialogues=SYNTH_DIALOGUES, seed=0)
    texts = [turn.text for dialogue in load_corpus(out, "synth").dialogues for turn in dialogue.turns]
    TextEmbeddingCache(PredictorConfig().text_model, text_cache_dir).embed(texts)
    return out


@pytest.fixture(scope="session")
def synth(synth_dir) -> list[Dialogue]:
    return load_corpus(synth_dir, "synth").dialogues


def split(dialogues: list[Dialogue], name: str) -> list[Dialogue]:
    return [d for d in dialogues if d.split == name]


@pytest.fixture
def tiny_config(text_cache_dir):
    """A factory of small, fast configs sharing the session's text cache."""

    def make(**overrides) -> PredictorConfig:
        values = {
            "d_model": 32,
            "n_heads": 2,
            "n_layers": 1,
            "n_frames": 4,
            "frame_size": 32,
            "max_history_turns": 8,
            "memory_tokens": 2,
            "epochs": 3,
            "patience": 2,
            "learning_rate": 1e-3,
            "cache_dir": str(text_cache_dir),
        }
        return PredictorConfig(**{**values, **overrides})

    return make
