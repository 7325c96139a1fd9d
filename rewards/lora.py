"""The packaged MiniLM with LoRA adapters: what the cross-encoder and the fit encoder share.

Both transformer scorers (:mod:`rewards.cross_encoder`, :mod:`rewards.fit_encoder`) put LoRA adapters of
rank :data:`RANK` on every linear layer of the packaged all-MiniLM-L6-v2 (or of a small BERT in tests),
mean-pool its last hidden states, train the adapters with AdamW under a linear warm-up and decay, ship
only what training changed, and fold the adapters into the weights when they load the shipped artefact.
torch and peft load only when a function here is called.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mmrl.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["RANK", "adapted", "load_trained", "mean_pool", "optimiser", "packaged_minilm", "trained_state"]

RANK = 16


def packaged_minilm():
    """``(model, tokenizer)`` of the packaged all-MiniLM-L6-v2 (no download)."""
    from transformers import AutoModel, AutoTokenizer

    from rewards.embeddings import packaged_model_dir

    directory = str(packaged_model_dir())
    return AutoModel.from_pretrained(directory), AutoTokenizer.from_pretrained(directory)


def adapted(base):
    """``base`` with LoRA adapters of rank :data:`RANK` on its query, key, value and dense layers (the rest frozen)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=RANK, lora_alpha=2 * RANK, target_modules=["query", "key", "value", "dense"], lora_dropout=0.0)
    return get_peft_model(base, config)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``(n, hidden)`` mean of each row's hidden states over its real (unpadded) tokens."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1)


def trained_state(module: torch.nn.Module, own: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Copies of the adapters and of ``module``'s own tensors (names starting with one of ``own``): what an artefact stores."""
    return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items() if "lora_" in k or k.startswith(own)}


def optimiser(model: torch.nn.Module, lr: float, steps: int):
    """``(AdamW over the trainable parameters, a schedule warming up over min(20, steps / 10) steps, then decaying to 0 at steps)``."""
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    adamw = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.01)
    warmup = max(1, min(20, steps // 10))
    schedule = torch.optim.lr_scheduler.LambdaLR(adamw, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1.0 - s / steps))
    return adamw, schedule


def load_trained(model, state: Mapping[str, torch.Tensor], path: Path, what: str, rebuild: str):
    """``model`` with the artefact's ``state`` loaded (names and shapes checked: a ConfigError naming ``what`` and ``rebuild``
    otherwise), adapters merged into the weights (the same outputs, a third faster) and in eval mode."""
    expected = set(model.trained_state())
    if set(state) != expected:
        raise ConfigError(f"{what} {path} do not match the model ({len(set(state) ^ expected)} tensors differ); {rebuild}")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # same names, other shapes: built over another base model
        raise ConfigError(f"{what} {path} do not fit the packaged MiniLM ({str(exc).splitlines()[0]}); {rebuild}") from None
    model.encoder = model.encoder.merge_and_unload()
    model.eval()
    return model
