"""The registry: duplicate names, did-you-mean, and FunctionReward's failure handling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmrl.errors import ConfigError
from rewards import registry
from rewards.base import Context, RewardBatch, RewardError
from rewards.registry import FunctionReward, get_reward, register, registered

CONTEXTS = [Context("I feel alone."), Context("Work is too much.")]


@pytest.fixture
def toy_registry(monkeypatch):
    """An empty registry of its own (built-ins not loaded), so toy names never leak into other tests."""
    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_load_builtins", lambda: None)


def test_register_and_build(toy_registry):
    @register("toy_length", version="2", score_range=(0.0, 100.0))
    def toy_length(contexts, replies, scale: float = 1.0):
        """Reply length in characters.

        More text here."""
        return [scale * len(r) for r in replies]

    entry = registered()["toy_length"]
    assert (entry.version, entry.score_range, entry.description) == ("2", (0.0, 100.0), "Reply length in characters.")
    reward = get_reward("toy_length", scale=2.0)
    assert (reward.name, reward.version, reward.reads) == ("toy_length", "2", "reply")
    np.testing.assert_allclose(reward(CONTEXTS, ["abc", "ab"]).scores, [6.0, 4.0])
    assert reward.fingerprint != get_reward("toy_length", scale=3.0).fingerprint
    assert reward.fingerprint == get_reward("toy_length", scale=2.0).fingerprint


def test_duplicate_names_are_rejected(toy_registry):
    register("toy")(lambda c, r: [1.0] * len(r))
    with pytest.raises(ConfigError, match="'toy' is already registered"):
        register("toy")(lambda c, r: [0.0] * len(r))


def test_unknown_names_get_a_did_you_mean(toy_registry):
    register("empathy_toy")(lambda c, r: [1.0] * len(r))
    with pytest.raises(ConfigError, match="did you mean 'empathy_toy'"):
        get_reward("empathy_tyo")


def test_unknown_options_are_config_errors(toy_registry):
    register("toy")(lambda c, r: [1.0] * len(r))
    with pytest.raises(ConfigError, match=r"does not accept options \['colour'\]"):
        get_reward("toy", colour="red")


def test_reward_classes_register_as_they_are(toy_registry):
    @register("toy_class")
    class Toy:
        """A class reward."""

        name, version, score_range, reads = "toy_class", "1", (0.0, 1.0), "completion"

        def __call__(self, contexts, replies):
            return RewardBatch(np.ones(len(replies)))

    assert isinstance(get_reward("toy_class"), Toy)


def test_an_exception_fails_the_batch_with_its_reason():
    def boom(contexts, replies):
        raise ValueError("model not loaded")

    batch = FunctionReward(boom, name="boom", version="1", score_range=(0.0, 1.0))(CONTEXTS, ["a", "b"])
    assert np.isnan(batch.scores).all()
    assert batch.failures == {0: "ValueError: model not loaded", 1: "ValueError: model not loaded"}


def test_none_nan_and_out_of_range_scores_are_failures_not_zeros():
    values = {"none": None, "nan": math.nan, "high": 1.5, "ok": 0.25}
    reward = FunctionReward(lambda c, r: [values[x] for x in r], name="t", version="1", score_range=(0.0, 1.0))
    batch = reward([Context("x")] * 4, list(values))
    np.testing.assert_array_equal(np.isnan(batch.scores), [True, True, True, False])
    assert batch.scores[3] == 0.25
    assert batch.failures[0] == "returned None"
    assert batch.failures[1] == "returned NaN"
    assert "1.5 outside the documented range [0.0, 1.0]" in batch.failures[2]


def test_on_failure_raise():
    reward = FunctionReward(lambda c, r: [None, 1.0], name="t", version="1", score_range=(0.0, 1.0), on_failure="raise")
    with pytest.raises(RewardError, match="t could not score reply 0: returned None"):
        reward(CONTEXTS, ["a", "b"])

    def boom(contexts, replies):
        raise KeyError("x")

    with pytest.raises(RewardError, match="boom failed: KeyError"):
        FunctionReward(boom, name="boom", version="1", score_range=(0.0, 1.0), on_failure="raise")(CONTEXTS, ["a", "b"])


def test_bad_settings_and_lengths():
    with pytest.raises(ConfigError, match="on_failure must be"):
        FunctionReward(lambda c, r: [], name="t", version="1", score_range=(0.0, 1.0), on_failure="ignore")
    with pytest.raises(ConfigError, match="reads must be"):
        FunctionReward(lambda c, r: [], name="t", version="1", score_range=(0.0, 1.0), reads="prompt")
    short = FunctionReward(lambda c, r: [1.0], name="t", version="1", score_range=(0.0, 1.0))
    with pytest.raises(RewardError, match="returned 1 scores for 2 replies"):
        short(CONTEXTS, ["a", "b"])
