"""The ``mmrl rate`` commands: make-pairs, add-rater, serve, export, report. ``add_commands(subparsers)`` adds them."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from mmrl.data import DIALOGUE_FORMATS

__all__ = ["add_commands"]


def _make_pairs(args: argparse.Namespace) -> None:
    from mmrl.errors import ConfigError
    from mmrl.outputs import check_output
    from mmrl.rate.pairs import make_pairs, write_jsonl

    if args.out.resolve() == args.key.resolve():
        raise ConfigError("--out and --key are the same file: the key must be kept apart from the blind file raters see")
    inputs = [args.a / "samples.jsonl", args.b / "samples.jsonl"]
    check_output(args.out, inputs=inputs, overwrite=args.overwrite)
    check_output(args.key, inputs=inputs, overwrite=args.overwrite)
    pairs, key = make_pairs(args.a, args.b, n=args.n, seed=args.seed, data=args.data, format=args.format)
    write_jsonl(args.out, pairs)
    write_jsonl(args.key, key)
    context = "with context from --data" if args.data else "without context (pass --data to add it)"
    print(f"wrote {len(pairs)} blind pairs {context} to {args.out}; the key (keep it from raters) to {args.key}")


def _add_rater(args: argparse.Namespace) -> None:
    from mmrl.rate.store import Store

    store = Store(args.db)
    token = store.add_rater(args.name, admin=args.admin)
    store.close()
    role = "admin" if args.admin else "rater"
    print(f"added {role} {args.name!r} to {args.db}. Their token (shown once, only its hash is stored; send it privately):")
    print(token)


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from mmrl.rate.app import create_app
    from mmrl.rate.pairs import load_pairs
    from mmrl.rate.store import Store

    pairs = load_pairs(args.pairs)
    store = Store(args.db, create=False)
    if not store.raters():
        print(f"warning: {args.db} has no raters yet; add them with `mmrl rate add-rater NAME --db {args.db}`", file=sys.stderr)
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        print(
            f"warning: serving on {args.host}, reachable from other machines; the app speaks plain HTTP (put it behind TLS)",
            file=sys.stderr,
        )
    missing = sum(not p.has_context for p in pairs)
    if missing:
        print(f"note: {missing} of {len(pairs)} pairs have no context; raters will be told it is missing", file=sys.stderr)
    print(
        f"serving {len(pairs)} pairs from {args.pairs} at http://{args.host}:{args.port}/ (ratings in {args.db}); Ctrl-C stops", flush=True
    )
    uvicorn.run(create_app(pairs, store), host=args.host, port=args.port, log_level="info", server_header=False)


def _export(args: argparse.Namespace) -> None:
    from mmrl.outputs import check_output
    from mmrl.rate.store import Store

    check_output(args.out, inputs=[args.db], overwrite=args.overwrite)
    store = Store(args.db, create=False)
    n = store.export_csv(args.out)
    print(f"wrote {n} judgements to {args.out}")


def _report(args: argparse.Namespace) -> None:
    from mmrl.outputs import check_output
    from mmrl.rate.pairs import load_key
    from mmrl.rate.report import REPORT_FILES, load_scores, write_report
    from mmrl.rate.store import Store

    check_output(args.out, inputs=[args.db, args.key, *(args.scores or [])], overwrite=args.overwrite, writes=REPORT_FILES)
    store = Store(args.db, create=False)
    scores = [row for path in args.scores or [] for row in load_scores(path)]
    result = write_report(store.rows(), load_key(args.key), args.out, scores=scores, n_boot=args.bootstrap, seed=args.seed)
    print((args.out / "report.md").read_text(encoding="utf-8"))
    print(
        f"report.md, preferences.csv, agreement.csv{', scorer_agreement.csv' if scores else ''} and preferences.png are in {result['out']}"
    )


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``rate`` (with its subcommands) to an ``add_subparsers()`` object."""
    rate = subparsers.add_parser(
        "rate",
        help="human evaluation: blind pairwise rating web app, agreement statistics, judge-human agreement",
        description="A rating round: make-pairs -> add-rater -> serve -> report (README, 'Human evaluation').",
    )
    commands = rate.add_subparsers(dest="rate_command", metavar="SUBCOMMAND", required=True)

    make = commands.add_parser("make-pairs", help="a blind pair file and its separate key from two `mmrl eval --out` directories")
    make.add_argument("--a", type=Path, required=True, metavar="EVAL_DIR_A", help="one system's `mmrl eval --out` directory")
    make.add_argument("--b", type=Path, required=True, metavar="EVAL_DIR_B", help="the other system's, evaluated on the same turns")
    make.add_argument("--out", type=Path, required=True, help="the blind pairs jsonl raters see")
    make.add_argument("--key", type=Path, required=True, help="the key jsonl (which system wrote reply_a / reply_b); keep it from raters")
    make.add_argument("--n", type=int, default=60, help="pairs to draw (default 60)")
    make.add_argument("--seed", type=int, default=0, help="seed of the draw and of the reply order (default 0)")
    make.add_argument("--data", type=Path, default=None, help="the evals' data, to add each turn's context (situation, last turns, client)")
    make.add_argument("--format", choices=DIALOGUE_FORMATS, default=None, help="--data's format (default: detected)")
    make.add_argument("--overwrite", action="store_true", help="replace existing --out / --key files")
    make.set_defaults(func=_make_pairs)

    add = commands.add_parser("add-rater", help="add a rater (or --admin) and print their token once")
    add.add_argument("name", help="the rater's name (shown in reports and exports)")
    add.add_argument("--db", type=Path, required=True, help="the round's SQLite database (created if missing)")
    add.add_argument("--admin", action="store_true", help="an admin token: sees every rater's progress")
    add.set_defaults(func=_add_rater)

    serve = commands.add_parser("serve", help="serve the rating web app")
    serve.add_argument("--pairs", type=Path, required=True, metavar="FILE.jsonl", help="the blind pairs file")
    serve.add_argument("--db", type=Path, required=True, help="the round's SQLite database (from add-rater)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    serve.set_defaults(func=_serve)

    export = commands.add_parser("export", help="every judgement as CSV")
    export.add_argument("--db", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True, help="the CSV to write")
    export.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    export.set_defaults(func=_export)

    report = commands.add_parser("report", help="preference shares, inter-rater agreement and scorer-human agreement")
    report.add_argument("--db", type=Path, required=True)
    report.add_argument("--key", type=Path, required=True, help="the key jsonl from make-pairs")
    report.add_argument(
        "--scores", type=Path, action="append", default=None, help='automatic scores jsonl ({"id", "system", "scores": {...}}); repeatable'
    )
    report.add_argument("--out", type=Path, required=True, help="directory for report.md, the CSVs and preferences.png")
    report.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    report.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    report.add_argument("--overwrite", action="store_true", help="replace an earlier report in --out")
    report.set_defaults(func=_report)
