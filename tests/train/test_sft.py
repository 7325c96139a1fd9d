"""SFT: train split only, targets in the structured format, a few steps on ``tiny`` (full and LoRA), reloadable output."""

from __future__ import annotations

import json

import pytest

from mmrl.data import load_corpus
from mmrl.errors import ConfigError, DataError, SplitLeakError
from mmrl.policy.models import LoraSettings, load_policy
from mmrl.policy.prompts import parse_output
from mmrl.train.config import SFTRunConfig
from mmrl.train.runs import load_split
from mmrl.train.sft import run_sft, sft_dataset


@pytest.fixture(scope="module")
def corpus():
    from mmrl.data.synth import demo_corpus

    return load_corpus(demo_corpus(), "synth")


def test_sft_targets_are_the_gold_structured_block(corpus):
    train = corpus.split("train")[:2]
    dataset = sft_dataset(train)
    row = dataset[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    parsed = parse_output(row["completion"][0]["content"])
    assert parsed.ok
    dialogue = train[0]
    first = dialogue.target_indices()[0]
    assert (parsed.strategy, parsed.reply) == (dialogue.turns[first].strategy, " ".join(dialogue.turns[first].text.split()))
    assert set(dataset["dialogue_id"]) == {d.id for d in train}


def test_sft_refuses_val_and_test_dialogues(corpus):
    leaked = corpus.split("train")[:1] + corpus.split("val")[:1]
    with pytest.raises(SplitLeakError, match=r"SFT may only use the train split.*\['val'\]"):
        sft_dataset(leaked)


def test_training_loads_the_train_split_only(corpus, tmp_path):
    from mmrl.data.jsonl import write_dialogues

    dialogues = load_split(SFTRunConfig(), "train")
    assert dialogues and {d.split for d in dialogues} == {"train"}
    held_out = write_dialogues(tmp_path / "held_out.jsonl", corpus.split("val") + corpus.split("test"))
    with pytest.raises(DataError, match=r"no train-split dialogue to train on \(the data holds splits \['test', 'val'\]\)"):
        load_split(SFTRunConfig(data=str(held_out)), "train")


def test_run_sft_on_tiny_checkpoints_and_saves_a_loadable_policy(tmp_path):
    config = SFTRunConfig(
        policy="tiny",
        learning_rate=1e-2,
        max_steps=3,
        per_device_train_batch_size=2,
        save_steps=2,
        output_dir=str(tmp_path / "sft"),
        report_to=["none"],
    )
    result = run_sft(config)
    assert result.global_step == 3 and result.resumed_from is None
    assert (tmp_path / "sft" / "checkpoint-2" / "optimizer.pt").is_file()
    summary = json.loads((tmp_path / "sft" / "summary.json").read_text())
    assert summary["global_step"] == 3 and summary["last_metrics"]["train_loss"] > 0
    assert SFTRunConfig.from_yaml(tmp_path / "sft" / "config.yaml") == config  # the config as run reads back
    model, tokenizer = load_policy(str(result.model_dir))
    assert model.config.num_hidden_layers == 2 and tokenizer.chat_template
    with pytest.raises(ConfigError, match="already holds checkpoint-3: pass --resume"):
        run_sft(config)


def test_run_sft_with_lora_saves_merged_weights(tmp_path):
    config = SFTRunConfig(
        policy="tiny",
        lora=LoraSettings(r=2, alpha=4),
        learning_rate=1e-2,
        max_steps=1,
        per_device_train_batch_size=2,
        save_steps=1,
        output_dir=str(tmp_path / "lora"),
        report_to=["none"],
    )
    result = run_sft(config)
    assert (tmp_path / "lora" / "checkpoint-1" / "adapter_config.json").is_file()  # checkpoints hold the adapter
    assert not (result.model_dir / "adapter_config.json").exists()  # the final policy is merged
    model, _ = load_policy(str(result.model_dir))
    assert not any("lora" in name for name, _ in model.named_parameters())
