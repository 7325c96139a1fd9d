"""``mmrl eval`` (one policy's report) and ``mmrl compare`` (several policies on the same prompts).

``add_commands(subparsers)`` adds both to the ``mmrl`` parser.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from mmrl.data import DIALOGUE_FORMATS, SPLITS

__all__ = ["POLICY_SPECS", "add_commands"]

POLICY_SPECS = (
    "Policy specs: 'tiny' (random test policy), 'smollm2' (packaged SmolLM2-135M-Instruct), a model directory "
    "(a run's model/, or the run directory holding it), a hub id already in the local cache, or "
    "'openai:MODEL@URL' for an OpenAI-compatible chat-completions server (e.g. openai:gpt-4o-mini@https://api.openai.com/v1; "
    "its API key is read from the variable named by --api-key-env, never logged)."
)


def _prompts(args: argparse.Namespace):
    from mmrl.eval.compare import build_prompts

    return build_prompts(
        args.data, format=args.format, split=args.split, predictor=args.predictor, max_prompts=args.max_prompts,
        seed=args.seed, max_history_turns=args.max_history_turns, on_error=args.on_error,
    )  # fmt: skip


def _limits(args: argparse.Namespace) -> dict:
    """``--timeout`` / ``--max-retries`` where given (else each client's own defaults)."""
    return {k: v for k, v in (("timeout_s", args.timeout), ("max_retries", args.max_retries)) if v is not None}


def _judge(args: argparse.Namespace):
    from mmrl.eval.compare import make_judge

    return None if args.judge is None else make_judge(args.judge, api_key_env=args.judge_api_key_env, **_limits(args))


def _eval(args: argparse.Namespace) -> None:
    from mmrl.eval.compare import evaluate, write_eval
    from mmrl.eval.policies import load_eval_policy, parse_policy_spec
    from mmrl.outputs import check_output

    spec = parse_policy_spec(args.policy)  # a malformed spec fails before the data loads
    if args.out is not None:
        check_output(args.out, inputs=[args.data], overwrite=args.overwrite, writes=("report.json", "report.md", "samples.jsonl"))
    prompts = _prompts(args)
    judge = _judge(args)
    policy = load_eval_policy(
        spec, device=args.device, batch_size=args.batch_size, seed=args.seed, api_key_env=args.api_key_env, **_limits(args)
    )
    report, samples = evaluate(
        policy, prompts, max_new_tokens=args.max_new_tokens, judge=judge, bertscore_model=args.bertscore_model, progress=True
    )
    if args.out is not None:
        write_eval(report, samples, args.out)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        _print_summary([report])
    if args.out is not None:
        print(
            f"report in {args.out / 'report.md'} (JSON: report.json, per-prompt outputs: samples.jsonl)",
            file=sys.stderr if args.json else sys.stdout,
        )
    _check_failures([report], args.max_failed_share)


def _check_failures(reports: Sequence[dict], max_share: float) -> None:
    """Exit non-zero (after the reports are written) when a policy's generations failed more often than ``max_share``."""
    from mmrl.errors import EvalError
    from mmrl.eval.compare import failed_share

    bad = [f"{r['policy']}: {r['meta']['generation_failures']} of {r['prompts']}" for r in reports if failed_share(r) > max_share]
    if bad:
        raise EvalError(f"too many failed generations (more than {max_share:.0%} of the prompts): {'; '.join(bad)}; "
                        "their reasons are in the reports (generation_failure_examples) and samples.jsonl")  # fmt: skip


def _compare(args: argparse.Namespace) -> None:
    from mmrl.eval.compare import compare, comparison_specs
    from mmrl.outputs import check_output

    specs = [s for s in args.policies.split(",") if s.strip()]
    comparison_specs(specs)  # a malformed spec fails before the data loads
    check_output(args.out, inputs=[args.data], overwrite=args.overwrite, writes=("comparison.md", "comparison.csv", "comparison.png"))
    prompts = _prompts(args)
    reports = compare(
        specs, prompts, args.out, max_new_tokens=args.max_new_tokens, judge=_judge(args), device=args.device,
        batch_size=args.batch_size, seed=args.seed, api_key_env=args.api_key_env, bertscore_model=args.bertscore_model, progress=True,
        **_limits(args),
    )  # fmt: skip
    if args.json:
        print(json.dumps(reports, indent=2, ensure_ascii=False))
    else:
        _print_summary(reports)
    where = f"comparison in {args.out / 'comparison.md'}, {args.out / 'comparison.csv'} and {args.out / 'comparison.png'}; per-policy reports in its subfolders"
    print(where, file=sys.stderr if args.json else sys.stdout)
    _check_failures(reports, args.max_failed_share)


def _print_summary(reports: Sequence[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    from mmrl.eval.report import flatten

    rows = [flatten(r) for r in reports]
    first = reports[0]
    table = Table(title=f"{first['prompts']} prompts of {first['data']} ({first['split']})")
    table.add_column("figure")
    for report in reports:
        table.add_column(report["policy"], justify="right")
    keys = ["parse/rate", *(f"components/{t}/accuracy" for t in ("client_emotion", "therapist_emotion", "strategy"))]
    keys += ["text/bleu2", "text/rougeL", "text/meteor", "text/bertscore_f1", "text/embedding_similarity"]
    keys += [k for k in rows[0] if k.startswith("trust/") and k.endswith("/mean")]
    for key in keys:
        values = [row.get(key) for row in rows]
        table.add_row(key, *("n/a" if v is None else f"{v:.3f}" for v in values))
    Console().print(table)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _shared(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="a MESC directory, a synth directory or a .jsonl corpus (default: the embedded synthetic corpus)",
    )
    parser.add_argument("--format", choices=DIALOGUE_FORMATS, default=None, help="data format (default: detected)")
    parser.add_argument("--split", choices=SPLITS, default="test", help="split whose therapist turns are the prompts (default: test)")
    parser.add_argument(
        "--predictor", type=Path, default=None, help="MultimodalPredictor checkpoint whose outputs go into the prompts (default: none)"
    )
    parser.add_argument(
        "--max-prompts",
        type=int,
        default=None,
        help="evaluate a random subset of this many prompts, the same for every policy with the same --seed",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the prompt subset and of the tiny policy's weights")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="most new tokens per completion (default 128)")
    parser.add_argument("--max-history-turns", type=int, default=16, help="newest history turns kept in each prompt (default 16)")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate() call of a local model")
    parser.add_argument("--device", default="auto", help="device of local models: auto (cuda when available), cpu, cuda, cuda:1 ...")
    parser.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="environment variable holding the API key of openai: policies (default OPENAI_API_KEY)",
    )
    parser.add_argument(
        "--judge", default=None, metavar="SPEC",
        help="also score the seven criteria with an LLM judge: openai:MODEL@URL, or a local chat model directory / cached hub id (default: local scorers only)",
    )  # fmt: skip
    parser.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", help="environment variable holding the judge's API key")
    parser.add_argument("--timeout", type=_positive, default=None, metavar="SECONDS",
                        help="time limit of one HTTP attempt of openai: policies and the judge (default: 120 s policies, 60 s judge)")  # fmt: skip
    parser.add_argument(
        "--max-retries",
        type=_count,
        default=None,
        help="retries after a failed HTTP attempt (timeouts, connection errors, HTTP 408/409/429/5xx; default 3)",
    )
    parser.add_argument(
        "--on-error", choices=("raise", "skip"), default="raise", help="stop at a bad data record, or skip it and count it in the report"
    )
    parser.add_argument(
        "--bertscore-model",
        default=None,
        metavar="MODEL",
        help="BERTScore encoder, a hub id or directory, e.g. roberta-large as in MultiMood (default: the packaged all-MiniLM-L6-v2, offline)",
    )
    parser.add_argument("--json", action="store_true", help="print the JSON report(s) instead of a table")
    parser.add_argument("--overwrite", action="store_true", help="replace the reports of an earlier run in --out")
    parser.add_argument("--max-failed-share", type=float, default=0.1,
                        help="exit non-zero when more than this share of a policy's generations failed (default 0.1)")  # fmt: skip


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``eval`` and ``compare`` to an ``add_subparsers()`` object."""
    evaluate = subparsers.add_parser(
        "eval",
        help="evaluate one policy: parse rate, component accuracy/F1, BLEU-2/ROUGE/METEOR/embedding similarity, trust scores, monitors",
        description="Evaluate one policy on the therapist turns of a split. " + POLICY_SPECS,
        epilog="The JSON report's shape is documented in mmrl/eval/compare.py. Unparseable outputs count as wrong answers and are reported, never dropped.",
    )
    evaluate.add_argument("--policy", required=True, metavar="SPEC", help="the policy to evaluate (see above)")
    _shared(evaluate)
    evaluate.add_argument(
        "--out", type=Path, default=None, help="directory to write report.json, report.md and samples.jsonl (default: print only)"
    )
    evaluate.set_defaults(func=_eval)

    comparison = subparsers.add_parser(
        "compare",
        help="evaluate several policies on the same prompts; one comparison table (md, csv) and plot (png)",
        description="Evaluate several policies on the same prompts and compare them. " + POLICY_SPECS,
    )
    comparison.add_argument("--policies", required=True, metavar="SPEC,SPEC,...", help="comma-separated policy specs (see above)")
    _shared(comparison)
    comparison.add_argument(
        "--out", type=Path, required=True, help="directory for comparison.md/.csv/.png and one report folder per policy"
    )
    comparison.set_defaults(func=_compare)
