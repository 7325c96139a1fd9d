"""mmrl.data.media: wav/mp4 round trips, byte-deterministic video, and DataErrors for bad files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmrl.data.media import load_media, probe, read_audio, read_video, write_audio, write_video
from mmrl.data.schema import Media
from mmrl.errors import DataError


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tone(n: int = 16000, sr: int = 16000) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * 220 * np.arange(n) / sr)).astype(np.float32)


def _frames(n: int = 10, offset: int = 0) -> np.ndarray:
    """Smooth frames: a gradient background and a bright square moving right."""
    yy, xx = np.mgrid[0:64, 0:64]
    frames = np.zeros((n, 64, 64, 3), dtype=np.uint8)
    for i in range(n):
        frames[i, ..., 0] = 4 * xx
        frames[i, ..., 1] = 4 * yy
        frames[i, ..., 2] = 90
        x0 = 8 + 3 * i + offset
        frames[i, 20:36, x0 : x0 + 16] = (230, 230, 40)
    return frames


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    return {
        "wav": write_audio(root / "tone.wav", _tone(), 16000),
        "mp4": write_video(root / "clip.mp4", _frames(), 8.0),
        "root": root,
    }


def test_audio_round_trip(files):
    waveform, sr = read_audio(files["wav"])
    assert sr == 16000
    assert waveform.dtype == np.float32 and waveform.shape == (16000,)
    np.testing.assert_allclose(waveform, _tone(), atol=1e-4)  # 16-bit quantisation


def test_write_audio_is_16_bit_pcm_and_deterministic(files, tmp_path):
    assert sf.info(str(files["wav"])).subtype == "PCM_16"
    again = write_audio(tmp_path / "again.wav", _tone(), 16000)
    assert _sha(again) == _sha(files["wav"])


def test_read_audio_mixes_stereo_down(tmp_path):
    left, right = _tone(), np.zeros(16000, dtype=np.float32)
    sf.write(str(tmp_path / "stereo.wav"), np.stack([left, right], axis=1), 16000, subtype="PCM_16")
    waveform, _ = read_audio(tmp_path / "stereo.wav")
    assert waveform.ndim == 1
    np.testing.assert_allclose(waveform, left / 2, atol=1e-4)


def test_video_round_trip(files):
    frames, fps = read_video(files["mp4"])
    assert frames.shape == (10, 64, 64, 3) and frames.dtype == np.uint8
    assert fps == pytest.approx(8.0)
    error = float(np.abs(frames.astype(int) - _frames()).mean())
    assert error < 4, f"mean abs error {error:.1f} (lossy yuv420p, but close on smooth content)"
    assert read_video(files["mp4"], max_frames=3)[0].shape == (3, 64, 64, 3)


def test_write_video_is_byte_deterministic(files, tmp_path):
    first = write_video(tmp_path / "a.mp4", _frames(), 8.0)
    second = write_video(tmp_path / "b.mp4", _frames(), 8.0)
    assert _sha(first) == _sha(second) == _sha(files["mp4"])
    other = write_video(tmp_path / "c.mp4", _frames(offset=5), 8.0)
    assert _sha(other) != _sha(first)


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        (np.zeros((2, 64, 64, 3), dtype=np.float32), "uint8"),
        (np.zeros((0, 64, 64, 3), dtype=np.uint8), "non-empty"),
        (np.zeros((2, 63, 64, 3), dtype=np.uint8), "even"),
    ],
)
def test_write_video_rejects_bad_frames(tmp_path, frames, expected):
    with pytest.raises(DataError, match=expected):
        write_video(tmp_path / "bad.mp4", frames, 8.0)
    with pytest.raises(DataError, match="fps must be positive"):
        write_video(tmp_path / "bad.mp4", np.zeros((2, 64, 64, 3), dtype=np.uint8), 0)


def test_probe_accepts_good_files(files):
    probe(files["wav"])
    probe(files["mp4"])


def _bad_file(root: Path, kind: str, files: dict[str, Path]) -> tuple[Path, str]:
    """Write a broken file of ``kind``; return its path and a phrase the error must contain."""
    wav, mp4 = files["wav"].read_bytes(), files["mp4"].read_bytes()
    cases = {
        "missing.wav": (None, "not found"),
        "missing.mp4": (None, "not found"),
        "empty.wav": (b"", "empty"),
        "empty.mp4": (b"", "empty"),
        "truncated.wav": (wav[: len(wav) // 2], "truncated"),
        "truncated.mp4": (mp4[: len(mp4) - 300], "cannot decode video"),
        "garbage.wav": (b"not audio at all" * 50, "cannot decode audio"),
        "garbage.mp4": (b"not video at all" * 50, "cannot decode video"),
        "audio_as.mp4": (wav, "no video stream"),
        "video_as.wav": (mp4, "cannot decode audio"),
    }
    content, phrase = cases[kind]
    path = root / kind
    if content is not None:
        path.write_bytes(content)
    return path, phrase


BAD = ["missing.wav", "missing.mp4", "empty.wav", "empty.mp4", "truncated.wav", "truncated.mp4",
       "garbage.wav", "garbage.mp4", "audio_as.mp4", "video_as.wav"]  # fmt: skip


@pytest.mark.parametrize("kind", BAD)
def test_bad_files_raise_data_error_naming_file_and_field(files, tmp_path, kind):
    path, phrase = _bad_file(tmp_path, kind, files)
    reader = read_audio if path.suffix == ".wav" else read_video
    for call in (lambda: reader(path, field="turns[0].audio"), lambda: probe(path, field="turns[0].audio")):
        with pytest.raises(DataError) as info:
            call()
        message = str(info.value)
        assert str(path) in message and phrase in message
        assert "field 'turns[0].audio'" in message
        assert info.value.path == str(path)


def test_library_exceptions_are_chained(files, tmp_path):
    path, _ = _bad_file(tmp_path, "garbage.mp4", files)
    with pytest.raises(DataError) as info:
        read_video(path)
    assert info.value.__cause__ is not None  # the av error is kept as the cause, not shown as the error


def test_read_video_rejects_non_positive_max_frames(files):
    with pytest.raises(DataError, match="max_frames"):
        read_video(files["mp4"], max_frames=0)


def test_load_media_decodes_paths_and_keeps_arrays(files):
    loaded = load_media(Media(video_path=files["mp4"], audio_path=files["wav"]))
    assert loaded.frames.shape == (10, 64, 64, 3) and loaded.fps == pytest.approx(8.0)
    assert loaded.waveform.shape == (16000,) and loaded.sample_rate == 16000

    own = np.zeros((1, 64, 64, 3), dtype=np.uint8)
    kept = load_media(Media(video_path=files["mp4"], frames=own, fps=8.0))
    assert kept.frames is own
    assert load_media(Media()) == Media()


def test_load_media_names_the_field(tmp_path):
    with pytest.raises(DataError, match="field 'audio'"):
        load_media(Media(audio_path=tmp_path / "gone.wav"))
