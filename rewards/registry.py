"""Rewards by name: ``@register`` a batch function or a Reward class, look it up from YAML by name."""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Literal

import numpy as np

from mmrl.config import suggest
from mmrl.errors import ConfigError, MissingDependencyError
from rewards.base import Context, OnFailure, Reward, RewardBatch, RewardError

__all__ = ["FunctionReward", "RegisteredReward", "Reads", "register", "get_reward", "registered", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "mmrl.rewards"
BatchFn = Callable[..., "Sequence[float | None] | RewardBatch"]
#: What a reward scores: the parsed ``Reply:`` text (default) or the raw policy completion.
#: A Reward class declares it as a ``reads`` attribute; a Composite reads it with that default.
Reads = Literal["reply", "completion"]


class FunctionReward:
    """A Reward around a plain batch function ``fn(contexts, replies, **options)``.

    The function returns a float per reply (None where it cannot score, with the reason
    "returned None") or a RewardBatch. A ConfigError or MissingDependencyError propagates (the
    reward is misconfigured, whatever the reply); any other exception fails the whole batch with its message;
    scores outside ``score_range`` are failures too. With ``on_failure="raise"`` any failure raises.
    ``fingerprint`` hashes the options, so caches never mix scores computed with different options.
    """

    def __init__(
        self,
        fn: BatchFn,
        *,
        name: str,
        version: str,
        score_range: tuple[float, float],
        reads: Reads = "reply",
        on_failure: OnFailure = "record",
        **options,
    ) -> None:
        if on_failure not in ("record", "raise"):
            raise ConfigError(f"{name}: on_failure must be 'record' or 'raise', got {on_failure!r}")
        if reads not in ("reply", "completion"):
            raise ConfigError(f"{name}: reads must be 'reply' or 'completion', got {reads!r}")
        try:
            inspect.signature(fn).bind(None, None, **options)
        except TypeError as exc:
            raise ConfigError(f"reward {name!r} does not accept options {sorted(options)}: {exc}") from None
        self.fn, self.options = fn, options
        self.name, self.version, self.score_range, self.on_failure = name, version, score_range, on_failure
        self.reads = reads
        self.__name__ = name

    @property
    def fingerprint(self) -> str:
        """A stable hash of the options and of the fitted state the function declares (part of every cache key).

        A function may carry ``state_digest(**options) -> str`` (the criteria do: their probes, pairs,
        hand weights and code, the context-fit model), so a cache never serves a score computed by
        other fitted weights under the same name and version.
        """
        state = getattr(self.fn, "state_digest", None)
        payload = json.dumps({"options": self.options, "state": state(**self.options) if state else None},
                             sort_keys=True, default=repr, ensure_ascii=False)  # fmt: skip
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def __call__(self, contexts: Sequence[Context], replies: Sequence[str]) -> RewardBatch:
        if len(contexts) != len(replies):
            raise RewardError(f"{self.name}: got {len(contexts)} contexts but {len(replies)} replies")
        try:
            out = self.fn(contexts, replies, **self.options)
            batch = out if isinstance(out, RewardBatch) else _from_values(out, len(replies))
        except (ConfigError, MissingDependencyError):  # a property of the spec, not of a reply: stop
            raise
        except Exception as exc:  # a reward failure is data, not a crash, unless asked to raise
            if self.on_failure == "raise":
                raise RewardError(f"{self.name} failed: {type(exc).__name__}: {exc}") from exc
            batch = RewardBatch.failed(len(replies), f"{type(exc).__name__}: {exc}")
        if len(batch.scores) != len(replies):
            raise RewardError(f"{self.name} returned {len(batch.scores)} scores for {len(replies)} replies")
        low, high = self.score_range
        for i in np.flatnonzero(batch.ok & ((batch.scores < low) | (batch.scores > high))):
            batch.failures[int(i)] = f"score {batch.scores[i]:.4g} outside the documented range [{low}, {high}]"
            batch.scores[i] = np.nan
        if batch.failures and self.on_failure == "raise":
            index, reason = next(iter(batch.failures.items()))
            raise RewardError(f"{self.name} could not score reply {index}: {reason}")
        return batch

    def __repr__(self) -> str:
        return f"FunctionReward({self.name!r}, version={self.version!r})"


def _from_values(values: Sequence[float | None], n: int) -> RewardBatch:
    values = list(values)
    failures = {i: "returned None" for i, v in enumerate(values) if v is None}
    scores = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    failures.update({i: "returned NaN" for i in np.flatnonzero(np.isnan(scores)) if int(i) not in failures})
    return RewardBatch(scores, failures)


@dataclass(frozen=True)
class RegisteredReward:
    """A registry entry: how to build the reward named ``name``."""

    name: str
    factory: Callable[..., Reward]
    version: str
    score_range: tuple[float, float]
    description: str

    def build(self, **options) -> Reward:
        return self.factory(**options)


_REGISTRY: dict[str, RegisteredReward] = {}
_entry_points_loaded = False


def register(name: str, *, version: str = "1", score_range: tuple[float, float] = (0.0, 1.0), reads: Reads = "reply"):
    """Register a batch function (wrapped in FunctionReward) or a Reward class under ``name``.

    The name is the reward's log key (``rewards/<name>/mean``) and its YAML key: never rename it.
    ``reads="completion"`` makes a Composite hand the function the raw completion instead of the
    parsed reply (a Reward class sets its own ``reads`` attribute).
    """

    def decorate(obj):
        if name in _REGISTRY:
            raise ConfigError(f"a reward named {name!r} is already registered ({_REGISTRY[name].factory!r})")
        if inspect.isclass(obj):
            factory = obj
        else:

            def factory(**options):
                return FunctionReward(obj, name=name, version=version, score_range=score_range, reads=reads, **options)

        description = (inspect.getdoc(obj) or "").split("\n\n")[0].replace("\n", " ")
        _REGISTRY[name] = RegisteredReward(name, factory, version, score_range, description)
        return obj

    return decorate


def _load_builtins() -> None:
    global _entry_points_loaded
    import rewards.builtin  # noqa: F401  (registers the built-in rewards)

    if not _entry_points_loaded:
        _entry_points_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            ep.load()


def registered() -> dict[str, RegisteredReward]:
    """Every registered reward, built-ins and entry points included, by name."""
    _load_builtins()
    return dict(sorted(_REGISTRY.items()))


def get_reward(name: str, **options) -> Reward:
    """Build the registered reward ``name``; an unknown name gets a "did you mean"."""
    entries = registered()
    if name not in entries:
        hint = suggest(name, entries)
        raise ConfigError(f"unknown reward {name!r}{hint} (registered: {', '.join(entries)})")
    try:
        return entries[name].build(**options)
    except TypeError as exc:
        raise ConfigError(f"reward {name!r} does not accept options {sorted(options)}: {exc}") from exc
