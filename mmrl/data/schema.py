"""Typed records shared by every loader: segments, turns, dialogues, corpora, and DFEW clips."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from mmrl.errors import DataError, SplitLeakError

__all__ = [
    "SPEAKERS",
    "SPLITS",
    "Corpus",
    "DfewClip",
    "Dialogue",
    "LoadReport",
    "Media",
    "Segment",
    "Speaker",
    "Split",
    "Turn",
    "check_split",
    "require_train",
]

Speaker = Literal["client", "therapist"]
Split = Literal["train", "val", "test"]
SPEAKERS: tuple[str, ...] = ("client", "therapist")
SPLITS: tuple[str, ...] = ("train", "val", "test")


def check_split(split: str) -> Split:
    """Return ``split`` if it is one of SPLITS, else raise naming the allowed values."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {list(SPLITS)}", field="split")
    return split  # type: ignore[return-value]


@dataclass(frozen=True)
class Media:
    """Optional media of one segment: files on disk and/or decoded arrays.

    ``frames`` is ``(T, H, W, 3)`` uint8 RGB; ``waveform`` is ``(N,)`` float32 mono in [-1, 1].
    """

    video_path: Path | None = None
    audio_path: Path | None = None
    frames: np.ndarray | None = field(default=None, repr=False, compare=False)
    waveform: np.ndarray | None = field(default=None, repr=False, compare=False)
    sample_rate: int | None = None
    fps: float | None = None

    @property
    def has_video(self) -> bool:
        return self.frames is not None or self.video_path is not None

    @property
    def has_audio(self) -> bool:
        return self.waveform is not None or self.audio_path is not None


@dataclass(frozen=True)
class Segment:
    """One source row (a MESC subtitle segment): the unit labels and media are attached to."""

    text: str
    emotion: str | None
    strategy: str | None = None
    utterance_id: int | None = None
    start: float | None = None
    end: float | None = None
    video_description: str | None = None
    media: Media | None = None


def _majority(labels: Sequence[str | None]) -> str | None:
    """Most frequent non-missing label; ties go to the label seen first."""
    present = [label for label in labels if label is not None]
    if not present:
        return None
    counts = Counter(present)
    best = max(counts.values())
    return next(label for label in present if counts[label] == best)


@dataclass(frozen=True)
class Turn:
    """A maximal run of same-speaker segments: merged text, majority labels.

    ``emotion`` is the speaker's own emotion (client emotion on client turns, therapist emotion on
    therapist turns); ``strategy`` is set on therapist turns only. Build with :meth:`from_segments`.
    """

    speaker: Speaker
    text: str
    emotion: str | None
    strategy: str | None
    segments: tuple[Segment, ...]
    video_description: str | None = None

    @classmethod
    def from_segments(cls, speaker: Speaker, segments: Sequence[Segment]) -> Turn:
        if not segments:
            raise DataError("a turn needs at least one segment")
        descriptions = [s.video_description for s in segments if s.video_description]
        return cls(
            speaker=speaker,
            text=" ".join(s.text.strip() for s in segments),
            emotion=_majority([s.emotion for s in segments]),
            strategy=_majority([s.strategy for s in segments]) if speaker == "therapist" else None,
            segments=tuple(segments),
            video_description=" ".join(descriptions) if descriptions else None,
        )

    @property
    def start(self) -> float | None:
        return self.segments[0].start

    @property
    def end(self) -> float | None:
        return self.segments[-1].end

    @property
    def media(self) -> tuple[Media, ...]:
        """The media of the turn's segments that have any, in order."""
        return tuple(s.media for s in self.segments if s.media is not None)


@dataclass(frozen=True)
class Dialogue:
    """One counseling session. Its ``split`` is fixed at load time and travels with it."""

    id: str
    split: Split
    turns: tuple[Turn, ...]
    problem_type: str | None = None
    situation: str | None = None
    source: str = ""

    @property
    def n_segments(self) -> int:
        return sum(len(t.segments) for t in self.turns)

    def target_indices(self) -> list[int]:
        """Indices of therapist turns that follow at least one other turn (prediction/RL targets)."""
        return [i for i, t in enumerate(self.turns) if i > 0 and t.speaker == "therapist"]

    def context_at(self, index: int) -> tuple[tuple[Turn, ...], Turn | None, Turn]:
        """Split the dialogue at target ``index`` into (history, most recent client turn, target).

        The history is every turn before that client turn; the client turn is None when no
        client turn precedes the target.
        """
        if index not in self.target_indices():
            raise DataError(f"turn {index} is not a therapist turn that follows another turn", record=self.id, field="turn_index")
        before = self.turns[:index]
        last = max((i for i, t in enumerate(before) if t.speaker == "client"), default=None)
        if last is None:
            return before, None, self.turns[index]
        return before[:last], before[last], self.turns[index]


@dataclass(frozen=True)
class DfewClip:
    """One DFEW clip: ``label`` is a DFEW class name, ``fold`` 1..5, ``split`` train or test."""

    name: str
    label: str
    fold: int
    split: Split
    video_path: Path


@dataclass
class LoadReport:
    """What a loader skipped under ``on_error="skip"``; with ``on_error="raise"`` the first error raises."""

    on_error: Literal["raise", "skip"] = "raise"
    skipped: list[DataError] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.on_error not in ("raise", "skip"):
            raise DataError(f"on_error must be 'raise' or 'skip', got {self.on_error!r}", field="on_error")

    def fail(self, error: DataError) -> None:
        """Raise ``error``, or record it as skipped when the user asked to skip bad records."""
        if self.on_error == "raise":
            raise error
        self.skipped.append(error)

    def summary(self) -> dict:
        reasons = Counter(e.reason.split(";")[0] for e in self.skipped)
        return {"skipped": len(self.skipped), "reasons": dict(reasons), "examples": [str(e) for e in self.skipped[:5]]}

    def describe(self, source: object) -> str:
        """One line for a person: how many records of ``source`` were skipped, why, and the first one."""
        summary = self.summary()
        first = summary["examples"][0] if summary["examples"] else "none"
        return f"{source}: skipped {summary['skipped']} bad record(s) {summary['reasons']}; first: {first}"


@dataclass
class Corpus:
    """Dialogues loaded from one source, with the loader's report of anything skipped."""

    dialogues: list[Dialogue]
    format: str
    source: str
    report: LoadReport = field(default_factory=LoadReport)

    def split(self, name: str) -> list[Dialogue]:
        check_split(name)
        return [d for d in self.dialogues if d.split == name]

    def __len__(self) -> int:
        return len(self.dialogues)


def require_train(dialogues: Iterable[Dialogue], purpose: str = "training") -> list[Dialogue]:
    """Return the dialogues, refusing any that is not from the train split (no val/test leakage)."""
    dialogues = list(dialogues)
    leaked = [d for d in dialogues if d.split != "train"]
    if leaked:
        splits = sorted({d.split for d in leaked})
        raise SplitLeakError(
            f"{purpose} may only use the train split, but got {len(leaked)} dialogue(s) from {splits} "
            f"(e.g. {leaked[0].id!r}); select corpus.split('train') instead"
        )
    return dialogues
