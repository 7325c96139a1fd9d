"""Bad input and faults, one row each: what a careless or hostile user does, and the mmrl error they must get.

A :class:`Fault` writes its bad input under ``tmp_path`` and returns an ``mmrl`` command line; the test
runs it in-process and expects the exit status and a regex in the command's stderr (stdout when it
succeeds). To add a case, add a row to :data:`FAULTS`: no traceback from a library, the file, line and
field named, never a silent zero or a silently smaller dataset. Cases that need a Python API call or a
trained run are the test functions after the table.
"""

from __future__ import annotations

import csv
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mmrl.cli import main
from tests.fixtures.mesc import write_mesc


@dataclass(frozen=True)
class Fault:
    """One bad input: ``setup(tmp_path) -> argv``, the expected exit status and a regex in the command's output."""

    name: str
    setup: Callable[[Path], list[str]]
    status: int
    expect: str
    origin: str = "issue 13"


def _mesc(tmp_path: Path, edit: Callable[[list[list[str]]], None] | None = None) -> Path:
    """The tiny MESC fixture, its CSV rows passed through ``edit`` (header first)."""
    root = write_mesc(tmp_path / "mesc")
    if edit is not None:
        path = root / "MESC.csv"
        rows = list(csv.reader(path.open(newline="", encoding="utf-8")))
        edit(rows)
        with path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(rows)
    return root


def _short_last_row(tmp_path: Path, *extra: str) -> list[str]:
    def cut(rows: list[list[str]]) -> None:
        rows[-1] = rows[-1][:-3]

    return ["data", "stats", str(_mesc(tmp_path, cut)), "--format", "mesc", *extra]


def _huge_field(tmp_path: Path) -> list[str]:
    root = _mesc(tmp_path)
    text = (root / "MESC.csv").read_text(encoding="utf-8").splitlines()
    text.insert(3, '"' + "x" * 200_000)  # an unclosed quote swallows the rest of the file into one field
    (root / "MESC.csv").write_text("\n".join(text) + "\n", encoding="utf-8")
    return ["data", "stats", str(root), "--format", "mesc"]


def _bad_header(tmp_path: Path) -> list[str]:
    root = _mesc(tmp_path)
    header = (root / "MESC.csv").read_text(encoding="utf-8").splitlines()[0]
    (root / "MESC.csv").write_text('"' + header + "\n" + "x" * 200_000 + "\n", encoding="utf-8")  # the quote never closes
    return ["data", "stats", str(root), "--format", "mesc"]


def _empty_val(tmp_path: Path) -> list[str]:
    root = _mesc(tmp_path)
    (root / "val.json").write_text("[]\n", encoding="utf-8")
    return ["data", "stats", str(root), "--format", "mesc"]


def _bad_label_in_val(tmp_path: Path) -> list[str]:
    def relabel(rows: list[list[str]]) -> None:
        row = next(r for r in rows[1:] if r[4] == "1")  # dialogue 1 is the val dialogue
        row[2] = "happyish"

    return ["data", "stats", str(_mesc(tmp_path, relabel)), "--format", "mesc", "--on-error", "skip"]


def _score_input(tmp_path: Path, data: bytes, *extra: str) -> list[str]:
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    return ["rewards", "score", "--input", str(path), "--criteria", "length", *extra]


_LINE = b'{"context": "I lost my job.", "response": "That sounds hard. What happened?"}\n'


def _jsonl_corpus(tmp_path: Path) -> Path:
    good = {"id": "d1", "split": "train", "turns": [{"speaker": "client", "text": "My father died.", "emotion": "sadness"},
                                                    {"speaker": "therapist", "text": "What was he like?", "emotion": "neutral", "strategy": "Open question"}]}  # fmt: skip
    path = tmp_path / "corpus.jsonl"
    path.write_text(json.dumps(good) + "\n{broken\n" + json.dumps({**good, "id": "d2"}) + "\n", encoding="utf-8")
    return path


def _spec(tmp_path: Path, rewards: dict) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"rewards": rewards}), encoding="utf-8")
    return path


def _spec_with_cache(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"cache": str(tmp_path / "cache.sqlite"), "rewards": {"length": 1.0}}), encoding="utf-8")
    return path


def _train_config(tmp_path: Path, **fields) -> Path:
    from tests.train.conftest import rl_run_fields

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(rl_run_fields(fields.pop("output_dir", tmp_path / "run"), **fields)), encoding="utf-8")
    return path


def _silent_server() -> tuple[str, socket.socket]:
    """A port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.extend(iter(lambda: listener.accept()[0], None)), daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/v1", listener


FAULTS: list[Fault] = [
    # MESC.csv and its split files
    Fault("MESC.csv: short last row", _short_last_row, 2, r"MESC\.csv:18: row has 7 fields, expected 10"),
    Fault("MESC.csv: short last row, skipped", lambda p: _short_last_row(p, "--on-error", "skip", "--json"), 0, r'"skipped": 1'),
    Fault(
        "MESC.csv: a row too short to hold its Dialogue_ID",
        lambda p: ["data", "stats", str(_mesc(p, lambda rows: rows.__setitem__(5, rows[5][:3]))), "--format", "mesc"],
        2,
        r"MESC\.csv:6: row has 3 fields, expected 10",
    ),
    Fault("MESC.csv: unclosed quote in the header", _bad_header, 2, r"MESC\.csv:1: unreadable CSV header"),
    Fault(
        "MESC.csv: field over the csv module's limit",
        _huge_field,
        2,
        r"MESC\.csv:4: unreadable CSV from here on \(field larger than field limit",
    ),
    Fault("val.json: empty list", _empty_val, 2, r"val\.json: no dialogues: an empty split file would move the whole split into train"),
    Fault(
        "MESC.csv: bad label in a val dialogue, skipped",
        _bad_label_in_val,
        2,
        r"MESC\.csv:\d+, field 'Emotion': .*happyish.*val\.json record #0: a val/test dialogue cannot be skipped",
    ),
    Fault(
        "a directory given as a file",
        lambda p: ["rewards", "score", "--input", str(p), "--criteria", "length"],
        2,
        r"is a directory; expected a file",
    ),
    # rewards score input
    Fault(
        "rewards score: a byte that is not UTF-8",
        lambda p: _score_input(p, _LINE + b'{"context": "caf\xe9", "response": "ok"}\n'),
        2,
        r"in\.jsonl:2: not valid UTF-8 \(byte 0xe9\)",
    ),
    Fault(
        "rewards score: UTF-8 BOM and U+2028 inside a string",
        lambda p: _score_input(p, b"\xef\xbb\xbf" + _LINE + '{"context": "a\u2028b", "response": "ok"}\n'.encode(), "--json"),
        0,
        r'"index": 1, "scores": \{"length"',
    ),
    Fault(
        "rewards score: a gate outside the reward's range",
        lambda p: [
            "rewards",
            "score",
            "--input",
            str(_score_input(p, _LINE)[3]),
            "--config",
            str(_spec(p, {"length": {"weight": 1.0, "gate": 1.5}})),
        ],
        2,
        r"rewards\.length\.gate of .*spec\.yaml: threshold 1\.5 is outside the open range \(0, 1\)",
    ),
    Fault(
        "rewards score: a component whose model does not exist",
        lambda p: [
            "rewards",
            "score",
            "--input",
            str(_score_input(p, _LINE)[3]),
            "--config",
            str(_spec(p, {"length": 1.0, "empathy": {"weight": 1.0, "options": {"model": str(p / "no-such-model")}}})),
        ],
        2,
        r"rewards\.empathy of .*spec\.yaml",
    ),
    Fault(
        "rewards score: a reward cache that is not SQLite",
        lambda p: (
            p.joinpath("cache.sqlite").write_bytes(b"not a database" * 100),
            ["rewards", "score", "--input", str(_score_input(p, _LINE)[3]), "--config", str(_spec_with_cache(p))],
        )[-1],
        2,
        r"reward cache .*cache\.sqlite is not a usable SQLite database .*delete it",
    ),
    # outputs
    Fault(
        "env prompts: --out is the input",
        lambda p: ["env", "prompts", str(_jsonl_corpus(p)), "--out", str(p / "corpus.jsonl")],
        2,
        r"is the command's own input",
    ),
    Fault(
        "env prompts: a bad record, skipped and counted",
        lambda p: ["env", "prompts", str(_jsonl_corpus(p)), "--out", str(p / "prompts.jsonl"), "--on-error", "skip"],
        0,
        r"wrote 2 prompts",
    ),
    Fault(
        "demo: --out holds an earlier demo",
        lambda p: (p.joinpath("demo", "sft").mkdir(parents=True), ["demo", "--out", str(p / "demo")])[1],
        2,
        r"--out .*demo: .*sft already exists; pass --overwrite",
    ),
    Fault(
        "predictor train: --out holds a checkpoint",
        lambda p: (
            p.joinpath("ckpt").mkdir(),
            p.joinpath("ckpt", "model.safetensors").write_bytes(b"x"),
            ["predictor", "train", "--data", str(_jsonl_corpus(p)), "--out", str(p / "ckpt")],
        )[-1],
        2,
        r"model\.safetensors already exists; pass --overwrite",
    ),
    Fault(
        "train: output_dir is a file",
        lambda p: ["train", "--config", str(_train_config(p, output_dir=str(_score_input(p, _LINE)[3])))],
        2,
        r"output_dir .* is a file, not a directory",
    ),
    Fault(
        "train: output_dir cannot be created",
        lambda p: ["train", "--config", str(_train_config(p, output_dir="/proc/mmrl-run"))],
        2,
        r"output_dir /proc/mmrl-run is not writable",
    ),
    Fault(
        "train: on_error misspelt",
        lambda p: ["train", "--config", str(_train_config(p, on_error="skipp"))],
        2,
        r"on_error must be 'raise' or 'skip', got 'skipp'",
    ),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault(fault: Fault, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = fault.setup(tmp_path)
    status = main(argv)
    out, err = capsys.readouterr()
    shown = out if fault.status == 0 else err
    assert status == fault.status, f"{fault.name}: exit {status}, expected {fault.status}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
    assert re.search(fault.expect, shown, re.DOTALL), f"{fault.name}: {fault.expect!r} not in:\n{shown[-3000:]}"
    assert "Traceback" not in err


def test_a_policy_server_that_never_answers_fails_fast_with_timeout_flags(tmp_path, capsys):
    """Before: 120 s x 4 attempts per prompt with no flag to shorten it; now --timeout / --max-retries bound it."""
    url, listener = _silent_server()
    try:
        start = time.monotonic()
        status = main(["eval", "--policy", f"openai:m@{url}", "--max-prompts", "2", "--timeout", "0.5", "--max-retries", "0"])
        elapsed = time.monotonic() - start
    finally:
        listener.close()
    err = capsys.readouterr().err
    assert status == 2 and re.search(r"2 generations of '.*' failed, e\.g\.: timed out after 0\.5 s \(gave up after 1 attempts\)", err)
    assert elapsed < 60, f"took {elapsed:.0f} s"


def test_a_full_disk_during_a_checkpoint_is_named(tmp_path, monkeypatch):
    """Before: ``RuntimeError: [enforce fail at inline_container.cc:672]`` from inside torch.save."""
    import shutil
    from collections import namedtuple

    import torch

    from mmrl.errors import DiskFullError
    from mmrl.train.config import RLRunConfig
    from mmrl.train.rl import run_rl
    from tests.train.conftest import rl_run_fields

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 4096))
    with pytest.raises(DiskFullError, match=r"no space left on the device of .*run \(0 MiB free\) while writing"):
        run_rl(RLRunConfig(**rl_run_fields(tmp_path / "run", max_steps=1)))


def test_train_skips_bad_records_when_asked_and_counts_them(tmp_path, capsys):
    corpus = _jsonl_corpus(tmp_path)
    config = _train_config(tmp_path, data=str(corpus), max_steps=1, eval_max_prompts=1)
    assert main(["train", "--config", str(config)]) == 2
    assert re.search(r"corpus\.jsonl:2: invalid JSON", capsys.readouterr().err)
    with pytest.warns(UserWarning, match=r"skipped 1 bad record"):
        assert main(["train", "--config", str(config), "--on-error", "skip"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data"]["on_error"] == "skip" and summary["data"]["skipped"] == 1


def test_a_run_rereads_data_whose_files_changed(tmp_path):
    """The corpus is loaded once per run (train prompts, val evaluation, summary), but never served stale."""
    from mmrl.train.config import SFTRunConfig
    from mmrl.train.runs import data_corpus

    corpus = _jsonl_corpus(tmp_path)
    config = SFTRunConfig(data=str(corpus), on_error="skip", output_dir=str(tmp_path / "run"))
    with pytest.warns(UserWarning, match="skipped 1 bad record"):
        first = data_corpus(config)
    assert data_corpus(config) is first and len(first.dialogues) == 2
    corpus.write_text(corpus.read_text(encoding="utf-8").replace("{broken\n", ""), encoding="utf-8")
    assert len(data_corpus(config).dialogues) == 2 and not data_corpus(config).report.skipped
