"""``mmrl demo``: the whole loop, small, on the embedded corpus; every stage is the real code path."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from mmrl.data import load_corpus
from mmrl.data.stats import corpus_stats
from mmrl.data.synth import generate

__all__ = ["run_demo"]


def run_demo(out: str | Path | None = None, *, seed: int = 0, n_dialogues: int = 40) -> Path:
    """Run the demo into ``out`` (a new ``mmrl-demo-*`` directory when None) and return it."""
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="mmrl-demo-", dir="."))
    out.mkdir(parents=True, exist_ok=True)
    print(f"[1/2] synthesising {n_dialogues} multimodal dialogues (seed {seed})")
    corpus_dir = generate(out / "corpus", n_dialogues=n_dialogues, seed=seed)
    print("[2/2] loading the corpus and counting it")
    corpus = load_corpus(corpus_dir, "synth", check_media=True)
    stats = corpus_stats(corpus)
    (out / "report.json").write_text(json.dumps({"data": stats}, indent=2))
    lines = ["# mmrl demo report", "", "## Data", "", "| split | dialogues | turns | therapist turns | clips with video | clips with audio |", "|---|---|---|---|---|---|"]
    for split, s in stats["splits"].items():
        lines.append(f"| {split} | {s['dialogues']} | {s['turns']} | {s['therapist_turns']} | {s['rows_with_video']} | {s['rows_with_audio']} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out
