from __future__ import annotations

import argparse
import json

import pytest

from mmrl.errors import ConfigError
from mmrl.predictor.cli import add_commands
from mmrl.predictor.evaluate import evaluate_dfew
from mmrl.predictor.model import ClipClassifier, MultimodalPredictor
from mmrl.predictor.train import train_dfew
from tests.fixtures.dfew import make_dfew_fixture

# UAR/WAR of a few validation clips: sklearn warns about classes absent from them
pytestmark = pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true", "ignore:A single label was found")


@pytest.fixture(scope="module")
def dfew_run(tmp_path_factory):
    from mmrl.predictor.config import PredictorConfig

    root = make_dfew_fixture(tmp_path_factory.mktemp("dfew"), clips_per_class=4)
    out = tmp_path_factory.mktemp("dfew-ckpt")
    config = PredictorConfig(d_model=32, n_frames=4, frame_size=32, epochs=40, patience=10, batch_size=8, learning_rate=3e-3)
    return root, out, train_dfew(config, root, out, progress=False)


def test_dfew_reports_uar_and_war_per_fold(dfew_run):
    _, out, report = dfew_run
    print("DFEW fixture:", json.dumps(report))
    assert sorted(report["folds"]) == ["1", "2", "3", "4", "5"]
    for fold in report["folds"].values():
        assert 0.0 <= fold["uar"] <= 1.0 and 0.0 <= fold["war"] <= 1.0 and fold["test_clips"] > 0
    assert report["mean"]["war"] >= 0.8 and report["mean"]["uar"] >= 0.8  # class colours are easy to tell apart
    assert json.loads((out / "dfew_metrics.json").read_text()) == report


def test_dfew_checkpoints_evaluate_to_the_same_scores(dfew_run, capsys):
    root, out, report = dfew_run
    again = evaluate_dfew(out, root)
    for fold, metrics in report["folds"].items():
        assert again["folds"][fold]["uar"] == pytest.approx(metrics["uar"]) and again["folds"][fold]["war"] == pytest.approx(metrics["war"])
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["predictor", "eval", "--ckpt", str(out), "--data", str(root), "--format", "dfew", "--json"])
    args.func(args)
    assert json.loads(capsys.readouterr().out)["mean"] == pytest.approx(again["mean"])


def test_dfew_and_dialogue_checkpoints_are_not_interchangeable(dfew_run):
    _, out, _ = dfew_run
    assert isinstance(ClipClassifier.load(out / "fold1"), ClipClassifier)
    with pytest.raises(ConfigError, match="'dfew' checkpoint"):
        MultimodalPredictor.load(out / "fold1")
