"""From (dialogue, target index) pairs to model inputs: text-embedding rows, media tensors, history slots, labels.

Everything an example needs is computed once (text embeddings through the disk cache, media
decoded and featurized by the configured encoders) and kept in a :class:`FeatureSet`, so training
epochs only gather and pad.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

from mmrl.data.media import read_audio, read_video
from mmrl.data.schema import Dialogue, Turn
from mmrl.errors import DataError
from mmrl.labels import EMOTIONS, STRATEGIES
from mmrl.predictor.config import PredictorConfig
from mmrl.predictor.encoders import TextEmbeddingCache

__all__ = [
    "CLIENT_STATE_DIM",
    "HISTORY_STATE_DIM",
    "IGNORE",
    "STATE_DIM",
    "Batch",
    "Example",
    "FeatureSet",
    "Featurizer",
    "client_state",
    "collate",
    "history_state",
    "label_index",
]

#: Label id of an unknown label (ignored by the loss and the metrics).
IGNORE = -100
_SPEAKER_IDS = {"client": 0, "therapist": 1}
_RECENT_STRATEGIES = 3
#: Width of :func:`history_state`: the latest therapist segment's strategy, the last three turn strategies
#: (one-hots with a "none" slot), the history's strategy histogram, and log counts of history turns,
#: therapist turns and the run of the latest strategy.
HISTORY_STATE_DIM = (1 + _RECENT_STRATEGIES) * (len(STRATEGIES) + 1) + len(STRATEGIES) + 3
#: Width of :func:`client_state`: log words, ends with "?", contains "?", log segments, log seconds.
CLIENT_STATE_DIM = 5
STATE_DIM = HISTORY_STATE_DIM + CLIENT_STATE_DIM


def history_state(history: Sequence[Turn], labels: bool) -> np.ndarray:
    """Dialogue-state cues of the history for the strategy head (strategies persist and follow each other).

    With ``labels`` False only the counts of history and therapist turns are filled.
    """
    state = np.zeros(HISTORY_STATE_DIM, np.float32)
    therapist = [turn for turn in history if turn.speaker == "therapist"]
    state[-3:-1] = np.log1p([len(history), len(therapist)])
    if not labels:
        return state
    none, n_slots = len(STRATEGIES), len(STRATEGIES) + 1
    strategies = [STRATEGIES.index(t.strategy) if t.strategy in STRATEGIES else none for t in therapist]
    latest_segment = therapist[-1].segments[-1].strategy if therapist and therapist[-1].segments else None
    state[STRATEGIES.index(latest_segment) if latest_segment in STRATEGIES else none] = 1.0
    for k, strategy in enumerate((strategies[::-1] + [none] * _RECENT_STRATEGIES)[:_RECENT_STRATEGIES], start=1):
        state[k * n_slots + strategy] = 1.0
    known = [s for s in strategies if s != none]
    if known:
        state[(1 + _RECENT_STRATEGIES) * n_slots : -3] = np.bincount(known, minlength=none) / len(known)
    run = next((k for k, s in enumerate(reversed(strategies)) if s != strategies[-1]), len(strategies))
    state[-1] = np.log1p(run)
    return state


def client_state(client: Turn | None) -> np.ndarray:
    """Surface cues of the client turn: length, question marks, segments and duration."""
    if client is None:
        return np.zeros(CLIENT_STATE_DIM, np.float32)
    seconds = max(client.end - client.start, 0.0) if client.start is not None and client.end is not None else 0.0
    text = client.text.strip()
    return np.array(
        [np.log1p(len(text.split())), text.endswith("?"), "?" in text, np.log1p(len(client.segments)), np.log1p(seconds)], np.float32
    )


def label_index(label: str | None, labels: Sequence[str], **where) -> int:
    """Index of ``label`` in ``labels``; None -> :data:`IGNORE`; a label outside the set raises."""
    if label is None:
        return IGNORE
    if label not in labels:
        raise DataError(f"label {label!r} is not in the predictor's label set {list(labels)}; normalise the data with mmrl.labels", **where)
    return labels.index(label)


@dataclass
class Example:
    """One target therapist turn as row indices into the text table, media tensors and label ids."""

    dialogue_id: str
    turn_index: int
    text_row: int
    description_row: int
    history_rows: np.ndarray
    history_speaker: np.ndarray
    history_emotion: np.ndarray
    history_strategy: np.ndarray
    audio: torch.Tensor | None
    video: torch.Tensor | None
    labels: tuple[int, int, int]
    n_history_turns: int
    state: np.ndarray


@dataclass
class FeatureSet:
    """Examples plus the text-embedding table they index (row -1 = absent; the table's last row is zeros)."""

    examples: list[Example]
    table: torch.Tensor

    def __len__(self) -> int:
        return len(self.examples)

    def modalities_present(self) -> set[str]:
        """Modalities present in at least one example."""
        found = set()
        for example in self.examples:
            found.update(name for name, on in _presence(example).items() if on)
        return found


@dataclass
class Batch:
    """Padded tensors of a list of examples."""

    text: torch.Tensor
    text_present: torch.Tensor
    description: torch.Tensor
    description_present: torch.Tensor
    audio: torch.Tensor | None
    audio_lengths: torch.Tensor | None
    audio_present: torch.Tensor
    video: torch.Tensor | None
    video_present: torch.Tensor
    history_text: torch.Tensor
    history_speaker: torch.Tensor
    history_emotion: torch.Tensor
    history_strategy: torch.Tensor
    history_present: torch.Tensor
    state: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]


def _presence(example: Example) -> dict[str, bool]:
    return {
        "text": example.text_row >= 0,
        "description": example.description_row >= 0,
        "audio": example.audio is not None,
        "video": example.video is not None,
        "history": example.n_history_turns > 0,
    }


class Featurizer:
    """Turns items into a :class:`FeatureSet` with the configured text cache and media encoders.

    Only ``modalities`` (default: the config's) are read; the others are left absent.
    """

    def __init__(
        self,
        config: PredictorConfig,
        text_cache: TextEmbeddingCache,
        audio_encoder: nn.Module | None,
        video_encoder: nn.Module | None,
        modalities: Sequence[str] | None = None,
    ) -> None:
        self.config = config
        self.text_cache = text_cache
        self.audio_encoder = audio_encoder
        self.video_encoder = video_encoder
        self.modalities = list(config.modalities if modalities is None else modalities)

    def build(self, items: Sequence[tuple[Dialogue, int]], *, progress: bool = False, description: str = "features") -> FeatureSet:
        texts: dict[str, int] = {}

        def row(text: str | None) -> int:
            return -1 if text is None else texts.setdefault(text, len(texts))

        with threadpool_limits(limits=1):  # tiny BLAS calls per clip: threads only spin on a shared CPU
            examples = [
                self._example(dialogue, index, row) for dialogue, index in tqdm(items, desc=description, disable=not progress, leave=False)
            ]
        table = self.text_cache.embed(list(texts), show_progress=progress)
        table = np.concatenate([table, np.zeros((1, table.shape[1] if table.size else self.text_cache.dim), np.float32)])
        return FeatureSet(examples, torch.from_numpy(table))

    def _example(self, dialogue: Dialogue, index: int, row) -> Example:
        modalities = self.modalities
        history, client, target = dialogue.context_at(index)
        where = {"record": f"{dialogue.id} turn {index}"}
        history = history[-self.config.max_history_turns :] if "history" in modalities else ()
        slots = self.config.max_history_turns
        rows = np.full(slots, -1, np.int64)
        speaker = np.zeros(slots, np.int64)
        emotion = np.full(slots, len(EMOTIONS), np.int64)
        strategy = np.full(slots, len(STRATEGIES), np.int64)
        for slot, turn in zip(range(slots - len(history), slots), history):
            rows[slot] = row(turn.text)
            speaker[slot] = _SPEAKER_IDS[turn.speaker]
            if turn.emotion is not None:
                emotion[slot] = label_index(turn.emotion, EMOTIONS, field="emotion", **where)
            if turn.strategy is not None:
                strategy[slot] = label_index(turn.strategy, STRATEGIES, field="strategy", **where)
        labels = (
            label_index(client.emotion if client else None, EMOTIONS, field="client emotion", **where),
            label_index(target.emotion, EMOTIONS, field="therapist emotion", **where),
            label_index(target.strategy, STRATEGIES, field="strategy", **where),
        )
        return Example(
            dialogue_id=dialogue.id,
            turn_index=index,
            text_row=row(client.text) if client is not None and "text" in modalities else -1,
            description_row=row(client.video_description or None) if client is not None and "description" in modalities else -1,
            history_rows=rows,
            history_speaker=speaker,
            history_emotion=emotion,
            history_strategy=strategy,
            audio=self._audio(client, where) if client is not None and "audio" in modalities else None,
            video=self._video(client, where) if client is not None and "video" in modalities else None,
            labels=labels,
            n_history_turns=len(history),
            state=np.concatenate(
                [
                    history_state(history, self.config.history_labels)
                    if "history" in modalities
                    else np.zeros(HISTORY_STATE_DIM, np.float32),
                    client_state(client) if "text" in modalities else np.zeros(CLIENT_STATE_DIM, np.float32),
                ]
            ),
        )

    def _audio(self, turn: Turn, where: dict) -> torch.Tensor | None:
        waves, rate = [], None
        for media in turn.media:
            if media.waveform is not None:
                wave, wave_rate = media.waveform, media.sample_rate
            elif media.audio_path is not None:
                wave, wave_rate = _read(read_audio, media.audio_path, "audio", where)
            else:
                continue
            if wave_rate is None or (rate is not None and wave_rate != rate):
                raise DataError(f"the turn's audio segments need one known sample rate, got {rate} and {wave_rate}", field="audio", **where)
            waves.append(wave)
            rate = wave_rate
        return self.audio_encoder.featurize(np.concatenate(waves), rate) if waves else None

    def _video(self, turn: Turn, where: dict) -> torch.Tensor | None:
        clips = []
        for media in turn.media:
            if media.frames is not None:
                clips.append(media.frames)
            elif media.video_path is not None:
                clips.append(_read(read_video, media.video_path, "video", where)[0])
        if not clips:
            return None
        if len({clip.shape[1:] for clip in clips}) > 1:
            raise DataError(
                f"the turn's video segments differ in frame size: {[clip.shape[1:3] for clip in clips]}", field="video", **where
            )
        return self.video_encoder.featurize(np.concatenate(clips))


def _read(reader, path, field: str, where: dict):
    try:
        return reader(path, field=field)
    except DataError as err:
        raise DataError(
            f"{err.reason} (client turn's {field}; drop '{field}' from modalities to train without it)", path=err.path, field=field, **where
        ) from err


def _pad(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([t.shape[0] for t in tensors])
    out = torch.zeros((len(tensors), int(lengths.max()), *tensors[0].shape[1:]), dtype=tensors[0].dtype)
    for i, t in enumerate(tensors):
        out[i, : t.shape[0]] = t
    return out, lengths


def collate(examples: Sequence[Example], table: torch.Tensor) -> Batch:
    """Pad a list of examples into a :class:`Batch`; absent media become zeros with ``present`` False."""
    pad_row = table.shape[0] - 1

    def gather(rows: list[int]) -> torch.Tensor:
        return table[torch.tensor([r if r >= 0 else pad_row for r in rows])]

    audio = audio_lengths = video = None
    audio_present = torch.tensor([e.audio is not None for e in examples])
    video_present = torch.tensor([e.video is not None for e in examples])
    if audio_present.any():
        reference = next(e.audio for e in examples if e.audio is not None)
        audio, audio_lengths = _pad([e.audio if e.audio is not None else torch.zeros_like(reference[:1]) for e in examples])
    if video_present.any():
        reference = next(e.video for e in examples if e.video is not None)
        video = torch.stack([e.video if e.video is not None else torch.zeros_like(reference) for e in examples])
    history_rows = torch.from_numpy(np.stack([e.history_rows for e in examples]))
    history_present = history_rows >= 0
    return Batch(
        text=gather([e.text_row for e in examples]),
        text_present=torch.tensor([e.text_row >= 0 for e in examples]),
        description=gather([e.description_row for e in examples]),
        description_present=torch.tensor([e.description_row >= 0 for e in examples]),
        audio=audio,
        audio_lengths=audio_lengths,
        audio_present=audio_present,
        video=video,
        video_present=video_present,
        history_text=table[torch.where(history_present, history_rows, pad_row)],
        history_speaker=torch.from_numpy(np.stack([e.history_speaker for e in examples])),
        history_emotion=torch.from_numpy(np.stack([e.history_emotion for e in examples])),
        history_strategy=torch.from_numpy(np.stack([e.history_strategy for e in examples])),
        history_present=history_present,
        state=torch.from_numpy(np.stack([e.state for e in examples])),
        labels=torch.tensor([e.labels for e in examples]),
    )
