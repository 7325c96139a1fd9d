"""mmrl.data.synth: structure, determinism, and emotion carried by audio and video but not by text."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from mmrl.data.media import read_audio, read_video
from mmrl.data.synth import FPS, IMAGE_SIZE, SAMPLE_RATE, generate, load_synth
from mmrl.errors import DataError
from mmrl.labels import EMOTIONS, STRATEGIES


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """One 40-dialogue corpus, generated once for the whole session."""
    return generate(tmp_path_factory.mktemp("synth"), n_dialogues=40, seed=0)


@pytest.fixture(scope="session")
def corpus(synth_dir):
    return load_synth(synth_dir, check_media=True)


def _pitch(x: np.ndarray, sr: int) -> np.ndarray:
    """Per-frame f0 (Hz) of the louder 40 ms frames, from the autocorrelation peak in 70-400 Hz."""
    n, hop = 640, 320
    frames = x[np.arange(0, len(x) - n, hop)[:, None] + np.arange(n)]
    frames = frames[np.sqrt((frames**2).mean(1)) > 0.3 * np.sqrt((x**2).mean())]
    frames = (frames - frames.mean(1, keepdims=True)) * np.hanning(n)
    ac = np.fft.irfft(np.abs(np.fft.rfft(frames, 2 * n)) ** 2)[:, :n]
    lo, hi = sr // 400, sr // 70
    return sr / (lo + np.argmax(ac[:, lo:hi], axis=1))


def _audio_features(x: np.ndarray, sr: int) -> list[float]:
    """log RMS, log median f0, f0 variability, syllable rate (Hz), log spectral centroid."""
    f0 = _pitch(x, sr)
    hop = sr // 100
    envelope = np.sqrt(np.convolve(x**2, np.ones(hop) / hop, "same")[::hop])
    spectrum = np.abs(np.fft.rfft(envelope - envelope.mean(), n=1024))
    freqs = np.fft.rfftfreq(1024, 1 / 100)
    band = (freqs > 1) & (freqs < 10)
    power = np.abs(np.fft.rfft(x))
    centroid = (power * np.fft.rfftfreq(len(x), 1 / sr)).sum() / power.sum()
    return [
        float(np.log(np.sqrt((x**2).mean()))),
        float(np.log(np.median(f0))),
        float(np.std(np.log(f0))),
        float(freqs[band][np.argmax(spectrum[band])]),
        float(np.log(centroid)),
    ]


@pytest.fixture(scope="session")
def client_turns(corpus) -> dict:
    """Decoded features of every client turn: audio features, downsampled video, text, label, dialogue."""
    audio, video, text, labels, groups = [], [], [], [], []
    for dialogue in corpus.dialogues:
        for turn in dialogue.turns:
            if turn.speaker != "client":
                continue
            (media,) = turn.media
            waveform, sr = read_audio(media.audio_path)
            frames, _ = read_video(media.video_path)
            audio.append(_audio_features(waveform, sr))
            small = frames.astype(np.float32).reshape(len(frames), 16, 4, 16, 4, 3).mean(axis=(2, 4))
            video.append(small.mean(axis=0).ravel())
            text.append(turn.text)
            labels.append(turn.emotion)
            groups.append(dialogue.id)
    return {
        "audio": np.array(audio),
        "video": np.array(video),
        "text": np.array(text),
        "labels": np.array(labels),
        "groups": np.array(groups),
    }


def _sha_tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_structure(corpus, synth_dir):
    assert corpus.format == "synth" and len(corpus) == 40
    assert corpus.report.skipped == []
    assert [d.id for d in corpus.dialogues] == [f"synth-{i:04d}" for i in range(40)]
    for d in corpus.dialogues:
        assert d.source == "synth" and d.problem_type and d.situation
        assert 6 <= len(d.turns) <= 12
        assert [t.speaker for t in d.turns] == ["client", "therapist"] * (len(d.turns) // 2) + ["client"] * (len(d.turns) % 2)
        for i, turn in enumerate(d.turns):
            assert len(turn.segments) == 1 and turn.text
            if turn.speaker == "client":
                assert turn.emotion in EMOTIONS and turn.strategy is None
                (media,) = turn.media
                stem = synth_dir / "media" / f"{d.id}_{i:02d}"
                assert media.audio_path == stem.with_suffix(".wav") and media.video_path == stem.with_suffix(".mp4")
            else:
                assert turn.strategy in STRATEGIES and turn.media == ()
    assert len({d.problem_type for d in corpus.dialogues}) >= 5


def test_label_distributions(corpus):
    turns = [t for d in corpus.dialogues for t in d.turns]
    client = Counter(t.emotion for t in turns if t.speaker == "client")
    assert set(client) == set(EMOTIONS) and min(client.values()) >= 8, client
    therapist = Counter(t.emotion for t in turns if t.speaker == "therapist")
    assert 0.7 <= therapist["neutral"] / sum(therapist.values()) <= 0.95
    assert len({t.strategy for t in turns if t.strategy}) >= 8


def test_strategy_follows_client_emotion(corpus):
    """Knowing the preceding client emotion predicts the strategy better than the overall majority."""
    pairs = [(d.turns[i - 1].emotion, d.turns[i].strategy) for d in corpus.dialogues for i in d.target_indices()]
    by_emotion: dict[str, Counter] = {}
    for emotion, strategy in pairs:
        by_emotion.setdefault(emotion, Counter())[strategy] += 1
    conditional = sum(c.most_common(1)[0][1] for c in by_emotion.values()) / len(pairs)
    majority = Counter(s for _, s in pairs).most_common(1)[0][1] / len(pairs)
    assert conditional > majority + 0.1


def test_splits(corpus):
    counts = Counter(d.split for d in corpus.dialogues)
    assert counts == {"train": 32, "val": 4, "test": 4}


def test_manifest_lists_every_file_with_its_hash(synth_dir, corpus):
    manifest = json.loads((synth_dir / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["version"]
    files = {k: v for k, v in _sha_tree(synth_dir).items() if k != "manifest.json"}
    assert manifest["files"] == files
    n_client = sum(t.speaker == "client" for d in corpus.dialogues for t in d.turns)
    assert len(files) == 1 + 2 * n_client
    assert manifest["counts"]["dialogues"] == 40 and manifest["counts"]["client_turns"] == n_client


def test_same_seed_same_bytes_other_seed_other_corpus(tmp_path):
    first = _sha_tree(generate(tmp_path / "a", n_dialogues=3, seed=7))
    second = _sha_tree(generate(tmp_path / "b", n_dialogues=3, seed=7))
    other = _sha_tree(generate(tmp_path / "c", n_dialogues=3, seed=8))
    assert first == second
    assert first["corpus.jsonl"] != other["corpus.jsonl"]
    assert Counter(d.split for d in load_synth(tmp_path / "a").dialogues) == {"train": 1, "val": 1, "test": 1}


def test_media_format(corpus):
    media = corpus.dialogues[0].turns[0].media[0]
    waveform, sr = read_audio(media.audio_path)
    frames, fps = read_video(media.video_path)
    assert sr == SAMPLE_RATE and 1.0 <= len(waveform) / sr <= 2.0
    assert fps == pytest.approx(FPS) and frames.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE, 3)
    assert len(frames) == pytest.approx(len(waveform) / sr * FPS)


def test_prosody_moves_in_the_intended_direction(client_turns):
    feats, labels = client_turns["audio"], client_turns["labels"]
    mean = {e: feats[labels == e].mean(axis=0) for e in EMOTIONS}
    loudness, pitch, variability, rate = (lambda e, k=k: mean[e][k] for k in range(4))
    assert loudness("anger") > loudness("neutral") > loudness("sadness") > loudness("depression")
    assert pitch("fear") > pitch("neutral") > pitch("depression")
    assert pitch("joy") > pitch("neutral")
    assert variability("joy") > variability("neutral") > variability("depression")
    assert rate("fear") > rate("neutral") > rate("depression")
    assert rate("anger") > rate("sadness")


def _accuracy(model, x, client_turns) -> float:
    cv = GroupKFold(n_splits=5)  # folds hold out whole dialogues
    with threadpool_limits(1):  # BLAS threads oversubscribe the small shared CPU and run 30x slower
        scores = cross_val_score(model, x, client_turns["labels"], groups=client_turns["groups"], cv=cv)
    return float(scores.mean())


def test_emotion_is_learnable_from_audio_and_video_but_not_text(client_turns):
    chance = max(Counter(client_turns["labels"]).values()) / len(client_turns["labels"])
    audio = _accuracy(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)), client_turns["audio"], client_turns)
    video = _accuracy(make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)), client_turns["video"], client_turns)
    text = _accuracy(make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=2000)), client_turns["text"], client_turns)
    assert audio > max(0.6, chance + 0.35), (audio, chance)
    assert video > max(0.6, chance + 0.35), (video, chance)
    assert text < chance + 0.1, (text, chance)


@pytest.mark.parametrize(("kwargs", "field"), [({"n_dialogues": 0}, "n_dialogues"), ({"seed": -1}, "seed")])
def test_generate_rejects_bad_arguments(tmp_path, kwargs, field):
    with pytest.raises(DataError, match=field):
        generate(tmp_path, **kwargs)


def test_load_synth_without_corpus(tmp_path):
    with pytest.raises(DataError, match="generate"):
        load_synth(tmp_path)
