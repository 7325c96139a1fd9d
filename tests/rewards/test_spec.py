"""Reward specs: parsing, unknown keys, building, YAML files, ablation helpers."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from mmrl.errors import ConfigError
from rewards import registry
from rewards.base import Context, RewardBatch
from rewards.cache import CachedReward
from rewards.registry import register
from rewards.spec import build_composite, leave_one_out, load_spec, only, parse_spec, variants, with_weights

SPEC = {
    "rewards": {
        "empathy_t": 1.0,
        "safety_t": {"weight": 2.0, "gate": 0.4},
        "privacy_t": 0.0,
        "similarity_t": {"weight": 0.5, "options": {"bonus": 0.25}},
    }
}


class Toy:
    """A constant reward (plus an optional ``bonus`` option); records each construction in ``built``."""

    version, score_range, value = "1", (0.0, 1.0), 0.0
    built: list[str] = []

    def __init__(self, bonus: float = 0.0) -> None:
        self.bonus = bonus
        self.built.append(self.name)

    def __call__(self, contexts, replies):
        return RewardBatch(np.full(len(replies), self.value + self.bonus))


@pytest.fixture
def built(monkeypatch):
    """A registry of four toy rewards (built-ins not loaded); returns the names of the rewards built."""
    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_load_builtins", lambda: None)
    monkeypatch.setattr(Toy, "built", [])
    for name, value in [("empathy_t", 0.5), ("safety_t", 0.3), ("privacy_t", 0.9), ("similarity_t", 0.25)]:
        register(name)(type(name, (Toy,), {"name": name, "value": value, "__doc__": f"{name} (a toy)."}))
    return Toy.built


def test_parse_fills_defaults_and_canonical_entries(built):
    spec = parse_spec(SPEC)
    assert spec["mode"] == "weighted" and spec["on_missing"] == "nan" and spec["log_zero_weight"] is False
    assert spec["rewards"]["empathy_t"] == {"weight": 1.0, "gate": None, "options": {}}
    assert spec["rewards"]["safety_t"]["gate"] == {"threshold": 0.4, "cap": 0.0}
    assert spec["rewards"]["similarity_t"]["options"] == {"bonus": 0.25}
    assert parse_spec(spec) == spec  # canonical specs are fixed points


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({**SPEC, "mdoe": "min"}, "unknown key 'mdoe' in the reward spec; did you mean 'mode'"),
        ({"rewards": {"empathy_t": {"wieght": 1.0}}}, r"unknown key 'wieght' in rewards\.empathy_t; did you mean 'weight'"),
        ({"rewards": {"safety_t": {"gate": {"treshold": 0.4}}}}, r"'treshold' in rewards\.safety_t\.gate; did you mean 'threshold'"),
        ({"rewards": {"empathy": 1.0}}, "unknown reward 'empathy' in rewards; did you mean 'empathy_t'"),
        ({"rewards": {"empathy_t": "high"}}, r"rewards\.empathy_t must be a finite number, got 'high'"),
        ({"rewards": {"empathy_t": 0}}, "every weight in rewards is 0"),
        ({"rewards": {}}, "rewards must map reward names to weights"),
        ({**SPEC, "mode": "normalized"}, "did you mean 'normalised'"),
        ({**SPEC, "log_zero_weight": "yes"}, "must be true or false"),
        ({"rewards": {"safety_t": {"gate": 1.5}}}, r"rewards\.safety_t\.gate: threshold 1\.5 is outside the open range \(0, 1\)"),
        ({"rewards": {"safety_t": {"gate": -5}}}, "at or below 0 it never fires"),
        ({"rewards": {"safety_t": {"gate": {"threshold": 1.0, "cap": -1}}}}, "outside the open range"),
        ({**SPEC, "max_failed_batches": -1}, "max_failed_batches must be an integer >= 0"),
    ],
)
def test_bad_specs_name_the_key(built, spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_spec(spec)


def test_build_skips_weight_zero_and_passes_options(built):
    composite = build_composite(SPEC)
    assert "privacy_t" not in built  # weight 0, not logged: never even built
    assert [c.name for c in composite.components] == ["empathy_t", "safety_t", "similarity_t"]
    result = composite([Context("x")], ["a reply"])
    # 0.5 + 2 * 0.3 + 0.5 * (0.25 + 0.25), then the safety gate (0.3 < 0.4) caps it at 0
    assert result.total[0] == 0.0
    assert result.scores["similarity_t"][0] == 0.5
    np.testing.assert_array_equal(result.violations["safety_t"], [1.0])
    logged = build_composite({**SPEC, "log_zero_weight": True})
    assert "privacy_t" in [c.name for c in logged.computed]


def test_cache_setting_wraps_every_reward(built, tmp_path):
    composite = build_composite({**SPEC, "cache": str(tmp_path / "scores.sqlite")})
    assert all(isinstance(c.reward, CachedReward) for c in composite.components)
    composite([Context("x")], ["a reply"])
    assert composite.components[0].reward.misses == 1
    composite([Context("x")], ["a reply"])
    assert composite.components[0].reward.hits == 1


def test_yaml_file_errors_name_the_file(built, tmp_path):
    good = tmp_path / "rewards.yaml"
    good.write_text("mode: min\nrewards:\n  empathy_t: 1.0\n  safety_t: {weight: 1.0, gate: {threshold: 0.5, cap: -1}}\n")
    spec = load_spec(good)
    assert spec["mode"] == "min" and spec["rewards"]["safety_t"]["gate"] == {"threshold": 0.5, "cap": -1.0}
    assert build_composite(good).mode == "min"
    bad = tmp_path / "bad.yaml"
    bad.write_text("rewards:\n  empathy_t: {weight: 1.0, gaet: 0.3}\n")
    with pytest.raises(ConfigError, match=rf"unknown key 'gaet' in rewards\.empathy_t of {bad}; did you mean 'gate'"):
        load_spec(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("rewards: [unclosed\n")
    with pytest.raises(ConfigError, match=f"{broken} is not valid YAML"):
        load_spec(broken)
    with pytest.raises(ConfigError, match="cannot read the reward spec"):
        load_spec(tmp_path / "missing.yaml")


def test_leave_one_out(built):
    original = copy.deepcopy(SPEC)
    out = leave_one_out(SPEC)
    assert sorted(out) == ["empathy_t", "safety_t", "similarity_t"]  # privacy_t is already out
    assert out["safety_t"]["rewards"]["safety_t"] == {"weight": 0.0, "gate": None, "options": {}}
    assert out["safety_t"]["rewards"]["empathy_t"]["weight"] == 1.0
    assert SPEC == original
    assert leave_one_out({"rewards": {"empathy_t": 1.0}}) == {}


def test_only_and_with_weights(built):
    alone = only(SPEC, "privacy_t")
    assert {n: e["weight"] for n, e in alone["rewards"].items()} == {"empathy_t": 0, "safety_t": 0, "privacy_t": 1.0, "similarity_t": 0}
    assert alone["rewards"]["safety_t"]["gate"] is None
    assert only(SPEC, "safety_t")["rewards"]["safety_t"] == {"weight": 2.0, "gate": {"threshold": 0.4, "cap": 0.0}, "options": {}}
    reweighted = with_weights(SPEC, empathy_t=3, privacy_t=0.5)
    assert reweighted["rewards"]["empathy_t"]["weight"] == 3.0 and reweighted["rewards"]["privacy_t"]["weight"] == 0.5
    with pytest.raises(ConfigError, match="'empathy' is not a reward of this spec; did you mean 'empathy_t'"):
        with_weights(SPEC, empathy=1.0)
    with pytest.raises(ConfigError, match="did you mean 'safety_t'"):
        only(SPEC, "safty_t")


def test_variants(built):
    loo = variants(SPEC)
    assert sorted(loo) == ["full", "without_empathy_t", "without_safety_t", "without_similarity_t"]
    assert loo["full"] == parse_spec(SPEC)
    assert sorted(variants(SPEC, mode="only-one")) == ["full", "only_empathy_t", "only_safety_t", "only_similarity_t"]
    sweep = variants({"rewards": {"empathy_t": 1.0, "safety_t": 1.0}}, mode="sweep", grid={"empathy_t": [0, 1], "safety_t": [0, 2]})
    assert sorted(sweep) == ["empathy_t=0,safety_t=2", "empathy_t=1,safety_t=0", "empathy_t=1,safety_t=2"]  # all-zero point left out
    assert sweep["empathy_t=1,safety_t=2"]["rewards"]["safety_t"]["weight"] == 2.0
    with pytest.raises(ConfigError, match="grid is required for mode='sweep'"):
        variants(SPEC, mode="sweep")
    with pytest.raises(ConfigError, match="did you mean 'leave-one-out'"):
        variants(SPEC, mode="leave_one_out")
