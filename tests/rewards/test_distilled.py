"""The distilled learned term of the seven criteria: training fits the teacher, the shipped weights are current, errors are named."""

from __future__ import annotations

import numpy as np
import pytest

from mmrl.errors import ConfigError
from mmrl.labels import TRUST_CRITERIA
from rewards.base import Context
from rewards.registry import get_reward


def test_training_fits_the_targets_orders_the_pairs_and_forward_matches():
    from rewards.criteria.distilled import OUTPUTS, forward
    from rewards.distil import train

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 12)).astype(np.float32)
    y = np.tanh(x @ rng.normal(size=(12, len(OUTPUTS)))) * 3
    group = np.r_[np.repeat(np.arange(100), 4), np.full(200, -1)]
    criterion = np.r_[np.full(400, -1), np.repeat(rng.integers(0, 7, 100), 2)]
    pairs = np.arange(400, 600).reshape(-1, 2)
    k = criterion[pairs[:, 0]]
    flip = y[pairs[:, 0], k] < y[pairs[:, 1], k]  # make the first row of each pair the better one on its criterion
    x[pairs[flip]] = x[pairs[flip][:, ::-1]]
    y[pairs[flip]] = y[pairs[flip][:, ::-1]]
    net = train(x, y, group, criterion, epochs=40, members=2)
    assert net["w1"].shape == (2, 12, 256) and net["w1"].dtype == np.float16
    out = forward(net, x)
    from scipy.special import erf

    hidden = np.einsum("nd,mdh->mnh", (x - net["mean"]) / net["scale"], net["w1"].astype(np.float32)) + net["b1"][:, None, :]
    hidden = 0.5 * hidden * (1.0 + erf(hidden / np.sqrt(2.0)))
    assert np.allclose(out, (np.einsum("mnh,mho->mno", hidden, net["w2"].astype(np.float32)) + net["b2"][:, None, :]).mean(0), atol=1e-4)
    assert np.corrcoef(out.ravel(), y.ravel())[0, 1] > 0.8  # an untrained network: about 0
    assert np.mean(out[pairs[:, 0], k] > out[pairs[:, 1], k]) > 0.9


def test_the_shipped_network_is_current():
    """Else rebuild it: mmrl rewards build --data MESC_DIR --distil (after any change to features, weights, pairs or teacher)."""
    from rewards.criteria.distilled import _network

    _network.cache_clear()
    assert _network()["w1"].shape[2] == 256


def test_stale_or_unreadable_weights_are_config_errors_naming_the_rebuild(tmp_path):
    from safetensors.numpy import save_file

    from rewards.criteria.distilled import _network

    stale = tmp_path / "stale.safetensors"
    save_file({"w1": np.zeros((1, 2, 2), np.float16)}, str(stale), metadata={"key": "from another build"})
    with pytest.raises(ConfigError, match="--distil"):
        _network(stale)
    with pytest.raises(ConfigError, match="--distil"):
        _network(tmp_path / "missing.safetensors")


def test_the_learned_criteria_are_the_network_and_learned_false_the_hand_features():
    from rewards.criteria.common import logistic
    from rewards.criteria.distilled import OUTPUTS, log_odds_of

    context = Context("My girlfriend left me last night and I can't stop crying.", gold_client_emotion="sadness")
    replies = [
        "Just get over it. I am listening. Tell me more about how you are feeling right now.",
        "Crying the morning after she left makes sense. What happened last night?",
        "",
    ]
    network = logistic(log_odds_of([context] * 3, replies))
    for name in TRUST_CRITERIA:
        learned = get_reward(name)([context] * 3, replies).scores
        np.testing.assert_allclose(learned[:2], network[:2, OUTPUTS.index(name)], rtol=1e-6)
        assert learned[2] == 0.0  # a reply without a word earns no trust criterion
        assert not np.allclose(learned, get_reward(name, learned=False)([context] * 3, replies).scores)
    for name in ("safety", "reliability", "empathy"):  # filler appended to a brush-off does not beat a sympathetic reply
        padded, sympathetic, _ = get_reward(name)([context] * 3, replies).scores
        assert sympathetic > padded, name


def test_teacher_rows_cover_each_train_turn_then_the_pairs(mesc_dir):
    from rewards.distil import teacher_rows

    contexts, replies, group, criterion = teacher_rows(mesc_dir)
    assert len(contexts) == len(replies) == len(group) == len(criterion)
    turns = group[group >= 0]
    assert (np.diff(turns) >= 0).all() and turns.max() + 1 > 3000  # each MESC train turn's rows, together
    first = np.flatnonzero(np.r_[True, np.diff(turns) > 0])
    assert all(replies[i] == contexts[i].reference for i in first)  # led by the real reply
    pairs = np.flatnonzero(criterion >= 0)
    assert pairs[0] == len(turns) and len(pairs) % 2 == 0 and (criterion[pairs[::2]] == criterion[pairs[1::2]]).all()


def test_keys_read_code_not_docs(tmp_path):
    """Editing a docstring or doctest leaves the probes' and the network's keys alone; editing code does not."""
    from rewards.criteria.learned import _code

    a, b, c = (tmp_path / f"{n}.py" for n in "abc")
    a.write_text('"""Module."""\n\ndef f(x):\n    """>>> f(1)\n    2\n    """\n    return x + 1\n')
    b.write_text('"""Another module text."""\n\n\ndef f(x):\n    """>>> f(1) > 1\n    True\n    """\n    return x + 1  # same code\n')
    c.write_text('"""Module."""\n\ndef f(x):\n    """>>> f(1)\n    2\n    """\n    return x + 2\n')
    assert _code(a) == _code(b) != _code(c)

    class Plain:
        """One text."""

        def f(self, x):
            return x + 1

    class Documented:
        """Another text."""

        def f(self, x):
            """>>> 1"""
            return x + 1  # same code

    assert _code(Plain).replace(b"Plain", b"X") == _code(Documented).replace(b"Documented", b"X") != _code(c)


def test_teacher_outputs_are_cached_per_row(tmp_path, monkeypatch):
    """New rows cost only their own transformer pass; known rows come back from the cache in the order asked, each column in
    its place; the static context fit is recomputed (a rebuilt one needs no new pass); a damaged cache is named."""
    import mmrl.files
    from rewards import distil
    from rewards.criteria.common import context_fit

    monkeypatch.setattr(mmrl.files, "cache_root", lambda: tmp_path)
    monkeypatch.setattr(distil, "_teacher_digest", lambda: "teacher")
    passes: list[list[str]] = []

    def teacher(contexts, replies, progress):
        passes.append(list(replies))
        return np.array([10 * len(r) + np.arange(8) for r in replies], dtype=np.float32)  # column j of reply r: 10·|r| + j

    monkeypatch.setattr(distil, "_teacher_pass", teacher)
    context = Context("My brother moved away.")
    first = distil.teacher_outputs([context] * 2, ["a", "bb"], progress=False)
    replies = ["ccc", "bb", "a", "ccc"]
    again = distil.teacher_outputs([context] * 4, replies, progress=False)
    assert passes == [["a", "bb"], ["ccc"]]  # "ccc" asked twice, computed once
    np.testing.assert_array_equal(first[:, 0], [10, 20])
    np.testing.assert_array_equal(again[:, :7], [10 * len(r) + np.arange(7) for r in replies])
    np.testing.assert_array_equal(again[:, 8], [10 * len(r) + 7 for r in replies])  # the fit encoder's term, last
    np.testing.assert_allclose(again[:, 7], context_fit([context] * 4, replies), rtol=1e-6)  # the static fit, recomputed
    other = distil.teacher_outputs([Context("My sister moved away.")], ["a"], progress=False)  # the context is part of a row
    assert passes[-1] == ["a"] and other[0, 0] == 10
    (cache,) = (tmp_path / "distil").glob("*.safetensors")
    cache.write_bytes(b"not safetensors")
    with pytest.raises(ConfigError, match="delete it"):
        distil.teacher_outputs([context], ["a"], progress=False)


def test_counterfactual_rows_swap_context_and_reply_and_point_at_their_source():
    from rewards.distil import counterfactual_rows

    son = Context("My son won't talk to me.")
    contexts = [son, son, Context("Work is too much."), Context("My son won't talk to me.", reference="Ask her.")]
    replies = ["What happens when you try to talk with him?", "Tell me more.", "What part of work?", "How old is he?"]
    swapped, swapped_replies, source = counterfactual_rows(contexts, replies, np.array([0, 0, 1, -1]))
    rows = {(c.client_utterance, r, int(s)) for c, r, s in zip(swapped, swapped_replies, source, strict=True)}
    assert ("My daughter won't talk to me.", "What happens when you try to talk with her?", 0) in rows
    assert ("My daughter won't talk to me.", "Tell me more.", 1) in rows
    assert {s for _, _, s in rows} == {0, 1}  # no variant of an unswappable context (2) or of a pair row (group -1, 3)
    only_reference = Context("Work is too much.", reference="Ask her.")  # the reference is not read: no variant
    assert len(counterfactual_rows([only_reference], ["Tell him."], np.array([0]))[2]) == 0
