"""The multimodal predictor: encoders + ConvCompressor + fusion + three heads (+ the DialogueGRU), and its checkpoints.

A checkpoint is a directory with ``model.safetensors`` (the trainable weights; frozen Hugging Face
backbones are reloaded from their id) and ``config.json`` (the :class:`PredictorConfig`, the label
sets, the text dimension and the modalities seen in training). No pickle anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from mmrl.data.media import read_video
from mmrl.data.schema import DfewClip, Dialogue
from mmrl.errors import ConfigError, DataError
from mmrl.labels import DFEW_CLASSES
from mmrl.predictor import TASK_LABELS, TASKS, Components
from mmrl.predictor.compressor import ConvCompressor
from mmrl.predictor.config import PredictorConfig
from mmrl.predictor.encoders import (
    TextEmbeddingCache,
    build_audio_encoder,
    build_video_encoder,
)
from mmrl.predictor.features import (
    HISTORY_STATE_DIM,
    STATE_DIM,
    Batch,
    FeatureSet,
    Featurizer,
    collate,
)
from mmrl.predictor.fusion import ModalityFusion
from mmrl.predictor.sequence import DialogueGRU

__all__ = [
    "CHECKPOINT_FORMAT",
    "ClipClassifier",
    "MultimodalPredictor",
    "PredictorNetwork",
    "read_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "mmrl-predictor/1"
_WEIGHTS, _CONFIG = "model.safetensors", "config.json"


class PredictorNetwork(nn.Module):
    """Tokens per modality -> :class:`ModalityFusion` -> fused embedding -> three task heads.

    With ``strategy_model: gru`` a :class:`DialogueGRU` (trained after the fusion) gives the strategy;
    the fusion's strategy head then only shapes the fused embedding (an auxiliary task).
    """

    def __init__(self, config: PredictorConfig, text_dim: int) -> None:
        super().__init__()
        self.config = config
        d, modalities = config.d_model, config.modalities

        def text_projection() -> nn.Module:
            return nn.Sequential(nn.Linear(text_dim, d), nn.LayerNorm(d))

        self.text_proj = text_projection() if "text" in modalities else None
        self.description_proj = text_projection() if "description" in modalities else None
        self.audio_encoder = (
            build_audio_encoder(
                config.audio_encoder, d, n_mels=config.n_mels, sample_rate=config.sample_rate, max_seconds=config.max_audio_seconds
            )
            if "audio" in modalities
            else None
        )
        self.video_encoder = (
            build_video_encoder(config.video_encoder, d, n_frames=config.n_frames, frame_size=config.frame_size)
            if "video" in modalities
            else None
        )
        self.compressor = (
            ConvCompressor(
                text_dim,
                d,
                max_turns=config.max_history_turns,
                memory_tokens=config.memory_tokens,
                use_labels=config.history_labels,
                dropout=config.dropout,
            )
            if "history" in modalities
            else None
        )
        self.fusion = ModalityFusion(
            modalities,
            d,
            n_heads=config.n_heads,
            n_layers=config.n_layers,
            dropout=config.dropout,
            modality_dropout=config.modality_dropout,
        )
        self.heads = nn.ModuleDict(
            {task: nn.Sequential(nn.Dropout(config.dropout), nn.Linear(d, len(TASK_LABELS[task]))) for task in TASKS}
        )
        # Wide path: the dialogue-state cues (earlier strategies, counts, client-turn surface cues) straight into the strategy logits.
        self.state_head = nn.Linear(STATE_DIM, len(TASK_LABELS["strategy"])) if config.dialogue_state else None
        self.sequence = (
            DialogueGRU(text_dim, config.sequence_dim, dropout=config.sequence_dropout) if config.strategy_model == "gru" else None
        )
        copies = config.copy_strategies and "history" in modalities and config.history_labels
        self.copy_gate = nn.Linear(d, config.copy_strategies + 1) if copies else None
        # Post-hoc logit adjustment (-tau * log prior), tuned on validation after training; zero while training.
        self.logit_adjustment = nn.ParameterDict(
            {task: nn.Parameter(torch.zeros(len(TASK_LABELS[task])), requires_grad=False) for task in TASKS}
        )

    def tokens(self, batch: Batch, drop: Iterable[str] = ()) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{modality: (tokens (B, n, d), present (B, n))}`` for the modalities in use and not dropped."""
        drop = set(drop)
        out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if self.text_proj is not None and "text" not in drop:
            out["text"] = self.text_proj(batch.text).unsqueeze(1), batch.text_present.unsqueeze(1)
        if self.description_proj is not None and "description" not in drop:
            out["description"] = self.description_proj(batch.description).unsqueeze(1), batch.description_present.unsqueeze(1)
        if self.audio_encoder is not None and "audio" not in drop and batch.audio is not None:
            out["audio"] = self.audio_encoder(batch.audio, batch.audio_lengths).unsqueeze(1), batch.audio_present.unsqueeze(1)
        if self.video_encoder is not None and "video" not in drop and batch.video is not None:
            out["video"] = self.video_encoder(batch.video).unsqueeze(1), batch.video_present.unsqueeze(1)
        if self.compressor is not None and "history" not in drop:
            out["history"] = self.compressor(
                batch.history_text, batch.history_speaker, batch.history_emotion, batch.history_strategy, batch.history_present
            )
        return out

    def forward(
        self, batch: Batch, drop: Iterable[str] = (), *, fusion_strategy: bool = False
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Return ``({task: logits}, fused embedding (B, d_model))``; with copying, strategy logits are log-probabilities.

        ``fusion_strategy`` takes the fusion's strategy head even when there is a GRU (training stage 1)."""
        drop = set(drop)
        embedding = self.fusion(self.tokens(batch, drop))
        logits = {task: head(embedding) for task, head in self.heads.items()}
        if self.sequence is not None and not fusion_strategy:
            logits["strategy"] = self.sequence(batch, drop)
        else:
            if self.state_head is not None:
                logits["strategy"] = logits["strategy"] + self.state_head(self._visible_state(batch, drop))
            if self.copy_gate is not None and "history" not in drop:
                logits["strategy"] = self._copy_previous_strategy(logits["strategy"], embedding, batch)
        return {task: logits[task] + self.logit_adjustment[task] for task in TASKS}, embedding

    def _visible_state(self, batch: Batch, drop: set[str]) -> torch.Tensor:
        """The dialogue state with the history part hidden when the history is, the client part when the text is
        (in training, each part also under modality dropout)."""
        parts = {"history": batch.state[:, :HISTORY_STATE_DIM], "text": batch.state[:, HISTORY_STATE_DIM:]}
        for modality, part in parts.items():
            keep = torch.full((part.shape[0], 1), float(modality not in drop))
            if self.training and self.config.modality_dropout > 0:
                keep = keep * (torch.rand_like(keep) >= self.config.modality_dropout)
            parts[modality] = part * keep
        return torch.cat(list(parts.values()), dim=1)

    def _copy_previous_strategy(self, logits: torch.Tensor, embedding: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Pointer-style mixture of ``softmax(logits)`` and one-hots of the last ``copy_strategies`` therapist
        strategies in the history, weighted by a softmax gate over the available sources; log-probabilities out."""
        n_classes = logits.shape[-1]
        known = batch.history_present & (batch.history_strategy < n_classes)  # (B, L) therapist turns with a strategy
        recency = known.flip(1).cumsum(1).flip(1) * known  # 1 = most recent known strategy, 2 = the one before, ...
        onehots = F.one_hot(batch.history_strategy.clamp(max=n_classes - 1), n_classes).float()  # (B, L, C)
        sources = [torch.softmax(logits, -1)]
        available = [torch.ones_like(known[:, 0])]
        for k in range(1, self.config.copy_strategies + 1):
            at_k = (recency == k).float()
            sources.append((onehots * at_k.unsqueeze(-1)).sum(1))
            available.append(at_k.sum(1) > 0)
        gate = self.copy_gate(embedding).masked_fill(~torch.stack(available, 1), float("-inf")).softmax(-1)
        mixture = (gate.unsqueeze(-1) * torch.stack(sources, 1)).sum(1)
        return torch.log(mixture.clamp_min(1e-8))


class MultimodalPredictor:
    """The :class:`~mmrl.predictor.EmotionPredictor` of this package: a network plus its featurizer.

    ``trained_modalities`` are those present in the training data; at inference any other
    modality is ignored (its token was never trained), e.g. video descriptions that exist only in
    MESC val/test.
    """

    def __init__(
        self, config: PredictorConfig, network: PredictorNetwork, *, text_dim: int, trained_modalities: Sequence[str] | None = None
    ) -> None:
        self.config = config
        self.network = network
        self.text_dim = text_dim
        self.trained_modalities = list(config.modalities if trained_modalities is None else trained_modalities)
        self._featurizer: Featurizer | None = None
        self._text_cache: TextEmbeddingCache | None = None

    @classmethod
    def build(cls, config: PredictorConfig, text_cache: TextEmbeddingCache | None = None) -> MultimodalPredictor:
        """A freshly initialised predictor (seed torch first for reproducible weights)."""
        text_cache = text_cache or TextEmbeddingCache(config.text_model, Path(config.cache_dir).expanduser())
        predictor = cls(config, PredictorNetwork(config, text_cache.dim), text_dim=text_cache.dim)
        predictor._text_cache = text_cache
        return predictor

    @property
    def featurizer(self) -> Featurizer:
        """Reads the trained modalities only (set ``trained_modalities`` before the first use)."""
        if self._featurizer is None:
            cache = self._text_cache or TextEmbeddingCache(self.config.text_model, Path(self.config.cache_dir).expanduser())
            network = self.network
            self._featurizer = Featurizer(self.config, cache, network.audio_encoder, network.video_encoder, self.trained_modalities)
        return self._featurizer

    @property
    def untrained_modalities(self) -> list[str]:
        return [m for m in self.config.modalities if m not in self.trained_modalities]

    @torch.no_grad()
    def predict_features(
        self, features: FeatureSet, *, drop: Iterable[str] = (), batch_size: int = 256, fusion_strategy: bool = False
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Probabilities ``{task: (N, classes)}`` and fused embeddings ``(N, d_model)`` of a feature set
        (``fusion_strategy``: see :meth:`PredictorNetwork.forward`)."""
        self.network.eval()
        drop = set(drop) | set(self.untrained_modalities)
        probabilities: dict[str, list[np.ndarray]] = {task: [] for task in TASKS}
        embeddings = []
        for start in range(0, len(features), batch_size):
            batch = collate(features.examples[start : start + batch_size], features.table)
            logits, embedding = self.network(batch, drop, fusion_strategy=fusion_strategy)
            for task in TASKS:
                probabilities[task].append(torch.softmax(logits[task], -1).numpy())
            embeddings.append(embedding.numpy())
        if not embeddings:
            return {task: np.zeros((0, len(TASK_LABELS[task])), np.float32) for task in TASKS}, np.zeros(
                (0, self.config.d_model), np.float32
            )
        return {task: np.concatenate(p) for task, p in probabilities.items()}, np.concatenate(embeddings)

    def predict(self, items: Sequence[tuple[Dialogue, int]], *, drop: Iterable[str] = ()) -> list[Components]:
        """Components for each (dialogue, target therapist-turn index); ``drop`` hides modalities."""
        probabilities, embeddings = self.predict_features(self.featurizer.build(items), drop=drop)
        return [Components(*(probabilities[task][i] for task in TASKS), embedding=embeddings[i]) for i in range(len(embeddings))]

    def save(self, directory: str | Path, **extra) -> Path:
        return save_checkpoint(
            directory,
            "dialogue",
            self.config,
            self.network,
            text_dim=self.text_dim,
            trained_modalities=self.trained_modalities,
            labels={task: list(TASK_LABELS[task]) for task in TASKS},
            **extra,
        )

    @classmethod
    def load(cls, directory: str | Path) -> MultimodalPredictor:
        """Load a checkpoint written by :meth:`save`; corrupted files and mismatches raise ``mmrl`` errors."""
        meta, config, weights = read_checkpoint(directory, "dialogue")
        expected = {task: list(TASK_LABELS[task]) for task in TASKS}
        for task in TASKS:
            if meta.get("labels", {}).get(task) != expected[task]:
                raise ConfigError(
                    f"{Path(directory) / _CONFIG}: the checkpoint's {task} labels {meta.get('labels', {}).get(task)} differ from "
                    f"mmrl's {expected[task]}; retrain the predictor with this version of mmrl"
                )
        network = PredictorNetwork(config, int(meta["text_dim"]))
        _load_weights(network, weights, Path(directory))
        return cls(config, network, text_dim=int(meta["text_dim"]), trained_modalities=meta["trained_modalities"])


class ClipClassifier(nn.Module):
    """DFEW clip-level classifier: the configured video encoder and one linear head over DFEW classes."""

    def __init__(self, config: PredictorConfig) -> None:
        super().__init__()
        self.config = config
        self.video_encoder = build_video_encoder(
            config.video_encoder, config.d_model, n_frames=config.n_frames, frame_size=config.frame_size
        )
        self.head = nn.Sequential(nn.GELU(), nn.Dropout(config.dropout), nn.Linear(config.d_model, len(DFEW_CLASSES)))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.head(self.video_encoder(clips))

    def clip_tensors(self, clips: Sequence[DfewClip], *, progress: bool = False) -> torch.Tensor:
        """Decode and featurize clips once: ``(N, n_frames, 3, H, W)``."""
        return torch.stack(
            [
                self.video_encoder.featurize(read_video(c.video_path, field="video")[0])
                for c in tqdm(clips, desc="clips", disable=not progress, leave=False)
            ]
        )

    @torch.no_grad()
    def predict_clips(self, clips: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Class ids (``DFEW_CLASSES`` order) of featurized clips."""
        self.eval()
        return torch.cat([self(part) for part in clips.split(batch_size)]).argmax(-1).numpy()

    def save(self, directory: str | Path, **extra) -> Path:
        return save_checkpoint(directory, "dfew", self.config, self, labels={"dfew": list(DFEW_CLASSES)}, **extra)

    @classmethod
    def load(cls, directory: str | Path) -> ClipClassifier:
        meta, config, weights = read_checkpoint(directory, "dfew")
        if meta.get("labels", {}).get("dfew") != list(DFEW_CLASSES):
            raise ConfigError(
                f"{Path(directory) / _CONFIG}: the checkpoint's DFEW classes {meta.get('labels')} differ from mmrl's {list(DFEW_CLASSES)}"
            )
        model = cls(config)
        _load_weights(model, weights, Path(directory))
        return model


def _trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor except frozen Hugging Face backbones (reloaded from their id)."""
    return {k: v.detach().contiguous() for k, v in module.state_dict().items() if ".backbone." not in f".{k}"}


def save_checkpoint(directory: str | Path, kind: str, config: PredictorConfig, module: nn.Module, **meta) -> Path:
    """Write ``model.safetensors`` and ``config.json`` to ``directory`` and return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(_trainable_state(module), str(directory / _WEIGHTS), metadata={"format": CHECKPOINT_FORMAT, "kind": kind})
    payload = {"format": CHECKPOINT_FORMAT, "kind": kind, "config": config.to_dict(), **meta}
    (directory / _CONFIG).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return directory


def read_checkpoint(directory: str | Path, kind: str) -> tuple[dict, PredictorConfig, dict[str, torch.Tensor]]:
    """Read and check a checkpoint's metadata, config and weights (not yet loaded into a module)."""
    directory = Path(directory)
    config_path, weights_path = directory / _CONFIG, directory / _WEIGHTS
    for path in (config_path, weights_path):
        if not path.is_file():
            raise DataError(f"not a predictor checkpoint: {path.name} is missing; train one with `mmrl predictor train`", path=path)
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"checkpoint config is corrupted (not valid JSON: {exc}); re-save or retrain", path=config_path) from exc
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ConfigError(f"{config_path}: expected checkpoint format {CHECKPOINT_FORMAT!r}, found {found!r}")
    if meta.get("kind") != kind:
        raise ConfigError(f"{config_path}: this is a {meta.get('kind')!r} checkpoint, but a {kind!r} one was expected")
    config = PredictorConfig.from_dict(meta.get("config"), str(config_path))
    try:
        weights = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"checkpoint weights are corrupted ({exc}); retrain or restore the file", path=weights_path) from exc
    return meta, config, weights


def _load_weights(module: nn.Module, weights: dict[str, torch.Tensor], directory: Path) -> None:
    expected = _trainable_state(module)
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ConfigError(
            f"{directory}: weights do not match config.json (missing {missing[:3]}, unexpected {unexpected[:3]}); "
            "the config and weights come from different models"
        )
    for name, tensor in weights.items():
        if tensor.shape != expected[name].shape:
            raise ConfigError(
                f"{directory}: tensor {name!r} has shape {tuple(tensor.shape)} but config.json implies {tuple(expected[name].shape)}; "
                "the config and weights come from different models"
            )
    module.load_state_dict(weights, strict=False)
