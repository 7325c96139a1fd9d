"""``mmrl rewards score``, ``list``, ``probe`` (templates, off-context replies, length and filler on MESC) and ``build``.

``score`` reads JSONL, one reply to score per line::

    {"context": str | [{"speaker": "client"|"therapist", "text": str}, ...], "response": str,
     "reference": str, "situation": str, "problem_type": str, "video_description": str,
     "client_emotion": str, "therapist_emotion": str, "strategy": str}      # all but the first two optional

A string context is the client's utterance; a turn list is the conversation before the response,
whose last client turn is the utterance answered (earlier turns are its history). ``response`` is a
plain reply or a structured block (reply-reading rewards score its ``Reply:`` field). With
``--json``, one line per input, in input order: ``{"index": i, "scores": {name: float|null},
"failures": {name: reason}}`` (plus ``"total"`` with ``--config``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmrl.config import suggest
from mmrl.data import SPLITS
from mmrl.data.io import json_lines
from mmrl.data.schema import SPEAKERS
from mmrl.errors import ConfigError, DataError
from mmrl.labels import normalise_emotion, normalise_strategy
from rewards.base import Context
from rewards.compose import Component, Composite, CompositeResult
from rewards.criteria.learned import SPLITS as PAIR_SPLITS

__all__ = ["INPUT_FIELDS", "add_commands", "read_inputs"]

INPUT_FIELDS: tuple[str, ...] = (
    "context", "response", "reference", "situation", "problem_type", "video_description",
    "client_emotion", "therapist_emotion", "strategy",
)  # fmt: skip
_LABELS = (("client_emotion", normalise_emotion), ("therapist_emotion", normalise_emotion), ("strategy", normalise_strategy))
_BATCH = 512


def _text(record: dict, key: str, where: dict, *, required: bool = False) -> str | None:
    value = record.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise DataError(f"expected a string, got {'nothing' if value is None else type(value).__name__}", field=key, **where)
    return value


def _context(value: object, where: dict) -> tuple[str, tuple[tuple[str, str], ...]]:
    if isinstance(value, str):
        return value, ()
    if not isinstance(value, list):
        raise DataError(f"expected a string or a list of turns, got {type(value).__name__}", field="context", **where)
    turns = []
    for i, turn in enumerate(value):
        if not (isinstance(turn, dict) and turn.get("speaker") in SPEAKERS and isinstance(turn.get("text"), str) and len(turn) == 2):
            raise DataError(f'expected {{"speaker": "client"|"therapist", "text": str}}, got {turn!r:.120}', field=f"context[{i}]", **where)
        turns.append((turn["speaker"], turn["text"]))
    last_client = max((i for i, (speaker, _) in enumerate(turns) if speaker == "client"), default=None)
    if last_client is None:
        raise DataError("the turn list has no client turn: the utterance to answer is its last client turn", field="context", **where)
    return turns[last_client][1], tuple(turns[:last_client])


def read_inputs(path: Path) -> tuple[list[Context], list[str]]:
    """Contexts and responses from a ``score`` input file; a malformed line raises DataError naming file:line and field."""
    contexts, responses = [], []
    try:
        lines = list(json_lines(path))  # UTF-8 (a BOM is dropped); lines end at newlines only, not at U+2028 inside a string
    except OSError as exc:
        raise DataError(f"cannot read the input: {exc.strerror or exc}", path=path) from exc
    for number, record in lines:
        where = {"path": path, "line": number}
        if isinstance(record, DataError):
            raise record
        if not isinstance(record, dict):
            raise DataError(f"expected a JSON object, got {type(record).__name__}", **where)
        for key in record:
            if key not in INPUT_FIELDS:
                hint = suggest(key, INPUT_FIELDS)
                raise DataError(f"unknown field{hint} (expected fields among {list(INPUT_FIELDS)})", field=key, **where)
        if "context" not in record:
            raise DataError("missing: give the client's utterance or the turns before the response", field="context", **where)
        utterance, history = _context(record["context"], where)
        labels = {}
        for key, normalise in _LABELS:
            value = _text(record, key, where)
            labels[key] = None if value is None else normalise(value, field=key, **where)
        responses.append(_text(record, "response", where, required=True))
        contexts.append(
            Context(
                client_utterance=utterance,
                history=history,
                situation=_text(record, "situation", where),
                problem_type=_text(record, "problem_type", where),
                video_description=_text(record, "video_description", where),
                gold_client_emotion=labels["client_emotion"],
                gold_therapist_emotion=labels["therapist_emotion"],
                gold_strategy=labels["strategy"],
                reference=_text(record, "reference", where),
            )
        )
    return contexts, responses


def _composite(args: argparse.Namespace) -> Composite:
    if args.config is not None:
        from rewards.spec import build_composite

        return build_composite(args.config)
    from rewards.registry import get_reward

    if args.criteria:
        names = [name.strip() for name in args.criteria.split(",") if name.strip()]
    else:
        from rewards.criteria import CRITERIA

        names = list(CRITERIA)
    return Composite([Component(get_reward(name)) for name in names], on_missing="skip")


def _rows(result: CompositeResult, offset: int, with_total: bool) -> list[dict]:
    rows = []
    for i in range(len(result.total)):
        row = {
            "index": offset + i,
            "scores": {name: None if scores[i] != scores[i] else float(scores[i]) for name, scores in result.scores.items()},
            "failures": {name: failures[i] for name, failures in result.failures.items() if i in failures},
        }
        if with_total:
            row["total"] = None if result.total[i] != result.total[i] else float(result.total[i])
        rows.append(row)
    return rows


def _score(args: argparse.Namespace) -> None:
    contexts, responses = read_inputs(args.input)
    composite = _composite(args)
    rows = []
    for start in range(0, len(responses), _BATCH):
        result = composite(contexts[start : start + _BATCH], responses[start : start + _BATCH])
        rows.extend(_rows(result, start, args.config is not None))
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    names = [c.name for c in composite.computed]
    table = Table(title=f"rewards of {len(rows)} responses in {args.input}")
    for column in ("index", *names, *(("total",) if args.config is not None else ())):
        table.add_column(column, justify="right")
    for row in rows:
        cells = ["-" if row["scores"][n] is None else f"{row['scores'][n]:.3f}" for n in names]
        total = [] if args.config is None else ["-" if row["total"] is None else f"{row['total']:.3f}"]
        table.add_row(str(row["index"]), *cells, *total)
    console = Console()
    console.print(table)
    failed = sum(len(row["failures"]) for row in rows)
    if failed:
        console.print(f"[yellow]{failed} score(s) failed[/yellow]; rerun with --json to see the reasons")


def _list(args: argparse.Namespace) -> None:
    from rewards.registry import registered

    entries = [
        {"name": e.name, "version": e.version, "range": list(e.score_range), "description": e.description} for e in registered().values()
    ]
    if args.json:
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="registered rewards")
    for column in ("name", "version", "range", "description"):
        table.add_column(column)
    for e in entries:
        table.add_row(e["name"], e["version"], f"[{e['range'][0]:g}, {e['range'][1]:g}]", e["description"])
    Console().print(table)


def _probe(args: argparse.Namespace) -> None:
    from mmrl.data import load_corpus
    from mmrl.labels import TRUST_CRITERIA
    from rewards.criteria.learned import load_pairs, mesc_contexts, pairs_path
    from rewards.probe import FILLERS, GENERIC_REPLIES, probe_contexts, reward_probe
    from rewards.registry import get_reward

    corpus = load_corpus(args.data, "mesc")
    contexts = probe_contexts(corpus.split(args.split), min_words=args.min_words)
    if args.limit:
        contexts = contexts[: args.limit]
    generics, fillers = GENERIC_REPLIES, FILLERS
    if args.generics is not None:
        generics, fillers = _read_generics(args.generics)
    pairs = {name: load_pairs(pairs_path(name, args.pairs), lambda: mesc_contexts(args.data)) for name in TRUST_CRITERIA}
    # with --cross-encoder the seven criteria are read by the fine-tuned cross-encoder (cross_<criterion>), reported under their names
    scorers = {name: get_reward(f"cross_{name}" if args.cross_encoder else name) for name in TRUST_CRITERIA}
    scorers["context_fit"] = get_reward("context_fit")
    if args.cross_encoder:
        scorers["cross_context_fit"] = get_reward("cross_context_fit")
    report = reward_probe(contexts, scorers, pairs=pairs, generics=generics, fillers=fillers, seed=args.seed)
    report.update(split=args.split, pairs_split=args.pairs, criteria="cross_encoder" if args.cross_encoder else "local")
    if args.json:
        print(json.dumps(report, indent=2))
        return
    _print_probe(report)


def _read_generics(path: Path) -> tuple[dict[str, list[str]], list[str]]:
    """``{"generic": {style: [reply, ...]}, "fillers": [sentence, ...]}`` from a JSON file, checked field by field."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read generic replies: {exc}", path=path) from None
    generic, fillers = (
        record.get("generic") if isinstance(record, dict) else None,
        record.get("fillers") if isinstance(record, dict) else None,
    )
    if not (
        isinstance(generic, dict)
        and generic
        and all(isinstance(v, list) and v and all(isinstance(r, str) for r in v) for v in generic.values())
    ):
        raise DataError('expected {"style": ["reply", ...], ...}', path=path, field="generic")
    if not (isinstance(fillers, list) and fillers and all(isinstance(f, str) for f in fillers)):
        raise DataError('expected ["sentence", ...]', path=path, field="fillers")
    return generic, fillers


def _print_probe(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    names = report["scorers"]
    table = Table(title=f"reward probe on MESC {report['split']} ({report['contexts']} contexts, real reply >= 8 words)")
    for column in ("scorer", "tmpl mean", "tmpl worst", "> other", "R@1", "< 0.2", "pairs", "shorter", "longer", "filler"):
        table.add_column(column, justify="right", no_wrap=True)
    for name in names:
        pair = report.get("pairs", {}).get(name)
        flip = report.get("filler_flip", {}).get(name)
        cells = [report["template_win"][name]["mean"], report["template_win"][name]["worst"], report["other_win"][name],
                 report["recall_at_1"][name], report["low_share"][name], *(
                 (pair["accuracy"], pair["accuracy_shorter_better"], pair["longer_wins"]) if pair else (None, None, None)), flip]  # fmt: skip
        table.add_row(name, *("-" if v is None else f"{v:.3f}" for v in cells))
    Console().print(table)
    print(
        f"tmpl: a generic reply beats the real one (mean / worst style); > other: the real reply beats another dialogue's; "
        f"R@1: the real reply tops {report['n_candidates']} (chance {report['chance_recall_at_1']:.2f}); < 0.2: real replies scored "
        f"below 0.2; pairs / shorter: accuracy on the {report['pairs_split']} pairs / those whose better reply is shorter; longer: "
        "the longer reply wins; filler: appended filler lifts the worse reply of a correct pair"
    )


def _build(args: argparse.Namespace) -> None:
    from rewards.build import build, build_cross_encoder, build_fit_encoder
    from rewards.distil import EPOCHS, build_distilled

    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {args.epochs}")
    if args.cross_encoder:
        report = build_cross_encoder(args.data, epochs=args.epochs or 2, seed=args.seed)
    elif args.fit_encoder:
        report = build_fit_encoder(args.data, epochs=args.epochs or 3, seed=args.seed)
    elif args.distil:
        report = build_distilled(args.data, epochs=args.epochs or EPOCHS, seed=args.seed)
    else:
        report = build(args.data, seed=args.seed)
    print(json.dumps(report, indent=2))


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``rewards score``, ``list``, ``probe`` and ``build`` to the ``mmrl`` command parser."""
    rewards = subparsers.add_parser("rewards", help="score replies with the registered rewards; list them")
    actions = rewards.add_subparsers(dest="rewards_command", metavar="ACTION", required=True)
    score = actions.add_parser("score", help="score the responses of a JSONL file (one JSON line per input with --json)")
    score.add_argument("--input", type=Path, required=True, help='JSONL: {"context": str | [turns], "response": str, ...}')
    which = score.add_mutually_exclusive_group()
    which.add_argument("--criteria", help="comma-separated reward names (default: the seven offline local criteria)")
    which.add_argument("--config", type=Path, help="a reward spec YAML (adds each input's composite total)")
    score.add_argument("--json", action="store_true", help="print one JSON line per input instead of a table")
    score.set_defaults(func=_score)
    listing = actions.add_parser("list", help="the registered rewards: name, version, score range, description")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=_list)
    probe = actions.add_parser("probe", help="can templates, off-context replies, length or filler beat the real counsellor? (MESC)")
    probe.add_argument("--data", type=Path, required=True, help="the MESC directory (MESC.csv, val.json, test.json)")
    probe.add_argument("--split", choices=SPLITS, default="test", help="dialogues whose target turns are probed")
    probe.add_argument("--pairs", choices=PAIR_SPLITS, default="holdout", help="which labelled pair split to score")
    probe.add_argument("--min-words", type=int, default=8, help="probe turns whose real reply has at least this many words")
    probe.add_argument("--limit", type=int, default=0, help="probe only the first N turns (0: all)")
    probe.add_argument(
        "--generics", type=Path, help='JSON {"generic": {style: [reply, ...]}, "fillers": [...]} instead of the built-in ones'
    )
    probe.add_argument("--seed", type=int, default=0, help="seed of the replies drawn from other dialogues")
    probe.add_argument(
        "--cross-encoder",
        action="store_true",
        help="probe the cross_<criterion> scorers instead of the local criteria, and cross_context_fit too",
    )
    probe.add_argument("--json", action="store_true", help="print the full report as JSON")
    probe.set_defaults(func=_probe)
    build = actions.add_parser("build", help="refit the shipped context_fit model and criteria probes from MESC (minutes)")
    build.add_argument("--data", type=Path, required=True, help="the MESC directory")
    build.add_argument("--seed", type=int, default=0)
    opt_in = build.add_mutually_exclusive_group()
    opt_in.add_argument(
        "--cross-encoder",
        action="store_true",
        help="instead: train the opt-in cross_<criterion> scorer on the labelled pairs (~15 min on 2 CPU cores)",
    )
    opt_in.add_argument(
        "--fit-encoder",
        action="store_true",
        help="instead: train the opt-in cross_context_fit bi-encoder on MESC train dialogues (~10 min per epoch on 2 CPU cores)",
    )
    opt_in.add_argument(
        "--distil",
        action="store_true",
        help="instead: distil the cross-encoder into the criteria's learned term (teacher pass ~25 min on 2 CPU cores, cached; training ~5 min)",
    )
    build.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="with --cross-encoder (default 2), --fit-encoder (default 3; the best on dev / val is kept) or --distil (default 20): passes over the training data",
    )
    build.set_defaults(func=_build)
