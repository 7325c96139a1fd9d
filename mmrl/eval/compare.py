"""Evaluate policies on the same prompts: one report per policy, and a comparison of several.

    prompts = build_prompts("data/mesc", split="test", max_prompts=200)
    report, samples = evaluate(load_eval_policy("runs/grpo/model"), prompts)
    reports = compare(["smollm2", "runs/grpo/model", "openai:gpt-4o-mini@https://api.openai.com/v1"], prompts, "out/")

Report (``report.json``; the JSON ``mmrl eval --json`` prints)::

    {
      "policy": str,                      # the policy spec
      "data": str, "split": str,          # the corpus source and split
      "prompts": int,                     # prompts evaluated (= completions, none dropped)
      "scored": int,                      # prompts whose generation succeeded: every figure below is over these
      "parse": {"ok": int, "failed": int, "rate": float},  # rate = ok / scored (structured block parses fully)
      "components": {                     # client_emotion, therapist_emotion, strategy
        task: {"accuracy", "weighted_f1", "macro_f1": float | null,
               "labelled": int,           # prompts with a gold label for the task
               "unparsed": int}           # of those, outputs whose field did not parse (counted wrong)
      },
      "text": {"bleu2", "rouge1", "rouge2", "rougeL", "meteor", "bertscore_f1", "embedding_similarity": float | null},
      "trust": {criterion: {"mean": float | null, "std": float | null, "failures": int}},
                                          # the seven local scorers; judge_<criterion> too with a judge
      "monitors": {name: float | null},   # mmrl.eval.monitors.compute_monitors (reward hacking)
      "meta": {...}                       # generation failures, prompt selection, metric settings
                                          # (METEOR matching stages, BLEU signature), judge id, timings
    }

NaN never reaches the JSON: a figure that cannot be computed is null. The reply text scored is the
parsed ``Reply:`` field, else the whole completion (as the rewards read it). Text metrics run over
the prompts that have a reference reply (``meta.references``). Every policy of a comparison sees the
same rendered prompts: the history is cut by turn count (``max_history_turns``), not by a
policy's tokenizer.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmrl.errors import ConfigError, DataError, EvalError
from mmrl.eval import metrics
from mmrl.eval.policies import (
    EvalPolicy,
    Generation,
    PolicySpec,
    load_eval_policy,
    parse_policy_spec,
)
from mmrl.labels import TRUST_CRITERIA
from mmrl.policy.prompts import parse_output
from rewards.base import Context

__all__ = ["EvalPrompts", "build_prompts", "compare", "comparison_specs", "evaluate", "make_judge", "slug", "to_json", "write_eval"]

#: Prompts handed to the policy per call (the progress bar's step).
_CHUNK = 32


@dataclass
class EvalPrompts:
    """The evaluation prompts: chat ``messages`` and the ``contexts`` they were rendered from, plus where they came from."""

    messages: list[list[dict[str, str]]]
    contexts: list[Context]
    meta: dict[str, Any]

    def __len__(self) -> int:
        return len(self.messages)


def build_prompts(
    data: str | os.PathLike | None,
    *,
    format: str | None = None,
    split: str = "test",
    predictor: str | os.PathLike | None = None,
    max_prompts: int | None = None,
    seed: int = 0,
    max_history_turns: int = 16,
    on_error: str = "raise",
) -> EvalPrompts:
    """The prompts of every target therapist turn of ``split`` (``mmrl.policy.dataset.prompt_dataset``, ``training=False``).

    ``data`` is any path ``mmrl.data.load_corpus`` reads (None: the embedded synthetic corpus); under
    ``on_error="skip"`` its bad records are skipped and counted (``meta["data_skipped"]``, stderr).
    ``predictor`` is a ``MultimodalPredictor`` checkpoint whose outputs go into the prompts.
    ``max_prompts`` keeps a random subset of that many turns (drawn with ``seed``, kept in corpus
    order), so policies compared with the same seed see the same prompts.
    """
    from mmrl.data import report_skipped
    from mmrl.data.sources import load_source
    from mmrl.policy.dataset import prompt_dataset
    from rewards.trl import contexts_from_columns

    if max_prompts is not None and (isinstance(max_prompts, bool) or not isinstance(max_prompts, int) or max_prompts < 1):
        raise ConfigError(f"max_prompts must be an integer >= 1, got {max_prompts!r}")
    corpus = load_source(data, format=format, on_error=on_error)
    report_skipped(corpus)
    dialogues = corpus.split(split)
    targets = [(d.id, i) for d in dialogues for i in d.target_indices()]
    if not targets:
        found = sorted({d.split for d in corpus.dialogues})
        raise DataError(
            f"no therapist turn to evaluate in split {split!r} (the data holds splits {found}); choose another --split", path=corpus.source
        )
    if max_prompts is not None and max_prompts < len(targets):
        keep = np.sort(np.random.default_rng(seed).choice(len(targets), size=max_prompts, replace=False))
        chosen = {targets[i] for i in keep}
    else:
        chosen = set(targets)
    model = None
    if predictor is not None:
        from mmrl.predictor.model import MultimodalPredictor

        model = MultimodalPredictor.load(predictor)
    involved = [d for d in dialogues if any((d.id, i) in chosen for i in d.target_indices())]
    dataset = prompt_dataset(involved, split=split, training=False, predictor=model, max_history_turns=max_history_turns)
    rows = [row for row in dataset.to_list() if (row["dialogue_id"], row["turn_index"]) in chosen]
    meta = {
        "format": corpus.format,
        "dialogues": len(dialogues),
        "targets": len(targets),
        "selection": "all" if len(chosen) == len(targets) else f"random subset of {len(chosen)} (seed {seed})",
        "predictor": None if predictor is None else str(predictor),
        "max_history_turns": max_history_turns,
        "data_skipped": corpus.report.summary()["skipped"],
    }
    contexts = contexts_from_columns(len(rows), {"context": [row["context"] for row in rows]})
    return EvalPrompts([row["prompt"] for row in rows], contexts, {"source": corpus.source, "split": split, **meta})


def make_judge(spec: str, *, api_key_env: str | None = "OPENAI_API_KEY", timeout_s: float | None = None, max_retries: int | None = None):
    """An LLM judge (``rewards.judge.Judge``) from a policy-style spec: ``openai:MODEL@URL``, or a local model directory / hub id.

    ``timeout_s`` / ``max_retries`` (None: the judge's defaults) bound each HTTP attempt and the retries after the first."""
    from rewards.judge import Judge

    parsed = parse_policy_spec(spec)
    if parsed.kind == "openai":
        limits = {k: v for k, v in (("timeout_s", timeout_s), ("max_retries", max_retries)) if v is not None}
        return Judge(base_url=parsed.base_url, model=parsed.source, api_key_env=api_key_env, **limits)
    return Judge(local_model=parsed.source)


def _generate(policy: EvalPolicy, prompts: EvalPrompts, max_new_tokens: int, progress: bool) -> Generation:
    from tqdm.auto import tqdm

    texts: list[str] = []
    failures: dict[int, str] = {}
    starts = range(0, len(prompts), _CHUNK)
    for start in tqdm(starts, desc=f"generating ({policy.name})", unit="chunk", disable=not progress, leave=False):
        part = policy.generate(prompts.messages[start : start + _CHUNK], max_new_tokens=max_new_tokens)
        failures.update({start + i: reason for i, reason in part.failures.items()})
        texts += part.texts
    return Generation(texts, failures)


def evaluate(
    policy: EvalPolicy,
    prompts: EvalPrompts,
    *,
    max_new_tokens: int = 128,
    judge: Any = None,
    criteria: Sequence[str] = TRUST_CRITERIA,
    bertscore_model: str | None = None,
    progress: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Generate a completion per prompt and score it: ``(report, samples)``.

    ``bertscore_model``: BERTScore's encoder (``metrics.bertscore_f1``; None: the packaged MiniLM).

    ``report`` has the shape in the module docstring; ``samples`` has one record per prompt (the
    completion, its parsed fields, the gold labels, the reference and each trust score).
    """
    from mmrl.eval.monitors import compute_monitors
    from rewards.compose import reply_text

    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    started = time.perf_counter()
    generation = _generate(policy, prompts, max_new_tokens, progress)
    generation_s = time.perf_counter() - started
    if len(generation.texts) != len(prompts):
        raise ConfigError(f"policy {policy.name!r} returned {len(generation.texts)} completions for {len(prompts)} prompts")
    parsed = [parse_output(text) for text in generation.texts]
    replies = [reply_text(text) for text in generation.texts]
    # a failed generation (HTTP error, closed port) is no answer: it is counted, never scored as an empty reply
    ok = [i for i in range(len(prompts)) if i not in generation.failures]
    if not ok:
        reason = next(iter(generation.failures.values()), "no completions")
        raise EvalError(f"every one of the {len(prompts)} generations of {policy.name!r} failed, e.g.: {reason}")
    contexts = [prompts.contexts[i] for i in ok]
    scored_parsed, scored_replies = [parsed[i] for i in ok], [replies[i] for i in ok]

    referenced = [j for j, c in enumerate(contexts) if c.reference and c.reference.strip()]
    pairs = [scored_replies[j] for j in referenced], [contexts[j].reference for j in referenced]
    text = metrics.text_scores(*pairs)
    text["bertscore_f1"] = metrics.bertscore_f1(*pairs, model_type=bertscore_model)
    similarity = metrics.embedding_similarity(contexts, scored_replies)
    text["embedding_similarity"] = similarity["mean"]
    trust, local, judged = metrics.trust_scores(contexts, scored_replies, criteria=criteria, judge=judge)
    monitors = compute_monitors(scored_replies, contexts, trust_scores=local, judge_scores=judged or None)

    report = {
        "policy": policy.name,
        "data": prompts.meta["source"],
        "split": prompts.meta["split"],
        "prompts": len(prompts),
        "scored": len(ok),
        "parse": metrics.parse_stats(scored_parsed),
        "components": metrics.component_scores(scored_parsed, contexts),
        "text": text,
        "trust": trust,
        "monitors": dict(monitors),
        "meta": {
            **{k: v for k, v in prompts.meta.items() if k not in ("source", "split")},
            "max_new_tokens": max_new_tokens,
            "decoding": "greedy",
            "generation_seconds": round(generation_s, 3),
            "generation_failures": len(generation.failures),
            "generation_failure_examples": [generation.failures[i] for i in sorted(generation.failures)[:3]],
            "references": len(referenced),
            "bleu2": f"sacrebleu corpus BLEU ({metrics.bleu2_signature()})",
            "rouge": "rouge-score mean F-measure, Porter stemmer",
            "meteor_matching": metrics.meteor_matching(),
            "meteor_note": _meteor_note(),
            "bertscore": metrics.BERTSCORE_DEFAULT if bertscore_model is None else f"bert-score over {bertscore_model}",
            "embedding_similarity": {"scorer": "rewards.similarity (packaged all-MiniLM-L6-v2)", "failures": similarity["failures"]},
            "trust_scorers": "local" if judge is None else f"local + judge {judge.judge_id}",
        },
    }
    local, judged = _spread(local, ok, len(prompts)), _spread(judged, ok, len(prompts))
    samples = [_sample(i, generation, parsed[i], replies[i], prompts.contexts[i], local, judged) for i in range(len(prompts))]
    return to_json(report), to_json(samples)


def _spread(scores: Mapping[str, Sequence[float]], ok: Sequence[int], n: int) -> dict[str, np.ndarray]:
    """Scores of the scored prompts put back at their prompt indices; NaN at the failed generations."""
    out = {}
    for name, values in scores.items():
        full = np.full(n, np.nan)
        full[list(ok)] = np.asarray(values, dtype=np.float64)
        out[name] = full
    return out


def failed_share(report: Mapping[str, Any]) -> float:
    """The share of a report's prompts whose generation failed."""
    return report["meta"]["generation_failures"] / max(report["prompts"], 1)


def _meteor_note() -> str:
    if metrics.meteor_matching() == "exact+stem":
        return "WordNet data not found (no PyPI package ships it; nltk.download('wordnet') adds it): METEOR matches exact words and Porter stems only, no synonyms"
    return "nltk METEOR with exact, Porter-stem and WordNet-synonym matching"


def _sample(i: int, generation: Generation, parsed, reply: str, context: Context, local: Mapping, judged: Mapping) -> dict[str, Any]:
    return {
        "dialogue_id": context.dialogue_id,
        "turn_index": context.turn_index,
        "completion": generation.texts[i],
        "generation_failure": generation.failures.get(i),
        "parsed": parsed.ok,
        "parse_errors": list(parsed.errors),
        "client_emotion": parsed.client_emotion,
        "therapist_emotion": parsed.therapist_emotion,
        "strategy": parsed.strategy,
        "reply": reply,
        "gold_client_emotion": context.gold_client_emotion,
        "gold_therapist_emotion": context.gold_therapist_emotion,
        "gold_strategy": context.gold_strategy,
        "reference": context.reference,
        "trust": {name: scores[i] for name, scores in local.items()} | {f"judge_{name}": scores[i] for name, scores in judged.items()},
    }


def to_json(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and NaN/inf as None (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def slug(name: str) -> str:
    """A file-name-safe form of a policy spec."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "policy"


def write_eval(report: Mapping[str, Any], samples: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike) -> Path:
    """Write ``report.json``, ``report.md`` and ``samples.jsonl`` into ``out_dir``; returns it."""
    from mmrl.eval.report import eval_markdown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "report.md").write_text(eval_markdown(report), encoding="utf-8")
    with (out / "samples.jsonl").open("w", encoding="utf-8") as f:
        for sample in samples:
            f.write(json.dumps(sample, ensure_ascii=False) + "\n")
    return out


def comparison_specs(specs: Sequence[str]) -> list[PolicySpec]:
    """The parsed specs of a comparison: at least two, all different, each well formed (else ConfigError)."""
    specs = [s.strip() for s in specs]
    if len(specs) < 2 or len(set(specs)) != len(specs):
        raise ConfigError(f"compare needs at least two different policies, got {specs}")
    return [parse_policy_spec(s) for s in specs]


def compare(
    specs: Sequence[str],
    prompts: EvalPrompts,
    out_dir: str | os.PathLike,
    *,
    max_new_tokens: int = 128,
    judge: Any = None,
    device: str = "auto",
    batch_size: int = 8,
    seed: int = 0,
    api_key_env: str | None = "OPENAI_API_KEY",
    timeout_s: float = 120.0,
    max_retries: int = 3,
    bertscore_model: str | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Evaluate each policy of ``specs`` on ``prompts``, one after another (one model in memory at a time).

    ``timeout_s`` and ``max_retries`` bound the HTTP calls of ``openai:`` policies.

    Writes each policy's report into ``out_dir/<n>-<spec>/`` and the comparison
    (``comparison.md``, ``comparison.csv``, ``comparison.png``) into ``out_dir``; returns the reports.
    """
    from mmrl.eval.report import write_comparison

    parsed = comparison_specs(specs)  # every spec is checked before the first model loads
    reports = []
    for n, spec in enumerate(parsed, 1):
        policy = load_eval_policy(spec, device=device, batch_size=batch_size, seed=seed, api_key_env=api_key_env, timeout_s=timeout_s,
                                  max_retries=max_retries)  # fmt: skip
        report, samples = evaluate(
            policy, prompts, max_new_tokens=max_new_tokens, judge=judge, bertscore_model=bertscore_model, progress=progress
        )
        write_eval(report, samples, Path(out_dir) / f"{n}-{slug(spec.text)}")
        reports.append(report)
        del policy
    write_comparison(reports, out_dir)
    return reports
