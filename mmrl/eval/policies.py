"""The policy under evaluation, whatever it is: one ``generate(prompts)`` over the same chat prompts.

Policy specs (``mmrl eval --policy SPEC``, ``mmrl compare --policies SPEC,SPEC``):

- ``tiny``: the tiny random test policy; ``smollm2``: the packaged SmolLM2-135M-Instruct;
- a directory: a transformers model directory, e.g. a run's ``model/``; a run directory (``mmrl sft``
  / ``mmrl train`` output) whose ``model/`` holds the final policy is accepted too;
- a hub id already in the local Hugging Face cache (nothing is downloaded at run time);
- ``openai:MODEL@URL``: an OpenAI-compatible chat-completions server, e.g.
  ``openai:gpt-4o-mini@https://api.openai.com/v1`` or ``openai:Qwen/Qwen2.5-7B-Instruct@http://127.0.0.1:8000/v1``
  (vLLM, Ollama, ``transformers serve``). The API key is read from an environment variable
  (default ``OPENAI_API_KEY``; unset: no Authorization header) and is never stored, logged or shown.

Every policy decodes greedily (temperature 0). A request or generation that fails gives an empty
completion (so a parse failure, counted by the evaluation) and its reason in ``Generation.failures``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mmrl.errors import ConfigError
from mmrl.llm import ChatClient, ChatError, Messages, generate

__all__ = ["EvalPolicy", "Generation", "HFPolicy", "OpenAIPolicy", "PolicySpec", "load_eval_policy", "parse_policy_spec"]

_OPENAI = "openai:"


@dataclass(frozen=True)
class PolicySpec:
    """A parsed policy spec: ``kind`` is ``"hf"`` (``source``: tiny, smollm2, a directory or a hub id) or ``"openai"``."""

    text: str
    kind: str
    source: str
    base_url: str | None = None


def parse_policy_spec(spec: str) -> PolicySpec:
    """Read a policy spec (see the module docstring); ConfigError when it is malformed.

    >>> parse_policy_spec("openai:my-model@http://127.0.0.1:8000/v1")
    PolicySpec(text='openai:my-model@http://127.0.0.1:8000/v1', kind='openai', source='my-model', base_url='http://127.0.0.1:8000/v1')
    >>> parse_policy_spec("tiny").kind
    'hf'
    """
    spec = spec.strip()
    if not spec:
        raise ConfigError("empty policy spec: expected tiny, smollm2, a model directory, a hub id or openai:MODEL@URL")
    if spec.startswith(_OPENAI):
        model, at, url = spec[len(_OPENAI) :].rpartition("@")
        if not at or not model or not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"policy spec {spec!r}: expected openai:MODEL@URL with an http(s) URL, e.g. openai:gpt-4o-mini@https://api.openai.com/v1"
            )
        return PolicySpec(spec, "openai", model, url.rstrip("/"))
    path = Path(spec)
    if path.is_dir() and not (path / "config.json").is_file() and (path / "model" / "config.json").is_file():
        return PolicySpec(spec, "hf", str(path / "model"))
    return PolicySpec(spec, "hf", spec)


@dataclass
class Generation:
    """One completion per prompt (empty where generation failed) and the reasons of the failures by index."""

    texts: list[str]
    failures: dict[int, str] = field(default_factory=dict)


class EvalPolicy(Protocol):
    """What the evaluation needs of a policy: a name and greedy completions of chat prompts."""

    name: str

    def generate(self, prompts: list[Messages], *, max_new_tokens: int) -> Generation: ...


class HFPolicy:
    """A transformers causal LM (``mmrl.policy.models.load_policy``), greedy batched generation."""

    def __init__(self, spec: PolicySpec, *, device: str = "auto", batch_size: int = 8, seed: int = 0) -> None:
        import torch

        from mmrl.policy.models import load_policy

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA device: use --device cpu (or auto)")
        self.name, self.batch_size = spec.text, batch_size
        model, self.tokenizer = load_policy(spec.source, seed=seed)
        self.model = model.to(device)

    def generate(self, prompts: list[Messages], *, max_new_tokens: int) -> Generation:
        """Greedy completions; prompts are batched by length (less padding), answers come back in prompt order."""
        order = sorted(range(len(prompts)), key=lambda i: sum(len(m["content"]) for m in prompts[i]))
        texts = generate(self.model, self.tokenizer, [prompts[i] for i in order], max_new_tokens=max_new_tokens, batch_size=self.batch_size)
        out = [""] * len(prompts)
        for i, text in zip(order, texts):
            out[i] = text
        return Generation(out)


class OpenAIPolicy:
    """A model behind an OpenAI-compatible ``POST {base_url}/chat/completions`` (:class:`mmrl.llm.ChatClient`).

    Retries after HTTP 408/409/429/5xx, timeouts and connection errors (``max_retries``, waiting
    ``backoff_s * 2**k`` or the server's ``Retry-After``); any other error fails that prompt only.
    """

    def __init__(
        self,
        spec: PolicySpec,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        concurrency: int = 4,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
    ) -> None:
        if spec.kind != "openai" or spec.base_url is None:
            raise ConfigError(f"OpenAIPolicy needs an openai:MODEL@URL spec, got {spec.text!r}")
        self.name, self.model, self.base_url = spec.text, spec.source, spec.base_url
        self._chat = ChatClient(
            spec.base_url, spec.source, api_key_env=api_key_env, concurrency=concurrency, timeout_s=timeout_s, max_retries=max_retries,
            backoff_s=backoff_s,
        )  # fmt: skip

    def generate(self, prompts: list[Messages], *, max_new_tokens: int) -> Generation:
        answers = self._chat.complete(prompts, max_tokens=max_new_tokens, temperature=0.0)
        texts = ["" if isinstance(a, ChatError) else a.text for a in answers]
        return Generation(texts, {i: str(a) for i, a in enumerate(answers) if isinstance(a, ChatError)})

    def __repr__(self) -> str:
        return f"OpenAIPolicy({self.model!r} at {self.base_url!r})"


def load_eval_policy(
    spec: str | PolicySpec,
    *,
    device: str = "auto",
    batch_size: int = 8,
    seed: int = 0,
    api_key_env: str | None = "OPENAI_API_KEY",
    timeout_s: float = 120.0,
    max_retries: int = 3,
) -> EvalPolicy:
    """The policy of ``spec`` (see the module docstring): an :class:`HFPolicy` or an :class:`OpenAIPolicy` (``timeout_s`` per
    HTTP attempt, ``max_retries`` after the first)."""
    spec = parse_policy_spec(spec) if isinstance(spec, str) else spec
    if spec.kind == "openai":
        return OpenAIPolicy(spec, api_key_env=api_key_env, timeout_s=timeout_s, max_retries=max_retries)
    return HFPolicy(spec, device=device, batch_size=batch_size, seed=seed)
