"""Decode and encode segment media with soundfile (wav) and PyAV (mp4); every failure is a DataError.

Video is written as MPEG-4 Part 2 (FFmpeg's built-in ``mpeg4`` encoder) in an mp4 container with
one encoder thread and FFmpeg's ``bitexact`` flags, so the same frames always give the same bytes.
"""

from __future__ import annotations

import dataclasses
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from mmrl.data.schema import Media
from mmrl.errors import DataError

__all__ = ["VIDEO_CODEC", "load_media", "probe", "read_audio", "read_video", "write_audio", "write_video"]

#: The encoder :func:`write_video` uses (always present in PyAV's wheel; no version string in the output).
VIDEO_CODEC = "mpeg4"
_VIDEO_QUANTISER = 2  # fixed (qmin = qmax), 2 (best) .. 31: near-lossless on small drawn frames
_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")
#: libsndfile's note on a data chunk shorter than its header says, e.g. "data : 32000 (should be 15978)".
_SHORT_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _existing(path: str | Path, field: str | None) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError("media file not found; check the path or regenerate the media", path=path, field=field)
    if path.stat().st_size == 0:
        raise DataError("media file is empty (0 bytes); re-export or remove it", path=path, field=field)
    return path


def _check_wav_length(extra_info: str, path: Path, field: str | None) -> None:
    match = _SHORT_DATA.search(extra_info)
    if match is None:
        return
    declared, actual = int(match.group(1)), int(match.group(2))
    if declared > actual and declared not in (0, 0xFFFFFFFF):
        raise DataError(
            f"audio file is truncated: header declares {declared} data bytes but only {actual} are present; re-export the file",
            path=path,
            field=field,
        )


def read_audio(path: str | Path, *, field: str | None = None) -> tuple[np.ndarray, int]:
    """Return ``(waveform, sample_rate)``: mono float32 in [-1, 1] (channels averaged)."""
    path = _existing(path, field)
    try:
        _check_wav_length(sf.info(str(path)).extra_info, path, field)
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except sf.SoundFileError as exc:
        raise DataError(f"cannot decode audio (expected wav/flac/ogg readable by libsndfile): {exc}", path=path, field=field) from exc
    if data.shape[0] == 0:
        raise DataError("audio file holds no samples; re-export it", path=path, field=field)
    return np.clip(data.mean(axis=1), -1.0, 1.0).astype(np.float32), int(sample_rate)


def write_audio(path: str | Path, waveform: np.ndarray, sample_rate: int) -> Path:
    """Write a mono waveform in [-1, 1] as a 16-bit PCM wav and return its path."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1 or waveform.size == 0:
        raise DataError(f"expected a non-empty 1-D waveform, got shape {waveform.shape}", path=path, field="waveform")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(waveform, -1.0, 1.0), int(sample_rate), subtype="PCM_16", format="WAV")
    return path


def _video_error(exc: Exception, path: Path, field: str | None) -> DataError:
    return DataError(f"cannot decode video (expected a readable mp4/avi/webm): {exc}", path=path, field=field)


def read_video(path: str | Path, max_frames: int | None = None, *, field: str | None = None) -> tuple[np.ndarray, float]:
    """Return ``(frames, fps)``: frames ``(T, H, W, 3)`` uint8 RGB, at most ``max_frames`` of them.

    A file that decodes to fewer frames than its header declares is reported as truncated.
    """
    if max_frames is not None and max_frames < 1:
        raise DataError(f"max_frames must be >= 1 or None, got {max_frames}", path=path, field="max_frames")
    path = _existing(path, field)
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError("file has no video stream; expected a video file", path=path, field=field)
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            declared = stream.frames
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except (av.FFmpegError, OSError) as exc:
        raise _video_error(exc, path, field) from exc
    if not frames:
        raise DataError("video holds no decodable frames; re-export it", path=path, field=field)
    wanted = declared if max_frames is None else min(declared, max_frames)
    if declared and len(frames) < wanted:
        raise DataError(
            f"video is truncated: header declares {declared} frames but only {len(frames)} decode; re-export it",
            path=path,
            field=field,
        )
    return np.stack(frames), float(rate) if rate else 0.0


def write_video(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """Write ``(T, H, W, 3)`` uint8 RGB frames (H and W even) to an mp4, byte-identically for equal input."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise DataError(
            f"expected non-empty uint8 frames of shape (T, H, W, 3), got {frames.dtype} {frames.shape}",
            path=path,
            field="frames",
        )
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise DataError(f"frame height and width must be even for yuv420p, got {height}x{width}", path=path, field="frames")
    if not fps > 0:
        raise DataError(f"fps must be positive, got {fps!r}", path=path, field="fps")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(VIDEO_CODEC, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        codec = stream.codec_context
        codec.thread_count, codec.gop_size, codec.max_b_frames = 1, 12, 0
        codec.qmin = codec.qmax = _VIDEO_QUANTISER
        codec.flags |= av.codec.context.Flags.bitexact
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    return path


def probe(path: str | Path, *, field: str | None = None) -> None:
    """Check cheaply that ``path`` exists and decodes: the header and the first frame or samples."""
    path = Path(path)
    if path.suffix.lower() in _AUDIO_SUFFIXES:
        path = _existing(path, field)
        try:
            _check_wav_length(sf.info(str(path)).extra_info, path, field)
            with sf.SoundFile(str(path)) as audio:
                first = audio.read(1024, dtype="float32")
        except sf.SoundFileError as exc:
            raise DataError(f"cannot decode audio: {exc}", path=path, field=field) from exc
        if len(first) == 0:
            raise DataError("audio file holds no samples; re-export it", path=path, field=field)
    else:
        read_video(path, max_frames=1, field=field)


def load_media(media: Media) -> Media:
    """Return ``media`` with ``frames``/``waveform`` decoded from its paths; arrays already present are kept."""
    updates: dict = {}
    if media.frames is None and media.video_path is not None:
        updates["frames"], updates["fps"] = read_video(media.video_path, field="video")
    if media.waveform is None and media.audio_path is not None:
        updates["waveform"], updates["sample_rate"] = read_audio(media.audio_path, field="audio")
    return dataclasses.replace(media, **updates) if updates else media
