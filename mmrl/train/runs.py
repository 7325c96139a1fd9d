"""What every TRL run of mmrl shares: its train dialogues, its checkpoints, its TRL arguments, its outputs.

A run's ``output_dir`` holds ``checkpoint-<step>/`` (every ``save_steps``), ``runs/`` (TensorBoard),
``config.yaml`` (the config as run), ``model/`` (the final policy, LoRA merged) and ``summary.json``.
In a distributed run (``mmrl.train.distributed``) every worker writes its part of each checkpoint and
rank 0 alone writes the final outputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml

from mmrl.data import Corpus, Dialogue, require_train
from mmrl.data.sources import load_source
from mmrl.errors import ConfigError, DataError, MissingDependencyError
from mmrl.outputs import check_writable_dir
from mmrl.train.checkpoints import checkpoint_step, checkpoints, last_checkpoint
from mmrl.train.config import RunConfig

__all__ = [
    "RESUME_LOG",
    "START_CONFIG",
    "RunResult",
    "data_corpus",
    "finish_run",
    "is_main_process",
    "load_predictor",
    "load_split",
    "resume_checkpoint",
    "trl_arguments",
    "wait_for_everyone",
]


@dataclass
class RunResult:
    """What a finished run left: where, how far it got, where it resumed from, its final metrics.

    ``workers``: one ``{"rank", "world_size", "global_step", "device"}`` per training process, as each
    one's trainer saw it (a local run has one).
    """

    output_dir: Path
    global_step: int
    resumed_from: Path | None
    model_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    workers: list[dict[str, Any]] = field(default_factory=list)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    """True in a local run and on rank 0 of a distributed one: the process that writes a run's final outputs."""
    return not _distributed() or dist.get_rank() == 0


def wait_for_everyone() -> None:
    """A barrier across the workers of a distributed run; nothing in a local run."""
    if _distributed():
        dist.barrier()


def _stamp(data: str | None) -> tuple:
    """What changes when the files at ``data`` change: name, size and modification time of the file, or of a directory's files."""
    if data is None or not Path(data).exists():
        return ()
    path = Path(data)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)


@functools.lru_cache(maxsize=4)
def _corpus(data: str | None, format: str | None, on_error: str, stamp: tuple) -> Corpus:
    corpus = load_source(data, format=format, on_error=on_error)
    if corpus.report.skipped:
        warnings.warn(corpus.report.describe(data), stacklevel=3)
    return corpus


def data_corpus(config: RunConfig) -> Corpus:
    """The corpus of ``config.data`` (under ``on_error: skip`` bad records are skipped and counted).

    Loaded once for the train prompts, the val evaluation and the summary of a run, and again whenever its files change.
    """
    return _corpus(config.data, config.data_format, config.on_error, _stamp(config.data))


def load_split(config: RunConfig, split: str = "train") -> list[Dialogue]:
    """The dialogues of ``split`` from ``config.data`` (None: the embedded synthetic corpus).

    ``split="train"`` goes through ``require_train``: training never sees val/test.
    """
    corpus = data_corpus(config)
    dialogues = corpus.split(split)
    if split == "train":
        dialogues = require_train(dialogues, purpose="policy training")
        if not dialogues:
            found = sorted({d.split for d in corpus.dialogues})
            raise DataError(
                f"no train-split dialogue to train on (the data holds splits {found}); training uses the train split only",
                path=corpus.source,
            )
    return dialogues


def load_predictor(config: RunConfig):
    """The MultimodalPredictor of ``config.predictor``, or None."""
    if config.predictor is None:
        return None
    from mmrl.predictor.model import MultimodalPredictor

    return MultimodalPredictor.load(config.predictor)


def resume_checkpoint(config: RunConfig) -> Path | None:
    """The checkpoint to resume from: the last one when ``config.resume``, else None.

    First checks that ``output_dir`` can be written (a read-only, full or file location stops the run
    before any model loads). Resumes from the newest complete checkpoint (``mmrl.train.checkpoints``: weights, optimizer,
    scheduler, RNG and trainer state all load), warning about newer incomplete ones it passes over.
    Refuses to start a fresh run over an output_dir that holds checkpoints (they would be mixed), to
    resume where every checkpoint is incomplete (it would start afresh and overwrite them), and to
    resume a run whose last checkpoint is already at ``max_steps`` (it would train one more step and
    overwrite the run's model and reports); with ``resume`` and no checkpoint yet, warns and starts from step 0.
    """
    output_dir = Path(config.output_dir)
    check_writable_dir(output_dir)
    existing = checkpoints(output_dir)
    if config.resume:
        checkpoint = last_checkpoint(output_dir, warn=True)
        if checkpoint is None and existing:
            raise ConfigError(
                f"no complete checkpoint in {output_dir} to resume from ({', '.join(p.name for p in existing)}: see the warnings); "
                "start a new output_dir, or delete them to train from step 0"
            )
        if checkpoint is None:
            warnings.warn(f"resume: no complete checkpoint in {output_dir}; starting from step 0", stacklevel=2)
        elif checkpoint_step(checkpoint) >= config.max_steps:
            raise ConfigError(
                f"{checkpoint} is at step {checkpoint_step(checkpoint)} and max_steps is {config.max_steps}: the run is "
                "complete, nothing to resume (nothing was written); raise max_steps to train further"
            )
        else:
            _check_same_config(config, checkpoint)
        return checkpoint
    if existing:
        raise ConfigError(
            f"{output_dir} already holds {existing[-1].name}: pass --resume (resume: true) to continue that run, "
            "or choose another output_dir"
        )
    if is_main_process():
        _write_yaml(Path(config.output_dir) / START_CONFIG, config.to_dict())
    return None


#: The config a run started with, written before its first step; a resume is compared with it.
START_CONFIG = "config_start.yaml"
#: Where a forced resume records the config it continued with and how it differed.
RESUME_LOG = "config_resumes.jsonl"
#: Fields a resume may change: continuing for more steps is what resuming is for, and a run moved elsewhere is the same run.
_RESUMABLE = frozenset({"resume", "force_resume", "max_steps", "output_dir"})


def _write_yaml(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(payload, sort_keys=False), encoding="utf-8")


def _check_same_config(config: RunConfig, checkpoint: Path) -> None:
    """Refuse to resume with a config other than the run's start config (``force_resume``: record both and go on)."""
    output_dir = Path(config.output_dir)
    started = next((p for p in (output_dir / START_CONFIG, output_dir / "config.yaml") if p.is_file()), None)
    if started is None:
        return
    before = yaml.safe_load(started.read_text(encoding="utf-8")) or {}
    now = yaml.safe_load(yaml.safe_dump(config.to_dict()))  # the same round trip as the stored one
    for f in dataclasses.fields(config):  # a field added to mmrl since the run started had its default then
        if f.name not in before and f.default is not dataclasses.MISSING:
            before[f.name] = yaml.safe_load(yaml.safe_dump(f.default))
    changed = {
        k: (before.get(k), now.get(k)) for k in sorted(set(before) | set(now)) if k not in _RESUMABLE and before.get(k) != now.get(k)
    }
    if not changed:
        return
    listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(changed.items())[:6])
    if not config.force_resume:
        raise ConfigError(
            f"resuming {checkpoint} with a config that differs from the one the run started with ({started.name}): {listed}. "
            "A resumed run must be one run: undo the changes, start a new output_dir, or pass --force-resume to record both"
        )
    if is_main_process():
        record = {"checkpoint": checkpoint.name, "config": now, "changed": {k: {"start": a, "now": b} for k, (a, b) in changed.items()}}
        with (output_dir / RESUME_LOG).open("a", encoding="utf-8") as log:
            log.write(json.dumps(record, default=str) + "\n")
    warnings.warn(f"--force-resume: {listed} (recorded in {output_dir / RESUME_LOG})", stacklevel=3)


def trl_arguments(config: RunConfig, deepspeed: dict[str, Any] | None = None, **specific: Any) -> dict[str, Any]:
    """Keyword arguments of TRL's config for ``config``: the shared fields, ``specific``, then ``trl_args``.

    On CPU: ``use_cpu=True, bf16=False, fp16=False``; ``activation_checkpointing=False`` everywhere
    (TRL turns it on by default; it makes small-model steps ~3.5x slower). ``deepspeed``: a DeepSpeed
    config for the transformers integration (``mmrl.train.distributed``). ``trl_args`` overrides all.
    """
    if deepspeed is not None:
        specific["deepspeed"] = deepspeed
    if "tensorboard" in config.report_to and not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        raise MissingDependencyError("report_to: tensorboard needs TensorBoard: pip install tensorboard (or set report_to: none)")
    on_cpu = not torch.cuda.is_available()
    return {
        "output_dir": str(config.output_dir),
        "learning_rate": config.learning_rate,
        "max_steps": config.max_steps,
        "per_device_train_batch_size": config.per_device_train_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "seed": config.seed,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "logging_steps": config.logging_steps,
        "report_to": config.report_to,
        "use_cpu": on_cpu,
        "bf16": config.dtype == "bfloat16" and not on_cpu,
        "fp16": config.dtype == "float16" and not on_cpu,
        "activation_checkpointing": False,
        **specific,
        **config.trl_args,
    }


def _full_weights(trainer: Any) -> contextlib.AbstractContextManager:
    """Under DeepSpeed ZeRO-3 each worker holds a shard of every weight: gather them all (every worker must enter)."""
    if not trainer.is_deepspeed_enabled or trainer.accelerator.state.deepspeed_plugin.zero_stage != 3:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(list(trainer.model.parameters()), modifier_rank=None)


def _workers(trainer: Any) -> list[dict[str, Any]]:
    """Each training process's rank, world size, step and device as its trainer saw them (gathered from all)."""
    args = trainer.args
    seen = {"rank": args.process_index, "world_size": args.world_size, "global_step": trainer.state.global_step, "device": str(args.device)}
    if not _distributed():
        return [seen]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, seen)
    return gathered


def finish_run(trainer: Any, config: RunConfig, resumed_from: Path | None, evaluation: dict[str, Any] | None = None) -> RunResult:
    """Save the final policy (LoRA merged) and tokenizer to ``model/``, the config and ``summary.json``.

    Every worker of a distributed run calls it; rank 0 alone writes.
    """
    output_dir = Path(config.output_dir)
    model_dir = output_dir / "model"
    history = trainer.state.log_history
    metrics = {k: v for entry in history for k, v in entry.items() if isinstance(v, (int, float)) and k not in ("step", "epoch")}
    result = RunResult(output_dir, trainer.state.global_step, resumed_from, model_dir, metrics, evaluation, _workers(trainer))
    with _full_weights(trainer):
        if is_main_process():
            model = trainer.model
            if hasattr(model, "merge_and_unload"):  # a peft model: save plain weights any stage can load
                model = model.merge_and_unload()
            model.save_pretrained(model_dir)
            trainer.processing_class.save_pretrained(model_dir)
    if is_main_process():
        _write_yaml(output_dir / "config.yaml", config.to_dict())
        summary = {
            "global_step": result.global_step,
            "resumed_from": None if resumed_from is None else str(resumed_from),
            "model_dir": str(model_dir),
            "last_metrics": metrics,
            "evaluation": evaluation,
            "workers": result.workers,
            "data": {
                "source": config.data or "embedded synthetic corpus",
                "on_error": config.on_error,
                **data_corpus(config).report.summary(),
            },
        }
        (output_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n", encoding="utf-8")
    wait_for_everyone()  # the outputs exist once any worker returns
    return result
