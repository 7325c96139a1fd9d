"""Criterion ablations: one GRPO/RLOO run per variant of a reward spec and seed, as Ray Tune trials.

Reads in the order it runs: the spec's variants (``rewards.spec.variants``: leave-one-out, only-one
or a weight sweep) x seeds -> one Ray Tune trial each (``mmrl.train.rl.run_rl`` on the same train
prompts for a given seed) -> every trial's policy evaluated on the same held-out prompts
(``mmrl.eval``: all seven trust criteria whatever the variant optimised, component accuracies,
response metrics, hacking monitors; the LLM judge when configured) -> ``results.csv`` (one row per
trial), ``results.md`` (mean ± std over seeds and the difference from the full spec), ``effects.png``
(per-criterion effect of each ablation) and ``pareto.png`` (two chosen criteria).

    config = AblationConfig.from_yaml("experiments/ablate_tiny.yaml")
    summary = run_ablation(config, "ablation-out")
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmrl.config import YamlConfig, read_yaml
from mmrl.errors import ConfigError, MmrlError
from mmrl.eval.report import pyplot
from mmrl.labels import TRUST_CRITERIA

__all__ = ["AblationConfig", "run_ablation", "summarise"]

#: Figures of each trial that ``results.md`` reports besides every ``trust/<criterion>/mean`` (``results.csv`` has all).
HEADLINE = (
    "parse/rate",
    "components/strategy/weighted_f1",
    "text/rougeL",
    "text/embedding_similarity",
    "monitors/distinct_2",
    "monitors/top_opener_share",
    "monitors/length_ratio",
    "monitors/copy_reference_rougeL",
    "monitors/copy_client_rougeL",
    "monitors/over_escalation_rate",
)


@dataclass
class AblationConfig(YamlConfig):
    """An ablation study: a base RL run, its full reward spec, how to vary it, and how to evaluate.

    Parameters:
        run (`dict`): fields of ``RLRunConfig`` shared by every trial (policy, data, steps, ...), or in
            ``run_config`` the path of such a YAML file; ``reward_spec``, ``seed`` and ``output_dir``
            are set per trial.
        run_config (`str` or `None`, defaults to `None`): a ``mmrl train`` YAML read first; ``run`` overrides it.
        reward_spec (`dict` or `str`): the full reward spec (inline or a YAML path) the variants derive from.
        mode (`str`, defaults to `"leave-one-out"`): `leave-one-out`, `only-one` or `sweep`.
        grid (`dict` or `None`, defaults to `None`): `sweep` only: ``{reward: [weights]}``.
        seeds (`list[int]`, defaults to `[0]`): every variant trains once per seed (matched across variants).
        eval_split (`str`, defaults to `"val"`): held-out split every trial is evaluated on.
        eval_max_prompts (`int`, defaults to `32`): held-out prompts (the same random subset for every trial).
        max_new_tokens (`int`, defaults to `96`): generation length at evaluation.
        judge (`str` or `None`, defaults to `None`): an LLM judge (``openai:MODEL@URL`` or a local model)
            scoring every criterion besides the local scorers.
        pareto (`list[str]`, defaults to `["empathy", "safety"]`): the two criteria of the Pareto plot.
        cpus_per_trial (`float`, defaults to `1.0`) and gpus_per_trial (`float`, defaults to `0.0`): Ray resources of a trial.
        max_concurrent_trials (`int` or `None`, defaults to `None`): None lets Ray fill the cluster.
    """

    run: dict[str, Any] = field(default_factory=dict)
    run_config: str | None = None
    reward_spec: dict[str, Any] | str | None = None
    mode: str = "leave-one-out"
    grid: dict[str, Any] | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    eval_split: str = "val"
    eval_max_prompts: int = 32
    max_new_tokens: int = 96
    judge: str | None = None
    pareto: list[str] = field(default_factory=lambda: ["empathy", "safety"])
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent_trials: int | None = None

    def __post_init__(self) -> None:
        if self.reward_spec is None:
            raise ConfigError("reward_spec is required: the full spec whose criteria are ablated")
        for key in ("reward_spec", "seed", "output_dir"):
            if key in self.run:
                raise ConfigError(f"run.{key} is set per trial by the ablation; remove it from run")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be a non-empty list of distinct seeds, got {self.seeds}")
        if self.eval_split not in ("val", "test"):
            raise ConfigError(f"eval_split must be 'val' or 'test' (held out from training), got {self.eval_split!r}")
        if len(self.pareto) != 2 or any(c not in TRUST_CRITERIA for c in self.pareto):
            raise ConfigError(f"pareto must name two of {list(TRUST_CRITERIA)}, got {self.pareto}")
        if self.eval_max_prompts < 1 or self.max_new_tokens < 1 or self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise ConfigError("eval_max_prompts and max_new_tokens must be >= 1, cpus_per_trial > 0 and gpus_per_trial >= 0")

    def run_fields(self) -> dict[str, Any]:
        """The shared RLRunConfig fields: ``run_config``'s file, then ``run``."""
        base = read_yaml(self.run_config, "run config") if self.run_config else {}
        if not isinstance(base, Mapping):
            raise ConfigError(f"{self.run_config}: a run config must be a mapping of RLRunConfig fields")
        fields = {**{k: v for k, v in base.items() if k not in ("reward_spec", "seed", "output_dir")}, **self.run}
        for key in ("policy", "data", "predictor"):  # trials run in other directories: pin local paths
            if isinstance(fields.get(key), str) and Path(fields[key]).exists():
                fields[key] = str(Path(fields[key]).resolve())
        return fields

    def variant_specs(self) -> dict[str, dict]:
        """``{variant name: reward spec}``, ``"full"`` first (see ``rewards.spec.variants``)."""
        from rewards.spec import load_spec, parse_spec, variants

        spec = load_spec(self.reward_spec) if isinstance(self.reward_spec, str) else parse_spec(self.reward_spec)
        grid = {name: [float(w) for w in weights] for name, weights in self.grid.items()} if self.grid else None
        return variants(spec, self.mode, grid)


def _trial(
    params: Mapping[str, Any], *, specs: Mapping[str, dict], run: Mapping[str, Any], config: Mapping[str, Any], out: str
) -> dict[str, Any]:
    """One Ray Tune trial: train the variant with the seed, evaluate the policy on the held-out prompts."""
    import torch

    from mmrl.eval.compare import build_prompts, evaluate, make_judge
    from mmrl.eval.policies import load_eval_policy
    from mmrl.eval.report import flatten
    from mmrl.train.config import RLRunConfig
    from mmrl.train.rl import run_rl

    torch.set_num_threads(max(1, int(config["cpus_per_trial"])))
    variant, seed = params["variant"], int(params["seed"])
    trial_dir = Path(out) / "trials" / f"{variant}-seed{seed}"
    rl_config = RLRunConfig.from_dict({**run, "reward_spec": specs[variant], "seed": seed, "output_dir": str(trial_dir)})
    result = run_rl(rl_config)
    prompts = build_prompts(
        rl_config.data, format=rl_config.data_format, split=config["eval_split"], predictor=rl_config.predictor,
        max_prompts=config["eval_max_prompts"], seed=0,
    )  # fmt: skip  # seed 0: every trial sees the same held-out prompts
    judge = make_judge(config["judge"]) if config["judge"] else None
    report, samples = evaluate(
        load_eval_policy(str(result.model_dir), seed=seed), prompts, max_new_tokens=config["max_new_tokens"], judge=judge
    )
    (trial_dir / "eval.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    row = {
        **flatten(report),
        "variant": variant,
        "seed": seed,
        "train/steps": result.global_step,
        "train/last_reward": result.metrics.get("reward"),
    }
    (trial_dir / "row.json").write_text(json.dumps(row, indent=2) + "\n", encoding="utf-8")
    return row


def run_ablation(config: AblationConfig, out: str | os.PathLike, *, address: str | None = None) -> dict[str, Any]:
    """Run every (variant, seed) trial through Ray Tune and write the results into ``out``; returns the summary."""
    import ray
    from ray import tune

    from mmrl.train.config import RLRunConfig
    from mmrl.train.distributed import connect_ray

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    specs = config.variant_specs()
    run = config.run_fields()
    RLRunConfig.from_dict({**run, "reward_spec": next(iter(specs.values())), "output_dir": str(out)})  # fail now, not in a trial
    (out / "variants.json").write_text(json.dumps(specs, indent=2) + "\n", encoding="utf-8")

    started = connect_ray(address, log_to_driver=False)
    try:
        settings = {k: getattr(config, k) for k in ("eval_split", "eval_max_prompts", "max_new_tokens", "judge", "cpus_per_trial")}
        trainable = tune.with_resources(
            tune.with_parameters(_trial, specs=specs, run=run, config=settings, out=str(out)),
            {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial},
        )
        tuner = tune.Tuner(
            trainable,
            param_space={"variant": tune.grid_search(list(specs)), "seed": tune.grid_search(list(config.seeds))},
            tune_config=tune.TuneConfig(max_concurrent_trials=config.max_concurrent_trials),
            run_config=tune.RunConfig(name="ablation", storage_path=str(out / "tune"), verbose=1),
        )
        grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    failed = [r for r in grid if r.error is not None]
    if failed:
        raise MmrlError(f"{len(failed)} of {len(grid)} ablation trials failed; first: {failed[0].error!r} (logs under {out / 'tune'})")
    rows = [
        json.loads((out / "trials" / f"{variant}-seed{seed}" / "row.json").read_text(encoding="utf-8"))
        for variant in specs
        for seed in config.seeds
    ]
    return write_results(rows, config, out)


def summarise(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{variant: {column: {"mean", "std", "delta"}}}`` over seeds; ``delta`` is the mean minus the full spec's mean."""
    by_variant: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_variant.setdefault(row["variant"], []).append(row)
    summary: dict[str, dict[str, dict[str, float | None]]] = {}
    for variant, group in by_variant.items():
        summary[variant] = {}
        for column in columns:
            values = np.array([np.nan if r.get(column) is None else float(r[column]) for r in group])
            finite = values[np.isfinite(values)]
            summary[variant][column] = {
                "mean": float(finite.mean()) if finite.size else None,
                "std": float(finite.std(ddof=1)) if finite.size > 1 else (0.0 if finite.size else None),
            }
    full = summary.get("full")
    for variant, figures in summary.items():
        for column, figure in figures.items():
            base = None if full is None else full[column]["mean"]
            figure["delta"] = None if base is None or figure["mean"] is None else figure["mean"] - base
    return summary


def write_results(rows: Sequence[Mapping[str, Any]], config: AblationConfig, out: Path) -> dict[str, Any]:
    """``results.csv``, ``results.md``, ``summary.json``, ``effects.png`` and ``pareto.png`` in ``out``."""
    import csv

    criteria = [f"trust/{c}/mean" for c in TRUST_CRITERIA]
    columns = criteria + [c for c in HEADLINE if any(c in r for r in rows)]
    fieldnames = ["variant", "seed"] + sorted({k for r in rows for k in r} - {"variant", "seed"})
    with (out / "results.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    summary = summarise(rows, columns)
    (out / "summary.json").write_text(
        json.dumps({"mode": config.mode, "seeds": config.seeds, "variants": summary}, indent=2) + "\n", encoding="utf-8"
    )
    (out / "results.md").write_text(_markdown(summary, criteria, columns, config), encoding="utf-8")
    _effects_plot(summary, criteria, out / "effects.png")
    _pareto_plot(summary, [f"trust/{c}/mean" for c in config.pareto], out / "pareto.png")
    return {"variants": summary, "trials": len(rows), "out": str(out)}


def _cell(figure: Mapping[str, float | None], with_delta: bool) -> str:
    if figure["mean"] is None:
        return "n/a"
    text = f"{figure['mean']:.3f} ± {figure['std']:.3f}"
    if with_delta and figure["delta"] is not None:
        text += f" ({figure['delta']:+.3f})"
    return text


def _short(column: str) -> str:
    return column.removeprefix("trust/").removesuffix("/mean").replace("components/", "").replace("monitors/", "monitor: ")


def _markdown(summary: Mapping[str, Mapping[str, Mapping]], criteria: Sequence[str], columns: Sequence[str], config: AblationConfig) -> str:
    seeds = len(config.seeds)
    lines = [
        f"# Ablation ({config.mode}, {seeds} seed{'s' if seeds > 1 else ''})",
        "",
        f"Mean ± std over seeds on {config.eval_max_prompts} held-out {config.eval_split} prompts; in brackets the difference from the full spec.",
        "",
    ]
    for title, part in (
        ("Trust criteria (local scorers)", criteria),
        ("Components, text and hacking monitors", [c for c in columns if c not in criteria]),
    ):
        if not part:
            continue
        lines += [f"## {title}", "", "| variant | " + " | ".join(_short(c) for c in part) + " |", "|---" * (len(part) + 1) + "|"]
        for variant, figures in summary.items():
            lines.append(f"| {variant} | " + " | ".join(_cell(figures[c], variant != "full") for c in part) + " |")
        lines.append("")
    return "\n".join(lines)


def _effects_plot(summary: Mapping[str, Mapping[str, Mapping]], criteria: Sequence[str], path: Path) -> None:
    """A heatmap: each ablation's change of each criterion's mean score versus the full spec."""
    plt = pyplot()
    variants = [v for v in summary if v != "full"] or list(summary)
    key = "delta" if "full" in summary else "mean"
    values = np.array([[summary[v][c][key] if summary[v][c][key] is not None else np.nan for c in criteria] for v in variants], dtype=float)
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    figure, axis = plt.subplots(figsize=(1.2 * len(criteria) + 2.5, 0.5 * len(variants) + 1.8))
    image = axis.imshow(
        values,
        cmap="RdBu" if key == "delta" else "viridis",
        vmin=-limit if key == "delta" else None,
        vmax=limit if key == "delta" else None,
        aspect="auto",
    )
    axis.set_xticks(range(len(criteria)), [_short(c) for c in criteria], rotation=30, ha="right")
    axis.set_yticks(range(len(variants)), variants)
    for (i, j), value in np.ndenumerate(values):
        if math.isfinite(value):
            axis.text(j, i, f"{value:+.3f}" if key == "delta" else f"{value:.3f}", ha="center", va="center", fontsize=8)
    figure.colorbar(image, label="change vs full spec" if key == "delta" else "mean score")
    axis.set_title("Per-criterion effect of each ablation (held-out mean score)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _pareto_plot(summary: Mapping[str, Mapping[str, Mapping]], pair: Sequence[str], path: Path) -> None:
    """Each variant at (criterion A, criterion B) with ±std bars; the Pareto-optimal variants joined."""
    plt = pyplot()
    x_col, y_col = pair
    points = [(v, f[x_col], f[y_col]) for v, f in summary.items() if f[x_col]["mean"] is not None and f[y_col]["mean"] is not None]
    figure, axis = plt.subplots(figsize=(6, 4.5))
    for variant, x, y in points:
        axis.errorbar(x["mean"], y["mean"], xerr=x["std"], yerr=y["std"], fmt="o", capsize=3, color="black" if variant == "full" else None)
        axis.annotate(variant, (x["mean"], y["mean"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front = [
        p
        for p in points
        if not any(
            q[1]["mean"] >= p[1]["mean"]
            and q[2]["mean"] >= p[2]["mean"]
            and q is not p
            and (q[1]["mean"], q[2]["mean"]) != (p[1]["mean"], p[2]["mean"])
            for q in points
        )
    ]
    front.sort(key=lambda p: p[1]["mean"])
    if len(front) > 1:
        axis.plot([p[1]["mean"] for p in front], [p[2]["mean"] for p in front], "--", color="grey", label="Pareto front")
        axis.legend(fontsize=8)
    axis.set_xlabel(_short(x_col))
    axis.set_ylabel(_short(y_col))
    axis.set_title(f"{_short(x_col)} vs {_short(y_col)} per variant")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
