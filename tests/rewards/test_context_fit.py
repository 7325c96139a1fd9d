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
    assert reward.score_range == (0.0, 1.0) and reward.version == "3"


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


def test_sif_embeddings_weight_tokens_and_read_a_whole_long_history():
    """Uniform token weights give the plain static embedding; a zero weight removes a token; a long history segment is
    embedded whole (its latest words count), not cut at the model's 128 tokens; a wrong-sized weight table is a ConfigError."""
    from rewards.context_fit import sif_embed
    from rewards.embeddings import encoder

    static = encoder("static")
    size = static.static.vectors.shape[0]
    text = "My sister still won't speak to me."
    assert np.allclose(sif_embed([text], np.ones(size, np.float32)), static.encode([text]), atol=1e-6)
    weights = load_model().token_weights
    dropped = weights.copy()
    dropped[static.static.tokenizer("sister", add_special_tokens=False)["input_ids"]] = 0.0
    assert np.allclose(sif_embed(["my sister"], dropped), sif_embed(["my"], dropped), atol=1e-6)
    long = " ".join(["the weather was fine"] * 60)
    assert not np.allclose(sif_embed([f"{long} my sister"], weights), sif_embed([f"{long} my brother"], weights), atol=1e-4)
    denser = " ".join(["x1y2z3"] * 400) + " my sister"  # > 1,024 tokens: the oldest are dropped, the latest kept
    assert np.allclose(sif_embed([f"my brother {denser}"], weights), sif_embed([f"my cat {denser}"], weights), atol=1e-6)
    assert not np.allclose(sif_embed([f"{denser} and my brother"], weights), sif_embed([denser], weights), atol=1e-4)
    assert (weights[static.static.tokenizer.all_special_ids] == 0).all()  # [UNK] (emoji, say) weighs nothing
    assert np.allclose(sif_embed(["my sister \U0001f62d"], weights), sif_embed(["my sister"], weights), atol=1e-6)
    with pytest.raises(ConfigError, match="token weights"):
        sif_embed([text], np.ones(3, np.float32))


def test_the_batch_pmi_is_shared_and_read_only(monkeypatch):
    """``context_fit`` and the criteria's fit feature read one pmi per batch (the model computes it once); a new batch is
    computed afresh; the memoised arrays are read-only."""
    from rewards.context_fit import batch_pmi, word_buckets
    from rewards.criteria.common import FIT_BOUND, context_fit, logistic

    model = load_model()
    replies = ["Your sister hasn't spoken to you since the wedding?", "Can you tell me more about that?"]
    contexts = _CONTEXTS[:1] * 2
    expected = model.pmi(contexts, replies)
    module._LAST.clear()  # no earlier test's batch
    calls = []
    original = module.ContextFit.pmi
    monkeypatch.setattr(module.ContextFit, "pmi", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    scores = get_reward("context_fit")(contexts, replies).scores
    fit = context_fit(contexts, replies)
    pmi = batch_pmi(contexts, replies)
    assert len(calls) == 1 and not pmi.flags.writeable and np.allclose(pmi, expected)
    assert np.allclose(scores, logistic(model.scale * pmi + model.shift))
    assert np.allclose(fit, FIT_BOUND * np.tanh(model.scale * pmi / FIT_BOUND))
    assert np.allclose(batch_pmi(contexts, replies[::-1]), expected[::-1]) and len(calls) == 2
    assert not word_buckets(replies[0]).flags.writeable


def test_bad_reference_option_and_damaged_artefact_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="reference must be"):
        get_reward("context_fit", reference="nearby")(_CONTEXTS[:1], ["hi"])
    damaged = tmp_path / "context_fit.safetensors"
    damaged.write_bytes(b"not safetensors")
    with pytest.raises(ConfigError, match="mmrl rewards build --data"):
        load_model(damaged)
    assert len(FEATURES) == load_model().weights.shape[0]
    from safetensors.numpy import save_file

    old = tmp_path / "context_fit_v1.safetensors"  # an artefact from before the SIF token weights
    arrays = {k: v for k, v in load_model().arrays().items() if k != "token_weights"}
    save_file(arrays, str(old), metadata={"model": "static", "features": ",".join(FEATURES)})
    with pytest.raises(ConfigError, match="no SIF token weights.*mmrl rewards build --data"):
        load_model(old)


def test_an_empty_batch_scores_nothing():
    assert get_reward("context_fit")([], []).scores.shape == (0,)
    assert load_model().pmi([], [], reference="batch").shape == (0,)


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
