from __future__ import annotations

import pytest

from mmrl.errors import ConfigError
from mmrl.predictor.config import MODALITIES, PredictorConfig, load_config


def test_yaml_keys_are_field_names(tmp_path):
    path = tmp_path / "predictor.yaml"
    path.write_text("d_model: 64\nmodalities: [text, history]\nseed: 3\n", encoding="utf-8")
    config = load_config(path, seed=7)
    assert (config.d_model, config.modalities, config.seed) == (64, ["text", "history"], 7)
    assert load_config(path).seed == 3  # None overrides (an unset CLI flag) keep the file's value


def test_unknown_yaml_key_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "predictor.yaml"
    path.write_text("d_modle: 64\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"predictor\.yaml.*unknown key 'd_modle'.*did you mean 'd_model'"):
        load_config(path)


def test_config_file_problems_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("d_model: [1,\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(listing)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"modalities": ["text", "smell"]}, "subset of"),
        ({"modalities": []}, "subset of"),
        ({"modalities": ["text", "text"]}, "twice"),
        ({"d_model": 30, "n_heads": 4}, "divisible"),
        ({"memory_tokens": 40, "max_history_turns": 32}, "memory_tokens"),
        ({"loss": "hinge"}, "weighted_ce"),
        ({"focal_gamma": 1.0}, "loss: focal"),
        ({"task_weights": [1.0, 1.0]}, "3 non-negative"),
        ({"modality_dropout": 1.0}, r"\[0, 1\)"),
        ({"epochs": 0}, "epochs"),
        ({"strategy_model": "crf"}, "'gru' or 'fusion'"),
        ({"sequence_dim": 0}, "sequence_dim"),
        ({"sequence_dropout": 1.0}, "sequence_dropout"),
    ],
)
def test_conflicting_settings_are_rejected(values, message):
    with pytest.raises(ConfigError, match=message):
        PredictorConfig(**values)


def test_defaults_use_every_modality_and_round_trip():
    config = PredictorConfig()
    assert config.modalities == list(MODALITIES)
    assert PredictorConfig.from_dict(config.to_dict()) == config
