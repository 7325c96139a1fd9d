"""MESC loader: ``MESC.csv`` plus the official ``val.json`` / ``test.json`` splits.

Rows are subtitle segments; a turn is a maximal run of consecutive rows by one speaker
(merged text, majority label). Each json dialogue is matched to exactly one ``Dialogue_ID``
by its length and first utterances; train is every other dialogue.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from itertools import groupby
from pathlib import Path

from mmrl.data.io import read_text
from mmrl.data.schema import Corpus, Dialogue, LoadReport, Media, Segment, Turn
from mmrl.errors import DataError
from mmrl.labels import normalise_emotion, normalise_strategy

__all__ = ["MESC_COLUMNS", "load_mesc"]

MESC_COLUMNS = ("Utterance", "Speaker", "Emotion", "Strategy", "Dialogue_ID", "Utterance_ID", "StartTime", "EndTime")
_SPEAKERS = {"client": "client", "therapist": "therapist"}
_JSON_SPEAKERS = {"user": "client", "sys": "therapist"}
_MATCH_PREFIX = 3  # json dialogues are matched by length and their first utterances


def _seconds(value: str, **where) -> float | None:
    """Parse an SRT time ``HH:MM:SS,mmm`` to seconds (empty -> None)."""
    if not value.strip():
        return None
    try:
        hms, _, ms = value.strip().partition(",")
        h, m, s = (int(x) for x in hms.split(":"))
        return h * 3600 + m * 60 + s + int(ms or 0) / 1000
    except ValueError as exc:
        raise DataError(f"expected a time like '00:01:02,345', got {value!r}", **where) from exc


def _int(value: str, **where) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"expected an integer, got {value!r}", **where) from exc


def _csv_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line, row)`` of MESC.csv; a structural fault (a field past the csv module's size limit, usually an unclosed
    quote that swallowed the rest of the file) is a DataError naming the line: nothing after it can be trusted."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    try:
        fieldnames = reader.fieldnames
    except csv.Error as exc:
        raise DataError(f"unreadable CSV header ({exc}; an unclosed quote?)", path=path, line=1) from None
    missing = [c for c in MESC_COLUMNS if c not in (fieldnames or [])]
    if missing:
        raise DataError(f"missing column(s) {missing}; found {fieldnames}", path=path, line=1, field=missing[0])
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"unreadable CSV from here on ({exc}; an unclosed quote?)", path=path, line=start) from None
        yield reader.line_num, row


def _read_rows(
    path: Path, media_dir: Path | None, report: LoadReport
) -> tuple[dict[int, list[Segment]], dict[int, tuple[DataError, list]]]:
    """Parse MESC.csv into segments per Dialogue_ID; a dialogue with a bad row is skipped whole.

    Also returns the skipped dialogues: their first error and their readable rows (``(line, Utterance_ID, Segment)``),
    so that a val/test dialogue among them is reported by its bad row. A row whose Dialogue_ID cannot be read takes
    the dialogues of the rows around it with it (it belongs to one of them).
    """
    rows: dict[int, list[tuple[int, int, Segment]]] = defaultdict(list)
    bad: dict[int, DataError] = {}
    orphan: DataError | None = None  # a row without a readable Dialogue_ID, waiting for the next row's dialogue
    previous: int | None = None
    for line, row in _csv_rows(path):
        shape = _shape_error(row, path, line)
        try:
            dialogue_id = _int(row["Dialogue_ID"], path=path, line=line, field="Dialogue_ID")
        except DataError as err:
            err = shape or err
            if previous is not None:
                bad.setdefault(previous, err)
            orphan = orphan or err
            continue
        if orphan is not None:
            bad.setdefault(dialogue_id, orphan)
            orphan = None
        previous = dialogue_id
        try:
            if shape is not None:
                raise shape
            rows[dialogue_id].append((line, *_parse_row(row, path, line, dialogue_id, media_dir)))
        except DataError as err:
            bad.setdefault(dialogue_id, err)
    if orphan is not None and previous is None:
        report.fail(orphan)
    segments: dict[int, list[Segment]] = {}
    skipped: dict[int, tuple[DataError, list]] = {}
    for dialogue_id in dict.fromkeys([*rows, *bad]):
        entries = rows.get(dialogue_id, [])
        try:
            if dialogue_id in bad:
                raise bad[dialogue_id]
            segments[dialogue_id] = _ordered(dialogue_id, entries, path)
        except DataError as err:
            skipped[dialogue_id] = (err, sorted(entries, key=lambda e: e[1]))
    if skipped and report.on_error == "raise":  # the first bad row of the file, before the split files are read
        raise min((error for error, _ in skipped.values()), key=lambda e: e.line or 0)
    return segments, skipped


def _shape_error(row: dict, path: Path, line: int) -> DataError | None:
    """A row with more or fewer fields than the header (csv.DictReader marks them with ``None``), else None."""
    if None not in row and None not in row.values():
        return None
    count = len(row) - 1 + len(row[None]) if None in row else sum(v is not None for v in row.values())
    return DataError(
        f"row has {count} fields, expected {len(row) - (None in row)} ({', '.join(k for k in row if k)})", path=path, line=line
    )


def _parse_row(row: dict, path: Path, line: int, dialogue_id: int, media_dir: Path | None) -> tuple[int, Segment]:
    where = {"path": path, "line": line}
    text = (row["Utterance"] or "").strip()
    if not text:
        raise DataError("empty utterance text", field="Utterance", **where)
    speaker = _SPEAKERS.get((row["Speaker"] or "").strip().lower())
    if speaker is None:
        raise DataError(f"unknown speaker {row['Speaker']!r}; expected 'Client' or 'Therapist'", field="Speaker", **where)
    strategy_raw = (row["Strategy"] or "").strip()
    if speaker == "therapist":
        strategy = normalise_strategy(strategy_raw, field="Strategy", **where)
    elif strategy_raw.lower() in ("", "undefined"):
        strategy = None
    else:
        raise DataError(f"client rows must have strategy 'undefined', got {strategy_raw!r}", field="Strategy", **where)
    utterance_id = _int(row["Utterance_ID"], field="Utterance_ID", **where)
    media = None
    if media_dir is not None:
        stem = media_dir / f"{dialogue_id}_{utterance_id}"
        video, audio = stem.with_suffix(".mp4"), stem.with_suffix(".wav")
        if video.is_file() or audio.is_file():
            media = Media(video_path=video if video.is_file() else None, audio_path=audio if audio.is_file() else None)
    return utterance_id, Segment(
        text=text,
        emotion=normalise_emotion(row["Emotion"], field="Emotion", **where),
        strategy=strategy,
        utterance_id=utterance_id,
        start=_seconds(row["StartTime"], field="StartTime", **where),
        end=_seconds(row["EndTime"], field="EndTime", **where),
        media=media,
    )


def _ordered(dialogue_id: int, entries: list[tuple[int, int, Segment]], path: Path) -> list[Segment]:
    """Sort a dialogue's rows by Utterance_ID, rejecting duplicates and gaps."""
    entries = sorted(entries, key=lambda e: e[1])
    seen: dict[int, int] = {}
    for line, utterance_id, _ in entries:
        if utterance_id in seen:
            raise DataError(
                f"duplicate Utterance_ID {utterance_id} in dialogue {dialogue_id} (also on line {seen[utterance_id]})",
                path=path,
                line=line,
                field="Utterance_ID",
            )
        seen[utterance_id] = line
    ids = [e[1] for e in entries]
    if ids != list(range(len(ids))):
        gap = next(i for i, u in enumerate(ids) if u != i)
        raise DataError(
            f"Utterance_IDs of dialogue {dialogue_id} must run 0..{len(ids) - 1}; Utterance_ID {gap} is missing",
            path=path,
            line=entries[gap][0],
            field="Utterance_ID",
        )
    return [e[2] for e in entries]


def _read_split(path: Path) -> list[dict]:
    try:
        records = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from exc
    if not isinstance(records, list):
        raise DataError(f"expected a JSON list of dialogues, got {type(records).__name__}", path=path)
    if not records:
        raise DataError("no dialogues: an empty split file would move the whole split into train (a leak); restore it", path=path)
    for index, record in enumerate(records):
        where = {"path": path, "record": f"#{index}"}
        if not isinstance(record, dict):
            raise DataError(f"expected an object, got {type(record).__name__}", **where)
        for key, kind in (("problem_type", str), ("situation", str), ("dialog", list)):
            if not isinstance(record.get(key), kind):
                raise DataError(f"expected {kind.__name__}, got {record.get(key)!r:.60}", field=key, **where)
        if not record["dialog"]:
            raise DataError("empty dialog", field="dialog", **where)
        for k, utterance in enumerate(record["dialog"]):
            if not isinstance(utterance, dict) or not isinstance(utterance.get("text"), str):
                raise DataError("expected an object with a string 'text'", field=f"dialog[{k}].text", **where)
            if utterance.get("speaker") not in _JSON_SPEAKERS:
                raise DataError(
                    f"unknown speaker {utterance.get('speaker')!r}; expected 'user' or 'sys'", field=f"dialog[{k}].speaker", **where
                )
    return records


def _skipped_match(dialog: list[dict], skipped: dict[int, tuple[DataError, list]]) -> DataError | None:
    """The error of the skipped dialogue whose readable rows a json dialogue agrees with, if one does."""
    for error, entries in skipped.values():
        if entries and all(uid < len(dialog) and dialog[uid]["text"].startswith(seg.text) for _, uid, seg in entries):
            return error
    return None


def _match(records: list[dict], path: Path, segments: dict[int, list[Segment]], skipped: dict[int, tuple[DataError, list]]) -> list[int]:
    """Map each json dialogue to the one Dialogue_ID with its length and first utterances.

    A dialogue that matches none because its MESC.csv rows were skipped is reported by its bad row:
    it cannot be skipped (it would leak into train), so that row must be fixed.
    """
    by_length: dict[int, list[int]] = defaultdict(list)
    for dialogue_id, segs in segments.items():
        by_length[len(segs)].append(dialogue_id)
    matched = []
    for i, record in enumerate(records):
        dialog = record["dialog"]
        prefix = range(min(_MATCH_PREFIX, len(dialog)))
        candidates = [d for d in by_length.get(len(dialog), []) if all(dialog[k]["text"].startswith(segments[d][k].text) for k in prefix)]
        if not candidates and (error := _skipped_match(dialog, skipped)) is not None:
            raise DataError(
                f"{error.reason} (this dialogue is {path.name} record #{i}: a val/test dialogue cannot be skipped, it would leak "
                "into train; fix the row)", path=error.path, line=error.line, record=error.record, field=error.field,
            )  # fmt: skip
        if len(candidates) != 1:
            what = "no Dialogue_ID" if not candidates else f"{len(candidates)} Dialogue_IDs {sorted(candidates)}"
            raise DataError(
                f"dialogue matches {what} of MESC.csv by length ({len(dialog)}) and first utterances; each val/test "
                "dialogue must match exactly one (it cannot be skipped: it would leak into train)",
                path=path,
                record=f"#{i}",
                field="dialog",
            )
        matched.append(candidates[0])
    return matched


def _annotate(record: dict, segs: list[Segment], path: Path, i: int) -> list[Segment]:
    """Check a json dialogue against its CSV rows and attach each row's video description."""
    out = []
    for k, (utterance, seg) in enumerate(zip(record["dialog"], segs)):
        where = {"path": path, "record": f"#{i}"}
        if not utterance["text"].startswith(seg.text):
            raise DataError(
                f"text {utterance['text'][:40]!r} does not start with MESC.csv's {seg.text[:40]!r}", field=f"dialog[{k}].text", **where
            )
        speaker = _JSON_SPEAKERS[utterance["speaker"]]
        if speaker != ("therapist" if seg.strategy is not None else "client"):
            raise DataError(f"speaker {utterance['speaker']!r} disagrees with MESC.csv", field=f"dialog[{k}].speaker", **where)
        if normalise_emotion(utterance.get("emotion"), field=f"dialog[{k}].emotion", **where) != seg.emotion:
            raise DataError(
                f"emotion {utterance.get('emotion')!r} disagrees with MESC.csv's {seg.emotion!r}", field=f"dialog[{k}].emotion", **where
            )
        description = utterance["text"][len(seg.text) :].strip()
        out.append(replace(seg, video_description=description or None))
    return out


def _turns(segments: list[Segment]) -> tuple[Turn, ...]:
    return tuple(
        Turn.from_segments("therapist" if therapist else "client", list(run))
        for therapist, run in groupby(segments, key=lambda s: s.strategy is not None)
    )


def load_mesc(
    root: str | Path,
    *,
    media_dir: str | Path | None = None,
    report: LoadReport | None = None,
    check_media: bool = False,
) -> Corpus:
    """Load MESC from ``root`` (``MESC.csv``, ``val.json``, ``test.json``) with the official splits.

    ``media_dir`` optionally holds per-utterance clips ``{Dialogue_ID}_{Utterance_ID}.mp4/.wav``;
    with ``check_media`` each attached clip is probed. A dialogue with a bad CSV row is skipped
    and recorded when ``report.on_error == "skip"``; a val/test record that matches no dialogue
    always raises, since skipping it would move that dialogue into train.
    """
    root = Path(root)
    report = report or LoadReport()
    media_root = None if media_dir is None else Path(media_dir)
    if media_root is not None and not media_root.is_dir():
        raise DataError("media directory not found", path=media_root)
    segments, skipped = _read_rows(root / "MESC.csv", media_root, report)
    splits: dict[int, tuple[str, dict]] = {}
    for split in ("val", "test"):
        path = root / f"{split}.json"
        records = _read_split(path)
        for i, (dialogue_id, record) in enumerate(zip(_match(records, path, segments, skipped), records)):
            if dialogue_id in splits:
                other = splits[dialogue_id][0]
                raise DataError(f"Dialogue_ID {dialogue_id} is already matched by a {other} dialogue", path=path, record=f"#{i}")
            try:
                segments[dialogue_id] = _annotate(record, segments[dialogue_id], path, i)
            except DataError as err:
                report.fail(err)
                del segments[dialogue_id]
            splits[dialogue_id] = (split, record)
    for error, _ in sorted(skipped.values(), key=lambda item: item[0].line or 0):
        report.fail(error)
    if check_media:
        from mmrl.data.media import probe
    dialogues = []
    for dialogue_id in sorted(segments):
        if check_media:
            for seg in segments[dialogue_id]:
                for file in (seg.media.video_path, seg.media.audio_path) if seg.media else ():
                    if file is not None:
                        probe(file)
        split, record = splits.get(dialogue_id, ("train", {}))
        dialogues.append(
            Dialogue(
                id=str(dialogue_id),
                split=split,
                turns=_turns(segments[dialogue_id]),
                problem_type=record.get("problem_type"),
                situation=record.get("situation"),
                source="mesc",
            )
        )
    return Corpus(dialogues=dialogues, format="mesc", source=str(root), report=report)
