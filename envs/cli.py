"""``mmrl env list``, ``mmrl env check`` and ``mmrl env prompts``.

- ``list``: the registered ``mmrl/`` env ids and their entry points.
- ``check``: Gymnasium's ``check_env`` on each id (default: all), built with ``--data`` / ``--split`` when given.
- ``prompts``: the TRL prompt dataset of a split (``mmrl.policy.dataset.prompt_dataset``) as JSONL, one
  row per therapist turn (``prompt``, ``context``, ``dialogue_id``, ``turn_index``, ``split``).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from mmrl.config import suggest
from mmrl.data import DIALOGUE_FORMATS, SPLITS
from mmrl.errors import ConfigError

__all__ = ["add_commands"]


def _ids() -> list[str]:
    import gymnasium

    import envs  # noqa: F401  (registers the ids)

    return sorted(env_id for env_id in gymnasium.registry if env_id.startswith("mmrl/"))


def _list(args: argparse.Namespace) -> None:
    import gymnasium

    rows = [{"id": env_id, "entry_point": gymnasium.spec(env_id).entry_point, "kwargs": gymnasium.spec(env_id).kwargs} for env_id in _ids()]
    if args.json:
        print(json.dumps(rows))
        return
    for row in rows:
        extra = f" {row['kwargs']}" if row["kwargs"] else ""
        print(f"{row['id']:26s} {row['entry_point']}{extra}")


def _check(args: argparse.Namespace) -> None:
    import gymnasium
    from gymnasium.utils.env_checker import check_env

    known = _ids()
    for env_id in args.ids:
        if env_id not in known:
            hint = suggest(env_id, known)
            raise ConfigError(f"unknown env id {env_id!r}{hint} (registered: {', '.join(known)})")
    kwargs = {key: value for key, value in (("data", args.data and str(args.data)), ("split", args.split)) if value is not None}
    failed = []
    for env_id in args.ids or known:
        env = gymnasium.make(env_id, **kwargs)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                check_env(env.unwrapped, skip_render_check=True)
                status = "ok" + (f" (warnings: {'; '.join(str(w.message) for w in caught)})" if caught else "")
            except AssertionError as error:
                status = f"FAILED: {error}"
                failed.append(env_id)
        env.close()
        print(f"{env_id:26s} {status}")
    if failed:
        raise ConfigError(f"check_env failed for {', '.join(failed)}")


def _prompts(args: argparse.Namespace) -> None:
    from mmrl.outputs import check_output
    from mmrl.policy.dataset import prompt_dataset

    check_output(args.out, inputs=[args.data], overwrite=args.overwrite)
    corpus = None
    if args.data is not None:
        from mmrl.data import load_corpus, report_skipped

        corpus = load_corpus(args.data, args.format, on_error=args.on_error)
        report_skipped(corpus)
    dataset = prompt_dataset(
        corpus,
        split=args.split,
        training=not args.eval,
        max_history_turns=args.max_history_turns,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    dataset.to_json(str(args.out), lines=True, force_ascii=False)
    print(f"wrote {len(dataset)} prompts of split {args.split!r} to {args.out}")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``env list``, ``env check`` and ``env prompts`` to the ``mmrl`` command parser."""
    env = subparsers.add_parser("env", help="the Gymnasium counseling envs: list, check, export TRL prompts")
    actions = env.add_subparsers(dest="env_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the registered mmrl/ env ids and entry points")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=_list)

    check = actions.add_parser("check", help="run Gymnasium's check_env on env ids (default: every mmrl/ id)")
    check.add_argument("ids", nargs="*", help="env ids, e.g. mmrl/Counseling-v0")
    check.add_argument("--data", type=Path, default=None, help="dialogue data for every env (default: the embedded corpus)")
    check.add_argument("--split", choices=SPLITS, default=None, help="the split the envs play (default: train)")
    check.set_defaults(func=_check)

    prompts = actions.add_parser("prompts", help="write the TRL prompt dataset of a split as JSONL")
    prompts.add_argument(
        "data", type=Path, nargs="?", default=None, help="a MESC/synth directory or a .jsonl file (default: the embedded corpus)"
    )
    prompts.add_argument("--out", type=Path, required=True, help="the JSONL file to write")
    prompts.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    prompts.add_argument("--format", choices=DIALOGUE_FORMATS, default=None, help="default: detected")
    prompts.add_argument("--split", choices=SPLITS, default="train", help="default: train")
    prompts.add_argument("--eval", action="store_true", help="an evaluation dataset: allows the val and test splits")
    prompts.add_argument("--max-history-turns", type=int, default=16, help="history turns kept in each prompt (default 16)")
    prompts.add_argument(
        "--on-error", choices=("raise", "skip"), default="raise", help="stop at a bad record, or skip it and count it (stderr)"
    )
    prompts.set_defaults(func=_prompts)
