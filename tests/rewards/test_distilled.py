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
