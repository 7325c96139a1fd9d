"""The blind comparison file for outside raters (issue 14): SFT against one GRPO policy on MESC test contexts.

``write``: from the ``mmrl eval`` samples of the two policies on the same seeded test turns, draws ``--n`` contexts
(seeded) where both generations succeeded, puts the two replies in a seeded random order as ``reply_a`` / ``reply_b``
and writes ``docs/results/blind_pairs.jsonl`` (``id``, ``dialogue_id``, ``turn_index``, ``reply_a``, ``reply_b``) and
the key, apart, ``docs/results/blind_key.jsonl`` (``id``, ``a``, ``b``: which system wrote each reply). The committed
file names each MESC context by dialogue and turn and holds no MESC text (the dataset is not redistributed here).

``context``: fills in the context of each pair from a local MESC copy (``situation``, ``history``: the last turns as
``{"speaker", "text"}``, ``client_utterance``, ``video_description``), giving the file raters read (``mmrl rate`` reads this shape).

    python experiments/mesc/blind_pairs.py write --grpo grpo_paper_kl
    python experiments/mesc/blind_pairs.py context --data ../shared/data/mesc --out blind_pairs_with_context.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

#: The newest history turns shown with each pair.
LAST_TURNS = 4


def _samples(path: Path) -> dict[tuple[str, int], dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {(r["dialogue_id"], r["turn_index"]): r for r in rows}


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def write(runs: Path, grpo: str, n: int, seed: int, out: Path) -> None:
    sft, other = _samples(runs / "sft" / "samples.jsonl"), _samples(runs / grpo / "samples.jsonl")
    usable = sorted(k for k in set(sft) & set(other) if sft[k]["generation_failure"] is None and other[k]["generation_failure"] is None)
    if len(usable) < n:
        raise SystemExit(f"only {len(usable)} contexts have both generations; asked for {n}")
    rng = random.Random(seed)
    chosen = sorted(rng.sample(usable, n), key=lambda k: (int(k[0]) if k[0].isdigit() else k[0], k[1]))
    pairs, key = [], []
    for i, k in enumerate(chosen, 1):
        systems = [("sft", sft[k]), (grpo, other[k])]
        rng.shuffle(systems)
        reply = [s["reply"] or s["completion"] for _, s in systems]
        pairs.append({"id": f"p{i:03d}", "dialogue_id": k[0], "turn_index": k[1], "reply_a": reply[0], "reply_b": reply[1]})
        key.append({"id": f"p{i:03d}", "a": systems[0][0], "b": systems[1][0]})
    out.mkdir(parents=True, exist_ok=True)
    _jsonl(out / "blind_pairs.jsonl", pairs)
    _jsonl(out / "blind_key.jsonl", key)
    print(f"wrote {n} pairs (sft vs {grpo}, seed {seed}) to {out / 'blind_pairs.jsonl'}, the key to {out / 'blind_key.jsonl'}")


def context(pairs_path: Path, data: Path, out: Path) -> None:
    from mmrl.data import load_corpus
    from rewards.base import Context

    dialogues = {d.id: d for d in load_corpus(data, "mesc").split("test")}
    rows = []
    for pair in (json.loads(line) for line in pairs_path.read_text(encoding="utf-8").splitlines() if line.strip()):
        if pair["dialogue_id"] not in dialogues:
            raise SystemExit(f"{pairs_path}: pair {pair['id']} names test dialogue {pair['dialogue_id']!r}, which {data} does not hold")
        c = Context.from_dialogue(dialogues[pair["dialogue_id"]], pair["turn_index"])
        history = [{"speaker": speaker, "text": text} for speaker, text in c.history[-LAST_TURNS:]]
        rows.append({**pair, "situation": c.situation, "history": history, "client_utterance": c.client_utterance,
                     "video_description": c.video_description})  # fmt: skip
    _jsonl(out, rows)
    print(f"wrote {len(rows)} pairs with their MESC context to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    w = commands.add_parser("write", help="draw the pairs and write the blind file and its key")
    w.add_argument("--grpo", required=True, help="the GRPO run compared with SFT (its folder under --runs)")
    w.add_argument("--runs", type=Path, default=Path("runs/mesc/eval"))
    w.add_argument("--n", type=int, default=60)
    w.add_argument("--seed", type=int, default=14)
    w.add_argument("--out", type=Path, default=Path("docs/results"))
    c = commands.add_parser("context", help="add each pair's MESC context from a local copy (the raters' file)")
    c.add_argument("--pairs", type=Path, default=Path("docs/results/blind_pairs.jsonl"))
    c.add_argument("--data", type=Path, default=Path("../shared/data/mesc"))
    c.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "write":
        write(args.runs, args.grpo, args.n, args.seed, args.out)
    else:
        context(args.pairs, args.data, args.out)


if __name__ == "__main__":
    main()
