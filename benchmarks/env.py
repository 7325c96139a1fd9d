"""Throughput of CounselingEnv (Counseling-v0, with media) with the replay client.

    python benchmarks/env.py --json

Runs on the embedded synthetic corpus (every split, ``--n-dialogues`` dialogues, 64x64 mp4 + 16 kHz
wav per client turn). Media is cached: one untimed warm-up pass decodes every replayed turn once,
as a training run's first epoch would. The reply is one fixed sentence. Figures, in env steps
(therapist turns) per second:

- ``steps_per_s_rewards_off``: no reward configured.
- ``steps_per_s_rewards_local``: the seven offline trust criteria (``rewards.criteria``, weight 1
  each) scored one reply per step; replies cycle through 16 sentences, so the shared sentence
  encoder's memo serves repeats (contexts are new for every turn of the corpus).
- ``steps_per_s_vector2``: rewards off, ``gymnasium.vector.SyncVectorEnv`` of 2 warmed envs with
  its defaults (counted as 2 steps per vector step); ``steps_per_s_async2`` is the same with ``AsyncVectorEnv`` (2 processes,
  pipes rather than shared memory, which would copy the 16 k-character Text spaces char by char).
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/rewards.py is named like the ``rewards`` package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import gymnasium as gym  # noqa: E402

from envs.counseling import CounselingEnv  # noqa: E402
from mmrl.data.synth import demo_corpus  # noqa: E402
from rewards.criteria import CRITERIA  # noqa: E402

_REPLIES = tuple(
    f"{opening} {middle}"
    for opening in ("It sounds like this has been really hard.", "Thank you for telling me.", "I hear you.", "That makes sense.")
    for middle in ("What has been the hardest part?", "How are you looking after yourself?", "When did it start?", "Tell me more.")
)


def _make(data, **kwargs) -> CounselingEnv:
    return CounselingEnv(data, split=None, **kwargs)


def _run(env: CounselingEnv, steps: int, vary: bool = False) -> float:
    env.reset(seed=0)
    start = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step(_REPLIES[i % len(_REPLIES)] if vary else _REPLIES[0])
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def _warm(env: CounselingEnv) -> None:
    for index in range(len(env.dialogues)):
        env.reset(options={"dialogue_index": index})
        while not any(env.step(_REPLIES[0])[2:4]):
            pass


def _warmed(data) -> CounselingEnv:
    env = _make(data)
    _warm(env)
    return env


def _vector(vector: gym.vector.VectorEnv, steps: int) -> float:
    vector.reset(seed=0)
    actions = (_REPLIES[0],) * vector.num_envs
    start = time.perf_counter()
    for _ in range(steps // vector.num_envs):
        vector.step(actions)
    rate = (steps // vector.num_envs) * vector.num_envs / (time.perf_counter() - start)
    vector.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--n-dialogues", type=int, default=40, help="size of the synthetic corpus (default 40)")
    parser.add_argument("--steps", type=int, default=20_000, help="timed steps with rewards off (default 20000)")
    parser.add_argument("--reward-steps", type=int, default=300, help="timed steps with the local rewards (default 300)")
    args = parser.parse_args()

    data = demo_corpus(n_dialogues=args.n_dialogues)
    env = _make(data)
    _warm(env)
    off = _run(env, args.steps)

    rewarded = _make(data, reward_spec={"rewards": {name: 1.0 for name in CRITERIA}})
    _warm(rewarded)  # also loads the sentence encoder
    local = _run(rewarded, args.reward_steps, vary=True)

    factories = [lambda: _warmed(data) for _ in range(2)]
    sync2 = _vector(gym.vector.SyncVectorEnv(factories), args.steps)
    async2 = _vector(gym.vector.AsyncVectorEnv(factories, shared_memory=False), args.steps // 4)

    figures = {
        "steps_per_s_rewards_off": round(off, 1),
        "steps_per_s_rewards_local": round(local, 1),
        "steps_per_s_vector2": round(sync2, 1),
        "steps_per_s_async2": round(async2, 1),
        "dialogues": len(env.dialogues),
        "turns_per_episode": round(sum(len(d.target_indices()) for d in env.dialogues) / len(env.dialogues), 2),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:28s} {value}")


if __name__ == "__main__":
    main()
