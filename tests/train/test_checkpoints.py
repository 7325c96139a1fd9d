"""Issue 13 item 4: a checkpoint is resumed from only when its weights, optimizer, scheduler, RNG and trainer state all load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mmrl.cli import main
from mmrl.train.checkpoints import checkpoint_problem, last_checkpoint
from mmrl.train.config import RLRunConfig
from mmrl.train.rl import run_rl
from tests.train.conftest import rl_run_fields


def _step_log(checkpoint: Path, step: int) -> dict:
    [entry] = [
        e for e in json.loads((checkpoint / "trainer_state.json").read_text())["log_history"] if e.get("step") == step and "loss" in e
    ]
    return {k: v for k, v in entry.items() if k not in ("step_time", "train_runtime", "train_samples_per_second", "train_steps_per_second")}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A two-step GRPO run with a checkpoint after each step (copied per test)."""
    out = tmp_path_factory.mktemp("ckpt") / "run"
    run_rl(RLRunConfig(**rl_run_fields(out, max_steps=2)))
    return out


def _copy(finished: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


def test_a_complete_checkpoint_has_no_problem(finished):
    assert checkpoint_problem(finished / "checkpoint-1") is None and last_checkpoint(finished) == finished / "checkpoint-2"


@pytest.mark.parametrize(
    ("part", "damage", "problem"),
    [
        ("optimizer.pt", "delete", "optimizer.pt is missing"),
        ("scheduler.pt", "delete", "scheduler.pt is missing"),
        ("scheduler.pt", "truncate", "scheduler.pt does not load"),
        ("rng_state.pth", "delete", "no rng_state*.pth"),
        ("rng_state.pth", "truncate", "rng_state.pth does not load"),
        ("model.safetensors", "truncate", "weights does not load (SafetensorError"),
        ("model.safetensors", "delete", "no weights"),
        ("trainer_state.json", "truncate", "trainer_state.json does not load"),
        ("trainer_state.json", "delete", "trainer_state.json is missing"),
    ],
)
def test_a_damaged_part_makes_the_checkpoint_incomplete_and_resume_falls_back(finished, tmp_path, part, damage, problem):
    out = _copy(finished, tmp_path)
    target = out / "checkpoint-2" / part
    if damage == "delete":
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])
    assert problem in checkpoint_problem(out / "checkpoint-2")
    with pytest.warns(UserWarning, match=rf"checkpoint-2 is incomplete and is passed over: {problem[:12]}"):
        assert last_checkpoint(out, warn=True) == out / "checkpoint-1"


def test_resume_restores_optimizer_scheduler_and_rng_exactly(finished, tmp_path, write_config):
    """A run stopped after step 1 and resumed logs the same step 2 (loss, reward, learning rate, grad norm) as the unbroken run:
    with a fresh AdamW, a restarted schedule or new random streams (sampling) it would not."""
    out = _copy(finished, tmp_path)
    shutil.rmtree(out / "checkpoint-2")
    result = run_rl(RLRunConfig(**rl_run_fields(out, max_steps=2, resume=True)))
    assert result.resumed_from == out / "checkpoint-1"
    assert _step_log(out / "checkpoint-2", 2) == _step_log(finished / "checkpoint-2", 2)


def test_a_run_whose_only_checkpoint_lost_its_optimizer_says_so_and_does_not_claim_to_resume(finished, tmp_path, write_config, capsys):
    """Before: --resume printed 'resumed from checkpoint-1' and started a fresh AdamW."""
    out = _copy(finished, tmp_path)
    shutil.rmtree(out / "checkpoint-2")
    (out / "checkpoint-1" / "optimizer.pt").unlink()
    path = write_config("run.yaml", **rl_run_fields(out, max_steps=2))
    with pytest.warns(UserWarning) as warned:
        assert main(["train", "--config", str(path), "--resume"]) == 2
    messages = " ".join(str(w.message) for w in warned)
    assert "checkpoint-1 is incomplete and is passed over: optimizer.pt is missing" in messages
    assert "resumed from" not in capsys.readouterr().out


@pytest.mark.parametrize("part", ["optimizer.pt", "scheduler.pt", "rng_state.pth"])
def test_the_exact_resume_check_notices_a_part_transformers_silently_starts_afresh(finished, tmp_path, monkeypatch, part):
    """What the completeness check prevents: with the check bypassed, transformers resumes without ``part`` and step 2 differs."""
    import mmrl.train.runs

    out = _copy(finished, tmp_path)
    shutil.rmtree(out / "checkpoint-2")
    (out / "checkpoint-1" / part).unlink()
    monkeypatch.setattr(mmrl.train.runs, "last_checkpoint", lambda output_dir, warn=False: Path(output_dir) / "checkpoint-1")
    run_rl(RLRunConfig(**rl_run_fields(out, max_steps=2, resume=True)))
    assert _step_log(out / "checkpoint-2", 2) != _step_log(finished / "checkpoint-2", 2)


def test_a_zero3_checkpoint_keeps_its_weights_in_the_engine_state(finished, tmp_path):
    """Under ZeRO-3 without gathered weights transformers writes no model.safetensors: the engine directory holds them."""
    out = _copy(finished, tmp_path)
    checkpoint = out / "checkpoint-2"
    (checkpoint / "model.safetensors").unlink()
    (checkpoint / "optimizer.pt").rename(checkpoint / "held.pt")
    (checkpoint / "global_step2").mkdir()
    (checkpoint / "held.pt").rename(checkpoint / "global_step2" / "zero_pp_rank_0_mp_rank_00_optim_states.pt")
    (checkpoint / "latest").write_text("global_step2")
    assert checkpoint_problem(checkpoint) is None
    (checkpoint / "global_step2" / "zero_pp_rank_0_mp_rank_00_optim_states.pt").unlink()
    assert "global_step2/ (named by 'latest') is missing or empty" in checkpoint_problem(checkpoint)


def test_a_run_started_before_a_config_field_existed_resumes(finished, tmp_path):
    """A field added to mmrl later (here on_error) is absent from an older config_start.yaml: its default is no change."""
    import yaml

    out = _copy(finished, tmp_path)
    shutil.rmtree(out / "checkpoint-2")
    start = yaml.safe_load((out / "config_start.yaml").read_text())
    start.pop("on_error")
    (out / "config_start.yaml").write_text(yaml.safe_dump(start))
    assert run_rl(RLRunConfig(**rl_run_fields(out, max_steps=2, resume=True))).resumed_from == out / "checkpoint-1"
