from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mmrl.data import Dialogue, Segment, Turn
from mmrl.errors import DataError
from mmrl.labels import EMOTIONS, STRATEGIES
from mmrl.predictor.encoders import TextEmbeddingCache, log_mel, sample_frames
from mmrl.predictor.features import (
    HISTORY_STATE_DIM,
    IGNORE,
    client_state,
    collate,
    history_state,
)
from mmrl.predictor.model import MultimodalPredictor


def _dialogue(*turns: tuple[str, str, str | None, str | None]) -> Dialogue:
    return Dialogue("d0", "train", tuple(Turn.from_segments(s, [Segment(text, emotion, strategy)]) for s, text, emotion, strategy in turns))


def _client_turn_with(dialogue: Dialogue, index: int, **media_changes) -> Dialogue:
    turns = list(dialogue.turns)
    segment = turns[index].segments[0]
    turns[index] = replace(turns[index], segments=(replace(segment, media=replace(segment.media, **media_changes)),))
    return replace(dialogue, turns=tuple(turns))


def test_history_holds_only_earlier_turns_and_their_labels(tiny_config):
    dialogue = _dialogue(
        ("client", "I lost my job.", "sadness", None),
        ("therapist", "I'm sorry.", "neutral", "Restatement"),
        ("client", "I'm furious.", "anger", None),
        ("therapist", "What happened?", "joy", "Open question"),
    )
    featurizer = MultimodalPredictor.build(tiny_config(modalities=["text", "history"])).featurizer
    example = featurizer.build([(dialogue, 3)]).examples[0]
    assert example.labels == (EMOTIONS.index("anger"), EMOTIONS.index("joy"), STRATEGIES.index("Open question"))
    assert example.n_history_turns == 2  # the client turn being labelled and the target are not history
    assert list(example.history_emotion[-2:]) == [EMOTIONS.index("sadness"), EMOTIONS.index("neutral")]
    assert list(example.history_strategy[-2:]) == [len(STRATEGIES), STRATEGIES.index("Restatement")]
    assert set(example.history_emotion[:-2]) == {len(EMOTIONS)} and set(example.history_rows[:-2]) == {-1}
    batch = collate([example], featurizer.build([(dialogue, 3)]).table)
    assert batch.history_present.sum() == 2 and batch.text_present.all() and not batch.description_present.any()


def test_a_label_outside_the_label_set_is_a_clear_error(tiny_config):
    dialogue = _dialogue(("client", "Hi.", "happy", None), ("therapist", "Hello.", "neutral", "Open question"))
    featurizer = MultimodalPredictor.build(tiny_config(modalities=["text"])).featurizer
    with pytest.raises(DataError, match=r"record d0 turn 1.*'happy' is not in the predictor's label set \['neutral'"):
        featurizer.build([(dialogue, 1)])


def test_first_turn_without_client_has_unknown_client_emotion(tiny_config):
    dialogue = _dialogue(("therapist", "Welcome.", "neutral", "Structuring the therapy"), ("therapist", "Sit down.", "neutral", "Others"))
    example = MultimodalPredictor.build(tiny_config(modalities=["text", "history"])).featurizer.build([(dialogue, 1)]).examples[0]
    assert example.labels[0] == IGNORE and example.text_row == -1


@pytest.mark.parametrize(("modality", "field"), [("audio", "audio_path"), ("video", "video_path")])
def test_missing_media_file_names_the_file_and_the_turn(tiny_config, synth, tmp_path, modality, field):
    dialogue = _client_turn_with(synth[0], 0, **{field: tmp_path / f"gone.{'wav' if modality == 'audio' else 'mp4'}"})
    featurizer = MultimodalPredictor.build(tiny_config(modalities=["text", modality])).featurizer
    with pytest.raises(DataError, match=rf"gone\..*record {dialogue.id} turn 1.*'{modality}'.*not found.*drop '{modality}'"):
        featurizer.build([(dialogue, 1)])


def test_corrupt_media_file_is_a_data_error(tiny_config, synth, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEfmt nonsense")
    dialogue = _client_turn_with(synth[0], 0, audio_path=broken)
    with pytest.raises(DataError, match="broken.wav"):
        MultimodalPredictor.build(tiny_config(modalities=["audio"])).featurizer.build([(dialogue, 1)])


def test_text_cache_is_keyed_by_model_and_text(text_cache_dir, tmp_path):
    cache = TextEmbeddingCache("all-MiniLM-L6-v2", tmp_path)
    first = cache.embed(["How are you?", "Fine."])
    assert first.shape == (2, 384) and cache.path.is_file()
    reloaded = TextEmbeddingCache("all-MiniLM-L6-v2", tmp_path)
    np.testing.assert_array_equal(reloaded.embed(["Fine.", "How are you?"]), first[::-1])
    assert reloaded._model is None  # served from disk, the model never loaded
    assert TextEmbeddingCache("some/other-model", tmp_path).path != cache.path
    cache.path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="cache is corrupted.*delete the file"):
        TextEmbeddingCache("all-MiniLM-L6-v2", tmp_path)


def test_log_mel_and_frame_sampling_shapes():
    rate = 8000
    wave = np.sin(2 * np.pi * 220 * np.arange(rate) / rate).astype(np.float32)  # 1 s at 8 kHz, resampled to 16 kHz
    mel = log_mel(wave, rate, n_mels=40)
    assert mel.shape[1] == 40 and 95 <= mel.shape[0] <= 105 and np.isfinite(mel).all()
    loud, quiet = log_mel(wave, rate).mean(), log_mel(0.1 * wave, rate).mean()
    assert loud > quiet  # loudness is kept (no per-utterance normalisation)
    frames = np.arange(5)[:, None, None, None] * np.ones((5, 4, 4, 3), np.uint8)
    assert [int(f[0, 0, 0]) for f in sample_frames(frames, 3)] == [0, 2, 4]
    assert len(sample_frames(frames, 8)) == 8
    with pytest.raises(DataError, match=r"\(T, H, W, 3\)"):
        sample_frames(np.zeros((3, 4, 4)), 2)


def test_dialogue_state_reads_earlier_strategies_and_client_cues():
    therapist = Turn.from_segments("therapist", [Segment("Why?", "neutral", "Open question"), Segment("I see.", "neutral", "Restatement")])
    history = (
        Turn.from_segments("client", [Segment("Hello.", "neutral")]),
        Turn.from_segments("therapist", [Segment("Hi.", "neutral", "Approval")]),
        Turn.from_segments("client", [Segment("Bad week.", "sadness")]),
        therapist,
    )
    state = history_state(history, labels=True)
    assert state.shape == (HISTORY_STATE_DIM,)
    n_slots = len(STRATEGIES) + 1
    one_hots = state[: 4 * n_slots].reshape(4, n_slots)
    # the latest segment's strategy, then the turn strategies newest first (a turn takes its first segment's label on a tie)
    assert one_hots.argmax(1).tolist() == [
        STRATEGIES.index("Restatement"),
        STRATEGIES.index(therapist.strategy),
        STRATEGIES.index("Approval"),
        len(STRATEGIES),
    ]
    assert one_hots.sum() == 4
    histogram = state[4 * n_slots : -3]
    assert histogram[STRATEGIES.index("Approval")] == pytest.approx(0.5) and histogram.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(state[-3:], np.log1p([4, 2, 1]))
    unlabelled = history_state(history, labels=False)
    assert not unlabelled[:-3].any() and unlabelled[-1] == 0 and unlabelled[-3] == pytest.approx(np.log1p(4))

    client = Turn.from_segments("client", [Segment("Why me", "anger", start=1.0, end=2.0), Segment("again?", "anger", start=2.5, end=4.0)])
    np.testing.assert_allclose(client_state(client), [np.log1p(3), 1.0, 1.0, np.log1p(2), np.log1p(3.0)])
    assert not client_state(None).any()
