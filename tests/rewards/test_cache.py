"""RewardCache / CachedReward: hits and misses, failures not cached, speed, and crash safety under SIGKILL."""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from rewards.base import Context, RewardBatch
from rewards.cache import CachedReward, RewardCache
from rewards.registry import FunctionReward

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Counting:
    """Scores len(reply) / 100, fails on replies starting with "fail", records every reply it scored."""

    name, version, score_range, fingerprint = "counting", "1", (0.0, 1.0), "opts-a"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.seen: list[str] = []
        self.delay_s = delay_s

    def __call__(self, contexts, replies):
        self.seen.extend(replies)
        start = time.perf_counter()
        while time.perf_counter() - start < self.delay_s * len(replies):  # busy, like a real scorer (not asleep)
            pass
        failures = {i: "cannot score" for i, r in enumerate(replies) if r.startswith("fail")}
        return RewardBatch(np.array([len(r) / 100 for r in replies]), failures)


def test_only_misses_are_scored_and_failures_are_not_cached(tmp_path):
    cache = RewardCache(tmp_path / "c.sqlite")
    inner = Counting()
    reward = CachedReward(inner, cache)
    contexts = [Context("a"), Context("b"), Context("a")]
    first = reward(contexts, ["hello", "fail now", "hello"])
    np.testing.assert_allclose(first.scores, [0.05, np.nan, 0.05])
    assert first.failures == {1: "cannot score"}
    assert inner.seen == ["hello", "fail now"]  # the duplicate pair is scored once
    second = reward(contexts + [Context("c")], ["hello", "fail now", "hello", "new"])
    assert inner.seen == ["hello", "fail now", "fail now", "new"]  # the failure is retried, the hit is not
    np.testing.assert_allclose(second.scores, [0.05, np.nan, 0.05, 0.03])
    assert second.failures == {1: "cannot score"}
    assert (reward.hits, reward.misses) == (2, 4)
    assert len(cache) == 2


def test_keys_separate_rewards_versions_fingerprints_contexts_and_replies(tmp_path):
    cache = RewardCache(tmp_path / "c.sqlite")
    base = CachedReward(Counting(), cache)
    other = Counting()
    other.fingerprint = "opts-b"
    keys = {
        base.key(Context("a"), "r"),
        base.key(Context("b"), "r"),
        base.key(Context("a"), "r2"),
        base.key(Context("a", reference="gold"), "r"),
        CachedReward(other, cache).key(Context("a"), "r"),
        CachedReward(FunctionReward(lambda c, r: [0.0] * len(r), name="counting", version="2", score_range=(0, 1)), cache).key(
            Context("a"), "r"
        ),
    }
    assert len(keys) == 6
    assert base.key(Context("a"), "r") == CachedReward(Counting(), cache).key(Context("a"), "r")


def test_persists_across_instances_and_pickles(tmp_path):
    path = tmp_path / "c.sqlite"
    CachedReward(Counting(), RewardCache(path))([Context("a")], ["hello"])
    copy = pickle.loads(pickle.dumps(CachedReward(Counting(), RewardCache(path))))
    assert copy([Context("a")], ["hello"]).scores[0] == 0.05
    assert (copy.hits, copy.reward.seen) == (1, [])


def test_rescoring_an_identical_batch_never_reaches_the_scorer(tmp_path):
    """The speed-up itself is measured side by side in benchmarks/ (timings are no test under a loaded CPU)."""
    contexts = [Context(f"utterance {i}", history=(("client", "hi"), ("therapist", "hello"))) for i in range(512)]
    replies = [f"reply number {i} to the client" for i in range(512)]
    inner = Counting()
    reward = CachedReward(inner, RewardCache(tmp_path / "c.sqlite"))
    cold = reward(contexts, replies)
    assert len(inner.seen) == 512 and reward.hits == 0
    warm = reward(contexts, replies)
    np.testing.assert_array_equal(cold.scores, warm.scores)
    assert reward.hits == 512 and len(inner.seen) == 512  # every score came from the cache


_WRITER = textwrap.dedent(
    """
    import hashlib, sys
    from rewards.cache import RewardCache
    cache = RewardCache(sys.argv[1])
    start, step = int(sys.argv[2]), int(sys.argv[3])
    print("ready", flush=True)
    batch = start
    while batch < start + int(sys.argv[4]):
        cache.put_many({hashlib.sha256(str(i).encode()).digest(): (i % 997) / 997 for i in range(batch * step, (batch + 1) * step)})
        batch += 1
    """
)


def _writer(path, start: int, step: int, batches: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": REPO}
    command = [sys.executable, "-c", _WRITER, str(path), str(start), str(step), str(batches)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, env=env)


def _check_consistent(path, step: int) -> int:
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = conn.execute("SELECT key, score FROM scores").fetchall()
    conn.close()
    expected = {hashlib.sha256(str(i).encode()).digest(): (i % 997) / 997 for i in range(len(rows) + 10 * step)}
    assert all(expected[key] == score for key, score in rows)
    assert len(rows) % step == 0  # whole transactions only
    return len(rows)


@pytest.mark.timeout(120)
def test_a_writer_killed_mid_write_leaves_a_consistent_cache(tmp_path):
    path = tmp_path / "c.sqlite"
    step = 2000
    child = _writer(path, 0, step, 10**6)
    assert child.stdout.readline().strip() == b"ready"
    deadline = time.time() + 60
    while time.time() < deadline:  # kill once some transactions have committed, while it keeps writing
        if path.exists() and _count(path) >= 3 * step:
            break
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    n = _check_consistent(path, step)
    assert n >= 3 * step
    cache = RewardCache(path)  # still usable: reads and writes
    assert len(cache) == n
    key = hashlib.sha256(b"0").digest()
    assert cache.get_many([key]) == {key: 0.0}
    cache.put_many({b"new": 0.5})
    assert len(cache) == n + 1


def _count(path) -> int:
    try:
        conn = sqlite3.connect(path, timeout=5)
        return conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not created yet
        return 0
    finally:
        conn.close()


@pytest.mark.timeout(120)
def test_several_processes_share_one_file(tmp_path):
    path = tmp_path / "c.sqlite"
    writers = [_writer(path, k * 20, 100, 20) for k in range(3)]
    for w in writers:
        w.wait(timeout=100)
        assert w.returncode == 0
    assert _check_consistent(path, 100) == 3 * 20 * 100


@pytest.mark.parametrize("kind", ["garbage", "directory"])
def test_an_unusable_cache_file_is_a_config_error_naming_it(tmp_path, kind):
    from mmrl.errors import ConfigError
    from rewards.cache import RewardCache

    path = tmp_path / "scores.sqlite"
    if kind == "garbage":
        path.write_bytes(b"this is not a database" * 100)
    else:
        path.mkdir()
    with pytest.raises(ConfigError, match=r"scores\.sqlite is not a usable SQLite database .*delete it"):
        RewardCache(path)


def test_cache_key_follows_the_fitted_state_of_a_criterion(monkeypatch):
    """Issue 13: refitted probes, new pairs or a new context-fit model under the same name and version are other scores."""
    import rewards.criteria.empathy as module
    from rewards.registry import get_reward

    before = get_reward("empathy").fingerprint
    assert get_reward("empathy").fingerprint == before and get_reward("empathy", learned=False).fingerprint != before
    monkeypatch.setattr(module.LEARNED, "key", lambda model=None: "refitted")
    assert get_reward("empathy").fingerprint != before
