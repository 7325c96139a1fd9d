"""The predictor's configuration: one dataclass, YAML keys equal to field names."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from mmrl.config import YamlConfig
from mmrl.errors import ConfigError

__all__ = ["MODALITIES", "PredictorConfig", "load_config"]

#: Inputs the fusion attends over; any subset may be present for a given example.
MODALITIES: tuple[str, ...] = ("text", "audio", "video", "description", "history")


@dataclass
class PredictorConfig(YamlConfig):
    """Configuration of the multimodal emotion/strategy predictor and its training.

    Parameters:
        > Encoders

        text_model (`str`, defaults to `"all-MiniLM-L6-v2"`):
            Sentence-transformers model for utterances, descriptions and history turns (frozen);
            the default is the packaged copy, otherwise a local path or hub id.
        audio_encoder (`str`, defaults to `"logmel-cnn"`):
            `"logmel-cnn"` (trainable conv net on log-mel) or a Hugging Face audio model id/path (frozen).
        video_encoder (`str`, defaults to `"frame-cnn"`):
            `"frame-cnn"` (trainable frame CNN) or a Hugging Face image model id/path (frozen).
        sample_rate (`int`, defaults to `16000`): audio is resampled to this rate for log-mel.
        n_mels (`int`, defaults to `64`): mel bands of the log-mel features.
        max_audio_seconds (`float`, defaults to `8.0`): audio beyond this is cut.
        n_frames (`int`, defaults to `8`): frames sampled uniformly from a clip.
        frame_size (`int`, defaults to `64`): frames are resized to this square size.

        > Fusion and history

        modalities (`list[str]`, defaults to all of `MODALITIES`):
            Inputs the model uses; the others are never read.
        d_model (`int`, defaults to `64`): width of every modality token.
        n_heads (`int`, defaults to `4`): attention heads of the fusion.
        n_layers (`int`, defaults to `2`): fusion transformer layers.
        dropout (`float`, defaults to `0.1`): dropout inside the fusion and heads.
        modality_dropout (`float`, defaults to `0.15`):
            Training-time probability of hiding each present modality of an example.
        max_history_turns (`int`, defaults to `32`): most recent history turns the compressor reads.
        memory_tokens (`int`, defaults to `4`): tokens the ConvCompressor leaves of the history.
        history_labels (`bool`, defaults to `True`):
            Add earlier turns' labels (client emotions, therapist emotions and strategies) to the history.
        copy_strategies (`int`, defaults to `1`):
            The strategy head may copy any of the last `copy_strategies` therapist strategies of the
            history through a learned gate (a pointer mechanism: strategies persist); 0 turns it off.
            Active only with `history` in `modalities` and `history_labels`.
        dialogue_state (`bool`, defaults to `True`):
            A linear path from dialogue-state cues straight into the strategy logits: the latest therapist
            segment's strategy, the last three turn strategies, the history's strategy histogram and turn
            counts (from `history`), and the client turn's length, question marks, segments and duration
            (from `text`).

        > Strategy

        strategy_model (`str`, defaults to `"gru"`):
            `"gru"`: a causal GRU over the dialogue's turns (text embeddings, speakers, earlier labels; see
            `mmrl.predictor.sequence`), trained after the fusion network, predicts the strategy, and the fusion's
            strategy head only shapes the fused embedding; `"fusion"`: the fusion's strategy head (with
            `dialogue_state` and `copy_strategies`), the fast path (`mmrl predictor train --fast`).
        sequence_dim (`int`, defaults to `128`): hidden width of the GRU.
        sequence_class_weight_power (`float`, defaults to `0.0`): `class_weight_power` of the GRU's strategy loss.
        sequence_dropout (`float`, defaults to `0.3`): dropout on the GRU's inputs and head (a third of it on the text embeddings).

        > Training

        epochs (`int`, defaults to `40`): upper bound on epochs.
        patience (`int`, defaults to `6`): epochs without a better validation score before stopping.
        batch_size (`int`, defaults to `64`): examples per step.
        learning_rate (`float`, defaults to `3e-4`): AdamW learning rate.
        weight_decay (`float`, defaults to `0.01`): AdamW weight decay.
        loss (`str`, defaults to `"weighted_ce"`): `"weighted_ce"` or `"focal"`.
        class_weight_power (`float`, defaults to `0.5`):
            Class weights are `(n / (k * count)) ** power`: 0 is plain CE, 1 is fully balanced.
        focal_gamma (`float`, defaults to `2.0`): focusing parameter of the focal loss.
        label_smoothing (`float`, defaults to `0.0`): label smoothing of the cross-entropy.
        task_weights (`list[float]`, defaults to `[1.0, 0.5, 1.0]`):
            Loss weights of client emotion, therapist emotion and strategy.
        logit_adjustment (`bool`, defaults to `True`):
            After training, add `-tau * log(train prior)` to each task's logits, with `tau` chosen on
            validation weighted-F1 (post-hoc logit adjustment, Menon et al. 2021).
        seed (`int`, defaults to `0`): the run's one seed.
        num_threads (`int`, defaults to `1`): torch CPU threads (the small ops here run fastest on one; more helps only on an idle machine).
        cache_dir (`str`, defaults to `"~/.cache/mmrl/text-embeddings"`): text-embedding cache.
    """

    text_model: str = field(default="all-MiniLM-L6-v2", metadata={"help": "sentence-transformers model: packaged name, path or hub id"})
    audio_encoder: str = field(default="logmel-cnn", metadata={"help": "'logmel-cnn' or a Hugging Face audio model id/path"})
    video_encoder: str = field(default="frame-cnn", metadata={"help": "'frame-cnn' or a Hugging Face image model id/path"})
    sample_rate: int = field(default=16_000, metadata={"help": "audio resampling rate for log-mel"})
    n_mels: int = field(default=64, metadata={"help": "mel bands"})
    max_audio_seconds: float = field(default=8.0, metadata={"help": "audio beyond this is cut"})
    n_frames: int = field(default=8, metadata={"help": "frames sampled per clip"})
    frame_size: int = field(default=64, metadata={"help": "frame side after resizing"})

    modalities: list[str] = field(default_factory=lambda: list(MODALITIES), metadata={"help": f"subset of {list(MODALITIES)}"})
    d_model: int = field(default=64, metadata={"help": "token width"})
    n_heads: int = field(default=4, metadata={"help": "fusion attention heads"})
    n_layers: int = field(default=2, metadata={"help": "fusion transformer layers"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in fusion and heads"})
    modality_dropout: float = field(default=0.15, metadata={"help": "training probability of hiding each present modality"})
    max_history_turns: int = field(default=32, metadata={"help": "history turns the compressor reads"})
    memory_tokens: int = field(default=4, metadata={"help": "memory tokens the history is compressed to"})
    history_labels: bool = field(default=True, metadata={"help": "add earlier turns' labels to the history"})
    copy_strategies: int = field(
        default=1, metadata={"help": "earlier therapist strategies the strategy head may copy (0: none; needs history with labels)"}
    )
    dialogue_state: bool = field(
        default=True,
        metadata={"help": "linear path from dialogue-state cues (earlier strategies, counts, client-turn cues) to the strategy logits"},
    )

    strategy_model: str = field(default="gru", metadata={"help": "'gru' (a GRU over the dialogue's turns) or 'fusion' (fast)"})
    sequence_dim: int = field(default=128, metadata={"help": "hidden width of the strategy GRU"})
    sequence_class_weight_power: float = field(default=0.0, metadata={"help": "class_weight_power of the strategy GRU's loss"})
    sequence_dropout: float = field(default=0.3, metadata={"help": "dropout of the strategy GRU"})

    epochs: int = field(default=40, metadata={"help": "maximum epochs"})
    patience: int = field(default=6, metadata={"help": "early-stopping patience (epochs)"})
    batch_size: int = field(default=64, metadata={"help": "examples per step"})
    learning_rate: float = field(default=3e-4, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    loss: str = field(default="weighted_ce", metadata={"help": "'weighted_ce' or 'focal'"})
    class_weight_power: float = field(default=0.5, metadata={"help": "0 = plain CE, 1 = balanced class weights"})
    focal_gamma: float = field(default=2.0, metadata={"help": "focal loss gamma"})
    label_smoothing: float = field(default=0.0, metadata={"help": "cross-entropy label smoothing"})
    task_weights: list[float] = field(
        default_factory=lambda: [1.0, 0.5, 1.0], metadata={"help": "loss weights: client emotion, therapist emotion, strategy"}
    )
    logit_adjustment: bool = field(default=True, metadata={"help": "tune post-hoc logit adjustment on validation"})
    seed: int = field(default=0, metadata={"help": "the run's one seed"})
    num_threads: int = field(default=1, metadata={"help": "torch CPU threads"})
    cache_dir: str = field(default="~/.cache/mmrl/text-embeddings", metadata={"help": "text-embedding cache directory"})

    def __post_init__(self) -> None:
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown or not self.modalities:
            raise ConfigError(f"modalities must be a non-empty subset of {list(MODALITIES)}, got {self.modalities}")
        if len(set(self.modalities)) != len(self.modalities):
            raise ConfigError(f"modalities lists a modality twice: {self.modalities}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}); change one of them")
        if self.memory_tokens < 1 or self.max_history_turns < self.memory_tokens:
            raise ConfigError(f"need 1 <= memory_tokens <= max_history_turns, got {self.memory_tokens} and {self.max_history_turns}")
        if self.copy_strategies < 0:
            raise ConfigError(f"copy_strategies must be >= 0, got {self.copy_strategies}")
        if self.strategy_model not in ("gru", "fusion"):
            raise ConfigError(f"strategy_model must be 'gru' or 'fusion', got {self.strategy_model!r}")
        if self.loss not in ("weighted_ce", "focal"):
            raise ConfigError(f"loss must be 'weighted_ce' or 'focal', got {self.loss!r}")
        if self.loss != "focal" and self.focal_gamma != 2.0:
            raise ConfigError("focal_gamma is only used with loss: focal; set loss: focal or drop focal_gamma")
        if len(self.task_weights) != 3 or any(w < 0 for w in self.task_weights) or not any(self.task_weights):
            raise ConfigError(
                f"task_weights needs 3 non-negative weights (client emotion, therapist emotion, strategy), got {self.task_weights}"
            )
        for name in ("dropout", "modality_dropout", "label_smoothing", "sequence_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in (
            "epochs",
            "batch_size",
            "n_frames",
            "frame_size",
            "n_mels",
            "sample_rate",
            "num_threads",
            "n_layers",
            "sequence_dim",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.patience < 1 or not math.isfinite(self.learning_rate) or self.learning_rate <= 0:
            raise ConfigError(f"need patience >= 1 and a positive learning_rate, got {self.patience} and {self.learning_rate}")


def load_config(path: str | Path | None = None, **overrides) -> PredictorConfig:
    """Read a YAML file of predictor settings (keys = field names), then apply the ``overrides`` that are not None."""
    if path is None:
        return PredictorConfig.from_dict({k: v for k, v in overrides.items() if v is not None})
    return PredictorConfig.from_yaml(path, **overrides)
