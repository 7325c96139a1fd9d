"""mmrl.data.jsonl: round trips, shorthand turns, and a named DataError for every malformed line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmrl.data.jsonl import read_dialogues, write_dialogues
from mmrl.data.media import write_audio, write_video
from mmrl.data.schema import Dialogue, LoadReport, Media, Segment, Turn
from mmrl.errors import DataError


@pytest.fixture
def media(tmp_path) -> dict[str, Path]:
    """A small wav and mp4 under ``tmp_path/media``."""
    return {
        "audio": write_audio(tmp_path / "media" / "c0.wav", np.zeros(1600, dtype=np.float32) + 0.1, 16000),
        "video": write_video(tmp_path / "media" / "c0.mp4", np.full((2, 16, 16, 3), 100, dtype=np.uint8), 8.0),
    }


def _good(dialogue_id: str = "d1", **changes) -> dict:
    record = {
        "id": dialogue_id,
        "split": "train",
        "problem_type": "Grief",
        "situation": "The client's father died last year.",
        "turns": [
            {"speaker": "client", "segments": [{"text": "My father passed away.", "emotion": "sadness"}]},
            {"speaker": "therapist", "segments": [{"text": "What was he like?", "emotion": "neutral", "strategy": "Open question"}]},
        ],
    }
    record.update(changes)
    return record


def _write(path: Path, *lines: object) -> Path:
    """Write lines: dicts as JSON, bytes as-is, str as text."""
    with path.open("wb") as f:
        for line in lines:
            if isinstance(line, bytes):
                f.write(line.rstrip(b"\n") + b"\n")
            elif isinstance(line, str):
                f.write(line.encode("utf-8") + b"\n")
            else:
                f.write(json.dumps(line).encode("utf-8") + b"\n")
    return path


def _sample_dialogues(media: dict[str, Path]) -> list[Dialogue]:
    client = Turn.from_segments(
        "client",
        [
            Segment("I lost my job.", "sadness", None, 0, 0.0, 1.5, media=Media(video_path=media["video"], audio_path=media["audio"])),
            Segment("Twelve years, gone.", "anger", None, 1, 1.5, 2.5, video_description="Looks down."),
            Segment("Just like that.", "anger", None, 2, 2.5, 3.0),
        ],
    )
    therapist = Turn.from_segments("therapist", [Segment("That sounds like a shock.", "neutral", "Restatement", 3, 3.2, 4.0)])
    return [
        Dialogue("a", "train", (client, therapist), "Job Crisis", "Laid off after twelve years.", source="jsonl"),
        Dialogue("b", "test", (Turn.from_segments("client", [Segment("Hi.", None)]),), None, None, source="jsonl"),
    ]


def test_write_read_round_trip(tmp_path, media):
    dialogues = _sample_dialogues(media)
    path = write_dialogues(tmp_path / "out.jsonl", dialogues)
    corpus = read_dialogues(path)
    assert corpus.format == "jsonl" and corpus.source == str(path)
    assert corpus.dialogues == dialogues
    first = corpus.dialogues[0].turns[0]
    assert (first.text, first.emotion, first.strategy) == ("I lost my job. Twelve years, gone. Just like that.", "anger", None)
    assert corpus.dialogues[0].turns[1].strategy == "Restatement"
    # media paths are stored relative to the file's directory
    raw = json.loads(path.read_text().splitlines()[0])
    assert raw["turns"][0]["segments"][0]["audio"] == "media/c0.wav"
    assert write_dialogues(tmp_path / "again.jsonl", corpus.dialogues).read_bytes() == path.read_bytes()


def test_write_refuses_decoded_media_without_a_file(tmp_path):
    segment = Segment("Hi.", "joy", media=Media(waveform=np.zeros(10, dtype=np.float32), sample_rate=16000))
    dialogue = Dialogue("x", "train", (Turn.from_segments("client", [segment]),))
    with pytest.raises(DataError, match="record x.*no audio file"):
        write_dialogues(tmp_path / "out.jsonl", [dialogue])


def test_shorthand_turns_labels_and_blank_lines(tmp_path, media):
    record = {
        "id": "s1",
        "split": "val",
        "turns": [
            {"speaker": "client", "text": "I can't sleep.", "emotion": " Fear ", "strategy": "undefined", "audio": "media/c0.wav"},
            {"speaker": "therapist", "text": "Since when?", "emotion": None, "strategy": "open-question"},
        ],
    }
    path = _write(tmp_path / "d.jsonl", "", record, "   ")
    (dialogue,) = read_dialogues(path).dialogues
    client, therapist = dialogue.turns
    assert (client.emotion, client.strategy, therapist.strategy) == ("fear", None, "Open question")
    assert client.segments[0].media == Media(audio_path=tmp_path / "media" / "c0.wav")
    assert dialogue.problem_type is None and dialogue.split == "val"


def _turn(speaker: str = "client", **segment) -> dict:
    return {"speaker": speaker, "segments": [{"text": "Fine.", "emotion": "neutral", **segment}]}


# (name, the bad line, expected field or None, phrases the message must contain)
MALFORMED = [
    ("broken json", '{"id": "d9", "split": ', None, ["invalid JSON"]),
    ("not an object", "[1, 2]", None, ["expected one JSON object per line, got array"]),
    ("missing id", {k: v for k, v in _good().items() if k != "id"}, "id", ["missing required field 'id'"]),
    ("missing split", {k: v for k, v in _good().items() if k != "split"}, "split", ["missing required field 'split'"]),
    ("missing turns", {k: v for k, v in _good().items() if k != "turns"}, "turns", ["missing required field 'turns'"]),
    (
        "missing text",
        _good(turns=[{"speaker": "client", "segments": [{"emotion": "joy"}]}]),
        "turns[0].segments[0].text",
        ["missing required field 'text'"],
    ),
    ("id wrong type", _good(id=7), "id", ["expected string, got integer"]),
    ("split wrong type", _good(split=None), "split", ["expected string, got null"]),
    ("turns wrong type", _good(turns="hello"), "turns", ["expected array, got string"]),
    ("text wrong type", _good(turns=[{"speaker": "client", "text": 5}]), "turns[0].text", ["expected string, got integer"]),
    (
        "start is a bool",
        _good(turns=[_turn(start=True)]),
        "turns[0].segments[0].start",
        ["expected integer or number or null, got boolean"],
    ),
    ("utterance id float", _good(turns=[_turn(utterance_id=1.5)]), "turns[0].segments[0].utterance_id", ["expected integer or null"]),
    ("turn not an object", _good(turns=["hi"]), "turns[0]", ["expected a turn object, got string"]),
    (
        "unknown speaker",
        _good(turns=[{"speaker": "doctor", "text": "Hi."}]),
        "turns[0].speaker",
        ["unknown speaker 'doctor'", "'therapist'"],
    ),
    ("unknown split", _good(split="dev"), "split", ["unknown split 'dev'", "'val'"]),
    ("unknown emotion", _good(turns=[_turn(emotion="angry-ish")]), "turns[0].segments[0].emotion", ["unknown emotion 'angry-ish'"]),
    (
        "unknown strategy",
        _good(turns=[_turn("therapist", strategy="Open questions")]),
        "turns[0].segments[0].strategy",
        ["unknown strategy", "did you mean 'Open question'"],
    ),
    ("client strategy", _good(turns=[_turn(strategy="Approval")]), "turns[0].segments[0].strategy", ["client segments take no strategy"]),
    ("empty text", _good(turns=[_turn(text="   ")]), "turns[0].segments[0].text", ["empty text"]),
    ("empty turns", _good(turns=[]), "turns", ["at least one turn"]),
    ("empty segments", _good(turns=[{"speaker": "client", "segments": []}]), "turns[0].segments", ["at least one segment"]),
    ("same speaker twice", _good(turns=[_turn(), _turn()]), "turns[1].speaker", ["turns 0 and 1 are both by the client", "merge"]),
    (
        "unknown key",
        _good(turns=[_turn(emotoin="joy")]),
        "turns[0].segments[0].emotoin",
        ["unknown key 'emotoin'", "did you mean 'emotion'"],
    ),
    ("segments and text", _good(turns=[{"speaker": "client", "text": "Hi.", "segments": []}]), "turns[0]", ["not both"]),
    ("end before start", _good(turns=[_turn(start=2.0, end=1.0)]), "turns[0].segments[0].end", ["before start"]),
    ("missing media", _good(turns=[_turn(video="media/nope.mp4")]), "turns[0].segments[0].video", ["media file not found", "nope.mp4"]),
]


@pytest.mark.parametrize(("name", "line", "field", "phrases"), MALFORMED, ids=[case[0] for case in MALFORMED])
def test_malformed_line_names_file_line_record_and_field(tmp_path, name, line, field, phrases):
    path = _write(tmp_path / "bad.jsonl", _good("ok"), line)
    with pytest.raises(DataError) as info:
        read_dialogues(path)
    err, message = info.value, str(info.value)
    assert err.path == str(path) and err.line == 2
    assert f"{path}:2" in message
    assert err.field == field
    if field is not None:
        assert f"field {field!r}" in message
    if isinstance(line, dict) and isinstance(line.get("id"), str):
        assert err.record == line["id"] and f"record {line['id']}" in message
    for phrase in phrases:
        assert phrase in message


def test_non_utf8_line_is_reported_with_its_line(tmp_path):
    path = _write(tmp_path / "bad.jsonl", _good("ok"), _good("ok2"), b'{"id": "caf\xe9"}')
    with pytest.raises(DataError) as info:
        read_dialogues(path)
    assert info.value.line == 3 and "not valid UTF-8" in str(info.value) and f"{path}:3" in str(info.value)


def test_duplicate_id_points_at_both_lines(tmp_path):
    path = _write(tmp_path / "dup.jsonl", _good("d1"), "", _good("d1"))
    with pytest.raises(DataError) as info:
        read_dialogues(path)
    assert info.value.line == 3 and info.value.field == "id"
    assert "duplicate dialogue id 'd1', first seen on line 1" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_dialogues(tmp_path / "nothing.jsonl")


def test_skip_mode_records_every_bad_line(tmp_path):
    path = _write(tmp_path / "mixed.jsonl", _good("a"), "{oops", _good("b", split="dev"), _good("a"), b"\xff\xfe", _good("c"))
    report = LoadReport(on_error="skip")
    corpus = read_dialogues(path, report=report)
    assert [d.id for d in corpus.dialogues] == ["a", "c"]
    assert corpus.report is report
    assert [e.line for e in report.skipped] == [2, 3, 4, 5]
    assert report.summary()["skipped"] == 4
    with pytest.raises(DataError):  # the default still raises on the first bad line
        read_dialogues(path)


def test_check_media_probes_files(tmp_path, media):
    media["video"].write_bytes(media["video"].read_bytes()[:200])  # truncated mp4
    path = _write(tmp_path / "d.jsonl", _good("m", turns=[_turn(video="media/c0.mp4", audio=str(media["audio"]))]))
    assert len(read_dialogues(path)) == 1  # existence is always checked, decoding only on request
    with pytest.raises(DataError) as info:
        read_dialogues(path, check_media=True)
    message = str(info.value)
    assert f"{path}:1" in message and "record m" in message and "field 'turns[0].segments[0].video'" in message
    assert "unreadable media file" in message and "c0.mp4" in message
