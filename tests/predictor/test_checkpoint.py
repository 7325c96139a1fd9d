from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmrl.errors import ConfigError, DataError, MmrlError
from mmrl.labels import STRATEGIES
from mmrl.predictor import TASKS, Components, EmotionPredictor
from mmrl.predictor.evaluate import items_of
from mmrl.predictor.model import MultimodalPredictor
from tests.predictor.conftest import split


@pytest.fixture
def saved(tiny_config, synth, tmp_path):
    torch.manual_seed(0)
    predictor = MultimodalPredictor.build(tiny_config(modalities=["text", "audio", "video", "history"]))
    for bias in predictor.network.logit_adjustment.values():
        bias.data = torch.randn_like(bias)  # a tuned adjustment must survive the round trip too
    return predictor, predictor.save(tmp_path / "ckpt")


def test_round_trip_gives_identical_predictions(saved, synth):
    predictor, directory = saved
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors"]
    loaded = MultimodalPredictor.load(directory)
    assert isinstance(loaded, EmotionPredictor)
    items = items_of(split(synth, "test"))[:6]
    before, after = predictor.predict(items), loaded.predict(items)
    assert len(after) == len(items) and all(isinstance(c, Components) for c in after)
    for a, b in zip(before, after):
        for task in TASKS:
            np.testing.assert_allclose(getattr(a, task), getattr(b, task), atol=1e-6)
            assert getattr(b, task).sum() == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-6)
    assert after[0].strategy.shape == (len(STRATEGIES),) and after[0].embedding.shape == (loaded.config.d_model,)
    assert after[0].label("strategy") in STRATEGIES
    assert list(after[0].probabilities()) == list(TASKS)


def test_corrupted_weights_raise_a_data_error_naming_the_file(saved):
    _, directory = saved
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(DataError, match="model.safetensors.*corrupted"):
        MultimodalPredictor.load(directory)


def test_corrupted_config_raises_a_data_error_naming_the_file(saved):
    _, directory = saved
    (directory / "config.json").write_text('{"format": "mmrl-predictor/1", "config": {', encoding="utf-8")
    with pytest.raises(DataError, match="config.json.*corrupted"):
        MultimodalPredictor.load(directory)


def _edit_config(directory, change):
    path = directory / "config.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    change(meta)
    path.write_text(json.dumps(meta), encoding="utf-8")


def test_dimension_mismatch_raises_a_config_error(saved):
    _, directory = saved
    _edit_config(directory, lambda meta: meta["config"].update(d_model=64))
    with pytest.raises(ConfigError, match="shape.*different models"):
        MultimodalPredictor.load(directory)


def test_modality_mismatch_raises_a_config_error(saved):
    _, directory = saved
    _edit_config(directory, lambda meta: meta["config"].update(modalities=["text", "history"]))
    with pytest.raises(ConfigError, match="do not match config.json"):
        MultimodalPredictor.load(directory)


def test_label_set_mismatch_raises_a_config_error(saved):
    _, directory = saved
    _edit_config(directory, lambda meta: meta["labels"].update(strategy=list(STRATEGIES[:-1])))
    with pytest.raises(ConfigError, match="strategy labels.*retrain"):
        MultimodalPredictor.load(directory)


def test_unknown_config_key_and_wrong_kind_are_rejected(saved):
    _, directory = saved
    _edit_config(directory, lambda meta: meta["config"].update(colour="red"))
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        MultimodalPredictor.load(directory)
    _edit_config(directory, lambda meta: meta.update(kind="dfew"))
    with pytest.raises(ConfigError, match="'dfew' checkpoint"):
        MultimodalPredictor.load(directory)


def test_missing_checkpoint_files_are_explained(tmp_path):
    with pytest.raises(MmrlError, match="not a predictor checkpoint.*mmrl predictor train"):
        MultimodalPredictor.load(tmp_path)
