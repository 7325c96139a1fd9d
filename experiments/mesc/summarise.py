"""Summarise the MESC recipe's evaluations into committed results (issue 14): no MESC text, aggregates only.

Reads ``runs/mesc/eval/<name>/report.json`` and ``samples.jsonl`` (``mmrl eval`` outputs on the same 200 seeded
test turns), scores the real counsellor replies of those turns as a reference row, and writes
``docs/results/mesc_smollm2/comparison.{md,csv,png}`` (``mmrl.eval.report.write_comparison``) and
``docs/results/mesc_smollm2.md``: the table beside the paper's published rows, the trust-mean difference of each
GRPO policy over SFT with a paired bootstrap 95% interval over contexts, and the collapse checks of the issue. A
report written before ``mmrl eval`` had BERTScore gets it from its ``samples.jsonl`` (the same
``mmrl.eval.metrics.bertscore_f1``). The hand-written part of ``mesc_smollm2.md``, from its ``## The run`` heading on,
is kept.

    python experiments/mesc/summarise.py [--data ../shared/data/mesc] [--runs runs/mesc/eval] [--names smollm2,sft,grpo_paper]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mmrl.data.io import json_lines
from mmrl.errors import DataError
from mmrl.eval import metrics
from mmrl.eval.compare import build_prompts
from mmrl.eval.report import write_comparison
from mmrl.labels import TRUST_CRITERIA
from rewards.base import Context
from rewards.registry import get_reward

#: MultiMood (AAAI-26), Tables 2 and 4, MESC test, as published (trust: GPT-4o judge, 1-10, mean of 7).
PAPER_ROWS = (
    ("Qwen2.5-7B SFT", "4.68", "13.81", "85.52", "–"),
    ("SMES", "5.13", "15.42", "86.80", "–"),
    ("MultiMood SFT", "4.58", "13.47", "85.71", "5.4"),
    ("MultiMood SFT+GRPO", "6.18", "17.86", "86.80", "6.8"),
)
_BOOTSTRAP = 5000
#: A context-free reply: if it scores near a policy, the trust measure cannot tell them apart.
GENERIC = "That sounds really hard. How do you feel about it?"


def _samples(path: Path) -> list[dict]:
    rows = []
    for _, row in json_lines(path):
        if isinstance(row, DataError):
            raise row
        rows.append(row)
    return rows


def _trust_means(samples: list[dict]) -> dict[tuple, float]:
    """Per (dialogue, turn): the mean of the seven criteria (failed generations left out)."""
    out = {}
    for s in samples:
        values = [s["trust"].get(c) for c in TRUST_CRITERIA]
        if s["generation_failure"] is None and all(v is not None for v in values):
            out[(s["dialogue_id"], s["turn_index"])] = float(np.mean(values))
    return out


def _paired_bootstrap(a: dict, b: dict, seed: int = 0) -> tuple[float, float, float, int]:
    """Mean of b - a over the contexts both scored, with a percentile bootstrap 95% interval over contexts."""
    keys = sorted(set(a) & set(b))
    diff = np.array([b[k] - a[k] for k in keys])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(_BOOTSTRAP, len(diff)))].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)), len(keys)


def _trust(contexts: list, replies: list[str]) -> dict[str, float]:
    out = {}
    for name in TRUST_CRITERIA:
        batch = get_reward(name)(contexts, replies)
        if batch.failures:
            raise RuntimeError(f"{name} failed on {len(batch.failures)} replies, e.g. {next(iter(batch.failures.values()))}")
        out[name] = float(np.mean(batch.scores))
    return out


def _baselines(data: Path, prompts_meta: dict) -> dict:
    """On the same prompts: the trust of the real counsellor replies and of one fixed generic reply, and the accuracy
    of always answering MESC train's majority client emotion and strategy."""
    from collections import Counter

    from mmrl.data import load_corpus

    prompts = build_prompts(data, split="test", max_prompts=prompts_meta["prompts"], seed=prompts_meta["seed"])
    contexts = list(prompts.contexts)
    train = [Context.from_dialogue(d, i) for d in load_corpus(data, "mesc").split("train") for i in d.target_indices()]
    majority = {task: Counter(getattr(c, f"gold_{task}") for c in train).most_common(1)[0][0] for task in ("client_emotion", "strategy")}
    accuracy = {task: float(np.mean([getattr(c, f"gold_{task}") == label for c in contexts])) for task, label in majority.items()}
    references = [c.reference for c in contexts if c.reference and c.reference.strip()]
    generic_text = metrics.text_scores([GENERIC] * len(references), references)
    generic_text["bertscore_f1"] = metrics.bertscore_f1([GENERIC] * len(references), references)
    return {"reference": _trust(contexts, [c.reference or "" for c in contexts]), "generic": _trust(contexts, [GENERIC] * len(contexts)),
            "generic_text": generic_text, "majority": majority, "majority_accuracy": accuracy}  # fmt: skip


def _bertscore(report: dict, samples: list[dict]) -> float | None:
    """The report's BERTScore F1, or (an older report) the same figure from its samples."""
    if report["text"].get("bertscore_f1") is not None:
        return report["text"]["bertscore_f1"]
    pairs = [
        (s["reply"] or s["completion"], s["reference"])
        for s in samples
        if s["generation_failure"] is None and (s["reference"] or "").strip()
    ]
    return metrics.bertscore_f1([p[0] for p in pairs], [p[1] for p in pairs])


def _top_strategy(samples: list[dict]) -> str:
    """The most frequent stated strategy and its share of the scored samples."""
    from collections import Counter

    stated = Counter(s["strategy"] for s in samples if s["generation_failure"] is None)
    label, count = stated.most_common(1)[0]
    return f"{label} {count / sum(stated.values()):.2f}"


def _fmt(value: float | None, scale: float = 1.0, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value * scale:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/mesc"))
    parser.add_argument("--runs", type=Path, default=Path("runs/mesc/eval"))
    parser.add_argument("--names", default="smollm2,sft,grpo_paper,grpo_trust,grpo_paper_kl")
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    args = parser.parse_args()

    names = [n for n in args.names.split(",") if (args.runs / n / "report.json").is_file()]
    reports = {n: json.loads((args.runs / n / "report.json").read_text(encoding="utf-8")) for n in names}
    samples = {n: _samples(args.runs / n / "samples.jsonl") for n in names}
    for name, report in reports.items():
        report["policy"] = name
        report["text"]["bertscore_f1"] = _bertscore(report, samples[name])
    write_comparison(list(reports.values()), args.out / "mesc_smollm2")
    first = next(iter(reports.values()))
    baselines = _baselines(args.data, {"prompts": first["prompts"], "seed": 0})
    reference = {"trust": baselines["reference"]}

    lines = ["# SmolLM2-135M on MESC test: untrained, SFT, SFT+GRPO (issue 14)", ""]
    lines += [f"{first['prompts']} MESC test therapist turns (seeded subset, seed 0, the same for every row), greedy decoding, "
              f"at most {first['meta']['max_new_tokens']} new tokens; trust = mean of mmrl's seven local criteria (0-1). "
              "Written by `python experiments/mesc/summarise.py` from `mmrl eval` outputs; per-policy tables in "
              "`mesc_smollm2/comparison.md`.", ""]  # fmt: skip
    lines += ["| row | parse rate | client emotion acc / wF1 | strategy acc / wF1 | BLEU-2 (×100) | ROUGE-L (×100) | METEOR (×100) | "
              "BERTScore F1 (×100, MiniLM) | emb. sim. | trust mean |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in reports.items():
        ce, st = r["components"]["client_emotion"], r["components"]["strategy"]
        trust = np.mean([r["trust"][c]["mean"] for c in TRUST_CRITERIA])
        lines.append(f"| {name} | {_fmt(r['parse']['rate'])} | {_fmt(ce['accuracy'])} / {_fmt(ce['weighted_f1'])} | {_fmt(st['accuracy'])} / "
                     f"{_fmt(st['weighted_f1'])} | {_fmt(r['text']['bleu2'], 100, 2)} | {_fmt(r['text']['rougeL'], 100, 2)} | "
                     f"{_fmt(r['text']['meteor'], 100, 2)} | {_fmt(r['text']['bertscore_f1'], 100, 2)} | {_fmt(r['text']['embedding_similarity'])} | "
                     f"{trust:.3f} |")  # fmt: skip
    acc = baselines["majority_accuracy"]
    lines.append(
        f"| baseline: always train's majority ({baselines['majority']['client_emotion']}, {baselines['majority']['strategy']}) | – | "
        f"{acc['client_emotion']:.3f} / – | {acc['strategy']:.3f} / – | – | – | – | – | – | – |"
    )
    g = baselines["generic_text"]
    lines.append(
        f"| baseline: one fixed generic reply ({GENERIC!r}) | – | – | – | {_fmt(g['bleu2'], 100, 2)} | {_fmt(g['rougeL'], 100, 2)} | "
        f"{_fmt(g['meteor'], 100, 2)} | {_fmt(g['bertscore_f1'], 100, 2)} | – | {np.mean(list(baselines['generic'].values())):.3f} |"
    )
    lines.append(f"| real counsellor replies | – | – | – | – | – | – | – | – | {np.mean(list(reference['trust'].values())):.3f} |")
    lines += ["", "Per criterion (mean over the scored prompts):", "", "| row | " + " | ".join(TRUST_CRITERIA) + " |",
              "|---|" + "---|" * len(TRUST_CRITERIA)]  # fmt: skip
    for name, r in reports.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(r["trust"][c]["mean"]) for c in TRUST_CRITERIA) + " |")
    lines.append("| one fixed generic reply | " + " | ".join(f"{baselines['generic'][c]:.3f}" for c in TRUST_CRITERIA) + " |")
    lines.append("| real counsellor replies | " + " | ".join(f"{reference['trust'][c]:.3f}" for c in TRUST_CRITERIA) + " |")

    lines += ["", "Published MultiMood rows (AAAI-26, Tables 2 and 4; Qwen/MultiMood are 7B models, BERTScore on RoBERTa-large, "
              "trust by a GPT-4o judge on 1-10): not comparable in scale or scorer, shown for orientation.", "",
              "| row | BLEU-2 | ROUGE-L | BERTScore | trust (1-10) |", "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {row} | {b} | {r} | {bs} | {t} |" for row, b, r, bs, t in PAPER_ROWS]

    if "sft" in reports:
        sft = _trust_means(samples["sft"])
        lines += ["", "## Did RL help, or hack? (each GRPO policy against SFT)", "",
                  "| policy | trust mean − SFT's [95% CI, paired bootstrap over contexts] | BLEU-2 change | ROUGE-L change | "
                  "distinct-2 / SFT's | top-opener share | length ratio to reference | over-escalation | most stated strategy (SFT: "
                  f"{_top_strategy(samples['sft'])}) |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        base = reports["sft"]
        for name in (n for n in reports if n.startswith("grpo")):
            mean, low, high, n = _paired_bootstrap(sft, _trust_means(samples[name]))
            r, m = reports[name], reports[name]["monitors"]
            change = {k: (r["text"][k] - base["text"][k]) / base["text"][k] if base["text"][k] else None for k in ("bleu2", "rougeL")}
            lines.append(f"| {name} | {mean:+.3f} [{low:+.3f}, {high:+.3f}] (n={n}) | {_fmt(change['bleu2'], 100, 1)}% | "
                         f"{_fmt(change['rougeL'], 100, 1)}% | {_fmt(m['distinct_2'] / base['monitors']['distinct_2'] if m['distinct_2'] else None, digits=2)} | "
                         f"{_fmt(m['top_opener_share'], digits=2)} | {_fmt(m['length_ratio'], digits=2)} | {_fmt(m.get('over_escalation_rate'), digits=3)} | "
                         f"{_top_strategy(samples[name])} |")  # fmt: skip
        lines += ["", "Targets (issue 14): trust above SFT with the interval above 0; BLEU-2 and ROUGE-L down at most 10%; "
                  "distinct-2 ≥ 0.8× SFT's; top-opener share ≤ 0.3; length ratio ≤ 2; over-escalation ≤ 0.05."]  # fmt: skip
    path = args.out / "mesc_smollm2.md"
    notes = path.read_text(encoding="utf-8").partition("\n## The run")[2] if path.is_file() else ""
    path.write_text("\n".join(lines) + "\n" + (f"\n## The run{notes}" if notes else ""), encoding="utf-8")
    print(f"wrote {args.out / 'mesc_smollm2.md'} and {args.out / 'mesc_smollm2'}/comparison.*")


if __name__ == "__main__":
    main()
