"""The SQLite store: hashed tokens, WAL, one committed row per judgement, upserts on revision, CSV export."""

from __future__ import annotations

import csv
import sqlite3

import pytest

from mmrl.errors import ConfigError
from mmrl.rate import QUESTIONS
from mmrl.rate.store import Store, hash_token


def test_tokens_are_stored_only_as_hashes(tmp_path):
    store = Store(tmp_path / "r.sqlite")
    token = store.add_rater("ana")
    admin = store.add_rater("boss", admin=True)
    assert len(token) >= 32 and token != admin
    dump = "\n".join(sqlite3.connect(tmp_path / "r.sqlite").iterdump())
    assert token not in dump and admin not in dump and hash_token(token) in dump
    assert store.rater_for_token(token).name == "ana" and store.rater_for_token(admin).is_admin
    assert store.rater_for_token("wrong") is None and store.rater_for_token("") is None
    with pytest.raises(ConfigError, match="already exists"):
        store.add_rater("ana")


def test_wal_mode_and_missing_db(tmp_path):
    Store(tmp_path / "r.sqlite")
    assert sqlite3.connect(tmp_path / "r.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(ConfigError, match="add-rater"):
        Store(tmp_path / "missing.sqlite", create=False)


def test_judgements_upsert_and_are_visible_to_a_new_connection(tmp_path):
    store = Store(tmp_path / "r.sqlite")
    store.add_rater("ana")
    store.add_rater("ben")
    ana, ben = store.raters()
    store.save(ana, "p1", {q: "a" for q in QUESTIONS}, "ba", comment="  first  ")
    store.save(ana, "p1", {"safety": "tie"}, "ba", comment="")
    store.save(ben, "p1", {"safety": "b"}, "ab")
    other = Store(tmp_path / "r.sqlite")  # committed: another connection sees it at once
    choices, comment = other.judgements_of(ana, "p1")
    assert choices["safety"] == "tie" and choices["empathy"] == "a" and comment == ""
    assert other.rated_items(ana, QUESTIONS) == {"p1"} and other.rated_items(ben, QUESTIONS) == set()
    rows = other.rows()
    assert len(rows) == len(QUESTIONS) + 1 and {r["presented"] for r in rows if r["rater"] == "ana"} == {"ba"}
    assert rows[0]["created"] <= rows[0]["updated"]
    with pytest.raises(ConfigError):
        store.save(ana, "p1", {"safety": "A"}, "ab")
    n = other.export_csv(tmp_path / "out.csv")
    with (tmp_path / "out.csv").open() as f:
        exported = list(csv.DictReader(f))
    assert n == len(exported) == len(rows) and set(exported[0]) >= {
        "rater",
        "item_id",
        "criterion",
        "choice",
        "presented",
        "created",
        "updated",
    }


def test_sessions_are_hashed_and_closable(tmp_path):
    store = Store(tmp_path / "r.sqlite")
    store.add_rater("ana")
    sid, csrf = store.open_session(store.raters()[0])
    assert store.session(sid)[0].name == "ana" and store.session(sid)[1] == csrf
    assert sid not in "\n".join(sqlite3.connect(tmp_path / "r.sqlite").iterdump())
    store.close_session(sid)
    assert store.session(sid) is None and store.session(None) is None
