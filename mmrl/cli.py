"""The ``mmrl`` console script: parses arguments, calls library functions, prints results."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from mmrl.data import DIALOGUE_FORMATS, SPLITS
from mmrl.errors import MmrlError

__all__ = ["main", "build_parser"]

#: Modules that add their command groups with ``add_commands(subparsers)``, in help order.
_COMMAND_MODULES = (
    "mmrl.predictor.cli",
    "envs.cli",
    "rewards.cli",
    "mmrl.train.cli",
    "mmrl.train.strategy_cli",
    "mmrl.eval.cli",
    "mmrl.rate.cli",
)


def _print_json(payload: object) -> None:
    print(json.dumps(payload, indent=2, ensure_ascii=False))


def _data_synth(args: argparse.Namespace) -> None:
    from mmrl.data.synth import generate
    from mmrl.outputs import check_output

    check_output(args.out, overwrite=args.overwrite, writes=("corpus.jsonl", "manifest.json"))
    out = generate(args.out, n_dialogues=args.dialogues, seed=args.seed)
    print(f"wrote the synthetic corpus ({args.dialogues} dialogues, seed {args.seed}) to {out}")


def _data_stats(args: argparse.Namespace) -> None:
    from mmrl.data import detect_format, load_corpus
    from mmrl.data.stats import corpus_stats

    format = args.format or detect_format(args.path)
    if format == "dfew":
        from mmrl.data.dfew import dfew_stats, load_dfew
        from mmrl.data.schema import LoadReport

        report = LoadReport(on_error=args.on_error)
        stats = {"format": "dfew", "source": str(args.path), "folds": dfew_stats(load_dfew(args.path, report=report))}
        stats["skipped"] = report.summary()
    else:
        corpus = load_corpus(args.path, format, on_error=args.on_error, media_dir=args.media_dir, split=args.split)
        stats = corpus_stats(corpus)
    if args.json:
        _print_json(stats)
    else:
        _print_stats_table(stats)


def _print_stats_table(stats: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    if stats["format"] == "dfew":
        _print_json(stats)
        return
    table = Table(title=f"{stats['format']} corpus at {stats['source']}")
    columns = ("dialogues", "rows", "turns", "therapist_turns", "rows_with_video", "rows_with_audio")
    table.add_column("split")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for split, split_stats in [*stats["splits"].items(), ("total", stats["total"])]:
        table.add_row(split, *(str(split_stats[c]) for c in columns))
    console = Console()
    console.print(table)
    for name, counts in stats["total"]["turn_labels"].items():
        console.print(f"[bold]{name}[/bold] (turns): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if stats["skipped"]["skipped"]:
        console.print(f"[yellow]skipped {stats['skipped']['skipped']} record(s)[/yellow]: {stats['skipped']['reasons']}")


#: What ``mmrl demo`` writes into its output directory.
_DEMO_OUTPUTS = ("report.json", "report.md", "rewards.png", "corpus", "predictor", "sft", "grpo")


def _demo(args: argparse.Namespace) -> None:
    from mmrl.demo import DemoConfig, run_demo

    overrides = {name: getattr(args, name) for name in ("dialogues", "seed", "policy", "predictor_epochs", "sft_steps", "grpo_steps")}
    if args.config is not None:
        config = DemoConfig.from_yaml(args.config, **overrides)
    else:
        config = DemoConfig.from_dict({k: v for k, v in overrides.items() if v is not None})
    if args.out is not None:
        import shutil

        from mmrl.outputs import check_output, check_writable_dir

        check_output(args.out, overwrite=args.overwrite, writes=_DEMO_OUTPUTS)
        check_writable_dir(args.out, what="--out")
        for name in (
            "corpus",
            "predictor",
            "sft",
            "grpo",
        ):  # --overwrite: the earlier demo's stages, whose checkpoints would block a new run
            shutil.rmtree(args.out / name, ignore_errors=True)
    out = run_demo(config, args.out)
    print(f"demo outputs are in {out}: report.md, report.json, rewards.png; predictor/, sft/ and grpo/ hold the trained models")


def _ablate(args: argparse.Namespace) -> None:
    from mmrl.ablation import AblationConfig, run_ablation
    from mmrl.outputs import check_output

    check_output(args.out, inputs=[args.config], overwrite=args.overwrite, writes=("results.csv", "results.md", "summary.json"))
    overrides = {"mode": args.mode, "seeds": None if args.seeds is None else list(range(args.seeds))}
    result = run_ablation(AblationConfig.from_yaml(args.config, **overrides), args.out, address=args.address)
    print(f"{result['trials']} trials; results.csv, results.md, effects.png and pareto.png are in {result['out']}")


def build_parser() -> argparse.ArgumentParser:
    from rewards.spec import VARIANT_MODES

    parser = argparse.ArgumentParser(
        prog="mmrl",
        description="Reinforcement learning of trustworthy, multimodal emotional-support dialogue systems.",
        epilog="Start with `mmrl demo`; see `mmrl COMMAND --help` for each command.",
    )
    from mmrl import __version__

    parser.add_argument("--version", action="version", version=f"mmrl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser("demo", help="run the whole loop, small, on the embedded corpus")
    demo.add_argument("--out", type=Path, default=None, help="output directory (default: a new mmrl-demo-* directory)")
    demo.add_argument("--overwrite", action="store_true", help="replace the results of an earlier demo in --out")
    demo.add_argument("--config", type=Path, default=None, help="YAML with DemoConfig fields (the flags below override it)")
    demo.add_argument("--seed", type=int, default=None, help="the run's one seed (default 0)")
    demo.add_argument("--dialogues", type=int, default=None, help="size of the synthetic corpus (default 40)")
    demo.add_argument("--policy", default=None, help="policy to fine-tune: tiny (default), smollm2, a path or a hub id")
    demo.add_argument("--predictor-epochs", type=int, default=None, help="most predictor epochs (default 12)")
    demo.add_argument("--sft-steps", type=int, default=None, help="SFT steps (default 300)")
    demo.add_argument("--grpo-steps", type=int, default=None, help="GRPO steps (default 16)")
    demo.set_defaults(func=_demo)

    ablate = commands.add_parser("ablate", help="train one policy per variant of a reward spec (Ray Tune) and compare the criteria")
    ablate.add_argument("--config", type=Path, required=True, help="YAML with AblationConfig fields (see experiments/ablate_*.yaml)")
    ablate.add_argument("--mode", choices=VARIANT_MODES, default=None, help="how to vary the spec (default: the file's mode)")
    ablate.add_argument("--seeds", type=int, default=None, help="train every variant with seeds 0..N-1 (default: the file's seeds)")
    ablate.add_argument(
        "--out", type=Path, required=True, help="output directory: results.csv, results.md, effects.png, pareto.png, trials/"
    )
    ablate.add_argument("--overwrite", action="store_true", help="replace the results of an earlier ablation in --out")
    ablate.add_argument("--address", default=None, help="Ray cluster to run the trials on (e.g. ray://head:10001); default: a local Ray")
    ablate.set_defaults(func=_ablate)

    data = commands.add_parser("data", help="generate, inspect and convert datasets")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    synth = data_commands.add_parser("synth", help="generate the embedded multimodal demo corpus")
    synth.add_argument("--out", type=Path, required=True, help="directory to write (corpus.jsonl, media/, manifest.json)")
    synth.add_argument("--dialogues", type=int, default=40, help="number of dialogues")
    synth.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    synth.add_argument("--overwrite", action="store_true", help="replace a corpus already in --out")
    synth.set_defaults(func=_data_synth)
    stats = data_commands.add_parser("stats", help="per-split dialogue, turn and label counts")
    stats.add_argument("path", type=Path, help="a MESC directory, a synth directory, a .jsonl file or a DFEW root")
    stats.add_argument("--format", choices=(*DIALOGUE_FORMATS, "dfew"), help="default: detected")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stats.add_argument("--on-error", choices=("raise", "skip"), default="raise", help="stop at a bad record, or skip and count it")
    stats.add_argument("--media-dir", type=Path, default=None, help="MESC: directory of {Dialogue_ID}_{Utterance_ID}.mp4/.wav clips")
    stats.add_argument("--split", choices=SPLITS, default=None, help="MultiMood: the file's split")
    stats.set_defaults(func=_data_stats)
    for module in _COMMAND_MODULES:
        importlib.import_module(module).add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except MmrlError as err:
        print(f"mmrl: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
