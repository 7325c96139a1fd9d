"""Predictor throughput on the synthetic corpus: turns/s of the text path and of audio+video+text.

Each figure is end to end, ``MultimodalPredictor.predict`` on every target turn: featurization
(text embeddings, media decoding, log-mel, frame sampling) plus the network. "cold" starts from an
empty text-embedding cache; "warm" repeats with the cache filled. Weights are freshly initialised:
throughput does not depend on training.

    python benchmarks/predictor.py --json [--dialogues 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from mmrl.data import load_corpus
from mmrl.data.synth import generate
from mmrl.predictor.config import PredictorConfig
from mmrl.predictor.evaluate import items_of
from mmrl.predictor.model import MultimodalPredictor


def _turns_per_second(predictor: MultimodalPredictor, items: list) -> float:
    started = time.perf_counter()
    predictor.predict(items)
    return len(items) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialogues", type=int, default=20, help="size of the synthetic corpus")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = load_corpus(generate(Path(tmp) / "synth", n_dialogues=args.dialogues, seed=0), "synth")
        items = items_of(corpus.dialogues)
        results = {"turns": len(items), "threads": args.threads}
        for name, modalities in (("text", ["text", "description", "history"]), ("audio_video_text", ["text", "audio", "video", "history"])):
            config = PredictorConfig(modalities=modalities, cache_dir=str(Path(tmp) / f"cache-{name}"))
            predictor = MultimodalPredictor.build(config)
            results[name] = {
                "cold_turns_per_s": round(_turns_per_second(predictor, items), 1),
                "warm_turns_per_s": round(_turns_per_second(predictor, items), 1),
            }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
