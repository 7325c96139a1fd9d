"""``mmrl predictor train | eval | predict``: wired into the ``mmrl`` console script by :func:`add_commands`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmrl.data import DIALOGUE_FORMATS, SPLITS
from mmrl.errors import DataError

__all__ = ["add_commands", "load_dialogues"]

_FORMATS = (*DIALOGUE_FORMATS, "dfew")


def load_dialogues(path: Path, format: str | None, media_dir: Path | None = None, on_error: str = "raise"):
    """Dialogues of any dialogue format; a MultiMood directory loads every ``*.jsonl`` in it (split from each name).

    Under ``on_error="skip"`` bad records are skipped, and how many (with the reasons) is printed to stderr.
    """
    from mmrl.data import detect_format, load_corpus, report_skipped

    format = format or detect_format(path)
    if format == "multimood" and path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise DataError("no .jsonl files in this MultiMood directory", path=path)
        corpora = [load_corpus(file, "multimood", on_error=on_error) for file in files]
    else:
        corpora = [load_corpus(path, format, media_dir=media_dir, on_error=on_error)]
    for corpus in corpora:
        report_skipped(corpus)
    return [d for corpus in corpora for d in corpus.dialogues]


def _is_dfew(args: argparse.Namespace) -> bool:
    from mmrl.data import detect_format

    return (args.format or detect_format(args.data)) == "dfew"


def _train(args: argparse.Namespace) -> None:
    from mmrl.outputs import check_output
    from mmrl.predictor.config import load_config

    dfew = _is_dfew(args)
    writes = ("dfew_metrics.json",) if dfew else ("model.safetensors", "config.json", "train_history.json")
    check_output(args.out, inputs=[args.data, args.config], overwrite=args.overwrite, writes=writes)
    config = load_config(args.config, seed=args.seed, strategy_model="fusion" if args.fast else None)
    if dfew:
        from mmrl.predictor.train import train_dfew

        report = train_dfew(config, args.data, args.out)
        print(json.dumps(report["mean"], indent=2))
        print(f"DFEW fold checkpoints and dfew_metrics.json are in {args.out}")
        return
    from mmrl.predictor.train import train_predictor

    dialogues = load_dialogues(args.data, args.format, args.media_dir, args.on_error)
    _, summary = train_predictor(config, [d for d in dialogues if d.split == "train"], [d for d in dialogues if d.split == "val"], args.out)
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    print(f"checkpoint written to {args.out}")


def _eval(args: argparse.Namespace) -> None:
    if _is_dfew(args):
        from mmrl.predictor.evaluate import evaluate_dfew

        report = evaluate_dfew(args.ckpt, args.data)
    else:
        from mmrl.predictor.evaluate import evaluation_report, items_of
        from mmrl.predictor.model import MultimodalPredictor

        predictor = MultimodalPredictor.load(args.ckpt)
        dialogues = load_dialogues(args.data, args.format, args.media_dir, args.on_error)
        split = {name: items_of([d for d in dialogues if d.split == name]) for name in ("train", "val", args.split)}
        for name in ("train", args.split):
            if not split[name]:
                why = "the baselines are fitted on it" if name == "train" else "nothing to score"
                raise DataError(f"no target turns in the {name!r} split ({why}); pass data that includes it", path=args.data, field="split")
        report = evaluation_report(predictor, split["train"], split[args.split], split["val"])
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)


def _print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    if "folds" in report:
        table = Table(title="DFEW (clip level)")
        for column in ("fold", "UAR", "WAR"):
            table.add_column(column)
        for fold, metrics in [*report["folds"].items(), ("mean", report["mean"])]:
            table.add_row(fold, f"{metrics['uar']:.3f}", f"{metrics['war']:.3f}")
        Console().print(table)
        return
    table = Table(title="predictor evaluation")
    for column in ("system", "task", "accuracy", "weighted F1", "macro F1"):
        table.add_column(column)
    rows = [("model", report["model"]), *report["baselines"].items()]
    for system, tasks in rows:
        for task, m in tasks.items():
            table.add_row(system, task, f"{m['accuracy']:.3f}", f"{m['weighted_f1']:.3f}", f"{m['macro_f1']:.3f}")
    Console().print(table)


def _predict(args: argparse.Namespace) -> None:
    from mmrl.outputs import check_output
    from mmrl.predictor.evaluate import items_of
    from mmrl.predictor.model import MultimodalPredictor

    check_output(args.out, inputs=[args.data, args.ckpt], overwrite=args.overwrite)
    predictor = MultimodalPredictor.load(args.ckpt)
    dialogues = load_dialogues(args.data, args.format, args.media_dir, args.on_error)
    items = items_of([d for d in dialogues if args.split is None or d.split == args.split])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as f:
        for (dialogue, index), components in zip(items, predictor.predict(items)):
            record = {"dialogue_id": dialogue.id, "split": dialogue.split, "turn_index": index}
            record.update({task: dict(zip(labels, probs)) for task, labels, probs in _named(components)})
            record["predicted"] = {task: components.label(task) for task, _, _ in _named(components)}
            record["embedding"] = [round(float(x), 6) for x in components.embedding]
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {len(items)} predictions to {args.out}")


def _named(components):
    from mmrl.predictor import TASK_LABELS, TASKS

    return [(task, TASK_LABELS[task], [round(float(p), 6) for p in getattr(components, task)]) for task in TASKS]


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``predictor`` with its ``train``, ``eval`` and ``predict`` actions to ``subparsers``."""
    predictor = subparsers.add_parser("predictor", help="train, evaluate and run the multimodal emotion/strategy predictor")
    actions = predictor.add_subparsers(dest="predictor_command", metavar="ACTION", required=True)

    def data_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--data", type=Path, required=True, help="a MESC dir, synth dir, jsonl/MultiMood file or dir, or DFEW root")
        parser.add_argument("--format", choices=_FORMATS, default=None, help="default: detected")
        parser.add_argument("--media-dir", type=Path, default=None, help="MESC: directory of {Dialogue_ID}_{Utterance_ID}.mp4/.wav clips")
        parser.add_argument(
            "--on-error", choices=("raise", "skip"), default="raise", help="stop at a bad record, or skip it and count it (stderr)"
        )

    train = actions.add_parser("train", help="train on the train split, early-stop on val, save a checkpoint")
    data_arguments(train)
    train.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    train.add_argument("--overwrite", action="store_true", help="replace a checkpoint already in --out")
    train.add_argument("--config", type=Path, default=None, help="YAML of PredictorConfig fields")
    train.add_argument("--seed", type=int, default=None, help="overrides the config's seed")
    train.add_argument("--fast", action="store_true", help="strategy_model: fusion (no strategy GRU: about a minute less on MESC)")
    train.set_defaults(func=_train)

    evaluate = actions.add_parser("eval", help="metrics of a checkpoint and the baselines on a split")
    evaluate.add_argument("--ckpt", type=Path, required=True, help="checkpoint directory")
    data_arguments(evaluate)
    evaluate.add_argument("--split", choices=SPLITS, default="test", help="split to score")
    evaluate.add_argument("--json", action="store_true", help="print the eval JSON instead of a table")
    evaluate.set_defaults(func=_eval)

    predict = actions.add_parser("predict", help="write per-turn probabilities and embeddings as jsonl")
    predict.add_argument("--ckpt", type=Path, required=True, help="checkpoint directory")
    data_arguments(predict)
    predict.add_argument("--split", choices=SPLITS, default=None, help="only this split (default: all)")
    predict.add_argument("--out", type=Path, required=True, help="jsonl file to write")
    predict.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    predict.set_defaults(func=_predict)
