"""``mmrl env list|check|prompts`` through their own parser (``envs.cli.add_commands``)."""

from __future__ import annotations

import argparse
import json

import pytest

from envs.cli import add_commands
from mmrl.errors import ConfigError, SplitLeakError


def _run(*argv: str) -> None:
    parser = argparse.ArgumentParser(prog="mmrl")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.func(args)


def test_list(capsys):
    _run("env", "list", "--json")
    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["mmrl/CounselingText-v0"] == {
        "id": "mmrl/CounselingText-v0",
        "entry_point": "envs.counseling:CounselingEnv",
        "kwargs": {"media": False},
    }


def test_check(corpus_dir, capsys):
    _run("env", "check", "mmrl/CounselingText-v0", "mmrl/Counseling-v0", "--data", str(corpus_dir), "--split", "val")
    out = capsys.readouterr().out.splitlines()
    assert out == ["mmrl/CounselingText-v0     ok", "mmrl/Counseling-v0         ok"]
    with pytest.raises(ConfigError, match="did you mean 'mmrl/Counseling-v0'"):
        _run("env", "check", "mmrl/Counselling-v0")


def test_prompts(corpus_dir, tmp_path, capsys):
    out = tmp_path / "prompts.jsonl"
    _run("env", "prompts", str(corpus_dir), "--out", str(out), "--max-history-turns", "2")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and {row["split"] for row in rows} == {"train"} and rows[0]["prompt"][0]["role"] == "system"
    assert f"to {out}" in capsys.readouterr().out
    with pytest.raises(SplitLeakError):
        _run("env", "prompts", str(corpus_dir), "--out", str(out), "--split", "test", "--overwrite")
    _run("env", "prompts", str(corpus_dir), "--out", str(out), "--split", "test", "--eval", "--overwrite")
    assert {json.loads(line)["split"] for line in out.read_text().splitlines()} == {"test"}
