from __future__ import annotations

import csv
import json

import pytest

from mmrl.ablation import AblationConfig, run_ablation, summarise, write_results
from mmrl.errors import ConfigError
from mmrl.labels import TRUST_CRITERIA

SPEC = {"on_missing": "skip", "rewards": {"format": 1.0, "component_match": 1.0}}


def _row(variant: str, seed: int, empathy: float, safety: float) -> dict:
    row = {f"trust/{c}/mean": 0.5 for c in TRUST_CRITERIA}
    row.update({"variant": variant, "seed": seed, "trust/empathy/mean": empathy, "trust/safety/mean": safety, "parse/rate": 1.0})
    return row


def test_summary_is_mean_and_std_over_seeds_with_the_difference_from_the_full_spec():
    rows = [
        _row("full", 0, 0.6, 0.8),
        _row("full", 1, 0.8, 0.8),
        _row("without_empathy", 0, 0.3, 0.9),
        _row("without_empathy", 1, 0.5, None),
    ]
    summary = summarise(rows, ["trust/empathy/mean", "trust/safety/mean"])
    empathy = summary["without_empathy"]["trust/empathy/mean"]
    assert empathy["mean"] == pytest.approx(0.4) and empathy["std"] == pytest.approx(0.1414, abs=1e-3)
    assert empathy["delta"] == pytest.approx(0.4 - 0.7)
    safety = summary["without_empathy"]["trust/safety/mean"]  # a missing score is left out, not counted as 0
    assert safety["mean"] == pytest.approx(0.9) and safety["delta"] == pytest.approx(0.1)
    assert summary["full"]["trust/empathy/mean"]["delta"] == 0.0


def test_results_files_are_written(tmp_path):
    config = AblationConfig(reward_spec=SPEC, seeds=[0, 1])
    rows = [_row("full", 0, 0.6, 0.8), _row("full", 1, 0.8, 0.8), _row("without_format", 0, 0.2, 0.7), _row("without_format", 1, 0.4, 0.9)]
    write_results(rows, config, tmp_path)
    with (tmp_path / "results.csv").open() as handle:
        assert [(r["variant"], r["seed"]) for r in csv.DictReader(handle)] == [
            ("full", "0"),
            ("full", "1"),
            ("without_format", "0"),
            ("without_format", "1"),
        ]
    markdown = (tmp_path / "results.md").read_text()
    assert "| full | " in markdown and "0.700 ± 0.141" in markdown and "0.300 ± 0.141 (-0.400)" in markdown
    for plot in ("effects.png", "pareto.png"):
        assert (tmp_path / plot).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "summary.json").read_text())["variants"]["without_format"]["trust/safety/mean"]["delta"] == pytest.approx(
        0.0
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "reward_spec is required"),
        ({"reward_spec": SPEC, "run": {"seed": 3}}, "run.seed is set per trial"),
        ({"reward_spec": SPEC, "seeds": [1, 1]}, "distinct seeds"),
        ({"reward_spec": SPEC, "pareto": ["empathy", "format"]}, "pareto must name two of"),
        ({"reward_spec": SPEC, "mode": "sweep"}, "grid is required"),
    ],
)
def test_bad_settings_are_config_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        AblationConfig(**values).variant_specs()


def test_a_reduced_leave_one_out_ablation_runs_through_ray_tune(tmp_path):
    config = AblationConfig(
        run={"policy": "tiny", "learning_rate": 1e-3, "num_generations": 2, "per_device_train_batch_size": 4, "max_completion_length": 8,
             "max_steps": 1, "save_steps": 1, "eval_max_prompts": 1, "report_to": "none"},
        reward_spec=SPEC, seeds=[0], eval_max_prompts=2, max_new_tokens=8, max_concurrent_trials=2,
    )  # fmt: skip
    result = run_ablation(config, tmp_path / "ablation")
    out = tmp_path / "ablation"
    assert result["trials"] == 3 and set(result["variants"]) == {"full", "without_format", "without_component_match"}
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["variant"] for r in rows} == {"full", "without_format", "without_component_match"}
    assert all(r["train/steps"] == "1" and r["prompts"] == "2" for r in rows)
    assert all(r[f"trust/{c}/mean"] != "" for r in rows for c in TRUST_CRITERIA)
    variants = json.loads((out / "variants.json").read_text())
    assert variants["without_format"]["rewards"]["format"]["weight"] == 0.0
    assert (out / "effects.png").is_file() and (out / "pareto.png").is_file()
    import ray

    assert not ray.is_initialized()  # the Ray it started is shut down (later tests start their own)


def test_local_paths_of_the_run_are_made_absolute_for_the_trials(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "sft" / "model").mkdir(parents=True)
    config = AblationConfig(reward_spec=SPEC, run={"policy": "runs/sft/model", "data": None})
    fields = config.run_fields()
    assert fields["policy"] == str(tmp_path / "runs" / "sft" / "model") and fields["data"] is None
    assert AblationConfig(reward_spec=SPEC, run={"policy": "tiny"}).run_fields()["policy"] == "tiny"


def test_a_sweep_makes_one_variant_per_grid_point(tmp_path):
    path = tmp_path / "ablate.yaml"
    path.write_text(
        "reward_spec: {rewards: {format: 1.0, component_match: 1.0}}\nmode: sweep\ngrid: {format: [0.5, 2], component_match: [0, 1]}\n",
        encoding="utf-8",
    )
    specs = AblationConfig.from_yaml(path).variant_specs()
    assert len(specs) == 4
    weights = sorted((s["rewards"]["format"]["weight"], s["rewards"]["component_match"]["weight"]) for s in specs.values())
    assert weights == [(0.5, 0.0), (0.5, 1.0), (2.0, 0.0), (2.0, 1.0)]
