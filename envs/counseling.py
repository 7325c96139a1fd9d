"""CounselingEnv: one counseling dialogue per episode, one therapist reply per step (Text action, Dict observation)."""

from __future__ import annotations

import math
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from math import gcd
from typing import Any

import gymnasium as gym
import numpy as np

from envs import spaces as S
from envs.base import (
    ActionError,
    ActionWarning,
    EnvStateError,
    check_components,
    check_nan_reward,
    check_optional_count,
    check_predictor,
    check_render_mode,
    nan_reward_or_raise,
    pick_dialogue,
)
from envs.clients import Client, ClientStep, ReplayClient
from mmrl.data import Dialogue
from mmrl.data.media import load_media
from mmrl.data.schema import Turn
from mmrl.data.sources import DataSource, load_dialogues
from mmrl.errors import ConfigError, DataError
from mmrl.predictor import Components, EmotionPredictor
from rewards.base import Context
from rewards.compose import Composite, reply_text
from rewards.spec import build_composite

__all__ = ["CounselingEnv", "render_history"]


def render_history(history: Sequence[tuple[str, str]], max_length: int = S.HISTORY_MAX_LENGTH) -> str:
    """``"Client: ...\\nTherapist: ..."`` lines within the charset; the oldest whole turns go first when too long."""
    lines = [f"{speaker.capitalize()}: {S.clip_text(text, S.UTTERANCE_MAX_LENGTH)}" for speaker, text in history]
    size, keep = -1, len(lines)
    while keep > 0 and size + len(lines[keep - 1]) + 1 <= max_length:
        size += len(lines[keep - 1]) + 1
        keep -= 1
    return "\n".join(lines[keep:])


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


_NO_VIDEO = _readonly(np.zeros(S.VIDEO_SHAPE, np.uint8))
_NO_AUDIO = _readonly(np.zeros(S.AUDIO_SAMPLES, np.float32))


def _resize(frame: np.ndarray) -> np.ndarray:
    """Centre square crop, then nearest-neighbour resize to FRAME_SIZE (deterministic, no interpolation)."""
    height, width = frame.shape[:2]
    side = min(height, width)
    rows = (height - side) // 2 + (np.arange(S.FRAME_SIZE) * side) // S.FRAME_SIZE
    cols = (width - side) // 2 + (np.arange(S.FRAME_SIZE) * side) // S.FRAME_SIZE
    return frame[np.ix_(rows, cols)]


def _fit_video(clips: list[np.ndarray]) -> np.ndarray:
    """VIDEO_FRAMES frames picked evenly over all clips of the turn (repeated when there are fewer)."""
    offsets = np.cumsum([0] + [len(c) for c in clips])
    out = np.empty(S.VIDEO_SHAPE, np.uint8)
    for k, frame in enumerate(np.linspace(0, offsets[-1] - 1, S.VIDEO_FRAMES).round().astype(int)):
        clip = int(np.searchsorted(offsets, frame, side="right")) - 1
        out[k] = _resize(np.asarray(clips[clip][frame - offsets[clip]], dtype=np.uint8))
    return _readonly(out)


def _fit_audio(waves: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """Resampled to SAMPLE_RATE (polyphase), joined, centre-cropped or zero-padded at the end to AUDIO_SAMPLES."""
    from scipy.signal import resample_poly

    parts = []
    for wave, rate in waves:
        wave = np.asarray(wave, dtype=np.float64)
        if rate != S.SAMPLE_RATE:
            common = gcd(int(rate), S.SAMPLE_RATE)
            wave = resample_poly(wave, S.SAMPLE_RATE // common, int(rate) // common)
        parts.append(wave)
    joined = np.concatenate(parts)
    out = np.zeros(S.AUDIO_SAMPLES, np.float32)
    if len(joined) > S.AUDIO_SAMPLES:
        start = (len(joined) - S.AUDIO_SAMPLES) // 2
        joined = joined[start : start + S.AUDIO_SAMPLES]
    out[: len(joined)] = np.clip(joined, -1.0, 1.0)
    return _readonly(out)


class CounselingEnv(gym.Env[dict, str]):
    """Counseling dialogue: the agent is the therapist and writes one reply per step.

    ## Description

    One episode is one counseling dialogue from a data source (MESC, MultiMood, the synthetic
    corpus: anything ``mmrl.data.load_corpus`` reads), restricted to one ``split``. Each step is one
    therapist turn: the agent sees the conversation so far, the client's latest utterance with its
    video and audio, and the emotion predictor's outputs; it replies; the reply is scored by a
    composed trust reward (``rewards/``) and the next client turn arrives. With the
    :class:`~envs.clients.ReplayClient` (default) the client turns are the recorded ones and every
    step is a recorded therapist turn (``Dialogue.target_indices``) with the recorded history, the
    same Context the TRL dataset and the CLI build; with a :class:`~envs.clients.SimulatedClient`
    an LLM plays the client from a persona and the history holds the agent's own replies.

    ## Action Space

    ``Text(min_length=0, max_length=1024, charset=envs.spaces.CHARSET)``: the therapist's reply, plain
    or in the structured block of ``mmrl.policy.prompts.format_output`` (reply-reading rewards score
    its ``Reply:`` field, and a simulated client hears only that). ``CHARSET`` is
    ``string.printable``, Latin-1 and Latin Extended-A letters and typographic punctuation. A
    non-``str`` action raises :class:`ActionError`. A longer reply is clipped to 1024 characters,
    and characters outside the charset are folded (NFKC) or removed; either emits an
    :class:`ActionWarning` and sets ``info["action_clipped"]`` / ``info["action_sanitized"]``;
    the reward scores the reply as changed.

    ## Observation Space

    ``Dict`` (``envs.spaces.observation_space``; ``CounselingText-v0`` has no video/audio/media_mask):

    | key               | meaning                                               | shape / length     | range          |
    |-------------------|-------------------------------------------------------|--------------------|----------------|
    | history           | "Client: ..." / "Therapist: ..." lines before the     | <= 16384 chars     | CHARSET        |
    |                   | client utterance; oldest whole turns dropped to fit   |                    |                |
    | client_utterance  | the client's latest turn                              | <= 2048 chars      | CHARSET        |
    | video_description | description of the client's video ("" when none)      | <= 2048 chars      | CHARSET        |
    | situation         | the client's situation ("" when unknown)              | <= 2048 chars      | CHARSET        |
    | problem_type      | e.g. "Job Crisis" ("" when unknown)                   | <= 256 chars       | CHARSET        |
    | video             | 8 frames evenly over the turn's clips, centre-cropped | (8, 64, 64, 3)     | uint8 0..255   |
    |                   | and nearest-resized; zeros when absent                |                    |                |
    | audio             | mono at 16 kHz (polyphase resampling), centre 2 s,    | (32000,)           | float32 -1..1  |
    |                   | zero-padded at the end; zeros when absent             |                    |                |
    | media_mask        | [video present, audio present]                        | (2,)               | int8 0/1       |
    | client_emotion    | predictor: client emotion probabilities (EMOTIONS)    | (7,)               | float32 0..1   |
    | therapist_emotion | predictor: therapist emotion probabilities            | (7,)               | float32 0..1   |
    | strategy          | predictor: strategy probabilities (STRATEGIES)        | (10,)              | float32 0..1   |
    | embedding         | predictor: fused embedding                            | (embedding_dim,)   | finite float32 |
    | predictor_mask    | 1 when a predictor filled the four rows above, else   | (1,)               | int8 0/1       |
    |                   | 0 and they are zeros                                  |                    |                |

    Arrays may be shared with the env's cache and are read-only: copy before changing them.

    ## Rewards

    ``reward_spec=None`` (default): no reward configured, every reward is 0.0 and ``info`` has no
    ``reward_*`` keys. Otherwise the reward is the Composite total (``rewards.spec``) of the reply in
    the step's Context (with the predictor's probabilities when a predictor is set), and ``info``
    carries ``reward`` (the total), ``rewards`` (``{name: score}``, NaN where a component failed),
    ``reward_failures`` (``{name: reason}``), ``reward_gates`` (``{name: 1.0 violated / 0.0 / NaN}``)
    and ``reward_failed``. A failure is never 0: when the total is NaN, ``nan_reward=None`` (default)
    raises :class:`~rewards.base.RewardError` naming the failures, before the env moves on (the
    step can be retried); ``nan_reward=float("nan")`` returns NaN; a number is returned in its place.

    Step ``info``: ``dialogue_id`` and ``turn_index`` of the turn answered, its ``reference`` reply
    and ``gold`` labels (``client_emotion``, ``therapist_emotion``, ``strategy``; None when unknown),
    ``action_clipped``, ``action_sanitized``, ``end_reason`` ("" while going on), ``client_risk``
    (the persona's risk at the new client turn; None when replayed), and the ``reward_*`` keys.

    ## Starting State

    ``reset(seed=...)`` draws the dialogue with the env's RNG (same seed, same episode and, with a
    deterministic client, the same rewards); ``options={"dialogue_id": id}`` or
    ``{"dialogue_index": i}`` picks it. The first observation is its first therapist turn.
    Dialogues with no therapist turn after another turn are skipped at construction and counted in
    ``env.skipped`` (their ids in ``env.skipped_ids``; also ``info["skipped"]`` of ``reset``).

    ## Episode End

    Termination: the recorded dialogue has no further therapist turn, or the simulated client leaves
    (``info["end_reason"]`` is ``"dialogue_end"`` / ``"client_left"``). Truncation: ``max_turns``
    therapist turns were taken (``"max_turns"``). On termination the final observation repeats the
    last one; on truncation it is the next client turn (for bootstrapping), and a further ``step``
    needs a ``reset`` either way.

    ## Arguments

    ```python
    gymnasium.make("envs:mmrl/Counseling-v0", data=None, split="train", client="replay", reward_spec=None)
    ```

    - ``data``: a Corpus, a list of Dialogues, or a path read by ``load_corpus`` (``format`` when not
      detectable); None (default): the embedded synthetic corpus (``mmrl.data.synth.demo_corpus``).
    - ``split``: ``"train"`` (default), ``"val"``, ``"test"``, or None for every dialogue given.
    - ``client``: ``"replay"`` (default), a Client (e.g. ``SimulatedClient``), or a zero-argument
      factory of one (e.g. ``functools.partial(SimulatedClient, model, tokenizer)``): clients keep
      episode state, so with ``make_vec`` pass a factory and every env builds its own.
    - ``reward_spec``: a reward spec mapping or YAML path (``rewards.spec.build_composite``), a
      Composite, or None (rewards off).
    - ``nan_reward``: None (raise), NaN (return NaN) or a number used when the total is NaN.
    - ``predictor``: an ``EmotionPredictor`` (None: predictor rows are zeros, ``predictor_mask`` 0).
    - ``embedding_dim``: width of ``embedding``; None: the predictor's ``embedding_dim`` attribute,
      else the width of one probe prediction, else 128.
    - ``media``: include video/audio (default True; False is ``CounselingText-v0``).
    - ``max_turns``: truncate after this many steps (None: no limit).
    - ``cache_size``: observations of this many replayed turns are kept, decoded media included
      (about 230 KB each with media; default 256).
    - ``on_media_error``: ``"raise"`` (default) a DataError for a media file that does not decode,
      or ``"mask"``: zeros, mask 0, and the errors in ``info["media_errors"]`` (present only then).
    - ``render_mode``: ``"ansi"`` (returns the last exchange as text) or ``"human"`` (prints it).

    ## Version History

    - v0: initial version.
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 1}

    def __init__(
        self,
        data: DataSource | None = None,
        *,
        format: str | None = None,
        split: str | None = "train",
        client: str | Client | Callable[[], Client] = "replay",
        reward_spec: Mapping | str | os.PathLike | Composite | None = None,
        nan_reward: float | None = None,
        predictor: EmotionPredictor | None = None,
        embedding_dim: int | None = None,
        media: bool = True,
        max_turns: int | None = None,
        cache_size: int = 256,
        on_media_error: str = "raise",
        render_mode: str | None = None,
    ) -> None:
        dialogues = load_dialogues(data, format=format, split=split)
        usable = [d for d in dialogues if d.target_indices()]
        self.skipped_ids: list[str] = [d.id for d in dialogues if not d.target_indices()]
        self.skipped: int = len(self.skipped_ids)
        if not usable:
            raise DataError(f"none of the {len(dialogues)} dialogue(s) has a therapist turn after another turn: nothing to reply to")
        self.dialogues: list[Dialogue] = usable
        self._by_id = {d.id: i for i, d in enumerate(usable)}

        if client == "replay":
            client = ReplayClient()
        elif not isinstance(client, Client) and callable(client):
            client = client()
        if not isinstance(client, Client):
            raise ConfigError(f"client must be 'replay', a Client (reset, respond, end_reason) or a factory of one, got {client!r}")
        self.client: Client = client
        self.composite: Composite | None = (
            reward_spec if isinstance(reward_spec, Composite) or reward_spec is None else build_composite(reward_spec)
        )
        self.nan_reward = check_nan_reward(nan_reward)
        self.predictor = check_predictor(predictor)
        self.max_turns = check_optional_count("max_turns", max_turns)
        if not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigError(f"cache_size must be an integer >= 0, got {cache_size!r}")
        self.cache_size = cache_size
        if on_media_error not in ("raise", "mask"):
            raise ConfigError(f"on_media_error must be 'raise' or 'mask', got {on_media_error!r}")
        self.on_media_error = on_media_error
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self.media = bool(media)

        self._predictions: dict[str, dict[int, Components]] = {}
        self.embedding_dim = self._embedding_dim(embedding_dim)
        self.observation_space = S.observation_space(media=self.media, embedding_dim=self.embedding_dim)
        self.action_space = S.reply_space()
        self._no_prediction = {
            "client_emotion": _readonly(np.zeros(7, np.float32)),
            "therapist_emotion": _readonly(np.zeros(7, np.float32)),
            "strategy": _readonly(np.zeros(10, np.float32)),
            "embedding": _readonly(np.zeros(self.embedding_dim, np.float32)),
            "predictor_mask": _readonly(np.zeros(1, np.int8)),
        }
        self._cache: OrderedDict[tuple[str, int], tuple[dict, Context, list[str]]] = OrderedDict()
        self._step: ClientStep | None = None
        self._context: Context | None = None
        self._obs: dict | None = None
        self._media_errors: list[str] = []
        self._turn = 0
        self._last: tuple[str, float] | None = None

    # ----- Gymnasium API -----

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        dialogue = self.dialogues[self._pick(options or {})]
        step = self.client.reset(dialogue, self.np_random)
        self._turn, self._last = 0, None
        obs = self._enter(step)
        info = {**self._where(), "skipped": self.skipped, "client_risk": step.risk}
        if self._media_errors:
            info["media_errors"] = list(self._media_errors)
        return obs, info

    def step(self, action: str) -> tuple[dict, float, bool, bool, dict]:
        if self._step is None or self._context is None:
            raise EnvStateError("no episode in progress: call reset() first (after a terminated or truncated step too)")
        reply, clipped, sanitized = self._read_action(action)
        context = self._context
        info: dict[str, Any] = {
            **self._where(),
            "reference": context.reference,
            "gold": {
                "client_emotion": context.gold_client_emotion,
                "therapist_emotion": context.gold_therapist_emotion,
                "strategy": context.gold_strategy,
            },
            "action_clipped": clipped,
            "action_sanitized": sanitized,
        }
        reward = 0.0 if self.composite is None else self._score(context, reply, info)
        step = self.client.respond(reply_text(reply))  # a client error leaves the step retryable
        self._turn += 1
        self._last = (reply, reward)
        terminated = step is None
        truncated = not terminated and self.max_turns is not None and self._turn >= self.max_turns
        info["end_reason"] = self.client.end_reason if terminated else "max_turns" if truncated else ""
        info["client_risk"] = None if step is None else step.risk
        if step is None:
            obs = self._obs
            self._step = None
        else:
            obs = self._enter(step)
            if truncated:
                self._step = None
        if self._media_errors:
            info["media_errors"] = list(self._media_errors)
        return obs, reward, terminated, truncated, info  # type: ignore[return-value]

    def render(self) -> str | None:
        if self._context is None:
            text = "(no episode yet: call reset())"
        else:
            context = self._context
            lines = [f"[{context.dialogue_id} turn {context.turn_index}]", f"Client: {context.client_utterance}"]
            if self._last is not None:
                lines += [f"Therapist: {self._last[0]}", f"Reward: {self._last[1]:.4g}"]
            text = "\n".join(lines)
        if self.render_mode == "human":
            print(text)
            return None
        return text

    # ----- public helpers -----

    @property
    def context(self) -> Context | None:
        """The reward Context of the current observation (None before reset / after the episode)."""
        return self._context if self._step is not None else None

    def dialogue(self, dialogue_id: str) -> Dialogue:
        """The dialogue with this id (a ConfigError with a close match when there is none)."""
        index = pick_dialogue({"dialogue_id": dialogue_id}, list(self._by_id), "this env's split")
        assert index is not None
        return self.dialogues[index]

    # ----- internals -----

    def _pick(self, options: Mapping[str, Any]) -> int:
        index = pick_dialogue(options, list(self._by_id), "this env's split")
        return int(self.np_random.integers(len(self.dialogues))) if index is None else index

    def _where(self) -> dict[str, Any]:
        context = self._context
        return {"dialogue_id": context.dialogue_id, "turn_index": context.turn_index} if context else {}

    def _enter(self, step: ClientStep) -> dict:
        """Make ``step`` current and return its observation (cached for replayed turns)."""
        key = (step.dialogue.id, step.index)
        cached = None if step.live else self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
        else:
            self._media_errors = []
            cached = self._build(step)
            if not step.live and self.cache_size:
                self._cache[key] = cached
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        obs, self._context, self._media_errors = cached
        self._step, self._obs = step, dict(obs)
        return self._obs

    def _build(self, step: ClientStep) -> tuple[dict, Context, list[str]]:
        components = self._predict(step)
        context = step.context(None if components is None else components.probabilities())
        obs: dict[str, Any] = {
            "history": render_history(context.history),
            "client_utterance": S.clip_text(context.client_utterance, S.UTTERANCE_MAX_LENGTH),
            "video_description": S.clip_text(context.video_description or "", S.UTTERANCE_MAX_LENGTH),
            "situation": S.clip_text(context.situation or "", S.SITUATION_MAX_LENGTH),
            "problem_type": S.clip_text(context.problem_type or "", S.PROBLEM_TYPE_MAX_LENGTH),
        }
        if self.media:
            obs["video"], obs["audio"], obs["media_mask"] = self._media(step.client_turn)
        obs.update(self._no_prediction if components is None else self._prediction_arrays(components))
        return obs, context, list(self._media_errors)

    def _media(self, turn: Turn | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        clips: list[np.ndarray] = []
        waves: list[tuple[np.ndarray, int]] = []
        for media in turn.media if turn is not None else ():
            try:
                media = load_media(media)
            except DataError as error:
                if self.on_media_error == "raise":
                    raise
                self._media_errors.append(str(error))
                continue
            if media.frames is not None and len(media.frames):
                clips.append(media.frames)
            if media.waveform is not None and len(media.waveform):
                waves.append((media.waveform, media.sample_rate or S.SAMPLE_RATE))
        video = _fit_video(clips) if clips else _NO_VIDEO
        audio = _fit_audio(waves) if waves else _NO_AUDIO
        return video, audio, _readonly(np.array([bool(clips), bool(waves)], np.int8))

    def _predict(self, step: ClientStep) -> Components | None:
        if self.predictor is None:
            return None
        if step.live:
            return self._checked(self.predictor.predict([(step.dialogue, step.index)]), 1)[0]
        by_index = self._predictions.get(step.dialogue.id)
        if by_index is None:  # one batched call per replayed dialogue
            targets = step.dialogue.target_indices()
            out = self._checked(self.predictor.predict([(step.dialogue, i) for i in targets]), len(targets))
            by_index = self._predictions[step.dialogue.id] = dict(zip(targets, out))
        return by_index[step.index]

    def _checked(self, out: Any, n: int) -> list[Components]:
        return check_components(out, n)

    def _prediction_arrays(self, components: Components) -> dict[str, np.ndarray]:
        out = {}
        for name, size in (("client_emotion", 7), ("therapist_emotion", 7), ("strategy", 10), ("embedding", self.embedding_dim)):
            array = np.asarray(getattr(components, name), dtype=np.float32).reshape(-1)
            if array.shape != (size,):
                raise ConfigError(
                    f"the predictor's {name} has shape {array.shape}, expected ({size},); set embedding_dim= to the predictor's width"
                )
            out[name] = _readonly(np.clip(array, 0.0, 1.0) if name != "embedding" else array)
        out["predictor_mask"] = _readonly(np.ones(1, np.int8))
        return out

    def _embedding_dim(self, embedding_dim: int | None) -> int:
        if embedding_dim is not None:
            return embedding_dim
        if self.predictor is None:
            return S.EMBEDDING_DIM
        declared = getattr(self.predictor, "embedding_dim", None)
        if declared is not None:
            return int(declared)
        first = self.dialogues[0]
        probe = self._checked(self.predictor.predict([(first, first.target_indices()[0])]), 1)[0]
        return int(np.asarray(probe.embedding).size)

    def _read_action(self, action: Any) -> tuple[str, bool, bool]:
        if not isinstance(action, str):
            raise ActionError(
                f"the action must be the therapist's reply as a str, got {type(action).__name__} {action!r:.80}; "
                "decode the policy's tokens to text first"
            )
        reply, sanitized = S.sanitize(action)
        if sanitized:
            warnings.warn(
                "reply had characters outside envs.spaces.CHARSET: folded or removed (info['action_sanitized'])",
                ActionWarning,
                stacklevel=3,
            )
        clipped = len(reply) > S.REPLY_MAX_LENGTH
        if clipped:
            reply = reply[: S.REPLY_MAX_LENGTH]
            warnings.warn(
                f"reply longer than {S.REPLY_MAX_LENGTH} characters: clipped (info['action_clipped'])", ActionWarning, stacklevel=3
            )
        return reply, clipped, sanitized

    def _score(self, context: Context, reply: str, info: dict[str, Any]) -> float:
        assert self.composite is not None
        result = self.composite([context], [reply])
        total = float(result.total[0])
        failures = {name: reasons[0] for name, reasons in result.failures.items() if 0 in reasons}
        info["reward"] = total
        info["rewards"] = {name: float(scores[0]) for name, scores in result.scores.items()}
        info["reward_failures"] = failures
        info["reward_gates"] = {name: float(v[0]) for name, v in result.violations.items()}
        info["reward_failed"] = math.isnan(total)
        return nan_reward_or_raise(
            total,
            self.nan_reward,
            f"the reward of dialogue {context.dialogue_id!r} turn {context.turn_index} is NaN (failures: {failures or 'none recorded'})",
            "pass nan_reward=float('nan') to receive NaN, or a number to use instead",
        )
