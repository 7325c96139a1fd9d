"""Per-split counts of a corpus: dialogues, rows, turns, therapist turns and label counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from mmrl.data.schema import SPLITS, Corpus, Dialogue

__all__ = ["corpus_stats", "split_stats"]


def _sorted(counter: Counter) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def split_stats(dialogues: Iterable[Dialogue]) -> dict:
    """Counts for one group of dialogues; row labels count segments, turn labels count turns."""
    dialogues = list(dialogues)
    rows = {"client_emotion": Counter(), "therapist_emotion": Counter(), "strategy": Counter()}
    turns = {"client_emotion": Counter(), "therapist_emotion": Counter(), "strategy": Counter()}
    n_turns = n_targets = n_video = n_audio = n_description = 0
    for dialogue in dialogues:
        n_turns += len(dialogue.turns)
        n_targets += len(dialogue.target_indices())
        for turn in dialogue.turns:
            key = f"{turn.speaker}_emotion"
            turns[key][turn.emotion or "unlabelled"] += 1
            if turn.speaker == "therapist":
                turns["strategy"][turn.strategy or "unlabelled"] += 1
            for segment in turn.segments:
                rows[key][segment.emotion or "unlabelled"] += 1
                if turn.speaker == "therapist":
                    rows["strategy"][segment.strategy or "unlabelled"] += 1
                n_video += bool(segment.media and segment.media.has_video)
                n_audio += bool(segment.media and segment.media.has_audio)
                n_description += segment.video_description is not None
    return {
        "dialogues": len(dialogues),
        "rows": sum(d.n_segments for d in dialogues),
        "turns": n_turns,
        "therapist_turns": n_targets,
        "rows_with_video": n_video,
        "rows_with_audio": n_audio,
        "rows_with_video_description": n_description,
        "row_labels": {k: _sorted(v) for k, v in rows.items()},
        "turn_labels": {k: _sorted(v) for k, v in turns.items()},
    }


def corpus_stats(corpus: Corpus) -> dict:
    """``{"format", "source", "splits": {split: stats}, "total": stats, "skipped": summary}``.

    ``therapist_turns`` counts therapist turns that follow at least one other turn (the targets).
    """
    return {
        "format": corpus.format,
        "source": corpus.source,
        "splits": {split: split_stats(corpus.split(split)) for split in SPLITS},
        "total": split_stats(corpus.dialogues),
        "skipped": corpus.report.summary(),
    }
