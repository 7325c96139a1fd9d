from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from mmrl.data import load_corpus
from mmrl.data.mesc import load_mesc
from mmrl.data.schema import LoadReport
from mmrl.data.stats import corpus_stats
from mmrl.errors import DataError
from tests.fixtures.mesc import DIALOGUES, write_mesc

# --- real MESC (skipped when ../shared is absent) -------------------------------------------------


def test_real_mesc_official_split_sizes(mesc_corpus):
    stats = corpus_stats(mesc_corpus)
    splits = stats["splits"]
    assert [splits[s]["dialogues"] for s in ("train", "val", "test")] == [815, 102, 102]
    assert [splits[s]["therapist_turns"] for s in ("train", "val", "test")] == [3721, 445, 454]
    assert stats["total"]["rows"] == 28762
    assert stats["skipped"]["skipped"] == 0


def test_real_mesc_row_label_counts_match_csv(mesc_dir, mesc_corpus):
    with (mesc_dir / "MESC.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    expected_client = Counter(r["Emotion"] for r in rows if r["Speaker"] == "Client")
    expected_therapist = Counter(r["Emotion"] for r in rows if r["Speaker"] == "Therapist")
    expected_strategy = Counter(r["Strategy"].replace("open question", "Open question") for r in rows if r["Speaker"] == "Therapist")
    labels = corpus_stats(mesc_corpus)["total"]["row_labels"]
    assert labels["client_emotion"] == dict(expected_client)
    assert labels["therapist_emotion"] == dict(expected_therapist)
    assert labels["strategy"] == dict(expected_strategy)


def test_real_mesc_video_description_is_its_own_field(mesc_dir, mesc_corpus):
    first = json.loads((mesc_dir / "val.json").read_text(encoding="utf-8"))[0]["dialog"][0]["text"]
    val = mesc_corpus.split("val")
    matched = [d for d in val if first.startswith(d.turns[0].segments[0].text)]
    segment = matched[0].turns[0].segments[0]
    assert segment.video_description and segment.video_description in first
    assert segment.video_description not in segment.text
    assert all(s.video_description is None for d in mesc_corpus.split("train") for t in d.turns for s in t.segments)


# --- fixture MESC ---------------------------------------------------------------------------------


@pytest.fixture
def mesc(tmp_path):
    return write_mesc(tmp_path / "mesc")


def test_turns_merge_segments_with_majority_label(mesc):
    corpus = load_mesc(mesc)
    d0 = next(d for d in corpus.dialogues if d.id == "0")
    assert [t.speaker for t in d0.turns] == ["client", "therapist", "client", "therapist"]
    client = d0.turns[2]
    assert client.text == "That I'd be sorry. And I am. Really sorry."
    assert client.emotion == "anger"  # 2 anger vs 1 sadness
    assert len(client.segments) == 3
    therapist = d0.turns[3]
    assert therapist.emotion == "neutral" and therapist.strategy == "Communication Skills"  # tie -> earliest
    assert d0.target_indices() == [1, 3]
    assert d0.turns[0].start == 0.1 and d0.turns[2].end == 4.9


def test_splits_by_json_match_and_label_noise(mesc):
    corpus = load_mesc(mesc)
    assert {d.id: d.split for d in corpus.dialogues} == {"0": "train", "1": "val", "2": "test", "3": "train"}
    val = corpus.split("val")[0]
    assert val.turns[1].strategy == "Open question"  # "open question" normalised
    assert val.turns[0].text == "He left me." and val.turns[0].video_description == "The speaker looks tense."
    assert val.problem_type == "Breakups or Divorce" and val.situation == "Situation 1."
    assert load_corpus(mesc).format == "mesc"


def _rewrite_csv(root, edit):
    path = root / "MESC.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(edit(lines)), encoding="utf-8")
    return path


def _replace_line(number, old, new):
    def edit(lines):
        lines[number - 1] = lines[number - 1].replace(old, new)
        return lines

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda lines: [lines[0].replace("Emotion,", "Feeling,"), *lines[1:]], r"MESC.csv:1, field 'Emotion': missing column"),
        (_replace_line(2, "sadness", "melancholy"), r"MESC.csv:2, field 'Emotion': unknown emotion 'melancholy'"),
        (_replace_line(3, "Open question", "Hypnosis"), r"MESC.csv:3, field 'Strategy': unknown strategy 'Hypnosis'"),
        (_replace_line(2, "undefined", "Approval"), r"MESC.csv:2, field 'Strategy': client rows must have strategy 'undefined'"),
        (_replace_line(2, "I told you.", ""), r"MESC.csv:2, field 'Utterance': empty utterance text"),
        (_replace_line(2, "Client", "Narrator"), r"MESC.csv:2, field 'Speaker': unknown speaker 'Narrator'"),
        (_replace_line(3, ",0,1,1,1,", ",0,0,1,1,"), r"MESC.csv:3, field 'Utterance_ID': duplicate Utterance_ID 0"),
        (_replace_line(3, ",0,1,1,1,", ",0,9,1,1,"), r"field 'Utterance_ID': Utterance_IDs of dialogue 0 must run 0..6"),
        (_replace_line(2, ",0,0,1,1,", ",zero,0,1,1,"), r"MESC.csv:2, field 'Dialogue_ID': expected an integer"),
        (_replace_line(2, "00:00:00,100", "soon"), r"MESC.csv:2, field 'StartTime': expected a time"),
    ],
    ids=[
        "missing-column",
        "unknown-emotion",
        "unknown-strategy",
        "client-strategy",
        "empty-text",
        "speaker",
        "duplicate-utterance-id",
        "utterance-id-gap",
        "bad-dialogue-id",
        "bad-time",
    ],
)
def test_malformed_csv_rows_name_file_line_field(mesc, edit, expected):
    _rewrite_csv(mesc, edit)
    with pytest.raises(DataError, match=expected):
        load_mesc(mesc)


def test_non_utf8_bytes_report_the_line(mesc):
    path = mesc / "MESC.csv"
    data = path.read_bytes().split(b"\n")
    data[3] = data[3].replace(b"That", b"Th\xe9t")
    path.write_bytes(b"\n".join(data))
    with pytest.raises(DataError, match=r"MESC.csv:4: not valid UTF-8"):
        load_mesc(mesc)


def test_skip_mode_drops_whole_dialogue_and_counts_it(mesc):
    _rewrite_csv(mesc, _replace_line(2, "I told you.", ""))  # a row of train dialogue 0
    report = LoadReport(on_error="skip")
    corpus = load_mesc(mesc, report=report)
    assert [d.id for d in corpus.dialogues] == ["1", "2", "3"]
    assert len(report.skipped) == 1 and report.summary()["skipped"] == 1
    assert "field 'Utterance'" in str(report.skipped[0])


def test_json_dialogue_matching_no_dialogue_id_cannot_be_skipped(mesc):
    records = json.loads((mesc / "val.json").read_text())
    records[0]["dialog"][0]["text"] = "Something else entirely."
    (mesc / "val.json").write_text(json.dumps(records))
    with pytest.raises(DataError, match=r"val.json, record #0, field 'dialog': dialogue matches no Dialogue_ID"):
        load_mesc(mesc, report=LoadReport(on_error="skip"))


def test_json_dialogue_matching_two_dialogue_ids_is_ambiguous(tmp_path):
    dialogues = {**DIALOGUES, 4: list(DIALOGUES[1])}
    root = write_mesc(tmp_path / "m", dialogues)
    with pytest.raises(DataError, match=r"matches 2 Dialogue_IDs \[1, 4\]"):
        load_mesc(root)


def test_json_label_disagreeing_with_csv(mesc):
    records = json.loads((mesc / "test.json").read_text())
    records[0]["dialog"][2]["emotion"] = "joy"
    (mesc / "test.json").write_text(json.dumps(records))
    with pytest.raises(DataError, match=r"test.json, record #0, field 'dialog\[2\].emotion': emotion 'joy' disagrees"):
        load_mesc(mesc)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[{"problem_type": ', r"val.json:1: invalid JSON"),
        ("{}", r"val.json: expected a JSON list"),
        ('[{"problem_type": "x", "situation": "y"}]', r"val.json, record #0, field 'dialog'"),
        (
            '[{"problem_type": "x", "situation": "y", "dialog": [{"text": "I told you.", "speaker": "bot"}]}]',
            r"field 'dialog\[0\].speaker': unknown speaker 'bot'",
        ),
    ],
    ids=["broken-json", "not-a-list", "missing-field", "bad-speaker"],
)
def test_malformed_split_json(mesc, content, expected):
    (mesc / "val.json").write_text(content)
    with pytest.raises(DataError, match=expected):
        load_mesc(mesc)


def test_missing_split_file(mesc):
    (mesc / "test.json").unlink()
    with pytest.raises(DataError, match=r"test.json: file not found"):
        load_mesc(mesc)


def test_media_dir_attaches_existing_clips(mesc, tmp_path):
    media = tmp_path / "clips"
    media.mkdir()
    (media / "0_2.wav").write_bytes(b"")
    corpus = load_mesc(mesc, media_dir=media)
    segment = corpus.dialogues[0].turns[2].segments[0]
    assert segment.media is not None and segment.media.audio_path == media / "0_2.wav" and segment.media.video_path is None
    with pytest.raises(DataError, match=r"0_2.wav"):
        load_mesc(mesc, media_dir=media, check_media=True)  # an empty wav cannot be decoded
    with pytest.raises(DataError, match="media directory not found"):
        load_mesc(mesc, media_dir=tmp_path / "nowhere")
