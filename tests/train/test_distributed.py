"""Ray Train + DeepSpeed: the ZeRO configs are valid for the transformers integration, and 2 CPU workers with
ZeRO-2 run GRPO and SFT on ``tiny`` to completion (both workers training, checkpoints with a ZeRO shard per
worker, rank 0's final outputs), and resume from their last checkpoint.

One local Ray (2 CPUs, no dashboard) serves the module. A 2-worker run takes about 40 s on 2 idle cores
(start of the workers and their imports included).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmrl.cli import main
from mmrl.errors import ConfigError, DataError, MmrlError
from mmrl.policy.models import load_policy
from mmrl.train.config import RLRunConfig, SFTRunConfig
from mmrl.train.distributed import (
    DistributedOptions,
    _check_resources,
    _worker_error,
    load_deepspeed_config,
    run_distributed,
)
from mmrl.train.rl import EVAL_FILE

DEEPSPEED = Path(__file__).resolve().parents[2] / "experiments" / "deepspeed"


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def _log_steps(checkpoint: Path, key: str) -> list[int]:
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    return [entry["step"] for entry in history if key in entry]


def _assert_two_workers_trained(out: Path, steps: int) -> None:
    summary = json.loads((out / "summary.json").read_text())
    assert summary["global_step"] == steps
    assert summary["workers"] == [
        {"rank": rank, "world_size": 2, "global_step": steps, "device": "cpu"} for rank in (0, 1)
    ]  # gathered from both processes after training
    shards = sorted(p.name for p in (out / f"checkpoint-{steps}" / f"global_step{steps}").glob("zero_pp_rank_*_optim_states.pt"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]  # ZeRO: one shard each
    model, tokenizer = load_policy(str(out / "model"))
    assert model.config.num_hidden_layers == 2 and tokenizer.chat_template


# ----------------------------------------------------------------------------------------------
# DeepSpeed configs and the checks made before any worker starts
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_configs_are_valid_for_the_transformers_integration(stage, tmp_path):
    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers import TrainingArguments
    from transformers.integrations.deepspeed import (
        is_deepspeed_zero3_enabled,
        unset_hf_deepspeed_config,
    )

    from mmrl.policy.models import tiny_policy

    on_gpu = load_deepspeed_config(DEEPSPEED / f"zero{stage}.json", use_gpu=True)
    assert "torch_adam" not in on_gpu["optimizer"]["params"]  # GPUs keep DeepSpeed's fused Adam
    config = load_deepspeed_config(DEEPSPEED / f"zero{stage}.json", use_gpu=False)
    try:
        args = TrainingArguments(
            output_dir=str(tmp_path), deepspeed=config, use_cpu=True, per_device_train_batch_size=4, gradient_accumulation_steps=2,
            learning_rate=3e-4, max_grad_norm=0.5, report_to=[],
        )  # fmt: skip
        assert is_deepspeed_zero3_enabled() == (stage == 3)
        args.hf_deepspeed_config.trainer_config_finalize(args, tiny_policy(0)[0], num_training_steps=10)  # fills every "auto"
        filled = args.hf_deepspeed_config.config
    finally:
        unset_hf_deepspeed_config()  # later from_pretrained calls must not see a ZeRO-3 config
    assert "auto" not in json.dumps(filled)
    parsed = DeepSpeedConfig(filled)  # DeepSpeed's own parser
    assert parsed.zero_optimization_stage == stage
    assert (parsed.train_micro_batch_size_per_gpu, parsed.gradient_accumulation_steps, parsed.gradient_clipping) == (4, 2, 0.5)
    assert parsed.optimizer_params["lr"] == 3e-4 and parsed.optimizer_params["torch_adam"] is True


def test_bad_deepspeed_configs_are_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read the DeepSpeed config .*missing\.json"):
        load_deepspeed_config(tmp_path / "missing.json", use_gpu=False)
    (tmp_path / "bad.json").write_text("{stage: 2}")
    with pytest.raises(ConfigError, match=r"DeepSpeed config .*bad\.json is not valid JSON"):
        load_deepspeed_config(tmp_path / "bad.json", use_gpu=False)
    (tmp_path / "nostage.json").write_text('{"zero_optimization": {"stage": 4}}')
    with pytest.raises(ConfigError, match=r"nostage\.json: zero_optimization.stage must be 0, 1, 2 or 3, got 4"):
        load_deepspeed_config(tmp_path / "nostage.json", use_gpu=False)
    with pytest.raises(ConfigError, match="--num-workers must be an integer >= 1, got 0"):
        DistributedOptions(num_workers=0)


def test_ray_flags_need_num_workers(tmp_path, write_config, rl_fields, capsys):
    path = write_config("run.yaml", **rl_fields(tmp_path / "out"))
    assert main(["train", "--config", str(path), "--use-gpu", "--deepspeed", str(DEEPSPEED / "zero2.json")]) == 2
    assert "--use-gpu, --deepspeed apply to a Ray Train run: add --num-workers K" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_fresh_run_over_checkpoints_is_refused_before_ray_starts(tmp_path, rl_fields, monkeypatch):
    import ray

    (tmp_path / "out" / "checkpoint-3").mkdir(parents=True)
    (tmp_path / "out" / "checkpoint-3" / "trainer_state.json").write_text("{}")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray started for a run that cannot go ahead"))
    with pytest.raises(ConfigError, match="already holds checkpoint-3: pass --resume"):
        run_distributed(RLRunConfig(**rl_fields(tmp_path / "out")), DistributedOptions(num_workers=2))


def test_a_cluster_too_small_is_refused_rather_than_waited_for():
    _check_resources({"CPU": 16.0, "GPU": 8.0}, DistributedOptions(num_workers=8, use_gpu=True))
    with pytest.raises(ConfigError, match=r"--num-workers 8 --use-gpu needs 8 GPUs \(one per worker\) but the Ray cluster has 2"):
        _check_resources({"CPU": 16.0, "GPU": 2.0}, DistributedOptions(num_workers=8, use_gpu=True))
    with pytest.raises(ConfigError, match="--num-workers 3 needs 3 CPUs"):
        _check_resources({"CPU": 2.0}, DistributedOptions(num_workers=3))


def test_a_worker_error_reaches_the_user_as_an_mmrl_error():
    from ray.train import WorkerGroupError

    data_error = DataError("no train-split dialogue to train on", path="held_out.jsonl")
    assert _worker_error(WorkerGroupError("...", {1: data_error, 0: data_error})) is data_error
    error = _worker_error(WorkerGroupError("...", {1: RuntimeError("gloo timed out")}))
    assert type(error) is MmrlError and str(error).startswith("Ray Train worker 1 failed with RuntimeError: gloo timed out")


# ----------------------------------------------------------------------------------------------
# Runs on 2 CPU workers with DeepSpeed ZeRO-2
# ----------------------------------------------------------------------------------------------


def test_grpo_on_two_cpu_workers_with_zero2(local_ray, tmp_path, write_config, rl_fields, capsys):
    out = tmp_path / "grpo"
    path = write_config("run.yaml", **rl_fields(out))
    assert main(["train", "--config", str(path), "--num-workers", "2", "--deepspeed", str(DEEPSPEED / "zero2.json")]) == 0
    assert "GRPO finished at step 2 on 2 Ray Train workers" in capsys.readouterr().out

    _assert_two_workers_trained(out, steps=2)
    assert _log_steps(out / "checkpoint-2", "reward") == [1, 2]
    assert (out / "checkpoint-1" / "trainer_state.json").is_file()  # every save_steps, as in a local run
    args = torch.load(out / "checkpoint-2" / "training_args.bin", weights_only=False)
    assert type(args).__name__ == "GRPOConfig" and args.deepspeed["zero_optimization"]["stage"] == 2
    assert args.deepspeed["optimizer"]["params"]["torch_adam"] is True  # the CPU setting, applied by the code path
    evaluation = json.loads((out / EVAL_FILE).read_text())
    assert evaluation["prompts"] == 2 and set(evaluation["rewards"]) == {"format", "component_match"}


@pytest.mark.slow
def test_sft_on_two_cpu_workers_resumes_from_its_last_checkpoint(local_ray, tmp_path, write_config, capsys):
    out = tmp_path / "sft"
    fields = {
        "policy": "tiny",
        "learning_rate": 1e-2,
        "max_steps": 1,
        "per_device_train_batch_size": 2,
        "save_steps": 1,
        "report_to": "none",
    }
    flags = ["--num-workers", "2", "--deepspeed", str(DEEPSPEED / "zero2.json")]
    assert main(["sft", "--config", str(write_config("sft.yaml", **fields, output_dir=str(out))), *flags]) == 0
    assert "SFT finished at step 1 on 2 Ray Train workers" in capsys.readouterr().out
    first_shard = torch.load(out / "checkpoint-1" / "global_step1" / "zero_pp_rank_0_mp_rank_00_optim_states.pt", weights_only=False)

    resumed = write_config("sft.yaml", **{**fields, "max_steps": 2}, output_dir=str(out))
    assert main(["sft", "--config", str(resumed), "--resume", *flags]) == 0
    assert "SFT finished at step 2 on 2 Ray Train workers (resumed from checkpoint-1)" in capsys.readouterr().out
    _assert_two_workers_trained(out, steps=2)
    assert _log_steps(out / "checkpoint-2", "loss") == [1, 2]  # step 1's history, then the resumed step
    assert SFTRunConfig.from_yaml(out / "config.yaml").max_steps == 2
    second_shard = torch.load(out / "checkpoint-2" / "global_step2" / "zero_pp_rank_0_mp_rank_00_optim_states.pt", weights_only=False)
    steps = [
        s["step"] for state in (first_shard, second_shard) for s in state["optimizer_state_dict"]["base_optimizer_state"]["state"].values()
    ]
    assert [int(s) for s in steps] == [1, 2]  # Adam's moments were restored from the shard, then stepped once more


@pytest.mark.slow
def test_grpo_with_lora_on_zero3_saves_the_gathered_merged_policy(local_ray, tmp_path, rl_fields):
    out = tmp_path / "zero3"
    config = RLRunConfig(**rl_fields(out, lora={"r": 2, "alpha": 4}))
    result = run_distributed(config, DistributedOptions(num_workers=2, deepspeed=DEEPSPEED / "zero3.json"))
    assert result.global_step == 2 and [w["rank"] for w in result.workers] == [0, 1]
    shards = sorted(p.name for p in (out / "checkpoint-2" / "global_step2").glob("zero_pp_rank_*_model_states.pt"))
    assert shards == [
        "zero_pp_rank_0_mp_rank_00_model_states.pt",
        "zero_pp_rank_1_mp_rank_00_model_states.pt",
    ]  # ZeRO-3: weights sharded too
    model, _ = load_policy(str(result.model_dir))
    initial, _ = load_policy("tiny")
    assert not any("lora" in name for name, _ in model.named_parameters())  # merged
    assert {n: p.shape for n, p in model.named_parameters()} == {n: p.shape for n, p in initial.named_parameters()}  # whole, not shards
