from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
import yaml

from mmrl.data import load_corpus
from mmrl.errors import SplitLeakError
from mmrl.labels import EMOTIONS
from mmrl.predictor import TASKS
from mmrl.predictor.cli import add_commands
from mmrl.predictor.evaluate import METRICS
from mmrl.predictor.model import MultimodalPredictor
from mmrl.predictor.train import class_weights, task_loss, train_predictor
from tests.fixtures.mesc import write_mesc
from tests.predictor.conftest import split


def _run(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.func(args)


def _is_metrics(m: dict) -> bool:
    return set(m) == set(METRICS) and all(0.0 <= v <= 1.0 for v in m.values())


def test_cli_train_eval_predict_on_the_synthetic_corpus(synth_dir, tiny_config, tmp_path, capsys):
    config = tiny_config(epochs=2).to_dict()
    (tmp_path / "predictor.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    ckpt = tmp_path / "ckpt"
    _run(
        [
            "predictor",
            "train",
            "--data",
            str(synth_dir),
            "--format",
            "synth",
            "--out",
            str(ckpt),
            "--config",
            str(tmp_path / "predictor.yaml"),
            "--seed",
            "1",
        ]
    )
    assert f"checkpoint written to {ckpt}" in capsys.readouterr().out
    assert json.loads((ckpt / "config.json").read_text())["config"]["seed"] == 1
    assert (ckpt / "train_history.json").is_file()

    _run(["predictor", "eval", "--ckpt", str(ckpt), "--data", str(synth_dir), "--split", "test", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"model", "baselines"}
    assert set(report["baselines"]) == {"majority", "tfidf_lr", "prev_strategy"}
    for tasks in (report["model"], report["baselines"]["majority"], report["baselines"]["tfidf_lr"]):
        assert set(tasks) == set(TASKS) and all(_is_metrics(m) for m in tasks.values())
    assert set(report["baselines"]["prev_strategy"]) == {"strategy"} and _is_metrics(report["baselines"]["prev_strategy"]["strategy"])

    out = tmp_path / "predictions.jsonl"
    _run(["predictor", "predict", "--ckpt", str(ckpt), "--data", str(synth_dir), "--split", "test", "--out", str(out)])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    test_items = sum(len(d.target_indices()) for d in load_corpus(synth_dir, "synth").dialogues if d.split == "test")
    assert len(records) == test_items and {r["split"] for r in records} == {"test"}
    assert set(records[0]["client_emotion"]) == set(EMOTIONS) and sum(records[0]["strategy"].values()) == pytest.approx(1.0, abs=1e-4)
    assert len(records[0]["embedding"]) == config["d_model"] and records[0]["predicted"]["client_emotion"] in EMOTIONS


def test_cli_train_fast_keeps_the_fusion_strategy_head(synth_dir, tiny_config, tmp_path, capsys):
    (tmp_path / "predictor.yaml").write_text(yaml.safe_dump(tiny_config(epochs=1).to_dict()), encoding="utf-8")
    ckpt = tmp_path / "ckpt"
    _run(
        [
            "predictor",
            "train",
            "--data",
            str(synth_dir),
            "--format",
            "synth",
            "--out",
            str(ckpt),
            "--config",
            str(tmp_path / "predictor.yaml"),
            "--fast",
        ]
    )
    assert json.loads((ckpt / "config.json").read_text())["config"]["strategy_model"] == "fusion"
    loaded = MultimodalPredictor.load(ckpt)
    assert loaded.network.sequence is None and loaded.network.state_head is not None


def test_training_refuses_val_or_test_dialogues(tiny_config, synth):
    with pytest.raises(SplitLeakError, match="train split"):
        train_predictor(tiny_config(), split(synth, "train") + split(synth, "test"), split(synth, "val"), progress=False)


def test_training_is_seeded(tiny_config, synth):
    runs = [
        train_predictor(
            tiny_config(epochs=1, modalities=["text", "audio", "history"]), split(synth, "train"), split(synth, "val"), progress=False
        )[0]
        for _ in range(2)
    ]
    for (name, a), b in zip(runs[0].network.state_dict().items(), runs[1].network.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_video_descriptions_absent_in_train_are_ignored_at_eval(tiny_config, tmp_path):
    """MESC has video descriptions in val/test only: the model trains without them and still evaluates."""
    corpus = load_corpus(write_mesc(tmp_path / "mesc"), "mesc")
    assert not any(t.video_description for d in corpus.split("train") for t in d.turns)
    assert any(t.video_description for d in corpus.split("test") for t in d.turns)
    _, summary = train_predictor(tiny_config(epochs=1), corpus.split("train"), corpus.split("val"), tmp_path / "ckpt", progress=False)
    assert "description" not in summary["trained_modalities"] and "text" in summary["trained_modalities"]
    loaded = MultimodalPredictor.load(tmp_path / "ckpt")
    assert "description" in loaded.untrained_modalities
    items = [(d, i) for d in corpus.split("test") for i in d.target_indices()]
    features = loaded.featurizer.build(items)
    assert all(e.description_row == -1 for e in features.examples)  # never read, never embedded
    assert len(loaded.predict(items)) == len(items)


def test_class_weights_and_losses():
    labels = np.array([0] * 98 + [1] * 2 + [-100] * 5)
    plain, balanced, half = (class_weights(labels, 3, power).tolist() for power in (0.0, 1.0, 0.5))
    assert plain == [1.0, 1.0, 1.0]
    assert balanced == pytest.approx([100 / (2 * 98), 100 / (2 * 2), 1.0])
    assert half == pytest.approx([(100 / 196) ** 0.5, 25**0.5, 1.0])
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 1.0]])
    targets = torch.tensor([0, 0, -100])
    from mmrl.predictor.config import PredictorConfig

    ce = task_loss(logits, targets, torch.ones(3), PredictorConfig())
    assert ce.item() == pytest.approx(torch.nn.functional.cross_entropy(logits[:2], targets[:2]).item())
    focal = task_loss(logits, targets, torch.ones(3), PredictorConfig(loss="focal", focal_gamma=2.0))
    assert 0 < focal.item() < ce.item()  # focal down-weights the easy example
    assert task_loss(logits, torch.full((3,), -100), torch.ones(3), PredictorConfig()).item() == 0.0
