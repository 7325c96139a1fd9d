"""Data layer: typed records and loaders for MESC, MultiMood jsonl, DFEW and the embedded corpus."""

from __future__ import annotations

import json
from pathlib import Path

from mmrl.data.schema import (
    SPLITS,
    Corpus,
    DfewClip,
    Dialogue,
    LoadReport,
    Media,
    Segment,
    Turn,
    require_train,
)
from mmrl.errors import DataError

__all__ = [
    "DIALOGUE_FORMATS",
    "SPLITS",
    "Corpus",
    "DfewClip",
    "Dialogue",
    "LoadReport",
    "Media",
    "Segment",
    "Turn",
    "detect_format",
    "load_corpus",
    "report_skipped",
    "require_train",
]

#: Formats that load into a :class:`Corpus` of dialogues (DFEW is clip-level: see ``mmrl.data.dfew``).
DIALOGUE_FORMATS = ("mesc", "synth", "jsonl", "multimood")


def detect_format(path: str | Path) -> str:
    """Guess the format of ``path``: a MESC directory, a synth/jsonl corpus, a MultiMood or DFEW source."""
    path = Path(path)
    if path.is_dir():
        if (path / "MESC.csv").is_file():
            return "mesc"
        if (path / "corpus.jsonl").is_file():
            return "synth"
        if next(path.rglob("single_trainset_1.csv"), None) is not None:
            return "dfew"
    elif path.suffix == ".jsonl" and path.is_file():
        with path.open("rb") as f:
            first = next((line for line in f if line.strip()), b"")
        try:
            keys = json.loads(first)
        except ValueError:
            keys = {}
        if isinstance(keys, dict) and "history_chat" in keys:
            return "multimood"
        if isinstance(keys, dict) and "turns" in keys:
            return "jsonl"
    elif not path.exists():
        raise DataError("no such file or directory", path=path)
    raise DataError("cannot tell the data format; pass --format (mesc, synth, jsonl, multimood or dfew)", path=path)


def load_corpus(
    path: str | Path,
    format: str | None = None,
    *,
    on_error: str = "raise",
    media_dir: str | Path | None = None,
    check_media: bool = False,
    split: str | None = None,
) -> Corpus:
    """Load dialogues from ``path`` in ``format`` (detected when None).

    ``on_error="skip"`` skips bad records and lists them in ``corpus.report``; ``split`` names the
    split of a MultiMood file whose name does not say it.
    """
    format = format or detect_format(path)
    report = LoadReport(on_error=on_error)  # type: ignore[arg-type]
    if format == "mesc":
        from mmrl.data.mesc import load_mesc

        return load_mesc(path, media_dir=media_dir, report=report, check_media=check_media)
    if format == "synth":
        from mmrl.data.synth import load_synth

        return load_synth(path, report=report, check_media=check_media)
    if format == "jsonl":
        from mmrl.data.jsonl import read_dialogues

        return read_dialogues(path, report=report, check_media=check_media)
    if format == "multimood":
        from mmrl.data.multimood import load_multimood

        return load_multimood(path, split=split, report=report)
    if format == "dfew":
        raise DataError("DFEW holds clips, not dialogues: use mmrl.data.dfew.load_dfew", path=path, field="format")
    raise DataError(f"unknown format {format!r}; expected one of {[*DIALOGUE_FORMATS, 'dfew']}", field="format")


def report_skipped(corpus: Corpus) -> None:
    """Print to stderr how many bad records ``on_error="skip"`` skipped in ``corpus``, why, and the first one (nothing if none)."""
    import sys

    if corpus.report.skipped:
        print(corpus.report.describe(corpus.source), file=sys.stderr)
