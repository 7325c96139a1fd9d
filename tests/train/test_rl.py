"""GRPO / RLOO from the CLI entry on ``tiny``, val evaluation, and a killed run resumed from its last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from mmrl.cli import main
from mmrl.train.checkpoints import last_checkpoint
from mmrl.train.config import RLRunConfig
from mmrl.train.rl import EVAL_FILE, run_rl

REPO = Path(__file__).resolve().parents[2]


def _trainer_log(checkpoint: Path) -> list[dict]:
    return json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_two_steps_from_the_cli(algorithm, tmp_path, write_config, rl_fields, capsys):
    out = tmp_path / algorithm
    fields = rl_fields(out, algorithm=algorithm, report_to="tensorboard")
    if algorithm == "grpo":
        fields["loss_type"] = "dr_grpo"
    assert main(["train", "--config", str(write_config("run.yaml", **fields))]) == 0
    assert f"{algorithm.upper()} finished at step 2" in capsys.readouterr().out

    log = _trainer_log(out / "checkpoint-2")
    steps = [entry for entry in log if "reward" in entry]
    assert [entry["step"] for entry in steps] == [1, 2]
    assert {"rewards/format/mean", "rewards/component_match/mean", "reward"} <= set(steps[0])  # TRL's per-component logs
    assert list((out / "runs").rglob("events.out.tfevents.*"))  # TensorBoard by default

    evaluation = json.loads((out / EVAL_FILE).read_text())
    assert evaluation["split"] == "val" and evaluation["prompts"] == 2
    assert set(evaluation["rewards"]) == {"format", "component_match"} and 0.0 <= evaluation["parse"]["rate"] <= 1.0
    args = torch.load(out / "checkpoint-2" / "training_args.bin", weights_only=False)
    assert type(args).__name__ == ("GRPOConfig" if algorithm == "grpo" else "RLOOConfig")
    if algorithm == "grpo":
        assert args.loss_type == "dr_grpo"


def test_cli_errors_are_clean(tmp_path, write_config, rl_fields, capsys):
    path = write_config("bad.yaml", **rl_fields(tmp_path / "x", num_generation=4))
    assert main(["train", "--config", str(path)]) == 2
    assert "bad.yaml: unknown key 'num_generation'; did you mean 'num_generations'?" in capsys.readouterr().err


def test_cli_resume_flag_continues_and_a_plain_rerun_is_refused(tmp_path, write_config, rl_fields, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", str(write_config("run.yaml", **rl_fields(out, max_steps=1)))]) == 0
    assert main(["train", "--config", str(write_config("run.yaml", **rl_fields(out, max_steps=2)))]) == 2
    assert "already holds checkpoint-1: pass --resume (resume: true) to continue that run" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "run.yaml"), "--resume"]) == 0
    assert "GRPO finished at step 2 (resumed from checkpoint-1)" in capsys.readouterr().out
    # issue 13 item 5: resuming a finished run trained one more step and overwrote model/ and the reports
    summary = (out / "summary.json").read_text()
    assert main(["train", "--config", str(tmp_path / "run.yaml"), "--resume"]) == 2
    assert "max_steps is 2: the run is complete, nothing to resume" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == summary and not (out / "checkpoint-3").exists()


def test_resume_with_a_changed_config_is_refused_unless_forced(tmp_path, write_config, rl_fields, capsys):
    """Issue 13 item 6: a resume with another learning rate silently mixed two runs."""
    out = tmp_path / "run"
    assert main(["train", "--config", str(write_config("run.yaml", **rl_fields(out, max_steps=1)))]) == 0
    assert (out / "config_start.yaml").is_file()
    changed = write_config("changed.yaml", **{**rl_fields(out, max_steps=2), "learning_rate": 0.5})
    assert main(["train", "--config", str(changed), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "differs from the one the run started with (config_start.yaml): learning_rate:" in err and "--force-resume" in err
    assert not (out / "checkpoint-2").exists()
    with pytest.warns(UserWarning, match="--force-resume: learning_rate"):
        assert main(["train", "--config", str(changed), "--force-resume"]) == 0
    [record] = [json.loads(line) for line in (out / "config_resumes.jsonl").read_text().splitlines()]
    assert record["checkpoint"] == "checkpoint-1" and record["changed"]["learning_rate"]["now"] == 0.5


def test_val_evaluation_scores_every_val_prompt(tmp_path, rl_fields):
    from mmrl.policy.dataset import prompt_dataset
    from mmrl.train.runs import load_split

    config = RLRunConfig(**{**rl_fields(tmp_path / "eval", max_steps=1), "eval_max_prompts": None})
    result = run_rl(config)
    val = load_split(config, "val")
    assert result.evaluation["prompts"] == len(prompt_dataset(val, split="val", training=False)) > 0


class _ResumeProbe(TrainerCallback):
    """Records the step and optimizer state the trainer starts from."""

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        self.start_step = state.global_step
        self.optimizer_state = {
            k: {n: v.clone() if torch.is_tensor(v) else v for n, v in s.items()} for k, s in optimizer.state_dict()["state"].items()
        }


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path, write_config, rl_fields):
    out = tmp_path / "killed"
    path = write_config("run.yaml", **rl_fields(out, max_steps=200, save_steps=2, eval_max_prompts=1))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [sys.executable, "-m", "mmrl.cli", "train", "--config", str(path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while (checkpoint := last_checkpoint(out)) is None or checkpoint.name == "checkpoint-0":
            if process.poll() is not None:
                pytest.fail(
                    f"the run ended (rc {process.returncode}) before its first checkpoint: {process.stderr.read().decode()[-3000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint within 300 s")
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL

    checkpoint = last_checkpoint(out)  # the newest complete one (a checkpoint being written at the kill is skipped)
    step = int(checkpoint.name.split("-")[1])
    assert step >= 2 and step % 2 == 0
    saved = torch.load(checkpoint / "optimizer.pt", weights_only=False)["state"]
    assert saved and all(int(s["step"]) == step for s in saved.values())  # Adam moments of `step` updates

    probe = _ResumeProbe()
    config = RLRunConfig.from_yaml(path, resume=True, max_steps=step + 2)
    result = run_rl(config, callbacks=[probe])
    print(
        f"killed after {checkpoint.name}; resumed at step {probe.start_step} with {len(saved)} Adam states; ended at {result.global_step}"
    )

    assert probe.start_step == step and result.resumed_from == checkpoint and result.global_step == step + 2
    assert probe.optimizer_state.keys() == saved.keys()
    for key, state in saved.items():
        for name, value in state.items():
            assert torch.equal(probe.optimizer_state[key][name], value), f"optimizer state {key}.{name} not restored"
    steps = [entry["step"] for entry in _trainer_log(out / f"checkpoint-{step + 2}") if "reward" in entry]
    assert steps == list(range(1, step + 3))  # the history before the kill, then the resumed steps, no gap or repeat
    assert json.loads((out / "summary.json").read_text())["resumed_from"] == str(checkpoint)
