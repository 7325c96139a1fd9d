"""One way to talk to an LLM: an OpenAI-compatible chat client, a local transformers generator, and a sync bridge.

- :class:`ChatClient` posts to ``{base_url}/chat/completions`` (OpenAI, vLLM, Ollama, ``transformers serve``)
  with httpx: at most ``concurrency`` requests in flight, ``timeout_s`` per attempt, up to ``max_retries``
  retries after HTTP 408/409/429/5xx, timeouts and connection errors, waiting ``backoff_s * 2**k`` before
  retry ``k`` or the server's ``Retry-After`` (at most 60 s) when longer. The API key is read from the
  environment variable the caller names, sent as a Bearer token, and redacted from every text that comes
  back (answers and errors). A request that fails for good is a :class:`ChatError` in the results, not a crash.
- :func:`generate` completes chat prompts with a transformers causal LM in-process (batched, left-padded,
  greedy or seeded sampling that leaves torch's global RNG untouched).
- :func:`run_sync` runs a coroutine from sync code, also from inside a running event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
from collections.abc import Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx2 as httpx

from mmrl.errors import ConfigError, MmrlError
from mmrl.secrets import redact

__all__ = ["MAX_RETRY_AFTER_S", "RETRY_STATUS", "ChatClient", "ChatError", "Completion", "Messages", "generate", "run_sync"]

Messages = list[dict[str, str]]
#: HTTP statuses worth another attempt: timeout, conflict, rate limit, server errors.
RETRY_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
#: The longest ``Retry-After`` honoured, in seconds.
MAX_RETRY_AFTER_S = 60.0

T = TypeVar("T")
logger = logging.getLogger(__name__)


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of ``coroutine``, run to completion from sync code; inside a running event loop, on a thread beside it."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@dataclass(frozen=True)
class Completion:
    """The answer of one chat request: ``choices[0].message.content`` and its ``finish_reason`` (None if not sent)."""

    text: str
    finish_reason: str | None = None


class ChatError(MmrlError):
    """A chat request that failed for good; ``str()`` is the reason to record, the API key redacted.

    ``reason``: what went wrong on the last attempt; ``attempts``: how many were made; ``stage``: ``"request"``
    (HTTP error, timeout, connection) or ``"response"`` (a success status without chat-completion content);
    ``gave_up``: the last failure was transient and the retries ran out (``str()`` then says so).
    """

    def __init__(self, reason: str, *, attempts: int, stage: str = "request", gave_up: bool = False) -> None:
        self.reason, self.attempts, self.stage, self.gave_up = reason, attempts, stage, gave_up
        super().__init__(f"{reason} (gave up after {attempts} attempts)" if gave_up else reason)


class ChatClient:
    """An OpenAI-compatible chat-completions endpoint (see the module docstring).

    Args:
        base_url: API root, e.g. ``https://api.openai.com/v1``; requests go to ``{base_url}/chat/completions``.
        model: the model name sent with every request.
        api_key_env: environment variable holding the API key, read at each call (unset or empty: no
            Authorization header; None: never any). The key itself is never stored, logged or shown.
        concurrency: most requests in flight at once.
        timeout_s: total time limit of one attempt, in seconds.
        max_retries: retries after the first attempt, on transient failures only.
        backoff_s: retry ``k`` (from 0) waits ``backoff_s * 2**k`` seconds, or ``Retry-After`` when longer.

    A request carrying ``response_format`` that the server rejects (HTTP 400/422 naming ``response_format``)
    is sent again without it, and so is every later request of this client: a downgrade, not a retry.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
    ) -> None:
        if not isinstance(base_url, str) or not base_url:
            raise ConfigError(f"ChatClient needs base_url=, an API root such as https://api.openai.com/v1, got {base_url!r}")
        if not isinstance(model, str) or not model:
            raise ConfigError(f"ChatClient needs model=, the model name the server serves, got {model!r}")
        for name, value, low in (("concurrency", concurrency, 1), ("max_retries", max_retries, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        for name, value in (("timeout_s", timeout_s), ("backoff_s", backoff_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if timeout_s == 0:
            raise ConfigError("timeout_s must be > 0, got 0")
        self.model, self.api_key_env = model, api_key_env
        self.url = f"{base_url.rstrip('/')}/chat/completions"
        self.concurrency, self.timeout_s, self.max_retries, self.backoff_s = concurrency, timeout_s, max_retries, backoff_s
        self._response_format = True  # sent where asked, until the server rejects it

    def complete(
        self, conversations: Sequence[Messages], *, max_tokens: int, temperature: float = 0.0, **extra: Any
    ) -> list[Completion | ChatError]:
        """Sync :meth:`acomplete` (works inside a running event loop too)."""
        return run_sync(self.acomplete(conversations, max_tokens=max_tokens, temperature=temperature, **extra))

    async def acomplete(
        self, conversations: Sequence[Messages], *, max_tokens: int, temperature: float = 0.0, **extra: Any
    ) -> list[Completion | ChatError]:
        """One request per conversation, concurrently; a Completion or the ChatError of each, in order.

        ``extra``: more body fields of every request, e.g. ``seed=7`` or ``response_format={"type": "json_object"}``.
        """
        key = os.environ.get(self.api_key_env or "", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        semaphore = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(headers=headers, timeout=self.timeout_s, limits=limits) as http:
            bodies = [
                {"model": self.model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens, **extra}
                for messages in conversations
            ]
            return await asyncio.gather(*(self._settled(http, semaphore, body, key) for body in bodies))

    async def _settled(
        self, http: httpx.AsyncClient, semaphore: asyncio.Semaphore, body: dict[str, Any], key: str
    ) -> Completion | ChatError:
        try:
            return await self._post(http, semaphore, body, key)
        except ChatError as exc:
            return exc

    async def _post(self, http: httpx.AsyncClient, semaphore: asyncio.Semaphore, body: dict[str, Any], key: str) -> Completion:
        attempt, delay = 0, 0.0
        while True:
            if delay:
                await asyncio.sleep(delay)
            if not self._response_format:
                body.pop("response_format", None)
            try:
                async with semaphore:
                    response = await asyncio.wait_for(http.post(self.url, json=body), self.timeout_s)
            except (asyncio.TimeoutError, httpx.TimeoutException):
                reason, retry_after = f"timed out after {self.timeout_s:g} s", 0.0
            except httpx.TransportError as exc:
                reason, retry_after = redact(f"{type(exc).__name__} from {self.url}: {exc}", key), 0.0
            else:
                status, text = response.status_code, redact(response.text, key)
                if status in (400, 422) and "response_format" in body and "response_format" in text:
                    logger.info("%s rejects response_format; asking without it from now on", self.url)
                    self._response_format, delay = False, 0.0
                    continue
                if 200 <= status < 300:
                    return _completion(text, self.url, attempt + 1)
                reason = f"HTTP {status} from {self.url}: {_excerpt(text)}{self._hint(status, key)}"
                if status not in RETRY_STATUS:
                    raise ChatError(reason, attempts=attempt + 1)
                retry_after = _retry_after(response.headers.get("retry-after"))
            if attempt >= self.max_retries:
                raise ChatError(reason, attempts=attempt + 1, gave_up=True)
            delay = max(self.backoff_s * 2**attempt, min(retry_after, MAX_RETRY_AFTER_S))
            logger.debug("%s: attempt %d failed (%s); retrying in %.2f s", self.url, attempt + 1, reason, delay)
            attempt += 1

    def _hint(self, status: int, key: str) -> str:
        if status != 401:
            return ""
        if not self.api_key_env:
            return " (no API key sent: set api_key_env)"
        return f" (is a valid API key in ${self.api_key_env}?)" if key else f" (no API key sent: ${self.api_key_env} is unset or empty)"

    def __repr__(self) -> str:
        return f"ChatClient({self.model!r} at {self.url!r})"


def _completion(text: str, url: str, attempts: int) -> Completion:
    try:
        choice = json.loads(text)["choices"][0]
        content = choice["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str):
        reason = f"expected chat-completion JSON with a string choices[0].message.content from {url}, got {_excerpt(text)}"
        raise ChatError(reason, attempts=attempts, stage="response")
    return Completion(content, choice.get("finish_reason"))


def _excerpt(text: str, limit: int = 200) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _retry_after(value: str | None) -> float:
    """Seconds to wait by a ``Retry-After`` header (delay seconds or an HTTP date); 0 when absent or unreadable."""
    if value is None:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError):
            return 0.0
    return max(seconds, 0.0) if math.isfinite(seconds) else 0.0


# ----- local transformers model -----


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Messages],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    temperature: float = 0.0,
    seed: int | None = None,
) -> list[str]:
    """Completions of chat ``prompts`` by a transformers causal LM, in prompt order, special tokens removed.

    Prompts go through the tokenizer's chat template in left-padded batches of ``batch_size`` (a tokenizer
    without a pad token pads with its eos token). ``temperature`` 0 decodes greedily; above 0 samples, from
    torch's RNG seeded with ``seed`` and restored afterwards (``seed`` None: torch's global RNG, which
    advances). The model runs in eval mode without gradients; its mode and the tokenizer are restored.
    """
    import torch

    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    was_training, side, pad = model.training, tokenizer.padding_side, tokenizer.pad_token
    device = next(model.parameters()).device
    model.eval()
    tokenizer.padding_side = "left"
    if pad is None:
        tokenizer.pad_token = tokenizer.eos_token
    out: list[str] = []
    try:
        with torch.no_grad(), _seeded(seed if sampling["do_sample"] else None, device):
            for start in range(0, len(prompts), batch_size):
                texts = [
                    tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
                    for m in prompts[start : start + batch_size]
                ]
                inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
                tokens = model.generate(**inputs, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling)
                out += tokenizer.batch_decode(tokens[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        model.train(was_training)
        tokenizer.padding_side = side
        if pad is None:
            tokenizer.pad_token = None
    return out


@contextmanager
def _seeded(seed: int | None, device: Any) -> Iterator[None]:
    """Torch's RNG of the CPU and of a CUDA ``device`` seeded with ``seed`` inside, restored on exit (None: untouched)."""
    if seed is None:
        yield
        return
    import torch

    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield
