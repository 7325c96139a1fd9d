"""Which ``checkpoint-<step>/`` of a run can be resumed from: one whose every part loads.

transformers resumes from whatever a checkpoint holds and silently starts what is missing afresh
(a deleted ``optimizer.pt`` means a new AdamW, a deleted ``rng_state.pth`` new random streams). A
checkpoint here is complete only when its trainer state, weights, optimizer, scheduler and RNG state
all load (:func:`checkpoint_problem`); :func:`last_checkpoint` passes over the others, newest first,
saying why (a checkpoint being written at a kill is one of them).
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

__all__ = ["CHECKPOINT", "checkpoint_problem", "checkpoint_step", "checkpoints", "last_checkpoint"]

#: The name of a checkpoint directory; group 1 is its step.
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = ("model.safetensors", "adapter_model.safetensors", "model.safetensors.index.json")


def checkpoint_step(checkpoint: Path) -> int:
    """The step in a ``checkpoint-<step>`` directory's name."""
    return int(CHECKPOINT.match(checkpoint.name).group(1))


def _torch_load(path: Path) -> None:
    """Load ``path`` as transformers does on resume (``weights_only``, numpy allowlisted); raise when it does not load."""
    import torch
    from transformers.trainer_pt_utils import safe_globals

    with safe_globals():
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # mapped, not read into memory (every rank checks)


def _load_weights(checkpoint: Path) -> str | None:
    from safetensors import safe_open

    names = [name for name in _WEIGHTS if (checkpoint / name).is_file()]
    if not names:
        return f"no weights ({' or '.join(_WEIGHTS)})"
    files = [checkpoint / names[0]]
    if names[0].endswith(".index.json"):
        index = json.loads(files[0].read_text(encoding="utf-8"))
        files = [checkpoint / shard for shard in sorted(set(index["weight_map"].values()))]
    for path in files:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - a safetensors handle, not a dict; every tensor: a truncated file fails past its end
                f.get_tensor(key)
    return None


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from, or None when weights, optimizer, scheduler, RNG and trainer state all load.

    Under DeepSpeed the optimizer and scheduler (and, under ZeRO-3 without gathered weights, the weights)
    live in the engine's ``global_step<N>/`` directory (named by ``latest``), which must be there and not empty.
    """
    part = "trainer_state.json"
    try:
        json.loads((checkpoint / part).read_text(encoding="utf-8"))
        deepspeed = (checkpoint / "latest").is_file()
        part = "weights"
        if (problem := _load_weights(checkpoint)) is not None and not (deepspeed and problem.startswith("no weights")):
            return problem  # under ZeRO-3 without gathered weights they live only in the engine state
        if deepspeed:
            part = "the DeepSpeed engine state"
            engine = checkpoint / (checkpoint / "latest").read_text(encoding="utf-8").strip()
            if not engine.is_dir() or not any(engine.iterdir()):
                return f"{engine.name}/ (named by 'latest') is missing or empty"
        else:
            for part in ("optimizer.pt", "scheduler.pt"):
                if not (checkpoint / part).is_file():
                    return f"{part} is missing"
                _torch_load(checkpoint / part)
        part = "rng_state"
        rng = sorted(checkpoint.glob("rng_state*.pth"))
        if not rng:
            return "no rng_state*.pth"
        for part in (p.name for p in rng):
            _torch_load(checkpoint / part)
    except FileNotFoundError:
        return f"{part} is missing"
    except Exception as exc:  # noqa: BLE001 - any failure to load a part makes the checkpoint unusable; the reason is reported
        return f"{part} does not load ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
    return None


def checkpoints(output_dir: str | Path) -> list[Path]:
    """Every ``checkpoint-<step>`` directory in ``output_dir``, complete or not, by step."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    return sorted((path for path in output_dir.iterdir() if path.is_dir() and CHECKPOINT.match(path.name)), key=checkpoint_step)


def last_checkpoint(output_dir: str | Path, *, warn: bool = False) -> Path | None:
    """The newest complete ``checkpoint-<step>`` in ``output_dir``, or None.

    Newer incomplete ones are passed over; with ``warn``, each is named with its problem (the run will
    overwrite it when it reaches that step again).
    """
    for path in reversed(checkpoints(output_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        if warn:
            warnings.warn(f"{path} is incomplete and is passed over: {problem}", stacklevel=2)
    return None
