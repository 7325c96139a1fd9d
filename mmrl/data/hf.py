"""Conversions from mmrl records to Hugging Face ``datasets.Dataset`` tables."""

from __future__ import annotations

from collections.abc import Iterable

from datasets import Dataset, Features, Sequence, Value

from mmrl.data.schema import Dialogue, Turn

__all__ = ["TARGET_FEATURES", "target_rows", "targets_dataset", "turns_dataset"]

_str = Value("string")
TARGET_FEATURES = Features(
    {
        "dialogue_id": _str,
        "split": _str,
        "turn_index": Value("int32"),
        "problem_type": _str,
        "situation": _str,
        "history_speakers": Sequence(_str),
        "history_texts": Sequence(_str),
        "client_text": _str,
        "video_description": _str,
        "client_video": _str,
        "client_audio": _str,
        "client_emotion": _str,
        "therapist_emotion": _str,
        "strategy": _str,
        "reference": _str,
    }
)


def _media_path(turn: Turn, kind: str) -> str | None:
    for media in turn.media:
        path = getattr(media, f"{kind}_path")
        if path is not None:
            return str(path)
    return None


def target_rows(dialogue: Dialogue) -> list[dict]:
    """One row per target therapist turn, split as :meth:`Dialogue.context_at` splits it.

    ``client_*`` fields describe the most recent client turn before the target (None if none);
    ``history_*`` hold the turns before that client turn.
    """
    rows = []
    for index in dialogue.target_indices():
        history, client, target = dialogue.context_at(index)
        rows.append(
            {
                "dialogue_id": dialogue.id,
                "split": dialogue.split,
                "turn_index": index,
                "problem_type": dialogue.problem_type,
                "situation": dialogue.situation,
                "history_speakers": [t.speaker for t in history],
                "history_texts": [t.text for t in history],
                "client_text": client.text if client else None,
                "video_description": client.video_description if client else None,
                "client_video": _media_path(client, "video") if client else None,
                "client_audio": _media_path(client, "audio") if client else None,
                "client_emotion": client.emotion if client else None,
                "therapist_emotion": target.emotion,
                "strategy": target.strategy,
                "reference": target.text,
            }
        )
    return rows


def targets_dataset(dialogues: Iterable[Dialogue]) -> Dataset:
    """A Dataset with one row per target therapist turn (columns: ``TARGET_FEATURES``)."""
    rows = [row for dialogue in dialogues for row in target_rows(dialogue)]
    return Dataset.from_list(rows, features=TARGET_FEATURES)


def turns_dataset(dialogues: Iterable[Dialogue]) -> Dataset:
    """A Dataset with one row per turn (speaker, text, labels, position)."""
    rows = [
        {
            "dialogue_id": d.id,
            "split": d.split,
            "turn_index": i,
            "speaker": t.speaker,
            "text": t.text,
            "emotion": t.emotion,
            "strategy": t.strategy,
            "video_description": t.video_description,
        }
        for d in dialogues
        for i, t in enumerate(d.turns)
    ]
    features = Features({k: Value("int32") if k == "turn_index" else _str for k in rows[0]}) if rows else None
    return Dataset.from_list(rows, features=features)
