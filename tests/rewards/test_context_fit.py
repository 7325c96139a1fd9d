"""context_fit: the shipped model loads, specificity is exact in batch and corpus modes, generic replies sit in the
middle, a damaged artefact is a named ConfigError, and on real MESC the real reply beats replies of other dialogues."""

from __future__ import annotations

import doctest
import random

import numpy as np
import pytest

import rewards.context_fit as module
from mmrl.errors import ConfigError
from rewards.base import Context
from rewards.context_fit import FEATURES, load_model
from rewards.registry import get_reward

pytest.importorskip("sentence_transformers")

_CONTEXTS = [
    Context("My sister still won't speak to me since the wedding.", history=(("therapist", "How was the wedding?"),)),
    Context("I got fired on Friday and I haven't told my wife yet.", history=(("client", "Work has been awful."),)),
    Context("The new pills make me so sleepy I can't drive to the office.", situation="medication side effects"),
    Context("My son got into college but we cannot afford the tuition."),
]
_FITTING = [
    "Your sister hasn't spoken to you since the wedding?",
    "What makes it hard to tell your wife that you were fired?",
    "Have you talked to your doctor about the pills making you too sleepy to drive?",
    "Getting into college is big news, and the tuition is a real worry. What options have you looked at?",
]


def test_doctest_and_registration():
    assert doctest.testmod(module).failed == 0
    reward = get_reward("context_fit")
    assert reward.score_range == (0.0, 1.0) and reward.version == "1"


def test_batch_specificity_equals_the_mean_over_the_other_contexts():
    """The linear-sum shortcut of batch_features is exact: it equals averaging the features over every other context."""
    model = load_model()
    replies = _FITTING + ["Can you tell me more about that?"] * 4
    contexts = _CONTEXTS + _CONTEXTS
    fast = model.batch_features(contexts, replies)
    for i, reply in enumerate(replies):
        others = [c for c in _CONTEXTS if c.key() != contexts[i].key()]
        slow = model.features(others, [reply] * len(others)).mean(axis=0)
        assert np.allclose(fast[i], slow, atol=1e-9)


@pytest.mark.parametrize("reference", ["batch", "corpus"])
def test_fitting_reply_beats_generic_and_another_conversation(reference):
    """In each context its own reply wins over a generic one and over another conversation's."""
    model = load_model()
    generic = "I hear you. Can you tell me more about how that made you feel?"
    contexts = [*_CONTEXTS, *_CONTEXTS, *_CONTEXTS]  # every reply scored inside a batch of all four contexts
    replies = [*_FITTING, *[generic] * 4, *(_FITTING[(j + 1) % 4] for j in range(4))]
    pmi = model.pmi(contexts, replies, reference=reference).reshape(3, 4)
    assert np.all(pmi[0] > pmi[1]) and np.all(pmi[0] > pmi[2]), np.round(pmi, 3)


def test_generic_reply_scores_near_the_middle_whatever_the_context():
    scores = np.array(get_reward("context_fit")(_CONTEXTS, ["Can you tell me more about that?"] * len(_CONTEXTS)).scores)
    assert np.all(np.abs(scores - 0.5) < 0.15), scores


def test_appending_filler_does_not_raise_a_fitting_reply():
    reward = get_reward("context_fit", reference="corpus")
    padded = [f"{r} I am listening. Tell me more about how you are feeling right now." for r in _FITTING]
    assert np.all(reward(_CONTEXTS, padded).scores < reward(_CONTEXTS, _FITTING).scores)


def test_bad_reference_option_and_damaged_artefact_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="reference must be"):
        get_reward("context_fit", reference="nearby")(_CONTEXTS[:1], ["hi"])
    damaged = tmp_path / "context_fit.safetensors"
    damaged.write_bytes(b"not safetensors")
    with pytest.raises(ConfigError, match="mmrl rewards build --data"):
        load_model(damaged)
    assert len(FEATURES) == load_model().weights.shape[0]


def test_real_reply_beats_other_dialogues_on_mesc(mesc_corpus):
    """On MESC test turns (real reply >= 8 words) the real reply outscores one of another dialogue, and often all nine."""
    from rewards.probe import probe_contexts

    contexts = probe_contexts(mesc_corpus.split("test"))[:120]
    rng = random.Random(0)
    model = load_model()
    wins = hits = 0
    for context in contexts:
        others = [c.reference for c in rng.sample(contexts, 12) if c.dialogue_id != context.dialogue_id][:9]
        pmi = model.pmi([context] * (1 + len(others)), [context.reference, *others], reference="corpus")
        wins += int(pmi[0] > pmi[1])
        hits += int(pmi[0] > pmi[1:].max())
    print(f"context_fit on {len(contexts)} MESC test turns: beats other {wins / len(contexts):.3f}, recall@1 {hits / len(contexts):.3f}")
    assert wins / len(contexts) >= 0.75 and hits / len(contexts) >= 0.4
