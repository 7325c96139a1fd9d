from __future__ import annotations

import json

import pytest

from mmrl.demo import DemoConfig, run_demo
from mmrl.errors import ConfigError


def test_demo_runs_the_whole_loop_on_a_small_corpus(tmp_path):
    config = DemoConfig(dialogues=8, seed=1, predictor_epochs=2, sft_steps=4, grpo_steps=2)
    out = run_demo(config, tmp_path / "demo")
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["total"]["dialogues"] == 8
    assert set(report["predictor"]["test"]["model"]) == {"client_emotion", "therapist_emotion", "strategy"}
    assert "tfidf_lr" in report["predictor"]["test"]["baselines"]
    assert report["sft"]["steps"] == 4 and len(report["sft"]["loss"]) == 4
    curves = report["grpo"]["per_step"]
    assert report["grpo"]["steps"] == 2 and curves["step"] == [1, 2]
    assert all(len(curves[name]) == 2 for name in DemoConfig().rewards["rewards"])
    assert all(v is not None for v in curves["format"] + curves["similarity"])  # logged by TRL every step
    assert report["grpo"]["val"]["prompts"] > 0 and report["sft"]["val"]["prompts"] == report["grpo"]["val"]["prompts"]
    assert set(report["parse_rate"]) == {"sft", "grpo"} and all(0 <= v <= 1 for v in report["parse_rate"].values())
    assert len(report["examples"]["before_grpo"]) == len(report["examples"]["after_grpo"]) == 3
    assert (out / "rewards.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "report.md").read_text()
    assert "| SFT + GRPO |" in markdown and markdown.count("Example completions") == 2
    assert "| client_emotion |" in markdown and "![per-component rewards](rewards.png)" in markdown
    assert (out / "grpo" / "model" / "config.json").is_file()


def test_the_default_demo_writes_the_format_after_sft_and_grpo_keeps_it(tmp_path):
    """Issue 14: the tiny policy's val completions parse (>= 0.8) after SFT, and GRPO does not lower that."""
    report = json.loads((run_demo(DemoConfig(), tmp_path / "demo") / "report.json").read_text())
    assert report["parse_rate"]["sft"] >= 0.8, report["examples"]["before_grpo"]
    assert report["parse_rate"]["grpo"] >= report["parse_rate"]["sft"], report["examples"]["after_grpo"]


def test_demo_settings_are_checked():
    with pytest.raises(ConfigError, match="dialogues must be >= 6"):
        DemoConfig(dialogues=3)
    with pytest.raises(ConfigError, match="unknown key 'grpo_step'; did you mean 'grpo_steps'"):
        DemoConfig.from_dict({"grpo_step": 3})
