"""component_match, format and length: rewards on the policy's raw structured block."""

from __future__ import annotations

import doctest
import math
from itertools import pairwise

import pytest

import rewards.components
from mmrl.policy.prompts import format_output
from rewards.base import Context
from rewards.components import MESC_REPLY_WORDS, length_score
from rewards.registry import get_reward

GOLD = Context("I failed my exam again.", gold_client_emotion="sadness", gold_therapist_emotion="neutral", gold_strategy="Open question")
BLOCK = format_output("sadness", "neutral", "Open question", "What happened in the exam?")


def test_doctests():
    result = doctest.testmod(rewards.components)
    assert result.attempted >= 4 and result.failed == 0


def test_registered_names_read_the_completion():
    for name in ("component_match", "format", "length"):
        reward = get_reward(name)
        assert reward.reads == "completion" and reward.score_range == (0.0, 1.0)


@pytest.mark.parametrize(
    "completion, expected",
    [
        (BLOCK, 1.0),
        (format_output("sadness", "neutral", "Restatement", "You failed again."), 2 / 3),
        (format_output("joy", "joy", "Approval", "Great!"), 0.0),
        ("client emotion: SADNESS\nTherapist emotion: Neutral\nstrategy: open question\nReply: Tell me more.", 1.0),
        ("Strategy: Open question\nReply: What happened?", 1 / 3),  # the missing emotions are wrong answers
        ("What happened in the exam?", 0.0),  # unparseable: every stated component is wrong, not a failure
        ("Client emotion: sorrow\nTherapist emotion: neutral\nStrategy: Open question\nReply: Hm.", 2 / 3),
    ],
)
def test_component_match_scores_the_share_of_gold_labels_matched(completion, expected):
    batch = get_reward("component_match")([GOLD], [completion])
    assert not batch.failures
    assert batch.scores[0] == pytest.approx(expected)


def test_component_match_counts_only_existing_gold_labels_and_fails_without_any():
    strategy_only = Context("Hi.", gold_strategy="Open question")
    no_gold = Context("Hi.")
    batch = get_reward("component_match")([strategy_only, no_gold], [BLOCK, BLOCK])
    assert batch.scores[0] == 1.0
    assert math.isnan(batch.scores[1]) and batch.failures == {1: "no gold component labels"}


@pytest.mark.parametrize(
    "completion, expected",
    [
        (BLOCK, 1.0),
        ("Client emotion: sadness\nStrategy: Open question\nReply: What happened?", 0.75),
        ("Client emotion: sadness\nTherapist emotion: neutral\nStrategy: Dancing\nReply: Hm.", 0.75),
        ("Reply: What happened?", 0.25),
        ("What happened in the exam?", 0.0),
        ("", 0.0),
    ],
)
def test_format_gives_partial_credit_by_fields_found(completion, expected):
    batch = get_reward("format")([GOLD], [completion])
    assert batch.scores[0] == pytest.approx(expected)


def test_length_prefers_the_mesc_band_and_is_smooth_and_monotone_outside_it():
    low, high = MESC_REPLY_WORDS
    assert (low, high) == (5, 30)
    scores = [length_score(n, low, high) for n in range(120)]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[0] == 0.0 and all(s == 1.0 for s in scores[low : high + 1])
    assert all(a <= b for a, b in pairwise(scores[: low + 1]))  # rising below the band
    assert all(a >= b for a, b in pairwise(scores[high:]))  # falling above it
    assert max(abs(a - b) for a, b in pairwise(scores)) < 0.4  # no cliff


def test_length_counts_the_parsed_reply_and_accepts_a_custom_band():
    block = format_output("sadness", "neutral", "Open question", "one two three four five six")
    default, custom = get_reward("length"), get_reward("length", min_words=10, max_words=20)
    assert default([GOLD], [block]).scores[0] == 1.0  # six reply words; the label lines are not counted
    assert custom([GOLD], [block]).scores[0] == pytest.approx(0.36)
    assert default([GOLD], ["just plain words here"]).scores[0] == pytest.approx(0.64)


def test_length_rejects_a_bad_band_before_any_scoring():
    """A misconfigured reward is a property of the spec: a ConfigError, at scoring and when the composite is built."""
    from mmrl.errors import ConfigError
    from rewards.spec import build_composite

    with pytest.raises(ConfigError, match="min_words < max_words"):
        get_reward("length", min_words=30, max_words=5)([GOLD], [BLOCK])
    with pytest.raises(ConfigError, match="min_words < max_words"):
        build_composite(
            {"on_missing": "skip", "rewards": {"format": 1.0, "length": {"weight": 1.0, "options": {"min_words": 30, "max_words": 5}}}}
        )
