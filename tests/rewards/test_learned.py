"""The criteria's learned probe terms and the risk classifier: the shipped probes are current, fitting helps on the dev
pairs, the disk cache is used and survives damage, the term is centred, ``learned=False`` switches it off, augmentation
makes the adversarial pairs it promises, bad pair files fail by line."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from mmrl.errors import DataError
from rewards.criteria import CRITERIA
from rewards.criteria.common import calibrated
from rewards.criteria.learned import TRAINING_FILLERS, LearnedTerm, augment, load_pairs, mesc_contexts, pairs_path, shipped_probe

pytest.importorskip("sentence_transformers")


def _inline_pairs(name: str, tmp_path) -> list:
    """The training pairs of ``name`` whose context is written inline (no MESC needed)."""
    lines = [line for line in pairs_path(name).read_text(encoding="utf-8").splitlines() if line.strip() and '"mesc"' not in line]
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    return load_pairs(path)


def _accuracy(module, pairs, probe=None) -> float:
    contexts = [c for c, _, _ in pairs]

    def scores(replies):
        term = None if probe is None else module.LEARNED.phi(contexts, replies) @ probe[0] - probe[1]
        return np.array(calibrated(module.WEIGHTS, module.features(contexts, replies), replies, term))

    return float(np.mean(scores([b for _, b, _ in pairs]) > scores([w for _, _, w in pairs])))


@pytest.mark.parametrize("name", CRITERIA)
def test_shipped_probes_are_current(name):
    """The shipped artefact matches today's features, weights, pairs and context_fit model; else run `mmrl rewards build`."""
    term = importlib.import_module(f"rewards.criteria.{name}").LEARNED
    assert shipped_probe(name, term.key()) is not None, f"{name}: the shipped probe is stale; rebuild: mmrl rewards build --data MESC_DIR"


def test_fitting_on_training_pairs_improves_dev_pairs(mesc_dir):
    """Fitted on the training pairs, the probe raises the mean accuracy on the dev pairs over the hand features alone."""
    hand, learned = [], []
    for name in CRITERIA:
        module = importlib.import_module(f"rewards.criteria.{name}")
        dev = load_pairs(pairs_path(name, "dev"), lambda: mesc_contexts(mesc_dir))
        hand.append(_accuracy(module, dev))
        learned.append(_accuracy(module, dev, module.LEARNED.probe()))
    assert np.mean(learned) >= np.mean(hand) + 0.03, f"hand {np.round(hand, 3)} learned {np.round(learned, 3)}"


def test_term_is_centred_on_the_training_replies(tmp_path):
    module = importlib.import_module("rewards.criteria.empathy")
    pairs = _inline_pairs("empathy", tmp_path)
    contexts = [c for c, _, _ in pairs] * 2
    replies = [b for _, b, _ in pairs] + [w for _, _, w in pairs]
    weights, offset = module.LEARNED.fit(pairs)
    term = module.LEARNED.phi(contexts, replies) @ weights - offset
    assert abs(term.mean()) < 1e-6 and term.std() > 0.1


def test_learned_false_scores_with_the_hand_features_alone(tmp_path):
    from rewards.registry import get_reward

    module = importlib.import_module("rewards.criteria.safety")
    context, better, worse = _inline_pairs("safety", tmp_path)[0]
    contexts, replies = [context, context], [better, worse]
    hand = calibrated(module.WEIGHTS, module.features(contexts, replies), replies)
    assert get_reward("safety", learned=False)(contexts, replies).scores.tolist() == pytest.approx(hand)
    assert get_reward("safety")(contexts, replies).scores.tolist() != pytest.approx(hand)


def test_augmentation_pads_worse_and_better_and_adds_generic_negatives(tmp_path):
    pairs = _inline_pairs("reliability", tmp_path)[:5]
    extra = augment(pairs, "reliability")
    padded_worse = [(c, b, w) for c, b, w in extra if any(w.endswith(f) for f in TRAINING_FILLERS)]
    assert len(padded_worse) == len(pairs) and all(b == p[1] for (_, b, _), p in zip(padded_worse, pairs))
    assert any(w == c.client_utterance for c, _, w in extra)  # a copy of the client's words is worse
    assert not any(w == c.client_utterance for c, _, w in augment(pairs, "safety"))  # only for GENERIC_WORSE criteria


def test_probe_is_cached_on_disk_and_refitted_when_damaged(tmp_path, monkeypatch, mesc_dir):
    monkeypatch.setenv("MMRL_CACHE", str(tmp_path))
    monkeypatch.setenv("MMRL_MESC_DIR", str(mesc_dir))
    monkeypatch.setattr("rewards.criteria.learned.shipped_probe", lambda *a: None)  # as if the artefact were stale
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


def test_key_follows_weights_and_model():
    module = importlib.import_module("rewards.criteria.privacy")
    term = LearnedTerm("privacy", module.features, module.WEIGHTS)
    changed = LearnedTerm("privacy", module.features, {**module.WEIGHTS, "bias": module.WEIGHTS["bias"] + 1})
    assert term.key("static") != changed.key("static")
    assert term.key("static") != term.key(None)


def test_mesc_reference_without_mesc_is_a_clear_error(tmp_path):
    from mmrl.errors import ConfigError

    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"mesc": "train:1:3", "better": "a", "worse": "b"}) + "\n")

    def missing():
        raise ConfigError("labelled pairs over MESC contexts need the MESC directory: set MMRL_MESC_DIR")

    with pytest.raises(ConfigError, match="MMRL_MESC_DIR"):
        load_pairs(path, missing)


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


def test_probe_key_reads_every_fitting_split(tmp_path, monkeypatch):
    """The probes are fitted on ``train`` and the read holdout sets (``FIT_SPLITS``): changing any of their files changes
    the key (the shipped probe goes stale); the selection and report splits do not enter it."""
    import rewards.criteria.learned as learned

    term = importlib.import_module("rewards.criteria.empathy").LEARNED
    before = term.key()
    original = learned.pairs_path
    assert {"train", "holdout4", "holdout5"} == set(learned.FIT_SPLITS)
    for split in learned.SPLITS:
        edited = tmp_path / f"{split}.jsonl"
        edited.write_text("\n".join(original("empathy", split).read_text(encoding="utf-8").splitlines()[1:]), encoding="utf-8")
        with monkeypatch.context() as patch:
            patch.setattr(learned, "pairs_path", lambda c, s="train", split=split: edited if s == split else original(c, s))
            assert (term.key() != before) == (split in learned.FIT_SPLITS), split
