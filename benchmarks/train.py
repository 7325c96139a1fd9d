"""Time of one GRPO step through mmrl's env + reward path vs plain TRL, same tiny model, prompts and rewards.

    python benchmarks/train.py --json

- ``mmrl``: prompts from ``mmrl.policy.dataset.prompt_dataset`` (train split, ``render_messages``, a
  ``context`` JSON column), rewards from ``rewards.trl.to_trl(build_composite(spec))``.
- ``plain_trl``: a ``datasets.Dataset`` of the same prompt messages with the gold labels as plain
  columns, and reward functions written straight against TRL's API that call the same registered
  reward objects (``rewards.registry.get_reward``) on contexts built from those columns.

Both run ``GRPOTrainer`` on ``tiny_policy(seed)`` with the same seed and ``learning_rate=0``, so
they generate the same completions and differ only by mmrl's plumbing. A step is timed from
``on_step_begin`` to ``on_step_end`` (generation, rewards, loss, backward, optimizer); the first
step of each run is a warm-up; runs alternate between the two paths and the medians are reported.
Whole steps on a shared CPU vary by tens of percent, so the file also gives the ratio of the fastest
steps (``ratio_mmrl_over_plain_min``), the reward functions' own time per step (``reward_s_per_step``:
the plumbing that differs) and that difference as a fraction of a step (``reward_overhead_fraction_of_step``).
``ray_train``: GRPO throughput of ``mmrl.train.distributed.run_distributed`` (Ray Train, DeepSpeed ZeRO-2
from ``experiments/deepspeed/zero2.json``) with 2 workers vs 1 worker, measured in the same run on one
local Ray, alternating: each worker generates and trains 8 completions per step (so a 2-worker step
holds 16), one CPU and one torch thread per worker (GPUs with ``--ray-gpu``). A step is timed on rank 0
from ``on_step_begin`` to ``on_step_end`` (generation, rewards, loss, backward, ZeRO reduction and
optimizer step), the first one as warm-up; ``completions_per_s`` = completions per step / median step.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/rewards.py is named like the ``rewards`` package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import PrinterCallback, TrainerCallback  # noqa: E402

SPEC = {"on_missing": "skip", "rewards": {"format": 1.0, "component_match": 1.0}}
ZERO2 = Path(__file__).resolve().parents[1] / "experiments" / "deepspeed" / "zero2.json"
RAY_COMPLETIONS_PER_WORKER = 8


class _StepTimer(TrainerCallback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


class _RankZeroStepTimes(_StepTimer):
    """Step times of a Ray Train worker's trainer, written by rank 0 to ``step_times.json`` in the output directory."""

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            (Path(args.output_dir) / "step_times.json").write_text(json.dumps(self.times))


class _Timed:
    """A reward function that adds its own run time to ``seconds`` (keeps the wrapped ``__name__``)."""

    def __init__(self, func, seconds: list[float]) -> None:
        self.func, self.seconds, self.__name__ = func, seconds, func.__name__

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.func(*args, **kwargs)
        finally:
            self.seconds[0] += time.perf_counter() - start


class _PlainReward:
    """A TRL reward function over plain label columns, calling one registered reward object."""

    def __init__(self, name: str) -> None:
        from rewards.registry import get_reward

        self.reward = get_reward(name)
        self.__name__ = name

    def __call__(self, prompts, completions, client_emotion, therapist_emotion, strategy, **_):
        from rewards.base import Context

        contexts = [
            Context(client_utterance="", gold_client_emotion=c, gold_therapist_emotion=t, gold_strategy=s)
            for c, t, s in zip(client_emotion, therapist_emotion, strategy)
        ]
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [None if math.isnan(s) else float(s) for s in self.reward(contexts, texts).scores]


def _datasets() -> tuple[Dataset, Dataset]:
    from mmrl.policy.dataset import prompt_dataset

    mmrl_data = prompt_dataset(None, split="train")
    labels = [json.loads(c) for c in mmrl_data["context"]]
    plain = Dataset.from_dict(
        {
            "prompt": mmrl_data["prompt"],
            "client_emotion": [c["gold_client_emotion"] for c in labels],
            "therapist_emotion": [c["gold_therapist_emotion"] for c in labels],
            "strategy": [c["gold_strategy"] for c in labels],
        }
    )
    return mmrl_data, plain


def _run(path: str, dataset: Dataset, args: argparse.Namespace) -> tuple[list[float], float]:
    """The step times after the warm-up step, and the reward functions' seconds per step."""
    from trl import GRPOConfig, GRPOTrainer

    from mmrl.policy.models import tiny_policy
    from rewards.spec import build_composite
    from rewards.trl import to_trl

    if path == "mmrl":
        funcs, weights = to_trl(build_composite(SPEC))
    else:
        funcs, weights = [_PlainReward(name) for name in SPEC["rewards"]], [1.0 for _ in SPEC["rewards"]]
    reward_seconds = [0.0]
    funcs = [_Timed(f, reward_seconds) for f in funcs]
    model, tokenizer = tiny_policy(args.seed)
    timer = _StepTimer()
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out, learning_rate=0.0, max_steps=args.steps + 1, per_device_train_batch_size=8, num_generations=4,
            max_completion_length=args.max_completion_length, reward_weights=weights, seed=args.seed, report_to=[],
            save_strategy="no", logging_steps=1, use_cpu=not torch.cuda.is_available(), bf16=False, fp16=False, activation_checkpointing=False, disable_tqdm=True,
        )  # fmt: skip
        trainer = GRPOTrainer(
            model=model, reward_funcs=funcs, args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[timer]
        )
        trainer.remove_callback(PrinterCallback)  # stdout carries the JSON only
        trainer.train()
    return timer.times[1:], reward_seconds[0] / len(timer.times)


def _ray_run(workers: int, args: argparse.Namespace) -> list[float]:
    """Rank 0's step times after the warm-up step, GRPO of ``tiny`` on ``workers`` Ray Train workers with ZeRO-2."""
    from mmrl.train.config import RLRunConfig
    from mmrl.train.distributed import DistributedOptions, run_distributed

    with tempfile.TemporaryDirectory() as out:
        config = RLRunConfig(
            policy="tiny", reward_spec=SPEC, learning_rate=1e-3, num_generations=4, per_device_train_batch_size=RAY_COMPLETIONS_PER_WORKER,
            max_completion_length=args.max_completion_length, max_steps=args.ray_steps + 1, save_steps=args.ray_steps + 1,
            eval_max_prompts=1, report_to=["none"], seed=args.seed, output_dir=out, trl_args={"disable_tqdm": True},
        )  # fmt: skip
        options = DistributedOptions(num_workers=workers, use_gpu=args.ray_gpu, deepspeed=ZERO2)
        run_distributed(config, options, callbacks=[_RankZeroStepTimes()])
        return json.loads((Path(out) / "step_times.json").read_text())[1:]


def measure_ray_train(args: argparse.Namespace) -> dict:
    """Ray Train throughput, 2 workers vs 1, alternating on one local Ray (see the module docstring)."""
    import ray

    load_before = os.getloadavg()[0]
    ray.init(include_dashboard=False, **({} if args.ray_gpu else {"num_cpus": 2}))
    times: dict[int, list[float]] = {1: [], 2: []}
    try:
        for _ in range(args.ray_repeats):
            for workers in (1, 2):
                times[workers] += _ray_run(workers, args)
    finally:
        ray.shutdown()
    step = {workers: statistics.median(values) for workers, values in times.items()}
    completions = {workers: workers * RAY_COMPLETIONS_PER_WORKER / step[workers] for workers in step}
    return {
        "deepspeed": "experiments/deepspeed/zero2.json",
        "device": "cuda" if args.ray_gpu else "cpu",
        "completions_per_step_per_worker": RAY_COMPLETIONS_PER_WORKER,
        "steps_timed_per_worker_count": len(times[1]),
        "step_s": {f"{w}_worker{'s' if w > 1 else ''}": round(step[w], 4) for w in step},
        "step_s_all": {f"{w}_worker{'s' if w > 1 else ''}": [round(t, 4) for t in times[w]] for w in times},
        "steps_per_s_1_worker": round(1 / step[1], 4),
        "steps_per_s_2_workers": round(1 / step[2], 4),
        "completions_per_s_1_worker": round(completions[1], 3),
        "completions_per_s_2_workers": round(completions[2], 3),
        "throughput_2_workers_over_1": round(completions[2] / completions[1], 4),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def measure(args: argparse.Namespace) -> dict:
    """The benchmark's figures (see the module docstring)."""
    mmrl_data, plain_data = _datasets()
    times: dict[str, list[float]] = {"mmrl": [], "plain_trl": []}
    reward_times: dict[str, list[float]] = {"mmrl": [], "plain_trl": []}
    for _ in range(args.repeats):
        for path, dataset in (("plain_trl", plain_data), ("mmrl", mmrl_data)):
            step_times, reward_time = _run(path, dataset, args)
            times[path] += step_times
            reward_times[path].append(reward_time)
    median = {path: statistics.median(values) for path, values in times.items()}
    reward_median = {path: statistics.median(values) for path, values in reward_times.items()}
    return {
        "policy": "tiny",
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": args.threads,
        "completions_per_step": 8,
        "max_completion_length": args.max_completion_length,
        "steps_timed_per_path": len(times["mmrl"]),
        "grpo_step_s": {path: round(value, 4) for path, value in median.items()},
        "grpo_step_s_all": {path: [round(t, 4) for t in values] for path, values in times.items()},
        "ratio_mmrl_over_plain": round(median["mmrl"] / median["plain_trl"], 4),
        "ratio_mmrl_over_plain_min": round(min(times["mmrl"]) / min(times["plain_trl"]), 4),
        "reward_s_per_step": {path: round(value, 5) for path, value in reward_median.items()},
        "reward_overhead_fraction_of_step": round((reward_median["mmrl"] - reward_median["plain_trl"]) / median["plain_trl"], 5),
        "target_ratio": 1.05,
        "ray_train": measure_ray_train(args) if args.ray_repeats else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per run (after one warm-up step)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per path, alternating")
    parser.add_argument("--max-completion-length", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ray-steps", type=int, default=4, help="Ray Train: timed steps per run (after one warm-up step)")
    parser.add_argument("--ray-repeats", type=int, default=1, help="Ray Train: runs per worker count, alternating (0: skip)")
    parser.add_argument("--ray-gpu", action="store_true", help="Ray Train: one GPU per worker (needs 2 GPUs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    with contextlib.redirect_stdout(sys.stderr):  # libraries' logs (DeepSpeed logs to stdout) stay off the JSON
        result = measure(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        step = result["grpo_step_s"]
        print(f"GRPO step: mmrl {step['mmrl']:.3f} s, plain TRL {step['plain_trl']:.3f} s, ratio {result['ratio_mmrl_over_plain']:.3f}")
        if result["ray_train"]:
            ray_train = result["ray_train"]
            print(
                f"Ray Train GRPO: {ray_train['completions_per_s_1_worker']:.2f} completions/s on 1 worker, "
                f"{ray_train['completions_per_s_2_workers']:.2f} on 2 ({ray_train['throughput_2_workers_over_1']:.2f}x)"
            )


if __name__ == "__main__":
    main()
