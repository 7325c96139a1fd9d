"""``mmrl rewards score`` / ``mmrl rewards list`` through ``mmrl.cli.main``."""

from __future__ import annotations

import json

import pytest

from mmrl.cli import main
from rewards import registry
from rewards.registry import register

BLOCK = "Client emotion: sadness\nTherapist emotion: sadness\nStrategy: Restatement\nReply: You feel alone."
LINES = [
    {"context": "I feel so alone since the move.", "response": "That sounds lonely."},
    {
        "context": [
            {"speaker": "client", "text": "Hi."},
            {"speaker": "therapist", "text": "Hello."},
            {"speaker": "client", "text": "I feel alone."},
        ],
        "response": BLOCK,
        "reference": "It sounds lonely.",
        "client_emotion": "Sadness",
        "strategy": "restatement",
    },
    {"context": "Work is too much.", "response": ""},
]


@pytest.fixture
def toys(monkeypatch):
    """Two toy rewards in a registry of their own (built-ins not loaded)."""
    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_load_builtins", lambda: None)

    @register("words", score_range=(0.0, 100.0))
    def words(contexts, replies):
        """Words in the reply."""
        return [float(len(r.split())) for r in replies]

    @register("has_history", version="3")
    def has_history(contexts, replies):
        """1 when the context has earlier turns; None when the reply is empty."""
        return [float(bool(c.history)) if r else None for c, r in zip(contexts, replies)]


def _write(tmp_path, lines) -> str:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return str(path)


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_score_prints_one_line_per_input_in_order(toys, tmp_path, capsys):
    assert main(["rewards", "score", "--input", _write(tmp_path, LINES), "--criteria", "words,has_history", "--json"]) == 0
    rows = _json_lines(capsys.readouterr().out)
    assert [r["index"] for r in rows] == [0, 1, 2]
    assert rows[0] == {"index": 0, "scores": {"words": 3.0, "has_history": 0.0}, "failures": {}}
    assert rows[1]["scores"] == {"words": 3.0, "has_history": 1.0}  # the parsed Reply:, the turn list's history
    assert rows[2] == {"index": 2, "scores": {"words": 0.0, "has_history": None}, "failures": {"has_history": "returned None"}}


def test_score_with_a_config_adds_the_total(toys, tmp_path, capsys):
    config = tmp_path / "rewards.yaml"
    config.write_text("on_missing: skip\nrewards:\n  words: 0.5\n  has_history: {weight: 2.0}\n")
    assert main(["rewards", "score", "--input", _write(tmp_path, LINES), "--config", str(config), "--json"]) == 0
    assert [r["total"] for r in _json_lines(capsys.readouterr().out)] == [1.5, 3.5, 0.0]


def test_score_prints_a_table_without_json(toys, tmp_path, capsys):
    assert main(["rewards", "score", "--input", _write(tmp_path, LINES), "--criteria", "words"]) == 0
    out = capsys.readouterr().out
    assert "words" in out and "3.000" in out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"in\.jsonl:2: invalid JSON"),
        (json.dumps({"context": "hi"}), r"in\.jsonl:2, field 'response': expected a string, got nothing"),
        (json.dumps({"response": "hi"}), r"in\.jsonl:2, field 'context': missing"),
        (json.dumps({"context": "hi", "response": "ok", "refrence": "x"}), r"field 'refrence': unknown field; did you mean 'reference'"),
        (json.dumps({"context": [{"speaker": "coach", "text": "x"}], "response": "ok"}), r"field 'context\[0\]'"),
        (json.dumps({"context": [{"speaker": "therapist", "text": "x"}], "response": "ok"}), "has no client turn"),
        (json.dumps({"context": "hi", "response": "ok", "strategy": "Shouting"}), r"field 'strategy': unknown strategy"),
    ],
)
def test_a_malformed_line_names_file_line_and_field(toys, tmp_path, capsys, line, message):
    path = _write(tmp_path, [LINES[0], line])
    assert main(["rewards", "score", "--input", path, "--criteria", "words", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("mmrl: error: ")
    assert __import__("re").search(message, captured.err), captured.err


def test_unknown_criteria_get_a_did_you_mean(toys, tmp_path, capsys):
    assert main(["rewards", "score", "--input", _write(tmp_path, LINES), "--criteria", "word", "--json"]) == 2
    assert "did you mean 'words'" in capsys.readouterr().err


def test_criteria_and_config_are_exclusive(toys, tmp_path):
    with pytest.raises(SystemExit):
        main(["rewards", "score", "--input", _write(tmp_path, LINES), "--criteria", "words", "--config", "x.yaml"])


def test_build_refuses_zero_epochs_before_reading_any_data(tmp_path, capsys):
    assert main(["rewards", "build", "--data", str(tmp_path / "absent"), "--fit-encoder", "--epochs", "0"]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err


def test_list(toys, capsys):
    assert main(["rewards", "list", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert entries == [
        {
            "name": "has_history",
            "version": "3",
            "range": [0.0, 1.0],
            "description": "1 when the context has earlier turns; None when the reply is empty.",
        },
        {"name": "words", "version": "1", "range": [0.0, 100.0], "description": "Words in the reply."},
    ]
    assert main(["rewards", "list"]) == 0
    assert "has_history" in capsys.readouterr().out


def test_score_defaults_to_the_seven_local_criteria(tmp_path, capsys):
    from rewards.criteria import CRITERIA

    assert main(["rewards", "score", "--input", _write(tmp_path, LINES), "--json"]) == 0
    rows = _json_lines(capsys.readouterr().out)
    assert len(rows) == 3
    for row in rows:
        assert sorted(row["scores"]) == sorted(CRITERIA)
        for name, score in row["scores"].items():
            assert (score is None) == (name in row["failures"])
    assert all(score is not None for score in rows[1]["scores"].values())


def test_a_misconfigured_component_stops_score_before_scoring(tmp_path, capsys):
    """Issue 13: a component whose model is missing used to score NaN on every row and exit 0."""
    config = tmp_path / "rewards.yaml"
    config.write_text("on_missing: skip\nrewards:\n  format: 1.0\n  empathy: {weight: 1.0, options: {model: /no/such/dir}}\n")
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"context": "hi", "response": "hello"}\n')
    assert main(["rewards", "score", "--input", str(inputs), "--config", str(config), "--json"]) == 2
    err = capsys.readouterr().err
    assert "rewards.empathy of" in err and "rewards.yaml" in err and "does not exist" in err
