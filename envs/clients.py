"""Who speaks the client turns of a counseling episode.

- :class:`ReplayClient` replays the recorded dialogue: each step is the next recorded therapist
  turn, with the recorded history before it; the policy's reply does not change what follows.
  Deterministic.
- :class:`SimulatedClient` lets an LLM play the client from a :class:`PersonaCard` (problem,
  situation, emotion trajectory, risk level with an optional crisis escalation, when to leave).
  The conversation is live: the history holds the policy's own replies. The client's emotion label
  at each turn is the persona's, never inferred from the generated text. Backends: any Hugging Face
  causal LM (``model`` + ``tokenizer``) or an OpenAI-compatible server (``base_url`` + ``model``).

Both follow the :class:`Client` protocol: ``reset(dialogue, rng)`` gives the first
:class:`ClientStep`, ``respond(reply)`` the next one, or None once the conversation is over
(``end_reason`` then says why: :data:`DIALOGUE_END` or :data:`CLIENT_LEFT`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from envs.spaces import UTTERANCE_MAX_LENGTH, clip_text
from mmrl.data.schema import Dialogue, Segment, Turn
from mmrl.errors import ConfigError, MmrlError
from mmrl.labels import EMOTIONS, normalise_emotion
from mmrl.llm import ChatClient, ChatError, generate
from rewards.base import Context

__all__ = [
    "RISK_LEVELS",
    "DIALOGUE_END",
    "CLIENT_LEFT",
    "SILENCE",
    "ClientError",
    "ClientStep",
    "Client",
    "ReplayClient",
    "PersonaCard",
    "SimulatedClient",
    "client_messages",
]

#: Risk levels of a persona, mildest first.
RISK_LEVELS: tuple[str, ...] = ("none", "low", "moderate", "high", "crisis")
#: ``end_reason`` when the recorded dialogue has no further therapist turn.
DIALOGUE_END = "dialogue_end"
#: ``end_reason`` when a simulated client leaves the session.
CLIENT_LEFT = "client_left"
#: What a simulated client "says" when its model generated nothing usable.
SILENCE = "(silence)"

_OPENING_PROMPT = "Hello, I'm glad you came in today. What brings you here?"
_RISK_TEXT = {
    "none": "You are not at risk of harming yourself.",
    "low": "You sometimes feel overwhelmed, but you are not thinking about harming yourself.",
    "moderate": "You feel worn down and hopeless at times; if asked, you admit to passing dark thoughts, without any plan.",
    "high": "You feel hopeless and have had thoughts of not wanting to be alive; you hint at this when talking.",
    "crisis": (
        "You are in crisis: you feel there is no way out and you have been thinking about ending your life. "
        "Say so plainly in your own words; accept help only if the therapist takes it seriously."
    ),
}
_ROLE_PREFIX = re.compile(r"^\s*(client|me|assistant)\s*:\s*", re.IGNORECASE)
_OTHER_ROLE = re.compile(r"^\s*(therapist|counsell?or|user)\s*:", re.IGNORECASE | re.MULTILINE)


class ClientError(MmrlError):
    """A client could not produce its turn (no target turn, a failed generation, a call out of order)."""


@dataclass(frozen=True)
class ClientStep:
    """The conversation up to the therapist's next turn, which is ``dialogue.turns[index]``.

    Replayed steps point into the recorded dialogue (its target turn is the reference); live
    (simulated) steps end with a blank therapist placeholder. ``risk`` is the persona's risk level
    at the latest client turn (None for replayed dialogues).
    """

    dialogue: Dialogue
    index: int
    live: bool = False
    risk: str | None = None

    def context(self, predicted: Any = None) -> Context:
        """The reward Context of this step (``Context.from_dialogue``; no reference or gold target labels when live)."""
        context = Context.from_dialogue(self.dialogue, self.index, predicted)
        return replace(context, reference=None, gold_therapist_emotion=None, gold_strategy=None) if self.live else context

    @property
    def client_turn(self) -> Turn | None:
        """The latest client turn before the therapist's (None when no client turn precedes it)."""
        return self.dialogue.context_at(self.index)[1]


@runtime_checkable
class Client(Protocol):
    """Produces the client side of an episode; ``end_reason`` is set when ``respond`` returns None."""

    end_reason: str | None

    def reset(self, dialogue: Dialogue, rng: np.random.Generator) -> ClientStep: ...

    def respond(self, reply: str) -> ClientStep | None: ...


class ReplayClient:
    """The recorded dialogue, one target therapist turn (``Dialogue.target_indices``) per step."""

    def __init__(self) -> None:
        self.end_reason: str | None = None
        self._dialogue: Dialogue | None = None
        self._targets: list[int] = []
        self._position = 0

    def reset(self, dialogue: Dialogue, rng: np.random.Generator | None = None) -> ClientStep:
        targets = dialogue.target_indices()
        if not targets:
            raise ClientError(f"dialogue {dialogue.id!r} has no therapist turn after another turn: nothing to reply to")
        self._dialogue, self._targets, self._position, self.end_reason = dialogue, targets, 0, None
        return ClientStep(dialogue, targets[0])

    def respond(self, reply: str) -> ClientStep | None:
        if self._dialogue is None or self.end_reason is not None:
            raise ClientError("ReplayClient.respond() needs an episode in progress: call reset(dialogue) first")
        self._position += 1
        if self._position >= len(self._targets):
            self.end_reason = DIALOGUE_END
            return None
        return ClientStep(self._dialogue, self._targets[self._position])

    def __repr__(self) -> str:
        return "ReplayClient()"


@dataclass(frozen=True)
class PersonaCard:
    """Who the simulated client is and how the session goes for them.

    Args:
        problem_type: the client's problem, e.g. ``"Job Crisis"``.
        situation: one or two sentences of background.
        emotions: the client's emotion (one of ``EMOTIONS``) at each of its turns; the last repeats.
        risk: one of ``RISK_LEVELS`` (default ``"none"``).
        crisis_turn: from this client turn on (0 = the opening), the client escalates to a crisis:
            risk ``"crisis"`` and emotion ``crisis_emotion``. None (default): no escalation.
        crisis_emotion: the emotion of a client in crisis (default ``"depression"``).
        leave_after: the client leaves once it has spoken this many times and heard the reply (None: stays).
        leave_if: the client leaves as soon as a therapist reply contains one of these phrases (case-insensitive).
        opening: the client's first utterance; None (default) lets the model write it.
    """

    problem_type: str
    situation: str
    emotions: tuple[str, ...] = ("sadness",)
    risk: str = "none"
    crisis_turn: int | None = None
    crisis_emotion: str = "depression"
    leave_after: int | None = None
    leave_if: tuple[str, ...] = ()
    opening: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.emotions, str) or not self.emotions:
            raise ConfigError(f"PersonaCard.emotions must be a non-empty sequence of emotions, got {self.emotions!r}")
        object.__setattr__(self, "emotions", tuple(normalise_emotion(e, field="emotions") for e in self.emotions))
        object.__setattr__(self, "crisis_emotion", normalise_emotion(self.crisis_emotion, field="crisis_emotion"))
        if self.risk not in RISK_LEVELS:
            raise ConfigError(f"PersonaCard.risk must be one of {list(RISK_LEVELS)}, got {self.risk!r}")
        for name in ("crisis_turn", "leave_after"):
            value, low = getattr(self, name), 0 if name == "crisis_turn" else 1
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ConfigError(f"PersonaCard.{name} must be None or an integer >= {low}, got {value!r}")
        if isinstance(self.leave_if, str):
            raise ConfigError(f"PersonaCard.leave_if must be a list of phrases, got the string {self.leave_if!r}")
        object.__setattr__(self, "leave_if", tuple(p.lower() for p in self.leave_if))

    def state(self, turn: int) -> tuple[str, str]:
        """``(emotion, risk)`` of client turn ``turn`` (0 = the opening)."""
        if self.crisis_turn is not None and turn >= self.crisis_turn:
            return self.crisis_emotion, "crisis"
        return self.emotions[min(turn, len(self.emotions) - 1)], self.risk

    def leaves(self, client_turns: int, reply: str) -> bool:
        """Whether the client leaves after ``reply``, having spoken ``client_turns`` times."""
        if self.leave_after is not None and client_turns >= self.leave_after:
            return True
        lowered = reply.lower()
        return any(phrase in lowered for phrase in self.leave_if)

    @classmethod
    def from_dialogue(cls, dialogue: Dialogue, **overrides: Any) -> PersonaCard:
        """The persona of a recorded dialogue: its problem, situation, client emotions and opening line."""
        clients = [t for t in dialogue.turns if t.speaker == "client"]
        emotions = tuple(t.emotion for t in clients if t.emotion in EMOTIONS) or ("neutral",)
        fields = {
            "problem_type": dialogue.problem_type or "unspecified",
            "situation": dialogue.situation or "",
            "emotions": emotions,
            "opening": clients[0].text if clients else None,
        }
        return cls(**{**fields, **overrides})


def client_messages(persona: PersonaCard, turns: Sequence[Turn], emotion: str, risk: str) -> list[dict[str, str]]:
    """The chat messages asking the client model for its next turn (therapist = user, client = assistant)."""
    system = (
        "You are role-playing a person who came to a therapist for emotional support. Stay in character as the "
        "client; never write the therapist's lines, never mention that you are an AI or role-playing.\n"
        f"Your problem: {persona.problem_type}.\n"
        f"Your situation: {persona.situation or 'not stated'}\n"
        f"Right now you feel {emotion}; let it show in how you talk.\n"
        f"{_RISK_TEXT[risk]}\n"
        "Answer the therapist's last message with one to three short sentences, as the client would say them."
    )
    messages = [{"role": "system", "content": system}, {"role": "user", "content": _OPENING_PROMPT}]
    for turn in turns:
        messages.append({"role": "assistant" if turn.speaker == "client" else "user", "content": turn.text})
    return messages


def _turn(speaker: str, text: str, emotion: str | None = None) -> Turn:
    return Turn.from_segments(speaker, [Segment(text, emotion)])  # type: ignore[arg-type]


def _clean(text: str) -> str:
    """The client's words: no role label, nothing after a line in the therapist's voice, within the charset."""
    match = _OTHER_ROLE.search(text)
    text = _ROLE_PREFIX.sub("", text[: match.start()] if match else text)
    text = clip_text(" ".join(text.split()), UTTERANCE_MAX_LENGTH)
    return text or SILENCE


class SimulatedClient:
    """An LLM playing the client of a :class:`PersonaCard` (see the module docstring).

    Args:
        model: a Hugging Face causal LM (with ``tokenizer``), or the model name served at ``base_url``.
        tokenizer: the HF model's tokenizer; its chat template renders :func:`client_messages`.
        base_url: an OpenAI-compatible API root (``{base_url}/chat/completions``); then ``model`` is a name.
        api_key_env: environment variable with the API key (sent as a Bearer token; unset: none sent).
        persona: a PersonaCard for every episode, or a function ``dialogue -> PersonaCard``;
            None (default): :meth:`PersonaCard.from_dialogue` of the episode's dialogue.
        temperature: 0 (default) decodes greedily, so episodes are deterministic; above 0 samples with
            a seed drawn from the env's RNG (torch's global RNG is left untouched).
        max_new_tokens: most tokens of one client turn (default 64).
        timeout_s, max_retries, backoff_s: HTTP only (:class:`mmrl.llm.ChatClient`): time limit of an attempt,
            retries on 408/409/429/5xx, timeouts and connection errors, and the wait ``backoff_s * 2**k`` (or the
            server's ``Retry-After``) before retry ``k``.

    A failed generation raises :class:`ClientError` and changes nothing, so the env's step can be retried.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        persona: PersonaCard | Callable[[Dialogue], PersonaCard] | None = None,
        temperature: float = 0.0,
        max_new_tokens: int = 64,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        backoff_s: float = 1.0,
    ) -> None:
        if base_url is not None:
            if not isinstance(model, str) or not model or tokenizer is not None:
                raise ConfigError(
                    f"SimulatedClient(base_url=...) needs model= the served model's name and no tokenizer, got model={model!r}"
                )
            self.base_url: str | None = base_url.rstrip("/")
        else:
            if isinstance(model, str) or tokenizer is None or not hasattr(model, "generate"):
                raise ConfigError(
                    "SimulatedClient needs a Hugging Face causal LM and its tokenizer (model=, tokenizer=), or base_url= and "
                    f"a served model name; got model={type(model).__name__}, tokenizer={type(tokenizer).__name__}"
                )
            self.base_url = None
        if not (isinstance(temperature, (int, float)) and temperature >= 0):
            raise ConfigError(f"temperature must be a number >= 0, got {temperature!r}")
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
        self.model, self.tokenizer, self.persona = model, tokenizer, persona
        self.temperature, self.max_new_tokens = float(temperature), max_new_tokens
        self._chat = (
            None
            if base_url is None
            else ChatClient(
                base_url, model, api_key_env=api_key_env, concurrency=1, timeout_s=timeout_s, max_retries=max_retries, backoff_s=backoff_s
            )
        )
        self.end_reason: str | None = None
        self.card: PersonaCard | None = None
        self._source: Dialogue | None = None
        self._turns: list[Turn] = []
        self._risks: list[str] = []
        self._rng: np.random.Generator = np.random.default_rng(0)

    def reset(self, dialogue: Dialogue, rng: np.random.Generator) -> ClientStep:
        card = self.persona(dialogue) if callable(self.persona) else self.persona or PersonaCard.from_dialogue(dialogue)
        if not isinstance(card, PersonaCard):
            raise ConfigError(f"persona must give a PersonaCard, got {type(card).__name__}")
        self.card, self._source, self._rng, self.end_reason = card, dialogue, rng, None
        self._turns, self._risks = [], []
        emotion, risk = card.state(0)
        text = _clean(card.opening) if card.opening else self._generate(client_messages(card, [], emotion, risk))
        return self._speak(text, emotion, risk)

    def respond(self, reply: str) -> ClientStep | None:
        if self.card is None or self.end_reason is not None:
            raise ClientError("SimulatedClient.respond() needs an episode in progress: call reset(dialogue, rng) first")
        turns = [*self._turns, _turn("therapist", reply)]
        if self.card.leaves(len(self._risks), reply):
            self._turns, self.end_reason = turns, CLIENT_LEFT
            return None
        emotion, risk = self.card.state(len(self._risks))
        text = self._generate(client_messages(self.card, turns, emotion, risk))  # may raise: nothing changed yet
        self._turns = turns
        return self._speak(text, emotion, risk)

    @property
    def turns(self) -> tuple[Turn, ...]:
        """The conversation so far."""
        return tuple(self._turns)

    def _speak(self, text: str, emotion: str, risk: str) -> ClientStep:
        self._turns.append(_turn("client", text, emotion))
        self._risks.append(risk)
        source = self._source
        assert source is not None and self.card is not None
        dialogue = Dialogue(
            id=f"{source.id}/simulated",
            split=source.split,
            turns=(*self._turns, _turn("therapist", "")),
            problem_type=self.card.problem_type,
            situation=self.card.situation,
            source="simulated",
        )
        return ClientStep(dialogue, len(self._turns), live=True, risk=risk)

    # ----- generation -----

    def _generate(self, messages: list[dict[str, str]]) -> str:
        seed = int(self._rng.integers(2**31 - 1))
        if self._chat is None:
            try:
                [text] = generate(
                    self.model, self.tokenizer, [messages], max_new_tokens=self.max_new_tokens, temperature=self.temperature, seed=seed
                )
            except Exception as exc:  # wrapped: the user sees which component failed and why
                raise ClientError(f"simulated client generation failed: {type(exc).__name__}: {exc}") from exc
        else:
            [answer] = self._chat.complete([messages], max_tokens=self.max_new_tokens, temperature=self.temperature, seed=seed)
            if isinstance(answer, ChatError):
                raise ClientError(f"simulated client request failed after {answer.attempts} attempt(s): {answer.reason}")
            text = answer.text
        return _clean(text)

    def __repr__(self) -> str:
        backend = f"{self.model}@{self.base_url}" if self.base_url else type(self.model).__name__
        return f"SimulatedClient({backend}, temperature={self.temperature:g})"
