"""Strategy-v0: pick the therapist's next support strategy; a realiser turns it into a reply the composed reward scores.

The strategy-planning subproblem of the counseling task as a plain Box/Discrete env (what RLlib trains).
:class:`StrategyEpisodes` holds everything an episode needs, computed once (observations, gold
strategies and, for a deterministic realiser, the reply and reward of all 10 strategies at every
turn), so a step is a table lookup and a prebuilt table can be shipped to RLlib env runners.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.base import (
    ActionError,
    EnvStateError,
    check_components,
    check_nan_reward,
    check_optional_count,
    check_predictor,
    check_render_mode,
    nan_reward_or_raise,
    pick_dialogue,
)
from envs.realiser import Realiser, RetrievalRealiser
from envs.spaces import EMBEDDING_DIM
from mmrl.data.schema import Dialogue
from mmrl.data.sources import DataSource, load_dialogues
from mmrl.data.synth import demo_corpus
from mmrl.errors import ConfigError, DataError
from mmrl.labels import EMOTIONS, STRATEGIES, TRUST_CRITERIA
from mmrl.predictor import Components, EmotionPredictor
from rewards.base import Context, RewardError
from rewards.compose import Composite
from rewards.spec import build_composite

__all__ = [
    "DEFAULT_REWARD_SPEC",
    "DEFAULT_MATCH_WEIGHT",
    "DEMO_DIALOGUES",
    "MATCH_NAME",
    "ORDERS",
    "observation_layout",
    "StrategyEpisodes",
    "StrategyEnv",
]

#: The seven trust criteria, each weighted 1/7: the composite total is their mean, in [0, 1].
DEFAULT_REWARD_SPEC: dict = {"rewards": {name: 1 / len(TRUST_CRITERIA) for name in TRUST_CRITERIA}}
#: Weight of the strategy-match term (1 when the chosen strategy is the therapist's, else 0).
DEFAULT_MATCH_WEIGHT = 1.0
#: Name of the strategy-match term in ``info["rewards"]`` and in the logged metrics.
MATCH_NAME = "strategy_match"
#: Size of the embedded synthetic corpus used when no data is given (enough for every strategy to occur in 2+ train dialogues).
DEMO_DIALOGUES = 40
#: How ``reset`` picks the dialogue: uniformly at random, or each in turn (from the first after a seeded reset).
ORDERS: tuple[str, ...] = ("random", "sequential")

_NONE = len(STRATEGIES)  # the "no earlier strategy" slot of previous_strategy
_LOG_SCALE = math.log1p(256)  # position and client_length: 256+ turns / words read as 1.0
_F32_MAX = float(np.finfo(np.float32).max)


def observation_layout(embedding_dim: int = EMBEDDING_DIM) -> dict[str, slice]:
    """Where each feature sits in the flat observation (see :class:`StrategyEnv`), in order.

    >>> {name: (s.start, s.stop) for name, s in observation_layout(4).items()}["previous_strategy"]
    (30, 41)
    """
    sizes = {
        "embedding": embedding_dim,
        "predictor_mask": 1,
        "client_emotion": len(EMOTIONS),
        "therapist_emotion": len(EMOTIONS),
        "strategy": len(STRATEGIES),
        "position": 1,
        "previous_strategy": len(STRATEGIES) + 1,
        "client_length": 1,
    }
    layout, start = {}, 0
    for name, size in sizes.items():
        layout[name] = slice(start, start + size)
        start += size
    return layout


# --------------------------------------------------------------------------------------------
# Episodes: everything precomputed.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StrategyEpisodes:
    """The per-turn tables of a set of dialogues; rows ``offsets[k]:offsets[k + 1]`` are dialogue ``k``'s steps.

    ``replies`` / ``scores`` / ``totals`` / ``failures`` hold the outcome of each of the 10
    strategies at each row when the realiser is deterministic, else they are None (realised live).
    ``scores[row, action, j]`` is component ``component_names[j]``; ``totals`` the composite total.
    """

    dialogue_ids: tuple[str, ...]
    offsets: np.ndarray
    turn_indices: np.ndarray
    observations: np.ndarray
    gold: np.ndarray
    contexts: tuple[Context, ...]
    embedding_dim: int
    component_names: tuple[str, ...]
    replies: tuple[tuple[str | None, ...], ...] | None = None
    scores: np.ndarray | None = None
    totals: np.ndarray | None = None
    failures: Mapping[tuple[int, int], Mapping[str, str]] | None = None

    @property
    def precomputed(self) -> bool:
        return self.totals is not None

    @property
    def n_steps(self) -> int:
        return len(self.turn_indices)

    def __len__(self) -> int:
        return len(self.dialogue_ids)

    @classmethod
    def build(
        cls,
        dialogues: Sequence[Dialogue],
        *,
        composite: Composite,
        realiser: Realiser,
        predictor: EmotionPredictor | None = None,
        embedding_dim: int | None = None,
    ) -> StrategyEpisodes:
        """Observations of every target turn (one predictor call), and every outcome when the realiser is deterministic."""
        dialogues = [d for d in dialogues if d.target_indices()]
        if not dialogues:
            raise DataError("StrategyEnv needs dialogues with at least one therapist turn after another turn; got none")
        items = [(d, i) for d in dialogues for i in d.target_indices()]
        components = _predict(predictor, items, embedding_dim)
        dim = components[0].embedding.shape[0] if components is not None else (embedding_dim or EMBEDDING_DIM)
        layout = observation_layout(dim)
        observations = np.zeros((len(items), layout["client_length"].stop), dtype=np.float32)
        gold = np.full(len(items), -1, dtype=np.int64)
        contexts, offsets, row = [], [0], 0
        for dialogue in dialogues:
            targets = dialogue.target_indices()
            for index in targets:
                predicted = components[row] if components is not None else None
                contexts.append(Context.from_dialogue(dialogue, index, None if predicted is None else predicted.probabilities()))
                observations[row] = _observation(dialogue, index, predicted, layout)
                strategy = dialogue.turns[index].strategy
                gold[row] = -1 if strategy is None else STRATEGIES.index(strategy)
                row += 1
            offsets.append(row)
        names = tuple(c.name for c in composite.computed)
        episodes = cls(
            dialogue_ids=tuple(d.id for d in dialogues),
            offsets=np.array(offsets, dtype=np.int64),
            turn_indices=np.array([i for _, i in items], dtype=np.int64),
            observations=observations,
            gold=gold,
            contexts=tuple(contexts),
            embedding_dim=dim,
            component_names=names,
        )
        if not getattr(realiser, "deterministic", False):
            return episodes
        replies, scores, totals, failures = _outcomes(composite, realiser, episodes.contexts, names)
        return cls(**{**episodes.__dict__, "replies": replies, "scores": scores, "totals": totals, "failures": failures})


def _predict(predictor: EmotionPredictor | None, items: list[tuple[Dialogue, int]], embedding_dim: int | None) -> list[Components] | None:
    if check_predictor(predictor) is None:
        return None
    return check_components(predictor.predict(items), len(items), embedding_dim)


def _observation(dialogue: Dialogue, index: int, predicted: Components | None, layout: dict[str, slice]) -> np.ndarray:
    """The observation of target turn ``index``: only what precedes the therapist's turn (nothing of the future)."""
    obs = np.zeros(layout["client_length"].stop, dtype=np.float32)
    if predicted is not None:
        obs[layout["embedding"]] = np.clip(np.asarray(predicted.embedding, dtype=np.float64), -_F32_MAX, _F32_MAX)
        obs[layout["predictor_mask"]] = 1.0
        for name in ("client_emotion", "therapist_emotion", "strategy"):
            obs[layout[name]] = np.clip(getattr(predicted, name), 0.0, 1.0)
    obs[layout["position"]] = min(math.log1p(index) / _LOG_SCALE, 1.0)
    earlier = [t.strategy for t in dialogue.turns[:index] if t.speaker == "therapist" and t.strategy is not None]
    obs[layout["previous_strategy"].start + (STRATEGIES.index(earlier[-1]) if earlier else _NONE)] = 1.0
    client = dialogue.context_at(index)[1]
    words = len(client.text.split()) if client is not None else 0
    obs[layout["client_length"]] = min(math.log1p(words) / _LOG_SCALE, 1.0)
    return obs


def _outcomes(composite: Composite, realiser: Realiser, contexts: Sequence[Context], names: tuple[str, ...]):
    """Reply, component scores, total and failures of every (context, strategy), in one realiser and one composite call."""
    n, k = len(contexts), len(STRATEGIES)
    flat_contexts = [c for c in contexts for _ in range(k)]
    flat = list(realiser(flat_contexts, list(STRATEGIES) * n))
    if len(flat) != n * k:
        raise ConfigError(f"the realiser returned {len(flat)} replies for {n * k} requests")
    scores = np.full((n, k, len(names)), np.nan)
    totals = np.full((n, k), np.nan)
    failures: dict[tuple[int, int], dict[str, str]] = {}
    realised = [j for j, reply in enumerate(flat) if reply is not None]
    for j, reply in enumerate(flat):
        if reply is None:
            failures[divmod(j, k)] = {"realiser": f"no reply for strategy {STRATEGIES[j % k]!r}"}
    if realised:
        result = composite([flat_contexts[j] for j in realised], [flat[j] for j in realised])
        rows, actions = np.divmod(np.array(realised), k)
        totals[rows, actions] = result.total
        for c, name in enumerate(names):
            scores[rows, actions, c] = result.scores[name]
            for position, reason in result.failures[name].items():
                failures.setdefault((int(rows[position]), int(actions[position])), {})[name] = reason
    replies = tuple(tuple(flat[r * k : (r + 1) * k]) for r in range(n))
    return replies, scores, totals, failures


# --------------------------------------------------------------------------------------------
# The env.
# --------------------------------------------------------------------------------------------


class StrategyEnv(gym.Env[np.ndarray, np.int64]):
    """Choose the support strategy of each therapist turn of a recorded counseling dialogue.

    ## Description

    The strategy-planning subproblem of MultiMood's emotional-support dialogue: at each therapist
    turn the agent picks one of the 10 MESC strategies; a **realiser** writes the reply for it
    (default :class:`RetrievalRealiser`: the closest real train-split therapist reply of that
    strategy), and the reply is scored by a composed reward spec plus a strategy-match term. The
    client is replayed: the next observation is the recorded dialogue's next therapist turn
    whatever the agent chose (a contextual bandit over the turns of a dialogue).

    ## Action Space

    ``Discrete(10)``: the index of a strategy in ``mmrl.labels.STRATEGIES`` (0 Interpretation,
    1 Open question, 2 Self-disclosure, 3 Restatement, 4 Approval, 5 Communication Skills,
    6 Advisement, 7 Guiding the Pace and Depth of the Conversation, 8 Structuring the therapy, 9 Others).

    ## Observation Space

    ``Box(float32, shape=(E + 38,))`` with ``E = embedding_dim`` (default 128, ``envs.spaces.EMBEDDING_DIM``;
    the predictor's width when one is given). Layout (:func:`observation_layout`):

    ==================  ==========  =============  ==================================================
    slice               size        range          meaning
    ==================  ==========  =============  ==================================================
    embedding           E           finite float   the predictor's fused embedding (zeros: none)
    predictor_mask      1           {0, 1}         1 when a predictor filled the four predictor slices
    client_emotion      7           [0, 1]         predicted client emotion (``EMOTIONS`` order)
    therapist_emotion   7           [0, 1]         predicted therapist emotion
    strategy            10          [0, 1]         predicted strategy distribution
    position            1           [0, 1]         log(1 + turn index in the dialogue) / log(257), capped
    previous_strategy   11          one-hot        recorded strategy of the latest earlier therapist turn; 10: none
    client_length       1           [0, 1]         log(1 + words of the client turn) / log(257), capped
    ==================  ==========  =============  ==================================================

    Everything is known before the therapist speaks (no gold label of the turn, nothing of the
    dialogue's future): the features a deployed planner would have.

    ## Rewards

    ``composite total + match_weight * strategy_match``: the total of the reward spec on the
    realised reply (default :data:`DEFAULT_REWARD_SPEC`: the mean of the seven trust criteria, each in
    [0, 1]) and ``strategy_match`` = 1 when the action is the recorded therapist's strategy, else 0
    (``match_weight`` defaults to 1.0). The reward reads the bare reply text (no structured block).
    ``info`` uses the reward vocabulary of both envs: ``reward`` (the total computed, NaN when it
    failed), ``rewards`` (every component score and ``strategy_match``), ``reward_failures``
    (``{name: reason}``) and ``reward_failed``; ``info["reply"]`` is the realised reply. A failure is
    never 0: when the reward is NaN (a failed component, no reply, no gold strategy),
    ``nan_reward=None`` (default) raises :class:`~rewards.base.RewardError` (for a deterministic
    realiser already at construction, naming the failed outcomes); NaN returns NaN; a number is
    returned in its place, the failure still listed in ``info["reward_failures"]``.

    ## Starting State

    ``reset(seed=...)`` picks the dialogue: ``order="random"`` (default) draws it with the env's
    RNG (same seed, same episode, same rewards); ``"sequential"`` takes each in turn, from the first
    after a seeded reset; ``options={"dialogue_id": id}`` or ``{"dialogue_index": i}`` picks it. The
    first observation is its first target turn (``Dialogue.target_indices``); dialogues without one
    are left out.

    ## Episode End

    One episode is one dialogue. Termination: the step on the dialogue's last target turn
    (``info["end_reason"] == "dialogue_end"``). Truncation: ``max_turns`` steps were taken
    (``"max_turns"``). The final observation repeats the last one.

    ## Arguments

    ```python
    gymnasium.make("envs:mmrl/Strategy-v0", data=None, split="train", reward_spec=None, match_weight=1.0)
    ```

    - ``data``: a Corpus, a list of Dialogues, or a path read by ``load_corpus`` (``format`` when not
      detectable); None (default): the embedded synthetic corpus of :data:`DEMO_DIALOGUES` dialogues
      (``mmrl.data.synth.demo_corpus``, generated once into the cache).
    - ``split``: ``"train"`` (default), ``"val"``, ``"test"``, or None for every dialogue given.
    - ``episodes``: a prebuilt :class:`StrategyEpisodes` instead of ``data`` (nothing recomputed; how
      RLlib env runners get their env).
    - ``reward_spec``: a spec mapping or YAML path (``rewards.spec``) or a Composite; None (default):
      :data:`DEFAULT_REWARD_SPEC`.
    - ``match_weight``: weight of the strategy-match term (default 1.0; 0 turns it off).
    - ``realiser``: a :class:`Realiser`; None (default): a :class:`RetrievalRealiser` over the train
      split of ``index_data``.
    - ``index_data``: where the default realiser's train dialogues come from (default: ``data``).
    - ``predictor``: an ``EmotionPredictor`` (None: predictor slices are zeros, ``predictor_mask`` 0).
    - ``embedding_dim``: width of the embedding slice; None: the predictor's, else 128.
    - ``order``: ``"random"`` (default) or ``"sequential"``.
    - ``max_turns``: truncate after this many steps (None: no limit).
    - ``nan_reward``: None (raise), NaN (return NaN) or a number used when the reward is NaN.
    - ``render_mode``: ``"ansi"`` (returns the last step as text) or None.

    ## Version History

    - v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        data: DataSource | None = None,
        *,
        format: str | None = None,
        split: str | None = "train",
        episodes: StrategyEpisodes | None = None,
        reward_spec: Mapping | str | os.PathLike | Composite | None = None,
        match_weight: float = DEFAULT_MATCH_WEIGHT,
        realiser: Realiser | None = None,
        index_data: DataSource | None = None,
        predictor: EmotionPredictor | None = None,
        embedding_dim: int | None = None,
        order: str = "random",
        max_turns: int | None = None,
        nan_reward: float | None = None,
        render_mode: str | None = None,
    ) -> None:
        if episodes is not None and data is not None:
            raise ConfigError("pass data= (dialogues to build episodes from) or episodes= (prebuilt StrategyEpisodes), not both")
        if order not in ORDERS:
            raise ConfigError(f"order must be one of {list(ORDERS)}, got {order!r}")
        check_optional_count("max_turns", max_turns)
        check_optional_count("embedding_dim", embedding_dim)
        if isinstance(match_weight, bool) or not isinstance(match_weight, (int, float)) or not math.isfinite(match_weight):
            raise ConfigError(f"match_weight must be a finite number, got {match_weight!r}")
        check_nan_reward(nan_reward)
        check_render_mode(render_mode, self.metadata["render_modes"])
        self.realiser: Realiser | None = realiser
        self.composite: Composite | None = None
        if episodes is None or not episodes.precomputed:
            spec = DEFAULT_REWARD_SPEC if reward_spec is None else reward_spec
            self.composite = spec if isinstance(spec, Composite) else build_composite(spec)
        if episodes is None:
            data = demo_corpus(DEMO_DIALOGUES) if data is None else data
            dialogues = load_dialogues(data, format=format, split=split)
            if self.realiser is None:
                source = data if index_data is None else index_data
                try:
                    index = load_dialogues(source, format=format if index_data is None else None, split="train")
                except DataError as error:
                    raise DataError(f"the default realiser indexes train dialogues: {error}; pass index_data= (train dialogues)") from error
                self.realiser = RetrievalRealiser(index)
            episodes = StrategyEpisodes.build(
                dialogues, composite=self.composite, realiser=self.realiser, predictor=predictor, embedding_dim=embedding_dim
            )
        elif not episodes.precomputed and self.realiser is None:
            raise ConfigError("these episodes were built for a live (non-deterministic) realiser: pass realiser= too")
        if episodes.precomputed and nan_reward is None and episodes.failures:
            (row, action), reasons = next(iter(episodes.failures.items()))
            raise RewardError(
                f"{len(episodes.failures)} (turn, strategy) outcome(s) could not be scored, e.g. dialogue "
                f"{episodes.contexts[row].dialogue_id!r} turn {episodes.turn_indices[row]} strategy {STRATEGIES[action]!r}: "
                f"{dict(reasons)}; fix the reward/realiser, or pass nan_reward= to train through them"
            )
        self.episodes = episodes
        self.match_weight, self.nan_reward = float(match_weight), nan_reward
        self.order, self.max_turns, self.render_mode = order, max_turns, render_mode
        self.layout = observation_layout(episodes.embedding_dim)
        low = np.zeros(self.layout["client_length"].stop, dtype=np.float32)
        high = np.ones_like(low)
        low[self.layout["embedding"]], high[self.layout["embedding"]] = -_F32_MAX, _F32_MAX
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Discrete(len(STRATEGIES))
        self._cursor = 0
        self._episode: int | None = None
        self._row: int | None = None
        self._turn = 0
        self._last: str | None = None

    # -- Gymnasium API -----------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._cursor = 0
        episode = self._pick(options or {})
        self._episode, self._row, self._turn, self._last = episode, int(self.episodes.offsets[episode]), 0, None
        return self.episodes.observations[self._row].copy(), self._where(self._row)

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._row is None or self._episode is None:
            raise EnvStateError("no episode in progress: call reset() first (after a terminated or truncated step too)")
        if isinstance(action, (bool, np.bool_)) or not self.action_space.contains(action):
            raise ActionError(f"an action is a strategy index, an integer in [0, {len(STRATEGIES)}); got {action!r}")
        row, action = self._row, int(action)
        reply, scores, total, failures = self._outcome(row, action)
        gold = int(self.episodes.gold[row])
        match = math.nan if gold < 0 else float(action == gold)
        if gold < 0:
            failures[MATCH_NAME] = "no gold strategy at this turn"
        computed = total + (self.match_weight * match if self.match_weight else 0.0)
        reward = nan_reward_or_raise(
            computed,
            self.nan_reward,
            f"dialogue {self.episodes.dialogue_ids[self._episode]!r} turn {int(self.episodes.turn_indices[row])} "
            f"strategy {STRATEGIES[action]!r} could not be scored: {failures}",
            "pass nan_reward= to train through failures",
        )
        self._turn += 1
        end = int(self.episodes.offsets[self._episode + 1])
        terminated = row + 1 >= end
        truncated = not terminated and self.max_turns is not None and self._turn >= self.max_turns
        info = {
            **self._where(row),
            "strategy": STRATEGIES[action],
            "gold_strategy": None if gold < 0 else STRATEGIES[gold],
            "reply": reply,
            "reward": computed,
            "rewards": {**scores, MATCH_NAME: match},
            "reward_failures": failures,
            "reward_failed": math.isnan(computed),
            "end_reason": "dialogue_end" if terminated else "max_turns" if truncated else "",
        }
        self._last = (
            f"[{info['dialogue_id']} turn {info['turn_index']}] {info['strategy']} (recorded: {info['gold_strategy']})\n"
            f"Therapist: {reply}\nReward: {reward:.4g}"
        )
        self._row = None if terminated or truncated else row + 1
        return self.episodes.observations[min(row + 1, end - 1)].copy(), float(reward), terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return self._last or "(no step yet: call reset() and step())"

    # -- helpers -------------------------------------------------------------------------------

    def _where(self, row: int) -> dict[str, Any]:
        assert self._episode is not None
        return {"dialogue_id": self.episodes.dialogue_ids[self._episode], "turn_index": int(self.episodes.turn_indices[row])}

    def _pick(self, options: Mapping[str, Any]) -> int:
        index = pick_dialogue(options, self.episodes.dialogue_ids)
        if index is not None:
            return index
        if self.order == "random":
            return int(self.np_random.integers(len(self.episodes)))
        episode, self._cursor = self._cursor, (self._cursor + 1) % len(self.episodes)
        return episode

    def _outcome(self, row: int, action: int) -> tuple[str | None, dict[str, float], float, dict[str, str]]:
        names = self.episodes.component_names
        if self.episodes.precomputed:
            assert self.episodes.replies is not None and self.episodes.scores is not None and self.episodes.totals is not None
            failures = dict((self.episodes.failures or {}).get((row, action), {}))
            scores = {name: float(s) for name, s in zip(names, self.episodes.scores[row, action])}
            return self.episodes.replies[row][action], scores, float(self.episodes.totals[row, action]), failures
        assert self.realiser is not None and self.composite is not None
        context = self.episodes.contexts[row]
        reply = next(iter(self.realiser([context], [STRATEGIES[action]])))
        if reply is None:
            return None, {name: math.nan for name in names}, math.nan, {"realiser": f"no reply for strategy {STRATEGIES[action]!r}"}
        result = self.composite([context], [reply])
        scores = {name: float(result.scores[name][0]) for name in names}
        failures = {name: reasons[0] for name, reasons in result.failures.items() if 0 in reasons}
        return reply, scores, float(result.total[0]), failures
