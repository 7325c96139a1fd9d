"""A crash-safe on-disk score cache (SQLite, WAL) and :class:`CachedReward`, which only scores misses.

A cache key is the SHA-256 of: reward name, version, the reward's ``fingerprint`` attribute (a
string that must change whenever the scores would: its options, model id, judge id, prompt
template hash; ``""`` when the reward has none), ``Context.key()`` and the scored text.

Every write is one transaction in WAL mode, so a process killed mid-write (even SIGKILL) leaves the
last committed state, readable by the next opener. Each process opens one connection per file
(re-opened after a fork); several processes on one machine may share a file (SQLite locking, with a
30 s busy timeout). Failed scores are never stored: they are retried on the next call.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from mmrl.errors import ConfigError
from rewards.base import Context, Reward, RewardBatch

__all__ = ["RewardCache", "CachedReward", "context_key"]

_CHUNK = 500  # keys per SELECT (well under SQLite's bound-parameter limit)
_CONNECTIONS: dict[tuple[int, str], tuple[sqlite3.Connection, threading.Lock]] = {}
_CONNECTIONS_LOCK = threading.Lock()
_CONTEXT_KEYS: dict[int, tuple[weakref.ref, str]] = {}


def context_key(context: Context) -> str:
    """``context.key()``, memoised per live Context object (it costs ~0.3 ms; a batch repeats contexts)."""
    entry = _CONTEXT_KEYS.get(id(context))
    if entry is not None and entry[0]() is context:
        return entry[1]
    key = context.key()
    ident = id(context)
    _CONTEXT_KEYS[ident] = (weakref.ref(context, lambda _ref: _CONTEXT_KEYS.pop(ident, None)), key)
    return key


def _connection(path: str) -> tuple[sqlite3.Connection, threading.Lock]:
    with _CONNECTIONS_LOCK:
        slot = (os.getpid(), path)  # a forked child never reuses its parent's connection
        if slot not in _CONNECTIONS:
            try:
                conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("CREATE TABLE IF NOT EXISTS scores (key BLOB PRIMARY KEY, score REAL NOT NULL) WITHOUT ROWID")
            except sqlite3.Error as exc:
                raise ConfigError(f"reward cache {path} is not a usable SQLite database ({exc}): delete it (it is rebuilt) "
                                  "or point 'cache' elsewhere") from None  # fmt: skip
            _CONNECTIONS[slot] = (conn, threading.Lock())
        return _CONNECTIONS[slot]


class RewardCache:
    """Scores by key in one SQLite file; picklable (a copy re-opens the file in its own process).

    The last ``memory_items`` rows read or written are also kept in memory, so re-scoring a recent
    batch does not touch SQLite (safe: a key's score never changes, since the key covers everything it depends on).
    """

    def __init__(self, path: str | os.PathLike, *, memory_items: int = 200_000) -> None:
        self.path = Path(path).expanduser().resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.memory_items = memory_items
        self._memory: dict[bytes, float] = {}  # read-through copy of recent rows (a key's score never changes)
        _connection(str(self.path))

    def get_many(self, keys: Iterable[bytes]) -> dict[bytes, float]:
        """The stored scores of those ``keys`` that are present."""
        keys, memory = list(keys), self._memory
        found = {key: memory[key] for key in keys if key in memory}
        rest = [key for key in keys if key not in found]
        if rest:
            conn, lock = _connection(str(self.path))
            with lock:
                for start in range(0, len(rest), _CHUNK):
                    chunk = rest[start : start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    found.update(conn.execute(f"SELECT key, score FROM scores WHERE key IN ({marks})", chunk).fetchall())
            self._remember({key: found[key] for key in rest if key in found})
        return found

    def put_many(self, items: Mapping[bytes, float]) -> None:
        """Store finite scores in one transaction (all or nothing if the process dies)."""
        rows = [(key, float(score)) for key, score in items.items() if math.isfinite(score)]
        if not rows:
            return
        conn, lock = _connection(str(self.path))
        with lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO scores (key, score) VALUES (?, ?)", rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        self._remember(dict(rows))

    def _remember(self, rows: Mapping[bytes, float]) -> None:
        memory = self._memory
        memory.update(rows)
        if len(memory) > self.memory_items:  # drop the oldest half
            for key in list(itertools.islice(memory, len(memory) - self.memory_items // 2)):
                memory.pop(key, None)

    def __len__(self) -> int:
        conn, lock = _connection(str(self.path))
        with lock:
            return conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0]

    def __reduce__(self):
        return (_open, (self.path, self.memory_items))

    def __repr__(self) -> str:
        return f"RewardCache({str(self.path)!r})"


def _open(path: Path, memory_items: int) -> RewardCache:
    return RewardCache(path, memory_items=memory_items)


class CachedReward:
    """Wraps a Reward: looks every ``(context, reply)`` up in ``cache`` and calls the reward on the misses only.

    Same ``name``, ``version``, ``score_range``, ``reads`` and ``fingerprint`` as the wrapped reward.
    Duplicate pairs in one batch are scored once. ``hits`` counts the pairs answered from the cache,
    ``misses`` the pairs the wrapped reward scored.
    """

    def __init__(self, reward: Reward, cache: RewardCache) -> None:
        self.reward, self.cache = reward, cache
        self.name, self.version, self.score_range = reward.name, reward.version, reward.score_range
        self.reads = getattr(reward, "reads", "reply")
        self.fingerprint = getattr(reward, "fingerprint", "")
        self.__name__ = reward.name
        self._prefix = "\0".join((self.name, self.version, self.fingerprint)).encode() + b"\0"
        self.hits = self.misses = 0

    def key(self, context: Context, reply: str) -> bytes:
        """The cache key of one scored pair."""
        return hashlib.sha256(self._prefix + context_key(context).encode() + b"\0" + reply.encode()).digest()

    def __call__(self, contexts: Sequence[Context], replies: Sequence[str]) -> RewardBatch:
        keys = [self.key(c, r) for c, r in zip(contexts, replies, strict=True)]
        found = self.cache.get_many(set(keys))
        scores = np.array([found.get(k, math.nan) for k in keys], dtype=np.float64)
        first: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            if k not in found:
                first.setdefault(k, i)
        self.hits += len(keys) - sum(k not in found for k in keys)
        self.misses += len(first)
        failures: dict[int, str] = {}
        if first:
            todo = list(first.values())
            batch = self.reward([contexts[i] for i in todo], [replies[i] for i in todo])
            computed = {keys[i]: (float(batch.scores[j]), batch.failures.get(j)) for j, i in enumerate(todo)}
            self.cache.put_many({k: score for k, (score, reason) in computed.items() if reason is None})
            for i, k in enumerate(keys):
                if k in computed:
                    scores[i], reason = computed[k]
                    if reason is not None:
                        failures[i] = reason
        return RewardBatch(scores, failures)

    def __repr__(self) -> str:
        return f"CachedReward({self.reward!r}, {self.cache!r})"
