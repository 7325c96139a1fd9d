"""Throughput of the local reward pack (seven criteria + context_fit): batched, one reply at a time, cached, and its share of a GRPO step.

    python benchmarks/rewards.py --json

Scores ``--n`` generated (context, reply) pairs (varied: empathetic, dismissive, unsafe, privacy-
probing, biased, structured blocks) with the seven offline criteria and ``context_fit`` as one Composite. Models are
loaded and warmed up first, so every timing uses the same loaded models; each timed phase gets
texts no earlier phase saw, so no per-text memo (e.g. the shared sentence encoder's) helps it.
``per_sample_per_s`` is measured on ``--per-sample`` pairs, one call per pair. ``cache_speedup`` is
the first (cold) scoring through a fresh RewardCache over the best of three re-scorings of that batch.
``--model`` is the criteria's embedding model: ``static`` (their default, the static distillation of
the packaged MiniLM) or ``transformer`` (the packaged MiniLM itself, run by ``--backend``: auto, onnx,
torch). The first scoring in a process also distils the static model and fits each criterion's
probe when their caches are cold; the warm-up call absorbs that, so the timings are steady-state.
``--pack cross`` times the opt-in transformer scorers instead (``cross_<criterion>`` and ``cross_context_fit``).
``grpo_batch_s`` scores one GRPO batch (``--prompts`` contexts × ``--generations`` completions each) and
``reward_share_of_step`` divides it by ``--step-seconds``, the time of one GRPO step of the policy (default
19 s: SmolLM2-135M, 4 completions × 32 tokens, full fine-tuning, measured on this 2-core machine; see
../shared/docs/platform-notes.md) plus the reward time itself. (Once per-sample scoring costs only a few ms
of call overhead, the batched/per-sample ratio says little, so it is printed without a target.)
Prints ``{"batched_per_s", "per_sample_per_s", "cache_speedup", "grpo_batch_s", "reward_share_of_step", ...}``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the ``rewards`` package: keep its own folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from mmrl.labels import EMOTIONS, STRATEGIES  # noqa: E402
from mmrl.policy.prompts import format_output  # noqa: E402
from rewards.base import Context  # noqa: E402
from rewards.cache import CachedReward, RewardCache  # noqa: E402
from rewards.compose import Component, Composite  # noqa: E402
from rewards.criteria import CRITERIA  # noqa: E402
from rewards.criteria.common import CRITERIA_MODEL  # noqa: E402
from rewards.embeddings import BACKENDS, encoder  # noqa: E402
from rewards.registry import get_reward  # noqa: E402

_PEOPLE = ("my partner", "my boss", "my sister", "my son", "my best friend", "my landlord", "my teacher", "my father")
_FEELINGS = ("lonely", "trapped", "furious", "numb", "ashamed", "scared", "exhausted", "hopeless")
_EVENTS = (
    "since we moved to a new city", "after {who} yelled at me", "because I failed my exam", "since {who} stopped calling",
    "because money is so tight", "after the accident", "since I lost my job", "when {who} checks my phone",
)  # fmt: skip
_OPENERS = ("", "Thank you for telling me. ", "I hear you. ", "Okay. ", "That is a lot to carry. ", "Hmm. ")
_REPLIES = (
    "It sounds like feeling {feeling} {event} has been really hard. What has been the hardest part?",
    "You did not deserve that, and feeling {feeling} makes sense. How are you looking after yourself?",
    "I am really glad you told me. If you are in danger, please call a crisis line such as 988 right now.",
    "Just get over it, everyone feels {feeling} sometimes.",
    "What is your home address and the full name of {who}, so I can look them up?",
    "Women are usually too emotional to handle being {feeling} {event}.",
    "You should stop taking your medication, it is probably why you feel {feeling}.",
    "Feeling {feeling} {event} can be exhausting. When did you first notice it?",
    "I guarantee this will be fixed by tomorrow; science has proven that nobody stays {feeling}.",
    "Maybe try drinking more to stop feeling {feeling} at night.",
    "Let us take this one step at a time; what would help with {who} this week?",
    "Tell {who} exactly how {feeling} you feel and see what happens.",
)


def generate(n: int, rng: random.Random, seen: set[str]) -> tuple[list[Context], list[str]]:
    """``n`` varied (context, completion) pairs, every text unseen so far (no memo of any model can hit);
    every fourth completion is a structured block."""
    contexts, completions = [], []
    while len(completions) < n:
        who, feeling = rng.choice(_PEOPLE), rng.choice(_FEELINGS)
        event = rng.choice(_EVENTS).format(who=who)
        utterance = f"I feel {feeling} {event}, and {rng.choice(_PEOPLE)} does not get it."
        parts = rng.sample(_REPLIES, rng.randint(1, 3))
        reply = rng.choice(_OPENERS) + " ".join(p.format(who=who, feeling=feeling, event=event) for p in parts)
        if utterance in seen or reply in seen:
            continue
        seen.update((utterance, reply))
        turns = [("client", "Hi."), ("therapist", "Hello, how are you today?"), ("client", f"I keep thinking about {rng.choice(_PEOPLE)}.")]
        contexts.append(
            Context(
                client_utterance=utterance,
                history=tuple(rng.choice(turns) for _ in range(rng.randint(0, 4))),
                situation=rng.choice([None, f"Feels {feeling} {event}."]),
                gold_client_emotion=rng.choice(EMOTIONS),
                gold_therapist_emotion=rng.choice(EMOTIONS),
                gold_strategy=rng.choice(STRATEGIES),
                reference=rng.choice(_REPLIES).format(who=who, feeling=feeling, event=event),
            )
        )
        if len(completions) % 4 == 0:
            reply = format_output(rng.choice(EMOTIONS), rng.choice(EMOTIONS), rng.choice(STRATEGIES), reply)
        completions.append(reply)
    return contexts, completions


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(
    n: int = 512,
    per_sample: int = 128,
    seed: int = 0,
    model: str = "static",
    backend: str | None = None,
    prompts: int = 8,
    generations: int = 4,
    step_seconds: float = 19.0,
    scorers: str = "local",
) -> dict:
    """The figures; each phase scores texts no earlier phase saw, so no model-side memo helps it.

    ``model`` is "static" or "transformer"; ``backend`` (default: ``$MMRL_EMBEDDING_BACKEND``, else
    auto) runs the transformer; ``scorers`` is "local" or "cross" (the opt-in transformer scorers).
    """
    if backend is not None:
        os.environ["MMRL_EMBEDDING_BACKEND"] = backend  # the criteria call encoder(model) without a backend
    embedding_model = CRITERIA_MODEL if model == "static" else None
    rng, seen = random.Random(seed), set()
    if scorers not in ("local", "cross"):
        raise ValueError(f"scorers must be 'local' or 'cross', got {scorers!r}")
    if scorers == "cross":  # the opt-in transformer scorers: cross_<criterion> and cross_context_fit
        rewards = [get_reward(f"cross_{name}") for name in CRITERIA] + [get_reward("cross_context_fit")]
    else:
        rewards = [get_reward(name, model=embedding_model) for name in CRITERIA] + [get_reward("context_fit")]
    pack = Composite([Component(r) for r in rewards])
    pack(*generate(16, rng, seen))  # load and warm every model once
    contexts, completions = generate(n, rng, seen)
    batched_s = _timed(lambda: pack(contexts, completions))
    contexts, completions = generate(per_sample, rng, seen)
    per_sample_s = _timed(lambda: [pack(contexts[i : i + 1], completions[i : i + 1]) for i in range(per_sample)])
    contexts, completions = generate(n, rng, seen)
    with tempfile.TemporaryDirectory() as tmp:
        cache = RewardCache(Path(tmp) / "scores.sqlite")
        cached = Composite([Component(CachedReward(r, cache)) for r in rewards])
        cold_s = _timed(lambda: cached(contexts, completions))
        warm_s = min(_timed(lambda: cached(contexts, completions)) for _ in range(3))
    contexts, completions = generate(prompts * generations, rng, seen)
    group_contexts = [c for c in contexts[:prompts] for _ in range(generations)]  # a GRPO batch: each prompt G times
    grpo_batch_s = _timed(lambda: pack(group_contexts, completions))
    batched, single = n / batched_s, per_sample / per_sample_s
    return {
        "batched_per_s": round(batched, 1),
        "per_sample_per_s": round(single, 1),
        "speedup": round(batched / single, 2),
        "cache_speedup": round(cold_s / warm_s, 1),
        "backend": encoder(embedding_model).backend if scorers == "local" else "torch (cross-encoder, fit encoder)",
        "n": n,
        "per_sample_n": per_sample,
        "grpo_batch_s": round(grpo_batch_s, 4),
        "grpo_batch": f"{prompts} prompts x {generations} completions",
        "step_seconds": step_seconds,
        "reward_share_of_step": round(grpo_batch_s / (step_seconds + grpo_batch_s), 4),
        "rewards": [r.name for r in rewards],
        "cold_s": round(cold_s, 4),
        "cached_s": round(warm_s, 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="pairs scored (default 512)")
    parser.add_argument("--per-sample", type=int, default=128, help="pairs scored one at a time (default 128)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated pairs")
    parser.add_argument(
        "--model", choices=("static", "transformer"), default="static", help="the criteria's embedding model (default static)"
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default=None, help="the transformer's backend (default $MMRL_EMBEDDING_BACKEND, else auto)"
    )
    parser.add_argument("--prompts", type=int, default=8, help="prompts in the GRPO batch (default 8)")
    parser.add_argument("--generations", type=int, default=4, help="completions per prompt (default 4)")
    parser.add_argument("--step-seconds", type=float, default=19.0, help="one GRPO step of the policy without rewards (default 19 s)")
    parser.add_argument(
        "--pack", choices=("local", "cross"), default="local", help="local criteria + context_fit, or cross_* + cross_context_fit"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    figures = run(
        args.n, args.per_sample, args.seed, args.model, args.backend, args.prompts, args.generations, args.step_seconds, args.pack
    )
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>18}: {value}")


if __name__ == "__main__":
    main()
