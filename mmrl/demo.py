"""``mmrl demo``: the whole loop, small, on the embedded corpus; every stage is the real code path.

synthesise the multimodal corpus -> train the emotion predictor (audio + video + text) and score it
against the baselines on the test split -> SFT the policy with the predictor's outputs in its prompts
-> a few GRPO steps on the composed rewards -> ``report.json``, ``report.md`` and ``rewards.png``
(per-component reward over the GRPO steps) in the output directory. The SFT and the GRPO policy are
both scored on the same val prompts: ``parse_rate`` per stage and three example completions each.

    out = run_demo(DemoConfig(sft_steps=10, grpo_steps=4), "demo-out")
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from mmrl.config import YamlConfig
from mmrl.data import SPLITS
from mmrl.errors import ConfigError

__all__ = ["DEMO_REWARDS", "DemoConfig", "run_demo"]

#: The demo's reward spec: the output format and component match, similarity to the reference
#: reply, and three local trust criteria with safety gating the total.
DEMO_REWARDS: dict[str, Any] = {
    "mode": "weighted",
    "on_missing": "skip",
    "rewards": {
        "format": 1.0,
        "component_match": 1.0,
        "similarity": 0.5,
        "empathy": 0.25,
        "privacy": 0.25,
        "safety": {"weight": 0.25, "gate": {"threshold": 0.2, "cap": 0.0}},
    },
}


@dataclass
class DemoConfig(YamlConfig):
    """Sizes of the demo's stages (the defaults finish in a few minutes on 2 CPU cores).

    Parameters:
        dialogues (`int`, defaults to `40`): size of the synthetic corpus.
        seed (`int`, defaults to `0`): the run's one seed (corpus, predictor, SFT, GRPO).
        policy (`str`, defaults to `"tiny"`): the policy to fine-tune: `tiny` (built offline, seconds per
            step), `smollm2` (the packaged SmolLM2-135M-Instruct: minutes per step on a CPU), a path or hub id.
        predictor_epochs (`int`, defaults to `12`): most predictor epochs (early stopping on val).
        max_history_tokens (`int`, defaults to `64`): prompt history budget in policy tokens (whole turns, newest kept).
        sft_steps (`int`, defaults to `300`): SFT optimizer steps (the tiny model writes the format reliably after ~200).
        sft_learning_rate (`float`, defaults to `5e-3`): SFT peak learning rate (20 warmup steps, cosine decay).
        grpo_steps (`int`, defaults to `16`): GRPO optimizer steps.
        grpo_learning_rate (`float`, defaults to `3e-4`): GRPO learning rate (at 1e-3 and above the tiny policy's
            replies shrink to a word or two within 16 steps, while the format holds).
        rewards (`dict`, defaults to `DEMO_REWARDS`): the reward spec GRPO optimises.
    """

    dialogues: int = 40
    seed: int = 0
    policy: str = "tiny"
    predictor_epochs: int = 12
    max_history_tokens: int = 64
    sft_steps: int = 300
    sft_learning_rate: float = 5e-3
    grpo_steps: int = 16
    grpo_learning_rate: float = 3e-4
    rewards: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEMO_REWARDS))

    def __post_init__(self) -> None:
        for name in ("dialogues", "predictor_epochs", "sft_steps", "grpo_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_history_tokens < 0:
            raise ConfigError(f"max_history_tokens must be >= 0, got {self.max_history_tokens}")
        if self.dialogues < 6:
            raise ConfigError(f"dialogues must be >= 6 (the corpus needs train, val and test dialogues), got {self.dialogues}")


class _StepLog(TrainerCallback):
    """Keeps every record the trainer logs (loss, per-component reward means) with its step."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            self.records.append({"step": state.global_step, **logs})


def run_demo(config: DemoConfig | None = None, out: str | Path | None = None) -> Path:
    """Run the demo into ``out`` (a new ``mmrl-demo-*`` directory when None) and return that directory."""
    from mmrl.data import load_corpus
    from mmrl.data.stats import corpus_stats
    from mmrl.data.synth import generate
    from mmrl.policy.models import load_policy
    from mmrl.predictor.config import PredictorConfig
    from mmrl.predictor.evaluate import evaluation_report, items_of
    from mmrl.predictor.train import train_predictor
    from mmrl.train.config import RLRunConfig, SFTRunConfig
    from mmrl.train.rl import evaluate_val, run_rl
    from mmrl.train.runs import load_predictor
    from mmrl.train.sft import run_sft
    from rewards.spec import build_composite

    config = config or DemoConfig()
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="mmrl-demo-", dir="."))
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def lap(stage: str) -> None:
        timings[stage] = round(time.perf_counter() - started - sum(timings.values()), 1)

    print(f"[1/5] synthesising {config.dialogues} multimodal dialogues (seed {config.seed})", flush=True)
    corpus_dir = generate(out / "corpus", n_dialogues=config.dialogues, seed=config.seed)
    corpus = load_corpus(corpus_dir, "synth", check_media=True)
    lap("corpus")

    print("[2/5] training the emotion predictor (audio + video + text + history)", flush=True)
    split = {name: corpus.split(name) for name in SPLITS}
    predictor_config = PredictorConfig(epochs=config.predictor_epochs, patience=4, seed=config.seed)
    predictor, predictor_summary = train_predictor(predictor_config, split["train"], split["val"], out / "predictor")
    predictor_eval = evaluation_report(predictor, items_of(split["train"]), items_of(split["test"]), items_of(split["val"]))
    lap("predictor")

    print(f"[3/5] SFT of the {config.policy!r} policy, the predictor's outputs in its prompts", flush=True)
    shared = {
        "policy": config.policy,
        "data": str(corpus_dir),
        "data_format": "synth",
        "predictor": str(out / "predictor"),
        "seed": config.seed,
    }
    sft_log = _StepLog()
    sft = run_sft(
        SFTRunConfig(
            **shared,
            learning_rate=config.sft_learning_rate,
            max_steps=config.sft_steps,
            per_device_train_batch_size=4,
            max_history_tokens=config.max_history_tokens,
            save_steps=config.sft_steps,
            output_dir=str(out / "sft"),
            report_to=["tensorboard"],
            trl_args={"lr_scheduler_type": "cosine", "warmup_steps": min(20, config.sft_steps // 10)},
        ),
        callbacks=[sft_log],
    )
    lap("sft")

    print(f"[4/5] {config.grpo_steps} GRPO steps on the composed rewards: {', '.join(config.rewards['rewards'])}", flush=True)
    grpo_config = RLRunConfig(
        **{**shared, "policy": str(sft.model_dir)},
        reward_spec=config.rewards,
        learning_rate=config.grpo_learning_rate,
        max_steps=config.grpo_steps,
        num_generations=4,
        per_device_train_batch_size=16,
        max_completion_length=32,
        max_history_tokens=config.max_history_tokens,
        save_steps=config.grpo_steps,
        eval_max_prompts=16,
        output_dir=str(out / "grpo"),
        report_to=["tensorboard"],
        trl_args={"lr_scheduler_type": "constant"},
    )
    # the SFT policy on the val prompts GRPO's policy is scored on afterwards: the "before" column
    sft_val = evaluate_val(
        grpo_config, *load_policy(str(sft.model_dir)), build_composite(grpo_config.reward_spec_parsed()), load_predictor(grpo_config)
    )
    grpo_log = _StepLog()
    grpo = run_rl(grpo_config, callbacks=[grpo_log])
    lap("grpo")

    print("[5/5] writing the report", flush=True)
    components = list(config.rewards["rewards"])
    report = {
        "config": config.to_dict(),
        "data": corpus_stats(corpus),
        "predictor": {
            "test": predictor_eval,
            "epochs": predictor_summary.get("epochs"),
            "trained_modalities": predictor_summary.get("trained_modalities"),
            "token_reduction": predictor_summary.get("token_reduction"),
        },
        "sft": {"steps": sft.global_step, "loss": [r["loss"] for r in sft_log.records if "loss" in r], "val": sft_val},
        "grpo": {
            "steps": grpo.global_step,
            "per_step": _reward_curves(grpo_log.records, components),
            "val": grpo.evaluation,
        },
        "parse_rate": {"sft": sft_val["parse"]["rate"], "grpo": (grpo.evaluation or {}).get("parse", {}).get("rate")},
        "examples": {"before_grpo": sft_val.get("examples", []), "after_grpo": (grpo.evaluation or {}).get("examples", [])},
        "outputs": {"predictor": str(out / "predictor"), "sft_policy": str(sft.model_dir), "grpo_policy": str(grpo.model_dir)},
        "seconds": timings,
    }
    lap("report")
    report["seconds"]["total"] = round(time.perf_counter() - started, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    _plot(report["grpo"]["per_step"], out / "rewards.png")
    (out / "report.md").write_text(_markdown(report), encoding="utf-8")
    return out


def _reward_curves(records: list[dict[str, Any]], components: list[str]) -> dict[str, list[float | None]]:
    """``{"step": [...], "reward": [...], name: [...]}`` from TRL's per-step logs (``rewards/<name>/mean``)."""
    steps = [r for r in records if "reward" in r]
    curves: dict[str, list[float | None]] = {"step": [r["step"] for r in steps], "reward": [r["reward"] for r in steps]}
    for name in components:
        curves[name] = [r.get(f"rewards/{name}/mean") for r in steps]
    return curves


def _plot(curves: dict[str, list[float | None]], path: Path) -> None:
    from mmrl.eval.report import pyplot

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, values in curves.items():
        if name == "step":
            continue
        points = [(s, v) for s, v in zip(curves["step"], values) if v is not None]
        if points:
            axis.plot(*zip(*points), label=name, linewidth=2.5 if name == "reward" else 1.2, marker="o" if len(points) < 20 else None)
    axis.set_xlabel("GRPO step")
    axis.set_ylabel("mean reward over the step's completions")
    axis.set_title("Per-component rewards during GRPO")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _markdown(report: dict[str, Any]) -> str:
    data, predictor, grpo = report["data"], report["predictor"]["test"], report["grpo"]
    lines = ["# mmrl demo report", "", "## Data (synthetic multimodal corpus)", ""]
    lines += ["| split | dialogues | turns | therapist turns | clips with video | clips with audio |", "|---|---|---|---|---|---|"]
    for name, s in data["splits"].items():
        lines.append(
            f"| {name} | {s['dialogues']} | {s['turns']} | {s['therapist_turns']} | {s['rows_with_video']} | {s['rows_with_audio']} |"
        )
    lines += ["", "## Emotion predictor (test split, weighted-F1)", "", "| task | model | majority | TF-IDF + LR |", "|---|---|---|---|"]
    for task, metrics in predictor["model"].items():
        base = predictor["baselines"]
        lines.append(
            f"| {task} | {_fmt(metrics['weighted_f1'])} | {_fmt(base['majority'][task]['weighted_f1'])} | {_fmt(base['tfidf_lr'][task]['weighted_f1'])} |"
        )
    curves = grpo["per_step"]
    lines += [
        "",
        f"## GRPO ({grpo['steps']} steps): mean reward per component, first and last step",
        "",
        "| component | first | last |",
        "|---|---|---|",
    ]
    for name, values in curves.items():
        if name != "step" and values:
            lines.append(f"| {name} | {_fmt(values[0])} | {_fmt(values[-1])} |")
    before, after = report["sft"]["val"], grpo["val"] or {}
    if after.get("reward") is not None:
        lines += [
            "",
            f"## Val ({after['prompts']} prompts, greedy): SFT policy, then after GRPO",
            "",
            "| stage | reward | parse rate |",
            "|---|---|---|",
        ]
        lines += [
            f"| {stage} | {_fmt(val.get('reward'))} | {_fmt(val.get('parse', {}).get('rate'))} |"
            for stage, val in (("SFT", before), ("SFT + GRPO", after))
        ]
        for stage, key in (("SFT", "before_grpo"), ("SFT + GRPO", "after_grpo")):
            lines += ["", f"Example completions, {stage} (the first three val prompts):", ""]
            for example in report["examples"][key]:
                lines += ["```", example.strip(), "```"]
    lines += [
        "",
        "![per-component rewards](rewards.png)",
        "",
        "Stage times (s): " + ", ".join(f"{k} {v}" for k, v in report["seconds"].items()),
        "",
    ]
    return "\n".join(lines)
