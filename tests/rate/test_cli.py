"""``mmrl rate``: the commands end to end (no server) and their errors."""

from __future__ import annotations

import pytest

from mmrl.cli import main
from mmrl.rate.store import Store
from tests.rate.helpers import scripted_round, synthetic_pairs, write_jsonl


def test_add_rater_prints_token_once_and_stores_its_hash(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    assert main(["rate", "add-rater", "ana", "--db", str(db)]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert Store(db).rater_for_token(token).name == "ana"
    assert token.encode() not in db.read_bytes()
    assert main(["rate", "add-rater", "ana", "--db", str(db)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_report_and_export(tmp_path, capsys):
    db = scripted_round(tmp_path, n=6)
    args = ["rate", "report", "--db", str(db), "--key", str(tmp_path / "key.jsonl"), "--out", str(tmp_path / "rep"), "--bootstrap", "100"]
    assert main(args) == 0
    assert "| overall |" in capsys.readouterr().out
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert main(["rate", "export", "--db", str(db), "--out", str(tmp_path / "r.csv")]) == 0
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 1 + 3 * 6 * 8


@pytest.mark.parametrize(
    "argv, message",
    [
        (["rate", "serve", "--pairs", "{tmp}/missing.jsonl", "--db", "{tmp}/r.sqlite"], "pairs file {tmp}/missing.jsonl not found"),
        (["rate", "serve", "--pairs", "{tmp}/bad.jsonl", "--db", "{tmp}/r.sqlite"], "bad.jsonl:2"),
        (["rate", "serve", "--pairs", "{tmp}/good.jsonl", "--db", "{tmp}/none.sqlite"], "add-rater"),
        (["rate", "report", "--db", "{tmp}/none.sqlite", "--key", "{tmp}/k.jsonl", "--out", "{tmp}/o"], "not found"),
        (["rate", "make-pairs", "--a", "{tmp}", "--b", "{tmp}", "--out", "{tmp}/p.jsonl", "--key", "{tmp}/p.jsonl"], "same file"),
        (
            ["rate", "make-pairs", "--a", "{tmp}/x", "--b", "{tmp}", "--out", "{tmp}/p.jsonl", "--key", "{tmp}/k.jsonl"],
            "samples.jsonl not found",
        ),
    ],
)
def test_errors_are_clear(tmp_path, capsys, argv, message):
    pairs, _ = synthetic_pairs(1)
    write_jsonl(tmp_path / "good.jsonl", pairs)
    (tmp_path / "bad.jsonl").write_text('{"id": "1", "reply_a": "a", "reply_b": "b"}\n{"id": "2"}\n')
    Store(tmp_path / "r.sqlite")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err


def test_report_without_judgements(tmp_path, capsys):
    Store(tmp_path / "r.sqlite")
    write_jsonl(tmp_path / "k.jsonl", [{"id": "s01", "a": "x", "b": "y"}])
    assert (
        main(["rate", "report", "--db", str(tmp_path / "r.sqlite"), "--key", str(tmp_path / "k.jsonl"), "--out", str(tmp_path / "o")]) == 2
    )
    assert "no judgements yet" in capsys.readouterr().err
