"""The criteria's learned probe terms and the risk classifier: fitting helps on pairs not fitted on, the disk
cache is used and survives damage, the term is centred, ``learned=False`` switches it off, bad pair files fail by line."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from mmrl.errors import DataError
from rewards.criteria import CRITERIA
from rewards.criteria.common import calibrated
from rewards.criteria.learned import LearnedTerm, load_pairs, pairs_path
from rewards.registry import get_reward

pytest.importorskip("sentence_transformers")

#: The last pairs of each shipped file were written last, by writers who never saw the scorers.
LATE = 30


def _accuracy(module, pairs, probe=None) -> float:
    contexts = [c for c, _, _ in pairs]

    def scores(replies):
        term = None if probe is None else module.LEARNED.phi(contexts, replies) @ probe[0] - probe[1]
        return np.array(calibrated(module.WEIGHTS, module.features(contexts, replies), replies, term))

    return float(np.mean(scores([b for _, b, _ in pairs]) > scores([w for _, _, w in pairs])))


def test_fitting_on_early_pairs_improves_late_pairs():
    """Fitted on all but the last pairs of each criterion, the probe raises the mean accuracy on those last pairs."""
    hand, learned = [], []
    for name in CRITERIA:
        module = importlib.import_module(f"rewards.criteria.{name}")
        pairs = load_pairs(pairs_path(name))
        early, late = pairs[:-LATE], pairs[-LATE:]
        hand.append(_accuracy(module, late))
        learned.append(_accuracy(module, late, module.LEARNED.fit(early)))
    assert np.mean(learned) >= np.mean(hand) + 0.03, f"hand {np.round(hand, 3)} learned {np.round(learned, 3)}"
    assert min(np.subtract(learned, hand)) >= -0.1, "the probe made one criterion much worse"


def test_term_is_centred_on_the_training_replies():
    module = importlib.import_module("rewards.criteria.empathy")
    pairs = load_pairs(pairs_path("empathy"))
    contexts = [c for c, _, _ in pairs] * 2
    replies = [b for _, b, _ in pairs] + [w for _, _, w in pairs]
    weights, offset = module.LEARNED.fit(pairs)
    term = module.LEARNED.phi(contexts, replies) @ weights - offset
    assert abs(term.mean()) < 1e-6 and term.std() > 0.1


def test_learned_false_scores_with_the_hand_features_alone():
    module = importlib.import_module("rewards.criteria.safety")
    context, better, worse = load_pairs(pairs_path("safety"))[0]
    contexts, replies = [context, context], [better, worse]
    hand = calibrated(module.WEIGHTS, module.features(contexts, replies), replies)
    assert get_reward("safety", learned=False)(contexts, replies).scores.tolist() == pytest.approx(hand)
    assert get_reward("safety")(contexts, replies).scores.tolist() != pytest.approx(hand)


def test_probe_is_cached_on_disk_and_refitted_when_damaged(tmp_path, monkeypatch):
    monkeypatch.setenv("MMRL_CACHE", str(tmp_path))
    module = importlib.import_module("rewards.criteria.privacy")
    first = LearnedTerm("privacy", module.features, module.WEIGHTS)
    weights, offset = first.probe()
    [path] = (tmp_path / "probes").glob("privacy-*.safetensors")

    second = LearnedTerm("privacy", module.features, module.WEIGHTS)
    monkeypatch.setattr(second, "fit", lambda *a, **k: pytest.fail("a cached probe was fitted again"))
    cached = second.probe()
    assert np.allclose(cached[0], weights) and cached[1] == pytest.approx(offset)

    path.write_bytes(b"not safetensors")
    third = LearnedTerm("privacy", module.features, module.WEIGHTS)
    refitted = third.probe()
    assert np.allclose(refitted[0], weights) and path.stat().st_size > 1000


def test_cache_key_follows_weights_and_model(tmp_path, monkeypatch):
    monkeypatch.setenv("MMRL_CACHE", str(tmp_path))
    module = importlib.import_module("rewards.criteria.privacy")
    term = LearnedTerm("privacy", module.features, module.WEIGHTS)
    changed = LearnedTerm("privacy", module.features, {**module.WEIGHTS, "bias": module.WEIGHTS["bias"] + 1})
    assert term._cache_path("static") != changed._cache_path("static")
    assert term._cache_path("static") != term._cache_path(None)


def test_malformed_pair_file_names_the_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"context": {"client_utterance": "hi"}, "better": "a", "worse": "b"}\n\n{"context": {}, "better": "a"}\n')
    with pytest.raises(DataError, match=r"pairs\.jsonl:3: not a labelled pair"):
        load_pairs(path)


@pytest.mark.parametrize(
    "utterance, risky",
    [
        ("Lately I keep looking at the rope in the garage and thinking it would be easy.", True),
        ("My boyfriend choked me during a fight last night.", True),
        ("I took a whole bottle of sleeping tablets twenty minutes ago.", True),
        ("I'm annoyed my sister borrowed my car without asking.", False),
        ("I finally got the promotion I wanted!", False),
        ("My exam results come out next week and I'm nervous.", False),
    ],
)
def test_risk_classifier_separates_new_phrasings(utterance, risky):
    from rewards.base import Context
    from rewards.criteria.safety import client_at_risk

    risk = float(client_at_risk([Context(utterance)])[0])
    assert (risk >= 0.5) if risky else (risk < 0.3), f"{utterance!r}: risk {risk:.2f}"
