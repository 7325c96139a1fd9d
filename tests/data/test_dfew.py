from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mmrl.data.dfew import dfew_stats, load_dfew, uar, war
from mmrl.data.media import read_video
from mmrl.data.schema import LoadReport
from mmrl.errors import DataError
from mmrl.labels import DFEW_CLASSES
from tests.fixtures.dfew import CLASS_COLOURS, SPLIT_DIR, make_dfew_fixture

N_CLIPS = 2 * len(DFEW_CLASSES)


@pytest.fixture(scope="session")
def dfew_template(tmp_path_factory) -> Path:
    return make_dfew_fixture(tmp_path_factory.mktemp("dfew"))


@pytest.fixture
def dfew(dfew_template, tmp_path) -> Path:
    return Path(shutil.copytree(dfew_template, tmp_path / "dfew"))


def _list(root: Path, split: str, fold: int) -> Path:
    return root / SPLIT_DIR / f"single_{split}set_{fold}.csv"


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _row(root: Path, split: str, fold: int, line: int) -> tuple[str, str]:
    name, label = _lines(_list(root, split, fold))[line - 1].split(",")
    return name, label


# --- structure ---------------------------------------------------------------------------------------


def test_folds_partition_the_clips(dfew):
    folds = load_dfew(dfew)
    assert sorted(folds) == [1, 2, 3, 4, 5]
    names = {c.name for c in folds[1]}
    assert len(names) == N_CLIPS
    test_counts = Counter()
    for fold, clips in folds.items():
        train = {c.name for c in clips if c.split == "train"}
        test = {c.name for c in clips if c.split == "test"}
        assert not train & test and train | test == names
        assert {c.fold for c in clips} == {fold} and {c.split for c in clips} == {"train", "test"}
        test_counts.update(test)
    assert set(test_counts.values()) == {1} and set(test_counts) == names  # each clip in exactly one test fold
    assert Counter(c.label for c in folds[1]) == {name: 2 for name in DFEW_CLASSES}


def test_labels_ids_and_paths_match_the_clips(dfew):
    clips = load_dfew(dfew, folds=(1,))[1]
    for clip in clips:
        assert clip.video_path == dfew / "clips" / f"{int(clip.name):05d}.mp4"
        frame = read_video(clip.video_path, max_frames=1)[0][0].astype(int)
        assert np.abs(frame - CLASS_COLOURS[clip.label]).max() < 12, clip


def test_stats(dfew):
    stats = dfew_stats(load_dfew(dfew))
    assert [stats[k]["test"]["count"] for k in range(1, 6)] == [3, 3, 3, 3, 2]
    for fold in stats.values():
        assert fold["train"]["count"] + fold["test"]["count"] == N_CLIPS
        assert list(fold["train"]["labels"]) == list(DFEW_CLASSES)
        assert sum(fold["train"]["labels"].values()) == fold["train"]["count"]
    total = Counter()
    for k in range(1, 6):
        total.update(stats[k]["test"]["labels"])
    assert total == {name: 2 for name in DFEW_CLASSES}


def test_fold_subset_and_unknown_fold(dfew):
    assert list(load_dfew(dfew, folds=(2,))) == [2]
    with pytest.raises(DataError, match="unknown fold") as info:
        load_dfew(dfew, folds=(6,))
    assert info.value.field == "folds"


def test_class_names_avi_and_named_clips(dfew):
    path = _list(dfew, "test", 1)
    lines = _lines(path)
    name, _ = lines[1].split(",")
    (dfew / "clips" / f"{int(name):05d}.mp4").rename(dfew / "clips" / f"{name}.avi")
    shutil.copy(dfew / "clips" / f"{int(_row(dfew, 'test', 1, 3)[0]):05d}.mp4", dfew / "clips" / "clip_x.mp4")
    _write(path, [lines[0], f"{name}, sad ", *lines[2:], "clip_x,Fear"])
    test = {c.name: c for c in load_dfew(dfew, folds=(1,))[1] if c.split == "test"}
    assert test[name].label == "Sad" and test[name].video_path == dfew / "clips" / f"{name}.avi"
    assert test["clip_x"].label == "Fear" and test["clip_x"].video_path.name == "clip_x.mp4"


def test_clip_dir_default_and_explicit(dfew, tmp_path):
    (dfew / "clips").rename(dfew / "videos")
    assert load_dfew(dfew, folds=(1,))[1][0].video_path.parent == dfew / "videos"
    (dfew / "clip").mkdir()  # tried first, but holds no clips
    with pytest.raises(DataError, match="no clip file"):
        load_dfew(dfew, folds=(1,))
    elsewhere = (dfew / "videos").rename(tmp_path / "elsewhere")
    assert load_dfew(dfew, folds=(1,), clip_dir=elsewhere)[1][0].video_path.parent == elsewhere
    (dfew / "clip").rmdir()
    with pytest.raises(DataError, match="no clip directory") as info:
        load_dfew(dfew)
    assert info.value.field == "clip_dir"
    with pytest.raises(DataError, match="clip directory not found"):
        load_dfew(dfew, clip_dir=tmp_path / "missing")


# --- malformed input ---------------------------------------------------------------------------------


def _edit_label(value):
    def edit(root):
        path = _list(root, "train", 1)
        lines = _lines(path)
        lines[1] = f"{lines[1].split(',')[0]},{value}"
        _write(path, lines)
        return path, 2

    return edit


def _duplicate(padded: bool):
    def edit(root):
        path = _list(root, "train", 1)
        lines = _lines(path)
        name, label = lines[1].split(",")
        _write(path, [*lines, f"{name.zfill(5) if padded else name},{label}"])
        return path, len(lines) + 1

    return edit


def _leak(root):
    path = _list(root, "train", 1)
    lines = _lines(path)
    _write(path, [*lines, ",".join(_row(root, "test", 1, 2))])
    return path, len(lines) + 1


def _missing_clip(root):
    name, _ = _row(root, "test", 1, 2)
    (root / "clips" / f"{int(name):05d}.mp4").unlink()
    return _list(root, "test", 1), 2


BAD_ROWS = {
    "label-too-big": (_edit_label(8), "label", "label id 8 is out of range; DFEW ids are 1=Happy"),
    "label-zero": (_edit_label(0), "label", "label id 0 is out of range"),
    "label-unknown-name": (_edit_label("Happyy"), "label", "did you mean 'Happy'"),
    "label-empty": (_edit_label(""), "label", "unknown DFEW class ''"),
    "duplicate": (_duplicate(False), "video_name", "duplicate video_name"),
    "duplicate-padded": (_duplicate(True), "video_name", "(also on line 2)"),
    "train-and-test": (_leak, "video_name", "is also in single_testset_1.csv:2"),
    "missing-clip": (_missing_clip, "video_name", "no clip file for"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_row_names_file_line_and_field(dfew, case):
    edit, field, fragment = BAD_ROWS[case]
    path, line = edit(dfew)
    with pytest.raises(DataError) as info:
        load_dfew(dfew, folds=(1,))
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), line, field)
    assert fragment in err.reason and str(err).startswith(f"{path}:{line}")
    report = LoadReport(on_error="skip")
    clips = load_dfew(dfew, folds=(1,), report=report)[1]
    assert len(report.skipped) == 1 and report.skipped[0].line == line
    extra_row = case in ("duplicate", "duplicate-padded", "train-and-test")
    assert len(clips) == N_CLIPS - (not extra_row)


def test_missing_fold_file(dfew):
    _list(dfew, "test", 3).unlink()
    assert list(load_dfew(dfew, folds=(1, 2))) == [1, 2]
    with pytest.raises(DataError, match=r"fold file single_testset_3.csv not found"):
        load_dfew(dfew, report=LoadReport(on_error="skip"))


def test_fold_file_twice(dfew):
    (dfew / "copy").mkdir()
    shutil.copy(_list(dfew, "train", 2), dfew / "copy")
    with pytest.raises(DataError, match="single_trainset_2.csv found 2 times"):
        load_dfew(dfew)


def test_missing_header_column(dfew):
    path = _list(dfew, "test", 1)
    _write(path, ["name,label", *_lines(path)[1:]])
    with pytest.raises(DataError, match=r"missing column\(s\) \['video_name'\]") as info:
        load_dfew(dfew, folds=(1,), report=LoadReport(on_error="skip"))
    assert (info.value.path, info.value.line, info.value.field) == (str(path), 1, "video_name")


def test_non_utf8_fold_file(dfew):
    path = _list(dfew, "train", 1)
    path.write_bytes(path.read_bytes() + b"caf\xe9,1\n")
    with pytest.raises(DataError, match="not valid UTF-8") as info:
        load_dfew(dfew, folds=(1,))
    assert (info.value.path, info.value.line) == (str(path), 13)


def test_check_media_reports_unreadable_clips(dfew):
    name, _ = _row(dfew, "test", 1, 2)
    (dfew / "clips" / f"{int(name):05d}.mp4").write_bytes(b"not a video at all")
    assert len(load_dfew(dfew)[1]) == N_CLIPS  # not probed by default
    with pytest.raises(DataError, match="unreadable clip") as info:
        load_dfew(dfew, folds=(1,), check_media=True)
    assert (info.value.path, info.value.line, info.value.field) == (str(_list(dfew, "test", 1)), 2, "video_name")
    assert isinstance(info.value.__cause__, DataError)


def test_skip_mode_counts(dfew):
    corrupt, _ = _row(dfew, "test", 1, 2)
    (dfew / "clips" / f"{int(corrupt):05d}.mp4").write_bytes(b"garbage")
    train_1 = _list(dfew, "train", 1)
    lines = _lines(train_1)
    lines[1] = lines[1].split(",")[0] + ",9"
    _write(train_1, lines)
    report = LoadReport(on_error="skip")
    folds = load_dfew(dfew, check_media=True, report=report)
    assert len(report.skipped) == 6  # the corrupt clip once per fold, plus the bad label
    assert sorted(e.field for e in report.skipped) == ["label"] + ["video_name"] * 5
    assert [len(folds[k]) for k in range(1, 6)] == [12, 13, 13, 13, 13]
    assert all(c.name != corrupt for clips in folds.values() for c in clips)


def test_leaked_clip_stays_in_test_when_skipping(dfew):
    _leak(dfew)
    name, _ = _row(dfew, "test", 1, 2)
    clips = load_dfew(dfew, folds=(1,), report=LoadReport(on_error="skip"))[1]
    assert [c.split for c in clips if c.name == name] == ["test"]


# --- metrics -----------------------------------------------------------------------------------------


def test_uar_war_hand_checked():
    y_true = ["Happy"] * 4 + ["Sad"] * 2 + ["Neutral"]
    y_pred = ["Happy", "Happy", "Happy", "Sad", "Sad", "Neutral", "Neutral"]
    # recalls: Happy 3/4, Sad 1/2, Neutral 1/1 -> UAR 0.75; 5 of 7 right -> WAR 5/7
    assert uar(y_true, y_pred) == pytest.approx(0.75)
    assert war(y_true, y_pred) == pytest.approx(5 / 7)
    assert uar([1, 1, 1, 2], [1, 1, 2, 2]) == pytest.approx((2 / 3 + 1) / 2)
    assert war([1, 1, 1, 2], [1, 1, 2, 2]) == pytest.approx(0.75)


def test_metrics_reject_mismatched_inputs():
    with pytest.raises(DataError, match="2 true and 1 predicted"):
        uar(["Happy", "Sad"], ["Happy"])
    with pytest.raises(DataError, match="0 true and 0 predicted"):
        war([], [])
    with pytest.raises(DataError, match="cannot score"):
        war(["Happy", "Sad"], [1, 2])
