"""The cross-encoder scorer: training orders pairs, the artefact round-trips, a missing artefact is a named ConfigError."""

from __future__ import annotations

import numpy as np
import pytest

from mmrl.errors import ConfigError
from mmrl.labels import TRUST_CRITERIA
from rewards.base import Context
from rewards.registry import get_reward
from tests.fixtures.tiny_bert import tiny_bert


def _tiny():
    from rewards.cross_encoder import CrossEncoder

    return CrossEncoder(*tiny_bert())


def _pairs():
    """Safety: a referral beats a brush-off after a risk disclosure; empathy: naming the loss beats changing the subject."""
    risky = [Context(f"I keep thinking about ending it all, {w}.") for w in ("tonight", "every day", "since the funeral", "lately")]
    sad = [Context(f"My {w} died last month and I can't stop crying.") for w in ("dog", "father", "grandmother", "best friend")]
    return {
        "safety": [(c, "Please call a crisis line now; are you safe right now?", "Anyway, how was work this week?") for c in risky],
        "empathy": [(c, "Losing them hurts so much; of course you are crying.", "Let's talk about your schedule instead.") for c in sad],
    }


def test_training_learns_to_order_the_pairs_and_the_artefact_round_trips(tmp_path):
    from rewards.cross_encoder import _batched_logits, load_model, pair_accuracy, save, train_cross_encoder

    pairs = _pairs()
    model, report = train_cross_encoder(pairs, pairs, model=_tiny(), epochs=8, batch_size=4, lr=3e-3)
    assert report["pairs"] == 8 and len(report["epochs"]) == 8
    assert pair_accuracy(model, pairs) == {"safety": 1.0, "empathy": 1.0}
    contexts = [c for c, _, _ in pairs["safety"]]
    before = _batched_logits(model, contexts, [b for _, b, _ in pairs["safety"]])
    path = tmp_path / "cross.safetensors"
    save(model, path)
    fresh = _tiny()
    from safetensors.torch import load_file

    fresh.load_state_dict(load_file(str(path)), strict=False)
    assert np.allclose(_batched_logits(fresh, contexts, [b for _, b, _ in pairs["safety"]]), before, atol=1e-5)
    with pytest.raises(ConfigError, match="--cross-encoder"):
        load_model(path)  # built over the tiny config: the packaged MiniLM's adapters do not match it
    long = " ".join(["and then I told her again how I felt about the whole thing"] * 40)  # longer than MAX_LENGTH on its own
    assert np.isfinite(_batched_logits(model, contexts[:1], [long])).all()


def test_unknown_criterion_and_empty_pairs_are_config_errors():
    from rewards.cross_encoder import train_cross_encoder

    with pytest.raises(ConfigError, match="unknown criteria"):
        train_cross_encoder({"kindness": _pairs()["safety"]}, model=_tiny())
    with pytest.raises(ConfigError, match="at least one"):
        train_cross_encoder({}, model=_tiny())


def test_missing_artefact_names_the_build_command(tmp_path):
    from rewards.cross_encoder import load_model

    with pytest.raises(ConfigError, match="mmrl rewards build --data MESC_DIR --cross-encoder"):
        load_model(tmp_path / "absent.safetensors")


def test_seven_cross_rewards_are_registered():
    from rewards.registry import registered

    names = {f"cross_{name}" for name in TRUST_CRITERIA}
    assert names <= set(registered())
    assert all(registered()[n].score_range == (0.0, 1.0) for n in names)
    get_reward("cross_safety")  # builds without loading the model (that happens on the first batch)


def test_calibration_puts_the_median_at_zero_and_the_quantile_at_a_score_of_one_fifth():
    from rewards.cross_encoder import _batched_logits, calibrate

    model = _tiny()
    contexts = [Context(f"Something happened at work on day {i}.") for i in range(40)]
    replies = [f"Tell me more about day {i} and how it left you." for i in range(40)]
    calibrate(model, contexts, replies, quantile=0.1)
    logits = _batched_logits(model, contexts, replies)
    assert np.allclose(np.median(logits, axis=0), 0.0, atol=1e-4)
    assert np.allclose(np.quantile(logits, 0.1, axis=0), -np.log(4.0), atol=1e-3)


def test_the_shipped_scorer_reads_risk_and_shares_one_forward_per_batch():
    from rewards.cross_encoder import ARTEFACT, scores

    if not ARTEFACT.is_file():
        pytest.skip("no shipped cross-encoder artefact")
    risky = Context("I've written goodbye letters to my kids and I have the pills ready.", gold_client_emotion="depression")
    replies = ["I'm worried about your safety right now. Are the pills with you? Let's call a crisis line together.", "Okay. How was work?"]
    safe, brush_off = get_reward("cross_safety")([risky] * 2, replies).scores
    assert safe > brush_off + 0.2
    first = scores([risky] * 2, replies)
    assert scores([risky] * 2, replies) is first  # the seven cross_* rewards of one batch reuse one forward


def test_the_shipped_reliability_reads_fit_more_than_truthfulness():
    from rewards.cross_encoder import ARTEFACT, FIT_WEIGHTS

    if not ARTEFACT.is_file():
        pytest.skip("no shipped cross-encoder artefact")
    assert FIT_WEIGHTS["reliability"] > 4 * FIT_WEIGHTS.get("truthfulness", 0.0)
    context = Context("My sister hasn't spoken to me since the wedding and I miss her.", history=(("therapist", "How was the wedding?"),))
    here = "It hurts that your sister went silent after the wedding; what happened between you two that day?"
    elsewhere = "It hurts that your manager went silent after the review; what happened between you two that day?"

    def gap(name: str) -> float:  # log-odds of the reply about the sister minus the same sentence about a manager
        here_score, there_score = np.clip(get_reward(name)([context] * 2, [here, elsewhere]).scores, 1e-6, 1 - 1e-6)
        return float(np.log(here_score / (1 - here_score)) - np.log(there_score / (1 - there_score)))

    assert gap("cross_reliability") > gap("cross_truthfulness") + 2.0


def test_fit_above_the_cap_adds_nothing(monkeypatch):
    """Among replies that all address the conversation, being more on-topic earns no more: the criterion's output decides."""
    import rewards.fit_encoder
    from rewards import cross_encoder

    if not cross_encoder.ARTEFACT.is_file():
        pytest.skip("no shipped cross-encoder artefact")
    cap = cross_encoder.FIT_CAP
    monkeypatch.setattr(
        rewards.fit_encoder, "fit_log_odds", lambda contexts, replies, reference="corpus": np.array([cap + 1, cap + 9, cap - 1])
    )
    monkeypatch.setattr(cross_encoder, "_MEMO", [])
    context = Context("My sister hasn't spoken to me since the wedding and I miss her.")
    capped, far_above, below = cross_encoder.scores([context] * 3, ["What happened at the wedding?"] * 3)
    np.testing.assert_allclose(capped, far_above)
    for k, name in enumerate(TRUST_CRITERIA):
        assert (below[k] < capped[k]) == (cross_encoder.FIT_WEIGHTS.get(name, 0.0) > 0), name
