"""Pair files: both shapes read, bad lines named by file and line, make-pairs from two eval directories."""

from __future__ import annotations

import json

import pytest

from mmrl.errors import ConfigError, DataError
from mmrl.rate.pairs import load_key, load_pairs, make_pairs
from tests.rate.helpers import synthetic_pairs, write_jsonl


def test_blind_format_with_and_without_context(tmp_path):
    pairs, _ = synthetic_pairs(2)
    pairs.append({"id": "bare", "dialogue_id": "7", "turn_index": 3, "reply_a": "x", "reply_b": "y"})
    loaded = load_pairs(write_jsonl(tmp_path / "p.jsonl", pairs))
    assert [p.id for p in loaded] == ["s01", "s02", "bare"]
    assert loaded[0].has_context and loaded[0].history[0] == ("therapist", "Hi, what brings you here today?")
    assert not loaded[2].has_context


def test_context_string_format_ids_default_to_line_numbers(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"context": "client: hi", "reply_a": "a", "reply_b": "b"}\n\n{"context": "c", "reply_a": "a", "reply_b": "b"}\n')
    assert [(p.id, p.context) for p in load_pairs(path)] == [("1", "client: hi"), ("3", "c")]


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "p.jsonl:2: invalid JSON"),
        ('{"id": "x", "reply_a": "a"}', "p.jsonl:2, field 'reply_b': missing 'reply_b'"),
        ('{"id": "x", "reply_a": 3, "reply_b": "b"}', "field 'reply_a': expected a string"),
        ('{"id": "ok", "reply_a": "a", "reply_b": "b"}', "id 'ok' repeats line 1"),
        ('{"id": "y", "reply_a": "a", "reply_b": "b", "history": ["hi"]}', "field 'history'"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_pair_files_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "ok", "reply_a": "a", "reply_b": "b"}\n' + line + "\n")
    with pytest.raises(DataError, match="p.jsonl:2") as err:
        load_pairs(path)
    assert message in str(err.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_pairs(tmp_path / "nope.jsonl")
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty"):
        load_pairs(tmp_path / "e.jsonl")
    (tmp_path / "k.jsonl").write_text('{"id": "1", "a": "x", "b": "x"}\n')
    with pytest.raises(DataError, match="k.jsonl:1"):
        load_key(tmp_path / "k.jsonl")


def _eval_dir(root, name, replies, failures=None):
    failures = failures or {}
    d = root / name
    d.mkdir()
    rows = [
        {"dialogue_id": str(i // 2), "turn_index": i % 2 * 2 + 1, "reply": r, "completion": r, "reference": "secret ref", "generation_failure": failures.get(i)}
        for i, r in enumerate(replies)
    ]  # fmt: skip
    write_jsonl(d / "samples.jsonl", rows)
    return d


def test_make_pairs_is_blind_seeded_and_skips_failures(tmp_path):
    a = _eval_dir(tmp_path, "sft", [f"sft {i}" for i in range(8)], failures={0: "timeout"})
    b = _eval_dir(tmp_path, "grpo", [f"grpo {i}" for i in range(8)], failures={1: "timeout"})
    pairs, key = make_pairs(a, b, n=5, seed=3)
    assert (pairs, key) == make_pairs(a, b, n=5, seed=3)
    assert len(pairs) == 5 and {(p["dialogue_id"], p["turn_index"]) for p in pairs}.isdisjoint({("0", 1), ("0", 3)})
    for p, k in zip(pairs, key):
        assert p["id"] == k["id"] and {k["a"], k["b"]} == {"sft", "grpo"}
        assert p["reply_a"].startswith(k["a"]) and p["reply_b"].startswith(k["b"])
        assert "secret ref" not in json.dumps(p) and "sft" not in set(p) | set(p.values())
    assert {k["a"] for k in key} == {"sft", "grpo"}  # both orders occur
    with pytest.raises(ConfigError, match="only 6 turns .* --n 7"):
        make_pairs(a, b, n=7)


def test_make_pairs_adds_context_from_data(tmp_path):
    from mmrl.data.sources import load_dialogues

    dialogues = load_dialogues(None, split=None)[:2]
    rows = []
    for d in dialogues:
        idx = next(i for i, t in enumerate(d.turns) if t.speaker == "therapist" and i > 0)
        rows.append(
            {"dialogue_id": d.id, "turn_index": idx, "reply": "r", "completion": "r", "reference": "ref", "generation_failure": None}
        )
    for name in ("x", "y"):
        (tmp_path / name).mkdir()
        write_jsonl(tmp_path / name / "samples.jsonl", [{**r, "reply": f"{name} reply"} for r in rows])
    pairs, _ = make_pairs(tmp_path / "x", tmp_path / "y", n=2, data=None)
    assert "client_utterance" not in pairs[0]
    pairs, _ = make_pairs(tmp_path / "x", tmp_path / "y", n=2, seed=0, data=_demo_path(tmp_path, dialogues))
    assert pairs[0]["client_utterance"] and isinstance(pairs[0]["history"], list)
    assert all("reference" not in p for p in pairs)


def _demo_path(tmp_path, dialogues):
    from mmrl.data.synth import generate

    return generate(tmp_path / "corpus", n_dialogues=40, seed=0)
