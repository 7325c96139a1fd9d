"""Evaluation reports as Markdown, CSV and a matplotlib PNG (Agg backend, no display needed).

- :func:`eval_markdown`: one policy's report (``report.md``).
- :func:`flatten`: a report as one row of ``section/name`` columns (the CSV's header).
- :func:`write_comparison`: ``comparison.md`` (metrics as rows, policies as columns),
  ``comparison.csv`` (one row per policy, every figure) and ``comparison.png`` (quality and trust bars).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["comparison_markdown", "comparison_plot", "eval_markdown", "flatten", "pyplot", "write_comparison"]

_TEXT = ("bleu2", "rouge1", "rouge2", "rougeL", "meteor", "bertscore_f1", "embedding_similarity")
_TASKS = ("client_emotion", "therapist_emotion", "strategy")
_SCORES = ("accuracy", "weighted_f1", "macro_f1")


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (bool, int)):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(_fmt(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return lines + [""]


def flatten(report: Mapping[str, Any]) -> dict[str, Any]:
    """``{"policy", "prompts", "parse/ok", ..., "components/strategy/macro_f1", "text/bleu2", "trust/empathy/mean", "monitors/<name>"}``."""
    row: dict[str, Any] = {"policy": report["policy"], "split": report["split"], "prompts": report["prompts"]}
    row.update({f"parse/{k}": v for k, v in report["parse"].items()})
    for task, scores in report["components"].items():
        row.update({f"components/{task}/{k}": v for k, v in scores.items()})
    row.update({f"text/{k}": v for k, v in report["text"].items()})
    for criterion, summary in report["trust"].items():
        row.update({f"trust/{criterion}/{k}": v for k, v in summary.items()})
    row.update({f"monitors/{k}": v for k, v in report["monitors"].items()})
    row["meta/generation_failures"] = report["meta"].get("generation_failures")
    row["meta/meteor_matching"] = report["meta"].get("meteor_matching")
    return row


def eval_markdown(report: Mapping[str, Any]) -> str:
    """One policy's report as Markdown."""
    meta, parse = report["meta"], report["parse"]
    lines = [
        f"# Evaluation of `{report['policy']}`",
        "",
        (
            f"Data `{report['data']}`, split **{report['split']}**: {report['prompts']} prompts ({meta.get('selection', 'all')}) "
            f"of {meta.get('targets', report['prompts'])} therapist turns; {meta.get('decoding', 'greedy')} decoding, "
            f"at most {meta.get('max_new_tokens')} new tokens; predictor: {meta.get('predictor') or 'none'}."
        ),
        "",
        "## Structured output",
        "",
        (
            f"{meta.get('generation_failures', 0)} of {report['prompts']} generations failed (no answer: counted here, left out of "
            f"every figure). Of the {report.get('scored', report['prompts'])} answers, {parse['ok']} parse fully (rate "
            f"{_fmt(parse['rate'])}); {parse['failed']} do not, and count as wrong answers below."
        ),
        "",
    ]
    lines += _table(
        ["component", "accuracy", "weighted F1", "macro F1", "labelled", "unparsed"],
        [[task, *(s[k] for k in _SCORES), s["labelled"], s["unparsed"]] for task, s in report["components"].items()],
    )
    lines += ["## Reply text against the reference", ""]
    lines += _table(["metric", "value"], [[k, report["text"].get(k)] for k in _TEXT])
    lines += [
        (
            f"Over {meta.get('references')} prompts with a reference. BLEU-2: {meta.get('bleu2')}. ROUGE: {meta.get('rouge')}. "
            f"METEOR matching: **{meta.get('meteor_matching')}** ({meta.get('meteor_note')}). BERTScore: {meta.get('bertscore')}."
        ),
        "",
        "## Trust criteria",
        "",
    ]
    lines += _table(["criterion", "mean", "std", "failures"], [[c, s["mean"], s["std"], s["failures"]] for c, s in report["trust"].items()])
    lines += [f"Scorers: {meta.get('trust_scorers')}.", "", "## Reward-hacking monitors", ""]
    lines += _table(["monitor", "value"], list(report["monitors"].items()))
    if meta.get("generation_failure_examples"):
        lines += ["## Generation failures", "", *(f"- {_fmt(reason)}" for reason in meta["generation_failure_examples"]), ""]
    return "\n".join(lines)


def comparison_markdown(reports: Sequence[Mapping[str, Any]]) -> str:
    """The comparison as Markdown: one column per policy, one row per figure."""
    first = reports[0]
    names = [f"`{r['policy']}`" for r in reports]
    rows = [flatten(r) for r in reports]
    lines = [
        "# Policy comparison",
        "",
        (
            f"Data `{first['data']}`, split **{first['split']}**, the same {first['prompts']} prompts for every policy "
            f"({first['meta'].get('selection', 'all')}); greedy decoding, at most {first['meta'].get('max_new_tokens')} new tokens."
        ),
        "",
    ]
    sections = [
        ("Structured output", ["parse/rate", "parse/failed", *(f"components/{t}/{s}" for t in _TASKS for s in _SCORES)]),
        ("Reply text", [f"text/{k}" for k in _TEXT]),
        ("Trust criteria (mean; failures)", [k for k in rows[0] if k.startswith("trust/") and k.endswith(("/mean", "/failures"))]),
        ("Reward-hacking monitors", [k for k in rows[0] if k.startswith("monitors/")]),
    ]
    for title, keys in sections:
        lines += [f"## {title}", ""]
        lines += _table(["figure", *names], [[key.split("/", 1)[1], *(row.get(key) for row in rows)] for key in keys])
    lines.append(
        f"METEOR matching: {first['meta'].get('meteor_matching')} ({first['meta'].get('meteor_note')}). BERTScore: {first['meta'].get('bertscore')}."
    )
    return "\n".join(lines) + "\n"


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def comparison_plot(reports: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Grouped bars per policy: output quality (parse rate, component accuracy and macro-F1, text overlap) and trust means."""
    import numpy as np

    plt = pyplot()

    rows = [flatten(r) for r in reports]
    quality = ["parse/rate", *(f"components/{t}/{s}" for t in _TASKS for s in ("accuracy", "macro_f1")), *(f"text/{k}" for k in _TEXT)]
    trust = [k for k in rows[0] if k.startswith("trust/") and k.endswith("/mean")]
    panels = [("Output quality", quality), ("Trust criteria (mean score)", trust)]
    fig, axes = plt.subplots(2, 1, figsize=(max(8.0, 0.35 * len(quality) * len(rows) + 3), 9), constrained_layout=True)
    width = 0.8 / len(rows)
    for ax, (title, keys) in zip(axes, panels):
        x = np.arange(len(keys))
        for n, row in enumerate(rows):
            values = [np.nan if row.get(k) is None else float(row[k]) for k in keys]
            ax.bar(x + (n - (len(rows) - 1) / 2) * width, values, width, label=row["policy"])
        ax.set_xticks(
            x, [k.split("/", 1)[1].replace("/mean", "").replace("components/", "") for k in keys], rotation=35, ha="right", fontsize=8
        )
        ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper right")
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_comparison(reports: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``comparison.md``, ``comparison.csv`` and ``comparison.png`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "comparison.md", "csv": out / "comparison.csv", "png": out / "comparison.png"}
    paths["md"].write_text(comparison_markdown(reports), encoding="utf-8")
    rows = [flatten(r) for r in reports]
    header = list(dict.fromkeys(key for row in rows for key in row))
    with paths["csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows([{k: "" if row.get(k) is None else row.get(k) for k in header} for row in rows])
    comparison_plot(reports, paths["png"])
    return paths
