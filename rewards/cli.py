"""``mmrl rewards score`` and ``mmrl rewards list``.

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
import difflib
import json
from pathlib import Path

from mmrl.data.schema import SPEAKERS
from mmrl.errors import DataError
from mmrl.labels import normalise_emotion, normalise_strategy
from rewards.base import Context
from rewards.compose import Component, Composite, CompositeResult

__all__ = ["add_commands", "read_inputs", "INPUT_FIELDS"]

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
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"cannot read the input: {exc.strerror or exc}", path=path) from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = {"path": path, "line": number}
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON: {exc.msg} at column {exc.colno}", **where) from exc
        if not isinstance(record, dict):
            raise DataError(f"expected a JSON object, got {type(record).__name__}", **where)
        for key in record:
            if key not in INPUT_FIELDS:
                close = difflib.get_close_matches(key, INPUT_FIELDS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
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


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``rewards score`` and ``rewards list`` to the ``mmrl`` command parser."""
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
