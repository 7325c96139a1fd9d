"""Reward specs: a dict or YAML file naming rewards, weights and gates, turned into a :class:`Composite`.

A spec (every key but ``rewards`` optional; defaults shown)::

    mode: weighted            # weighted | normalised | min (see rewards.compose)
    group_size: null          # normalised only: GRPO group size (null: the whole batch)
    on_missing: nan           # nan | skip: what a failed score does to the total
    log_zero_weight: false    # compute and log weight-0 rewards too
    cache: null               # path of a RewardCache file: score each (context, reply) once
    judge: null               # JudgeConfig fields of the one Judge shared by every judge_* reward
                              # (its criteria default to those of the judge_* rewards computed)
    rewards:
      empathy: 1.0                          # a weight
      safety: {weight: 2.0, gate: 0.4}      # gate: below 0.4 the total is capped at 0.0
      privacy: {weight: 1.0, gate: {threshold: 0.5, cap: -1.0}}
      similarity: {weight: 0.5, options: {}}  # options: keyword arguments of the reward factory

Unknown keys are errors that name the key, where it sits (and the file) and the closest allowed key.
The ablation helpers take a spec and return new canonical specs (the input is never modified).
"""

from __future__ import annotations

import copy
import itertools
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from mmrl.config import check_keys, read_yaml, suggest
from mmrl.errors import ConfigError
from rewards.cache import CachedReward, RewardCache
from rewards.compose import MODES, Component, Composite, Gate, preflight
from rewards.registry import get_reward, registered

__all__ = [
    "SPEC_KEYS",
    "REWARD_KEYS",
    "GATE_KEYS",
    "VARIANT_MODES",
    "parse_spec",
    "load_spec",
    "build_composite",
    "leave_one_out",
    "only",
    "with_weights",
    "variants",
]

SPEC_KEYS: tuple[str, ...] = ("mode", "group_size", "on_missing", "log_zero_weight", "max_failed_batches", "cache", "judge", "rewards")
REWARD_KEYS: tuple[str, ...] = ("weight", "gate", "options")
GATE_KEYS: tuple[str, ...] = ("threshold", "cap")
VARIANT_MODES: tuple[str, ...] = ("leave-one-out", "only-one", "sweep")
_DEFAULTS = {
    "mode": "weighted",
    "group_size": None,
    "on_missing": "nan",
    "log_zero_weight": False,
    "max_failed_batches": 3,
    "cache": None,
    "judge": None,
}


def _where(path: str, source: str | None) -> str:
    return f"{path} of {source}" if source else path


def _number(value: object, path: str, source: str | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{_where(path, source)} must be a finite number, got {value!r}")
    return float(value)


def _choice(value: object, choices: Sequence[str], path: str, source: str | None) -> str:
    if value not in choices:
        raise ConfigError(f"{_where(path, source)} must be one of {list(choices)}, got {value!r}{suggest(value, choices)}")
    return value


def _gate(value: object, path: str, source: str | None) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        return {"threshold": _number(value, path, source), "cap": 0.0}
    check_keys(value, GATE_KEYS, _where(path, source))
    if "threshold" not in value:
        raise ConfigError(f"{_where(path, source)} needs a 'threshold' (the score below which the total is capped)")
    threshold = _number(value["threshold"], f"{path}.threshold", source)
    return {"threshold": threshold, "cap": _number(value.get("cap", 0.0), f"{path}.cap", source)}


def _reward_entry(name: str, value: object, source: str | None) -> dict:
    path = f"rewards.{name}"
    if not isinstance(value, Mapping):
        return {"weight": _number(value, path, source), "gate": None, "options": {}}
    check_keys(value, REWARD_KEYS, _where(path, source))
    options = value.get("options") or {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"{_where(path + '.options', source)} must be a mapping of factory options, got {options!r}")
    return {
        "weight": _number(value.get("weight", 1.0), f"{path}.weight", source),
        "gate": _gate(value.get("gate"), f"{path}.gate", source),
        "options": dict(options),
    }


def parse_spec(spec: Mapping, *, source: str | os.PathLike | None = None) -> dict:
    """Validate ``spec`` and return its canonical form (every key present, every reward a full entry).

    Reward names are checked against the registry (with a "did you mean"); ``source`` names the file in errors.
    """
    source = None if source is None else str(source)
    if not isinstance(spec, Mapping):
        raise ConfigError(f"a reward spec must be a mapping, got {type(spec).__name__}" + (f" in {source}" if source else ""))
    check_keys(spec, SPEC_KEYS, _where("the reward spec", source))
    rewards = spec.get("rewards")
    if not isinstance(rewards, Mapping) or not rewards:
        raise ConfigError(f"{_where('rewards', source)} must map reward names to weights, got {rewards!r}")
    known = registered()
    for name in rewards:
        if name not in known:
            raise ConfigError(
                f"unknown reward {name!r} in {_where('rewards', source)}{suggest(name, known)} (registered: {', '.join(known)})"
            )
    out = {**_DEFAULTS, **{k: v for k, v in spec.items() if k != "rewards"}}
    out["mode"] = _choice(out["mode"], MODES, "mode", source)
    out["on_missing"] = _choice(out["on_missing"], ("nan", "skip"), "on_missing", source)
    if not isinstance(out["log_zero_weight"], bool):
        raise ConfigError(f"{_where('log_zero_weight', source)} must be true or false, got {out['log_zero_weight']!r}")
    if out["group_size"] is not None and (isinstance(out["group_size"], bool) or not isinstance(out["group_size"], int)):
        raise ConfigError(f"{_where('group_size', source)} must be an integer (GRPO's num_generations) or null, got {out['group_size']!r}")
    if out["judge"] is not None and not isinstance(out["judge"], Mapping):
        raise ConfigError(f"{_where('judge', source)} must be a mapping of Judge settings, got {out['judge']!r}")
    out["judge"] = None if out["judge"] is None else dict(out["judge"])
    if out["cache"] is not None:
        out["cache"] = str(out["cache"])
    out["rewards"] = {str(name): _reward_entry(str(name), value, source) for name, value in rewards.items()}
    for name, entry in out["rewards"].items():
        low, high = known[name].score_range
        if entry["gate"] is not None and not low < entry["gate"]["threshold"] < high:
            raise ConfigError(f"{_where(f'rewards.{name}.gate', source)}: threshold {entry['gate']['threshold']:g} is outside the open range "
                              f"({low:g}, {high:g}) of {name}'s scores: at or below {low:g} it never fires, at or above {high:g} it caps "
                              "(almost) every total")  # fmt: skip
    failed = out["max_failed_batches"]
    if isinstance(failed, bool) or not isinstance(failed, int) or failed < 0:
        raise ConfigError(f"{_where('max_failed_batches', source)} must be an integer >= 0 (0: never stop), got {failed!r}")
    if not any(entry["weight"] != 0 for entry in out["rewards"].values()):
        raise ConfigError(f"every weight in {_where('rewards', source)} is 0: give at least one reward a nonzero weight")
    return out


def load_spec(path: str | os.PathLike) -> dict:
    """Read and validate a YAML spec file (errors name the file)."""
    return parse_spec(read_yaml(path, "reward spec"), source=Path(path))


def build_composite(spec: Mapping | str | os.PathLike) -> Composite:
    """A Composite from a spec mapping or a YAML file path; weight-0 rewards not logged are not even built.

    Every component is built and run once on a canned reply (:func:`~rewards.compose.preflight`), so a
    misconfigured one (a missing model, a bad option) raises its ConfigError here, before any training.

    With ``judge`` settings, every ``judge_*`` reward gets the same Judge (``judge=`` option), which
    scores all their criteria in one call per reply; without them, a ``judge_*`` reward takes its
    JudgeConfig fields from its own ``options``.
    """
    source = spec if isinstance(spec, (str, os.PathLike)) else None
    spec = load_spec(spec) if source is not None else parse_spec(spec)
    entries = {
        name: entry
        for name, entry in spec["rewards"].items()
        if entry["weight"] != 0 or entry["gate"] is not None or spec["log_zero_weight"]
    }
    cache = RewardCache(spec["cache"]) if spec["cache"] else None
    judge = _judge(spec["judge"], [name for name in entries if name.startswith("judge_")])
    components = []
    for name, entry in entries.items():
        options = dict(entry["options"])
        if judge is not None and name.startswith("judge_"):
            options.setdefault("judge", judge)
        try:
            reward = get_reward(name, **options)
            preflight(reward)  # before any cache: a canned reply is not a score to keep
        except ConfigError as exc:
            raise ConfigError(f"rewards.{name}{f' of {source}' if source else ''}: {exc}") from None
        gate = None if entry["gate"] is None else Gate(**entry["gate"])
        components.append(Component(CachedReward(reward, cache) if cache is not None else reward, entry["weight"], gate))
    return Composite(
        components, mode=spec["mode"], group_size=spec["group_size"], on_missing=spec["on_missing"], log_zero_weight=spec["log_zero_weight"],
        max_failed_batches=spec["max_failed_batches"],
    )  # fmt: skip


def _judge(settings: dict | None, names: list[str]):
    if settings is None or not names:
        return None
    from rewards.judge import Judge

    return Judge(**{"criteria": tuple(name.removeprefix("judge_") for name in names), **settings})


def _names(spec: dict, names: Iterable[str]) -> None:
    for name in names:
        if name not in spec["rewards"]:
            raise ConfigError(
                f"{name!r} is not a reward of this spec{suggest(name, spec['rewards'])} (its rewards: {', '.join(spec['rewards'])})"
            )


def leave_one_out(spec: Mapping) -> dict[str, dict]:
    """For each reward that shapes the total (nonzero weight or a gate): the spec without it (weight 0, no gate).

    A reward whose removal would leave no nonzero weight gets no variant.
    """
    spec = parse_spec(spec)
    out = {}
    for name, entry in spec["rewards"].items():
        if entry["weight"] == 0 and entry["gate"] is None:
            continue
        variant = copy.deepcopy(spec)
        variant["rewards"][name].update(weight=0.0, gate=None)
        if any(e["weight"] != 0 for e in variant["rewards"].values()):
            out[name] = variant
    return out


def only(spec: Mapping, name: str) -> dict:
    """The spec optimising ``name`` alone: its weight (1.0 if it was 0) and gate kept, every other weight 0, no other gate."""
    spec = parse_spec(spec)
    _names(spec, [name])
    variant = copy.deepcopy(spec)
    for other, entry in variant["rewards"].items():
        if other == name:
            entry["weight"] = entry["weight"] or 1.0
        else:
            entry.update(weight=0.0, gate=None)
    return variant


def with_weights(spec: Mapping, **weights: float) -> dict:
    """The spec with the weights of the named rewards replaced, e.g. ``with_weights(spec, empathy=2.0, privacy=0)``."""
    spec = parse_spec(spec)
    _names(spec, weights)
    variant = copy.deepcopy(spec)
    for name, weight in weights.items():
        variant["rewards"][name]["weight"] = _number(weight, f"the weight of {name}", None)
    return parse_spec(variant)


def variants(spec: Mapping, mode: str = "leave-one-out", grid: Mapping[str, Sequence[float]] | None = None) -> dict[str, dict]:
    """Named ablation variants of ``spec``.

    - ``"leave-one-out"``: ``"full"`` plus ``"without_<name>"`` per reward (see :func:`leave_one_out`).
    - ``"only-one"``: ``"full"`` plus ``"only_<name>"`` per reward with a nonzero weight (see :func:`only`).
    - ``"sweep"``: one spec per point of ``grid`` (``{name: [weights]}``), named ``"a=0.5,b=2"``;
      points where every weight would be 0 are left out.
    """
    _choice(mode, VARIANT_MODES, "variants mode", None)
    spec = parse_spec(spec)
    if (grid is not None) != (mode == "sweep"):
        raise ConfigError(f"grid is required for mode='sweep' and only for it; got mode={mode!r} with grid={grid!r}")
    if mode == "leave-one-out":
        return {"full": spec, **{f"without_{name}": s for name, s in leave_one_out(spec).items()}}
    if mode == "only-one":
        return {"full": spec, **{f"only_{name}": only(spec, name) for name, e in spec["rewards"].items() if e["weight"] != 0}}
    _names(spec, grid)
    if not grid or any(not values for values in grid.values()):
        raise ConfigError(f"a sweep grid maps each reward to a non-empty list of weights, got {grid!r}")
    out = {}
    for point in itertools.product(*grid.values()):
        weights = dict(zip(grid, point))
        if not any(w != 0 for w in {**{n: e["weight"] for n, e in spec["rewards"].items()}, **weights}.values()):
            continue
        out[",".join(f"{name}={weight:g}" for name, weight in weights.items())] = with_weights(spec, **weights)
    return out
