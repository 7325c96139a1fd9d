"""The SQLite store of a rating round: raters (token hashes only), login sessions and one row per judgement.

WAL mode, and every submit is one committed transaction, so a killed server loses nothing that a rater saw saved.
Tokens are random (``secrets.token_urlsafe``), shown once by ``mmrl rate add-rater`` and stored as their SHA-256;
logins compare hashes with ``hmac.compare_digest``. Session ids are stored hashed too.

A judgement's ``choice`` is ``a``, ``b`` or ``tie`` in the pair file's terms (``reply_a`` / ``reply_b``), whatever
side the rater saw each reply on; ``presented`` records that order (``ab``: reply_a shown as "A").
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import secrets
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mmrl.errors import ConfigError

__all__ = ["Rater", "Store", "hash_token", "CHOICES"]

#: A judgement's values, in the pair file's terms.
CHOICES = ("a", "b", "tie")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS raters (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, token_hash TEXT UNIQUE NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    sid_hash TEXT PRIMARY KEY, rater_id INTEGER NOT NULL REFERENCES raters(id), csrf TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS judgements (
    rater_id INTEGER NOT NULL REFERENCES raters(id), item_id TEXT NOT NULL, criterion TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b', 'tie')), presented TEXT NOT NULL CHECK (presented IN ('ab', 'ba')),
    created REAL NOT NULL, updated REAL NOT NULL, PRIMARY KEY (rater_id, item_id, criterion));
CREATE TABLE IF NOT EXISTS comments (
    rater_id INTEGER NOT NULL REFERENCES raters(id), item_id TEXT NOT NULL, comment TEXT NOT NULL,
    updated REAL NOT NULL, PRIMARY KEY (rater_id, item_id));
"""


def hash_token(token: str) -> str:
    """The stored form of a token or session id (SHA-256 hex; tokens are 192 random bits, so no salt is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Rater:
    id: int
    name: str
    is_admin: bool


class Store:
    """One rating round's database. Opens (creating if needed) ``path``; ``create=False`` refuses a missing file."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise ConfigError(f"database {self.path} not found: create it with `mmrl rate add-rater NAME --db {self.path}`")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # raters and sessions
    def add_rater(self, name: str, *, admin: bool = False) -> str:
        """Add a rater and return their token (shown once; only its hash is kept)."""
        name = name.strip()
        if not name or len(name) > 80:
            raise ConfigError(f"a rater name is 1 to 80 characters, got {name!r}")
        token = secrets.token_urlsafe(24)
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO raters (name, token_hash, is_admin, created) VALUES (?, ?, ?, ?)",
                    (name, hash_token(token), int(admin), time.time()),
                )
        except sqlite3.IntegrityError:
            raise ConfigError(f"rater {name!r} already exists in {self.path}; choose another name") from None
        return token

    def raters(self) -> list[Rater]:
        return [Rater(i, n, bool(a)) for i, n, a in self._db.execute("SELECT id, name, is_admin FROM raters ORDER BY id")]

    def rater_for_token(self, token: str) -> Rater | None:
        """The rater whose token this is, comparing hashes in constant time; None for an unknown token."""
        wanted = hash_token(token)
        found = None
        for rid, name, admin, stored in self._db.execute("SELECT id, name, is_admin, token_hash FROM raters"):
            if hmac.compare_digest(stored, wanted):
                found = Rater(rid, name, bool(admin))
        return found

    def open_session(self, rater: Rater) -> tuple[str, str]:
        """A new session for ``rater``: ``(session id for the cookie, its CSRF token)``."""
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)", (hash_token(sid), rater.id, csrf, time.time()))
        return sid, csrf

    def session(self, sid: str | None) -> tuple[Rater, str] | None:
        """``(rater, csrf token)`` of a session cookie, or None."""
        if not sid:
            return None
        row = self._db.execute(
            "SELECT r.id, r.name, r.is_admin, s.csrf FROM sessions s JOIN raters r ON r.id = s.rater_id WHERE s.sid_hash = ?",
            (hash_token(sid),),
        ).fetchone()
        return None if row is None else (Rater(row[0], row[1], bool(row[2])), row[3])

    def close_session(self, sid: str) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM sessions WHERE sid_hash = ?", (hash_token(sid),))

    # judgements
    def save(self, rater: Rater, item_id: str, choices: Mapping[str, str], presented: str, comment: str = "") -> None:
        """Store one submit (every criterion's choice and the comment) as one committed transaction."""
        bad = {k: v for k, v in choices.items() if v not in CHOICES}
        if bad or presented not in ("ab", "ba"):
            raise ConfigError(f"choices must be one of {CHOICES} and presented 'ab' or 'ba', got {bad or presented!r}")
        now = time.time()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for criterion, choice in choices.items():
                self._db.execute(
                    "INSERT INTO judgements VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rater_id, item_id, criterion) "
                    "DO UPDATE SET choice = excluded.choice, presented = excluded.presented, updated = excluded.updated",
                    (rater.id, item_id, criterion, choice, presented, now, now),
                )
            if comment.strip():
                self._db.execute(
                    "INSERT INTO comments VALUES (?, ?, ?, ?) ON CONFLICT (rater_id, item_id) DO UPDATE SET comment = excluded.comment, updated = excluded.updated",
                    (rater.id, item_id, comment.strip(), now),
                )
            else:
                self._db.execute("DELETE FROM comments WHERE rater_id = ? AND item_id = ?", (rater.id, item_id))

    def judgements_of(self, rater: Rater, item_id: str) -> tuple[dict[str, str], str]:
        """One rater's own ``({criterion: choice}, comment)`` on one item."""
        choices = dict(self._db.execute("SELECT criterion, choice FROM judgements WHERE rater_id = ? AND item_id = ?", (rater.id, item_id)))
        row = self._db.execute("SELECT comment FROM comments WHERE rater_id = ? AND item_id = ?", (rater.id, item_id)).fetchone()
        return choices, row[0] if row else ""

    def rated_items(self, rater: Rater, questions: Iterable[str]) -> set[str]:
        """The items on which ``rater`` answered every question."""
        questions = tuple(questions)
        marks = ",".join("?" * len(questions))
        rows = self._db.execute(
            f"SELECT item_id FROM judgements WHERE rater_id = ? AND criterion IN ({marks}) GROUP BY item_id HAVING COUNT(*) = ?",
            (rater.id, *questions, len(questions)),
        )
        return {r[0] for r in rows}

    def rows(self) -> list[dict]:
        """Every judgement with its rater's name and the item's comment, in rater, item, criterion order."""
        cursor = self._db.execute(
            "SELECT r.name, j.item_id, j.criterion, j.choice, j.presented, j.created, j.updated, COALESCE(c.comment, '') "
            "FROM judgements j JOIN raters r ON r.id = j.rater_id "
            "LEFT JOIN comments c ON c.rater_id = j.rater_id AND c.item_id = j.item_id ORDER BY r.name, j.item_id, j.criterion"
        )
        names = ("rater", "item_id", "criterion", "choice", "presented", "created", "updated", "comment")
        return [dict(zip(names, row)) for row in cursor]

    def export_csv(self, out: Path) -> int:
        """Write every judgement to ``out`` (CSV); returns the number of rows."""
        rows = self.rows()
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["rater", "item_id", "criterion", "choice", "presented", "created", "updated", "comment"])
            writer.writeheader()
            writer.writerows(rows)
        return len(rows)
