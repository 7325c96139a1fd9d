"""Composite: each mode on hand-computed numbers, gates, NaN handling, weight 0, reply extraction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmrl.errors import ConfigError
from rewards.base import Context, RewardBatch, RewardError
from rewards.compose import Component, Composite, Gate, reply_text

NAN = math.nan


class Fixed:
    """A reward returning fixed scores (NaN = failure) and recording what it was called with."""

    version, score_range = "1", (0.0, 1.0)

    def __init__(self, name: str, values, reads: str = "reply") -> None:
        self.name, self.values, self.reads, self.calls = name, values, reads, []

    def __call__(self, contexts, replies):
        self.calls.append(list(replies))
        failures = {i: "no score" for i, v in enumerate(self.values) if v != v}
        return RewardBatch(np.array(self.values, dtype=float), failures)


def run(composite: Composite, n: int):
    return composite([Context(f"c{i}") for i in range(n)], [f"reply {i}" for i in range(n)])


def test_weighted_sum_and_metrics():
    a, b = Fixed("a", [0.2, 0.8]), Fixed("b", [1.0, 0.5])
    result = run(Composite([Component(a, 1.0), (b, 2.0)]), 2)  # a (reward, weight) tuple is a Component
    np.testing.assert_allclose(result.total, [2.2, 1.8])
    m = result.metrics()
    assert m["rewards/a/mean"] == pytest.approx(0.5)
    assert m["rewards/a/std"] == pytest.approx(0.6 / math.sqrt(2))  # Bessel-corrected, as TRL
    assert m["rewards/b/failures"] == 0.0
    assert m["reward"] == pytest.approx(2.0)
    assert m["reward_std"] == pytest.approx(0.4 / math.sqrt(2))


def test_normalised_over_the_batch():
    a, b = Fixed("a", [1.0, 2.0, 3.0, 4.0]), Fixed("b", [0.5, 0.5, 0.5, 0.5])
    result = run(Composite([Component(a, 1.0), Component(b, 3.0)], mode="normalised"), 4)
    std = np.std([1, 2, 3, 4], ddof=1)  # 1.2910; b has std 0, so z(b) = 0
    np.testing.assert_allclose(result.total, np.array([-1.5, -0.5, 0.5, 1.5]) / (std + 1e-4))
    np.testing.assert_allclose(result.scores["a"], [1, 2, 3, 4])  # logged scores stay raw


def test_normalised_within_groups():
    a, b = Fixed("a", [1.0, 3.0, 10.0, 20.0]), Fixed("b", [0.0, 1.0, 1.0, 0.0])
    result = run(Composite([Component(a, 1.0), Component(b, 2.0)], mode="normalised", group_size=2), 4)
    z = 1 / math.sqrt(2)  # any pair standardises to -/+ 1/sqrt(2) with the Bessel-corrected std
    np.testing.assert_allclose(result.total, [-3 * z, 3 * z, z, -z], atol=1e-3)
    with pytest.raises(RewardError, match="groups of group_size=2"):
        run(Composite([Component(Fixed("a", [1.0, 2.0, 3.0]))], mode="normalised", group_size=2), 3)


def test_minimum_of_weighted_scores():
    a, b = Fixed("a", [0.2, 0.9]), Fixed("b", [0.5, 0.6])
    np.testing.assert_allclose(run(Composite([Component(a), Component(b)], mode="min"), 2).total, [0.2, 0.6])
    np.testing.assert_allclose(run(Composite([Component(a), Component(b, 0.5)], mode="min"), 2).total, [0.2, 0.3])


def test_gate_caps_the_total_and_logs_the_violation_rate():
    helpful, safety = Fixed("helpful", [0.9, 0.9, 0.9]), Fixed("safety", [0.2, 0.5, 0.39])
    result = run(Composite([Component(helpful), Component(safety, 1.0, Gate(threshold=0.4, cap=0.1))]), 3)
    np.testing.assert_allclose(result.total, [0.1, 1.4, 0.1])
    np.testing.assert_array_equal(result.violations["safety"], [1.0, 0.0, 1.0])
    assert result.metrics()["gates/safety/violation_rate"] == pytest.approx(2 / 3)
    high_cap = run(Composite([Component(helpful), Component(safety, 1.0, Gate(0.4, cap=5.0))]), 3)
    np.testing.assert_allclose(high_cap.total, [1.1, 1.4, 1.29])  # a cap never raises a total


def test_a_gate_at_weight_zero_is_computed_but_not_summed():
    helpful, safety = Fixed("helpful", [0.9, 0.7]), Fixed("safety", [0.1, 0.8])
    result = run(Composite([Component(helpful), Component(safety, 0.0, Gate(0.5, cap=-1.0))]), 2)
    np.testing.assert_allclose(result.total, [-1.0, 0.7])
    assert len(safety.calls) == 1


def test_failed_scores_never_count_as_zero():
    a, b = Fixed("a", [0.5, NAN, 0.3, NAN]), Fixed("b", [0.2, 0.4, NAN, NAN])
    strict = run(Composite([Component(a), Component(b)]), 4)
    np.testing.assert_allclose(strict.total, [0.7, NAN, NAN, NAN])
    assert strict.failures["a"] == {1: "no score", 3: "no score"}
    skip = run(Composite([Component(a), Component(b)], on_missing="skip"), 4)
    np.testing.assert_allclose(skip.total, [0.7, 0.4, 0.3, NAN])  # all failed: NaN, not 0
    m = skip.metrics()
    assert m["rewards/a/mean"] == pytest.approx(0.4)  # NaN left out of the mean
    assert m["rewards/a/failures"] == 2.0
    assert m["reward"] == pytest.approx((0.7 + 0.4 + 0.3) / 3)
    assert math.isnan(run(Composite([Component(Fixed("a", [NAN, NAN]))]), 2).metrics()["rewards/a/mean"])


def test_a_failed_gate_is_nan_or_fails_closed():
    helpful, safety = Fixed("helpful", [0.9, 0.9]), Fixed("safety", [NAN, 0.8])
    components = [Component(helpful), Component(safety, 0.0, Gate(0.5, cap=0.0))]
    np.testing.assert_allclose(run(Composite(components), 2).total, [NAN, 0.9])
    skip = run(Composite(components, on_missing="skip"), 2)
    np.testing.assert_allclose(skip.total, [0.0, 0.9])
    assert skip.metrics()["gates/safety/violation_rate"] == 0.0  # over the scored items only


def test_zero_weight_is_not_computed_unless_logged():
    a, idle = Fixed("a", [0.4, 0.6]), Fixed("idle", [1.0, 1.0])
    result = run(Composite([Component(a), Component(idle, 0.0)]), 2)
    assert idle.calls == []
    assert "idle" not in result.scores and "rewards/idle/mean" not in result.metrics()
    logged = run(Composite([Component(a), Component(idle, 0.0)], log_zero_weight=True), 2)
    assert len(idle.calls) == 1
    assert logged.metrics()["rewards/idle/mean"] == 1.0
    np.testing.assert_allclose(logged.total, [0.4, 0.6])  # logged, not summed


def test_reply_readers_get_the_parsed_reply_and_completion_readers_the_raw_text():
    reply, raw = Fixed("reply", [1.0, 1.0]), Fixed("raw", [1.0, 1.0], reads="completion")
    block = "Client emotion: sadness\nTherapist emotion: neutral\nStrategy: Restatement\nReply: That sounds hard."
    Composite([Component(reply), Component(raw)])([Context("a"), Context("b")], [block, "Just plain text."])
    assert reply.calls == [["That sounds hard.", "Just plain text."]]
    assert raw.calls == [[block, "Just plain text."]]
    assert reply_text("Strategy: Restatement\nReply:   ") == "Strategy: Restatement\nReply:   "  # empty reply: whole text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "weighed"}, "did you mean 'weighted'"),
        ({"on_missing": "zero"}, "on_missing must be one of"),
        ({"group_size": 2}, "mode='normalised' only"),
    ],
)
def test_bad_settings_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Composite([Component(Fixed("a", [1.0]))], **kwargs)


def test_bad_components_are_config_errors():
    with pytest.raises(ConfigError, match="every weight is 0"):
        Composite([Component(Fixed("a", [1.0]), 0.0)])
    with pytest.raises(ConfigError, match=r"unique.*\['a'\]"):
        Composite([Component(Fixed("a", [1.0])), Component(Fixed("a", [1.0]))])
    with pytest.raises(ConfigError, match="finite"):
        Component(Fixed("a", [1.0]), math.inf)


def test_a_reward_returning_the_wrong_length_is_an_error():
    with pytest.raises(RewardError, match="RewardBatch of 2 scores, got 1 scores"):
        run(Composite([Component(Fixed("a", [1.0]))]), 2)


def test_a_component_failing_on_every_reply_of_consecutive_batches_stops_the_run():
    broken, fine = Fixed("judge", [NAN, NAN]), Fixed("format", [0.5, 0.5])
    composite = Composite([(fine, 1.0), (broken, 1.0)], on_missing="skip", max_failed_batches=3)
    run(composite, 2)
    run(composite, 2)
    with pytest.raises(RewardError, match=r"judge failed on every reply of 3 consecutive batches .* last reason: no score"):
        run(composite, 2)


def test_a_batch_that_scores_resets_the_count_and_zero_never_stops():
    flaky = Fixed("judge", [NAN, NAN])
    composite = Composite([(Fixed("format", [0.5, 0.5]), 1.0), (flaky, 1.0)], on_missing="skip", max_failed_batches=2)
    run(composite, 2)
    flaky.values = [NAN, 0.3]  # one reply scored: the streak starts again
    run(composite, 2)
    flaky.values = [NAN, NAN]
    run(composite, 2)
    with pytest.raises(RewardError):
        run(composite, 2)
    patient = Composite([(Fixed("format", [0.5, 0.5]), 1.0), (Fixed("judge", [NAN, NAN]), 1.0)], on_missing="skip", max_failed_batches=0)
    for _ in range(5):
        assert run(patient, 2).metrics()["rewards/judge/failures"] == 2.0


def test_preflight_raises_a_config_error_and_keeps_a_scoring_failure_quiet():
    from rewards.compose import preflight

    class Misconfigured(Fixed):
        def __call__(self, contexts, replies):
            raise ConfigError("empathy: model directory '/no/such/dir' does not exist")

    with pytest.raises(ConfigError, match="does not exist"):
        Composite([(Misconfigured("empathy", [0.5]), 1.0)]).preflight()
    unreachable = Fixed("judge", [NAN])
    preflight(unreachable)  # a failed score on the canned reply is data, not an error
    assert unreachable.calls and "What has been hardest since the move?" in unreachable.calls[0][0]


def test_a_non_string_completion_is_named():
    composite = Composite([(Fixed("a", [0.5, 0.5]), 1.0)])
    with pytest.raises(RewardError, match=r"completion 1: expected str, got int \(42\)"):
        composite([Context("x"), Context("y")], ["fine", 42])


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_max_failed_batches_must_be_a_count(bad):
    with pytest.raises(ConfigError, match="max_failed_batches must be an integer >= 0"):
        Composite([(Fixed("a", [0.5]), 1.0)], max_failed_batches=bad)
