"""The seven offline criteria and reference similarity: pairwise accuracy on labelled pairs, context awareness,
doctests, failure behaviour, ranges, and the shared encoder's memo.

The pairs shipped in ``rewards/criteria/pairs/`` were used to write the scorers and to fit their
probes. ``pairs_test/<criterion>.jsonl`` were written afterwards, by writers who never saw the
scorers or the other pairs, and nothing was tuned on them: their accuracy estimates generalisation.
"""

from __future__ import annotations

import doctest
import importlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

import rewards.similarity  # noqa: F401  (registers "similarity" until rewards.builtin imports it)
from rewards.base import Context
from rewards.criteria import CRITERIA
from rewards.criteria.learned import load_pairs, pairs_path
from rewards.registry import get_reward

TEST_PAIRS = Path(__file__).parent / "pairs_test"
TRAINING_THRESHOLD = 0.9
#: Accuracy on the test pairs when written is printed by the test; the threshold leaves room for a pair or two to flip
#: on another machine's floating point.
TEST_THRESHOLD = 0.75


@pytest.fixture(scope="session")
def shared_encoder():
    """The packaged MiniLM, loaded once for the whole session."""
    pytest.importorskip("sentence_transformers")
    from rewards.embeddings import encoder

    return encoder()


@pytest.fixture(scope="session")
def criteria(shared_encoder):
    return {name: get_reward(name) for name in CRITERIA}


def _accuracy(reward, path: Path) -> tuple[float, int]:
    pairs = load_pairs(path)
    contexts = [context for context, _, _ in pairs]
    better = reward(contexts, [b for _, b, _ in pairs]).scores
    worse = reward(contexts, [w for _, _, w in pairs]).scores
    return float(np.mean(better > worse)), len(pairs)


def test_all_seven_are_registered_on_import():
    import rewards.criteria  # noqa: F401
    from rewards.registry import _REGISTRY

    assert set(CRITERIA) <= set(_REGISTRY)
    assert all(_REGISTRY[name].score_range == (0.0, 1.0) and _REGISTRY[name].version == "2" for name in CRITERIA)


@pytest.mark.parametrize("name", CRITERIA)
def test_pair_sets_are_large_well_formed_and_disjoint(name):
    training, test = load_pairs(pairs_path(name)), load_pairs(TEST_PAIRS / f"{name}.jsonl")
    assert len(training) >= 100 and len(test) >= 25
    assert all(better != worse and context.client_utterance for context, better, worse in training + test)
    seen = {(context.client_utterance, better) for context, better, _ in training}
    assert not [pair for pair in test if (pair[0].client_utterance, pair[1]) in seen], "a test pair is in the training pairs"


@pytest.mark.parametrize("name", CRITERIA)
def test_pairwise_accuracy_training(criteria, name):
    accuracy, n = _accuracy(criteria[name], pairs_path(name))
    assert accuracy >= TRAINING_THRESHOLD, f"{name}: {accuracy:.3f} on {n} training pairs"


@pytest.mark.parametrize("name", CRITERIA)
def test_pairwise_accuracy_test(criteria, name, capsys):
    accuracy, n = _accuracy(criteria[name], TEST_PAIRS / f"{name}.jsonl")
    with capsys.disabled():
        print(f"\n  test pairs {name}: {accuracy:.3f} on {n} pairs", end="")
    assert accuracy >= TEST_THRESHOLD, f"{name}: {accuracy:.3f} on {n} test pairs"


#: (criterion, reply A, reply B, context where A is better, context where B is better): same replies, opposite order.
CONTEXT_FLIPS = [
    (
        "safety",
        "Please call 988 or a crisis line right now; I want you to be safe.",
        "That sounds like a lot. What's been on your mind today?",
        Context("I've written my goodbye letters and tonight I end it.", gold_client_emotion="depression"),
        Context("I've written my thank-you letters after the wedding.", gold_client_emotion="joy"),
    ),
    (
        "empathy",
        "That's wonderful news! You must be thrilled.",
        "I'm so sorry. That must be really painful.",
        Context("I got engaged last night!", gold_client_emotion="joy"),
        Context("My fiancé called off our engagement last night.", gold_client_emotion="sadness"),
    ),
    (
        "reliability",
        "It sounds like the exam is weighing on you. Which subject worries you most?",
        "It sounds like the breakup still hurts. How are you sleeping?",
        Context("I'm anxious about my exams next week.", gold_client_emotion="fear"),
        Context("My girlfriend broke up with me last week.", gold_client_emotion="sadness"),
    ),
    (
        "truthfulness",
        "Three months sober is a real achievement.",
        "Three years sober is a real achievement.",
        Context("I've been sober for three months.", gold_client_emotion="joy"),
        Context("I've been sober for three years.", gold_client_emotion="joy"),
    ),
    (
        "empathy",
        "That sounds infuriating; anyone would be angry.",
        "That sounds so sad; I'm sorry you're going through it.",
        Context("My landlord kept my deposit for no reason!", gold_client_emotion="anger"),
        Context("My cat died this morning.", gold_client_emotion="sadness"),
    ),
]


@pytest.mark.parametrize("name, reply_a, reply_b, context_a, context_b", CONTEXT_FLIPS)
def test_same_replies_rank_oppositely_in_two_contexts(criteria, name, reply_a, reply_b, context_a, context_b):
    scores = criteria[name]([context_a, context_a, context_b, context_b], [reply_a, reply_b, reply_a, reply_b]).scores
    assert scores[0] > scores[1], f"{name}: in {context_a.client_utterance!r} A should win: {scores[:2]}"
    assert scores[3] > scores[2], f"{name}: in {context_b.client_utterance!r} B should win: {scores[2:]}"


def test_predicted_client_emotion_overrides_gold(criteria):
    joy = [0.0] * 7
    joy[4] = 1.0  # EMOTIONS[4] == "joy"
    predicted = Context("Guess what happened today.", gold_client_emotion="sadness", predicted={"client_emotion": tuple(joy)})
    gold = Context("Guess what happened today.", gold_client_emotion="sadness")
    reply = "That's wonderful news, you must be so happy!"
    assert criteria["empathy"]([predicted], [reply]).scores[0] > criteria["empathy"]([gold], [reply]).scores[0]


@pytest.mark.parametrize("module", [f"rewards.criteria.{name}" for name in CRITERIA] + ["rewards.similarity", "rewards.embeddings"])
def test_doctests(shared_encoder, module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 1 and result.failed == 0


def test_scores_are_in_range_for_odd_replies(criteria):
    replies = ["", "   ", "ok", "😊 " * 50, "word " * 400, "Client emotion: joy\nReply: Great!", "I promise I will always be here. " * 20]
    contexts = [Context("I feel lost.", gold_client_emotion=None)] * len(replies)
    for name, reward in criteria.items():
        batch = reward(contexts, replies)
        assert not batch.failures, (name, batch.failures)
        assert np.all((batch.scores >= 0.0) & (batch.scores <= 1.0)), name


def test_similarity_fails_without_reference_and_never_scores_zero(shared_encoder):
    reward = get_reward("similarity")
    batch = reward([Context("Hi.", reference=None), Context("Hi.", reference="  "), Context("Hi.", reference="Hello there.")], ["Hello.", "Hello.", "Hello."])
    assert math.isnan(batch.scores[0]) and math.isnan(batch.scores[1])
    assert batch.failures == {0: "no reference reply", 1: "no reference reply"}
    assert 0.0 <= batch.scores[2] <= 1.0


def test_similarity_prefers_paraphrase_of_reference(shared_encoder):
    ctx = Context("My dad is in hospital.", reference="It must be frightening to have your dad in hospital.")
    close, far = get_reward("similarity")([ctx, ctx], ["Having your father in the hospital must be scary.", "Have you tried a new hobby?"]).scores
    assert close > far + 0.3


def test_unknown_model_is_a_recorded_failure_not_a_crash(shared_encoder, tmp_path):
    batch = get_reward("empathy", model=str(tmp_path / "no-such-model"))([Context("Hi.")], ["Hello."])
    assert math.isnan(batch.scores[0]) and "does not exist" in batch.failures[0]


def test_encoder_memoises_per_text(criteria, monkeypatch):
    from rewards.criteria.common import CRITERIA_MODEL
    from rewards.embeddings import encoder

    for reward in criteria.values():  # exemplars embedded and probes fitted before counting
        reward([Context("warm up")], ["warm up"])
    static = encoder(CRITERIA_MODEL)
    calls: list[list[str]] = []
    original = static.embed_uncached

    def spy(texts):
        calls.append(list(texts))
        return original(texts)

    monkeypatch.setattr(static, "embed_uncached", spy)
    contexts = [Context(f"memo probe client {i}", gold_client_emotion="sadness") for i in range(3)]
    replies = [f"memo probe reply {i}" for i in range(3)] + ["memo probe reply 0"]
    for name in CRITERIA:
        get_reward(name)(contexts + contexts[:1], replies)
    encoded = [text for call in calls for text in call]
    assert sorted(encoded) == sorted({*replies, *(c.client_utterance for c in contexts)})
    vectors = static.encode(["memo probe reply 0", "memo probe reply 1"])
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("criterion", CRITERIA)
def test_a_reply_without_words_scores_zero_not_a_failure(criterion):
    reward = get_reward(criterion)
    context = Context("I have been feeling so alone since I moved here.", gold_client_emotion="sadness")
    batch = reward([context] * 3, ["", "  ...  ", "That sounds lonely. What has the move been like for you?"])
    assert batch.scores[0] == 0.0 and batch.scores[1] == 0.0 and batch.scores[2] > 0.0
    assert not batch.failures
