"""mmrl's native dialogue format ("mmrl jsonl"): one dialogue per line, validated on read.

A line::

    {"id": str, "split": "train"|"val"|"test", "problem_type": str|null, "situation": str|null,
     "turns": [{"speaker": "client"|"therapist",
                "segments": [{"text": str, "emotion": str|null, "strategy": str|null,
                              "utterance_id": int|null, "start": float|null, "end": float|null,
                              "video_description": str|null, "video": path|null, "audio": path|null}]}]}

A turn without ``segments`` may carry the segment keys itself (one segment). Media paths are relative
to the jsonl file's directory (absolute paths are allowed). Unknown keys are rejected, so a typo
cannot silently drop a label. Consecutive turns must alternate speakers; strategies belong to
therapist segments only (a client segment may say ``"undefined"``, read as null).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mmrl.config import suggest
from mmrl.data.io import json_lines
from mmrl.data.media import probe
from mmrl.data.schema import (
    SPEAKERS,
    SPLITS,
    Corpus,
    Dialogue,
    LoadReport,
    Media,
    Segment,
    Turn,
)
from mmrl.errors import DataError
from mmrl.labels import normalise_emotion, normalise_strategy

__all__ = ["read_dialogues", "write_dialogues"]

_DIALOGUE_KEYS = ("id", "split", "problem_type", "situation", "turns")
_SEGMENT_KEYS = ("text", "emotion", "strategy", "utterance_id", "start", "end", "video_description", "video", "audio")
_TURN_KEYS = ("speaker", "segments", *_SEGMENT_KEYS)
_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "integer", float: "number", bool: "boolean"}


def _json_type(value: object) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


class _Line:
    """Where a record came from, to build errors that name file, line, record and field."""

    def __init__(self, path: Path, line: int) -> None:
        self.path, self.line = path, line
        self.record: str | None = None

    def error(self, message: str, field: str | None = None) -> DataError:
        return DataError(message, path=self.path, line=self.line, record=self.record, field=field)

    def check_keys(self, obj: dict, allowed: tuple[str, ...], where: str) -> None:
        for key in obj:
            if key not in allowed:
                hint = suggest(key, allowed)
                raise self.error(f"unknown key {key!r}; expected keys among {list(allowed)}{hint}", f"{where}{key}")

    def get(self, obj: dict, key: str, kinds: tuple[type, ...], field: str, *, required: bool = False) -> Any:
        """``obj[key]`` checked against JSON ``kinds``; a missing optional key (or null) is None."""
        if key not in obj:
            if required:
                raise self.error(f"missing required field {key!r}", field)
            return None
        value = obj[key]
        if value is None and not required:
            return None
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            expected = " or ".join(_JSON_TYPES[k] for k in kinds) + ("" if required else " or null")
            raise self.error(f"expected {expected}, got {_json_type(value)} {value!r:.60}", field)
        return value


def _media_path(where: _Line, value: str | None, field: str, check_media: bool) -> Path | None:
    if value is None:
        return None
    if not value.strip():
        raise where.error("empty media path; use null for no media", field)
    path = Path(value)
    if not path.is_absolute():
        path = where.path.parent / path
    if not path.is_file():
        raise where.error(f"media file not found: {path} (paths are relative to the jsonl file's directory)", field)
    if check_media:
        try:
            probe(path, field=field)
        except DataError as err:
            raise where.error(f"unreadable media file {path}: {err.reason}", field) from err
    return path


def _segment(where: _Line, obj: dict, speaker: str, field: str, check_media: bool) -> Segment:
    text = where.get(obj, "text", (str,), f"{field}.text", required=True)
    if not text.strip():
        raise where.error("empty text; every segment needs the words spoken", f"{field}.text")
    emotion = where.get(obj, "emotion", (str,), f"{field}.emotion")
    if emotion is not None:
        emotion = normalise_emotion(emotion, path=where.path, line=where.line, record=where.record, field=f"{field}.emotion")
    strategy = where.get(obj, "strategy", (str,), f"{field}.strategy")
    if speaker == "client" and strategy is not None:
        if strategy.strip().lower() != "undefined":
            raise where.error(
                f"client segments take no strategy, got {strategy!r}; use null (strategies label therapist turns)",
                f"{field}.strategy",
            )
        strategy = None
    elif strategy is not None:
        strategy = normalise_strategy(strategy, path=where.path, line=where.line, record=where.record, field=f"{field}.strategy")
    start = where.get(obj, "start", (int, float), f"{field}.start")
    end = where.get(obj, "end", (int, float), f"{field}.end")
    if start is not None and end is not None and end < start:
        raise where.error(f"end {end} is before start {start}", f"{field}.end")
    video = _media_path(where, where.get(obj, "video", (str,), f"{field}.video"), f"{field}.video", check_media)
    audio = _media_path(where, where.get(obj, "audio", (str,), f"{field}.audio"), f"{field}.audio", check_media)
    return Segment(
        text=text,
        emotion=emotion,
        strategy=strategy,
        utterance_id=where.get(obj, "utterance_id", (int,), f"{field}.utterance_id"),
        start=None if start is None else float(start),
        end=None if end is None else float(end),
        video_description=where.get(obj, "video_description", (str,), f"{field}.video_description"),
        media=Media(video_path=video, audio_path=audio) if video or audio else None,
    )


def _turn(where: _Line, obj: object, field: str, check_media: bool) -> Turn:
    if not isinstance(obj, dict):
        raise where.error(f"expected a turn object, got {_json_type(obj)}", field)
    where.check_keys(obj, _TURN_KEYS, f"{field}.")
    speaker = where.get(obj, "speaker", (str,), f"{field}.speaker", required=True)
    if speaker not in SPEAKERS:
        raise where.error(f"unknown speaker {speaker!r}; expected one of {list(SPEAKERS)}", f"{field}.speaker")
    if "segments" not in obj:
        return Turn.from_segments(speaker, [_segment(where, obj, speaker, field, check_media)])
    shorthand = [key for key in obj if key in _SEGMENT_KEYS]
    if shorthand:
        raise where.error(f"a turn has either 'segments' or segment keys, not both (found {shorthand})", field)
    raw = where.get(obj, "segments", (list,), f"{field}.segments", required=True)
    if not raw:
        raise where.error("a turn needs at least one segment", f"{field}.segments")
    segments = []
    for j, seg in enumerate(raw):
        if not isinstance(seg, dict):
            raise where.error(f"expected a segment object, got {_json_type(seg)}", f"{field}.segments[{j}]")
        where.check_keys(seg, _SEGMENT_KEYS, f"{field}.segments[{j}].")
        segments.append(_segment(where, seg, speaker, f"{field}.segments[{j}]", check_media))
    return Turn.from_segments(speaker, segments)


def _dialogue(where: _Line, obj: object, check_media: bool) -> Dialogue:
    if not isinstance(obj, dict):
        raise where.error(f"expected one JSON object per line, got {_json_type(obj)}")
    if isinstance(obj.get("id"), str):
        where.record = obj["id"]
    where.check_keys(obj, _DIALOGUE_KEYS, "")
    dialogue_id = where.get(obj, "id", (str,), "id", required=True)
    if not dialogue_id.strip():
        raise where.error("empty dialogue id", "id")
    split = where.get(obj, "split", (str,), "split", required=True)
    if split not in SPLITS:
        raise where.error(f"unknown split {split!r}; expected one of {list(SPLITS)}", "split")
    raw_turns = where.get(obj, "turns", (list,), "turns", required=True)
    if not raw_turns:
        raise where.error("a dialogue needs at least one turn", "turns")
    turns = [_turn(where, t, f"turns[{i}]", check_media) for i, t in enumerate(raw_turns)]
    for i in range(1, len(turns)):
        if turns[i].speaker == turns[i - 1].speaker:
            raise where.error(
                f"turns {i - 1} and {i} are both by the {turns[i].speaker}; merge them into one turn with several segments",
                f"turns[{i}].speaker",
            )
    return Dialogue(
        id=dialogue_id,
        split=split,
        turns=tuple(turns),
        problem_type=where.get(obj, "problem_type", (str,), "problem_type"),
        situation=where.get(obj, "situation", (str,), "situation"),
        source="jsonl",
    )


def read_dialogues(path: str | Path, *, report: LoadReport | None = None, check_media: bool = False) -> Corpus:
    """Read an mmrl jsonl file into a Corpus (format ``"jsonl"``).

    Each bad line raises a DataError naming file, line, dialogue id and field, or with
    ``report=LoadReport(on_error="skip")`` is skipped and recorded in ``report.skipped``. Blank lines
    are ignored. ``check_media`` also probes that every media file decodes.
    """
    path = Path(path)
    report = report or LoadReport()
    dialogues: list[Dialogue] = []
    first_line: dict[str, int] = {}
    for number, obj in json_lines(path):
        where = _Line(path, number)
        try:
            if isinstance(obj, DataError):
                raise obj
            dialogue = _dialogue(where, obj, check_media)
            if dialogue.id in first_line:
                raise where.error(
                    f"duplicate dialogue id {dialogue.id!r}, first seen on line {first_line[dialogue.id]}; ids must be unique", "id"
                )
        except DataError as err:
            report.fail(err)
            continue
        first_line[dialogue.id] = number
        dialogues.append(dialogue)
    return Corpus(dialogues=dialogues, format="jsonl", source=str(path), report=report)


def _relative(file: Path | None, root: Path) -> str | None:
    if file is None:
        return None
    return Path(os.path.relpath(Path(file).absolute(), root)).as_posix()


def _segment_record(segment: Segment, speaker: str, root: Path, dialogue_id: str) -> dict:
    media = segment.media or Media()
    for kind, array, file in (("video", media.frames, media.video_path), ("audio", media.waveform, media.audio_path)):
        if array is not None and file is None:
            raise DataError(
                f"a segment has decoded {kind} but no {kind} file; write it with mmrl.data.media first",
                record=dialogue_id,
                field=kind,
            )
    return {
        "text": segment.text,
        "emotion": segment.emotion,
        "strategy": segment.strategy if speaker == "therapist" else None,
        "utterance_id": segment.utterance_id,
        "start": segment.start,
        "end": segment.end,
        "video_description": segment.video_description,
        "video": _relative(media.video_path, root),
        "audio": _relative(media.audio_path, root),
    }


def write_dialogues(path: str | Path, dialogues: Iterable[Dialogue]) -> Path:
    """Write dialogues as mmrl jsonl (media paths relative to the file's directory); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = path.parent.absolute()
    lines = []
    for d in dialogues:
        turns = [{"speaker": t.speaker, "segments": [_segment_record(s, t.speaker, root, d.id) for s in t.segments]} for t in d.turns]
        record = {"id": d.id, "split": d.split, "problem_type": d.problem_type, "situation": d.situation, "turns": turns}
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    with path.open("w", encoding="utf-8", newline="\n") as file:
        file.writelines(lines)
    return path
