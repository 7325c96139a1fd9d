"""Ray Train runs of ``mmrl sft`` and ``mmrl train``: one TRL trainer per worker, DeepSpeed ZeRO through TRL.

    options = DistributedOptions(num_workers=2, deepspeed="experiments/deepspeed/zero2.json")
    result = run_distributed(RLRunConfig.from_yaml("experiments/grpo_tiny.yaml"), options)

Ray Train's ``TorchTrainer`` starts ``num_workers`` processes (one GPU each with ``use_gpu``), joins
them in one torch.distributed group (NCCL on GPUs, gloo on CPUs) and runs the local trainer
(``run_sft`` / ``run_rl``) in each. With a DeepSpeed config the transformers/accelerate integration
wraps the policy in DeepSpeed (TRL config's ``deepspeed=``; its "auto" values come from the run
config); without one the workers train with DDP. ``per_device_train_batch_size`` is per worker: a
step sees ``num_workers`` times as many examples (RL: completions) as a local step.

Checkpoints go to ``output_dir`` as in a local run, each worker writing its part (its ZeRO optimizer
shard), and ``resume`` continues from the last one; rank 0 alone writes ``model/``, ``summary.json``
(with ``workers``: each worker's rank, world size and step) and ``eval_val.json``. Every worker
reads and writes ``output_dir`` and the config's paths, so across several nodes they must lie on a
filesystem all nodes share; relative paths are made absolute where the run is launched.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrl.errors import ConfigError, MissingDependencyError, MmrlError
from mmrl.train.config import RLRunConfig, RunConfig, SFTRunConfig
from mmrl.train.runs import RunResult, resume_checkpoint

__all__ = ["DistributedOptions", "connect_ray", "load_deepspeed_config", "run_distributed"]


@dataclass(frozen=True)
class DistributedOptions:
    """How a run is spread over Ray Train workers (the ``--num-workers``, ``--use-gpu``, ``--deepspeed``, ``--address`` flags).

    Parameters:
        num_workers (`int`): Ray Train workers, each running one TRL trainer.
        use_gpu (`bool`, defaults to `False`): one GPU per worker (NCCL); otherwise one CPU per worker (gloo).
        deepspeed (`str` or `None`, defaults to `None`): a DeepSpeed JSON config (``experiments/deepspeed/zero2.json``,
            ``zero3.json``); None trains with DDP.
        address (`str` or `None`, defaults to `None`): an existing Ray cluster (``ray://head:10001``, ``auto``);
            None starts a local Ray (no dashboard) for the run.
    """

    num_workers: int
    use_gpu: bool = False
    deepspeed: str | Path | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 1:
            raise ConfigError(f"--num-workers must be an integer >= 1, got {self.num_workers!r}")


def load_deepspeed_config(path: str | Path, *, use_gpu: bool) -> dict[str, Any]:
    """The DeepSpeed config at ``path`` as a dict for TRL's ``deepspeed=`` ("auto" values are left to the integration).

    For CPU workers (``use_gpu=False``) the optimizer becomes torch's Adam (``torch_adam: true``):
    DeepSpeed's fused Adam would first JIT-compile for about two minutes.
    """
    path = Path(path)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the DeepSpeed config {path}: {exc.strerror or exc} (see experiments/deepspeed/zero2.json)") from exc
    except ValueError as exc:
        raise ConfigError(f"DeepSpeed config {path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"DeepSpeed config {path} must be a JSON object, got {type(config).__name__}")
    zero = config.get("zero_optimization")
    stage = zero.get("stage") if isinstance(zero, dict) else None
    if isinstance(stage, bool) or stage not in (0, 1, 2, 3):
        raise ConfigError(f"DeepSpeed config {path}: zero_optimization.stage must be 0, 1, 2 or 3, got {stage!r}")
    optimizer = config.get("optimizer")
    if not use_gpu and isinstance(optimizer, dict):
        optimizer.setdefault("params", {})["torch_adam"] = True
    return config


def run_distributed(config: RunConfig, options: DistributedOptions, *, callbacks: Sequence[Any] = ()) -> RunResult:
    """Run ``config`` (``SFTRunConfig``: SFT; ``RLRunConfig``: GRPO/RLOO) on Ray Train workers; rank 0's result.

    ``callbacks``: transformers ``TrainerCallback``s, sent to every worker's trainer.
    """
    import ray
    from ray.train import RunConfig as RayRunConfig
    from ray.train import ScalingConfig, TrainingFailedError
    from ray.train.torch import TorchTrainer

    command = _command(config)
    config = _absolute_paths(config)
    resume_checkpoint(config)  # a fresh run over an output_dir with checkpoints is refused here, before any worker starts
    deepspeed = None
    if options.deepspeed is not None:
        if "deepspeed" in config.trl_args:
            raise ConfigError("the DeepSpeed config is given twice: pass --deepspeed or set trl_args.deepspeed, not both")
        deepspeed = load_deepspeed_config(options.deepspeed, use_gpu=options.use_gpu)

    own_ray = connect_ray(options.address)
    try:
        _check_resources(ray.cluster_resources(), options)
        trainer = TorchTrainer(
            _train_worker,
            train_loop_config={"command": command, "config": config, "deepspeed": deepspeed, "callbacks": list(callbacks)},
            scaling_config=ScalingConfig(num_workers=options.num_workers, use_gpu=options.use_gpu),
            run_config=RayRunConfig(
                name=f"{command}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=str(Path(config.output_dir) / "ray_train")
            ),
        )
        try:
            result = trainer.fit()
        except TrainingFailedError as err:
            raise _worker_error(err) from None
    finally:
        if own_ray:
            ray.shutdown()
    return result.return_value


def connect_ray(address: str | None, **local: Any) -> bool:
    """Join the cluster at ``address``, or start a local Ray (``local``: more ``ray.init`` arguments, e.g. ``num_cpus``).

    Returns True when this call connected (the caller shuts Ray down after), False when the process already was.
    """
    import ray

    if ray.is_initialized():
        return False
    if address is None:
        ray.init(include_dashboard=False, **local)
        return True
    if address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
        raise MissingDependencyError(
            f"--address {address} connects through Ray Client, which needs grpcio: pip install 'ray[client]=={ray.__version__}'"
        )
    try:
        ray.init(address=address)
    except (ConnectionError, ValueError) as exc:
        raise MmrlError(
            f"cannot connect to the Ray cluster at {address}: {exc} (is `ray start --head` running there? see docs/cluster.md)"
        ) from None
    return True


def _command(config: RunConfig) -> str:
    if isinstance(config, SFTRunConfig):
        return "sft"
    if isinstance(config, RLRunConfig):
        return "train"
    raise TypeError(f"run_distributed takes an SFTRunConfig or an RLRunConfig, got {type(config).__name__}")


def _absolute_paths(config: RunConfig) -> RunConfig:
    """``config`` with ``output_dir`` and the paths that exist here made absolute (the workers may start elsewhere)."""

    def absolute(value: str | None) -> str | None:
        return str(Path(value).resolve()) if value is not None and Path(value).exists() else value

    paths = {"output_dir": str(Path(config.output_dir).resolve()), "data": absolute(config.data), "predictor": absolute(config.predictor)}
    paths["policy"] = absolute(config.policy)
    if isinstance(config, RLRunConfig) and isinstance(config.reward_spec, str):
        paths["reward_spec"] = absolute(config.reward_spec)
    return dataclasses.replace(config, **paths)


def _check_resources(available: dict[str, float], options: DistributedOptions) -> None:
    """Refuse a run the cluster cannot place (Ray Train would wait for the workers forever)."""
    for resource in ("CPU", "GPU") if options.use_gpu else ("CPU",):
        have = available.get(resource, 0)
        if have < options.num_workers:
            flags = f"--num-workers {options.num_workers}" + (" --use-gpu" if options.use_gpu else "")
            raise ConfigError(
                f"{flags} needs {options.num_workers} {resource}s (one per worker) but the Ray cluster has {have:g}: "
                "lower --num-workers or add nodes (docs/cluster.md)"
            )


def _worker_error(err: Exception) -> MmrlError:
    """The first failed worker's error: its own MmrlError, or one naming the worker and the exception."""
    failures = getattr(err, "worker_failures", None) or {}
    if not failures:
        return MmrlError(f"Ray Train failed: {err}")
    rank, failure = min(failures.items())
    cause = getattr(failure, "cause", None) or failure  # a RayTaskError wraps the worker's exception
    if isinstance(cause, MmrlError):
        return cause
    return MmrlError(f"Ray Train worker {rank} failed with {type(cause).__name__}: {cause} (the worker's traceback is in the log above)")


def _skip_shm_comm_op() -> None:
    """DeepSpeed on CPU first JIT-compiles a shared-memory all-reduce (~60 s); gloo's own all-reduce serves instead."""
    module = importlib.import_module("deepspeed.comm.torch")  # `import deepspeed.comm.torch as m` hands back torch itself
    module.build_shm_op = lambda: None


def _train_worker(payload: dict[str, Any]) -> RunResult:
    """One Ray Train worker: the local trainer with the DeepSpeed config (rank 0's return value reaches the driver)."""
    import torch

    from mmrl.train.rl import run_rl
    from mmrl.train.sft import run_sft

    if not torch.cuda.is_available():
        _skip_shm_comm_op()
    run = run_sft if payload["command"] == "sft" else run_rl
    return run(payload["config"], callbacks=payload["callbacks"], deepspeed=payload["deepspeed"])
