"""Fixtures of the env tests: the synthetic corpus (generated into a temporary cache, never downloaded) and small rewards."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrl.data import Corpus, load_corpus
from mmrl.data.synth import demo_corpus
from rewards.compose import Composite
from rewards.registry import FunctionReward


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """A private MMRL_CACHE holding the demo corpus."""
    return tmp_path_factory.mktemp("mmrl-cache")


@pytest.fixture(scope="session")
def corpus_dir(cache_dir) -> Path:
    """The default demo corpus (16 synthetic dialogues with wav + mp4), generated once per session."""
    return demo_corpus(cache_dir=cache_dir)


@pytest.fixture(scope="session")
def corpus(corpus_dir) -> Corpus:
    return load_corpus(corpus_dir)


@pytest.fixture
def default_cache(cache_dir, corpus_dir, monkeypatch) -> Path:
    """Point MMRL_CACHE at the session cache so default-constructed envs find the demo corpus."""
    monkeypatch.setenv("MMRL_CACHE", str(cache_dir))
    return cache_dir


def _length(contexts, replies):
    return [min(len(r), 100) / 100 for r in replies]


def _picky(contexts, replies):
    """Fails (raises) on replies containing FAIL; otherwise scores whether the reply names the client's emotion."""
    if any("FAIL" in r for r in replies):
        raise ValueError("cannot score a reply containing FAIL")
    return [float((c.client_emotion or "") in r.lower()) for c, r in zip(contexts, replies)]


def length_reward() -> FunctionReward:
    return FunctionReward(_length, name="length", version="1", score_range=(0.0, 1.0))


def picky_reward() -> FunctionReward:
    return FunctionReward(_picky, name="picky", version="1", score_range=(0.0, 1.0))


@pytest.fixture
def composite() -> Composite:
    """length (weight 1) + picky (weight 2); a failed picky score makes the total NaN."""
    return Composite([(length_reward(), 1.0), (picky_reward(), 2.0)])
