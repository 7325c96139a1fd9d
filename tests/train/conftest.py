"""Fixtures of the trainer tests: YAML configs in tmp_path and the fields of a GRPO run that steps in seconds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

#: Rewards cheap enough for every trainer test (no embedding model, no judge).
LIGHT_SPEC = {"on_missing": "skip", "rewards": {"format": 1.0, "component_match": 1.0}}


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """``write_config(name, **fields)`` writes ``tmp_path/name`` and returns its path."""

    def write(name: str, **fields) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(fields, sort_keys=False), encoding="utf-8")
        return path

    return write


def rl_run_fields(output_dir: Path, **overrides) -> dict:
    """RLRunConfig fields of a GRPO run on ``tiny`` that steps in seconds, writing to ``output_dir``."""
    return {
        "policy": "tiny",
        "reward_spec": LIGHT_SPEC,
        "learning_rate": 1e-3,
        "num_generations": 2,
        "per_device_train_batch_size": 4,
        "max_completion_length": 8,
        "max_steps": 2,
        "save_steps": 1,
        "eval_max_prompts": 2,
        "report_to": "none",
        "output_dir": str(output_dir),
        **overrides,
    }


@pytest.fixture
def rl_fields() -> Callable[..., dict]:
    """``rl_fields(output_dir, **overrides)``: :func:`rl_run_fields`."""
    return rl_run_fields
