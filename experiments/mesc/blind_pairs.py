"""The raters' copy of the committed blind comparison file (issue 14): each pair of ``docs/results/blind_pairs.jsonl``
with its context from a local MESC copy (situation, the last turns, client utterance, video description), which is
the file ``mmrl rate serve --pairs`` shows. The committed file names each MESC test turn by dialogue and turn and
holds no MESC text (the dataset is not redistributed here); it and its key were drawn with ``mmrl rate make-pairs``::

    mmrl rate make-pairs --a runs/mesc/eval/sft --b runs/mesc/eval/grpo_trust --n 60 --seed 14 \\
        --out docs/results/blind_pairs.jsonl --key docs/results/blind_key.jsonl

(where those eval directories exist, the same command with ``--data MESC_DIR`` writes the raters' copy directly).

    python experiments/mesc/blind_pairs.py --data ../shared/data/mesc --out pairs_for_raters.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrl.data.io import json_lines
from mmrl.errors import DataError
from mmrl.rate.pairs import context_fields, turn_contexts, write_jsonl


def with_context(pairs_path: Path, data: Path, out: Path) -> None:
    """Write ``pairs_path``'s pairs, each with its MESC test turn's context, to ``out``."""
    rows = []
    for _, row in json_lines(pairs_path):
        if isinstance(row, DataError):
            raise row
        rows.append(row)
    turns = [(row["dialogue_id"], row["turn_index"]) for row in rows]
    contexts = turn_contexts(turns, data, format="mesc", split="test", where=str(pairs_path))
    write_jsonl(out, [{**row, **context_fields(contexts[turn])} for row, turn in zip(rows, turns)])
    print(f"wrote {len(rows)} pairs with their MESC context to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=Path("docs/results/blind_pairs.jsonl"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/mesc"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with_context(args.pairs, args.data, args.out)


if __name__ == "__main__":
    main()
