"""DFEW: 7-class dynamic facial expression clips with the official 5-fold split.

Layout: the fold lists ``single_trainset_{k}.csv`` / ``single_testset_{k}.csv`` (k = 1..5, header
``video_name,label``, label an id 1..7 in :data:`DFEW_CLASSES` order or a class name) anywhere
below the root, and a clip directory of ``<video_name>.mp4`` (also the 5-digit zero-padded name,
and ``.avi``). Scores follow the DFER convention: UAR (mean per-class recall) and WAR (accuracy).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from sklearn.metrics import accuracy_score, balanced_accuracy_score

from mmrl.data.io import read_text
from mmrl.data.media import probe
from mmrl.data.schema import DfewClip, LoadReport, Split
from mmrl.errors import DataError
from mmrl.labels import DFEW_CLASSES, normalise_dfew

__all__ = ["CLIP_DIRS", "DFEW_FOLDS", "dfew_stats", "load_dfew", "uar", "war"]

DFEW_FOLDS: tuple[int, ...] = (1, 2, 3, 4, 5)
#: Clip directories tried under the root, in order, when ``clip_dir`` is not given.
CLIP_DIRS: tuple[str, ...] = ("clip", "clips", "videos", "data")
_COLUMNS = ("video_name", "label")
_SUFFIXES = (".mp4", ".avi")
_IDS = ", ".join(f"{i}={name}" for i, name in enumerate(DFEW_CLASSES, 1))


def _key(name: str) -> str:
    """Identity of a clip name: numeric names compare zero-padded (``12`` is ``00012``)."""
    return name.zfill(5) if name.isdigit() else name


def _label(value: str, **where) -> str:
    try:
        number = int(value)
    except ValueError:
        return normalise_dfew(value, **where)
    if not 1 <= number <= len(DFEW_CLASSES):
        raise DataError(f"label id {number} is out of range; DFEW ids are {_IDS}", **where)
    return DFEW_CLASSES[number - 1]


def _clip_root(root: Path, clip_dir: str | Path | None) -> Path:
    if clip_dir is not None:
        if not Path(clip_dir).is_dir():
            raise DataError("clip directory not found", path=clip_dir, field="clip_dir")
        return Path(clip_dir)
    for name in CLIP_DIRS:
        if (root / name).is_dir():
            return root / name
    raise DataError(
        f"no clip directory: none of {list(CLIP_DIRS)} exists under the root; put the clips in one of them (Python: pass clip_dir=)",
        path=root,
        field="clip_dir",
    )


def _fold_file(root: Path, index: dict[str, list[Path]], name: str) -> Path:
    found = index.get(name, [])
    if len(found) != 1:
        what = "not found" if not found else f"found {len(found)} times ({[str(p) for p in found]}); keep one"
        raise DataError(
            f"fold file {name} {what} below the DFEW root; expected single_trainset_k.csv and single_testset_k.csv for k=1..5",
            path=root,
        )
    return found[0]


def _read_list(path: Path, fold: int, split: Split, clips: Path, available: set[str], report: LoadReport) -> list[tuple[int, DfewClip]]:
    """``(line, clip)`` for each good row of one fold list; bad rows go to ``report``."""
    rows = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        header = [cell.strip() for cell in next(rows, [])]
        missing = [c for c in _COLUMNS if c not in header]
        if missing:
            raise DataError(
                f"missing column(s) {missing}; expected header 'video_name,label', found {header}",
                path=path,
                line=1,
                field=missing[0],
            )
        columns = [header.index(c) for c in _COLUMNS]
        out: list[tuple[int, DfewClip]] = []
        seen: dict[str, int] = {}
        for row in rows:
            line = rows.line_num
            if not any(cell.strip() for cell in row):
                continue
            name, value = (row[i].strip() if i < len(row) else "" for i in columns)
            where = {"path": path, "line": line}
            try:
                if not name:
                    raise DataError("empty video_name", field="video_name", **where)
                label = _label(value, field="label", **where)
                if _key(name) in seen:
                    raise DataError(f"duplicate video_name {name!r} (also on line {seen[_key(name)]})", field="video_name", **where)
                seen[_key(name)] = line
                tried = [f"{stem}{suffix}" for suffix in _SUFFIXES for stem in dict.fromkeys((name, _key(name)))]
                file = next((f for f in tried if f in available), None)
                if file is None:
                    raise DataError(f"no clip file for {name!r} in {clips} (tried {tried})", field="video_name", **where)
            except DataError as err:
                report.fail(err)
                continue
            out.append((line, DfewClip(name=name, label=label, fold=fold, split=split, video_path=clips / file)))
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", path=path, line=rows.line_num) from exc
    return out


def load_dfew(
    root: str | Path,
    *,
    folds: Sequence[int] = DFEW_FOLDS,
    clip_dir: str | Path | None = None,
    report: LoadReport | None = None,
    check_media: bool = False,
) -> dict[int, list[DfewClip]]:
    """Load the train and test clips of each fold in ``folds`` (train first, in file order).

    ``clip_dir`` defaults to the first of :data:`CLIP_DIRS` under ``root``. A bad row (label, duplicate,
    missing or, with ``check_media``, unreadable clip; a clip in both lists of a fold, reported on
    its train line) raises, or is recorded and left out when ``report.on_error == "skip"`` (a clip in
    both lists then stays in test only, keeping the official test set). Missing or headerless fold
    files always raise.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError("DFEW root directory not found", path=root)
    unknown = [k for k in folds if k not in DFEW_FOLDS]
    if unknown:
        raise DataError(f"unknown fold(s) {unknown}; DFEW folds are {list(DFEW_FOLDS)}", field="folds")
    report = report or LoadReport()
    clips = _clip_root(root, clip_dir)
    available = {p.name for p in clips.iterdir()}
    index: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("single_*set_*.csv")):
        index.setdefault(path.name, []).append(path)
    probed: dict[Path, DataError | None] = {}
    out: dict[int, list[DfewClip]] = {}
    for fold in folds:
        train_path = _fold_file(root, index, f"single_trainset_{fold}.csv")
        test_path = _fold_file(root, index, f"single_testset_{fold}.csv")
        train = _read_list(train_path, fold, "train", clips, available, report)
        test = _read_list(test_path, fold, "test", clips, available, report)
        in_test = {_key(clip.name): line for line, clip in test}
        kept: list[DfewClip] = []
        for path, entries in ((train_path, train), (test_path, test)):
            for line, clip in entries:
                try:
                    if path == train_path and _key(clip.name) in in_test:
                        raise DataError(
                            f"clip {clip.name!r} is also in {test_path.name}:{in_test[_key(clip.name)]}; "
                            "a clip belongs to one split per fold",
                            path=path,
                            line=line,
                            field="video_name",
                        )
                    if check_media:
                        _check(clip, probed, path=path, line=line)
                except DataError as err:
                    report.fail(err)
                    continue
                kept.append(clip)
        out[fold] = kept
    return out


def _check(clip: DfewClip, probed: dict[Path, DataError | None], **where) -> None:
    """Probe a clip once per load; re-raise its failure naming the csv line that lists it."""
    if clip.video_path not in probed:
        try:
            probe(clip.video_path, field="video")
            probed[clip.video_path] = None
        except DataError as exc:
            probed[clip.video_path] = exc
    cause = probed[clip.video_path]
    if cause is not None:
        raise DataError(f"unreadable clip {clip.video_path}: {cause.reason}", field="video_name", **where) from cause


def dfew_stats(folds: Mapping[int, Sequence[DfewClip]]) -> dict:
    """Per fold and split: ``{"count": n, "labels": {class name: n}}`` over all 7 classes."""
    stats = {}
    for fold, clips in folds.items():
        stats[fold] = {}
        for split in ("train", "test"):
            labels = Counter(clip.label for clip in clips if clip.split == split)
            stats[fold][split] = {"count": sum(labels.values()), "labels": {name: labels[name] for name in DFEW_CLASSES}}
    return stats


def _score(metric: Callable, y_true: Sequence, y_pred: Sequence) -> float:
    y_true, y_pred = list(y_true), list(y_pred)
    if not y_true or len(y_true) != len(y_pred):
        raise DataError(
            f"expected as many predicted as true labels (at least one), got {len(y_true)} true and {len(y_pred)} predicted",
            field="y_pred",
        )
    try:
        return float(metric(y_true, y_pred))
    except (TypeError, ValueError) as exc:
        raise DataError(f"cannot score these labels: {exc}", field="y_pred") from exc


def uar(y_true: Sequence, y_pred: Sequence) -> float:
    """Unweighted average recall: mean recall over the classes in ``y_true`` (balanced accuracy).

    >>> round(uar(["Happy", "Happy", "Happy", "Sad"], ["Happy", "Happy", "Sad", "Sad"]), 4)
    0.8333
    """
    return _score(balanced_accuracy_score, y_true, y_pred)


def war(y_true: Sequence, y_pred: Sequence) -> float:
    """Weighted average recall: plain accuracy.

    >>> war(["Happy", "Happy", "Happy", "Sad"], ["Happy", "Happy", "Sad", "Sad"])
    0.75
    """
    return _score(accuracy_score, y_true, y_pred)
