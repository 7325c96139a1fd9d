"""Synthetic rating rounds for the tests and the README (no dataset text: every pair here is made up).

``python -m tests.rate.helpers OUT`` runs a scripted round (three simulated raters) and writes its report to OUT.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from mmrl.rate import QUESTIONS
from mmrl.rate.store import Store

INJECTIONS = (
    "<script>window.pwned=1</script>",
    '<img src=x onerror="window.pwned=1;alert(1)">',
    "{{7*7}} {% raw %}**bold** [link](javascript:window.pwned=1)",
)


def synthetic_pairs(n: int = 6, *, seed: int = 0, injection: bool = False) -> tuple[list[dict], list[dict]]:
    """``n`` made-up blind pairs (blind format, with context) and their key: system "warm" against "terse"."""
    rng = random.Random(seed)
    pairs, key = [], []
    for i in range(1, n + 1):
        warm = f"That sounds really hard, and it makes sense you feel worn out (example {i}). What has helped a little so far?"
        terse = f"Try to sleep more. (example {i})"
        if injection:
            warm, terse = INJECTIONS[(i - 1) % 3], INJECTIONS[i % 3]
        flip = rng.random() < 0.5
        pairs.append({
            "id": f"s{i:02d}", "reply_a": terse if flip else warm, "reply_b": warm if flip else terse,
            "situation": "A made-up student is stressed about exams" + (" <b>not bold</b>" if injection else ""),
            "history": [{"speaker": "therapist", "text": "Hi, what brings you here today?"}, {"speaker": "client", "text": "Exams, mostly."}],
            "client_utterance": "I can't sleep and I keep thinking I'll fail." + (INJECTIONS[0] if injection else ""),
            "video_description": "The client looks down and rubs their eyes.",
        })  # fmt: skip
        key.append({"id": f"s{i:02d}", "a": "terse" if flip else "warm", "b": "warm" if flip else "terse"})
    return pairs, key


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def simulate_raters(store: Store, key: list[dict], *, raters=("ana", "ben", "chen"), p_warm=(0.8, 0.7, 0.6), seed: int = 0) -> None:
    """Each simulated rater prefers "warm" with their probability, says tie one time in ten, on every question."""
    rng = random.Random(seed)
    for name, p in zip(raters, p_warm):
        store.add_rater(name)
        rater = next(r for r in store.raters() if r.name == name)
        for row in key:
            choices = {}
            for q in QUESTIONS:
                u = rng.random()
                system = "tie" if u < 0.1 else "warm" if u < 0.1 + 0.9 * p else "terse"
                choices[q] = "tie" if system == "tie" else ("a" if row["a"] == system else "b")
            store.save(rater, row["id"], choices, "ab")


def synthetic_scores(key: list[dict], *, seed: int = 0) -> list[dict]:
    """A made-up scorer that scores "warm" higher most of the time."""
    rng = random.Random(seed)
    rows = []
    for row in key:
        for system in ("warm", "terse"):
            base = 0.7 if system == "warm" else 0.4
            rows.append(
                {
                    "id": row["id"],
                    "system": system,
                    "scorer": "toy_judge",
                    "scores": {q: round(base + rng.gauss(0, 0.2), 3) for q in QUESTIONS},
                }
            )
    return rows


def scripted_round(out: Path, n: int = 20) -> Path:
    """Pairs, key, three simulated raters and scores under ``out``; returns the database path."""
    out.mkdir(parents=True, exist_ok=True)
    pairs, key = synthetic_pairs(n)
    write_jsonl(out / "pairs.jsonl", pairs)
    write_jsonl(out / "key.jsonl", key)
    write_jsonl(out / "scores.jsonl", synthetic_scores(key))
    store = Store(out / "ratings.sqlite")
    simulate_raters(store, key)
    store.close()
    return out / "ratings.sqlite"


if __name__ == "__main__":
    from mmrl.cli import main

    root = Path(sys.argv[1])
    db = scripted_round(root)
    sys.exit(
        main(
            [
                "rate",
                "report",
                "--db",
                str(db),
                "--key",
                str(root / "key.jsonl"),
                "--scores",
                str(root / "scores.jsonl"),
                "--out",
                str(root / "report"),
            ]
        )
    )
