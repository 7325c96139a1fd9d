from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mmrl.data import load_corpus
from mmrl.data.multimood import (
    MULTIMOOD_KEYS,
    HistoryLabels,
    MultiMoodSample,
    load_multimood,
    read_samples,
    samples_from_dialogues,
    write_samples,
)
from mmrl.data.schema import Dialogue, LoadReport, Media, Segment, Turn
from mmrl.errors import DataError


def _seg(text: str, emotion: str | None, strategy: str | None = None, **kw) -> Segment:
    return Segment(text=text, emotion=emotion, strategy=strategy, **kw)


DIALOGUES = [
    Dialogue(
        id="d1",
        split="train",
        turns=(
            Turn.from_segments(
                "client",
                [_seg("I can't sleep.", "sadness", video_description="She looks tired.", media=Media(video_path=Path("clips/d1_0.mp4")))],
            ),
            Turn.from_segments("therapist", [_seg("How long has this been going on?", "neutral", "Open question")]),
            Turn.from_segments(
                "client",
                [_seg("Weeks.", "depression"), _seg("Maybe  months.", "depression", media=Media(video_path=Path("clips/d1_3.mp4")))],
            ),
            Turn.from_segments("therapist", [_seg("That sounds exhausting.", "sadness", "Restatement")]),
        ),
        problem_type="Sleep",
        situation="Insomnia after a job loss.",
    ),
    Dialogue(
        id="d2",
        split="train",
        turns=(
            Turn.from_segments("therapist", [_seg("Welcome.", "neutral", "Structuring the therapy")]),
            Turn.from_segments("client", [_seg("Thanks.\nI'm nervous.", "fear")]),
            Turn.from_segments("therapist", [_seg("It's okay to feel nervous.", "neutral", "Approval")]),
        ),
    ),
]


@pytest.fixture
def samples() -> list[MultiMoodSample]:
    return samples_from_dialogues(DIALOGUES)


@pytest.fixture
def train_file(tmp_path, samples) -> Path:
    return write_samples(tmp_path / "multimood_train.jsonl", samples)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _encode(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


# --- dialogues -> samples -> jsonl -> samples ---------------------------------------------------


def test_samples_from_dialogues(samples):
    assert [s.dialogue_id for s in samples] == ["d1", "d1", "d2"]
    first, second, third = samples
    assert first == MultiMoodSample(
        history_chat="Client: I can't sleep.",
        client_video_description="She looks tired.",
        client_emotion="sadness",
        situation="Insomnia after a job loss.",
        problem_type="Sleep",
        emotion="neutral",
        strategy="Open question",
        utterance="How long has this been going on?",
        client_video_paths=("clips/d1_0.mp4",),
        dialogue_id="d1",
    )
    assert second.history_chat == ("Client: I can't sleep.\nTherapist: How long has this been going on?\nClient: Weeks. Maybe months.")
    assert (second.client_emotion, second.client_video_description, second.client_video_paths) == ("depression", "", ("clips/d1_3.mp4",))
    assert (second.emotion, second.strategy, second.utterance) == ("sadness", "Restatement", "That sounds exhausting.")
    assert third.history_chat == "Therapist: Welcome.\nClient: Thanks. I'm nervous."
    assert third.history == (("therapist", "Welcome."), ("client", "Thanks. I'm nervous."))
    assert (third.situation, third.problem_type, third.client_emotion) == ("", "", "fear")


def test_write_read_round_trip(train_file, samples):
    records = _records(train_file)
    assert [list(r) for r in records] == [list(MULTIMOOD_KEYS.values())] * 3
    assert records[0]["get_emotion_user_most_recent"] == "sadness"
    assert records[1]["Utterance"] == "That sounds exhausting."
    assert read_samples(train_file) == samples


def test_read_accepts_list_history_int_id_and_label_noise(tmp_path, samples):
    record = samples[1].to_record() | {
        "history_chat": samples[1].history_chat.split("\n"),
        "Dialogue_ID": 12,
        "Emotion": "Sadness",
        "Strategy": "restatement",
        "extra_key": "ignored",
    }
    path = _write_lines(tmp_path / "x_test.jsonl", [_encode(record), b"", b"  "])
    (sample,) = read_samples(path)
    assert sample == MultiMoodSample(**{**samples[1].__dict__, "dialogue_id": "12"})


def test_history_of_a_hand_built_bad_sample_raises(samples):
    bad = MultiMoodSample(**{**samples[0].__dict__, "history_chat": "Doctor: hi"})
    with pytest.raises(DataError, match="Client:"):
        bad.history


# --- samples -> dialogues ------------------------------------------------------------------------


def test_load_rebuilds_dialogues(train_file, samples):
    corpus = load_multimood(train_file)
    assert (corpus.format, corpus.source, len(corpus)) == ("multimood", str(train_file), 2)
    d1, d2 = corpus.dialogues
    assert (d1.id, d1.split, d1.source, d1.problem_type, d1.situation) == (
        "d1",
        "train",
        "multimood",
        "Sleep",
        "Insomnia after a job loss.",
    )
    assert [(t.speaker, t.text, t.emotion, t.strategy) for t in d1.turns] == [
        ("client", "I can't sleep.", "sadness", None),
        ("therapist", "How long has this been going on?", "neutral", "Open question"),
        ("client", "Weeks. Maybe months.", "depression", None),
        ("therapist", "That sounds exhausting.", "sadness", "Restatement"),
    ]
    assert d1.turns[0].video_description == "She looks tired."
    assert [m.video_path for m in d1.turns[2].media] == [Path("clips/d1_3.mp4")]
    assert (d2.problem_type, d2.situation) == (None, None)
    # d2's opening therapist turn is no target, so no sample carries its labels
    assert [(t.speaker, t.emotion, t.strategy) for t in d2.turns] == [
        ("therapist", None, None),
        ("client", "fear", None),
        ("therapist", "neutral", "Approval"),
    ]
    assert samples_from_dialogues(corpus.dialogues) == samples
    assert corpus.report.skipped == []


def test_rebuild_ignores_line_order(tmp_path, samples):
    path = write_samples(tmp_path / "train.jsonl", samples[::-1])
    corpus = load_multimood(path)
    assert [d.id for d in corpus.dialogues] == ["d2", "d1"]
    assert samples_from_dialogues(corpus.dialogues[::-1]) == samples


def test_rebuild_leaves_unrecoverable_labels_none(tmp_path, samples):
    path = write_samples(tmp_path / "train.jsonl", samples[1:2])
    (d1,) = load_multimood(path).dialogues
    assert [(t.text, t.emotion, t.strategy) for t in d1.turns] == [
        ("I can't sleep.", None, None),
        ("How long has this been going on?", None, None),
        ("Weeks. Maybe months.", "depression", None),
        ("That sounds exhausting.", "sadness", "Restatement"),
    ]
    assert d1.turns[0].media == () and d1.turns[0].video_description is None
    again = samples_from_dialogues([d1])
    assert (again[0].emotion, again[0].strategy, again[0].client_emotion) == (None, None, None)
    assert read_samples(write_samples(tmp_path / "again.jsonl", again)) == again  # unknown labels are null


def test_load_corpus_detects_multimood(train_file, samples):
    corpus = load_corpus(train_file, split="val")
    assert corpus.format == "multimood" and {d.split for d in corpus.dialogues} == {"val"}


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("multimood_train.jsonl", "train"),
        ("valid.jsonl", "val"),
        ("dev-set.jsonl", "val"),
        ("val.jsonl", "val"),
        ("mm_test_v2.jsonl", "test"),
    ],
)
def test_split_from_file_name(tmp_path, samples, name, split):
    path = write_samples(tmp_path / name, samples)
    assert {d.split for d in load_multimood(path).dialogues} == {split}
    assert {d.split for d in load_multimood(path, split="test").dialogues} == {"test"}


@pytest.mark.parametrize("name", ["samples.jsonl", "train_test.jsonl", "contest.jsonl"])
def test_split_not_in_file_name_asks_for_split(tmp_path, samples, name):
    path = write_samples(tmp_path / name, samples)
    with pytest.raises(DataError, match=r"--split train\|val\|test on the command line, split= in Python") as info:
        load_multimood(path)
    assert info.value.field == "split" and info.value.path == str(path)
    with pytest.raises(DataError, match="unknown split"):
        load_multimood(path, split="training")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_samples(tmp_path / "nope_train.jsonl")


# --- malformed lines -------------------------------------------------------------------------------


def _set(**changes):
    return lambda record: _encode(record | changes)


def _drop(key):
    return lambda record: _encode({k: v for k, v in record.items() if k != key})


BAD_LINES = {
    "non-utf8": (lambda r: _encode(r).replace(b"exhausting", b"exhaust\xe9ng"), None, "not valid UTF-8"),
    "broken-json": (lambda r: _encode(r)[:-5], None, "invalid JSON"),
    "not-object": (lambda r: b'["Client: hi"]', None, "expected a JSON object, got list"),
    "missing-field": (_drop("Strategy"), "Strategy", "missing field(s) ['Strategy']"),
    "wrong-type-situation": (_set(situation=3), "situation", "expected a string, got int"),
    "wrong-type-history": (_set(history_chat={"Client": "hi"}), "history_chat", "expected a string of lines"),
    "wrong-type-history-item": (_set(history_chat=["Client: hi", 4]), "history_chat", "expected a string of lines"),
    "wrong-type-utterance": (_set(Utterance=["That sounds", "exhausting."]), "Utterance", "expected a string, got list"),
    "wrong-type-id": (_set(Dialogue_ID=1.5), "Dialogue_ID", "expected a non-empty string or an integer"),
    "bool-id": (_set(Dialogue_ID=True), "Dialogue_ID", "expected a non-empty string or an integer"),
    "wrong-type-emotion": (_set(Emotion=3), "Emotion", "expected a emotion label string"),
    "unknown-emotion": (_set(Emotion="happy"), "Emotion", "unknown emotion 'happy'"),
    "unknown-client-emotion": (_set(get_emotion_user_most_recent="angry"), "get_emotion_user_most_recent", "did you mean 'anger'"),
    "unknown-strategy": (_set(Strategy="Reflection"), "Strategy", "unknown strategy 'Reflection'"),
    "empty-utterance": (_set(Utterance="  "), "Utterance", "empty Utterance"),
    "bad-history-prefix": (_set(history_chat="Client: hi\nDoctor: hello"), "history_chat", "history line 2 ('Doctor: hello')"),
    "trailing-newline": (_set(history_chat="Client: hi\n"), "history_chat", "history line 2"),
    "client-fields-without-client": (_set(history_chat="Therapist: hi"), "get_emotion_user_most_recent", "no client turn"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_line_names_file_line_and_field(tmp_path, samples, case):
    make, field, fragment = BAD_LINES[case]
    lines = [_encode(s.to_record()) for s in samples]
    lines[1] = make(samples[1].to_record())
    path = _write_lines(tmp_path / "bad_train.jsonl", lines)
    with pytest.raises(DataError) as info:
        read_samples(path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), 2, field)
    assert fragment in err.reason
    assert str(err).startswith(f"{path}:2")
    report = LoadReport(on_error="skip")
    assert read_samples(path, report=report) == [samples[0], samples[2]]
    assert [e.line for e in report.skipped] == [2]


def test_duplicate_sample(tmp_path, samples):
    lines = [_encode(s.to_record()) for s in samples]
    path = _write_lines(tmp_path / "dup_train.jsonl", [*lines, lines[0]])
    with pytest.raises(DataError, match=r"duplicate sample: Dialogue_ID 'd1' with 1 history turns is also on line 1") as info:
        read_samples(path)
    assert (info.value.line, info.value.field) == (4, "history_chat")
    report = LoadReport(on_error="skip")
    assert load_multimood(path, report=report).dialogues[0].id == "d1"
    assert len(report.skipped) == 1


def test_skip_mode_counts_every_bad_line(tmp_path, samples):
    good = [_encode(s.to_record()) for s in samples]
    path = _write_lines(
        tmp_path / "mixed_train.jsonl", [b"{", good[0], b"[]", good[1], b"\xff\xfe", good[2], _set(Emotion="glad")(samples[0].to_record())]
    )
    report = LoadReport(on_error="skip")
    assert read_samples(path, report=report) == samples
    assert [e.line for e in report.skipped] == [1, 3, 5, 7]
    assert report.summary()["skipped"] == 4
    with pytest.raises(DataError) as info:
        read_samples(path)
    assert info.value.line == 1


# --- inconsistent samples of one dialogue ----------------------------------------------------------


def _inconsistent(samples, index: int, **changes) -> list[bytes]:
    lines = [_encode(s.to_record()) for s in samples]
    lines[index] = _encode(samples[index].to_record() | changes)
    return lines


@pytest.mark.parametrize(
    ("index", "changes", "field", "fragment"),
    [
        (0, {"history_chat": "Client: I cannot sleep."}, "history_chat", "history line 1 disagrees"),
        (
            1,
            {"history_chat": "Client: I can't sleep.\nTherapist: Why?\nClient: Weeks. Maybe months."},
            "Utterance",
            "history line 2 of line 2: 'Why?'",
        ),
        (0, {"Utterance": "How long?"}, "Utterance", "disagrees with history line 2 of line 2"),
        (0, {"situation": "Something else."}, "situation", "situation disagrees with line 2"),
    ],
)
def test_inconsistent_samples_of_a_dialogue(tmp_path, samples, index, changes, field, fragment):
    path = _write_lines(tmp_path / "inc_train.jsonl", _inconsistent(samples, index, **changes))
    assert len(read_samples(path)) == 3  # each line is fine on its own
    with pytest.raises(DataError) as info:
        load_multimood(path)
    err = info.value
    assert (err.path, err.field, err.record) == (str(path), field, "Dialogue_ID d1")
    assert err.line in (1, 2) and fragment in err.reason
    report = LoadReport(on_error="skip")
    corpus = load_multimood(path, report=report)
    assert [d.id for d in corpus.dialogues] == ["d2"]
    assert len(report.skipped) == 1


def test_samples_disagreeing_about_a_client_turn(tmp_path):
    base = {
        "history_chat": "Client: hi",
        "get_cur_user_utt_vid_desc": "",
        "get_emotion_user_most_recent": "joy",
        "situation": "",
        "problem_type": "",
        "Emotion": "neutral",
        "Strategy": "Approval",
        "Utterance": "Hello.",
        "path_to_vid_user_most_recent": "",
        "Dialogue_ID": "x",
    }
    second = base | {"history_chat": "Client: hi\nTherapist: Hello.", "Utterance": "Welcome.", "get_emotion_user_most_recent": "fear"}
    path = _write_lines(tmp_path / "x_train.jsonl", [_encode(base), _encode(second)])
    with pytest.raises(DataError, match="disagrees with line 1 about the same client turn") as info:
        load_multimood(path)
    assert (info.value.line, info.value.field) == (2, "get_emotion_user_most_recent")
    path = _write_lines(tmp_path / "y_train.jsonl", [_encode(base), _encode(second | {"get_emotion_user_most_recent": "joy"})])
    (dialogue,) = load_multimood(path).dialogues
    assert [(t.speaker, t.text, t.emotion) for t in dialogue.turns] == [
        ("client", "hi", "joy"),
        ("therapist", "Hello.", "neutral"),
        ("therapist", "Welcome.", "neutral"),
    ]


# --- the reference shape (the public MultiMood code's files) -----------------------------------------

_SITUATION = {"situation": "He left after an argument.", "problem_type": "Breakups or Divorce"}
# Hand-written lines of one dialogue in the reference shape: history items with label prefixes,
# the current client utterance in utt_user_most_recent, per-segment video lists, list Utterances,
# a "described" client turn (text interleaved with video descriptions), ignored extra keys.
REFERENCE_LINES = [
    {
        "Utterance": "He left without saying anything.",
        "Emotion": "neutral",
        "Strategy": "Restatement",
        "Dialogue_ID": 7,
        "history_chat_mamba": "",
        "history_chat": [],
        "path_to_vid_user_most_recent": ["dia7_utt0_1.mp4", "dia7_utt1_2.mp4"],
        "utt_user_most_recent": "He left without a word. I just stood there.",
        "get_emotion_user_most_recent": "anger",
        "get_cur_user_utt_vid_desc": "She looks down.",
        **_SITUATION,
        "set": "train",
    },
    {
        "Utterance": ["What are you", "waiting for?"],
        "Emotion": "sadness",
        "Strategy": "Open question",
        "Dialogue_ID": 7,
        "history_chat": [
            {
                "role": "user",
                "content": "( user emotion : anger , user expresstion : He left without a word. She looks down. . I just stood there. She cries. ) ",
            },
            {
                "role": "assistant",
                "content": "( assistant emotion : neutral  , assistant strategy : Restatement ) : He left without saying anything. ",
            },
        ],
        "path_to_vid_user_most_recent": ["dia7_utt3_4.mp4"],
        "utt_user_most_recent": ["Yes.", "And I keep waiting for him."],
        "get_emotion_user_most_recent": "sadness",
        **_SITUATION,
    },
    {
        "Utterance": ["That makes sense."],
        "Emotion": "neutral",
        "Strategy": "Approval",
        "Dialogue_ID": 7,
        "history_chat_mamba": "user ( user Emotion : anger ) : He left ... <MEM> ",
        "history_chat": [
            {"role": "user", "content": "( user emotion : anger ) : He left without a word. I just stood there. "},
            {
                "role": "assistant",
                "content": "( assistant emotion : neutral  , assistant strategy : Restatement ) : He left without saying anything. ",
            },
            {"role": "user", "content": "( user emotion : sadness , user expresstion : Yes. And I keep waiting for him. He sighs. ) "},
            {
                "role": "assistant",
                "content": "( assistant emotion : sadness , assistant strategy : Open question ) : What are you waiting for? ",
            },
        ],
        "path_to_vid_user_most_recent": [],
        "utt_user_most_recent": ["An apology, I guess."],
        "get_emotion_user_most_recent": "depression",
        "get_cur_user_utt_vid_desc": "",
        **_SITUATION,
        "set": "train",
    },
]
NO_CLIENT = {"get_emotion_user_most_recent": None, "get_cur_user_utt_vid_desc": "", "path_to_vid_user_most_recent": []}
REFERENCE_TURNS = [
    ("client", "He left without a word. I just stood there.", "anger", None),
    ("therapist", "He left without saying anything.", "neutral", "Restatement"),
    ("client", "Yes. And I keep waiting for him.", "sadness", None),
    ("therapist", "What are you waiting for?", "sadness", "Open question"),
    ("client", "An apology, I guess.", "depression", None),
    ("therapist", "That makes sense.", "neutral", "Approval"),
]


@pytest.fixture
def reference_file(tmp_path) -> Path:
    return _write_lines(tmp_path / "reference_train.jsonl", [_encode(r) for r in REFERENCE_LINES])


def test_read_reference_shape(reference_file):
    first, second, third = read_samples(reference_file)
    assert first == MultiMoodSample(
        history_chat="Client: He left without a word. I just stood there.",
        client_video_description="She looks down.",
        client_emotion="anger",
        situation="He left after an argument.",
        problem_type="Breakups or Divorce",
        emotion="neutral",
        strategy="Restatement",
        utterance="He left without saying anything.",
        client_video_paths=("dia7_utt0_1.mp4", "dia7_utt1_2.mp4"),
        dialogue_id="7",
    )  # an empty history: the current utterance is the only turn, and it carries no prefix labels
    assert second.history == (
        ("client", "He left without a word. She looks down. . I just stood there. She cries."),
        ("therapist", "He left without saying anything."),
        ("client", "Yes. And I keep waiting for him."),
    )
    assert second.history_labels == (
        HistoryLabels("anger", None, described=True),
        HistoryLabels("neutral", "Restatement"),
        HistoryLabels(),
    )
    assert (second.utterance, second.client_video_description, second.client_video_paths) == (
        "What are you waiting for?",
        "",
        ("dia7_utt3_4.mp4",),
    )
    assert [label.emotion for label in third.history_labels] == ["anger", "neutral", "sadness", "sadness", None]
    assert third.client_video_paths == ()


def test_reference_line_without_prefixes_reads_like_its_mmrl_line(tmp_path):
    reference = REFERENCE_LINES[0] | {
        "history_chat": [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."}],
    }
    mmrl = {k: v for k, v in reference.items() if k in MULTIMOOD_KEYS.values()} | {
        "history_chat": "Client: Hi.\nTherapist: Hello.\nClient: He left without a word. I just stood there.",
    }
    (from_reference,) = read_samples(_write_lines(tmp_path / "a.jsonl", [_encode(reference)]))
    (from_mmrl,) = read_samples(_write_lines(tmp_path / "b.jsonl", [_encode(mmrl)]))
    assert from_reference == from_mmrl and from_reference.history_labels == ()


def test_load_reference_rebuilds_dialogue_with_labels(reference_file):
    (dialogue,) = load_multimood(reference_file).dialogues
    assert (dialogue.id, dialogue.split, dialogue.problem_type) == ("7", "train", "Breakups or Divorce")
    # described turns take their plain text from the line where they are the current utterance
    assert [(t.speaker, t.text, t.emotion, t.strategy) for t in dialogue.turns] == REFERENCE_TURNS
    assert [m.video_path for m in dialogue.turns[0].media] == [Path("dia7_utt0_1.mp4")]  # the first of the turn's videos
    assert dialogue.turns[0].video_description == "She looks down."
    assert dialogue.turns[4].media == ()


def test_reference_history_prefixes_keep_labels_of_missing_lines(tmp_path):
    path = _write_lines(tmp_path / "last_test.jsonl", [_encode(REFERENCE_LINES[2])])
    (dialogue,) = load_multimood(path).dialogues
    expected = [list(turn) for turn in REFERENCE_TURNS]
    expected[2][1] = "Yes. And I keep waiting for him. He sighs."  # described, and no line holds it plain
    assert [[t.speaker, t.text, t.emotion, t.strategy] for t in dialogue.turns] == expected
    assert dialogue.turns[0].media == ()  # videos are only known for the current client turn


def test_write_reference_style_round_trips(tmp_path, reference_file, samples):
    read = read_samples(reference_file)
    again = write_samples(tmp_path / "again.jsonl", read, style="reference")
    assert read_samples(again) == read
    records = _records(again)
    assert "history_chat_mamba" not in records[0] and records[2]["utt_user_most_recent"] == ["An apology, I guess."]
    assert records[1]["history_chat"][0]["content"].startswith("( user emotion : anger , user expresstion : He left")
    assert records[2]["history_chat"][1]["content"] == (
        "( assistant emotion : neutral , assistant strategy : Restatement ) : He left without saying anything."
    )
    assert read_samples(write_samples(tmp_path / "mmrl_train.jsonl", samples, style="reference")) == samples
    # a history that ends with a therapist turn has no current client utterance
    line = REFERENCE_LINES[0] | {"history_chat": [{"role": "assistant", "content": "Hi."}], "utt_user_most_recent": [], **NO_CLIENT}
    (ends_with_therapist,) = read_samples(_write_lines(tmp_path / "c.jsonl", [_encode(line)]))
    assert ends_with_therapist.history == (("therapist", "Hi."),)
    assert read_samples(write_samples(tmp_path / "d.jsonl", [ends_with_therapist], style="reference")) == [ends_with_therapist]


def test_mmrl_style_drops_history_labels_and_lists_several_videos(tmp_path, reference_file):
    read = read_samples(reference_file)
    records = [s.to_record() for s in read]
    assert [r["path_to_vid_user_most_recent"] for r in records] == [["dia7_utt0_1.mp4", "dia7_utt1_2.mp4"], "dia7_utt3_4.mp4", ""]
    assert read_samples(write_samples(tmp_path / "m.jsonl", read)) == [replace(s, history_labels=()) for s in read]


def test_unknown_write_style(tmp_path, samples):
    with pytest.raises(DataError, match="unknown style 'json'") as info:
        write_samples(tmp_path / "x.jsonl", samples, style="json")
    assert info.value.field == "style" and not (tmp_path / "x.jsonl").exists()


BAD_REFERENCE_LINES = {
    "string-history-with-utt": ({"history_chat": "Client: hi"}, "history_chat", "must be a list of {role, content} objects"),
    "string-items-with-utt": ({"history_chat": ["Client: hi"]}, "history_chat", "must be a list of {role, content} objects"),
    "objects-without-utt": ({"utt_user_most_recent": None}, "history_chat", "has no utt_user_most_recent"),
    "system-role": (
        {"history_chat": [{"role": "system", "content": "Be kind."}]},
        "history_chat",
        "history item 1 must be an object with role",
    ),
    "content-not-string": ({"history_chat": [{"role": "user", "content": ["hi"]}]}, "history_chat", "history item 1 must be"),
    "unknown-prefix-emotion": (
        {"history_chat": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "( assistant emotion : happy ) : Hello."}]},
        "history_chat",
        "history item 2: unknown emotion 'happy'",
    ),
    "client-strategy": (
        {"history_chat": [{"role": "user", "content": "( user emotion : joy , user strategy : Approval ) : hi"}]},
        "history_chat",
        "history item 1 (user) has 'user strategy' in its label prefix",
    ),
    "empty-item": (
        {"history_chat": [{"role": "user", "content": "( user emotion : joy ) :  "}]},
        "history_chat",
        "history item 1 has no text",
    ),
    "utt-wrong-type": ({"utt_user_most_recent": 3}, "utt_user_most_recent", "expected a string or a list of strings, got int"),
    "utterance-list-of-non-strings": ({"Utterance": ["Hi", 2]}, "Utterance", "expected a string or a list of strings"),
    "video-list-of-non-strings": ({"path_to_vid_user_most_recent": ["a.mp4", None]}, "path_to_vid_user_most_recent", "expected a path"),
    "missing-emotion": ({"Emotion": KeyError}, "Emotion", "a reference-shape MultiMood line needs"),
    "client-fields-without-client": (
        {"history_chat": [], "utt_user_most_recent": "", **NO_CLIENT, "get_cur_user_utt_vid_desc": "She smiles."},
        "get_cur_user_utt_vid_desc",
        "no client turn",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_REFERENCE_LINES))
def test_bad_reference_line_names_file_line_and_field(tmp_path, case):
    changes, field, fragment = BAD_REFERENCE_LINES[case]
    record = {k: v for k, v in (REFERENCE_LINES[1] | changes).items() if v is not KeyError}
    if changes.get("utt_user_most_recent", "") is None:
        del record["utt_user_most_recent"]
    path = _write_lines(tmp_path / "bad_train.jsonl", [_encode(REFERENCE_LINES[0]), _encode(record), _encode(REFERENCE_LINES[2])])
    with pytest.raises(DataError) as info:
        read_samples(path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), 2, field)
    assert fragment in err.reason
    report = LoadReport(on_error="skip")
    assert len(read_samples(path, report=report)) == 2 and [e.line for e in report.skipped] == [2]


def test_a_file_holds_one_shape(tmp_path, samples):
    lines = [_encode(s.to_record()) for s in samples] + [_encode(REFERENCE_LINES[0])]
    path = _write_lines(tmp_path / "mixed_train.jsonl", lines)
    with pytest.raises(DataError, match="a reference-shape line, but line 1 is mmrl-shape; one file holds one shape") as info:
        read_samples(path)
    assert (info.value.line, info.value.field) == (4, "utt_user_most_recent")
    report = LoadReport(on_error="skip")
    assert read_samples(path, report=report) == samples and [e.line for e in report.skipped] == [4]
    # a bad first line does not decide the shape
    path = _write_lines(tmp_path / "late_train.jsonl", [b"{", _encode(REFERENCE_LINES[0])])
    assert len(read_samples(path, report=LoadReport(on_error="skip"))) == 1
